/**
 * Group commit of session rows (issue 18, reconnect storm). After a bartos restart every agent
 * reconnects at once, and each hello writes its session (`Store.sessionStarted`: the agents row
 * and an `agent_sessions` row; with several instances also its claim in `agent_claims`) and reads
 * its acked offset (`Store.ackedUpTo`). One transaction per hello is one fsync per agent, a few
 * hundred handshakes a second; and even in one transaction, a few statements per hello are a few
 * round trips (MariaDB) and a few trips through the SQL client's Effect pipeline (both) each.
 *
 * Here the calls that arrive while a group is in flight wait for the next one, which handles all
 * of them at once: the session rows of a group are written by a handful of multi-row statements
 * (`Store.sessionsStarted`) in one transaction, one fsync for the whole group, and the acked
 * offsets of a group are read by one query (`Store.ackedUpToMany`). A group closes after two turns
 * of the event loop in a row that brought no other call, or after `MAX_TURNS` (no timer: a lone
 * call waits two turns). A group that fails is retried item by item, so one bad row never costs
 * the others.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type { SessionEnd, SessionInfo, StoreShape } from "../Store.js"
import { breathe } from "./store/common.js"
import { StoreError } from "./store/errors.js"

/** Most items in one group (bounds a transaction's size, the locks it holds, a statement's parameters). */
export const MAX_GROUP = 500
/** Most turns of the event loop a group waits for more calls (it closes after two turns that brought none). */
export const MAX_TURNS = 16

interface Pending<I, A, E> {
  readonly item: I
  readonly done: Deferred.Deferred<A, E>
}

/**
 * `runGroup` applied to whatever calls are waiting (at most `MAX_GROUP`), one group at a time;
 * each call gets its own result (`runGroup` answers in the order of its input). A group that
 * fails is run again one item at a time. The runner fiber lives in the scope.
 */
export const grouped = <I, A, E>(
  runGroup: (group: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<A>, E>
): Effect.Effect<(item: I) => Effect.Effect<A, E>, never, Scope.Scope> =>
  Effect.map(submitter(runGroup), (submit) => (item: I) => Effect.flatMap(submit(item), Deferred.await))

/**
 * `grouped`, but a call only queues its item and returns where its result will be: several calls
 * of one fiber can then wait for their groups at the same time without a fiber each.
 */
export const submitter = <I, A, E>(
  runGroup: (group: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<A>, E>
): Effect.Effect<(item: I) => Effect.Effect<Deferred.Deferred<A, E>>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* Effect.acquireRelease(Queue.unbounded<Pending<I, A, E>>(), Queue.shutdown)
    const runOne = (item: I) => Effect.map(runGroup([item]), (results) => results[0]!)
    const run = (group: ReadonlyArray<Pending<I, A, E>>) =>
      Effect.gen(function*() {
        const together = yield* Effect.exit(runGroup(group.map((p) => p.item)))
        if (Exit.isSuccess(together)) {
          for (let i = 0; i < group.length; i++) yield* Deferred.succeed(group[i]!.done, together.value[i]!)
          return
        }
        if (group.length === 1) return yield* Deferred.failCause(group[0]!.done, together.cause)
        for (const p of group) yield* Deferred.complete(p.done, runOne(p.item))
      })
    // After the first call of a group, turns of the event loop (no timer) until two in a row
    // bring no call (at most `MAX_TURNS`): the frames already readable are handled and their calls
    // join. Without them the writer wakes on the first call's microtask and, on SQLite, whose
    // commit blocks the loop, every group was the one call that woke it: one fsync per hello.
    const collect = (first: Pending<I, A, E>) =>
      Effect.gen(function*() {
        let waiting = yield* Queue.size(queue)
        for (let turn = 0, idle = 0; turn < MAX_TURNS && waiting < MAX_GROUP - 1; turn++) {
          yield* breathe
          const now = yield* Queue.size(queue)
          if (now === waiting && ++idle >= 2) break
          if (now !== waiting) idle = 0
          waiting = now
        }
        return [first, ...(yield* Queue.takeUpTo(queue, MAX_GROUP - 1))]
      })
    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Effect.flatMap(Queue.take(queue), collect), run)))
    return (item: I) =>
      Effect.flatMap(
        Deferred.make<A, E>(),
        (done) => Effect.as(Queue.offer(queue, { item, done }), done)
      )
  })

/** `writeMany` group-committed: one transaction of `sql` per group. */
export const groupCommitMany = <I, A, E>(
  sql: SqlClient.SqlClient,
  writeMany: (items: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<A>, E>
): Effect.Effect<(item: I) => Effect.Effect<A, E | SqlError>, never, Scope.Scope> =>
  grouped((items: ReadonlyArray<I>) => sql.withTransaction(writeMany(items)))

/** `write` group-committed: concurrent calls are written together in one transaction of `sql`. */
export const groupCommit = <I, A, E>(
  sql: SqlClient.SqlClient,
  write: (item: I) => Effect.Effect<A, E>
): Effect.Effect<(item: I) => Effect.Effect<A, E | SqlError>, never, Scope.Scope> =>
  groupCommitMany(sql, (items: ReadonlyArray<I>) => Effect.forEach(items, write))

const asStoreError = (what: string) => (e: SqlError | StoreError) =>
  e._tag === "StoreError" ? e : new StoreError({ message: `${what}: ${e.message}`, cause: e })

/**
 * `store` with `sessionStarted` and `sessionEnded` group-committed and `ackedUpTo` read in groups;
 * everything else as it is. The ends of a mass disconnect (10,000 agents cut off at once, or
 * bartos shutting down) were two statements and a commit each (with several bartos a third, the
 * claim's release, `Cluster.ts`): on MariaDB, 10,000 ends took 7.4 s to be recorded and bartos
 * peaked at 664 MiB meanwhile; grouped, 3.7 s and 400-470 MiB.
 */
export const make = <S extends StoreShape>(store: S, sql: SqlClient.SqlClient): Effect.Effect<S, never, Scope.Scope> =>
  Effect.gen(function*() {
    const started = yield* submitter((
      sessions: ReadonlyArray<SessionInfo>
    ): Effect.Effect<ReadonlyArray<void>, SqlError | StoreError> =>
      sql.withTransaction(Effect.as(store.sessionsStarted(sessions), sessions.map(() => undefined)))
    )
    const acked = yield* submitter(store.ackedUpToMany)
    const ended = yield* grouped((
      ends: ReadonlyArray<SessionEnd>
    ): Effect.Effect<ReadonlyArray<void>, SqlError | StoreError> =>
      sql.withTransaction(Effect.as(store.sessionsEnded(ends), ends.map(() => undefined)))
    )
    const startedAwait = (done: Deferred.Deferred<void, SqlError | StoreError>) =>
      Effect.mapError(Deferred.await(done), asStoreError("sessionStarted"))
    return {
      ...store,
      sessionStarted: (session) => Effect.flatMap(started(session), startedAwait),
      ackedUpTo: (agent, outboxId) => Effect.flatMap(acked({ agent, outboxId }), Deferred.await),
      sessionEnded: (agent, sessionId, at) =>
        Effect.mapError(ended({ agent, sessionId, at }), asStoreError("sessionEnded")),
      // Both queued first, then both awaited: the two groups run at once, and no fiber per hello.
      sessionOpened: (session, outboxId) =>
        Effect.flatMap(
          started(session),
          (startedDone) =>
            Effect.flatMap(acked({ agent: session.agent, outboxId }), (ackedDone) =>
              Effect.zipWith(
                Effect.either(startedAwait(startedDone)),
                Effect.either(Deferred.await(ackedDone)),
                (started, acked) => ({ started, acked })
              ))
        )
    }
  })
