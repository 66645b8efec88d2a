/**
 * Fencing for leader work (issue 18). The leader's writes (retention deletes, lost-run marking)
 * run with the lease they were started under in `currentFence`; the store checks it inside the
 * write's own transaction, holding the lease row locked (`FOR UPDATE`) until the commit. A leader
 * that was paused (GC, a frozen VM, a network cut) past its lease and wakes up still believing it
 * leads finds another holder or a newer token there, and its write is refused before it touches
 * anything. Without a fence (SQLite, single instance) the check is nothing.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { StoreError } from "./errors.js"

export interface Fence {
  readonly holder: string
  readonly token: number
}

export const LEASE_NAME = "leader"

export const currentFence: FiberRef.FiberRef<Fence | undefined> = FiberRef.unsafeMake<Fence | undefined>(undefined)

/** Microseconds since the epoch on the database's clock (one clock for every instance). */
export const dbNowExpr = (sql: SqlClient.SqlClient): string =>
  sql.onDialectOrElse({
    mysql: () => "CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)",
    orElse: () => "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)"
  })

/** Fails unless the fence in effect is still the lease's holder and token, unexpired. Call inside a transaction. */
export const check = (sql: SqlClient.SqlClient): Effect.Effect<void, StoreError> =>
  Effect.flatMap(FiberRef.get(currentFence), (fence) => {
    if (fence === undefined) return Effect.void
    const forUpdate = sql.onDialectOrElse({ mysql: () => " FOR UPDATE", orElse: () => "" })
    return sql.unsafe<{ holder: string; token: unknown; expires_at: unknown; now: unknown }>(
      `SELECT holder, token, expires_at, ${dbNowExpr(sql)} AS now FROM leader_lease WHERE name = ?${forUpdate}`,
      [LEASE_NAME]
    ).pipe(
      Effect.mapError((e) => new StoreError({ message: `cannot check the leader lease: ${e.message}`, cause: e })),
      Effect.flatMap((rows) => {
        const row = rows[0]
        if (
          row !== undefined && row.holder === fence.holder && Number(row.token) === fence.token &&
          Number(row.expires_at) > Number(row.now)
        ) return Effect.void
        return Effect.fail(
          new StoreError({
            message: `stale leader lease: this instance (${fence.holder}, token ${fence.token}) no longer leads` +
              (row === undefined ? "" : ` (holder ${row.holder}, token ${Number(row.token)})`) + "; write refused"
          })
        )
      })
    )
  })

/** `effect` in a transaction that first checks the fence; `effect` alone when there is none. */
export const fenced = <A, E, R>(sql: SqlClient.SqlClient, effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(
    FiberRef.get(currentFence),
    (fence): Effect.Effect<A, E | StoreError | SqlError, R> =>
      fence === undefined ? effect : sql.withTransaction(Effect.zipRight(check(sql), effect))
  )
