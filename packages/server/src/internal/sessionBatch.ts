/**
 * Group commit of session rows (issue 18, reconnect storm). After a bartos restart every agent
 * reconnects at once, and each hello writes its session (`Store.sessionStarted`: the agents row
 * and an `agent_sessions` row; with several instances also its claim in `agent_claims`). One
 * transaction per hello is one fsync per agent, a few hundred handshakes a second. Here the
 * hellos that arrive while a commit is in flight wait for the next one, which writes all of them
 * in one transaction: one fsync for the whole group, and a lone hello still commits at once (no
 * timer). A group that fails is retried item by item, so one bad row never costs the others.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type { StoreShape } from "../Store.js"
import { StoreError } from "./store/errors.js"

/** Most items in one transaction (bounds its size and the locks it holds). */
export const MAX_GROUP = 500

interface Pending<I, A, E> {
  readonly item: I
  readonly done: Deferred.Deferred<A, E>
}

/**
 * `write` group-committed: concurrent calls are written together in one transaction of `sql`
 * (each call still gets its own result). The writer fiber lives in the scope.
 */
export const groupCommit = <I, A, E>(
  sql: SqlClient.SqlClient,
  write: (item: I) => Effect.Effect<A, E>
): Effect.Effect<(item: I) => Effect.Effect<A, E | SqlError>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* Effect.acquireRelease(Queue.unbounded<Pending<I, A, E | SqlError>>(), Queue.shutdown)
    const writeGroup = (group: ReadonlyArray<Pending<I, A, E | SqlError>>) =>
      Effect.gen(function*() {
        const together = yield* Effect.exit(sql.withTransaction(Effect.forEach(group, (p) => write(p.item))))
        if (Exit.isSuccess(together)) {
          for (let i = 0; i < group.length; i++) yield* Deferred.succeed(group[i]!.done, together.value[i]!)
          return
        }
        for (const p of group) yield* Deferred.complete(p.done, sql.withTransaction(write(p.item)))
      })
    yield* Effect.forkScoped(
      Effect.forever(Effect.flatMap(Queue.takeBetween(queue, 1, MAX_GROUP), (chunk) => writeGroup([...chunk])))
    )
    return (item: I) =>
      Effect.flatMap(Deferred.make<A, E | SqlError>(), (done) =>
        Effect.zipRight(Queue.offer(queue, { item, done }), Deferred.await(done)))
  })

/** `store` with `sessionStarted` group-committed; everything else as it is. */
export const make = <S extends StoreShape>(store: S, sql: SqlClient.SqlClient): Effect.Effect<S, never, Scope.Scope> =>
  Effect.map(
    groupCommit<Parameters<StoreShape["sessionStarted"]>[0], void, StoreError>(sql, store.sessionStarted),
    (grouped) => ({
      ...store,
      sessionStarted: (session) =>
        Effect.catchTag(
          grouped(session),
          "SqlError",
          (e) => Effect.fail(new StoreError({ message: `sessionStarted: ${e.message}`, cause: e }))
        )
    })
  )
