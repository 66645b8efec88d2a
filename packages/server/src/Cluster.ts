/**
 * Several bartos on one MariaDB (issue 18, D11): the database is the coordination point, there
 * is no consensus of our own.
 *
 * - Instances: each one has a row in `bartos_instances` whose `heartbeat_at` (the database's
 *   clock) it renews every `heartbeatMs`; one not renewed for `leaseMs` is dead.
 * - Session registry: `agent_claims`, one row per live agent name (owner instance, session,
 *   outbox id, since). Claiming a name is one transaction holding the row locked: free, stale
 *   (owner dead) or the same agent instance (outbox id) → ours; another live instance → refused
 *   (4003, as on one bartos). An instance whose session lost its claim to a newer connection of the
 *   same agent on another instance closes it (4001) at its next heartbeat.
 * - `Registry` seen from anywhere: `list` is the fleet (local sessions plus the claims of live
 *   instances), `send`/`broadcast` for an agent held elsewhere go through `instance_commands`:
 *   the target instance claims the row, delivers the frame to its socket and writes the answer;
 *   the asking instance waits up to `commandTimeoutMs` (owner gone: not delivered).
 * - Leader work (`Leader.ts`): the leader's sweep forgets the claims of dead instances, marks the
 *   runs of agents that did not come back `lost` (fenced), warns while the instances serve
 *   different schedule tables, and clears answered commands.
 * - Pause flags converge: every instance re-reads `paused_schedules` at each heartbeat and pushes
 *   the agents whose table changed, so a pause taken on one instance reaches an agent held by
 *   another within `heartbeatMs`.
 */
import * as Messages from "@barto/domain/Messages"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { createHash, randomUUID } from "node:crypto"
import { AgentSessions, type AgentSessionsShape, type Registration } from "./internal/agentSessions.js"
import * as ScheduleTable from "./internal/scheduleTable.js"
import { grouped } from "./internal/sessionBatch.js"
import { chunk, inList, MAX_TEXT_ROWS, multiRow, writeRows } from "./internal/store/common.js"
import type { StoreError } from "./internal/store/errors.js"
import * as Fence from "./internal/store/fence.js"
import * as Leader from "./Leader.js"
import * as Registry from "./Registry.js"
import { Schedules } from "./Schedules.js"
import { type SessionInfo, type SessionOpened, Store } from "./Store.js"

export interface ClusterOptions {
  readonly instanceId: string
  readonly leaseMs: number
  readonly heartbeatMs: number
  /** How long an action for an agent on another instance waits for that instance's answer. */
  readonly commandTimeoutMs: number
  /** `[limits] liveness_secs`: how long a vanished agent has to come back before its runs are lost. */
  readonly livenessMs: number
  /** How often an instance looks for commands addressed to it (default 100 ms). */
  readonly commandPollMs?: number | undefined
}

/** A command one instance leaves for another; the Schema is the wire form in `instance_commands.body`. */
export const Command = Schema.Union(
  Schema.TaggedStruct("Send", { agent: Schema.String, message: Messages.ServerMessage }),
  Schema.TaggedStruct("Broadcast", { message: Messages.ServerMessage })
)
export type Command = typeof Command.Type
const CommandJson = Schema.parseJson(Command)
/** The answer: frames delivered (0 or 1 for `Send`). */
const ResultJson = Schema.parseJson(Schema.Struct({ delivered: Schema.Int }))

interface ClaimRow {
  readonly outbox_id: string
  readonly session_id: string
  readonly instance_id: string
  readonly ip: string
  readonly since: unknown
  readonly heartbeat_at: unknown
  readonly now: unknown
}

const COMMANDS_KEPT_MS = 60_000
/** Names per locking read of a claim group (an `IN` list, padded to a power of two). */
const CLAIM_READ_AGENTS = 512

const isMissedTick = Schema.is(Messages.MissedTick)

/** A claim's outcome: the holder that refused it, or won (with the session recorded, unless that failed). */
interface Claimed {
  readonly holder: Option.Option<Registry.AgentConnection>
  readonly opened?: SessionOpened
}

const byAgent = (a: Registry.AgentConnection, b: Registry.AgentConnection) =>
  a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0

const sessionInfoOf = (c: Registry.AgentConnection): SessionInfo => ({
  agent: c.agent,
  sessionId: c.sessionId,
  ip: c.ip,
  connectedAt: c.connectedAt,
  ...(c.missedTick === undefined ? {} : { missedTick: c.missedTick }),
  ...(c.catchUpLimit === undefined ? {} : { catchUpLimit: c.catchUpLimit })
})

/** Internal: what the pause-sync layer needs from the cluster layer. */
class ClusterInternal extends Context.Tag("@barto/server/internal/Cluster")<ClusterInternal, {
  readonly options: ClusterOptions
}>() {}

const sqlFailure = (what: string) => (e: SqlError) => Effect.logWarning(`cluster: ${what}: ${e.message}`)

/**
 * `Registry`, `AgentSessions` and `Leader` for one instance among several on a shared database.
 * Needs the Store's own SqlClient (`Store.layerFromConfigWithClient`).
 */
export const layer = (
  options: ClusterOptions
): Layer.Layer<
  Registry.Registry | AgentSessions | Leader.Leader | ClusterInternal,
  SqlError,
  SqlClient.SqlClient | Store
> =>
  Layer.unwrapScoped(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const store = yield* Store
    const now = Fence.dbNowExpr(sql)
    const leaseMicros = Math.round(options.leaseMs * 1000)
    const me = options.instanceId
    const forUpdate = sql.onDialectOrElse({ mysql: () => " FOR UPDATE", orElse: () => "" })
    const mysql = sql.onDialectOrElse({ mysql: () => true, orElse: () => false })
    const local = Registry.make()
    const leader = yield* Layer.build(
      Leader.layerLease({ instanceId: me, leaseMs: options.leaseMs, renewMs: options.heartbeatMs })
    ).pipe(Effect.map((ctx) => Context.get(ctx, Leader.Leader)))

    // --- this instance's row ------------------------------------------------------------------
    const upsertInstance = sql.onDialectOrElse({
      mysql: () =>
        `INSERT INTO bartos_instances (instance_id, started_at, heartbeat_at) VALUES (?, ${now}, ${now})
         ON DUPLICATE KEY UPDATE started_at = VALUES(started_at), heartbeat_at = VALUES(heartbeat_at)`,
      orElse: () =>
        `INSERT INTO bartos_instances (instance_id, started_at, heartbeat_at) VALUES (?, ${now}, ${now})
         ON CONFLICT (instance_id) DO UPDATE SET started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`
    })
    // A live instance with our id is a configuration error: two instances would steal each
    // other's agents at every heartbeat.
    const twin = yield* sql.unsafe<{ age: unknown }>(
      `SELECT ${now} - heartbeat_at AS age FROM bartos_instances WHERE instance_id = ?`,
      [me]
    )
    if (twin[0] !== undefined && Number(twin[0].age) < leaseMicros) {
      yield* Effect.logWarning(
        `cluster: an instance named '${me}' renewed its heartbeat ${Math.round(Number(twin[0].age) / 1000)} ms ago: ` +
          "if it is another bartos and not this one restarting, give each instance its own [cluster] instance_id"
      )
    }
    yield* sql.unsafe(upsertInstance, [me])

    // --- claims ------------------------------------------------------------------------------
    /** The claims of `agents`, locked for the transaction. */
    const readClaims = (agents: ReadonlyArray<string>) => {
      const list = inList(agents)
      return sql.unsafe<ClaimRow & { readonly agent: string }>(
        `SELECT c.agent, c.outbox_id, c.session_id, c.instance_id, c.ip, c.since, i.heartbeat_at, ${now} AS now
         FROM agent_claims c LEFT JOIN bartos_instances i ON i.instance_id = c.instance_id
         WHERE c.agent IN ${list.text}${forUpdate}`,
        list.params
      )
    }
    /** `stale`: its instance stopped beating. */
    const isStale = (row: ClaimRow) =>
      row.heartbeat_at === null || Number(row.now) - Number(row.heartbeat_at) >= leaseMicros

    const upsertClaims = multiRow(
      "INSERT INTO agent_claims (agent, outbox_id, session_id, instance_id, ip, since)",
      6,
      sql.onDialectOrElse({
        mysql: () =>
          `ON DUPLICATE KEY UPDATE outbox_id = VALUES(outbox_id), session_id = VALUES(session_id),
           instance_id = VALUES(instance_id), ip = VALUES(ip), since = VALUES(since)`,
        orElse: () =>
          `ON CONFLICT (agent) DO UPDATE SET outbox_id = excluded.outbox_id, session_id = excluded.session_id,
           instance_id = excluded.instance_id, ip = excluded.ip, since = excluded.since`
      })
    )

    /**
     * Claims the names in the database, in order, as if one after the other: for each, the holder
     * when another live instance of the agent has it. One locking read for the whole group, the
     * decisions in memory (a name twice in the group: the later one sees the earlier one's claim,
     * which is this instance's), one upsert (`writeRows`) of the names won, in name order.
     */
    const claimMany = (
      cs: ReadonlyArray<Registry.AgentConnection>
    ): Effect.Effect<ReadonlyArray<Option.Option<Registry.AgentConnection>>, SqlError> =>
      Effect.gen(function*() {
        const held = new Map<string, ClaimRow>()
        for (const part of chunk([...new Set(cs.map((c) => c.agent))], CLAIM_READ_AGENTS)) {
          for (const row of yield* readClaims(part)) held.set(row.agent, row)
        }
        const won = new Map<string, Registry.AgentConnection>()
        const results = cs.map((c) => {
          const row = held.get(c.agent)
          if (row !== undefined && row.outbox_id !== c.outboxId && row.instance_id !== me && !isStale(row)) {
            return Option.some<Registry.AgentConnection>({
              agent: c.agent,
              sessionId: row.session_id,
              ip: row.ip,
              connectedAt: Messages.Micros.make(Number(row.since)),
              info: null,
              outboxId: row.outbox_id
            })
          }
          held.set(c.agent, {
            outbox_id: c.outboxId,
            session_id: c.sessionId,
            instance_id: me,
            ip: c.ip,
            since: c.connectedAt,
            heartbeat_at: null,
            now: null
          })
          won.set(c.agent, c)
          return Option.none<Registry.AgentConnection>()
        })
        yield* writeRows(
          { sql, mysql },
          upsertClaims,
          [...won.values()].sort(byAgent),
          (c) => [c.agent, c.outboxId, c.sessionId, me, c.ip.slice(0, 255), c.connectedAt]
        )
        return results
      })
    /**
     * `claimMany`, and in the same transaction what each hello that won its name writes and reads
     * next (`Store.sessionOpened`): its session rows and its acked offset. One transaction and one
     * commit per group of hellos instead of two, and no second wait for a group: in a reconnect
     * storm on MariaDB the statements' round trips and socket writes were most of what a hello
     * cost beyond SQLite's (issue 18). The rows are written in name order, as the claims are
     * locked, so two instances' groups take their row locks in one order.
     */
    const claimAndOpenMany = (
      cs: ReadonlyArray<Registry.AgentConnection>
    ): Effect.Effect<ReadonlyArray<Claimed>, SqlError | StoreError> =>
      Effect.gen(function*() {
        const holders = yield* claimMany(cs)
        const won = cs.filter((_, i) => Option.isNone(holders[i]!)).sort(byAgent)
        yield* store.sessionsStarted(won.map(sessionInfoOf))
        const acked = yield* store.ackedUpToMany(won.map((c) => ({ agent: c.agent, outboxId: c.outboxId })))
        const offsets = new Map<Registry.AgentConnection, number>()
        won.forEach((c, i) => offsets.set(c, acked[i]!))
        return cs.map((c, i): Claimed => {
          const holder = holders[i]!
          if (Option.isSome(holder)) return { holder }
          return { holder, opened: { started: Either.right(undefined), acked: Either.right(offsets.get(c)!) } }
        })
      })
    // Claims are group-committed (a reconnect storm writes hundreds per transaction). A group
    // whose session rows cannot be written (or that deadlocks on them) still claims its names in a
    // transaction of its own; those hellos then record their sessions through the Store as on one
    // bartos, which reports the error.
    const claimGrouped = yield* grouped((cs: ReadonlyArray<Registry.AgentConnection>) =>
      sql.withTransaction(claimAndOpenMany(cs)).pipe(
        Effect.catchAll(() =>
          sql.withTransaction(claimMany(cs)).pipe(
            Effect.map((holders) => holders.map((holder): Claimed => ({ holder })))
          )
        )
      )
    )
    // Two instances inserting the first claim of a name at once: one gets a duplicate key (or a
    // deadlock, and its group is retried claim by claim); the retry reads the winner's row.
    const claim = (c: Registry.AgentConnection) => claimGrouped(c).pipe(Effect.retry({ times: 2 }))

    // A mass disconnect releases thousands of claims at once: one DELETE per group, not per session.
    const releaseMany = (ends: ReadonlyArray<{ readonly agent: string; readonly sessionId: string }>) =>
      Effect.forEach(chunk(ends, MAX_TEXT_ROWS), (part) => {
        const pairs = mysql
          ? `(${part.map(() => "(?, ?)").join(", ")})`
          : `(VALUES ${part.map(() => "(?, ?)").join(", ")})`
        return sql.unsafe(
          `DELETE FROM agent_claims WHERE instance_id = ? AND (agent, session_id) IN ${pairs}`,
          [me, ...part.flatMap((e) => [e.agent, e.sessionId])]
        ).unprepared
      }, { discard: true }).pipe(Effect.as(ends.map(() => undefined)))
    const releaseGrouped = yield* grouped(releaseMany)
    const release = (agent: string, sessionId: string) => releaseGrouped({ agent, sessionId })

    const sessions: AgentSessionsShape = {
      ...local.sessions,
      register: (handle) =>
        Effect.gen(function*() {
          const registration = yield* local.sessions.register(handle)
          if (registration._tag === "Refused") return registration
          const claimed = yield* claim(handle.connection).pipe(
            // The database is unreachable: the agent is served here; the heartbeat claims it
            // again once the database answers (and closes it if another instance won meanwhile).
            Effect.catchAll((e) =>
              Effect.as(
                Effect.logError(`cluster: cannot claim '${handle.connection.agent}': ${e.message}`),
                { holder: Option.none() } as Claimed
              )
            )
          )
          if (Option.isNone(claimed.holder)) {
            return claimed.opened === undefined ? registration : { ...registration, opened: claimed.opened }
          }
          yield* local.sessions.unregister(handle.connection.agent, handle.connection.sessionId)
          return { _tag: "Refused", holder: claimed.holder.value } satisfies Registration
        }),
      unregister: (agent, sessionId) =>
        Effect.gen(function*() {
          const removed = yield* local.sessions.unregister(agent, sessionId)
          if (removed) yield* release(agent, sessionId).pipe(Effect.catchAll(sqlFailure(`cannot release '${agent}'`)))
          return removed
        }),
      isConnected: (agent) =>
        Effect.gen(function*() {
          if (yield* local.sessions.isConnected(agent)) return true
          const rows = yield* sql.unsafe<{ n: unknown }>(
            `SELECT COUNT(*) AS n FROM agent_claims c JOIN bartos_instances i ON i.instance_id = c.instance_id
             WHERE c.agent = ? AND i.heartbeat_at > ${now} - ?`,
            [agent, leaseMicros]
          )
          return Number(rows[0]?.n ?? 0) > 0
        }).pipe(
          // Unknown: say connected, so that nothing is marked lost on a guess.
          Effect.catchAll((e) => Effect.as(sqlFailure("cannot read the claims")(e), true))
        ),
      whenLeader: (effect) => leader.ifLeader(effect)
    }

    // --- commands ----------------------------------------------------------------------------
    const pollMs = options.commandPollMs ?? 100

    /** Leaves `command` for `target` and waits for its answer; undefined on timeout. */
    const ask = (target: string, command: Command) =>
      Effect.gen(function*() {
        const id = randomUUID()
        const body = Schema.encodeSync(CommandJson)(command)
        yield* sql.unsafe(
          `INSERT INTO instance_commands (id, target, created_at, body, state) VALUES (?, ?, ${now}, ?, 'pending')`,
          [id, target, body]
        )
        const deadline = (yield* Clock.currentTimeMillis) + options.commandTimeoutMs
        while ((yield* Clock.currentTimeMillis) < deadline) {
          yield* Effect.sleep(pollMs)
          const rows = yield* sql.unsafe<{ state: string; result: string | null }>(
            `SELECT state, result FROM instance_commands WHERE id = ?`,
            [id]
          )
          const row = rows[0]
          if (row?.state === "done" && row.result !== null) {
            return Schema.decodeUnknownSync(ResultJson)(row.result).delivered
          }
        }
        // Withdrawn, so that an owner coming back late does not act on a stale request.
        yield* sql.unsafe(`UPDATE instance_commands SET state = 'expired' WHERE id = ? AND state = 'pending'`, [id])
        yield* Effect.logWarning(`cluster: instance '${target}' did not answer within ${options.commandTimeoutMs} ms`)
        return undefined
      })

    const execute = (command: Command): Effect.Effect<number> =>
      command._tag === "Send"
        ? Effect.map(local.registry.send(command.agent, command.message), (sent) => (sent ? 1 : 0))
        : local.registry.broadcast(command.message)

    /** Claims and answers the commands addressed to this instance. */
    const serveCommands = Effect.gen(function*() {
      const rows = yield* sql.unsafe<{ id: string; body: string }>(
        `SELECT id, body FROM instance_commands WHERE target = ? AND state = 'pending' ORDER BY created_at`,
        [me]
      )
      for (const row of rows) {
        const taken = yield* Effect.map(
          sql.unsafe(`UPDATE instance_commands SET state = 'claimed' WHERE id = ? AND state = 'pending'`, [row.id]).raw,
          affectedRows
        )
        if (taken !== 1) continue
        const decoded = Schema.decodeUnknownEither(CommandJson)(row.body)
        const delivered = decoded._tag === "Right" ? yield* execute(decoded.right) : 0
        if (decoded._tag === "Left") yield* Effect.logWarning(`cluster: undecodable command ${row.id} ignored`)
        yield* sql.unsafe(`UPDATE instance_commands SET state = 'done', result = ? WHERE id = ?`, [
          Schema.encodeSync(ResultJson)({ delivered }),
          row.id
        ])
      }
    })

    /** Live instances other than this one, and the agents they hold. */
    const liveClaims = sql.unsafe<
      {
        agent: string
        session_id: string
        instance_id: string
        ip: string
        since: unknown
        os_name: string | null
        hostname: string | null
        os_version: string | null
        kernel: string | null
        agent_version: string | null
        missed_tick: string | null
        catch_up_limit: unknown
      }
    >(
      // The missed-tick settings come from `agents`: the holder wrote its session's there at the hello.
      `SELECT c.agent, c.session_id, c.instance_id, c.ip, c.since,
         s.os_name, s.hostname, s.os_version, s.kernel, s.agent_version, a.missed_tick, a.catch_up_limit
       FROM agent_claims c
       JOIN bartos_instances i ON i.instance_id = c.instance_id
       LEFT JOIN agent_sessions s ON s.session_id = c.session_id
       LEFT JOIN agents a ON a.name = c.agent
       WHERE c.instance_id <> ? AND i.heartbeat_at > ${now} - ?`,
      [me, leaseMicros]
    )

    const ownerOf = (agent: string) =>
      Effect.map(
        sql.unsafe<{ instance_id: string }>(
          `SELECT c.instance_id FROM agent_claims c JOIN bartos_instances i ON i.instance_id = c.instance_id
           WHERE c.agent = ? AND c.instance_id <> ? AND i.heartbeat_at > ${now} - ?`,
          [agent, me, leaseMicros]
        ),
        (rows) => rows[0]?.instance_id
      )

    const registry: Registry.RegistryShape = {
      list: Effect.gen(function*() {
        const here = yield* local.registry.list
        const seen = new Set(here.map((c) => c.name))
        const remote = yield* liveClaims.pipe(
          Effect.catchAll((e) => Effect.as(sqlFailure("cannot list the other instances' agents")(e), []))
        )
        const rows = [...here]
        for (const r of remote) {
          if (seen.has(r.agent)) continue
          rows.push(
            new Messages.ClientRow({
              name: r.agent,
              ip: r.ip,
              sessionId: r.session_id,
              connectedAt: Messages.Micros.make(Number(r.since)),
              info: r.os_name === null ? null : new Messages.ClientInfo({
                osName: r.os_name,
                hostname: r.hostname ?? "",
                osVersion: r.os_version ?? "",
                kernel: r.kernel ?? "",
                agentVersion: r.agent_version ?? ""
              }),
              ...(isMissedTick(r.missed_tick) ? { missedTick: r.missed_tick } : {}),
              ...(r.catch_up_limit === null ? {} : { catchUpLimit: Number(r.catch_up_limit) })
            })
          )
        }
        return rows.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      }),
      get: (agent) =>
        Effect.flatMap(local.registry.get(agent), (found) =>
          Option.isSome(found) ? Effect.succeed(found) : Effect.map(
            liveClaims.pipe(Effect.orElseSucceed(() => [])),
            (rows) =>
              Option.map(Option.fromNullable(rows.find((r) => r.agent === agent)), (r): Registry.AgentConnection => ({
                agent: r.agent,
                sessionId: r.session_id,
                ip: r.ip,
                connectedAt: Messages.Micros.make(Number(r.since)),
                info: null,
                outboxId: ""
              }))
          )),
      send: (agent, message) =>
        Effect.gen(function*() {
          if (yield* local.sessions.isConnected(agent)) return yield* local.registry.send(agent, message)
          const owner = yield* ownerOf(agent)
          if (owner === undefined) return false
          return ((yield* ask(owner, { _tag: "Send", agent, message })) ?? 0) > 0
        }).pipe(
          Effect.catchAll((e) => Effect.as(sqlFailure(`cannot reach '${agent}' through its instance`)(e), false))
        ),
      broadcast: (message) =>
        Effect.gen(function*() {
          const here = yield* local.registry.broadcast(message)
          const others = yield* sql.unsafe<{ instance_id: string }>(
            `SELECT instance_id FROM bartos_instances WHERE instance_id <> ? AND heartbeat_at > ${now} - ?`,
            [me, leaseMicros]
          )
          const counts = yield* Effect.forEach(
            others,
            (o) => ask(o.instance_id, { _tag: "Broadcast", message }),
            { concurrency: "unbounded" }
          )
          return here + counts.reduce((n: number, c) => n + (c ?? 0), 0)
        }).pipe(Effect.catchAll((e) => Effect.as(sqlFailure("cannot broadcast to the other instances")(e), 0)))
    }

    // --- heartbeat: renew, and reconcile local sessions with their claims --------------------
    const reconcile = Effect.gen(function*() {
      const handles = yield* local.sessions.handles
      const mine = yield* sql.unsafe<{ agent: string; session_id: string }>(
        `SELECT agent, session_id FROM agent_claims WHERE instance_id = ?`,
        [me]
      )
      const held = new Map(mine.map((r) => [r.agent, r.session_id]))
      const nowMs = yield* Clock.currentTimeMillis
      for (const h of handles) {
        const c = h.connection
        if (held.get(c.agent) === c.sessionId) continue
        // Sessions younger than a beat may be claiming right now.
        if (nowMs - c.connectedAt / 1000 < options.heartbeatMs) continue
        const row = (yield* readClaims([c.agent]))[0]
        // Claimed after `mine` was read (a claim slower than a beat, in a storm): it is ours.
        if (row !== undefined && row.instance_id === me && row.session_id === c.sessionId) continue
        // Ended since `handles` was read: nothing to claim for it (it released its claim).
        const current = yield* local.registry.get(c.agent)
        if (Option.isNone(current) || current.value.sessionId !== c.sessionId) continue
        // Never claimed (the database failed at its hello): claimed now; its session was recorded
        // at its hello, so the claim alone, not `claim`.
        if (row === undefined) {
          const holder = (yield* sql.withTransaction(claimMany([c])))[0]!
          if (Option.isNone(holder)) {
            // It may have ended while claiming: then the claim it just got is released again.
            const still = yield* local.registry.get(c.agent)
            if (Option.isNone(still) || still.value.sessionId !== c.sessionId) yield* release(c.agent, c.sessionId)
            continue
          }
        }
        // Taken by a newer connection (same agent, another instance) or, while the database was
        // unreachable, by another agent instance: this session gives way.
        yield* Effect.logInfo(`cluster: '${c.agent}' is now held by another connection; closing this session`)
        yield* h.close(4001, "replaced by a newer connection on another bartos")
      }
    })

    const beat = Effect.gen(function*() {
      yield* sql.unsafe(`UPDATE bartos_instances SET heartbeat_at = ${now} WHERE instance_id = ?`, [me])
      yield* reconcile
    }).pipe(Effect.catchAll(sqlFailure("heartbeat failed")))

    // --- the leader's sweep ------------------------------------------------------------------
    const livenessMicros = Math.round(options.livenessMs * 1000)
    let divergentBeats = 0
    const sweep = Effect.gen(function*() {
      // Claims of dead instances: forgotten once the agent had its liveness to come back
      // elsewhere (a reconnect replaces the claim, so it is no longer stale), and the agent's
      // last sight is the dead instance's last heartbeat.
      const stale = yield* sql.unsafe<{ agent: string; session_id: string; heartbeat_at: unknown }>(
        `SELECT c.agent, c.session_id, COALESCE(i.heartbeat_at, c.since) AS heartbeat_at
         FROM agent_claims c LEFT JOIN bartos_instances i ON i.instance_id = c.instance_id
         WHERE i.heartbeat_at IS NULL OR i.heartbeat_at < ${now} - ?`,
        [Math.max(leaseMicros, livenessMicros)]
      )
      for (const s of stale) {
        yield* sql.unsafe(`UPDATE agents SET last_seen_at = ? WHERE name = ? AND last_seen_at < ?`, [
          Number(s.heartbeat_at),
          s.agent,
          Number(s.heartbeat_at)
        ])
        yield* sql.unsafe(
          `UPDATE agent_sessions SET disconnected_at = ? WHERE session_id = ? AND disconnected_at IS NULL`,
          [
            Number(s.heartbeat_at),
            s.session_id
          ]
        )
        yield* sql.unsafe(`DELETE FROM agent_claims WHERE agent = ? AND session_id = ?`, [s.agent, s.session_id])
        yield* Effect.logInfo(`cluster: '${s.agent}' was held by a dead instance and did not come back`)
      }
      // Running runs of agents held nowhere, gone for longer than the liveness: lost.
      const orphans = yield* sql.unsafe<{ agent: string; now: unknown }>(
        `SELECT a.name AS agent, ${now} AS now FROM agents a
         WHERE a.name IN (SELECT DISTINCT r.agent FROM runs r WHERE r.state = 'running')
           AND NOT EXISTS (SELECT 1 FROM agent_claims c WHERE c.agent = a.name)
           AND a.last_seen_at < ${now} - ?`,
        [livenessMicros]
      )
      for (const o of orphans) {
        // Held nowhere for longer than the liveness: every run it still has running is lost (a
        // RunFinished arriving later still moves a lost run to its final state).
        const lost = yield* store.markLost(o.agent, Messages.Micros.make(Number(o.now)))
        if (lost > 0) yield* Effect.logWarning(`agent '${o.agent}' did not come back: ${lost} running runs marked lost`)
      }
      // Every instance should serve the same table (same file, converging on reload).
      const versions = yield* sql.unsafe<{ v: string | null }>(
        `SELECT DISTINCT table_version AS v FROM bartos_instances WHERE heartbeat_at > ${now} - ?`,
        [leaseMicros]
      )
      divergentBeats = versions.length > 1 ? divergentBeats + 1 : 0
      if (divergentBeats === 5) {
        yield* Effect.logWarning(
          "cluster: the instances serve different schedule tables: deploy the same [schedules] to every bartos and reload them"
        )
      }
      yield* sql.unsafe(`DELETE FROM instance_commands WHERE created_at < ${now} - ?`, [COMMANDS_KEPT_MS * 1000])
    }).pipe(
      Effect.catchAll((e) => Effect.logWarning(`cluster: leader sweep failed: ${e.message}`))
    )

    // A stopping instance says so at once: its agents may claim their names elsewhere without
    // waiting for the lease (they reconnect within their backoff). Added before the loops are
    // forked, so it runs after they stop and no heartbeat in flight undoes it.
    yield* Effect.addFinalizer(() =>
      sql.unsafe(`UPDATE bartos_instances SET heartbeat_at = 0 WHERE instance_id = ?`, [me]).pipe(Effect.ignore)
    )
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(options.heartbeatMs), beat)))
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(
      Effect.sleep(pollMs),
      serveCommands.pipe(Effect.catchAll(sqlFailure("cannot serve commands")))
    )))
    yield* Effect.forkScoped(leader.whileLeader(
      "cluster sweep",
      Effect.forever(Effect.zipRight(Effect.sleep(options.heartbeatMs), sweep))
    ))

    return Layer.succeedContext(
      Context.make(Registry.Registry, registry).pipe(
        Context.add(AgentSessions, sessions),
        Context.add(Leader.Leader, leader),
        Context.add(ClusterInternal, { options })
      )
    )
  }))

const affectedRows = (result: unknown): number => {
  const r = result as { affectedRows?: number; changes?: number } | ReadonlyArray<unknown>
  if (Array.isArray(r)) return r.length
  const o = r as { affectedRows?: number; changes?: number }
  return o.affectedRows ?? o.changes ?? 0
}

/**
 * The per-heartbeat work that needs the schedule table: re-read the pause flags (set by any
 * instance) and publish this instance's table version for the leader's convergence check.
 */
export const layerTableSync: Layer.Layer<never, never, ClusterInternal | Schedules | SqlClient.SqlClient> = Layer
  .scopedDiscard(Effect.gen(function*() {
    const { options } = yield* ClusterInternal
    const schedules = yield* Schedules
    const sql = yield* SqlClient.SqlClient
    const sync = Effect.gen(function*() {
      yield* schedules.refreshPaused
      const table = yield* schedules.all
      const hash = createHash("sha256")
      for (const agent of [...table.keys()].sort()) {
        hash.update(
          `${agent}\u0000${
            ScheduleTable.version(table.get(agent)!.map((s) => new Messages.ScheduleSpec({ ...s, paused: false })))
          }\u0000`
        )
      }
      const version = hash.digest("hex").slice(0, 32)
      yield* sql.unsafe(`UPDATE bartos_instances SET table_version = ? WHERE instance_id = ?`, [
        version,
        options.instanceId
      ])
    }).pipe(Effect.catchAll((e) => Effect.logWarning(`cluster: schedule sync failed: ${e.message}`)))
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(options.heartbeatMs), sync)))
  }))
