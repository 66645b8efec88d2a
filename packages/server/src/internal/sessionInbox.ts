/**
 * The inbox of one worker session: the frames its socket delivered and the drain has not handled
 * yet, in arrival order, with the socket's flow control.
 *
 * It is the base class of the session's state object (`WorkerSession.ts`), not an object of its
 * own: a resting session stays one small object beside its socket (issue 13 keeps 10,000 agents
 * under 300 MiB). The array is consumed from `head` and reset when empty, so a backlog costs no
 * copying per frame.
 */

/** What the inbox needs of the socket: `ws`'s pause/resume of reading. */
export interface FlowControl {
  readonly isPaused: boolean
  pause(): void
  resume(): void
}

/** Frames waiting beyond this pause reading from the socket until the inbox drains to half. */
export const HIGH_WATER = 256

export class SocketInbox<Item> {
  private items: Array<Item> = []
  private head = 0

  constructor(readonly ws: FlowControl & object) {}

  /** Items not yet taken. */
  get pending(): number {
    return this.items.length - this.head
  }

  /** Appends an item; past `HIGH_WATER` waiting, the socket stops reading. */
  push(item: Item): void {
    this.items.push(item)
    if (this.pending >= HIGH_WATER && !this.ws.isPaused) this.ws.pause()
  }

  /** The next item without taking it. */
  peek(): Item | undefined {
    return this.head < this.items.length ? this.items[this.head] : undefined
  }

  /** Replaces the next item (with a decoded form of itself: a frame is decoded once only). */
  replaceNext(item: Item): void {
    if (this.head < this.items.length) this.items[this.head] = item
  }

  /**
   * Takes the next item. Once the backlog is down to half of `HIGH_WATER`, a paused socket reads
   * again, unless `mayResume` is false (the session is closing).
   */
  shift(mayResume: boolean): Item | undefined {
    if (this.head >= this.items.length) return undefined
    const item = this.items[this.head]!
    this.items[this.head++] = undefined as unknown as Item
    if (this.head === this.items.length) this.clear()
    if (mayResume && this.ws.isPaused && this.pending <= HIGH_WATER / 2) this.ws.resume()
    return item
  }

  /** Drops every item not yet taken. */
  clear(): void {
    this.items.length = 0
    this.head = 0
  }
}
