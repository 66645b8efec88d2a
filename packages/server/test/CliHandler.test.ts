import { uuidv4 } from "@barto/domain/Ids"
import * as Messages from "@barto/domain/Messages"
import type { AgentRecord, CliRequest, CliResponse, FinalRunState, RunId, ServerMessage } from "@barto/domain/Messages"
import { assert, describe, layer } from "@effect/vitest"
import {
  Chunk,
  Deferred,
  Effect,
  Fiber,
  Layer,
  Logger,
  Option,
  PubSub,
  Queue,
  Stream,
  TestClock,
  TestContext
} from "effect"
import * as Crypto from "node:crypto"
import * as CliHandler from "../src/CliHandler.js"
import { Ingested, type IngestedBatch } from "../src/Events.js"
import { Registry } from "../src/Registry.js"
import { Schedules } from "../src/Schedules.js"
import { ServerInfo } from "../src/ServerInfo.js"
import { Store, StoreError, type StoreShape } from "../src/Store.js"
import { databases } from "./utils/databases.js"

// ---------------------------------------------------------------------------------------------
// Harness: a real Store, hand-written fakes for the transport services, a real PubSub
// ---------------------------------------------------------------------------------------------

const micros = (ms: number) => Messages.Micros.make(ms * 1000)
const NOW_MS = Date.UTC(2025, 9, 20, 8, 30, 0)
const DAY_MS = 86_400_000
/** Before every other test's data: the only instants a cleanup test may delete. */
const OLD_MS = Date.UTC(1999, 0, 1, 12, 0, 0)

interface Sent {
  readonly agent: string
  readonly message: ServerMessage
}

interface Setup {
  readonly connected?: ReadonlyArray<string>
  readonly schedules?: Record<string, ReadonlyArray<Messages.ScheduleSpec>>
  /** Replace Store methods (failure injection). */
  readonly storeOverrides?: Partial<StoreShape>
  readonly queryMaxBytes?: number
  readonly maxAnswerBytes?: number
}

const spec = (name: string, calendar: string, paused = false) =>
  new Messages.ScheduleSpec({
    name,
    onCalendar: calendar,
    calendar,
    cmds: [`echo ${name}`],
    overlap: "allow",
    onFailure: "continue",
    paused
  })

const clientRow = (name: string) =>
  new Messages.ClientRow({
    name,
    ip: "10.0.0.7",
    sessionId: `session-${name}`,
    connectedAt: micros(NOW_MS - 60_000),
    info: new Messages.ClientInfo({
      osName: "Arch Linux",
      hostname: name,
      osVersion: "rolling",
      kernel: "6.17.2",
      agentVersion: "0.1.0"
    })
  })

interface CmdSpec {
  readonly command: string
  readonly lines: ReadonlyArray<string>
  readonly exitCode: number | null
  readonly signal?: string
}

interface RunSpec {
  readonly runId?: RunId
  readonly schedule: string
  readonly atMs: number
  readonly cmds: ReadonlyArray<CmdSpec>
  /** Absent: still running (no RunFinished). */
  readonly state?: FinalRunState
  readonly firstLineSeq?: number
}

/** Realistic agent records of one run; `seq` is assigned at ingest. */
const runRecords = (r: RunSpec): { runId: RunId; records: Array<AgentRecord> } => {
  const runId = r.runId ?? (uuidv4() as RunId)
  const at = r.atMs
  const records: Array<AgentRecord> = [{
    _tag: "RunStarted",
    seq: 0,
    runId,
    schedule: r.schedule,
    trigger: "schedule",
    scheduledAt: micros(at),
    startedAt: micros(at + 3)
  }]
  let lineSeq = r.firstLineSeq ?? 0
  let t = at + 5
  r.cmds.forEach((c, cmdIndex) => {
    const cmdUuid = uuidv4()
    records.push({
      _tag: "CommandStarted",
      seq: 0,
      runId,
      cmdUuid,
      cmdIndex,
      command: c.command,
      startedAt: micros(t++)
    })
    for (const data of c.lines) {
      records.push({
        _tag: "OutputLine",
        seq: 0,
        runId,
        cmdUuid,
        lineSeq: lineSeq++,
        stream: data.startsWith("error:") ? "stderr" : "stdout",
        ts: micros(t++),
        data,
        continuation: false
      })
    }
    records.push({
      _tag: "CommandExited",
      seq: 0,
      runId,
      cmdUuid,
      exitCode: c.exitCode,
      signal: c.signal ?? null,
      finishedAt: micros(t++)
    })
  })
  if (r.state !== undefined) {
    records.push({ _tag: "RunFinished", seq: 0, runId, state: r.state, finishedAt: micros(t++) })
  }
  return { runId, records }
}

/**
 * The suites share one database per kind (a fresh MariaDB database costs a second), so every test
 * works under its own agent and schedule names: `h.db1` is `db1-<random>`. Setups name agents and
 * schedules logically; the harness renames them.
 */
const makeHarness = (setup: Setup) =>
  Effect.gen(function*() {
    const ns = Crypto.randomBytes(4).toString("hex")
    const n = (name: string) => `${name}-${ns}`
    const names = {
      db1: n("db1"),
      web1: n("web1"),
      nobody: n("nobody"),
      backup: n("backup"),
      updates: n("updates")
    }
    const sent: Array<Sent> = []
    const broadcasts: Array<ServerMessage> = []
    const connected = new Set((setup.connected ?? []).map(n))
    const table = new Map(
      Object.entries(setup.schedules ?? {}).map((
        [a, specs]
      ) => [n(a), specs.map((s) => new Messages.ScheduleSpec({ ...s, name: n(s.name) }))])
    )
    const pubsub = yield* PubSub.unbounded<IngestedBatch>()
    const subscribed = yield* Deferred.make<void>()
    // Signals when a tail subscribes, so a test publishes only once somebody listens.
    const watched = new Proxy(pubsub, {
      get: (target, prop) => {
        if (prop === "subscribe") return Effect.tap(target.subscribe, () => Deferred.succeed(subscribed, undefined))
        const v = Reflect.get(target, prop, target)
        return typeof v === "function" ? v.bind(target) : v
      }
    })
    const registry = Layer.succeed(Registry, {
      list: Effect.sync(() => [...connected].sort().map(clientRow)),
      get: (agent) =>
        Effect.sync(() =>
          connected.has(agent)
            ? Option.some({
              agent,
              sessionId: `session-${agent}`,
              ip: "10.0.0.7",
              connectedAt: micros(NOW_MS - 60_000),
              info: null,
              outboxId: `outbox-${agent}`
            })
            : Option.none()
        ),
      send: (agent, message) =>
        Effect.sync(() => {
          if (!connected.has(agent)) return false
          sent.push({ agent, message })
          return true
        }),
      broadcast: (message) =>
        Effect.sync(() => {
          broadcasts.push(message)
          return connected.size
        })
    })
    const schedules = Layer.succeed(Schedules, {
      all: Effect.sync(() => new Map(table)),
      forAgent: (agent) => Effect.sync(() => table.get(agent) ?? []),
      setPaused: (agent, schedule, paused) =>
        Effect.sync(() => {
          const specs = table.get(agent) ?? []
          const i = specs.findIndex((s) => s.name === schedule)
          if (i < 0) return false
          specs[i] = new Messages.ScheduleSpec({ ...specs[i]!, paused })
          return true
        }),
      refreshPaused: Effect.void,
      reload: Effect.succeed("unchanged" as const),
      lastReload: Effect.succeed({
        at: micros(NOW_MS - 60_000),
        result: "rejected" as const,
        error: "/etc/bartos.toml:3:1: actix.port: expected a port number 0..65535 (0 = any free port), got 70000",
        lastSuccessAt: micros(NOW_MS - 3_600_000)
      })
    })
    const serverInfo = Layer.succeed(ServerInfo, {
      version: "0.1.0-test",
      startedAt: micros(NOW_MS - 3_600_000),
      listeners: ["ws://127.0.0.1:20000"],
      queryRowCap: 50,
      queryMaxBytes: setup.queryMaxBytes ?? 1024 * 1024,
      queryTimeoutMs: 2000,
      maxAnswerBytes: setup.maxAnswerBytes ?? 64 * 1024 * 1024
    })
    const overrides = setup.storeOverrides
    const store = overrides === undefined
      ? Layer.effect(Store, Store)
      : Layer.effect(Store, Effect.map(Store, (real) => ({ ...real, ...overrides })))
    const layer = Layer.mergeAll(store, registry, schedules, serverInfo, Layer.succeed(Ingested, watched))
    return { ...names, sent, broadcasts, connected, table, pubsub, subscribed, layer }
  })

type Harness = Effect.Effect.Success<ReturnType<typeof makeHarness>>

const seqs = new WeakMap<Harness, Map<string, number>>()

/** Stores `records` as one batch of `agent` (fresh outbox sequence numbers); returns them as stored. */
const ingest = (h: Harness, agent: string, records: ReadonlyArray<AgentRecord>) =>
  Effect.gen(function*() {
    const store = yield* Store
    const counters = seqs.get(h) ?? new Map<string, number>()
    seqs.set(h, counters)
    let next = counters.get(agent) ?? 0
    const numbered = records.map((r) => ({ ...r, seq: next++ }))
    counters.set(agent, next)
    yield* store.ingest(agent, `outbox-${agent}`, numbered)
    return numbered
  })

/** What a worker session does: commit the batch, then publish it. */
const deliver = (h: Harness, agent: string, records: ReadonlyArray<AgentRecord>) =>
  ingest(h, agent, records).pipe(
    Effect.tap((numbered) => PubSub.publish(h.pubsub, { agent, records: numbered }))
  )

/** The rows of this test's agents (the database is shared with the other tests). */
const ours = <T extends { readonly agent: string }>(h: Harness, rows: ReadonlyArray<T>): Array<T> =>
  rows.filter((r) => r.agent === h.db1 || r.agent === h.web1)

const withHarness = <A, E>(
  setup: Setup,
  body: (h: Harness) => Effect.Effect<A, E, CliHandler.HandlerServices>
) =>
  Effect.gen(function*() {
    yield* TestClock.setTime(NOW_MS)
    const h = yield* makeHarness(setup)
    return yield* body(h).pipe(Effect.provide(h.layer))
  }).pipe(
    // The shared Store is built outside the test services (a MariaDB client would hang under
    // TestClock while connecting); each test gets its own TestClock.
    Effect.provide(Layer.merge(TestContext.TestContext, Logger.remove(Logger.defaultLogger)))
  )

const ask = (request: CliRequest, admin = false) =>
  CliHandler.handle(request, { admin }).pipe(Stream.runCollect, Effect.map(Chunk.toArray))

/** The single response of `request`, narrowed to the expected tag. */
const one = <T extends CliResponse["_tag"]>(tag: T, request: CliRequest, admin = false) =>
  Effect.gen(function*() {
    const out = yield* ask(request, admin)
    assert.strictEqual(out.length, 1, JSON.stringify(out))
    const r = out[0]!
    assert.strictEqual(r._tag, tag, JSON.stringify(r))
    assert.strictEqual(r.id, request.id)
    return r as Extract<CliResponse, { readonly _tag: T }>
  })

const expectError = (code: CliHandler.CliErrorCode, request: CliRequest, admin = false) =>
  Effect.map(one("CliError", request, admin), (e) => {
    assert.strictEqual(e.code, code, e.message)
    return e.message
  })

const APT_OUTPUT = [
  "Reading package lists...",
  "The following packages will be upgraded:",
  "  libssh-4 libxml2",
  "2 upgraded, 0 newly installed, 0 to remove and 0 not upgraded."
]

/** Two agents, a few runs each: the shapes every read request is checked against. */
const seedHistory = (h: Harness, baseMs = NOW_MS) =>
  Effect.gen(function*() {
    const backupFailed = runRecords({
      schedule: h.backup,
      atMs: baseMs - 2 * 3_600_000,
      cmds: [{ command: "restic backup /srv", lines: ["error: repository locked"], exitCode: 3 }],
      state: "failed"
    })
    const backupOk = runRecords({
      schedule: h.backup,
      atMs: baseMs - 3_600_000,
      cmds: [{ command: "restic backup /srv", lines: ["snapshot 1a2b saved", "done"], exitCode: 0 }],
      state: "succeeded"
    })
    const updates = runRecords({
      schedule: h.updates,
      atMs: baseMs - 30 * 60_000,
      cmds: [
        { command: "apt-get -s upgrade", lines: APT_OUTPUT, exitCode: 0 },
        {
          command: "apt-get -s dist-upgrade",
          lines: ["The following packages will be upgraded:", "  should-not-count"],
          exitCode: 100
        }
      ],
      state: "failed"
    })
    const killed = runRecords({
      schedule: h.backup,
      atMs: baseMs - 10 * 60_000,
      cmds: [{ command: "sleep 600", lines: [], exitCode: null, signal: "SIGKILL" }],
      state: "cancelled"
    })
    const webBackup = runRecords({
      schedule: h.backup,
      atMs: baseMs - 20 * 60_000,
      cmds: [{ command: "pg_dump app", lines: ["dumped 12 tables"], exitCode: 0 }],
      state: "succeeded"
    })
    yield* ingest(h, h.db1, [...backupFailed.records, ...backupOk.records])
    yield* ingest(h, h.db1, updates.records)
    yield* ingest(h, h.db1, killed.records)
    yield* ingest(h, h.web1, webBackup.records)
    return { backupFailed, backupOk, updates, killed, webBackup }
  })

// ---------------------------------------------------------------------------------------------
// tail
// ---------------------------------------------------------------------------------------------

type TailChunk = Extract<CliResponse, { readonly _tag: "TailChunk" }>

const asChunks = (out: ReadonlyArray<CliResponse>): Array<TailChunk> =>
  out.map((r) => {
    assert.strictEqual(r._tag, "TailChunk", JSON.stringify(r))
    return r as TailChunk
  })

/** Runs a tail in the background, handing every response to a queue. */
const follow = (request: CliRequest) =>
  Effect.gen(function*() {
    const out = yield* Queue.unbounded<CliResponse>()
    const fiber = yield* CliHandler.handle(request, { admin: false }).pipe(
      Stream.runForEach((r) => Queue.offer(out, r)),
      Effect.fork
    )
    const next = Effect.map(Queue.take(out), (r) => {
      assert.strictEqual(r._tag, "TailChunk", JSON.stringify(r))
      return r as TailChunk
    })
    return { out, fiber, next }
  })

const lineData = (c: TailChunk) => c.lines.map((l) => l.data)

/** A run of `backup` on db1 still running: started 5 s ago, one line "sleeping" so far (records 0..2). */
const sleepingRun = (h: Harness) =>
  runRecords({
    schedule: h.backup,
    atMs: NOW_MS - 5000,
    cmds: [{ command: "sleep 100", lines: ["sleeping"], exitCode: 0 }]
  })

// ---------------------------------------------------------------------------------------------
// The suite, once per database
// ---------------------------------------------------------------------------------------------

for (const db of databases) {
  layer(db.layer(), { excludeTestServices: true, timeout: "60 seconds" })(`CliHandler on ${db.name}`, (it) => {
    describe("read requests", () => {
      it.effect("info: version, database, listeners, uptime, agents; no secrets", () =>
        withHarness({ connected: ["db1", "web1"] }, (_h) =>
          Effect.gen(function*() {
            const r = yield* one("InfoResponse", Messages.InfoRequest.make({ id: 1 }))
            assert.strictEqual(r.version, "0.1.0-test")
            assert.strictEqual(r.protocol, Messages.PROTOCOL_VERSION)
            assert.strictEqual(r.uptimeSecs, 3600)
            assert.strictEqual(r.database, db.name)
            assert.strictEqual(r.databaseLocation, (yield* Store).location)
            assert.notInclude(r.databaseLocation, "@", "no credentials in the location")
            assert.deepStrictEqual(r.listeners, ["ws://127.0.0.1:20000"])
            assert.strictEqual(r.connectedAgents, 2)
            assert.strictEqual(r.node, process.version)
            assert.include(r.platform, process.platform)
            assert.deepStrictEqual(r.configReload, {
              at: micros(NOW_MS - 60_000),
              result: "rejected",
              error: "/etc/bartos.toml:3:1: actix.port: expected a port number 0..65535 (0 = any free port), got 70000",
              lastSuccessAt: micros(NOW_MS - 3_600_000)
            })
            assert.notMatch(JSON.stringify(r), /password|secret|key/i)
          })))

      it.effect("clients: the registry's rows with client info", () =>
        withHarness({ connected: ["web1", "db1"] }, (h) =>
          Effect.gen(function*() {
            const r = yield* one("ClientsResponse", Messages.ClientsRequest.make({ id: 2 }))
            assert.deepStrictEqual(r.clients.map((c) => c.name), [h.db1, h.web1])
            assert.strictEqual(r.clients[0]!.info?.osName, "Arch Linux")
          })))

      it.effect("list without a command: the agent's schedules with runs, sorted", () =>
        withHarness({}, (h) =>
          Effect.gen(function*() {
            yield* seedHistory(h)
            const r = yield* one("ListCommandsResponse", Messages.ListCommandsRequest.make({ id: 3, agent: h.db1 }))
            assert.deepStrictEqual(r.commands, [h.backup, h.updates])
            const none = yield* one(
              "ListCommandsResponse",
              Messages.ListCommandsRequest.make({ id: 4, agent: h.nobody })
            )
            assert.deepStrictEqual(none.commands, [])
          })))

      it.effect("list: every line carries its own run's state and exit code (not the first row's)", () =>
        withHarness({}, (h) =>
          Effect.gen(function*() {
            const { backupFailed, backupOk } = yield* seedHistory(h)
            const r = yield* one("LinesResponse", Messages.ListRequest.make({ id: 5, agent: h.db1, cmd: h.backup }))
            assert.deepStrictEqual(
              r.lines.map((l) => [l.runId, l.data, l.exitCode, l.runState]),
              [
                [backupFailed.runId, "error: repository locked", 3, "failed"],
                [backupOk.runId, "snapshot 1a2b saved", 0, "succeeded"],
                [backupOk.runId, "done", 0, "succeeded"]
              ]
            )
            assert.strictEqual(r.lines[0]!.stream, "stderr")
          })))

      it.effect("cmd: lines of one schedule on every agent, grouped by agent", () =>
        withHarness({}, (h) =>
          Effect.gen(function*() {
            yield* seedHistory(h)
            const r = yield* one("CmdResponse", Messages.CmdRequest.make({ id: 6, cmd: h.backup }))
            assert.deepStrictEqual(r.byAgent.map((g) => g.agent), [h.db1, h.web1])
            assert.deepStrictEqual(r.byAgent[1]!.lines.map((l) => l.data), ["dumped 12 tables"])
          })))

      it.effect("failed: failed and killed commands with exit codes, signals and output", () =>
        withHarness({}, (h) =>
          Effect.gen(function*() {
            const { backupFailed, killed, updates } = yield* seedHistory(h)
            const r = yield* one("FailedResponse", Messages.FailedRequest.make({ id: 7 }))
            const byRun = new Map(r.failed.map((f) => [f.runId, f]))
            assert.strictEqual(byRun.get(backupFailed.runId)?.exitCode, 3)
            assert.deepStrictEqual(byRun.get(backupFailed.runId)?.lines, ["error: repository locked"])
            assert.strictEqual(byRun.get(killed.runId)?.exitCode, null)
            assert.strictEqual(byRun.get(killed.runId)?.signal, "SIGKILL")
            assert.strictEqual(byRun.get(updates.runId)?.command, "apt-get -s dist-upgrade")
            assert.strictEqual(byRun.get(updates.runId)?.exitCode, 100)
          })))

      it.effect("runs: newest first, filtered, limited; a bad limit is a bad request", () =>
        withHarness({}, (h) =>
          Effect.gen(function*() {
            const { backupFailed, backupOk, killed, updates, webBackup } = yield* seedHistory(h)
            const all = yield* one("RunsResponse", Messages.RunsRequest.make({ id: 8, limit: CliHandler.MAX_RUNS }))
            assert.deepStrictEqual(ours(h, all.runs).map((r) => r.runId), [
              killed.runId,
              webBackup.runId,
              updates.runId,
              backupOk.runId,
              backupFailed.runId
            ])
            const failed = yield* one(
              "RunsResponse",
              Messages.RunsRequest.make({ id: 9, agent: h.db1, state: "failed", limit: 100 })
            )
            assert.deepStrictEqual(failed.runs.map((r) => r.runId), [updates.runId, backupFailed.runId])
            const two = yield* one("RunsResponse", Messages.RunsRequest.make({ id: 10, schedule: h.backup, limit: 2 }))
            assert.deepStrictEqual(two.runs.map((r) => r.runId), [killed.runId, webBackup.runId])
            const since = yield* one(
              "RunsResponse",
              Messages.RunsRequest.make({ id: 11, since: micros(NOW_MS - 25 * 60_000), limit: 100 })
            )
            assert.deepStrictEqual(ours(h, since.runs).map((r) => r.runId), [killed.runId, webBackup.runId])
            yield* expectError("bad_request", Messages.RunsRequest.make({ id: 12, limit: 0 }))
          })))

      it.effect("updates: scrapes only the output of commands that exited 0", () =>
        withHarness({}, (h) =>
          Effect.gen(function*() {
            yield* seedHistory(h)
            const r = yield* one("UpdatesResponse", Messages.UpdatesRequest.make({ id: 13, agent: h.db1, kind: "apt" }))
            assert.deepStrictEqual(r.result, { _tag: "Apt", packages: ["libssh-4", "libxml2"] })
            const pacman = yield* one(
              "UpdatesResponse",
              Messages.UpdatesRequest.make({ id: 14, agent: h.db1, kind: "pacman" })
            )
            assert.deepStrictEqual(pacman.result, {
              _tag: "Pacman",
              summary: { updateCount: 0, packages: [], downloadSize: 0, installSize: 0, netSize: 0 }
            })
          })))

      it.effect("query: read-only SQL; writes and statements the database rejects are refused", () =>
        withHarness({}, (_h) =>
          Effect.gen(function*() {
            const r = yield* one(
              "QueryResponse",
              Messages.QueryRequest.make({ id: 15, sql: "SELECT 1 AS one, 'x' AS two" })
            )
            assert.deepStrictEqual(r.columns, ["one", "two"])
            assert.deepStrictEqual(r.rows, [["1", "x"]])
            assert.isFalse(r.truncated)
            const capped = yield* one(
              "QueryResponse",
              Messages.QueryRequest.make({
                id: 18,
                sql: "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 60) SELECT n FROM c"
              })
            )
            assert.strictEqual(capped.rows.length, 50, "ServerInfo.queryRowCap")
            assert.isTrue(capped.truncated)
            yield* expectError("refused", Messages.QueryRequest.make({ id: 16, sql: "DELETE FROM runs" }))
            const rejected = yield* expectError(
              "refused",
              Messages.QueryRequest.make({ id: 17, sql: "SELECT FROM WHERE" })
            )
            assert.include(rejected, "syntax")
          })))

      it.effect("schedules: every schedule with connection, pause and next fire time", () =>
        withHarness({
          connected: ["db1"],
          schedules: {
            web1: [spec("backup", "*-*-* 02:00:00")],
            db1: [spec("updates", "*-*-* 00/15:00:00"), spec("backup", "*-*-* 03:30:00", true)]
          }
        }, (h) =>
          Effect.gen(function*() {
            const r = yield* one("SchedulesResponse", Messages.SchedulesRequest.make({ id: 18 }))
            assert.deepStrictEqual(
              r.schedules.map((s) => [s.agent, s.name, s.connected, s.paused, s.nextAt]),
              [
                [h.db1, h.updates, true, false, micros(Date.UTC(2025, 9, 20, 15, 0, 0))],
                [h.db1, h.backup, true, true, micros(Date.UTC(2025, 9, 21, 3, 30, 0))],
                [h.web1, h.backup, false, false, micros(Date.UTC(2025, 9, 21, 2, 0, 0))]
              ]
            )
            const web = yield* one("SchedulesResponse", Messages.SchedulesRequest.make({ id: 19, agent: h.web1 }))
            assert.deepStrictEqual(web.schedules.map((s) => s.name), [h.backup])
            yield* expectError("not_found", Messages.SchedulesRequest.make({ id: 20, agent: h.nobody }))
          })))

      it.effect("a database failure becomes an internal CliError, not a failed stream", () =>
        withHarness({
          storeOverrides: { listCommands: () => Effect.fail(new StoreError({ message: "disk I/O error" })) }
        }, (h) =>
          Effect.gen(function*() {
            const message = yield* expectError("internal", Messages.ListCommandsRequest.make({ id: 21, agent: h.db1 }))
            assert.include(message, "disk I/O error")
          })))

      it.effect("a defect in a service becomes an internal CliError too", () =>
        withHarness({ storeOverrides: { failed: () => Effect.dieMessage("bug") } }, (_h) =>
          Effect.gen(function*() {
            yield* expectError("internal", Messages.FailedRequest.make({ id: 22 }))
          })))
    })

    describe("admin requests", () => {
      const adminRequests = (h: Harness): ReadonlyArray<CliRequest> => [
        Messages.CleanupRequest.make({ id: 30, dryRun: true }),
        Messages.RunNowRequest.make({ id: 31, agent: h.db1, schedule: h.backup }),
        Messages.CancelRequest.make({ id: 32, runId: "0199f6c0-0000-7000-8000-000000000000" as RunId }),
        Messages.PauseRequest.make({ id: 33, agent: h.db1, schedule: h.backup }),
        Messages.ResumeRequest.make({ id: 34, agent: h.db1, schedule: h.backup })
      ]

      it.effect("are forbidden without the admin key, and do nothing", () =>
        withHarness(
          { connected: ["db1"], schedules: { db1: [spec("backup", "*-*-* 02:00:00")] } },
          (h) =>
            Effect.gen(function*() {
              for (const request of adminRequests(h)) {
                const message = yield* expectError("forbidden", request, false)
                assert.match(message, /requires the admin key$/)
              }
              assert.deepStrictEqual(h.sent, [])
              assert.deepStrictEqual(h.broadcasts, [])
              assert.isFalse(h.table.get(h.db1)![0]!.paused)
            })
        ))

      it.effect("cleanup: dry run only counts; a real one deletes and signals every agent", () =>
        withHarness({ connected: ["db1", "web1"] }, (h) =>
          Effect.gen(function*() {
            // Long ago, so this test's cleanup deletes nothing of the other tests sharing the database.
            const { killed } = yield* seedHistory(h, OLD_MS)
            const before = micros(OLD_MS - 50 * 60_000)
            const dry = yield* one(
              "CleanupResponse",
              Messages.CleanupRequest.make({ id: 35, before, dryRun: true }),
              true
            )
            // Finished before: the failed and the good backup of db1; not the later runs.
            assert.deepStrictEqual([dry.before, dry.dryRun, dry.runs, dry.agentsSignalled], [before, true, 2, 0])
            assert.isAbove(dry.lines, 0)
            assert.isAbove(dry.commands, 0)
            assert.deepStrictEqual(h.broadcasts, [])
            const stillThere = yield* one(
              "RunsResponse",
              Messages.RunsRequest.make({ id: 36, limit: CliHandler.MAX_RUNS })
            )
            assert.strictEqual(ours(h, stillThere.runs).length, 5)

            const real = yield* one(
              "CleanupResponse",
              Messages.CleanupRequest.make({ id: 37, before, dryRun: false }),
              true
            )
            assert.deepStrictEqual([real.runs, real.lines, real.commands], [dry.runs, dry.lines, dry.commands])
            assert.strictEqual(real.agentsSignalled, 2)
            assert.deepStrictEqual(h.broadcasts, [{ _tag: "AgentCleanup", before }])
            const left = yield* one("RunsResponse", Messages.RunsRequest.make({ id: 38, limit: CliHandler.MAX_RUNS }))
            assert.strictEqual(ours(h, left.runs).length, 3)
            assert.isTrue(left.runs.some((r) => r.runId === killed.runId))
          })))

      it.effect("cleanup without --before: today's local midnight on the bartos host", () =>
        withHarness({}, (_h) =>
          Effect.gen(function*() {
            const r = yield* one("CleanupResponse", Messages.CleanupRequest.make({ id: 39, dryRun: true }), true)
            const at = new Date(r.before / 1000)
            assert.deepStrictEqual([at.getHours(), at.getMinutes(), at.getSeconds(), at.getMilliseconds()], [
              0,
              0,
              0,
              0
            ])
            assert.isAtMost(r.before, micros(NOW_MS))
            assert.isAbove(r.before, micros(NOW_MS - DAY_MS))
          })))

      it.effect("run now: mints a run id and sends it to the agent; unknown or offline agents are errors", () =>
        withHarness({
          connected: ["db1"],
          schedules: { db1: [spec("backup", "*-*-* 02:00:00")], web1: [spec("backup", "*-*-* 02:00:00")] }
        }, (h) =>
          Effect.gen(function*() {
            const r = yield* one(
              "RunNowResponse",
              Messages.RunNowRequest.make({ id: 40, agent: h.db1, schedule: h.backup }),
              true
            )
            assert.strictEqual(h.sent.length, 1)
            const msg = h.sent[0]!.message
            assert.strictEqual(h.sent[0]!.agent, h.db1)
            assert.strictEqual(msg._tag, "RunNow")
            if (msg._tag === "RunNow") {
              assert.strictEqual(msg.runId, r.runId)
              assert.strictEqual(msg.schedule, h.backup)
            }
            assert.match(r.runId, /^[0-9a-f]{8}-[0-9a-f]{4}-7/)
            yield* expectError(
              "not_found",
              Messages.RunNowRequest.make({ id: 41, agent: h.nobody, schedule: h.backup }),
              true
            )
            yield* expectError(
              "not_found",
              Messages.RunNowRequest.make({ id: 42, agent: h.db1, schedule: "nope" }),
              true
            )
            yield* expectError(
              "not_connected",
              Messages.RunNowRequest.make({ id: 43, agent: h.web1, schedule: h.backup }),
              true
            )
            assert.strictEqual(h.sent.length, 1)
          })))

      it.effect("cancel: unknown run, finished run, running run on a connected and an offline agent", () =>
        withHarness({ connected: ["db1"] }, (h) =>
          Effect.gen(function*() {
            const { backupOk } = yield* seedHistory(h)
            const running = runRecords({ schedule: h.backup, atMs: NOW_MS - 1000, cmds: [] })
            yield* ingest(h, h.db1, running.records)
            const webRunning = runRecords({ schedule: h.backup, atMs: NOW_MS - 1000, cmds: [] })
            yield* ingest(h, h.web1, webRunning.records)

            yield* expectError("not_found", Messages.CancelRequest.make({ id: 44, runId: uuidv4() as RunId }), true)
            const msg = yield* expectError(
              "bad_request",
              Messages.CancelRequest.make({ id: 45, runId: backupOk.runId }),
              true
            )
            assert.strictEqual(msg, `run ${backupOk.runId} already succeeded`)
            const r = yield* one("CancelResponse", Messages.CancelRequest.make({ id: 46, runId: running.runId }), true)
            assert.deepStrictEqual([r.runId, r.delivered], [running.runId, true])
            assert.deepStrictEqual(h.sent.map((s) => [s.agent, s.message._tag]), [[h.db1, "CancelRun"]])
            const off = yield* one(
              "CancelResponse",
              Messages.CancelRequest.make({ id: 47, runId: webRunning.runId }),
              true
            )
            assert.isFalse(off.delivered)
          })))

      it.effect("pause and resume: flip the schedule; unknown schedules are not found", () =>
        withHarness({ schedules: { db1: [spec("backup", "*-*-* 02:00:00")] } }, (h) =>
          Effect.gen(function*() {
            const p = yield* one(
              "PauseResponse",
              Messages.PauseRequest.make({ id: 48, agent: h.db1, schedule: h.backup }),
              true
            )
            assert.deepStrictEqual([p.agent, p.schedule, p.paused], [h.db1, h.backup, true])
            assert.isTrue(h.table.get(h.db1)![0]!.paused)
            const r = yield* one(
              "PauseResponse",
              Messages.ResumeRequest.make({ id: 49, agent: h.db1, schedule: h.backup }),
              true
            )
            assert.isFalse(r.paused)
            assert.isFalse(h.table.get(h.db1)![0]!.paused)
            yield* expectError(
              "not_found",
              Messages.PauseRequest.make({ id: 50, agent: h.db1, schedule: "nope" }),
              true
            )
            yield* expectError(
              "not_found",
              Messages.ResumeRequest.make({ id: 51, agent: h.nobody, schedule: h.backup }),
              true
            )
          })))
    })

    describe("tail", () => {
      it.effect("without follow: the stored lines in chunks, then done with the run", () =>
        withHarness({}, (h) =>
          Effect.gen(function*() {
            const lines = Array.from({ length: 1203 }, (_, i) => `line ${i}`)
            const big = runRecords({
              schedule: h.backup,
              atMs: NOW_MS - 60_000,
              cmds: [{ command: "seq", lines, exitCode: 0 }],
              state: "succeeded"
            })
            yield* ingest(h, h.db1, big.records)
            const chunks = asChunks(yield* ask(Messages.TailRequest.make({ id: 60, runId: big.runId, follow: false })))
            assert.strictEqual(chunks[0]!.run?.runId, big.runId)
            assert.deepStrictEqual(chunks.map((c) => c.done), [false, false, false, true])
            assert.deepStrictEqual(chunks.flatMap(lineData), lines)
            assert.isTrue(chunks.every((c) => c.lines.length <= CliHandler.TAIL_PAGE_LINES))
            assert.strictEqual(chunks[3]!.run?.state, "succeeded")
            assert.deepStrictEqual(chunks.flatMap((c) => c.lines.map((l) => l.lineSeq)), lines.map((_, i) => i))
          })))

      it.effect("by agent and schedule: the latest run", () =>
        withHarness({}, (h) =>
          Effect.gen(function*() {
            const { backupOk } = yield* seedHistory(h)
            const chunks = asChunks(
              yield* ask(Messages.TailRequest.make({ id: 61, agent: h.db1, schedule: h.backup, follow: false }))
            )
            const done = chunks[chunks.length - 1]!
            assert.isTrue(done.done)
            // The latest backup of db1 is the cancelled `sleep 600` run, which has no output.
            assert.strictEqual(done.run?.state, "cancelled")
            assert.deepStrictEqual(chunks.flatMap(lineData), [])
            const older = asChunks(
              yield* ask(Messages.TailRequest.make({ id: 62, runId: backupOk.runId, follow: false }))
            )
            assert.deepStrictEqual(older.flatMap(lineData), ["snapshot 1a2b saved", "done"])
          })))

      it.effect("errors: no target, unknown run, no runs of the schedule", () =>
        withHarness({}, (h) =>
          Effect.gen(function*() {
            yield* expectError("bad_request", Messages.TailRequest.make({ id: 63, agent: h.db1, follow: true }))
            yield* expectError(
              "not_found",
              Messages.TailRequest.make({ id: 64, runId: uuidv4() as RunId, follow: false })
            )
            yield* expectError(
              "not_found",
              Messages.TailRequest.make({ id: 65, agent: h.db1, schedule: h.backup, follow: false })
            )
          })))

      it.effect("follow: stored lines first, then live lines without duplicates, ending with the final run", () =>
        withHarness({}, (h) =>
          Effect.gen(function*() {
            const run = runRecords({
              schedule: h.backup,
              atMs: NOW_MS - 5000,
              cmds: [{ command: "restic backup /srv", lines: ["scan", "files: 10"], exitCode: 0 }]
            })
            // Stored before the tail starts: everything up to the command's second line.
            const stored = yield* ingest(h, h.db1, run.records.slice(0, 4))
            const later = run.records.slice(4) // CommandExited
            const t = yield* follow(Messages.TailRequest.make({ id: 66, runId: run.runId, follow: true }))
            const first = yield* t.next
            assert.strictEqual(first.run?.runId, run.runId)
            assert.strictEqual(first.run?.state, "running")
            assert.deepStrictEqual(lineData(first), ["scan", "files: 10"])

            // The stored batch is published late (committed before the read, published after): no repeat.
            yield* PubSub.publish(h.pubsub, { agent: h.db1, records: stored })
            // Another agent's and another run's lines are not ours.
            const other = runRecords({
              schedule: h.backup,
              atMs: NOW_MS - 4000,
              cmds: [{ command: "x", lines: ["noise"], exitCode: 0 }]
            })
            yield* deliver(h, h.web1, other.records)
            const cmdUuid = (run.records[1] as { cmdUuid: string }).cmdUuid
            const more: Array<AgentRecord> = [2, 3].map((lineSeq) => ({
              _tag: "OutputLine",
              seq: 0,
              runId: run.runId,
              cmdUuid,
              lineSeq,
              stream: "stdout",
              ts: micros(NOW_MS + lineSeq),
              data: `progress ${lineSeq}`,
              continuation: false
            }))
            yield* deliver(h, h.db1, more)
            const live = yield* t.next
            assert.isNull(live.run)
            assert.isFalse(live.done)
            assert.deepStrictEqual(lineData(live), ["progress 2", "progress 3"])
            assert.deepStrictEqual(live.lines.map((l) => [l.agent, l.schedule, l.runState]), [
              [h.db1, h.backup, "running"],
              [h.db1, h.backup, "running"]
            ])

            yield* deliver(h, h.db1, [
              ...later,
              { _tag: "RunFinished", seq: 0, runId: run.runId, state: "succeeded", finishedAt: micros(NOW_MS + 10) }
            ])
            const done = yield* t.next
            assert.isTrue(done.done)
            assert.deepStrictEqual(done.lines, [])
            assert.strictEqual(done.run?.state, "succeeded")
            assert.strictEqual(done.run?.exitCode, 0)
            yield* Fiber.join(t.fiber)
            assert.strictEqual(yield* Queue.size(t.out), 0)
          })))

      it.effect("follow with no run yet: waits for the schedule's next run and follows it", () =>
        withHarness({ schedules: { db1: [spec("updates", "*-*-* 00/15:00:00")] } }, (h) =>
          Effect.gen(function*() {
            const t = yield* follow(
              Messages.TailRequest.make({ id: 67, agent: h.db1, schedule: h.updates, follow: true })
            )
            yield* Deferred.await(h.subscribed)
            // A run of another schedule does not count.
            const otherSchedule = runRecords({ schedule: h.backup, atMs: NOW_MS, cmds: [] })
            yield* deliver(h, h.db1, otherSchedule.records)
            const run = runRecords({
              schedule: h.updates,
              atMs: NOW_MS,
              cmds: [{ command: "apt-get -s upgrade", lines: APT_OUTPUT, exitCode: 0 }],
              state: "succeeded"
            })
            yield* deliver(h, h.db1, run.records.slice(0, 3))
            const first = yield* t.next
            assert.strictEqual(first.run?.runId, run.runId)
            assert.deepStrictEqual(lineData(first), APT_OUTPUT.slice(0, 1))
            yield* deliver(h, h.db1, run.records.slice(3))
            const rest: Array<TailChunk> = []
            while (true) {
              const c = yield* t.next
              rest.push(c)
              if (c.done) break
            }
            assert.deepStrictEqual(rest.flatMap(lineData), APT_OUTPUT.slice(1))
            assert.strictEqual(rest[rest.length - 1]!.run?.state, "succeeded")
            yield* Fiber.join(t.fiber)
          })))

      it.effect("follow of an unknown schedule or agent is refused at once (it used to wait forever)", () =>
        withHarness({ schedules: { db1: [spec("backup", "*-*-* 02:00:00")] } }, (h) =>
          Effect.gen(function*() {
            const message = yield* expectError(
              "not_found",
              Messages.TailRequest.make({ id: 80, agent: h.db1, schedule: h.updates, follow: true })
            )
            assert.include(message, "unknown schedule")
            yield* expectError(
              "not_found",
              Messages.TailRequest.make({ id: 81, agent: h.db1, schedule: h.updates, follow: true, continuous: true })
            )
            yield* expectError(
              "not_found",
              Messages.TailRequest.make({ id: 82, agent: h.web1, follow: true, continuous: true })
            )
            yield* expectError(
              "bad_request",
              Messages.TailRequest.make({ id: 83, schedule: h.backup, follow: true, continuous: true })
            )
          })))

      it.effect("continuous: a finished run is not replayed; waiting (next fire time), the run, its end, waiting again", () =>
        withHarness({ schedules: { db1: [spec("updates", "*-*-* 00/15:00:00")] } }, (h) =>
          Effect.gen(function*() {
            const old = runRecords({
              schedule: h.updates,
              atMs: NOW_MS - 60_000,
              cmds: [{ command: "true", lines: ["old"], exitCode: 0 }],
              state: "succeeded"
            })
            yield* ingest(h, h.db1, old.records)
            const t = yield* follow(
              Messages.TailRequest.make({ id: 84, agent: h.db1, schedule: h.updates, follow: true, continuous: true })
            )
            const waiting = yield* t.next
            assert.deepStrictEqual(waiting.waiting, {
              agent: h.db1,
              schedule: h.updates,
              nextAt: micros(Date.UTC(2025, 9, 20, 15, 0, 0)),
              paused: false
            })
            assert.isFalse(waiting.done)
            yield* Deferred.await(h.subscribed)
            const run = runRecords({
              schedule: h.updates,
              atMs: NOW_MS,
              cmds: [{ command: "apt-get -s upgrade", lines: APT_OUTPUT, exitCode: 0 }],
              state: "succeeded"
            })
            yield* deliver(h, h.db1, run.records)
            const chunks: Array<TailChunk> = []
            while (true) {
              const c = yield* t.next
              chunks.push(c)
              assert.isFalse(c.done)
              if (c.end === true) break
            }
            assert.strictEqual(chunks[0]!.run?.runId, run.runId)
            assert.deepStrictEqual(chunks.flatMap(lineData), APT_OUTPUT)
            assert.strictEqual(chunks[chunks.length - 1]!.run?.state, "succeeded")
            const again = yield* t.next
            assert.strictEqual(again.waiting?.schedule, h.updates)
            yield* Fiber.interrupt(t.fiber)
          })))

      it.effect("continuous without a schedule: every run of the fleet as it happens, lines carry agent and schedule", () =>
        withHarness({ schedules: { db1: [spec("backup", "*-*-* 02:00:00")] } }, (h) =>
          Effect.gen(function*() {
            const t = yield* follow(Messages.TailRequest.make({ id: 85, follow: true, continuous: true }))
            yield* Deferred.await(h.subscribed)
            const run = runRecords({
              schedule: h.backup,
              atMs: NOW_MS,
              cmds: [{ command: "false", lines: ["one", "two"], exitCode: 1 }],
              state: "failed"
            })
            // A heartbeat between the two lines: forwarded in its place, as a chunk of its own.
            const beat: AgentRecord = {
              _tag: "Heartbeat",
              seq: 0,
              runId: run.runId,
              ts: micros(NOW_MS + 1),
              status: "halfway"
            }
            yield* deliver(h, h.db1, [...run.records.slice(0, 3), beat, ...run.records.slice(3)])
            const chunks: Array<TailChunk> = []
            while (true) {
              const c = yield* t.next
              // The database is shared with other tests: only this run counts.
              if (
                c.run?.runId !== run.runId && !c.lines.some((l) => l.runId === run.runId) &&
                c.beat?.runId !== run.runId
              ) continue
              chunks.push(c)
              if (c.end === true) break
            }
            assert.deepStrictEqual(
              chunks.filter((c) => c.lines.length > 0 || c.beat !== undefined).map((c) =>
                c.beat === undefined ? c.lines.map((l) => l.data).join(",") : `beat:${c.beat.status}`
              ),
              ["one", "beat:halfway", "two"]
            )
            assert.deepInclude(chunks.find((c) => c.beat !== undefined)!.beat, {
              agent: h.db1,
              schedule: h.backup,
              progress: null,
              message: null
            })
            assert.strictEqual(chunks[0]!.run?.runId, run.runId)
            const lines = chunks.flatMap((c) => c.lines)
            assert.deepStrictEqual(lines.map((l) => [l.agent, l.schedule, l.data]), [[h.db1, h.backup, "one"], [
              h.db1,
              h.backup,
              "two"
            ]])
            assert.strictEqual(chunks[chunks.length - 1]!.run?.state, "failed")
            yield* Fiber.interrupt(t.fiber)
          })))

      it.effect("follow by run id before the agent started it (run now, then tail -f)", () =>
        withHarness({}, (h) =>
          Effect.gen(function*() {
            const runId = uuidv4() as RunId
            const t = yield* follow(Messages.TailRequest.make({ id: 68, runId, follow: true }))
            yield* Deferred.await(h.subscribed)
            const run = runRecords({
              runId,
              schedule: h.backup,
              atMs: NOW_MS,
              cmds: [{ command: "false", lines: ["nope"], exitCode: 1 }],
              state: "failed"
            })
            yield* deliver(h, h.db1, run.records)
            const chunks: Array<TailChunk> = []
            while (true) {
              const c = yield* t.next
              chunks.push(c)
              if (c.done) break
            }
            assert.strictEqual(chunks[0]!.run?.runId, runId)
            assert.deepStrictEqual(chunks.flatMap(lineData), ["nope"])
            assert.strictEqual(chunks[chunks.length - 1]!.run?.state, "failed")
            yield* Fiber.join(t.fiber)
          })))

      it.effect("follow fills a gap in lineSeq from the Store (a batch it never heard of)", () =>
        withHarness({}, (h) =>
          Effect.gen(function*() {
            const run = runRecords({
              schedule: h.backup,
              atMs: NOW_MS - 5000,
              cmds: [{ command: "seq 0 5", lines: ["0", "1", "2", "3", "4", "5"], exitCode: 0 }],
              state: "succeeded"
            })
            // records: RunStarted, CommandStarted, lines 0..5 (indices 2..7), CommandExited, RunFinished
            yield* ingest(h, h.db1, run.records.slice(0, 3))
            const t = yield* follow(Messages.TailRequest.make({ id: 69, runId: run.runId, follow: true }))
            assert.deepStrictEqual(lineData(yield* t.next), ["0"])
            yield* ingest(h, h.db1, run.records.slice(3, 5)) // stored, never published
            yield* deliver(h, h.db1, run.records.slice(5, 7))
            assert.deepStrictEqual(lineData(yield* t.next), ["1", "2", "3", "4"])
            yield* deliver(h, h.db1, run.records.slice(7))
            const tail = yield* t.next
            const chunks = tail.done ? [tail] : [tail, yield* t.next]
            assert.deepStrictEqual(chunks.flatMap(lineData), ["5"])
            assert.isTrue(chunks[chunks.length - 1]!.done)
            yield* Fiber.join(t.fiber)
          })))

      it.effect("follow shows each newer heartbeat once (live, and from the Store on a tick), not older ones", () =>
        withHarness({}, (h) =>
          Effect.gen(function*() {
            const run = sleepingRun(h)
            const beat = (ts: number, progress: string, extra: { status?: string; message?: string } = {}) =>
              ({ _tag: "Heartbeat", seq: 0, runId: run.runId, ts: micros(ts), progress, ...extra }) as AgentRecord
            yield* ingest(h, h.db1, [...run.records.slice(0, 3), beat(NOW_MS - 4000, "1/4")])
            const t = yield* follow(Messages.TailRequest.make({ id: 71, runId: run.runId, follow: true }))
            // The first chunk's row has the stored beat: the tail does not send it again.
            const first = yield* t.next
            assert.deepStrictEqual(lineData(first), ["sleeping"])
            assert.strictEqual(first.run?.heartbeat?.progress, "1/4")
            assert.isUndefined(first.beat)
            yield* deliver(h, h.db1, [beat(NOW_MS - 3000, "2/4", { status: "degraded", message: "slow disk" })])
            const live = yield* t.next
            assert.deepStrictEqual(live.beat, {
              runId: run.runId,
              agent: h.db1,
              schedule: h.backup,
              at: micros(NOW_MS - 3000),
              progress: "2/4",
              status: "degraded",
              message: "slow disk"
            })
            assert.deepStrictEqual([live.run, live.lines, live.done], [null, [], false])
            // An older beat (a re-sent batch) changes nothing; a newer one stored but never published
            // (ingested by another bartos) is found on the next tick.
            yield* deliver(h, h.db1, [beat(NOW_MS - 3500, "0/4")])
            yield* ingest(h, h.db1, [beat(NOW_MS - 2000, "3/4")])
            yield* TestClock.adjust(CliHandler.TAIL_POLL)
            const polled = yield* t.next
            assert.strictEqual(polled.beat?.progress, "3/4")
            assert.strictEqual(yield* Queue.size(t.out), 0)
            yield* Fiber.interrupt(t.fiber)
          })))

      it.effect("follow ends when the Store says the run is over without a record (agent lost)", () =>
        withHarness({}, (h) =>
          Effect.gen(function*() {
            const run = sleepingRun(h)
            yield* ingest(h, h.db1, run.records.slice(0, 3))
            const t = yield* follow(Messages.TailRequest.make({ id: 70, runId: run.runId, follow: true }))
            assert.deepStrictEqual(lineData(yield* t.next), ["sleeping"])
            const store = yield* Store
            assert.strictEqual(yield* store.markLost(h.db1, micros(NOW_MS)), 1)
            yield* TestClock.adjust(CliHandler.TAIL_POLL)
            const done = yield* t.next
            assert.isTrue(done.done)
            assert.strictEqual(done.run?.state, "lost")
            yield* Fiber.join(t.fiber)
          })))

      it.effect("follow of a run that is already over behaves like a plain tail", () =>
        withHarness({}, (h) =>
          Effect.gen(function*() {
            const { backupOk } = yield* seedHistory(h)
            const chunks = asChunks(
              yield* ask(Messages.TailRequest.make({ id: 71, runId: backupOk.runId, follow: true }))
            )
            assert.deepStrictEqual(chunks.flatMap(lineData), ["snapshot 1a2b saved", "done"])
            assert.isTrue(chunks[chunks.length - 1]!.done)
            assert.strictEqual(chunks[chunks.length - 1]!.run?.state, "succeeded")
          })))
    })
  })
}
