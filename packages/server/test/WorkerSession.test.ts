import * as Envelope from "@barto/domain/Envelope"
import * as Ids from "@barto/domain/Ids"
import type * as Messages from "@barto/domain/Messages"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { Ingested } from "../src/Events.js"
import { Metrics } from "../src/Metrics.js"
import { Registry } from "../src/Registry.js"
import { Store } from "../src/Store.js"
import { CONNECTION_LINES_PER_PERIOD } from "../src/WorkerSession.js"
import { databases } from "./utils/databases.js"
import * as TestServer from "./utils/server.js"

const SCHEDULES = `
[[schedules.alpha.schedules]]
name = "hello"
on_calendar = "*-*-* 10:R:R"
cmds = ["echo hi"]
timeout = "90s"

[[schedules.alpha.schedules]]
name = "second"
on_calendar = "hourly"
cmds = ["true", "false"]
on_failure = "stop"

[[schedules.beta.schedules]]
name = "only"
on_calendar = "daily"
cmds = ["date"]
`

const runStarted = (seq: number, runId = `run-${seq}`): Messages.AgentRecord => ({
  _tag: "RunStarted",
  seq,
  runId: runId as Messages.RunId,
  schedule: "hello",
  trigger: "schedule",
  scheduledAt: TestServer.micros(1_700_000_000_000),
  startedAt: TestServer.micros(1_700_000_000_010)
})

const line = (seq: number, runId = "run-0", data = `line ${seq}`): Messages.AgentRecord => ({
  _tag: "OutputLine",
  seq,
  runId: runId as Messages.RunId,
  cmdUuid: "cmd-1",
  lineSeq: seq,
  stream: "stdout",
  ts: TestServer.micros(1_700_000_000_020),
  data,
  continuation: false
})

const service = <I, S>(server: TestServer.TestServer, tag: Context.Tag<I, S>) =>
  Context.get(server.context as Context.Context<I>, tag)

describe("WorkerSession: handshake", () => {
  it.scopedLive("a burst of connections logs each agent, beyond the budget at DEBUG, summed up at INFO", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES })
      const n = CONNECTION_LINES_PER_PERIOD + 15
      const names = Array.from({ length: n }, (_, i) => `burst-${i}`)
      yield* Effect.forEach(names, (name) => TestServer.helloAgent(server, name, { hello: { outboxId: name } }), {
        concurrency: "unbounded",
        discard: true
      })
      yield* server.waitForLog("more worker connections in the last", 5000)
      // The shutdown closes every session and sums up what the last period folded.
      yield* server.teardown
      for (
        const [what, line] of [["connections", "worker connection from"], ["disconnections", "websocket disconnected"]]
      ) {
        const lineOf = (name: string) => server.logs.filter((l) => l.endsWith(`${line} '${name} (127.0.0.1)'`))
        // Every agent still has its line, exactly once, at INFO or (beyond the budget) at DEBUG.
        for (const name of names) assert.strictEqual(lineOf(name).length, 1, `${line} ${name}`)
        const debug = names.filter((name) => lineOf(name)[0]!.startsWith("DEBUG")).length
        // The summaries count exactly the lines written at DEBUG.
        const summary = new RegExp(
          `^INFO (\\d+) more worker ${what} in the last [\\d.]+ s \\(each one logged at DEBUG\\)$`
        )
        const summed = server.logs.map((l) => l.match(summary)).reduce(
          (sum, m) => sum + (m === null ? 0 : Number(m[1])),
          0
        )
        assert.strictEqual(summed, debug, what)
        if (what === "connections") {
          assert.isAbove(debug, 0)
          assert.isAtMost(n - debug, 2 * CONNECTION_LINES_PER_PERIOD, "INFO lines beyond the budget of the periods")
        }
      }
    }))

  it.scopedLive("hello both ways, then the agent's own table with R resolved", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES })
      const { hello, table } = yield* TestServer.helloAgent(server, "alpha")
      assert.strictEqual(hello.protocol, 1)
      assert.strictEqual(hello.serverVersion, "0.0.0-test")
      assert.strictEqual(hello.ackedUpTo, -1)
      assert.match(hello.sessionId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      assert.deepStrictEqual(table.schedules.map((s) => s.name), ["hello", "second"])
      const [first, second] = table.schedules
      assert.strictEqual(first!.onCalendar, "*-*-* 10:R:R")
      assert.notInclude(first!.calendar, "R")
      assert.strictEqual(first!.timeoutSecs, 90)
      assert.strictEqual(second!.onFailure, "stop")
      assert.deepStrictEqual(second!.cmds, ["true", "false"])
      assert.isFalse(first!.paused)

      // Same content, same version, same resolved R: a reconnect never moves a job.
      yield* Effect.sleep(0)
      const again = yield* TestServer.helloAgent(server, "alpha")
      assert.strictEqual(again.table.version, table.version)
      assert.strictEqual(again.table.schedules[0]!.calendar, first!.calendar)
      assert.notStrictEqual(again.hello.sessionId, hello.sessionId)
    }))

  it.scopedLive("an agent without schedules gets an empty table and stays connected", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES })
      const { client, table } = yield* TestServer.helloAgent(server, "nobody")
      assert.deepStrictEqual(table.schedules, [])
      yield* client.send({ _tag: "Ping", id: 7, sentAt: TestServer.micros(1) })
      const pong = yield* client.nextTagged("Pong")
      assert.deepStrictEqual(pong, { _tag: "Pong", id: 7, sentAt: TestServer.micros(1) })
    }))

  it.scopedLive("a protocol mismatch gets a ProtocolError and close 4002 with a clear reason", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES })
      const client = yield* TestServer.connectAgent(server.url("worker", "alpha"))
      yield* client.send(TestServer.agentHello({ protocol: 99 }))
      const error = yield* client.nextTagged("ProtocolError")
      assert.strictEqual(error.code, "protocol_version")
      const closed = yield* client.closed()
      assert.deepStrictEqual(closed, { code: 4002, reason: "protocol version mismatch: server 1, agent 99" })
    }))

  it.scopedLive("a first frame other than AgentHello is refused with 1008", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES })
      const client = yield* TestServer.connectAgent(server.url("worker", "alpha"))
      yield* client.send({ _tag: "Ping", id: 1, sentAt: TestServer.micros(1) })
      const error = yield* client.nextTagged("ProtocolError")
      assert.strictEqual(error.code, "unexpected")
      assert.deepStrictEqual(yield* client.closed(), { code: 1008, reason: "first frame must be AgentHello" })
    }))

  it.scopedLive("no AgentHello in time closes the socket", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES, hub: (o) => ({ ...o, helloTimeoutMs: 200 }) })
      const client = yield* TestServer.connectAgent(server.url("worker", "alpha"))
      const closed = yield* client.closed()
      assert.strictEqual(closed.code, 1008)
      assert.match(closed.reason, /no AgentHello within/)
    }))

  it.scopedLive("AgentInfo reaches the registry", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES })
      const { client, hello } = yield* TestServer.helloAgent(server, "alpha")
      const info = { osName: "Linux", hostname: "alpha-host", osVersion: "6", kernel: "6.1", agentVersion: "0.1.0" }
      yield* client.send({ _tag: "AgentInfo", info } as Messages.AgentToServer)
      // A Ping after it: the session is ordered, so once the Pong is here the info is stored.
      yield* client.send({ _tag: "Ping", id: 1, sentAt: TestServer.micros(1) })
      yield* client.nextTagged("Pong")
      const rows = yield* service(server, Registry).list
      assert.strictEqual(rows.length, 1)
      assert.strictEqual(rows[0]!.name, "alpha")
      assert.strictEqual(rows[0]!.sessionId, hello.sessionId)
      assert.strictEqual(rows[0]!.info?.hostname, "alpha-host")
      assert.include(server.memory!.events, `info alpha ${hello.sessionId} alpha-host`)
    }))
})

describe("WorkerSession: records and acks", () => {
  it.scopedLive("a batch is stored, acked and published; a resend is acked without duplicates", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES })
      const subscription = yield* PubSub.subscribe(service(server, Ingested))
      const { client } = yield* TestServer.helloAgent(server, "alpha")
      const batch = [runStarted(0, "run-0"), line(1), line(2)]
      yield* client.send({ _tag: "RecordBatch", records: batch })
      assert.deepStrictEqual(yield* client.nextTagged("Ack"), { _tag: "Ack", upTo: 2 })
      const published = yield* Queue.take(subscription)
      assert.strictEqual(published.agent, "alpha")
      assert.deepStrictEqual(published.records.map((r) => r.seq), [0, 1, 2])

      // The agent did not see the Ack and resends, plus one new record.
      yield* client.send({ _tag: "RecordBatch", records: [...batch, line(3)] })
      assert.deepStrictEqual(yield* client.nextTagged("Ack"), { _tag: "Ack", upTo: 3 })
      const second = yield* Queue.take(subscription)
      assert.deepStrictEqual(second.records.map((r) => r.seq), [3])
      assert.deepStrictEqual(server.memory!.records.get("alpha")!.map((r) => r.seq), [0, 1, 2, 3])
      assert.strictEqual(yield* service(server, Metrics).value("bartos_records_ingested_total"), 4)

      // A new connection learns what is stored.
      const again = yield* TestServer.helloAgent(server, "alpha")
      assert.strictEqual(again.hello.ackedUpTo, 3)
      const other = yield* TestServer.helloAgent(server, "alpha-2", { hello: { outboxId: "other" } })
      assert.strictEqual(other.hello.ackedUpTo, -1)
    }))

  it.scopedLive("a database error: no Ack, the connection stays, the resend is acked later", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES })
      const { client } = yield* TestServer.helloAgent(server, "alpha")
      server.memory!.failIngest = true
      yield* client.send({ _tag: "RecordBatch", records: [runStarted(0)] })
      yield* server.waitForLog("not acked")
      yield* client.send({ _tag: "Ping", id: 2, sentAt: TestServer.micros(2) })
      const reply = yield* client.next()
      assert.strictEqual(reply._tag, "Pong", "no Ack was sent for the failed batch")
      server.memory!.failIngest = false
      yield* client.send({ _tag: "RecordBatch", records: [runStarted(0)] })
      assert.deepStrictEqual(yield* client.nextTagged("Ack"), { _tag: "Ack", upTo: 0 })
      assert.strictEqual(yield* service(server, Metrics).value("bartos_ingest_errors_total"), 1)
    }))

  it.scopedLive("a Ping behind a batch still being stored is answered after its Ack, never before", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES })
      const held = yield* TestServer.holdIngest(server.memory!)
      const { client } = yield* TestServer.helloAgent(server, "alpha")
      yield* client.send({ _tag: "RecordBatch", records: [line(0)] })
      yield* held.started
      yield* client.send({ _tag: "Ping", id: 7, sentAt: TestServer.micros(7) })
      yield* Effect.sleep("50 millis")
      yield* held.release
      assert.deepStrictEqual(yield* client.next(), { _tag: "Ack", upTo: 0 })
      assert.deepStrictEqual(yield* client.next(), { _tag: "Pong", id: 7, sentAt: TestServer.micros(7) })
      // Idle again: the next Ping takes the fast path and is answered at once.
      server.memory!.beforeIngest = undefined
      yield* client.send({ _tag: "Ping", id: 8, sentAt: TestServer.micros(8) })
      assert.deepStrictEqual(yield* client.next(), { _tag: "Pong", id: 8, sentAt: TestServer.micros(8) })
    }))

  it.scopedLive("200 batches sent back-to-back are stored in order; queued batches share one Ack", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES })
      const held = yield* TestServer.holdIngest(server.memory!)
      const { client } = yield* TestServer.helloAgent(server, "alpha")
      yield* client.send({ _tag: "RecordBatch", records: [line(0)] })
      yield* held.started
      // These queue up behind the batch held in the store.
      for (let i = 1; i < 200; i++) yield* client.send({ _tag: "RecordBatch", records: [line(i)] })
      yield* client.send({ _tag: "Ping", id: 1, sentAt: TestServer.micros(1) })
      yield* Effect.sleep("100 millis")
      server.memory!.beforeIngest = undefined
      yield* held.release
      const acks: Array<number> = []
      while (acks.at(-1) !== 199) acks.push((yield* client.nextTagged("Ack")).upTo)
      assert.strictEqual(acks[0], 0)
      assert.isBelow(acks.length, 200, "queued batches were joined")
      assert.isTrue(acks.every((a, i) => i === 0 || a > acks[i - 1]!), `acks increase: ${acks}`)
      assert.deepStrictEqual(
        server.memory!.records.get("alpha")!.map((r) => r.seq),
        Array.from({ length: 200 }, (_, i) => i)
      )
      yield* client.nextTagged("Pong")
    }))

  it.scopedLive("a window of large batches, each in a socket read of its own, is stored with one Ack", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES })
      const { client } = yield* TestServer.helloAgent(server, "alpha")
      // ~40 KiB each: Node reads a socket 64 KiB at a time, so no read holds two of them whole.
      const frames = 3
      const perFrame = 100
      for (let f = 0; f < frames; f++) {
        yield* client.send({
          _tag: "RecordBatch",
          records: Array.from({ length: perFrame }, (_, i) => line(f * perFrame + i, "run-0", "x".repeat(400)))
        })
      }
      const last = frames * perFrame - 1
      assert.deepStrictEqual(yield* client.nextTagged("Ack"), { _tag: "Ack", upTo: last }, "one Ack for the window")
      assert.deepStrictEqual(
        server.memory!.records.get("alpha")!.map((r) => r.seq),
        Array.from({ length: last + 1 }, (_, i) => i)
      )
    }))

  it.scopedLive("a bad frame among queued batches is answered in its place; the batches around it are stored", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES })
      const held = yield* TestServer.holdIngest(server.memory!)
      const { client } = yield* TestServer.helloAgent(server, "alpha")
      yield* client.send({ _tag: "RecordBatch", records: [line(0)] })
      yield* held.started
      yield* client.send({ _tag: "RecordBatch", records: [line(1)] })
      yield* client.sendRaw(new TextEncoder().encode("not json"))
      yield* client.send({ _tag: "RecordBatch", records: [line(2)] })
      yield* Effect.sleep("100 millis")
      server.memory!.beforeIngest = undefined
      yield* held.release
      const replies: Array<string> = []
      while (replies.at(-1) !== "Ack 2") {
        const m = yield* client.next()
        replies.push(m._tag === "Ack" ? `Ack ${m.upTo}` : m._tag)
      }
      assert.deepStrictEqual(replies, ["Ack 0", "Ack 1", "ProtocolError", "Ack 2"])
      assert.deepStrictEqual(server.memory!.records.get("alpha")!.map((r) => r.seq), [0, 1, 2])
    }))
})

describe("WorkerSession: bad frames", () => {
  const LIMITS = `${SCHEDULES}\n[limits]\nmax_frame_bytes = 1024\n`

  it.scopedLive("not JSON, unknown tag, wrong shape, text, too large: each answered, the connection survives", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: LIMITS })
      const { client } = yield* TestServer.helloAgent(server, "alpha")
      const bystander = yield* TestServer.helloAgent(server, "beta")
      const expectError = (code: string, pattern: RegExp) =>
        client.nextTagged("ProtocolError").pipe(
          Effect.tap((e) => {
            assert.strictEqual(e.code, code)
            assert.match(e.message, pattern)
          })
        )

      yield* client.sendRaw(new TextEncoder().encode("{not json"))
      yield* expectError("undecodable", /not UTF-8 JSON/)
      yield* client.sendRaw(new TextEncoder().encode(JSON.stringify({ _tag: "Bogus" })))
      yield* expectError("unknown_tag", /Bogus/)
      yield* client.sendRaw(new TextEncoder().encode(JSON.stringify({ _tag: "Ping", id: "x" })))
      yield* expectError("undecodable", /id/)
      yield* client.sendRaw("hello", false)
      yield* expectError("undecodable", /text frames/)
      yield* client.sendRaw(new Uint8Array(2000).fill(32))
      yield* expectError("frame_too_large", /2000 bytes exceeds the limit of 1024/)

      yield* client.send({ _tag: "Ping", id: 3, sentAt: TestServer.micros(3) })
      assert.strictEqual((yield* client.nextTagged("Pong")).id, 3)
      yield* bystander.client.send({ _tag: "Ping", id: 4, sentAt: TestServer.micros(4) })
      assert.strictEqual((yield* bystander.client.nextTagged("Pong")).id, 4)

      const metrics = service(server, Metrics)
      assert.strictEqual(yield* metrics.value("bartos_frames_rejected_total", { reason: "undecodable" }), 3)
      assert.strictEqual(yield* metrics.value("bartos_frames_rejected_total", { reason: "unknown_tag" }), 1)
      assert.strictEqual(yield* metrics.value("bartos_frames_rejected_total", { reason: "frame_too_large" }), 1)
    }))

  it.scopedLive("a second AgentHello is refused like any bad frame: answered and counted", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES })
      const { client } = yield* TestServer.helloAgent(server, "alpha")
      yield* client.send(TestServer.agentHello())
      const error = yield* client.nextTagged("ProtocolError")
      assert.strictEqual(error.code, "unexpected")
      assert.match(error.message, /AgentHello was already received/)
      assert.strictEqual(
        yield* service(server, Metrics).value("bartos_frames_rejected_total", { reason: "unexpected" }),
        1
      )
      yield* client.send({ _tag: "Ping", id: 1, sentAt: TestServer.micros(1) })
      assert.strictEqual((yield* client.nextTagged("Pong")).id, 1)
    }))

  it.scopedLive("a first frame other than AgentHello is counted as rejected", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES })
      const client = yield* TestServer.connectAgent(server.url("worker", "alpha"))
      yield* client.send({ _tag: "Pong", id: 1, sentAt: TestServer.micros(1) })
      assert.strictEqual((yield* client.nextTagged("ProtocolError")).code, "unexpected")
      assert.strictEqual((yield* client.closed()).code, 1008)
      assert.strictEqual(
        yield* service(server, Metrics).value("bartos_frames_rejected_total", { reason: "unexpected" }),
        1
      )
    }))

  it.scopedLive("a defect while handling a frame: counted ProtocolError, close 1011, bartos keeps serving", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES })
      const { client } = yield* TestServer.helloAgent(server, "alpha")
      const bystander = yield* TestServer.helloAgent(server, "beta")
      server.memory!.beforeIngest = Effect.die(new RangeError("Maximum call stack size exceeded"))
      yield* client.send({ _tag: "RecordBatch", records: [runStarted(0)] })
      const error = yield* client.nextTagged("ProtocolError")
      assert.strictEqual(error.code, "unexpected")
      assert.deepStrictEqual(yield* client.closed(), { code: 1011, reason: "internal error handling a frame" })
      assert.strictEqual(
        yield* service(server, Metrics).value("bartos_frames_rejected_total", { reason: "unexpected" }),
        1
      )
      yield* server.waitForLog("defect while handling a frame")
      server.memory!.beforeIngest = undefined
      yield* bystander.client.send({ _tag: "Ping", id: 4, sentAt: TestServer.micros(4) })
      assert.strictEqual((yield* bystander.client.nextTagged("Pong")).id, 4)
      const again = yield* TestServer.helloAgent(server, "alpha")
      yield* again.client.send({ _tag: "RecordBatch", records: [runStarted(0)] })
      assert.deepStrictEqual(yield* again.client.nextTagged("Ack"), { _tag: "Ack", upTo: 0 })
    }))

  it.scopedLive("a frame above the hard cap (16 x max_frame_bytes) is closed by ws with 1009", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: LIMITS })
      const { client } = yield* TestServer.helloAgent(server, "alpha")
      yield* client.sendRaw(new Uint8Array(16 * 1024 + 1))
      assert.strictEqual((yield* client.closed()).code, 1009)
      // The server is fine.
      const other = yield* TestServer.helloAgent(server, "alpha")
      assert.strictEqual(other.table.schedules.length, 2)
    }))

  it.scopedLive("20 bad frames in a row close the connection with 1008; good frames reset the count", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES })
      const { client } = yield* TestServer.helloAgent(server, "alpha")
      const garbage = new TextEncoder().encode("garbage")
      for (let i = 0; i < 19; i++) yield* client.sendRaw(garbage)
      yield* client.send({ _tag: "Ping", id: 1, sentAt: TestServer.micros(1) })
      yield* client.nextTagged("Pong")
      for (let i = 0; i < 20; i++) yield* client.sendRaw(garbage)
      const closed = yield* client.closed()
      assert.deepStrictEqual(closed, { code: 1008, reason: "20 bad frames in a row" })
    }))
})

describe("WorkerSession: envelopes", () => {
  const SEED = Buffer.alloc(32, 7).toString("base64")
  const keys = () => {
    const signing = Either.getOrThrow(Envelope.parseSigningKey(SEED))
    const publicKey = Either.getOrThrow(Envelope.publicKeyFromBytes(Envelope.publicKeyOf(signing)))
    return { hmacKey: "shared-secret", publicKey }
  }
  const KEYS = `hmac_key = "shared-secret"\nsigning_key = "${SEED}"\n${SCHEDULES}`

  it.scopedLive("HMAC both ways and a signature on server frames; a bad MAC is answered, not fatal", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: KEYS })
      const { client, table } = yield* TestServer.helloAgent(server, "alpha", keys())
      assert.strictEqual(table.schedules.length, 2)
      yield* client.send({ _tag: "RecordBatch", records: [runStarted(0)] })
      assert.deepStrictEqual(yield* client.nextTagged("Ack"), { _tag: "Ack", upTo: 0 })

      // A frame MACed with the wrong key, and an unwrapped one.
      const forged = Envelope.seal(
        { hmacKey: Envelope.hmacKeyFromString("wrong") },
        TestServer.encodeAgent({ _tag: "Ping", id: 1, sentAt: TestServer.micros(1) }),
        Math.floor(Date.now() / 1000)
      )
      yield* client.sendRaw(forged)
      const error = yield* client.nextTagged("ProtocolError")
      assert.strictEqual(error.code, "bad_envelope")
      assert.match(error.message, /bad_mac/)
      yield* client.sendRaw(new Uint8Array(10))
      assert.strictEqual((yield* client.nextTagged("ProtocolError")).code, "bad_envelope")
      yield* client.send({ _tag: "Ping", id: 2, sentAt: TestServer.micros(2) })
      assert.strictEqual((yield* client.nextTagged("Pong")).id, 2)
    }))

  it.scopedLive("a frame sealed for agent A is refused on B's connection; B's own frames still open", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: KEYS })
      const alpha = yield* TestServer.helloAgent(server, "alpha", keys())
      const beta = yield* TestServer.helloAgent(server, "beta", keys())
      const forAlpha = alpha.client.seal({ _tag: "RecordBatch", records: [runStarted(0)] })
      yield* beta.client.sendRaw(forAlpha)
      const error = yield* beta.client.nextTagged("ProtocolError")
      assert.strictEqual(error.code, "bad_envelope")
      assert.match(error.message, /bad_mac/)
      assert.isUndefined(server.memory!.records.get("beta"))
      yield* beta.client.send({ _tag: "Ping", id: 2, sentAt: TestServer.micros(2) })
      assert.strictEqual((yield* beta.client.nextTagged("Pong")).id, 2)
      // Delivered where it belongs, it is fine.
      yield* alpha.client.sendRaw(forAlpha)
      assert.deepStrictEqual(yield* alpha.client.nextTagged("Ack"), { _tag: "Ack", upTo: 0 })
    }))

  it.scopedLive("inside the HMAC window, a frame of an earlier connection (or sent twice) is refused", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: KEYS })
      const first = yield* TestServer.helloAgent(server, "alpha", keys())
      const batch = first.client.seal({ _tag: "RecordBatch", records: [runStarted(0)] })
      yield* first.client.sendRaw(batch)
      assert.deepStrictEqual(yield* first.client.nextTagged("Ack"), { _tag: "Ack", upTo: 0 })
      // Again on the same connection: refused (the nonce, and the frame counter).
      yield* first.client.sendRaw(batch)
      assert.strictEqual((yield* first.client.nextTagged("ProtocolError")).code, "bad_envelope")
      yield* first.client.close
      yield* first.client.closed()

      // A later connection of the same agent: a replay within seconds, well inside the window.
      const second = yield* TestServer.helloAgent(server, "alpha", keys())
      yield* second.client.sendRaw(batch)
      assert.strictEqual((yield* second.client.nextTagged("ProtocolError")).code, "bad_envelope")
      yield* second.client.send({ _tag: "Ping", id: 3, sentAt: TestServer.micros(3) })
      assert.strictEqual((yield* second.client.nextTagged("Pong")).id, 3)
      assert.strictEqual(
        yield* service(server, Metrics).value("bartos_frames_rejected_total", { reason: "bad_envelope" }),
        2
      )
    }))

  it.scopedLive("server frames are bound too: a ScheduleTable of one agent does not open on another's connection", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: KEYS })
      const alpha = yield* TestServer.helloAgent(server, "alpha", keys())
      const beta = yield* TestServer.helloAgent(server, "beta", keys())
      // The raw bytes alpha received for its table (ServerHello came first).
      const alphaTable = alpha.client.frames[1]!
      const { publicKey } = keys()
      const opensFor = (client: TestServer.AgentClient, counter: bigint) =>
        Either.isRight(Envelope.open(
          {
            hmacKey: Envelope.hmacKeyFromString("shared-secret"),
            publicKey,
            windowSecs: 60,
            nonces: Envelope.makeNonceCache()
          },
          alphaTable,
          Date.now() / 1000,
          { sender: "server", agent: client === alpha.client ? "alpha" : "beta", ...client.nonces!, counter }
        ))
      assert.isTrue(opensFor(alpha.client, 1n), "genuine where it was sent")
      assert.isFalse(opensFor(beta.client, 1n), "not on beta's connection")
      assert.isFalse(opensFor(alpha.client, 2n), "not at another position on alpha's own")
    }))

  it.scopedLive("with keys, an agent that sends no session nonce is refused (400) before the upgrade", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: KEYS })
      const refused = yield* TestServer.attempt(server.url("worker", "alpha"))
      assert.strictEqual(refused._tag, "Refused")
      if (refused._tag === "Refused") {
        assert.strictEqual(refused.status, 400)
        assert.match(refused.body, /x-barto-nonce/)
      }
      // Without keys nothing is sealed: the nonce is not needed.
      const open = yield* TestServer.make({ toml: SCHEDULES })
      const { table } = yield* TestServer.helloAgent(open, "alpha", { agentNonce: null })
      assert.strictEqual(table.schedules.length, 2)
    }))

  it.scopedLive("an agent without the HMAC key cannot even say hello", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: KEYS })
      // Reads the server's frames with the keys, but sends its hello without the envelope.
      const client = yield* TestServer.connectAgent(server.url("worker", "mallory"), keys())
      yield* client.sendRaw(TestServer.encodeAgent(TestServer.agentHello()))
      const error = yield* client.nextTagged("ProtocolError")
      assert.strictEqual(error.code, "bad_envelope")
      assert.isTrue(Option.isNone(yield* service(server, Registry).get("mallory")))
    }))
})

describe("WorkerSession: liveness and duplicates", () => {
  it.scopedLive("a newer connection with the same name replaces the older one (4001)", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES })
      const first = yield* TestServer.helloAgent(server, "alpha")
      const second = yield* TestServer.helloAgent(server, "alpha")
      const closed = yield* first.client.closed()
      assert.deepStrictEqual(closed, { code: 4001, reason: "replaced by a newer connection" })
      const registry = service(server, Registry)
      const current = yield* registry.get("alpha")
      assert.isTrue(Option.isSome(current))
      assert.strictEqual(Option.getOrThrow(current).sessionId, second.hello.sessionId)
      // The newer session is not removed when the older one finishes.
      yield* second.client.send({ _tag: "Ping", id: 1, sentAt: TestServer.micros(1) })
      yield* second.client.nextTagged("Pong")
      assert.strictEqual((yield* registry.list).length, 1)
      assert.isTrue(yield* registry.send("alpha", { _tag: "AgentCleanup", before: TestServer.micros(5) }))
      assert.strictEqual((yield* second.client.nextTagged("AgentCleanup")).before, TestServer.micros(5))
    }))

  it.scopedLive("another instance (other outbox) claiming a live name is refused with 4003, counted, and shown", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES })
      const holder = yield* TestServer.helloAgent(server, "alpha", { hello: { outboxId: "instance-1" } })
      for (let attempt = 1; attempt <= 2; attempt++) {
        const intruder = yield* TestServer.connectAgent(server.url("worker", "alpha"))
        yield* intruder.send(TestServer.agentHello({ outboxId: "instance-2" }))
        const closed = yield* intruder.closed()
        assert.strictEqual(closed.code, 4003)
        assert.match(
          closed.reason,
          /^name 'alpha' is in use by another agent from 127\.0\.0\.1 since \d\d:\d\d:\d\d UTC$/
        )
        // It never got a ServerHello, let alone a table.
        assert.deepStrictEqual(yield* intruder.drain, [])
      }
      const metrics = service(server, Metrics)
      assert.strictEqual(yield* metrics.value("bartos_duplicate_names_refused_total"), 2)
      yield* server.waitForLog("refused a second instance of 'alpha'")
      // The holder is untouched and still the registered session.
      yield* holder.client.send({ _tag: "Ping", id: 1, sentAt: TestServer.micros(1) })
      assert.strictEqual((yield* holder.client.nextTagged("Pong")).id, 1)
      const rows = yield* service(server, Registry).list
      assert.strictEqual(rows.length, 1)
      assert.strictEqual(rows[0]!.sessionId, holder.hello.sessionId)
      assert.strictEqual(rows[0]!.refused?.count, 2)
      assert.strictEqual(rows[0]!.refused?.lastIp, "127.0.0.1")
      assert.include(yield* metrics.render, "bartos_duplicate_names_refused_total 2")
    }))

  it.scopedLive("the refused instance takes over once the holder's liveness expires", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: `${SCHEDULES}\n[limits]\nliveness_secs = 0.3\n` })
      const holder = yield* TestServer.helloAgent(server, "alpha", { hello: { outboxId: "instance-1" } })
      const refused = yield* TestServer.connectAgent(server.url("worker", "alpha"))
      yield* refused.send(TestServer.agentHello({ outboxId: "instance-2" }))
      assert.strictEqual((yield* refused.closed()).code, 4003)
      // The holder goes silent (it died): dropped for liveness, the name is free.
      assert.strictEqual((yield* holder.client.closed()).code, 4000)
      const taken = yield* TestServer.helloAgent(server, "alpha", { hello: { outboxId: "instance-2" } })
      assert.strictEqual(taken.table.schedules.length, 2)
      const current = Option.getOrThrow(yield* service(server, Registry).get("alpha"))
      assert.strictEqual(current.outboxId, "instance-2")
    }))

  it.scopedLive("a silent agent is dropped (4000) and its running runs are marked lost later", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: `${SCHEDULES}\n[limits]\nliveness_secs = 0.3\n` })
      const { client } = yield* TestServer.helloAgent(server, "alpha")
      const closed = yield* client.closed()
      assert.deepStrictEqual(closed, { code: 4000, reason: "liveness timeout" })
      assert.isTrue(Option.isNone(yield* service(server, Registry).get("alpha")))
      yield* server.waitForLog("agent 'alpha' did not come back")
      assert.includeMembers(server.memory!.events.map((e) => e.split(" ").slice(0, 2).join(" ")), [
        "started alpha",
        "ended alpha",
        "lost alpha"
      ])
    }))

  it.scopedLive("a quiet agent is pinged at half the liveness and kept as long as it answers", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: `${SCHEDULES}\n[limits]\nliveness_secs = 0.4\n` })
      const { client } = yield* TestServer.helloAgent(server, "alpha")
      // Four liveness periods pass; the agent only ever answers the server's probes.
      for (let i = 0; i < 6; i++) {
        const ping = yield* client.nextTagged("Ping")
        yield* client.send({ _tag: "Pong", id: ping.id, sentAt: ping.sentAt })
      }
      assert.isTrue(Option.isSome(yield* service(server, Registry).get("alpha")))
      yield* client.send({ _tag: "Ping", id: 1, sentAt: TestServer.micros(1) })
      yield* client.nextTagged("Pong")
    }))

  it.scopedLive("an agent that comes back in time is not marked lost", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: `${SCHEDULES}\n[limits]\nliveness_secs = 0.3\n` })
      const first = yield* TestServer.helloAgent(server, "alpha")
      yield* first.client.close
      yield* first.client.closed()
      const second = yield* TestServer.helloAgent(server, "alpha")
      // Keep the new session alive past the check.
      for (let i = 0; i < 4; i++) {
        yield* second.client.send({ _tag: "Ping", id: i, sentAt: TestServer.micros(i) })
        yield* second.client.nextTagged("Pong")
        yield* Effect.sleep("100 millis")
      }
      assert.notInclude(server.memory!.events, "lost alpha")
    }))
})

for (const db of databases) {
  describe(`WorkerSession: ingest on ${db.name}`, () => {
    const records = (runId: Messages.RunId): ReadonlyArray<Messages.AgentRecord> => [
      { ...runStarted(0, runId), runId },
      {
        _tag: "CommandStarted",
        seq: 1,
        runId,
        cmdUuid: Ids.uuidv4(),
        cmdIndex: 0,
        command: "echo hi",
        startedAt: TestServer.micros(1_700_000_000_011)
      }
    ]

    it.scopedLive("stored once and acked; a resend is idempotent; a reconnect learns the offset", () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make({ toml: SCHEDULES, store: db.layer() })
        const store = service(server, Store)
        const runId = Ids.newRunId()
        const { client } = yield* TestServer.helloAgent(server, "alpha", { hello: { outboxId: "box-a" } })
        const batch = records(runId)
        yield* client.send({ _tag: "RecordBatch", records: batch })
        assert.deepStrictEqual(yield* client.nextTagged("Ack"), { _tag: "Ack", upTo: 1 })
        yield* client.send({ _tag: "RecordBatch", records: batch })
        assert.deepStrictEqual(yield* client.nextTagged("Ack"), { _tag: "Ack", upTo: 1 })
        const runs = yield* store.runs({ agent: "alpha", limit: 10 })
        assert.deepStrictEqual(runs.map((r) => [r.runId, r.state]), [[runId, "running"]])

        const again = yield* TestServer.helloAgent(server, "alpha", { hello: { outboxId: "box-a", lastSeq: 1 } })
        assert.strictEqual(again.hello.ackedUpTo, 1)
        // Another instance (another outbox) only gets the name once this one is gone (issue 12 §2).
        yield* again.client.close
        yield* service(server, Registry).get("alpha").pipe(
          Effect.repeat({ until: Option.isNone, schedule: Schedule.spaced(10) })
        )
        const fresh = yield* TestServer.helloAgent(server, "alpha", { hello: { outboxId: "box-b" } })
        assert.strictEqual(fresh.hello.ackedUpTo, -1)
      }))

    it.scopedLive("an agent cannot touch another agent's runs: foreign records are refused, counted, never written", () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make({ toml: SCHEDULES, store: db.layer() })
        const store = service(server, Store)
        const metrics = service(server, Metrics)
        const victimRun = Ids.newRunId()
        const cmd = Ids.uuidv4()
        const t = (ms: number) => TestServer.micros(1_700_000_000_000 + ms)
        const alpha = yield* TestServer.helloAgent(server, "alpha", { hello: { outboxId: "box-alpha" } })
        yield* alpha.client.send({
          _tag: "RecordBatch",
          records: [
            { ...runStarted(0, victimRun), runId: victimRun },
            {
              _tag: "CommandStarted",
              seq: 1,
              runId: victimRun,
              cmdUuid: cmd,
              cmdIndex: 0,
              command: "backup.sh",
              startedAt: t(1)
            },
            {
              _tag: "OutputLine",
              seq: 2,
              runId: victimRun,
              cmdUuid: cmd,
              lineSeq: 0,
              stream: "stdout",
              ts: t(2),
              data: "real 0",
              continuation: false
            }
          ]
        })
        assert.deepStrictEqual(yield* alpha.client.nextTagged("Ack"), { _tag: "Ack", upTo: 2 })

        // beta holds valid credentials of its own and goes after alpha's run, mixed with honest records.
        const own = Ids.newRunId()
        const attacker = yield* TestServer.helloAgent(server, "beta", { hello: { outboxId: "box-beta" } })
        yield* attacker.client.send({
          _tag: "RecordBatch",
          records: [
            {
              _tag: "RunStarted",
              seq: 0,
              runId: own,
              schedule: "only",
              trigger: "schedule",
              scheduledAt: t(0),
              startedAt: t(0)
            },
            { _tag: "RunFinished", seq: 1, runId: victimRun, state: "succeeded", finishedAt: t(5) },
            {
              _tag: "RunStarted",
              seq: 2,
              runId: victimRun,
              schedule: "renamed",
              trigger: "manual",
              scheduledAt: t(0),
              startedAt: t(0)
            },
            {
              _tag: "CommandStarted",
              seq: 3,
              runId: own,
              cmdUuid: cmd,
              cmdIndex: 0,
              command: "rm -rf /",
              startedAt: t(6)
            },
            { _tag: "CommandExited", seq: 4, runId: own, cmdUuid: cmd, exitCode: 0, signal: null, finishedAt: t(6) },
            {
              _tag: "OutputLine",
              seq: 5,
              runId: victimRun,
              cmdUuid: cmd,
              lineSeq: 1,
              stream: "stdout",
              ts: t(7),
              data: "injected",
              continuation: false
            },
            { _tag: "RunMissed", seq: 6, runId: victimRun, schedule: "hello", scheduledAt: t(0), reason: "stall" },
            {
              _tag: "OutputLine",
              seq: 7,
              runId: own,
              cmdUuid: "beta-cmd",
              lineSeq: 0,
              stream: "stdout",
              ts: t(8),
              data: "beta's own",
              continuation: false
            },
            { _tag: "RunFinished", seq: 8, runId: own, state: "succeeded", finishedAt: t(9) }
          ]
        })
        const error = yield* attacker.client.nextTagged("ProtocolError")
        assert.strictEqual(error.code, "unexpected")
        assert.match(error.message, /refused 6 record\(s\) about runs or commands of another agent \(first: seq 1/)
        // Acked as a whole: resending could never make the refused records acceptable.
        assert.deepStrictEqual(yield* attacker.client.nextTagged("Ack"), { _tag: "Ack", upTo: 8 })
        assert.strictEqual(yield* metrics.value("bartos_records_refused_total", { reason: "foreign_run" }), 4)
        assert.strictEqual(yield* metrics.value("bartos_records_refused_total", { reason: "foreign_command" }), 2)

        // alpha's run is untouched: still running, same schedule, its command and only its lines.
        const victim = Option.getOrThrow(yield* store.getRun(victimRun))
        assert.deepInclude(victim, {
          agent: "alpha",
          schedule: "hello",
          state: "running",
          trigger: "schedule",
          finishedAt: null
        })
        const failed = yield* Stream.runCollect(store.failed())
        assert.isFalse(
          Chunk.toReadonlyArray(failed).some((f) => f.runId === own && f.cmdUuid === cmd),
          "beta's exit is not on alpha's command"
        )
        assert.deepStrictEqual((yield* store.runLines(victimRun, -1, 10)).map((l) => l.data), ["real 0"])
        // beta's honest records are all stored.
        assert.deepInclude(Option.getOrThrow(yield* store.getRun(own)), {
          agent: "beta",
          schedule: "only",
          state: "succeeded"
        })
        assert.deepStrictEqual((yield* store.runLines(own, -1, 10)).map((l) => l.data), ["beta's own"])

        // The line number beta tried to take is alpha's when alpha sends it: nothing was pre-claimed.
        yield* alpha.client.send({
          _tag: "RecordBatch",
          records: [
            {
              _tag: "OutputLine",
              seq: 3,
              runId: victimRun,
              cmdUuid: cmd,
              lineSeq: 1,
              stream: "stdout",
              ts: t(10),
              data: "real 1",
              continuation: false
            },
            {
              _tag: "CommandExited",
              seq: 4,
              runId: victimRun,
              cmdUuid: cmd,
              exitCode: 0,
              signal: null,
              finishedAt: t(11)
            },
            { _tag: "RunFinished", seq: 5, runId: victimRun, state: "succeeded", finishedAt: t(12) }
          ]
        })
        assert.deepStrictEqual(yield* alpha.client.nextTagged("Ack"), { _tag: "Ack", upTo: 5 })
        assert.deepStrictEqual((yield* store.runLines(victimRun, -1, 10)).map((l) => l.data), ["real 0", "real 1"])
        assert.deepInclude(Option.getOrThrow(yield* store.getRun(victimRun)), { state: "succeeded", exitCode: 0 })
        assert.strictEqual(yield* metrics.value("bartos_line_conflicts_total"), 0)
      }))

    it.scopedLive("a line sent again with other content is a logged, counted conflict; the stored line stays", () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make({ toml: SCHEDULES, store: db.layer() })
        const store = service(server, Store)
        const runId = Ids.newRunId()
        const cmd = Ids.uuidv4()
        const out = (seq: number, lineSeq: number, data: string): Messages.AgentRecord => ({
          _tag: "OutputLine",
          seq,
          runId,
          cmdUuid: cmd,
          lineSeq,
          stream: "stdout",
          ts: TestServer.micros(1_700_000_000_000 + lineSeq),
          data,
          continuation: false
        })
        const { client } = yield* TestServer.helloAgent(server, "alpha", { hello: { outboxId: "box" } })
        yield* client.send({
          _tag: "RecordBatch",
          records: [{ ...runStarted(0, runId), runId }, out(1, 0, "first"), out(2, 1, "second")]
        })
        assert.deepStrictEqual(yield* client.nextTagged("Ack"), { _tag: "Ack", upTo: 2 })
        // Same line numbers again under new seqs: one identical (a harmless resend), one different,
        // and within the batch a line number used twice with different content.
        yield* client.send({
          _tag: "RecordBatch",
          records: [out(3, 0, "first"), out(4, 1, "CHANGED"), out(5, 2, "third"), out(6, 2, "THIRD?")]
        })
        assert.deepStrictEqual(yield* client.nextTagged("Ack"), { _tag: "Ack", upTo: 6 })
        assert.deepStrictEqual((yield* store.runLines(runId, -1, 10)).map((l) => l.data), ["first", "second", "third"])
        assert.strictEqual(yield* service(server, Metrics).value("bartos_line_conflicts_total"), 2)
        yield* server.waitForLog(`line 1 of run ${runId} was already stored with other content`)
        yield* server.waitForLog(`line 2 of run ${runId} was already stored with other content`)
      }))

    it.scopedLive("a record the database cannot hold is refused at decode; the next batch is stored and acked", () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make({ toml: SCHEDULES, store: db.layer() })
        const store = service(server, Store)
        const { client } = yield* TestServer.helloAgent(server, "alpha", { hello: { outboxId: "box" } })
        const runId = Ids.newRunId()
        const tooBig: ReadonlyArray<readonly [string, Messages.AgentRecord]> = [
          ["runId", { ...runStarted(0), runId: "r".repeat(65) as Messages.RunId }],
          ["schedule", { ...runStarted(0, runId), runId, schedule: "s".repeat(256) } as Messages.AgentRecord],
          ["lineSeq", { ...line(0, runId), lineSeq: 2 ** 31 } as Messages.AgentRecord],
          ["exitCode", {
            _tag: "CommandExited",
            seq: 0,
            runId,
            cmdUuid: "c",
            exitCode: 2 ** 31,
            signal: null,
            finishedAt: TestServer.micros(1)
          }]
        ]
        for (const [field, record] of tooBig) {
          // Encoded by hand: our own encoder refuses such a record.
          yield* client.sendRaw(new TextEncoder().encode(JSON.stringify({ _tag: "RecordBatch", records: [record] })))
          const error = yield* client.nextTagged("ProtocolError")
          assert.strictEqual(error.code, "undecodable", field)
          assert.include(error.message, `records[0].${field}`)
        }
        yield* client.send({ _tag: "RecordBatch", records: [{ ...runStarted(0, runId), runId }] })
        assert.deepStrictEqual(yield* client.nextTagged("Ack"), { _tag: "Ack", upTo: 0 })
        assert.strictEqual(Option.getOrThrow(yield* store.getRun(runId)).state, "running")
        assert.strictEqual(
          yield* service(server, Metrics).value("bartos_frames_rejected_total", { reason: "undecodable" }),
          4
        )
        assert.strictEqual(yield* service(server, Metrics).value("bartos_ingest_errors_total"), 0)
      }))

    it.scopedLive("runs of an agent that does not come back become lost, and are reconciled if it reports later", () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make({
          toml: `${SCHEDULES}\n[limits]\nliveness_secs = 0.3\n`,
          store: db.layer()
        })
        const store = service(server, Store)
        const runId = Ids.newRunId()
        const first = yield* TestServer.helloAgent(server, "alpha", { hello: { outboxId: "box" } })
        yield* first.client.send({ _tag: "RecordBatch", records: records(runId) })
        yield* first.client.nextTagged("Ack")
        assert.strictEqual((yield* first.client.closed()).code, 4000)
        yield* server.waitForLog("agent 'alpha' did not come back: 1 running runs marked lost")
        assert.strictEqual(Option.getOrThrow(yield* store.getRun(runId)).state, "lost")

        const back = yield* TestServer.helloAgent(server, "alpha", { hello: { outboxId: "box", lastSeq: 2 } })
        yield* back.client.send({
          _tag: "RecordBatch",
          records: [{
            _tag: "RunFinished",
            seq: 2,
            runId,
            state: "succeeded",
            finishedAt: TestServer.micros(1_700_000_001_000)
          }]
        })
        assert.deepStrictEqual(yield* back.client.nextTagged("Ack"), { _tag: "Ack", upTo: 2 })
        assert.strictEqual(Option.getOrThrow(yield* store.getRun(runId)).state, "succeeded")
      }))
  })
}
