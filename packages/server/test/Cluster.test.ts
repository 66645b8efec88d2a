/**
 * Several bartos on one MariaDB (issue 18): two instances in one process, each with its own
 * pool on the same fresh database, as two bartos would be. The cluster is MariaDB-only: these run
 * when `databases` has MariaDB (as every store suite; CI requires it, a dev machine without it is
 * warned loudly); the SQLite single-instance lock is here too.
 */
import * as Messages from "@barto/domain/Messages"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import { randomUUID } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Cluster from "../src/Cluster.js"
import { AgentSessions, type WorkerHandle } from "../src/internal/agentSessions.js"
import { StoreError } from "../src/internal/store/errors.js"
import * as Fence from "../src/internal/store/fence.js"
import * as Leader from "../src/Leader.js"
import { Registry } from "../src/Registry.js"
import { layerMariadbWithClient, layerSqlite, Store } from "../src/Store.js"
import { databases, mariadbDatabase } from "./utils/databases.js"

const HEARTBEAT_MS = 200
const LEASE_MS = 1000

type Db = Effect.Effect.Success<ReturnType<typeof mariadbDatabase>>

/**
 * One instance: its own pool and Store on the shared database, plus the cluster layer; `storeAs`
 * changes what the cluster layer sees of the Store (a failing method).
 */
const instance = (
  db: Db,
  instanceId: string,
  scope: Scope.Scope,
  storeAs: (store: Store["Type"]) => Store["Type"] = (store) => store
) =>
  Layer.buildWithScope(
    Cluster.layer({
      instanceId,
      leaseMs: LEASE_MS,
      heartbeatMs: HEARTBEAT_MS,
      commandTimeoutMs: 2000,
      livenessMs: 500,
      commandPollMs: 50
    }).pipe(
      Layer.provideMerge(Layer.effect(Store, Effect.map(Store, storeAs))),
      Layer.provideMerge(layerMariadbWithClient(db))
    ),
    scope
  )

interface Fake {
  readonly handle: WorkerHandle
  readonly sent: Array<Messages.ServerMessage>
  readonly closes: Array<number>
}

const fake = (agent: string, outboxId: string, ageMs = 0): Fake => {
  const sent: Array<Messages.ServerMessage> = []
  const closes: Array<number> = []
  return {
    sent,
    closes,
    handle: {
      connection: {
        agent,
        sessionId: randomUUID(),
        ip: "127.0.0.1",
        connectedAt: Messages.Micros.make((Date.now() - ageMs) * 1000),
        info: null,
        outboxId
      },
      send: (message) => Effect.sync(() => (sent.push(message), true)),
      close: (code) => Effect.sync(() => void closes.push(code)),
      syncTable: Effect.void
    }
  }
}

const waitUntil = (what: string, check: Effect.Effect<boolean>, timeoutMs = 5000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (!(yield* check)) {
      if (Date.now() > deadline) return yield* Effect.dieMessage(`timed out waiting for ${what}`)
      yield* Effect.sleep(25)
    }
  })

const newScope = Effect.acquireRelease(Scope.make(), (s) => Scope.close(s, Exit.void))

const onMariadb = databases.some((d) => d.name === "mariadb")

describe.runIf(onMariadb)("Cluster on MariaDB", () => {
  it.live(
    "one agent per name across instances; the same agent instance moves; the fleet is listed anywhere",
    () =>
      Effect.gen(function*() {
        const db = yield* mariadbDatabase("barto_cluster")
        const a = yield* instance(db, "A", yield* newScope)
        const b = yield* instance(db, "B", yield* newScope)
        const sessionsA = Context.get(a, AgentSessions)
        const sessionsB = Context.get(b, AgentSessions)

        const first = fake("web1", "outbox-1", 10 * HEARTBEAT_MS)
        assert.strictEqual((yield* sessionsA.register(first.handle))._tag, "Registered")
        // Another agent instance (another outbox id) under the live name: refused, naming the holder.
        const intruder = fake("web1", "outbox-2")
        const refused = yield* sessionsB.register(intruder.handle)
        assert.strictEqual(refused._tag, "Refused")
        if (refused._tag === "Refused") assert.strictEqual(refused.holder.sessionId, first.handle.connection.sessionId)
        assert.isFalse(yield* Effect.map(sessionsB.handles, (hs) => hs.length > 0))

        // B lists the agent A holds; both say it is connected.
        const listed = yield* Context.get(b, Registry).list
        assert.deepStrictEqual(listed.map((c) => [c.name, c.sessionId]), [["web1", first.handle.connection.sessionId]])
        assert.isTrue(yield* sessionsB.isConnected("web1"))

        // An action taken on B for the agent on A reaches A's socket.
        const runNow: Messages.ServerMessage = {
          _tag: "RunNow",
          requestId: randomUUID(),
          schedule: "s",
          runId: Messages.RunId.make(randomUUID())
        }
        assert.isTrue(yield* Context.get(b, Registry).send("web1", runNow))
        assert.deepStrictEqual(first.sent, [runNow])
        // A broadcast from B counts A's agent.
        assert.strictEqual(
          yield* Context.get(b, Registry).broadcast({ _tag: "AgentCleanup", before: Messages.Micros.make(1) }),
          1
        )

        // The same agent instance reconnecting to B takes its name over; A closes its session (4001).
        const moved = fake("web1", "outbox-1")
        assert.strictEqual((yield* sessionsB.register(moved.handle))._tag, "Registered")
        yield* waitUntil("A to close its replaced session", Effect.sync(() => first.closes.includes(4001)))
        const sql = Context.get(b, SqlClient.SqlClient)
        const claims = yield* sql.unsafe<{ instance_id: string; session_id: string }>(
          "SELECT instance_id, session_id FROM agent_claims WHERE agent = 'web1'"
        )
        assert.deepStrictEqual(claims.map((c) => [c.instance_id, c.session_id]), [[
          "B",
          moved.handle.connection.sessionId
        ]])
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "a stopped instance's agents are freed and the leader, now the other one, marks their runs lost",
    () =>
      Effect.gen(function*() {
        const db = yield* mariadbDatabase("barto_cluster")
        const scopeA = yield* newScope
        const a = yield* instance(db, "A", scopeA)
        const b = yield* instance(db, "B", yield* newScope)
        const sql = Context.get(b, SqlClient.SqlClient)
        const store = Context.get(b, Store)
        assert.isTrue(yield* Context.get(a, Leader.Leader).isLeader, "the first instance leads")
        assert.isFalse(yield* Context.get(b, Leader.Leader).isLeader)
        yield* Context.get(a, AgentSessions).register(fake("db1", "outbox-1").handle)
        const now = Date.now() * 1000
        yield* store.sessionStarted({
          agent: "db1",
          sessionId: "s-1",
          ip: "127.0.0.1",
          connectedAt: Messages.Micros.make(now)
        })
        yield* store.ingest("db1", "outbox-1", [{
          _tag: "RunStarted",
          seq: 0,
          runId: Messages.RunId.make("0190a0a0-0000-7000-8000-000000000001"),
          schedule: "s",
          trigger: "schedule",
          scheduledAt: Messages.Micros.make(now),
          startedAt: Messages.Micros.make(now)
        }])
        // A goes away without its sessions ending (its sockets are gone with it).
        yield* Scope.close(scopeA, Exit.void)
        const started = Date.now()
        yield* waitUntil("B to lead", Context.get(b, Leader.Leader).isLeader, LEASE_MS + 2 * HEARTBEAT_MS + 1000)
        // A released its lease on the way out: B took over at its next renewal.
        assert.isBelow(Date.now() - started, LEASE_MS + 2 * HEARTBEAT_MS)
        yield* waitUntil(
          "the run to be marked lost",
          Effect.map(
            store.getRun("0190a0a0-0000-7000-8000-000000000001"),
            (r) => Option.isSome(r) && r.value.state === "lost"
          )
            .pipe(Effect.orDie),
          10_000
        )
        const claims = yield* sql.unsafe("SELECT agent FROM agent_claims")
        assert.deepStrictEqual(claims, [])
        assert.isFalse(yield* Context.get(b, AgentSessions).isConnected("db1"))
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "a storm of claims in groups: per name exactly one agent instance wins, across instances and within one",
    () =>
      Effect.gen(function*() {
        const db = yield* mariadbDatabase("barto_cluster")
        const a = yield* instance(db, "A", yield* newScope)
        const b = yield* instance(db, "B", yield* newScope)
        const names = Array.from({ length: 200 }, (_, i) => `storm-${i}`)
        // Every name by two agent instances on A (one group, refused locally) and a third on B.
        const contenders = names.flatMap((n) => [
          { on: "A", fake: fake(n, `${n}-a1`) },
          { on: "A", fake: fake(n, `${n}-a2`) },
          { on: "B", fake: fake(n, `${n}-b`) }
        ])
        const outcomes = yield* Effect.forEach(
          contenders,
          (c) => Context.get(c.on === "A" ? a : b, AgentSessions).register(c.fake.handle),
          { concurrency: "unbounded" }
        )
        const sql = Context.get(a, SqlClient.SqlClient)
        const claims = yield* sql.unsafe<{ agent: string; session_id: string; instance_id: string }>(
          "SELECT agent, session_id, instance_id FROM agent_claims"
        )
        const claimed = new Map(claims.map((c) => [c.agent, c]))
        for (const n of names) {
          const winners = contenders.filter((c, i) =>
            c.fake.handle.connection.agent === n && outcomes[i]!._tag === "Registered"
          )
          assert.strictEqual(winners.length, 1, `one winner for ${n}`)
          const w = winners[0]!
          assert.deepStrictEqual(
            [claimed.get(n)?.instance_id, claimed.get(n)?.session_id],
            [w.on, w.fake.handle.connection.sessionId],
            `the claim of ${n} is its winner's`
          )
          const live = yield* Context.get(w.on === "A" ? a : b, AgentSessions).handles
          assert.isTrue(live.some((h) => h.connection.sessionId === w.fake.handle.connection.sessionId))
        }
        // The losers hold nothing anywhere.
        const held = [
          ...(yield* Context.get(a, AgentSessions).handles),
          ...(yield* Context.get(b, AgentSessions).handles)
        ]
        assert.strictEqual(held.length, names.length)
        // The winners' sessions were recorded by their claims' transactions, the losers' never.
        const winnerSessions = contenders.filter((_, i) => outcomes[i]!._tag === "Registered")
          .map((c) => c.fake.handle.connection.sessionId).sort()
        const sessionRows = yield* sql.unsafe<{ session_id: string }>(
          "SELECT session_id FROM agent_sessions ORDER BY session_id"
        )
        assert.deepStrictEqual(sessionRows.map((r) => r.session_id), winnerSessions)
        for (const o of outcomes) {
          if (o._tag === "Registered") assert.deepStrictEqual(o.opened?.acked, Either.right(-1))
        }
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "a mass disconnect releases every claim of its sessions, and only those",
    () =>
      Effect.gen(function*() {
        const db = yield* mariadbDatabase("barto_cluster")
        const a = yield* instance(db, "A", yield* newScope)
        const sessions = Context.get(a, AgentSessions)
        const sql = Context.get(a, SqlClient.SqlClient)
        // More than one statement's worth (MAX_TEXT_ROWS); older than a beat when they register,
        // so the heartbeat's reconcile looks at them while their claims are still being written.
        const fakes = Array.from({ length: 700 }, (_, i) => fake(`cut-${i}`, `cut-${i}-outbox`, 10 * HEARTBEAT_MS))
        yield* Effect.forEach(fakes, (f) => sessions.register(f.handle), { concurrency: "unbounded", discard: true })
        // No session gives way to its own claim, however late the heartbeat saw it.
        yield* Effect.sleep(3 * HEARTBEAT_MS)
        assert.deepStrictEqual(fakes.flatMap((f) => f.closes), [])
        // cut-7's claim moved to a newer session meanwhile.
        yield* sql.unsafe("UPDATE agent_claims SET session_id = 'newer' WHERE agent = 'cut-7'")
        const removed = yield* Effect.forEach(
          fakes,
          (f) => sessions.unregister(f.handle.connection.agent, f.handle.connection.sessionId),
          { concurrency: "unbounded" }
        )
        assert.isTrue(removed.every((r) => r))
        const left = yield* sql.unsafe<{ agent: string; session_id: string }>(
          "SELECT agent, session_id FROM agent_claims"
        )
        assert.deepStrictEqual(left.map((c) => [c.agent, c.session_id]), [["cut-7", "newer"]])
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "a claim records the session and reads the acked offset in its transaction; without the session rows it still claims",
    () =>
      Effect.gen(function*() {
        const db = yield* mariadbDatabase("barto_cluster")
        const a = yield* instance(db, "A", yield* newScope)
        const sql = Context.get(a, SqlClient.SqlClient)
        yield* sql.unsafe("INSERT INTO agent_offsets (agent, outbox_id, last_seq) VALUES ('web9', 'ob-9', 41)")
        const web9 = fake("web9", "ob-9")
        const withTick: Fake = {
          ...web9,
          handle: { ...web9.handle, connection: { ...web9.handle.connection, missedTick: "Skip", catchUpLimit: 3 } }
        }
        const registered = yield* Context.get(a, AgentSessions).register(withTick.handle)
        assert.strictEqual(registered._tag, "Registered")
        if (registered._tag === "Registered") {
          assert.deepStrictEqual(registered.opened, { started: Either.right(undefined), acked: Either.right(41) })
        }
        const rows = yield* sql.unsafe<{ session_id: string; missed_tick: string; catch_up_limit: number }>(
          `SELECT s.session_id, a.missed_tick, a.catch_up_limit FROM agent_sessions s JOIN agents a ON a.name = s.agent
           WHERE s.agent = 'web9'`
        )
        assert.deepStrictEqual(
          rows.map((r) => [r.session_id, r.missed_tick, Number(r.catch_up_limit)]),
          [[web9.handle.connection.sessionId, "Skip", 3]]
        )

        // An instance whose session rows cannot be written: the name is still claimed, and the
        // hello is told to record its session through the Store (no `opened`).
        const broken = yield* instance(db, "B", yield* newScope, (store) => ({
          ...store,
          sessionsStarted: () => Effect.fail(new StoreError({ message: "disk full" }))
        }))
        const db2 = fake("db2", "ob-2")
        const fallback = yield* Context.get(broken, AgentSessions).register(db2.handle)
        assert.strictEqual(fallback._tag, "Registered")
        if (fallback._tag === "Registered") assert.isUndefined(fallback.opened)
        const claim = yield* sql.unsafe<{ session_id: string; instance_id: string }>(
          "SELECT session_id, instance_id FROM agent_claims WHERE agent = 'db2'"
        )
        assert.deepStrictEqual(claim.map((c) => [c.session_id, c.instance_id]), [[
          db2.handle.connection.sessionId,
          "B"
        ]])
        assert.deepStrictEqual(yield* sql.unsafe("SELECT session_id FROM agent_sessions WHERE agent = 'db2'"), [])
      }).pipe(Effect.scoped),
    30_000
  )
})

describe.runIf(onMariadb)("Leader lease on MariaDB", () => {
  it.live("takeover only after expiry; a stale leader's fenced writes are refused", () =>
    Effect.gen(function*() {
      const db = yield* mariadbDatabase("barto_cluster")
      const ctx = yield* Layer.build(layerMariadbWithClient(db))
      const sql = Context.get(ctx, SqlClient.SqlClient)
      const store = Context.get(ctx, Store)
      const first = yield* Leader.tryAcquire(sql, { instanceId: "A", leaseMs: 400 })
      assert.isTrue(Option.isSome(first))
      assert.isTrue(Option.isNone(yield* Leader.tryAcquire(sql, { instanceId: "B", leaseMs: 400 })), "A's lease holds")
      // A renews: same term.
      const renewed = yield* Leader.tryAcquire(sql, { instanceId: "A", leaseMs: 400 })
      assert.strictEqual(Option.getOrThrow(renewed).token, Option.getOrThrow(first).token)
      yield* Effect.sleep(600)
      const second = yield* Leader.tryAcquire(sql, { instanceId: "B", leaseMs: 10_000 })
      assert.isTrue(Option.isSome(second), "B takes the expired lease")
      assert.strictEqual(Option.getOrThrow(second).token, Option.getOrThrow(first).token + 1)
      // A wakes up believing it leads: its fenced write is refused, B's goes through.
      const stale = yield* store.markLost("x", Messages.Micros.make(1)).pipe(
        Effect.locally(Fence.currentFence, Option.getOrThrow(first)),
        Effect.flip
      )
      assert.include(stale.message, "stale leader lease")
      assert.strictEqual(
        yield* store.markLost("x", Messages.Micros.make(1)).pipe(
          Effect.locally(Fence.currentFence, Option.getOrThrow(second))
        ),
        0
      )
    }).pipe(Effect.scoped), 30_000)

  it.live(
    "whileLeader runs the work on exactly one instance and moves it when the leader stops",
    () =>
      Effect.gen(function*() {
        const db = yield* mariadbDatabase("barto_cluster")
        const ctx = yield* Layer.build(layerMariadbWithClient(db))
        const running = yield* Ref.make<ReadonlyArray<string>>([])
        const lease = (id: string, scope: Scope.Scope) =>
          Layer.buildWithScope(Leader.layerLease({ instanceId: id, leaseMs: 600, renewMs: 100 }), scope).pipe(
            Effect.provide(ctx),
            Effect.map((c) => Context.get(c, Leader.Leader)),
            Effect.tap((leader) =>
              Effect.forkIn(
                leader.whileLeader(
                  "test work",
                  Effect.acquireRelease(
                    Ref.update(running, (r) => [...r, id]),
                    () => Ref.update(running, (r) => r.filter((x) => x !== id))
                  ).pipe(
                    Effect.zipRight(Effect.never),
                    Effect.scoped
                  )
                ),
                scope
              )
            )
          )
        const scopeA = yield* newScope
        yield* lease("A", scopeA)
        yield* lease("B", yield* newScope)
        yield* waitUntil("someone to lead", Effect.map(Ref.get(running), (r) => r.length > 0))
        yield* Effect.sleep(300)
        assert.deepStrictEqual(yield* Ref.get(running), ["A"])
        yield* Scope.close(scopeA, Exit.void)
        yield* waitUntil("B to take the work over", Effect.map(Ref.get(running), (r) => r.join() === "B"), 2000)
      }).pipe(Effect.scoped),
    30_000
  )
})

describe("SQLite serves one bartos", () => {
  it.live(
    "a second store on the same file is refused with a message naming the file and the holder",
    () =>
      Effect.gen(function*() {
        const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "barto-lock-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
        const file = Path.join(dir, "bartos.db")
        const scope = yield* newScope
        yield* Layer.buildWithScope(layerSqlite({ filename: file }), scope)
        const refused = yield* Effect.flip(Layer.build(layerSqlite({ filename: file })))
        assert.include(refused.message, `sqlite.path ${file}: another bartos already uses this database`)
        assert.include(refused.message, `pid ${process.pid}`)
        assert.include(refused.message, "[mariadb]")
        // The holder stops: the file is free again.
        yield* Scope.close(scope, Exit.void)
        yield* Layer.build(layerSqlite({ filename: file }))
      }).pipe(Effect.scoped),
    30_000
  )
})
