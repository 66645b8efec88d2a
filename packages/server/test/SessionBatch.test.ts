import * as Messages from "@barto/domain/Messages"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { groupCommit, grouped, make } from "../src/internal/sessionBatch.js"
import { breathe } from "../src/internal/store/common.js"
import { Store, StoreError } from "../src/Store.js"
import { databases } from "./utils/databases.js"

/** A run's first record, `seq` its offset once stored. */
const runStarted = (seq: number): Messages.AgentRecord => ({
  _tag: "RunStarted",
  seq,
  runId: Messages.RunId.make(`0190a0a0-0000-7000-8000-${String(seq).padStart(12, "0")}`),
  schedule: "s",
  trigger: "schedule",
  scheduledAt: Messages.Micros.make(1),
  startedAt: Messages.Micros.make(1)
})

for (const db of databases) {
  describe(`group commit on ${db.name}`, () => {
    it.live(
      "concurrent writes share transactions, each gets its own answer, a failing one costs no other",
      () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const transactions = new Set<unknown>()
          const write = (n: number) =>
            Effect.gen(function*() {
              const tx = yield* Effect.serviceOption(SqlClient.TransactionConnection)
              if (Option.isSome(tx)) transactions.add(tx.value) // one tuple per transaction
              if (n === 13) return yield* new StoreError({ message: "thirteen" })
              return n * 2
            })
          const grouped = yield* groupCommit(sql, write)
          // Without failures: 300 calls, far fewer commits.
          yield* Effect.forEach(Array.from({ length: 300 }, (_, i) => 1000 + i), grouped, { concurrency: "unbounded" })
          assert.isBelow(transactions.size, 300 / 10)
          const results = yield* Effect.forEach(
            Array.from({ length: 300 }, (_, i) => i),
            (n) => Effect.either(grouped(n)),
            { concurrency: "unbounded" }
          )
          for (let n = 0; n < 300; n++) {
            const r = results[n]!
            if (n === 13) assert.isTrue(r._tag === "Left" && r.left.message === "thirteen")
            else assert.deepStrictEqual(r._tag === "Right" ? r.right : undefined, n * 2)
          }
        }).pipe(Effect.scoped, Effect.provide(Layer.orDie(db.layer()))),
      60_000
    )

    it.live("sessionStarted through the batch stores every session", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const store = yield* make(yield* Store, sql)
        yield* Effect.forEach(
          Array.from({ length: 200 }, (_, i) => i),
          (i) =>
            store.sessionStarted({
              agent: `agent-${i}`,
              sessionId: `session-${i}`,
              ip: "127.0.0.1",
              connectedAt: Messages.Micros.make(1_000_000 + i)
            }),
          { concurrency: "unbounded", discard: true }
        )
        const rows = yield* sql.unsafe<{ n: unknown }>("SELECT COUNT(*) AS n FROM agent_sessions")
        assert.strictEqual(Number(rows[0]!.n), 200)
        assert.strictEqual((yield* store.agents()).length, 200)
      }).pipe(Effect.scoped, Effect.provide(Layer.orDie(db.layer()))), 60_000)

    it.live(
      "one group: a name twice keeps both sessions and the later address; acked offsets per (agent, outbox)",
      () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const base = yield* Store
          const store = yield* make(base, sql)
          yield* base.ingest("a", "outbox-1", [runStarted(7)])
          // 300 at once: several power-of-two statements; agent-0 is in it twice.
          const sessions = Array.from({ length: 300 }, (_, i) => ({
            agent: i === 299 ? "agent-0" : `agent-${i}`,
            sessionId: `session-${i}`,
            ip: i === 299 ? "10.0.0.2" : "10.0.0.1",
            connectedAt: Messages.Micros.make(1_000_000 + i)
          }))
          yield* sql.withTransaction(base.sessionsStarted(sessions))
          const rows = yield* sql.unsafe<{ n: unknown }>("SELECT COUNT(*) AS n FROM agent_sessions")
          assert.strictEqual(Number(rows[0]!.n), 300)
          const agent0 = (yield* store.agents()).find((a) => a.name === "agent-0")
          assert.strictEqual(agent0?.lastIp, "10.0.0.2")
          assert.strictEqual(agent0?.firstSeenAt, 1_000_000)
          assert.strictEqual(agent0?.lastSeenAt, 1_000_299)

          const offsets = yield* sql.unsafe<{ agent: string; outbox_id: string; last_seq: unknown }>(
            "SELECT agent, outbox_id, last_seq FROM agent_offsets"
          )
          const keys = [
            ...offsets.map((o) => ({ agent: o.agent, outboxId: o.outbox_id })),
            { agent: "a", outboxId: "outbox-2" },
            { agent: "nobody", outboxId: "outbox-1" }
          ]
          const grouped = yield* Effect.forEach(keys, (k) => store.ackedUpTo(k.agent, k.outboxId), {
            concurrency: "unbounded"
          })
          const one = yield* Effect.forEach(keys, (k) => base.ackedUpTo(k.agent, k.outboxId))
          assert.deepStrictEqual(grouped, one)
          assert.deepStrictEqual(grouped, [7, -1, -1])
        }).pipe(Effect.scoped, Effect.provide(Layer.orDie(db.layer()))),
      60_000
    )

    it.live(
      "sessionOpened through the batch: each hello's session stored and its own offset, as the plain store answers",
      () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const base = yield* Store
          const store = yield* make(base, sql)
          yield* base.ingest("agent-3", "outbox-3", [runStarted(4)])
          const session = (i: number, run: number) => ({
            agent: `agent-${i}`,
            sessionId: `session-${run}-${i}`,
            ip: "10.0.0.1",
            connectedAt: Messages.Micros.make(1_000_000 + i)
          })
          const batched = yield* Effect.forEach(
            Array.from({ length: 100 }, (_, i) => i),
            (i) => store.sessionOpened(session(i, 1), `outbox-${i}`),
            { concurrency: "unbounded" }
          )
          const plain = yield* Effect.forEach(
            Array.from({ length: 100 }, (_, i) => i),
            (i) => base.sessionOpened(session(i, 2), `outbox-${i}`)
          )
          for (const opened of [...batched, ...plain]) assert.isTrue(Either.isRight(opened.started))
          const offsets = (all: typeof batched) => all.map((o) => Either.getOrElse(o.acked, () => -2))
          assert.deepStrictEqual(offsets(batched), offsets(plain))
          assert.deepStrictEqual(offsets(batched), Array.from({ length: 100 }, (_, i) => (i === 3 ? 4 : -1)))
          const rows = yield* sql.unsafe<{ n: unknown }>("SELECT COUNT(*) AS n FROM agent_sessions")
          assert.strictEqual(Number(rows[0]!.n), 200)
        }).pipe(Effect.scoped, Effect.provide(Layer.orDie(db.layer()))),
      60_000
    )

    it.live(
      "a mass disconnect through the batch: every session's end, each agent last seen at its last end",
      () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const base = yield* Store
          const store = yield* make(base, sql)
          // 700 sessions of 600 agents (the first 100 twice), all ended at once (more than one
          // statement's worth on MariaDB), each later than the one before.
          const sessions = Array.from({ length: 700 }, (_, i) => ({
            agent: `agent-${i % 600}`,
            sessionId: `session-${i}`,
            ip: "10.0.0.1",
            connectedAt: Messages.Micros.make(1_000_000 + i)
          }))
          yield* sql.withTransaction(base.sessionsStarted(sessions))
          const endOf = (i: number) => Messages.Micros.make(2_000_000 + i)
          yield* Effect.forEach(
            sessions,
            (s, i) => store.sessionEnded(s.agent, s.sessionId, endOf(i)),
            { concurrency: "unbounded", discard: true }
          )
          // An end for a session never recorded changes no session.
          yield* store.sessionEnded("agent-650", "session-unknown", Messages.Micros.make(1))
          const rows = yield* sql.unsafe<{ session_id: string; disconnected_at: unknown }>(
            "SELECT session_id, disconnected_at FROM agent_sessions"
          )
          assert.strictEqual(rows.length, 700)
          for (const r of rows) {
            assert.strictEqual(Number(r.disconnected_at), endOf(Number(r.session_id.slice(8))), r.session_id)
          }
          // Each agent was last seen at the end of its last session.
          const agents = new Map((yield* store.agents()).map((a) => [a.name, a.lastSeenAt]))
          for (let a = 0; a < 600; a++) {
            assert.strictEqual(agents.get(`agent-${a}`), endOf(a < 100 ? a + 600 : a), `agent-${a}`)
          }
        }).pipe(Effect.scoped, Effect.provide(Layer.orDie(db.layer()))),
      60_000
    )
  })
}

describe("grouped", () => {
  it.live("a group takes the calls that arrive over the next turns of the event loop, even behind a blocking writer", () =>
    Effect.gen(function*() {
      const sizes: Array<number> = []
      // Synchronous, like a better-sqlite3 commit: nothing arrives while it runs.
      const call = yield* grouped((items: ReadonlyArray<number>) =>
        Effect.sync(() => {
          sizes.push(items.length)
          return items.map((n) => n * 2)
        })
      )
      // 60 calls, a third in each of three consecutive turns (as hellos read from sockets are).
      const results = yield* Effect.forEach(
        Array.from({ length: 60 }, (_, i) => i),
        (i) => Effect.zipRight(Effect.forEach(Array.from({ length: i % 3 }), () => breathe), call(i)),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(results, Array.from({ length: 60 }, (_, i) => i * 2))
      assert.deepStrictEqual(sizes, [60])
    }).pipe(Effect.scoped))
})
