/**
 * A `ws` socket seen from Effect: inbound frames go synchronously into a Queue that ONE fiber
 * drains in order (style §4.2: per-message handler fibers would reorder frames), writes are
 * plain `ws.send`, and a slow consumer pauses the socket instead of buffering without bound.
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type { Socket } from "node:net"
import type { RawData, WebSocket } from "ws"

export type Inbound =
  | { readonly _tag: "Frame"; readonly data: Uint8Array; readonly binary: boolean }
  | { readonly _tag: "Closed"; readonly code: number; readonly reason: string }

export interface Conn {
  /** The next inbound item; once `Closed` was seen, always `Closed`. */
  readonly take: Effect.Effect<Inbound>
  /** False when the socket is not open (the frame is dropped). */
  readonly sendBytes: (bytes: Uint8Array) => boolean
  /** Starts the close handshake and ends `take` at once, without waiting for the peer. */
  readonly close: (code: number, reason: string) => void
  readonly isOpen: () => boolean
}

/** Frames queued beyond this pause reading from the socket until the queue drains to half. */
const HIGH_WATER = 256

export const toBytes = (data: RawData): Uint8Array =>
  Array.isArray(data) ? Buffer.concat(data) : data instanceof ArrayBuffer ? new Uint8Array(data) : data

export const attach = (ws: WebSocket): Effect.Effect<Conn, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* Effect.acquireRelease(Queue.unbounded<Inbound>(), Queue.shutdown)
    let closed: Inbound | undefined
    let lastTaken: Inbound | undefined
    let pending = 0
    const finish = (code: number, reason: string) => {
      if (closed !== undefined) return
      closed = { _tag: "Closed", code, reason }
      Queue.unsafeOffer(queue, closed)
    }
    const onMessage = (data: RawData, binary: boolean) => {
      if (closed !== undefined) return
      // Nothing thrown here may reach `ws` (it would end the process): the link ends instead.
      try {
        pending++
        if (pending >= HIGH_WATER && !ws.isPaused) ws.pause()
        Queue.unsafeOffer(queue, { _tag: "Frame", data: toBytes(data), binary })
      } catch {
        ws.terminate()
        finish(1011, "internal error receiving a frame")
      }
    }
    const onClose = (code: number, reason: Buffer) => finish(code, reason.toString("utf8"))
    // An 'error' is always followed by 'close'; without a listener it would crash the process.
    const onError = () => {}
    ws.on("message", onMessage)
    ws.on("close", onClose)
    ws.on("error", onError)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        ws.off("message", onMessage)
        ws.off("close", onClose)
      })
    )
    if (ws.readyState !== ws.OPEN) finish(1006, "closed before the session started")
    const take: Effect.Effect<Inbound> = Effect.suspend(() =>
      closed !== undefined && closed === lastTaken ? Effect.succeed(closed) : Queue.take(queue)
    ).pipe(
      Effect.tap((item) =>
        Effect.sync(() => {
          if (item._tag === "Closed") {
            lastTaken = item
            return
          }
          pending--
          if (ws.isPaused && pending <= HIGH_WATER / 2) ws.resume()
        })
      )
    )
    return {
      take,
      sendBytes: (bytes) => {
        if (ws.readyState !== ws.OPEN) return false
        ws.send(bytes, { binary: true })
        return true
      },
      close: (code, reason) => {
        if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, truncateReason(reason))
        finish(code, reason)
      },
      isOpen: () => ws.readyState === ws.OPEN
    } satisfies Conn
  })

/**
 * Runs `effect` with the TCP socket under `ws` corked: the frames it sends leave in one write
 * (one syscall) when it ends, whatever the outcome. A hello's ServerHello and table were two
 * `writev` calls, ~4% of bartos' CPU in the reconnect storm (issue 18). `ws` has no public
 * cork; without its socket (another `ws` version) the effect runs as it is.
 */
export const corked = <A, E, R>(ws: WebSocket, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    const socket = (ws as unknown as { readonly _socket?: Partial<Pick<Socket, "cork" | "uncork">> })._socket
    if (typeof socket?.cork !== "function" || typeof socket.uncork !== "function") return effect
    socket.cork()
    return Effect.ensuring(effect, Effect.sync(() => socket.uncork!()))
  })

/** A close reason is limited to 123 bytes of UTF-8 by RFC 6455; `ws` throws beyond that. */
export const truncateReason = (reason: string): string => {
  const bytes = Buffer.from(reason, "utf8")
  if (bytes.length <= 123) return reason
  return bytes.subarray(0, 120).toString("utf8").replace(/\uFFFD$/, "") + "..."
}
