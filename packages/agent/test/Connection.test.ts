import * as Connection from "@barto/agent/Connection"
import { CurrentTable, type Table } from "@barto/agent/CurrentTable"
import * as Outbox from "@barto/agent/Outbox"
import { Runner, type RunnerShape, type RunRequest } from "@barto/agent/Runner"
import { AGENT_VERSION } from "@barto/agent/SystemInfo"
import * as Codec from "@barto/domain/Codec"
import * as Config from "@barto/domain/Config"
import * as Envelope from "@barto/domain/Envelope"
import * as Ids from "@barto/domain/Ids"
import * as Link from "@barto/domain/Link"
import { type AgentToServer, type Micros, PROTOCOL_VERSION, ScheduleSpec, ServerMessage } from "@barto/domain/Messages"
import { assert, describe, it } from "@effect/vitest"
import type { Layer } from "effect"
import {
  Deferred,
  Effect,
  Either,
  Fiber,
  Logger,
  LogLevel,
  Option,
  Redacted,
  Schedule,
  Schema,
  Stream,
  SubscriptionRef,
  TestClock
} from "effect"
import type * as Scope from "effect/Scope"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { TLSSocket } from "node:tls"
import * as FakeBartos from "./utils/FakeBartos.js"
import * as MemoryLink from "./utils/MemoryLink.js"

const MIB = 1024 * 1024

const spec = (name: string) =>
  new ScheduleSpec({
    name,
    onCalendar: "*-*-* 03:00:00",
    calendar: "*-*-* 03:00:00",
    cmds: ["echo hi"],
    overlap: "allow",
    onFailure: "continue",
    paused: false
  })

const table = (version: string, ...names: Array<string>): Table => ({
  _tag: "ScheduleTable",
  version,
  schedules: names.map(spec)
})

const missed = (i: number): Outbox.RecordDraft => ({
  _tag: "RunMissed",
  runId: Ids.newRunId(),
  schedule: "backup",
  scheduledAt: (1_700_000_000_000_000 + i) as Micros,
  reason: "test"
})

const makeFakeRunner = () => {
  const starts: Array<RunRequest> = []
  const running = new Set<string>()
  const shape: RunnerShape = {
    start: (request) =>
      Effect.sync(() => {
        starts.push(request)
        running.add(request.runId)
        return "started" as const
      }),
    prepare: () => Effect.void,
    cancel: (runId) => Effect.sync(() => running.delete(runId)),
    running: Effect.succeed([]),
    awaitIdle: Effect.void,
    drain: () => Effect.void
  }
  return { starts, shape }
}

/** Polls a condition (a database read has no change notification) until it holds. */
const eventually = <A>(read: Effect.Effect<A, any>, pred: (a: A) => boolean, what: string) =>
  read.pipe(
    Effect.repeat({ schedule: Schedule.spaced(10), until: pred }),
    FakeBartos.within(10_000, what)
  )

const waitRef = <A>(ref: SubscriptionRef.SubscriptionRef<A>, pred: (a: A) => boolean, what: string) =>
  ref.changes.pipe(Stream.filter(pred), Stream.take(1), Stream.runDrain, FakeBartos.within(10_000, what))

const batches = (received: ReadonlyArray<AgentToServer>) =>
  received.flatMap((m) => (m._tag === "RecordBatch" ? [m.records] : []))
const seqs = (received: ReadonlyArray<AgentToServer>) => batches(received).flat().map((r) => r.seq)

/** An agent connection against `server` with an in-memory outbox and a recording runner. */
const startAgent = (
  server: { readonly port: number },
  overrides: Partial<Connection.Options> = {},
  link: Layer.Layer<Link.Link> = Link.layer
) =>
  Effect.gen(function*() {
    const outbox = yield* Outbox.make({ path: ":memory:", maxBytes: 64 * MIB })
    const tableRef = yield* SubscriptionRef.make<Option.Option<Table>>(Option.none())
    const runner = makeFakeRunner()
    const conn = yield* Connection.make({
      name: "agent one",
      prefix: "ws",
      host: "127.0.0.1",
      port: server.port,
      replayWindowSecs: 60,
      clientTimeoutSecs: 10,
      backoffBaseMs: 20,
      backoffCapMs: 200,
      ...overrides
    }).pipe(
      Effect.provideService(Outbox.Outbox, outbox),
      Effect.provideService(Runner, runner.shape),
      Effect.provideService(CurrentTable, tableRef),
      Effect.provideService(Codec.Codec, Codec.makeJson()),
      Effect.provide(link)
    )
    // Quiet: the disconnections these tests provoke are logged as warnings on purpose.
    const fiber = yield* Effect.forkScoped(conn.run.pipe(Logger.withMinimumLogLevel(LogLevel.Error)))
    return { outbox, tableRef, runner, conn, fiber }
  })

/** A throwaway CA with a server certificate for 127.0.0.1 and a client certificate for the agent. */
const makePki = (): Effect.Effect<{ readonly dir: string; readonly read: (f: string) => string }, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bartoc-pki-"))
      const run = (...args: Array<string>) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" })
      const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
      run("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bartoc test CA")
      for (
        const [name, subject, san] of [["server", "/CN=localhost", "IP:127.0.0.1"], [
          "agent",
          "/CN=agent one",
          "DNS:agent"
        ]]
      ) {
        fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\n`)
        run("req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subject!)
        run(
          "x509",
          "-req",
          "-in",
          `${name}.csr`,
          "-CA",
          "ca.pem",
          "-CAkey",
          "ca.key",
          "-CAcreateserial",
          "-out",
          `${name}.pem`,
          "-days",
          "2",
          "-extfile",
          `${name}.ext`
        )
      }
      return { dir, read: (f: string) => fs.readFileSync(path.join(dir, f), "utf8") }
    }),
    ({ dir }) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

describe("Connection", () => {
  it.scopedLive("opens with AgentHello then AgentInfo, a Bearer header and the URL-encoded name", () =>
    Effect.gen(function*() {
      const server = yield* FakeBartos.make({ apiKey: "s3cret" })
      const agent = yield* startAgent(server, { apiKey: Redacted.make("s3cret") })
      const c1 = yield* server.connection(1)
      const info = yield* c1.waitFor(FakeBartos.isTag("AgentInfo"))
      const hello = c1.received[0]!
      assert.strictEqual(hello._tag, "AgentHello")
      assert.strictEqual(c1.received[1]!._tag, "AgentInfo")
      if (hello._tag !== "AgentHello") return
      assert.strictEqual(hello.protocol, PROTOCOL_VERSION)
      assert.strictEqual(hello.outboxId, agent.outbox.outboxId)
      assert.strictEqual(hello.lastSeq, -1)
      assert.strictEqual(hello.agentVersion, AGENT_VERSION)
      // Not configured (a test's Options): not reported.
      assert.isFalse("missedTick" in hello || "catchUpLimit" in hello)
      assert.strictEqual(info.info.agentVersion, AGENT_VERSION)
      assert.isNotEmpty(info.info.hostname)
      assert.strictEqual(c1.request.headers.authorization, "Bearer s3cret")
      assert.strictEqual(c1.request.url, "/v1/ws/worker?name=agent%20one")
      // The handshake completed: the session id is known.
      yield* waitRef(agent.conn.session, Option.isSome, "the session")
    }))

  it.scopedLive("reports its missed-tick policy in the hello, a limit beyond INT as its largest value", () =>
    Effect.gen(function*() {
      const server = yield* FakeBartos.make()
      yield* startAgent(server, { missedTick: { policy: "Burst", catchUpLimit: 5_000_000_000 } })
      const hello = yield* (yield* server.connection(1)).waitFor(FakeBartos.isTag("AgentHello"))
      assert.include(hello, { missedTick: "Burst", catchUpLimit: 2147483647 })
    }))

  it.scopedLive("caches a pushed schedule table and hands it to the ticker", () =>
    Effect.gen(function*() {
      const server = yield* FakeBartos.make()
      const agent = yield* startAgent(server)
      const c1 = yield* server.connection(1)
      yield* c1.waitFor(FakeBartos.isTag("AgentHello"))
      yield* c1.send(table("v1", "backup", "report"))
      yield* waitRef(agent.tableRef, (t) => Option.isSome(t) && t.value.version === "v1", "the table")
      const cached = yield* agent.outbox.loadTable
      assert.isTrue(Option.isSome(cached))
      assert.deepStrictEqual(Option.getOrThrow(cached).schedules.map((s) => s.name), ["backup", "report"])
    }))

  it.scopedLive("streams records in ordered batches of at most 500; an Ack deletes them", () =>
    Effect.gen(function*() {
      const server = yield* FakeBartos.make()
      const agent = yield* startAgent(server)
      const c1 = yield* server.connection(1)
      yield* agent.outbox.append(Array.from({ length: 1200 }, (_, i) => missed(i)))
      yield* c1.waitUntil(() => seqs(c1.received).length >= 1200, "1200 records")
      assert.deepStrictEqual(seqs(c1.received), Array.from({ length: 1200 }, (_, i) => i))
      assert.isTrue(batches(c1.received).every((b) => b.length <= 500))
      assert.strictEqual((yield* agent.outbox.stats).pending, 1200)
      yield* c1.send({ _tag: "Ack", upTo: 1199 })
      yield* eventually(agent.outbox.stats, (s) => s.pending === 0, "the outbox to empty")
      // New records after the ack go out on their own, without waiting for 500.
      yield* agent.outbox.append([missed(1200)])
      yield* c1.waitUntil(() => seqs(c1.received).includes(1200), "record 1200")
    }))

  it.scopedLive("after a reconnect it resends from the server's ackedUpTo, not from scratch", () =>
    Effect.gen(function*() {
      const server = yield* FakeBartos.make({ ackedUpTo: (n) => (n === 1 ? -1 : 4) })
      const agent = yield* startAgent(server)
      const c1 = yield* server.connection(1)
      yield* c1.waitFor(FakeBartos.isTag("AgentHello"))
      yield* agent.outbox.append(Array.from({ length: 10 }, (_, i) => missed(i)))
      yield* c1.waitUntil(() => seqs(c1.received).length >= 10, "10 records")
      yield* c1.terminate
      const c2 = yield* server.connection(2)
      const hello = yield* c2.waitFor(FakeBartos.isTag("AgentHello"))
      assert.strictEqual(hello.lastSeq, 9)
      yield* c2.waitUntil(() => seqs(c2.received).length >= 5, "the resend")
      assert.deepStrictEqual(seqs(c2.received), [5, 6, 7, 8, 9])
      // The server's ackedUpTo acked the outbox too.
      yield* eventually(agent.outbox.stats, (s) => s.pending === 5, "records 0..4 deleted")
    }))

  it.scopedLive("drops forged, unsigned, replayed and undecodable frames, counts them, and stays connected", () =>
    Effect.gen(function*() {
      const seed = new Uint8Array(32).fill(7)
      const signingKey = Either.getOrThrow(Envelope.signingKeyFromSeed(seed))
      const forger = Either.getOrThrow(Envelope.signingKeyFromSeed(new Uint8Array(32).fill(9)))
      const hmac = "shared hmac key"
      const server = yield* FakeBartos.make({ hmacKey: hmac, signingKey })
      const agent = yield* startAgent(server, {
        hmacKey: Redacted.make(hmac),
        serverPublicKey: Redacted.make(Buffer.from(signingKey.publicKey).toString("base64"))
      })
      const c1 = yield* server.connection(1)
      yield* waitRef(agent.conn.session, Option.isSome, "the handshake")
      // The agent's own frames carried the HMAC envelope: the fake opened every one of them.
      assert.deepStrictEqual(c1.badFrames, [])

      const codec = Codec.makeJson()
      const payload = (version: string) => codec.encode(ServerMessage, table(version, "a"))
      const now = Date.now() / 1000
      const valid = c1.seal(table("v1", "a"))
      yield* c1.sendRaw(valid)
      yield* c1.sendRaw(valid) // replayed nonce
      yield* c1.sendRaw(Envelope.seal({ hmacKey: Envelope.hmacKeyFromString(hmac) }, payload("unsigned"), now))
      yield* c1.sendRaw(
        Envelope.seal({ hmacKey: Envelope.hmacKeyFromString(hmac), signingKey: forger }, payload("forged"), now)
      )
      yield* c1.sendRaw(c1.sealPayload(new TextEncoder().encode("{nope")))
      yield* c1.send(table("v2", "a"))
      // Frames are handled in order: once v2 is in, every frame before it has been judged.
      yield* waitRef(agent.tableRef, (t) => Option.isSome(t) && t.value.version === "v2", "table v2")
      assert.strictEqual(yield* agent.conn.failedFrames, 4)
      assert.strictEqual(server.connections.length, 1)
      assert.isUndefined(c1.closed)
      // bartos hears what was wrong with each dropped frame (D6).
      const complaints = () => c1.received.flatMap((m) => (m._tag === "ProtocolError" ? [m.code] : []))
      yield* c1.waitUntil(() => complaints().length >= 4, "four ProtocolErrors")
      assert.deepStrictEqual(complaints(), ["bad_envelope", "bad_envelope", "bad_envelope", "undecodable"])
    }))

  describe("session binding: a sealed frame opens only on the connection it was sealed for", () => {
    const keys = () => {
      const signingKey = Either.getOrThrow(Envelope.signingKeyFromSeed(new Uint8Array(32).fill(7)))
      return {
        signingKey,
        agent: {
          hmacKey: Redacted.make("shared hmac key"),
          serverPublicKey: Redacted.make(Buffer.from(signingKey.publicKey).toString("base64"))
        }
      }
    }
    /** A fake bartos holding the keys, and an agent handshaken on its first connection. */
    const handshaken = Effect.gen(function*() {
      const { agent: agentKeys, signingKey } = keys()
      const server = yield* FakeBartos.make({ hmacKey: "shared hmac key", signingKey })
      const agent = yield* startAgent(server, agentKeys)
      const c1 = yield* server.connection(1)
      yield* waitRef(agent.conn.session, Option.isSome, "the handshake")
      return { agentKeys, server, agent, c1 }
    })

    it.scopedLive("another agent's genuine ScheduleTable, replayed to this agent, is refused; its table stays", () =>
      Effect.gen(function*() {
        const { agent: victim, agentKeys, c1, server } = yield* handshaken
        yield* c1.send(table("mine", "backup"))
        yield* waitRef(victim.tableRef, (t) => Option.isSome(t) && t.value.version === "mine", "its own table")
        // Another agent, same bartos, same keys: its table is genuinely sealed and signed.
        const other = yield* startAgent(server, { ...agentKeys, name: "alpha" })
        const c2 = yield* server.connection(2)
        yield* waitRef(other.conn.session, Option.isSome, "alpha's handshake")
        yield* c2.send(table("alpha's", "wipe-disks"))
        yield* waitRef(other.tableRef, (t) => Option.isSome(t) && t.value.version === "alpha's", "alpha's table")
        const stolen = c2.sent[c2.sent.length - 1]!

        yield* c1.sendRaw(stolen)
        yield* c1.send(table("mine-2", "backup"))
        yield* waitRef(victim.tableRef, (t) => Option.isSome(t) && t.value.version === "mine-2", "the next own table")
        assert.strictEqual(yield* victim.conn.failedFrames, 1)
        assert.deepStrictEqual(Option.getOrThrow(yield* victim.outbox.loadTable).schedules.map((s) => s.name), [
          "backup"
        ])
        const complaints = () => c1.received.flatMap((m) => (m._tag === "ProtocolError" ? [m.message] : []))
        yield* c1.waitUntil(() => complaints().length >= 1, "the complaint")
        assert.match(complaints()[0]!, /^bad_signature: /)
      }))

    it.scopedLive("an Ack replayed on a later connection is refused: the outbox keeps every unsent record", () =>
      Effect.gen(function*() {
        const { agent, c1, server } = yield* handshaken
        yield* agent.outbox.append(Array.from({ length: 4 }, (_, i) => missed(i)))
        yield* c1.waitUntil(() => seqs(c1.received).length >= 4, "4 records")
        // A genuine Ack of connection 1, captured but never delivered there.
        const captured = c1.seal({ _tag: "Ack", upTo: 3 })
        yield* c1.terminate
        const c2 = yield* server.connection(2)
        yield* c2.waitUntil(() => seqs(c2.received).length >= 4, "the resend on connection 2")
        yield* c2.sendRaw(captured)
        // A genuine Ack of this connection beyond anything sent on it is refused too.
        yield* c2.send({ _tag: "Ack", upTo: 40 })
        yield* c2.send({ _tag: "Ping", id: 1, sentAt: 1 as Micros })
        yield* c2.waitFor(FakeBartos.isTag("Pong"), "the Pong behind them")
        assert.strictEqual(yield* agent.conn.failedFrames, 2)
        assert.strictEqual((yield* agent.outbox.stats).pending, 4)
        const complaints = c2.received.flatMap((m) => (m._tag === "ProtocolError" ? [m.message] : []))
        assert.match(complaints[0]!, /^bad_signature: /)
        assert.match(complaints[1]!, /Ack up to 40 covers records never sent on this connection \(sent up to 3\)/)
        // The right Ack, on the right connection, still works.
        yield* c2.send({ _tag: "Ack", upTo: 3 })
        yield* eventually(agent.outbox.stats, (st) => st.pending === 0, "the outbox to empty")
      }))

    it.scopedLive("within the HMAC window, a frame of an earlier connection is refused on a later one (HMAC only)", () =>
      Effect.gen(function*() {
        const server = yield* FakeBartos.make({ hmacKey: "shared hmac key" })
        const agent = yield* startAgent(server, { hmacKey: Redacted.make("shared hmac key") })
        const c1 = yield* server.connection(1)
        yield* waitRef(agent.conn.session, Option.isSome, "the handshake")
        yield* c1.send(table("v1", "backup"))
        yield* waitRef(agent.tableRef, (t) => Option.isSome(t) && t.value.version === "v1", "table v1")
        const old = c1.sent[c1.sent.length - 1]!
        yield* c1.terminate
        const c2 = yield* server.connection(2)
        yield* c2.waitFor(FakeBartos.isTag("AgentInfo"))
        yield* c2.send(table("v2", "report"))
        yield* waitRef(agent.tableRef, (t) => Option.isSome(t) && t.value.version === "v2", "table v2")
        yield* c2.sendRaw(old) // seconds old, well inside the 60 s window
        yield* c2.send({ _tag: "Ping", id: 1, sentAt: 1 as Micros })
        yield* c2.waitFor(FakeBartos.isTag("Pong"), "the Pong behind it")
        assert.strictEqual(yield* agent.conn.failedFrames, 1)
        assert.strictEqual(Option.getOrThrow(yield* SubscriptionRef.get(agent.tableRef)).version, "v2")
        // And on its own connection, a frame replayed is refused as well.
        const again = c2.sent[c2.sent.length - 1]!
        yield* c2.sendRaw(again)
        yield* c2.send({ _tag: "Ping", id: 2, sentAt: 2 as Micros })
        yield* c2.waitUntil(() => c2.received.some((m) => m._tag === "Pong" && m.id === 2), "Pong 2")
        assert.strictEqual(yield* agent.conn.failedFrames, 2)
      }))

    it.scopedLive("with keys, only frames that verify prove bartos alive: forged ones cannot hold a link open", () =>
      Effect.gen(function*() {
        const { agent: agentKeys, signingKey } = keys()
        // Signature only: frames carry no timestamp, so nothing else bounds how late they come.
        const server = yield* FakeBartos.make({ signingKey, autoPong: false })
        const agent = yield* startAgent(server, {
          serverPublicKey: agentKeys.serverPublicKey,
          livenessMs: 1_000,
          pingIntervalMs: 200
        })
        const c1 = yield* server.connection(1)
        yield* waitRef(agent.conn.session, Option.isSome, "the handshake")
        const forged = Envelope.sign(
          Either.getOrThrow(Envelope.signingKeyFromSeed(new Uint8Array(32).fill(9))),
          Codec.makeJson().encode(ServerMessage, { _tag: "Pong", id: 0, sentAt: 0 as Micros })
        )
        // A steady stream of frames that do not verify, faster than the silence limit.
        const forger = yield* c1.sendRaw(forged).pipe(Effect.repeat(Schedule.spaced("100 millis")), Effect.fork)
        const closed = yield* c1.waitClosed
        yield* Fiber.interrupt(forger)
        assert.strictEqual(closed.reason, "bartos silent for 1 s")
        assert.isAbove(yield* agent.conn.failedFrames, 3)
        // Stopped while its next connection is up, not while one is ending.
        const c2 = yield* server.connection(2)
        yield* c2.waitFor(FakeBartos.isTag("AgentInfo"))
        yield* Fiber.interrupt(agent.fiber)
      }))

    it.scopedLive("with keys, a bartos that sends no session nonce is refused with a clear reason", () =>
      Effect.gen(function*() {
        const { agent: agentKeys, signingKey } = keys()
        const server = yield* FakeBartos.make({ hmacKey: "shared hmac key", signingKey, noNonce: true })
        const agent = yield* startAgent(server, { ...agentKeys, retryCount: 1 })
        const exit = yield* Fiber.await(agent.fiber)
        assert.isTrue(exit._tag === "Failure")
        assert.match(String(exit), /bartos sent no session nonce/)
      }))
  })

  it.scopedLive("refused because another instance holds the name (4003): no table runs, the error is on stderr, it retries until accepted", () =>
    Effect.gen(function*() {
      const server = yield* FakeBartos.make({ autoHello: false })
      const errors: Array<string> = []
      const agent = yield* startAgent(server, { stderr: { write: (text: string) => errors.push(text) } })
      // A table it had (cached, or from an earlier session): a refusal withdraws it.
      yield* SubscriptionRef.set(agent.tableRef, Option.some(table("cached", "backup")))
      const reason = "name 'agent one' is in use by another agent from 10.0.0.5 since 08:02:01 UTC"
      for (const n of [1, 2]) {
        const c = yield* server.connection(n)
        yield* c.waitFor(FakeBartos.isTag("AgentHello"))
        yield* c.close(4003, reason)
        yield* waitRef(agent.tableRef, Option.isNone, `no table after refusal ${n}`)
      }
      yield* agent.conn.decided
      yield* eventually(Effect.sync(() => errors.length), (n) => n >= 2, "both refusals on stderr")
      assert.match(
        errors[0]!,
        /^bartoc: ERROR bartos refused agent name 'agent one' for this instance \(bartos closed the connection \(code 4003: name 'agent one' is in use by another agent from 10\.0\.0\.5 since 08:02:01 UTC\)\); running no schedule until bartos accepts it; retrying\n$/
      )
      // The holder is gone: the next attempt is accepted and gets its table from bartos.
      const c3 = yield* server.connection(3)
      yield* c3.waitFor(FakeBartos.isTag("AgentHello"))
      yield* c3.send({
        _tag: "ServerHello",
        protocol: PROTOCOL_VERSION,
        serverVersion: "x",
        capabilities: [],
        sessionId: "s3",
        ackedUpTo: -1
      })
      yield* c3.send(table("bartos", "backup"))
      yield* waitRef(agent.tableRef, (t) => Option.isSome(t) && t.value.version === "bartos", "the table once accepted")
    }))

  it.scopedLive("the first attempt decides: unreachable keeps the table, accepted decides at the ServerHello", () =>
    Effect.gen(function*() {
      // Nothing listens on this port: the attempt fails at once, and that decides too (D3).
      const closed = yield* FakeBartos.make()
      const port = closed.port
      yield* closed.stop
      const lonely = yield* startAgent({ port })
      yield* SubscriptionRef.set(lonely.tableRef, Option.some(table("cached", "backup")))
      yield* lonely.conn.decided.pipe(FakeBartos.within(10_000, "the first attempt to be decided"))
      assert.strictEqual(Option.getOrThrow(yield* SubscriptionRef.get(lonely.tableRef)).version, "cached")

      const server = yield* FakeBartos.make()
      const agent = yield* startAgent(server)
      yield* waitRef(agent.conn.session, Option.isSome, "the handshake")
      yield* agent.conn.decided.pipe(FakeBartos.within(1_000, "decided at the handshake"))
    }))

  it.scopedLive("failover: each attempt tries the next server; after a handshake the one that worked goes first", () =>
    Effect.gen(function*() {
      const dead = yield* FakeBartos.make()
      const deadPort = dead.port
      yield* dead.stop
      const a = yield* FakeBartos.make()
      const b = yield* FakeBartos.make()
      const agent = yield* startAgent({ port: 1 }, {
        servers: [{ host: "127.0.0.1", port: deadPort }, { host: "127.0.0.1", port: a.port }, {
          host: "127.0.0.1",
          port: b.port
        }]
      })
      // Attempt 1 meets nothing, attempt 2 goes to the next server.
      const a1 = yield* a.connection(1)
      yield* a1.waitFor(FakeBartos.isTag("AgentInfo"))
      yield* waitRef(agent.conn.session, Option.isSome, "the handshake with the second server")
      assert.strictEqual(yield* agent.conn.attempts, 2)
      // A handshaken link that ends: the server that worked is tried first again.
      yield* a1.close(1000, "bye")
      const a2 = yield* a.connection(2)
      yield* a2.waitFor(FakeBartos.isTag("AgentHello"))
      assert.strictEqual(yield* agent.conn.attempts, 3)
      assert.strictEqual(b.connections.length, 0)
      // It goes away: the attempt after that goes on round the list.
      yield* a.stop
      const b1 = yield* b.connection(1)
      yield* b1.waitFor(FakeBartos.isTag("AgentHello"))
      assert.strictEqual(yield* agent.conn.attempts, 5)
    }))

  it.scopedLive("reconnects with backoff after bartos closes; every handshake restores the retry budget", () =>
    Effect.gen(function*() {
      const server = yield* FakeBartos.make()
      const agent = yield* startAgent(server, { retryCount: 2 })
      for (let n = 1; n <= 3; n++) {
        const c = yield* server.connection(n)
        yield* c.waitFor(FakeBartos.isTag("AgentInfo"))
        yield* waitRef(agent.conn.session, Option.isSome, `handshake ${n}`)
        // 1000 and 1006 are disconnections like any other (style.md §4.2).
        yield* n % 2 === 0 ? c.terminate : c.close(1000, "bye")
      }
      const c4 = yield* server.connection(4)
      yield* c4.waitFor(FakeBartos.isTag("AgentHello"))
      assert.strictEqual(yield* agent.conn.attempts, 4)
      assert.isNull(agent.fiber.unsafePoll())
    }))

  it.scopedLive("fails once the retry budget is exhausted (nothing listening)", () =>
    Effect.gen(function*() {
      const server = yield* FakeBartos.make()
      const port = server.port
      yield* server.stop
      const agent = yield* startAgent({ port }, { retryCount: 3 })
      const error = yield* Fiber.join(agent.fiber).pipe(Effect.flip, FakeBartos.within(10_000, "the agent to give up"))
      assert.strictEqual(error.reason, "RetriesExhausted")
      assert.strictEqual(error.attempts, 3)
      assert.strictEqual(yield* agent.conn.attempts, 3)
    }))

  it.scopedLive("a refused api key (401) is a failed attempt", () =>
    Effect.gen(function*() {
      const server = yield* FakeBartos.make({ apiKey: "right" })
      const agent = yield* startAgent(server, { retryCount: 2, apiKey: Redacted.make("wrong") })
      const error = yield* Fiber.join(agent.fiber).pipe(Effect.flip, FakeBartos.within(10_000, "the agent to give up"))
      assert.strictEqual(error.attempts, 2)
      assert.include(error.message, "401")
      assert.deepStrictEqual(server.rejected.map((r) => r.authorization), ["Bearer wrong", "Bearer wrong"])
    }))

  it.scopedLive("retry_count = 0 fails at once without connecting", () =>
    Effect.gen(function*() {
      const server = yield* FakeBartos.make()
      const agent = yield* startAgent(server, { retryCount: 0 })
      const error = yield* Fiber.join(agent.fiber).pipe(Effect.flip)
      assert.strictEqual(error.reason, "NoRetries")
      assert.strictEqual(server.connections.length, 0)
    }))

  it.scopedLive("drops a silent bartos and reconnects", () =>
    Effect.gen(function*() {
      const server = yield* FakeBartos.make({ autoPong: false })
      yield* startAgent(server, { livenessMs: 300, pingIntervalMs: 100 })
      const c1 = yield* server.connection(1)
      const closed = yield* c1.waitClosed
      assert.strictEqual(closed.code, 1000)
      assert.include(closed.reason, "silent")
      // Pings went out meanwhile, first one at once.
      assert.isTrue(c1.received.some((m) => m._tag === "Ping" && m.id === 0))
      yield* server.connection(2)
    }))

  it.scopedLive("a stalled runtime (heartbeat later than client_timeout) drops the connection", () =>
    Effect.gen(function*() {
      const server = yield* FakeBartos.make()
      const agent = yield* startAgent(server, { clientTimeoutSecs: 0.1, pingIntervalMs: 50 })
      const c1 = yield* server.connection(1)
      yield* waitRef(agent.conn.session, Option.isSome, "the handshake")
      // Block the event loop, as a stalled runtime would.
      const until = Date.now() + 400
      while (Date.now() < until) {
        // spin
      }
      const closed = yield* c1.waitClosed
      assert.include(closed.reason, "heartbeat")
      yield* server.connection(2)
    }))

  it.scopedLive("a protocol mismatch in ServerHello is a failed attempt", () =>
    Effect.gen(function*() {
      const server = yield* FakeBartos.make({ autoHello: false })
      yield* startAgent(server)
      const c1 = yield* server.connection(1)
      yield* c1.waitFor(FakeBartos.isTag("AgentHello"))
      yield* c1.send({
        _tag: "ServerHello",
        protocol: PROTOCOL_VERSION + 1,
        serverVersion: "future",
        capabilities: [],
        sessionId: "s",
        ackedUpTo: -1
      })
      const closed = yield* c1.waitClosed
      assert.include(closed.reason, "protocol")
      yield* server.connection(2)
    }))

  it.scopedLive("RunNow starts a manual run; unknown schedules and idle cancels are rejected", () =>
    Effect.gen(function*() {
      const server = yield* FakeBartos.make()
      const agent = yield* startAgent(server)
      const c1 = yield* server.connection(1)
      yield* c1.send(table("v1", "backup"))
      yield* waitRef(agent.tableRef, Option.isSome, "the table")
      const runId = Ids.newRunId()
      yield* c1.send({ _tag: "RunNow", requestId: "r1", schedule: "backup", runId })
      yield* c1.send({ _tag: "RunNow", requestId: "r2", schedule: "nope", runId: Ids.newRunId() })
      yield* c1.send({ _tag: "CancelRun", requestId: "r3", runId: Ids.newRunId() })
      yield* c1.send({ _tag: "CancelRun", requestId: "r4", runId })
      yield* c1.waitFor((m): m is Extract<AgentToServer, { _tag: "CommandRejected" }> =>
        m._tag === "CommandRejected" && m.requestId === "r3"
      )
      assert.strictEqual(agent.runner.starts.length, 1)
      const start = agent.runner.starts[0]!
      assert.strictEqual(start.runId, runId)
      assert.strictEqual(start.trigger, "manual")
      assert.strictEqual(start.spec.name, "backup")
      const rejected = c1.received.flatMap((m) => (m._tag === "CommandRejected" ? [m.requestId] : []))
      assert.deepStrictEqual(rejected, ["r2", "r3"])
    }))

  it.scopedLive("keeps at most maxInFlight records unacked", () =>
    Effect.gen(function*() {
      const server = yield* FakeBartos.make()
      const agent = yield* startAgent(server, { batchMax: 10, maxInFlight: 30 })
      const c1 = yield* server.connection(1)
      yield* agent.outbox.append(Array.from({ length: 100 }, (_, i) => missed(i)))
      yield* c1.waitUntil(() => seqs(c1.received).length >= 30, "30 records")
      // A round trip through the agent: it had every chance to send more, and did not.
      yield* c1.send({ _tag: "Ping", id: 999, sentAt: 0 as Micros })
      yield* c1.waitFor((m): m is Extract<AgentToServer, { _tag: "Pong" }> => m._tag === "Pong" && m.id === 999)
      assert.deepStrictEqual(seqs(c1.received), Array.from({ length: 30 }, (_, i) => i))
      yield* c1.send({ _tag: "Ack", upTo: 29 })
      yield* c1.waitUntil(() => seqs(c1.received).length >= 60, "the next 30")
      assert.deepStrictEqual(seqs(c1.received), Array.from({ length: 60 }, (_, i) => i))
    }))

  it.scopedLive("wss with a pinned CA and a client certificate (mTLS); the default roots refuse a private CA", () =>
    Effect.gen(function*() {
      const pki = yield* makePki()
      const server = yield* FakeBartos.make({
        tls: { cert: pki.read("server.pem"), key: pki.read("server.key"), ca: pki.read("ca.pem") }
      })
      const tls = {
        prefix: "wss" as const,
        clientCert: path.join(pki.dir, "agent.pem"),
        clientKey: path.join(pki.dir, "agent.key")
      }
      const agent = yield* startAgent(server, { ...tls, caCert: path.join(pki.dir, "ca.pem") })
      const c1 = yield* server.connection(1)
      yield* c1.waitFor(FakeBartos.isTag("AgentHello"))
      yield* waitRef(agent.conn.session, Option.isSome, "the handshake over TLS")
      const peer = (c1.request.socket as TLSSocket).getPeerCertificate()
      assert.strictEqual(peer.subject.CN, "agent one")

      // Without the pinned CA the agent trusts only the default roots, which do not know ours.
      const unpinned = yield* startAgent(server, { ...tls, retryCount: 1 })
      const refused = yield* Fiber.join(unpinned.fiber).pipe(Effect.flip, FakeBartos.within(10_000, "the refusal"))
      assert.match(refused.message, /certificate/i)
      // A ca_cert that cannot be read fails the attempt (even before connecting).
      const missing = yield* startAgent(server, { ...tls, caCert: path.join(pki.dir, "nope.pem"), retryCount: 1 })
      const unreadable = yield* Fiber.join(missing.fiber).pipe(Effect.flip, FakeBartos.within(10_000, "the failure"))
      assert.include(unreadable.message, "cannot read ca_cert")
      assert.strictEqual(server.connections.length, 1)
    }))

  it("[connection] timings reach the Connection; the defaults are the protocol's", () => {
    const defaults = Connection.fromConfig(Schema.decodeUnknownSync(Config.BartocConfig)({}))
    assert.strictEqual(defaults.pingIntervalMs, Connection.DEFAULTS.pingIntervalMs)
    assert.strictEqual(defaults.livenessMs, Connection.DEFAULTS.livenessMs)
    assert.strictEqual(defaults.backoffBaseMs, Connection.DEFAULTS.backoffBaseMs)
    assert.strictEqual(defaults.backoffCapMs, Connection.DEFAULTS.backoffCapMs)
    const tuned = Connection.fromConfig(
      Schema.decodeUnknownSync(Config.BartocConfig)({
        connection: {
          ping_interval_secs: 2,
          server_silence_secs: 7.5,
          reconnect_base_secs: 0.25,
          reconnect_max_secs: 60
        }
      })
    )
    assert.deepStrictEqual(
      [tuned.pingIntervalMs, tuned.livenessMs, tuned.backoffBaseMs, tuned.backoffCapMs],
      [2_000, 7_500, 250, 60_000]
    )
  })

  // Under TestClock with the in-memory bartos behind the Link service: no socket, no real time,
  // so the cadence and the silence limit are exact and the outcome does not depend on load.
  it.scoped("ping_interval_secs = 2 sets the ping cadence", () =>
    Effect.gen(function*() {
      const bartos = yield* MemoryLink.make()
      const config = Schema.decodeUnknownSync(Config.BartocConfig)({ connection: { ping_interval_secs: 2 } })
      const agent = yield* startAgent({ port: 1 }, Connection.fromConfig(config), bartos.layer)
      const c1 = yield* bartos.connection(1)
      yield* waitRef(agent.conn.session, Option.isSome, "the handshake")
      const ping = (id: number) =>
        bartos.waitFor(c1, (m): m is Extract<AgentToServer, { _tag: "Ping" }> => m._tag === "Ping" && m.id === id)
      yield* ping(0)
      for (let id = 1; id <= 2; id++) {
        yield* TestClock.adjust("1 second")
        assert.isFalse(
          (yield* SubscriptionRef.get(c1.received)).some((m) => m._tag === "Ping" && m.id === id),
          "not early"
        )
        yield* TestClock.adjust("1 second")
        yield* ping(id)
      }
      // The clock started at 0: each Ping carries the time it was sent, in microseconds.
      const sent = (yield* SubscriptionRef.get(c1.received)).flatMap((m) => (m._tag === "Ping" ? [m.sentAt] : []))
      assert.deepStrictEqual(sent, [0, 2_000_000, 4_000_000])
    }))

  it.scoped("server_silence_secs = 3 drops a silent bartos after 3 s, not 15", () =>
    Effect.gen(function*() {
      const bartos = yield* MemoryLink.make({ autoPong: false })
      const config = Schema.decodeUnknownSync(Config.BartocConfig)({
        connection: { ping_interval_secs: 1, server_silence_secs: 3 }
      })
      const agent = yield* startAgent({ port: 1 }, Connection.fromConfig(config), bartos.layer)
      const c1 = yield* bartos.connection(1)
      yield* waitRef(agent.conn.session, Option.isSome, "the handshake")
      for (let s = 0; s < 2; s++) yield* TestClock.adjust("1 second")
      assert.isTrue(Option.isNone(yield* Deferred.poll(c1.closed)), "still connected after 2 s")
      yield* TestClock.adjust("1 second")
      const closed = yield* Deferred.await(c1.closed)
      assert.strictEqual(closed.code, 1000)
      assert.strictEqual(closed.reason, "bartos silent for 3 s")
    }))

  it("builds the worker URL with the prefix, a bracketed IPv6 host and the encoded name", () => {
    assert.strictEqual(
      Connection.workerUrl({ prefix: "wss", host: "::1", port: 20443, name: "a/b c" }),
      "wss://[::1]:20443/v1/ws/worker?name=a%2Fb%20c"
    )
  })
})
