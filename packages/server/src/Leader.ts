/**
 * Work that must happen once across every bartos sharing a database (retention, lost-run
 * marking, alert evaluation) runs on one leader (issue 18, D11).
 *
 * On MariaDB the leader holds a lease row (`leader_lease`): holder, expiry and a fencing token
 * that grows at every change of holder. Why a lease row and not `GET_LOCK`: a named lock belongs
 * to one connection of the pool (a reconnect silently drops it, and nothing tells the fibers that
 * relied on it), it is local to one node under Galera (two leaders on two nodes), and it carries
 * no token, so a leader that stalls past its lock cannot be told apart from the current one. The
 * row replicates like any write, expires on the database's own clock (no skew between the
 * instances' clocks), and its token is checked inside the leader's own write transactions
 * (`internal/store/fence.ts`): a returning old leader's writes are refused.
 *
 * Timing: the holder renews every `renewMs`; when it stops (killed), the lease expires after
 * `leaseMs` and the next renewal of another instance takes it, so takeover happens within
 * `leaseMs + renewMs`. The holder itself steps down (interrupts its leader work) when it has not
 * renewed for `leaseMs` by its own monotonic clock, before anyone else can take the lease. A
 * graceful stop releases the lease at once.
 *
 * On SQLite a single bartos is the only instance there can be: `layerSingle` always leads.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Fence from "./internal/store/fence.js"

export interface LeaderShape {
  /** This instance's name (`[cluster] instance_id`). */
  readonly instanceId: string
  readonly isLeader: Effect.Effect<boolean>
  /** The lease this instance holds now, if any. */
  readonly current: Effect.Effect<Option.Option<Fence.Fence>>
  /**
   * Runs `effect` whenever this instance leads: started when it gains the lease, interrupted when
   * it loses it, started again when it regains it. Its store writes carry the lease (fencing).
   * Never returns; fork it. A failure of `effect` is logged and waits for the next term.
   */
  readonly whileLeader: <A, E, R>(what: string, effect: Effect.Effect<A, E, R>) => Effect.Effect<never, never, R>
  /** `effect` now if this instance leads (fenced), else nothing. */
  readonly ifLeader: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<Option.Option<A>, E, R>
}

export class Leader extends Context.Tag("@barto/server/Leader")<Leader, LeaderShape>() {}

const make = (instanceId: string, state: SubscriptionRef.SubscriptionRef<Option.Option<Fence.Fence>>): LeaderShape => {
  const withFence = <A, E, R>(fence: Option.Option<Fence.Fence>, effect: Effect.Effect<A, E, R>) =>
    Option.isSome(fence) && fence.value.token > 0 ? Effect.locally(effect, Fence.currentFence, fence.value) : effect
  return {
    instanceId,
    isLeader: Effect.map(SubscriptionRef.get(state), Option.isSome),
    current: SubscriptionRef.get(state),
    whileLeader: (what, effect) =>
      state.changes.pipe(
        Stream.changesWith((a, b) =>
          Option.isNone(a) ? Option.isNone(b) : Option.isSome(b) && a.value.token === b.value.token
        ),
        Stream.flatMap((fence) =>
          Option.isNone(fence) ? Stream.empty : Stream.fromEffect(
            Effect.logInfo(`leader: ${what} starts (term ${fence.value.token})`).pipe(
              Effect.zipRight(withFence(fence, effect)),
              Effect.catchAllCause((cause) =>
                Cause.isInterruptedOnly(cause) ? Effect.interrupt : Effect.logError(`leader: ${what} failed`, cause)
              ),
              Effect.onInterrupt(() => Effect.logInfo(`leader: ${what} stops (term ${fence.value.token} ended)`))
            )
          ), { switch: true }),
        Stream.runDrain,
        Effect.zipRight(Effect.never)
      ),
    ifLeader: (effect) =>
      Effect.flatMap(
        SubscriptionRef.get(state),
        (fence) => Option.isNone(fence) ? Effect.succeedNone : Effect.asSome(withFence(fence, effect))
      )
  }
}

/** Always the leader, without a fence: the one instance on SQLite, and tests. */
export const layerSingle = (instanceId = "single"): Layer.Layer<Leader> =>
  Layer.effect(
    Leader,
    Effect.map(
      SubscriptionRef.make<Option.Option<Fence.Fence>>(Option.some({ holder: instanceId, token: 0 })),
      (state) => make(instanceId, state)
    )
  )

export interface LeaseOptions {
  readonly instanceId: string
  readonly leaseMs: number
  readonly renewMs: number
}

interface LeaseRow {
  readonly holder: string
  readonly token: unknown
  readonly expires_at: unknown
  readonly now: unknown
}

/**
 * One renewal attempt: takes the lease if it is free or expired, extends it if ours; returns the
 * fence when we hold it afterwards. The UPDATE decides atomically on the database's clock.
 */
export const tryAcquire = (
  sql: SqlClient.SqlClient,
  options: Pick<LeaseOptions, "instanceId" | "leaseMs">
) =>
  Effect.gen(function*() {
    const now = Fence.dbNowExpr(sql)
    const leaseMicros = Math.round(options.leaseMs * 1000)
    const insert = sql.onDialectOrElse({
      mysql: () => "INSERT IGNORE INTO leader_lease (name, holder, token, expires_at) VALUES (?, ?, 0, 0)",
      orElse: () => "INSERT OR IGNORE INTO leader_lease (name, holder, token, expires_at) VALUES (?, ?, 0, 0)"
    })
    yield* sql.unsafe(insert, [Fence.LEASE_NAME, ""])
    // MariaDB evaluates the SET list left to right: `token` reads `holder` before it changes.
    yield* sql.unsafe(
      `UPDATE leader_lease SET
         token = CASE WHEN holder = ? THEN token ELSE token + 1 END,
         holder = ?,
         expires_at = ${now} + ?
       WHERE name = ? AND (holder = ? OR expires_at < ${now})`,
      [options.instanceId, options.instanceId, leaseMicros, Fence.LEASE_NAME, options.instanceId]
    )
    const rows = yield* sql.unsafe<LeaseRow>(
      `SELECT holder, token, expires_at, ${now} AS now FROM leader_lease WHERE name = ?`,
      [Fence.LEASE_NAME]
    )
    const row = rows[0]
    return row !== undefined && row.holder === options.instanceId && Number(row.expires_at) > Number(row.now)
      ? Option.some<Fence.Fence>({ holder: row.holder, token: Number(row.token) })
      : Option.none<Fence.Fence>()
  })

/** Gives the lease up now (graceful stop), so that another instance takes over at its next renewal. */
const release = (sql: SqlClient.SqlClient, instanceId: string) =>
  sql.unsafe(`UPDATE leader_lease SET expires_at = 0 WHERE name = ? AND holder = ?`, [Fence.LEASE_NAME, instanceId])

/** The lease on a shared database; the renewal loop lives as long as the layer. */
export const layerLease = (options: LeaseOptions): Layer.Layer<Leader, never, SqlClient.SqlClient> =>
  Layer.scoped(
    Leader,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const state = yield* SubscriptionRef.make<Option.Option<Fence.Fence>>(Option.none())
      // Monotonic instant (ms) before which the lease we hold is still ours for sure: the start
      // of the last successful renewal plus the lease (the database's expiry is later than that).
      let validUntil = 0
      const monotonicMs = () => performance.now()
      const renew = Effect.gen(function*() {
        const startedAt = monotonicMs()
        const result = yield* tryAcquire(sql, options).pipe(Effect.either)
        const previous = yield* SubscriptionRef.get(state)
        if (result._tag === "Left") {
          if (Option.isSome(previous) && monotonicMs() >= validUntil) {
            yield* Effect.logWarning(`leader: cannot renew the lease (${result.left.message}); stepping down`)
            yield* SubscriptionRef.set(state, Option.none())
          } else {
            yield* Effect.logWarning(`leader: lease renewal failed: ${result.left.message}`)
          }
          return
        }
        const next = result.right
        if (Option.isSome(next)) validUntil = startedAt + options.leaseMs
        const changed = Option.isSome(next) !== Option.isSome(previous) ||
          (Option.isSome(next) && Option.isSome(previous) && next.value.token !== previous.value.token)
        if (changed) {
          yield* Option.isSome(next)
            ? Effect.logInfo(`leader: this instance (${options.instanceId}) leads, term ${next.value.token}`)
            : Effect.logWarning(`leader: this instance (${options.instanceId}) no longer leads`)
          yield* SubscriptionRef.set(state, next)
        }
      })
      // The step-down check runs more often than renewals, so a stalled renewal (a hung
      // connection) cannot keep leader work running past the lease.
      const watchdog = Effect.gen(function*() {
        const held = yield* SubscriptionRef.get(state)
        if (Option.isSome(held) && monotonicMs() >= validUntil) {
          yield* Effect.logWarning("leader: the lease was not renewed in time; stepping down")
          yield* SubscriptionRef.set(state, Option.none())
        }
      })
      // Added before the loops are forked, so it runs after they are interrupted (finalizers run
      // in reverse): no renewal in flight can take the lease back after the release.
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          if (Option.isSome(yield* SubscriptionRef.get(state))) {
            yield* SubscriptionRef.set(state, Option.none())
            yield* release(sql, options.instanceId).pipe(Effect.ignore)
          }
        })
      )
      yield* renew
      yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(options.renewMs), renew)))
      yield* Effect.forkScoped(
        Effect.forever(Effect.zipRight(Effect.sleep(Math.max(50, options.renewMs / 4)), watchdog))
      )
      return make(options.instanceId, state)
    })
  )
