/**
 * The ordered record pipe of one run: everything the run produces goes through here, so the
 * outbox sees records in the order they happened, and output lines are appended in batches
 * (one transaction per ≤ 20 ms or ≥ 500 lines, D5) instead of one per line.
 *
 * A record pushed as `urgent` (a run's start) is appended as soon as the writer gets to it,
 * together with whatever waits, without the linger.
 *
 * `push` is synchronous and never blocks: the child's output callbacks call it straight from
 * Node's stream events, so the pipes keep draining even while the outbox is slow (lines wait in
 * memory meanwhile).
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
  /** Completes once everything pushed before it was appended (or its append failed and was logged). */
  readonly flush: Effect.Effect<void>
}

/** Below this many waiting records the writer lingers a little to gather a bigger batch. */
export const BATCH_LINES = 500
/** Upper bound of records per transaction. */
export const MAX_BATCH = 2000
export const LINGER = Duration.millis(20)

type Item = { readonly _tag: "Record"; readonly draft: RecordDraft; readonly urgent: boolean } | {
  readonly _tag: "Flush"
  readonly done: Deferred.Deferred<void>
}

export const make = (outbox: OutboxShape): Effect.Effect<Sink, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* Effect.acquireRelease(Queue.unbounded<Item>(), Queue.shutdown)

    const write = (drafts: Array<RecordDraft>) =>
      drafts.length === 0 ? Effect.void : outbox.append(drafts).pipe(
        Effect.catchAll((e) =>
          Effect.logError(`outbox append failed; ${drafts.length} record(s) of this run are lost`, e)
        )
      )

    const writer = Effect.gen(function*() {
      let items = Chunk.toReadonlyArray(yield* Queue.takeBetween(queue, 1, MAX_BATCH))
      if (items.length < BATCH_LINES && !items.some((i) => i._tag === "Flush" || i.urgent)) {
        yield* Effect.sleep(LINGER)
        const more = yield* Queue.takeUpTo(queue, MAX_BATCH - items.length)
        items = [...items, ...Chunk.toReadonlyArray(more)]
      }
      let batch: Array<RecordDraft> = []
      for (const item of items) {
        if (item._tag === "Record") {
          batch.push(item.draft)
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
      flush: Effect.gen(function*() {
        const done = yield* Deferred.make<void>()
        yield* Queue.offer(queue, { _tag: "Flush", done })
        yield* Deferred.await(done)
      })
    }
  })
