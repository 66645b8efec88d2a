/**
 * The ordered record pipe of one run: everything the run produces goes through here, so the
 * outbox sees records in the order they happened, and output lines are appended in batches
 * (one transaction per ≤ 20 ms or ≥ 500 lines, D5) instead of one per line.
 *
 * A record pushed as `urgent` (a run's start) is appended as soon as the writer gets to it,
 * together with whatever waits, without the linger.
 *
 * `push` and `later` are synchronous and never block: the child's output callbacks call `later`
 * straight from Node's stream events with the raw chunk, so the pipes keep draining even while the
 * outbox is slow (chunks wait in memory meanwhile), and the work the output causes (splitting it
 * into lines, building records, appending them) runs in the writer, in order, in batches, and not
 * while a dispatch is near (`hold`, issue 17: a job's output never delays another job's start).
 */
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type { OutboxShape, RecordDraft } from "../../Outbox.js"

export interface Sink {
  readonly push: (draft: RecordDraft, urgent?: boolean) => void
  /**
   * Queues work that makes records (splitting a chunk of output into lines): run by the writer,
   * in order with everything pushed around it.
   */
  readonly later: (work: () => ReadonlyArray<RecordDraft>) => void
  /** Completes once everything pushed before it was appended (or its append failed and was logged). */
  readonly flush: Effect.Effect<void>
}

/** Below this many waiting items (records, chunks of output) the writer lingers a little to gather a bigger batch. */
export const BATCH_LINES = 500
/** Upper bound of records per transaction. */
export const MAX_BATCH = 2000
export const LINGER = Duration.millis(20)

type Item =
  | { readonly _tag: "Record"; readonly draft: RecordDraft; readonly urgent: boolean }
  | { readonly _tag: "Work"; readonly work: () => ReadonlyArray<RecordDraft> }
  | { readonly _tag: "Flush"; readonly done: Deferred.Deferred<void> }

/**
 * `hold`: waited before each batch is built and appended (the Runner's: while a prepared run's
 * instant is near and it has not started yet).
 */
export const make = (
  outbox: OutboxShape,
  hold: Effect.Effect<void> = Effect.void
): Effect.Effect<Sink, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* Effect.acquireRelease(Queue.unbounded<Item>(), Queue.shutdown)

    const append = (drafts: Array<RecordDraft>) =>
      outbox.append(drafts).pipe(
        Effect.catchAll((e) =>
          Effect.logError(`outbox append failed; ${drafts.length} record(s) of this run are lost`, e)
        )
      )
    // At most MAX_BATCH records per transaction (a chunk of output may make many), each after the
    // hold; between two, the event loop turns (a timer due meanwhile, the Ticker's, runs first).
    const write = (drafts: Array<RecordDraft>): Effect.Effect<void> =>
      drafts.length === 0 ? Effect.void : drafts.length <= MAX_BATCH
        ? Effect.zipRight(hold, append(drafts))
        : Effect.zipRight(
          Effect.zipRight(hold, append(drafts.slice(0, MAX_BATCH))),
          Effect.zipRight(Effect.sleep(Duration.zero), Effect.suspend(() => write(drafts.slice(MAX_BATCH))))
        )

    const writer = Effect.gen(function*() {
      let items = Chunk.toReadonlyArray(yield* Queue.takeBetween(queue, 1, MAX_BATCH))
      if (items.length < BATCH_LINES && !items.some((i) => i._tag === "Flush" || (i._tag === "Record" && i.urgent))) {
        yield* Effect.sleep(LINGER)
        const more = yield* Queue.takeUpTo(queue, MAX_BATCH - items.length)
        items = [...items, ...Chunk.toReadonlyArray(more)]
      }
      yield* hold
      let batch: Array<RecordDraft> = []
      for (const item of items) {
        if (item._tag === "Record") {
          batch.push(item.draft)
        } else if (item._tag === "Work") {
          for (const draft of item.work()) batch.push(draft)
          // A backlog of chunks makes many lines: written as they come, not all in one go.
          if (batch.length >= MAX_BATCH) {
            yield* write(batch)
            batch = []
            yield* Effect.sleep(Duration.zero)
          }
        } else {
          yield* write(batch)
          batch = []
          yield* Deferred.succeed(item.done, undefined)
        }
      }
      yield* write(batch)
    }).pipe(Effect.forever)

    yield* Effect.forkScoped(Effect.interruptible(writer))

    return {
      push: (draft, urgent = false) => {
        Queue.unsafeOffer(queue, { _tag: "Record", draft, urgent })
      },
      later: (work) => {
        Queue.unsafeOffer(queue, { _tag: "Work", work })
      },
      flush: Effect.gen(function*() {
        const done = yield* Deferred.make<void>()
        yield* Queue.offer(queue, { _tag: "Flush", done })
        yield* Deferred.await(done)
      })
    }
  })
