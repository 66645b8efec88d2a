/**
 * Bounded answers through real sockets (issue 11, "Medium"): a huge `list` travels in bounded
 * frames while an agent on the same bartos keeps its link; a CLI that stops reading is dropped
 * with a bounded buffer; queries are bounded per connection and in total; a MariaDB statement
 * whose CLI went away is killed on the server; `query_requires_admin`.
 */
import * as Messages from "@barto/domain/Messages"
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import type * as net from "node:net"
import { FRAME_BYTES } from "../src/CliHandler.js"
import { MAX_INFLIGHT } from "../src/CliSession.js"
import { Metrics } from "../src/Metrics.js"
import { layerMariadb, Store } from "../src/Store.js"
import { databases, mariadbDatabase, runningStatements } from "./utils/databases.js"
import * as TestServer from "./utils/server.js"

const cliHello = (adminKey?: string): Messages.CliToServer => ({
  _tag: "CliHello",
  protocol: Messages.PROTOCOL_VERSION,
  cliVersion: "0.0.0-test",
  ...(adminKey !== undefined ? { adminKey } : {})
})

const store = (server: TestServer.TestServer) => Context.get(server.context as Context.Context<Store>, Store)

/** `runs` runs of `linesPerRun` lines of `lineBytes` ASCII bytes each, for agent `agent`, schedule `big`. */
const seed = (server: TestServer.TestServer, agent: string, runs: number, linesPerRun: number, lineBytes: number) =>
  Effect.gen(function*() {
    const s = store(server)
    let seq = 0
    const filler = "x".repeat(lineBytes - 12)
    for (let r = 0; r < runs; r++) {
      const runId = Messages.RunId.make(`run-${agent}-${String(r).padStart(5, "0")}`)
      const cmdUuid = `${runId}-c`
      const t = TestServer.micros(1_700_000_000_000 + r * 1000)
      const records: Array<Messages.AgentRecord> = [
        { _tag: "RunStarted", seq: seq++, runId, schedule: "big", trigger: "schedule", scheduledAt: t, startedAt: t },
        { _tag: "CommandStarted", seq: seq++, runId, cmdUuid, cmdIndex: 0, command: "yes", startedAt: t }
      ]
      for (let i = 0; i < linesPerRun; i++) {
        records.push({
          _tag: "OutputLine",
          seq: seq++,
          runId,
          cmdUuid,
          lineSeq: i,
          stream: "stdout",
          ts: t,
          data: `${String(i).padStart(10, "0")} ${filler}`,
          continuation: false
        })
        if (records.length >= 500) yield* s.ingest(agent, "o", records.splice(0))
      }
      records.push({ _tag: "CommandExited", seq: seq++, runId, cmdUuid, exitCode: 0, signal: null, finishedAt: t })
      records.push({ _tag: "RunFinished", seq: seq++, runId, state: "succeeded", finishedAt: t })
      yield* s.ingest(agent, "o", records)
    }
  })

/** Every frame's size in bytes, as the client received it. */
const frameSizes = (ws: { on: (event: "message", f: (data: Buffer) => void) => unknown }) => {
  const sizes: Array<number> = []
  ws.on("message", (data) => sizes.push(data.length))
  return sizes
}

/** An agent that pings every 100 ms and records how long each Pong took. */
const bystander = (server: TestServer.TestServer, name: string) =>
  Effect.gen(function*() {
    const { client } = yield* TestServer.helloAgent(server, name)
    const rtts: Array<number> = []
    const fiber = yield* Effect.gen(function*() {
      for (let id = 1;; id++) {
        const sent = yield* Clock.currentTimeMillis
        yield* client.send({ _tag: "Ping", id, sentAt: TestServer.micros(sent) })
        while ((yield* client.nextTagged("Pong", 10_000)).id !== id) {
          // an older pong
        }
        rtts.push((yield* Clock.currentTimeMillis) - sent)
        yield* Effect.sleep("100 millis")
      }
    }).pipe(Effect.forkScoped)
    return { client, rtts, fiber }
  })

/** Every part of the answer to `request` (up to and with the one without `more`). */
const allParts = (cli: TestServer.CliClient, id: number) =>
  Effect.gen(function*() {
    const parts: Array<Messages.CliResponse> = []
    while (true) {
      const m = yield* cli.next(20_000)
      if (m._tag === "Pong" || m._tag === "ServerHelloCli" || m._tag === "ProtocolError" || m.id !== id) continue
      parts.push(m)
      if (!("more" in m) || m.more !== true) return parts
    }
  })

const sqliteOnly = { store: "sqlite" as const }

describe("bounded answers through a real socket", () => {
  for (const db of databases) {
    it.scopedLive(
      `${db.name}: a huge list arrives in bounded frames while a bystander agent keeps its link`,
      () =>
        Effect.gen(function*() {
          const storeLayer = db.name === "sqlite"
            ? "sqlite" as const
            : Layer.unwrapScoped(Effect.map(mariadbDatabase(), (o) => layerMariadb(o)))
          const server = yield* TestServer.make({
            store: storeLayer,
            // A frozen event loop would drop the bystander within 2 s.
            hub: (o) => ({ ...o, livenessMs: 2000 })
          })
          // 24 MB of output: built in one frame, this froze bartos for seconds.
          const RUNS = 12
          const LINES = 2000
          yield* seed(server, "host", RUNS, LINES, 1000)
          const agent = yield* bystander(server, "bystander")
          yield* Effect.sleep("300 millis")

          const cli = yield* TestServer.connectCli(server.url("cli", "barto-cli"))
          yield* cli.send(cliHello())
          yield* cli.nextTagged("ServerHelloCli")
          const sizes = frameSizes(cli.ws)
          const before = sizes.length
          yield* cli.send({ _tag: "ListRequest", id: 7, agent: "host", cmd: "big" })
          const parts = yield* allParts(cli, 7)
          const frames = sizes.slice(before)

          // Every part is bounded, and together they are the whole answer, in order.
          assert.isAbove(parts.length, 50)
          assert.isAtMost(Math.max(...frames), FRAME_BYTES * 1.5, `largest frame of ${frames.length}`)
          let whole = parts[0] as Messages.PagedResponse
          for (const p of parts.slice(1)) whole = Messages.appendPart(whole, p as Messages.PagedResponse)
          assert.strictEqual(whole._tag, "LinesResponse")
          if (whole._tag !== "LinesResponse") return
          assert.strictEqual(whole.lines.length, RUNS * LINES)
          assert.isUndefined(whole.truncated)
          const expected = Array.from(
            { length: RUNS },
            (_, r) => Array.from({ length: LINES }, (_, i) => `run-host-${String(r).padStart(5, "0")}/${i}`)
          ).flat()
          assert.deepStrictEqual(whole.lines.map((l) => `${l.runId}/${l.lineSeq}`), expected)

          // The agent's pings were answered all along, and it is still connected.
          yield* Effect.sleep("300 millis")
          assert.isAbove(agent.rtts.length, 3)
          assert.isBelow(Math.max(...agent.rtts), 1500, `pong round trips: ${agent.rtts.join(", ")}`)
          yield* cli.send({ _tag: "ClientsRequest", id: 8 })
          const clients = yield* cli.nextTagged("ClientsResponse")
          assert.deepStrictEqual(clients.clients.map((c) => c.name), ["bystander"])
          yield* Fiber.interrupt(agent.fiber)
        }),
      { timeout: 120_000 }
    )
  }

  it.scopedLive("an answer over max_answer_bytes stops there and says truncated", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ ...sqliteOnly, hub: (o) => ({ ...o, maxAnswerBytes: 1024 * 1024 }) })
      yield* seed(server, "host", 3, 1000, 1000)
      const cli = yield* TestServer.connectCli(server.url("cli"))
      yield* cli.send(cliHello())
      yield* cli.nextTagged("ServerHelloCli")
      yield* cli.send({ _tag: "ListRequest", id: 1, agent: "host", cmd: "big" })
      const parts = yield* allParts(cli, 1)
      const lines = parts.flatMap((p) => (p._tag === "LinesResponse" ? p.lines : []))
      const last = parts[parts.length - 1]!
      assert.isTrue(last._tag === "LinesResponse" && last.truncated === true)
      // About 1 MiB of ~1.2 KiB lines: the cap, not the 3,000 lines stored.
      assert.isAbove(lines.length, 700)
      assert.isBelow(lines.length, 1000)
    }), { timeout: 60_000 })

  it.scopedLive(
    "a CLI that stops reading is dropped; what bartos holds for it stays bounded",
    () =>
      Effect.gen(function*() {
        const sendBuffer = 1024 * 1024
        const server = yield* TestServer.make({
          ...sqliteOnly,
          hub: (o) => ({ ...o, cliSendBufferBytes: sendBuffer, cliStallMs: 1500, cliKeepaliveMs: 60_000 })
        })
        yield* seed(server, "host", 6, 2000, 1000) // 12 MB per answer
        const rssBefore = process.memoryUsage().rss
        const cli = yield* TestServer.connectCli(server.url("cli"))
        yield* cli.send(cliHello())
        yield* cli.nextTagged("ServerHelloCli")
        // Stop reading: the kernel buffers fill, then bartos' own buffer would grow without bound.
        const socket = (cli.ws as unknown as { _socket: net.Socket })._socket
        socket.pause()
        for (let id = 1; id <= MAX_INFLIGHT; id++) {
          yield* cli.send({ _tag: "ListRequest", id, agent: "host", cmd: "big" })
        }
        let rssMax = rssBefore
        const sampler = yield* Effect.sync(() => (rssMax = Math.max(rssMax, process.memoryUsage().rss))).pipe(
          Effect.zipRight(Effect.sleep("50 millis")),
          Effect.forever,
          Effect.forkScoped
        )
        yield* server.waitForLog("dropped cli connection", 30_000)
        yield* Fiber.interrupt(sampler)
        const line = server.logs.find((l) => l.includes("dropped cli connection"))!
        const waiting = Number(/with (\d+) bytes waiting/.exec(line)?.[1])
        // The send buffer, plus at most one part in flight per request.
        assert.isAtMost(waiting, sendBuffer + MAX_INFLIGHT * FRAME_BYTES * 2, line)
        const metrics = Context.get(server.context as Context.Context<Metrics>, Metrics)
        assert.strictEqual(yield* metrics.value("bartos_cli_dropped_total", { reason: "not_reading" }), 1)
        // 8 answers of 12 MB each, never built whole: growth stays far below their size.
        assert.isBelow(
          rssMax - rssBefore,
          96 * 1024 * 1024,
          `RSS grew by ${((rssMax - rssBefore) / 2 ** 20).toFixed(1)} MiB`
        )
        // bartos serves the next CLI as if nothing happened.
        const next = yield* TestServer.connectCli(server.url("cli"))
        yield* next.send(cliHello())
        yield* next.nextTagged("ServerHelloCli")
        yield* next.send({ _tag: "InfoRequest", id: 1 })
        yield* next.nextTagged("InfoResponse")
      }),
    { timeout: 90_000 }
  )

  it.scopedLive(
    "a connection gets at most MAX_INFLIGHT requests and one query at a time; the server at most query_concurrency",
    () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make({
          ...sqliteOnly,
          toml: "[limits]\nquery_concurrency = 2\nquery_timeout_ms = 3000\n"
        })
        const slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"
        // One connection, 12 queries at once: one runs, the rest are refused at once.
        const one = yield* TestServer.connectCli(server.url("cli"))
        yield* one.send(cliHello())
        yield* one.nextTagged("ServerHelloCli")
        for (let id = 1; id <= 12; id++) yield* one.send({ _tag: "QueryRequest", id, sql: slow })
        const perConnection: Array<Messages.ServerToCli> = []
        for (let i = 0; i < 11; i++) perConnection.push(yield* one.nextTagged("CliError"))
        assert.isTrue(perConnection.every((e) => e._tag === "CliError" && /one query at a time/.test(e.message)))

        // Six connections, one query each, while the first still runs: at most 2 at once.
        const children = () => {
          const out = new Set<string>()
          for (const task of fs.readdirSync("/proc/self/task")) {
            for (const pid of fs.readFileSync(`/proc/self/task/${task}/children`, "utf8").split(" ")) {
              if (pid !== "") out.add(pid)
            }
          }
          return out.size
        }
        const baseline = children()
        let most = 0
        const sampler = yield* Effect.sync(() => (most = Math.max(most, children() - baseline))).pipe(
          Effect.zipRight(Effect.sleep("10 millis")),
          Effect.forever,
          Effect.forkScoped
        )
        const others = yield* Effect.forEach(Array.from({ length: 6 }), () =>
          Effect.gen(function*() {
            const cli = yield* TestServer.connectCli(server.url("cli"))
            yield* cli.send(cliHello())
            yield* cli.nextTagged("ServerHelloCli")
            yield* cli.send({ _tag: "QueryRequest", id: 1, sql: slow })
            return yield* cli.next(10_000)
          }), { concurrency: "unbounded" })
        yield* Fiber.interrupt(sampler)
        const busy = others.filter((m) => m._tag === "CliError" && /already running 2 queries/.test(m.message))
        assert.isAtLeast(busy.length, 5, JSON.stringify(others))
        assert.isAtMost(most, 2, "query processes at once")

        // MAX_INFLIGHT: tails that wait forever hold their slots; one more request is refused.
        const tails = yield* TestServer.connectCli(server.url("cli"))
        yield* tails.send(cliHello())
        yield* tails.nextTagged("ServerHelloCli")
        for (let id = 1; id <= MAX_INFLIGHT; id++) {
          yield* tails.send({ _tag: "TailRequest", id, agent: "nobody", schedule: "never", follow: true })
        }
        yield* tails.send({ _tag: "InfoRequest", id: 99 })
        const refused = yield* tails.nextTagged("CliError")
        assert.strictEqual(refused.id, 99)
        assert.match(refused.message, /too many requests in flight/)
      }),
    { timeout: 60_000 }
  )

  it.scopedLive(
    "query_requires_admin: on by default with an admin key, off when configured so",
    () =>
      Effect.gen(function*() {
        const ask = (server: TestServer.TestServer, key?: string) =>
          Effect.gen(function*() {
            const cli = yield* TestServer.connectCli(server.url("cli"))
            yield* cli.send(cliHello(key))
            yield* cli.nextTagged("ServerHelloCli")
            yield* cli.send({ _tag: "QueryRequest", id: 1, sql: "SELECT 1 AS one" })
            return yield* cli.next()
          })
        const guarded = yield* TestServer.make({ ...sqliteOnly, toml: `admin_key = "adm"\n` })
        const refused = yield* ask(guarded)
        assert.isTrue(
          refused._tag === "CliError" && refused.code === "forbidden" &&
            /query requires the admin key/.test(refused.message)
        )
        assert.strictEqual((yield* ask(guarded, "adm"))._tag, "QueryResponse")
        const open = yield* TestServer.make({
          ...sqliteOnly,
          toml: `admin_key = "adm"\nquery_requires_admin = false\n`
        })
        assert.strictEqual((yield* ask(open))._tag, "QueryResponse")
      }),
    { timeout: 60_000 }
  )
})

describe.runIf(databases.some((d) => d.name === "mariadb"))("MariaDB: KILL QUERY through a real socket", () => {
  it.scopedLive(
    "a statement whose CLI went away is killed, so the next query runs at once",
    () =>
      Effect.gen(function*() {
        const options = yield* mariadbDatabase()
        const server = yield* TestServer.make({
          store: layerMariadb({ ...options, queryConcurrency: 1 }),
          toml: "[limits]\nquery_timeout_ms = 120000\n"
        })
        const sleeping = () => runningStatements(options.queryUsername, "SELECT SLEEP")
        const a = yield* TestServer.connectCli(server.url("cli", "operator-a"))
        yield* a.send(cliHello())
        yield* a.nextTagged("ServerHelloCli")
        yield* a.send({ _tag: "QueryRequest", id: 1, sql: "SELECT SLEEP(60)" })
        for (let i = 0; i < 200 && (yield* sleeping()) === 0; i++) yield* Effect.sleep("20 millis")
        assert.strictEqual(yield* sleeping(), 1)
        // Operator A gives up (Ctrl-C): the socket goes away mid-statement.
        a.ws.terminate()
        for (let i = 0; i < 100 && (yield* sleeping()) > 0; i++) yield* Effect.sleep("20 millis")
        assert.strictEqual(yield* sleeping(), 0, "the abandoned SLEEP no longer runs on the server")
        // The only query slot is free again: another operator's SELECT 1 answers promptly.
        const b = yield* TestServer.connectCli(server.url("cli", "operator-b"))
        yield* b.send(cliHello())
        yield* b.nextTagged("ServerHelloCli")
        const started = yield* Clock.currentTimeMillis
        yield* b.send({ _tag: "QueryRequest", id: 1, sql: "SELECT 1 AS one" })
        const answer = yield* b.nextTagged("QueryResponse", 5000)
        assert.deepStrictEqual(answer.rows, [["1"]])
        assert.isBelow((yield* Clock.currentTimeMillis) - started, 1000)
      }),
    { timeout: 60_000 }
  )
})
