/**
 * D6 fuzzing with the real programs: seeded hostile frames (random bytes, truncated and
 * bit-flipped valid frames, oversized, unknown tags, wrong types, not JSON, empty, text garbage,
 * text frames; envelopes with wrong keys, expired timestamps, replayed nonces, missing or wrong
 * signatures) against bartos' worker and CLI endpoints and against bartoc (through a fake bartos
 * that completes a valid, sealed handshake first).
 *
 * And the worst values (5,000 nested arrays or objects, a 400-digit number, 2^53 + 1, 2^31, a
 * 300 KB string, an array of 100,000 items, invalid UTF-8) in every field of every message type
 * of both links of bartos and of bartoc's link (issue 11: one such frame used to kill bartos).
 * Frames are bound to their connection on the sealed links, so each is bad for its own reason.
 *
 * Every reaction is checked against a model built from the same domain code (see
 * `utils/fuzzing.ts`): one ProtocolError of the predicted code per bad frame, bartos' rejected
 * frame counters moving by exactly that much, a 1008 close exactly after 20 bad frames in a row
 * and never otherwise, and meanwhile a legitimate agent and CLI keep working.
 *
 * Protocol-level, so SQLite only. Reproduce a failure with BARTO_FUZZ_SEED=<the printed seed>.
 */
import * as Codec from "@barto/domain/Codec"
import * as Envelope from "@barto/domain/Envelope"
import * as Messages from "@barto/domain/Messages"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { randomBytes } from "node:crypto"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Cluster, makeCluster, waitFor } from "./utils/cluster.js"
import { isAlive, metrics, runs } from "./utils/faults.js"
import { worstFrames } from "./utils/fuzz.js"
import {
  type ConnState,
  decodeVerdict,
  dialBartos,
  encode,
  envelopeFrame,
  envelopeVerdict,
  type FakeBartos,
  type Frame,
  fuzzLink,
  type FuzzReport,
  hostilePayload,
  type Link,
  micros,
  openReply,
  ourBinding,
  sampleEach,
  startFakeBartos,
  type Verdict
} from "./utils/fuzzing.js"
import { killAll, type Proc } from "./utils/procs.js"

const SEED = Number(process.env.BARTO_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))
const MAX_FRAME = 1024 * 1024
const HMAC_KEY = "fuzz-hmac-key-0123456789"
const LEGIT = [{ name: "legit", on_calendar: "*-*-* *:*:*", cmds: ["echo legit $BARTO_SCHEDULED_AT"] }]

// The flat inbound unions bartos decodes with (unknown tags are told apart from malformed ones).
const FromAgent = Schema.Union(...Messages.AgentMessage.members, Messages.ProtocolError)
const FromCli = Schema.Union(Messages.CliHello, ...Messages.CliRequest.members, Messages.Ping)
const codec = Codec.makeJson({ maxFrameBytes: MAX_FRAME })

const agentFrame = (m: Messages.AgentToServer) => encode(Messages.AgentToServer, m)
const cliFrame = (m: Messages.CliToServer) => encode(Messages.CliToServer, m)
const serverFrame = (m: Messages.ServerMessage) => encode(Messages.ServerMessage, m)

const runId = "01900000-0000-7000-8000-000000000000" as Messages.RunId
/** Valid worker frames to truncate and bit-flip (a flip that still decodes is a valid frame). */
const VALID_AGENT: ReadonlyArray<Uint8Array> = [
  agentFrame({ _tag: "Ping", id: 7, sentAt: micros(1_700_000_000_000) }),
  agentFrame({ _tag: "Pong", id: 8, sentAt: micros(1_700_000_000_000) }),
  agentFrame({
    _tag: "AgentInfo",
    info: new Messages.ClientInfo({ osName: "Linux", hostname: "fuzz", osVersion: "1", kernel: "6", agentVersion: "0" })
  }),
  agentFrame({ _tag: "CommandRejected", requestId: "r1", reason: "no" }),
  agentFrame({ _tag: "ProtocolError", code: "undecodable", message: "yours" }),
  agentFrame({
    _tag: "RecordBatch",
    records: [
      {
        _tag: "RunStarted",
        seq: 1,
        runId,
        schedule: "fz",
        trigger: "manual",
        scheduledAt: micros(1_700_000_000_000),
        startedAt: micros(1_700_000_000_000)
      },
      {
        _tag: "OutputLine",
        seq: 2,
        runId,
        cmdUuid: "c",
        lineSeq: 0,
        stream: "stdout",
        ts: micros(1_700_000_000_001),
        data: "x",
        continuation: false
      }
    ]
  })
]
/** Valid CLI frames: read-only requests only (a flip must not clean up or cancel anything). */
const VALID_CLI: ReadonlyArray<Uint8Array> = [
  cliFrame({ _tag: "Ping", id: 7, sentAt: micros(1_700_000_000_000) }),
  cliFrame({ _tag: "InfoRequest", id: 1 }),
  cliFrame({ _tag: "ClientsRequest", id: 2 }),
  cliFrame({ _tag: "RunsRequest", id: 3, limit: 5 }),
  cliFrame({ _tag: "SchedulesRequest", id: 4 })
]
/** Valid server->agent frames whose flips are harmless (no Ack, RunNow, Cancel or table). */
const VALID_SERVER: ReadonlyArray<Uint8Array> = [
  serverFrame({ _tag: "Ping", id: 7, sentAt: micros(1_700_000_000_000) }),
  serverFrame({ _tag: "Pong", id: 8, sentAt: micros(1_700_000_000_000) }),
  serverFrame({ _tag: "AgentCleanup", before: micros(1_000) }),
  serverFrame({ _tag: "ProtocolError", code: "undecodable", message: "yours" })
]

const plainFrame = (bytes: Uint8Array, kind = "valid"): Frame => ({ bytes, binary: true, kind })

/** A valid hello after the handshake is refused as "unexpected" (and counted), like any bad frame. */
const secondHello = (v: Verdict, bytes: Uint8Array, tag: string, conn: ConnState): Verdict => {
  if (!v.ok || (JSON.parse(new TextDecoder().decode(bytes)) as { _tag: string })._tag !== tag) return v
  if (conn.helloTaken !== true) {
    conn.helloTaken = true
    return v
  }
  return { ok: false, code: "unexpected" }
}

/** Frames from a fixed list, in order (the driver asks for exactly as many as `total`). */
const fromList = (frames: ReadonlyArray<{ readonly kind: string; readonly bytes: Uint8Array }>): Link["next"] => {
  let i = 0
  return () => ({ ...frames[i++ % frames.length]!, binary: true })
}

/** `fromList`, each sealed (signed and HMAC'd) for the connection at the counter expected next. */
const sealedList = (
  frames: ReadonlyArray<{ readonly kind: string; readonly bytes: Uint8Array }>,
  seal: (conn: ConnState, payload: Uint8Array) => Uint8Array
): Link["next"] => {
  const next = fromList(frames)
  return (rand, conn) => {
    const f = next(rand, conn)
    return { ...f, bytes: seal(conn, f.bytes) }
  }
}

/** How many message types a tagged union has (unions of unions flattened). */
const membersCount = (link: Schema.Schema<any, any>): number => {
  const count = (
    ast: Schema.Schema<any, any>["ast"]
  ): number => (ast._tag === "Union" ? ast.types.reduce((n, t) => n + count(t), 0) : 1)
  return count(link.ast)
}

const rejectedByReason = (m: Map<string, number>) => {
  const out: Record<string, number> = {}
  for (const [k, v] of m) {
    const r = k.match(/^bartos_frames_rejected_total\{reason="([^"]+)"\}$/)
    if (r) out[r[1]!] = v
  }
  return out
}
const delta = (after: Record<string, number>, before: Record<string, number>) => {
  const out: Record<string, number> = {}
  for (const k of new Set([...Object.keys(after), ...Object.keys(before)])) {
    const d = (after[k] ?? 0) - (before[k] ?? 0)
    if (d !== 0) out[k] = d
  }
  return out
}
const total = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0)

const summary = (label: string, r: FuzzReport) =>
  console.log(
    `fuzz ${label}: seed ${SEED}: ${r.sent} frames on ${r.connections} connection(s), ${total(r.expected)} rejected ` +
      `${JSON.stringify(r.expected)}, ${r.policyCloses} closes by the 20-in-a-row rule, ${r.barriers} barriers; ` +
      `kinds ${JSON.stringify(r.byKind)}`
  )

/**
 * Runs `fuzz` while a legitimate agent keeps landing runs and `barto-cli info` answers, during
 * and after; checks bartos is still up and its rejected-frame counters moved by `expected`.
 */
const underFuzz = async (c: Cluster, agent: string, fuzz: () => Promise<FuzzReport>) => {
  const before = rejectedByReason(await metrics(c.port))
  const from = Date.now()
  const infoDuring = c.cli(["info"])
  const report = await fuzz()
  const to = Date.now()
  const during = await infoDuring
  expect(during.code, during.stderr).toBe(0)
  expect(isAlive(c.server!)).toBe(true)
  // bartos counted exactly the frames the model calls bad, by reason.
  expect(delta(rejectedByReason(await metrics(c.port)), before)).toEqual(report.expected)
  // The received ProtocolErrors are the predicted ones, code by code.
  expect(report.received).toEqual(report.expected)
  const after = await c.cli(["info"])
  expect(after.code, after.stderr).toBe(0)
  // The legitimate agent's runs kept landing, during (if the fuzz lasted over a second) and after.
  await waitFor(
    "a legitimate run after the fuzz",
    async () =>
      (await runs(c.db, agent, "legit")).some((r) => r.scheduled_at / 1000 > to && r.state === "succeeded") || undefined
  )
  if (to - from > 2_500) {
    const rs = await runs(c.db, agent, "legit")
    expect(rs.some((r) => r.scheduled_at / 1000 > from && r.scheduled_at / 1000 < to)).toBe(true)
  }
  return report
}

describe("fuzzing bartos and bartoc (SQLite)", () => {
  let plain: Cluster
  let sealed: Cluster
  let lone: Cluster
  let fake: FakeBartos | undefined
  const signingSeed = randomBytes(32)
  const signingKey = Either.getOrThrow(Envelope.signingKeyFromSeed(signingSeed))
  const publicKeyB64 = Buffer.from(signingKey.publicKey).toString("base64")
  const publicKey = Either.getOrThrow(Envelope.parsePublicKey(publicKeyB64))
  const wrongSigner = Either.getOrThrow(Envelope.signingKeyFromSeed(randomBytes(32)))
  const hmacBytes = Envelope.hmacKeyFromString(HMAC_KEY)

  beforeAll(async () => {
    console.log(`fuzz: seed ${SEED} (BARTO_FUZZ_SEED=${SEED} reproduces this run)`)
    const agentTrace = { enable_std_output: true }
    ;[plain, sealed, lone] = await Promise.all([
      makeCluster("sqlite", { schedules: { legit: LEGIT } }),
      makeCluster("sqlite", {
        schedules: { legit: LEGIT },
        server: { hmac_key: HMAC_KEY, signing_key: signingSeed.toString("base64") }
      }),
      makeCluster("sqlite")
    ])
    await Promise.all([
      plain.startServer().then(() => plain.startAgent("legit", agentTrace)).then((a) =>
        a.waitForLine(/accepted agent/, 30_000)
      ),
      sealed.startServer()
        .then(() => sealed.startAgent("legit", { ...agentTrace, hmac_key: HMAC_KEY, server_public_key: publicKeyB64 }))
        .then((a) => a.waitForLine(/accepted agent/, 30_000))
    ])
  }, 120_000)
  afterAll(async () => {
    await fake?.close()
    await killAll()
    await Promise.all([plain?.stop(), sealed?.stop(), lone?.stop()])
  })

  const fuzzerHello: Messages.AgentToServer = {
    _tag: "AgentHello",
    protocol: Messages.PROTOCOL_VERSION,
    agentVersion: "fuzz",
    capabilities: [],
    outboxId: `fuzz-${SEED}`,
    lastSeq: -1
  }

  /** The worker link of the plain bartos, as an agent named "fuzzer" after its hello. */
  const workerLink = (next: Link["next"]): Link => ({
    connect: () => dialBartos(`ws://127.0.0.1:${plain.port}/v1/ws/worker?name=fuzzer`),
    hello: () => [plainFrame(agentFrame(fuzzerHello))],
    reply: (data, conn) => openReply(Messages.ServerMessage, data, conn, {}),
    isHelloReply: (m) => m._tag === "ServerHello",
    ping: (id) => plainFrame(agentFrame({ _tag: "Ping", id, sentAt: micros(Date.now()) })),
    next,
    verdict: (f, conn) =>
      !f.binary
        ? { ok: false, code: "undecodable" }
        : f.bytes.byteLength > MAX_FRAME
        ? { ok: false, code: "frame_too_large" }
        : secondHello(decodeVerdict(codec, FromAgent, f.bytes), f.bytes, "AgentHello", conn),
    maxBadFrames: 20
  })

  /** The CLI link of the plain bartos, after its CliHello. */
  const cliLink = (next: Link["next"]): Link => ({
    connect: () => dialBartos(`ws://127.0.0.1:${plain.port}/v1/ws/cli?name=fuzzer`),
    hello: () => [plainFrame(cliFrame({ _tag: "CliHello", protocol: Messages.PROTOCOL_VERSION, cliVersion: "fuzz" }))],
    reply: (data, conn) => openReply(Messages.ServerToCli, data, conn, {}),
    isHelloReply: (m) => m._tag === "ServerHelloCli",
    ping: (id) => plainFrame(cliFrame({ _tag: "Ping", id, sentAt: micros(Date.now()) })),
    next,
    verdict: (f, conn) =>
      !f.binary
        ? { ok: false, code: "undecodable" }
        : secondHello(decodeVerdict(codec, FromCli, f.bytes), f.bytes, "CliHello", conn),
    maxBadFrames: 20
  })

  it(
    "bartos /v1/ws/worker: 4,000 hostile frames, each answered and counted; 1008 only after 20 bad in a row",
    async () => {
      const link = workerLink((rand) => hostilePayload(rand, VALID_AGENT, MAX_FRAME))
      const report = await underFuzz(
        plain,
        "legit",
        () => fuzzLink(link, { total: 4_000, seed: SEED, label: "worker" })
      )
      summary("worker", report)
      expect(report.sent).toBe(4_000)
      expect(report.policyCloses).toBeGreaterThan(0)
      // Every connection but the last ended by the rule (the driver fails on any other close).
      expect(report.connections - report.policyCloses).toBeGreaterThanOrEqual(0)
      expect(report.connections - report.policyCloses).toBeLessThanOrEqual(1)
      for (const code of ["undecodable", "unknown_tag", "frame_too_large"]) {
        expect(report.expected[code] ?? 0).toBeGreaterThan(0)
      }
    },
    180_000
  )

  it(
    "bartos /v1/ws/cli: 3,000 hostile frames, each answered and counted; 1008 only after 20 bad in a row",
    async () => {
      const link = cliLink((rand) => hostilePayload(rand, VALID_CLI, MAX_FRAME))
      const report = await underFuzz(
        plain,
        "legit",
        () => fuzzLink(link, { total: 3_000, seed: SEED + 1, label: "cli" })
      )
      summary("cli", report)
      expect(report.sent).toBe(3_000)
      expect(report.policyCloses).toBeGreaterThan(0)
      for (const code of ["undecodable", "unknown_tag", "frame_too_large"]) {
        expect(report.expected[code] ?? 0).toBeGreaterThan(0)
      }
    },
    180_000
  )

  it(
    "bartos /v1/ws/worker with hmac_key: 2,000 frames with wrong keys, expired timestamps, replayed nonces and sealed garbage",
    async () => {
      // Our valid frames are bound to the connection at the counter bartos expects next.
      const seal = (conn: ConnState, payload: Uint8Array) =>
        Envelope.seal({ hmacKey: hmacBytes }, payload, Date.now() / 1000, ourBinding(conn))
      const link: Link = {
        connect: () => dialBartos(`ws://127.0.0.1:${sealed.port}/v1/ws/worker?name=fuzzer`),
        hello: (conn) => [plainFrame(seal(conn, agentFrame(fuzzerHello)))],
        // bartos seals its frames with the HMAC key and signs them.
        reply: (data, conn) => openReply(Messages.ServerMessage, data, conn, { hmacKey: hmacBytes, publicKey }),
        isHelloReply: (m) => m._tag === "ServerHello",
        ping: (id, conn) => plainFrame(seal(conn, agentFrame({ _tag: "Ping", id, sentAt: micros(Date.now()) }))),
        next: (rand, conn: ConnState) =>
          envelopeFrame(
            rand,
            conn,
            { hmacKey: HMAC_KEY },
            agentFrame({ _tag: "Ping", id: 5, sentAt: micros(Date.now()) }),
            () => hostilePayload(rand, VALID_AGENT, MAX_FRAME)
          ),
        verdict: (f, conn) =>
          envelopeVerdict(
            f,
            conn,
            { hmacKey: hmacBytes, windowSecs: 60 },
            MAX_FRAME + Envelope.HMAC_HEADER_LEN,
            (payload) => decodeVerdict(codec, FromAgent, payload)
          ),
        maxBadFrames: 20
      }
      const report = await underFuzz(
        sealed,
        "legit",
        () => fuzzLink(link, { total: 2_000, seed: SEED + 2, label: "worker+hmac" })
      )
      summary("worker+hmac", report)
      expect(report.sent).toBe(2_000)
      for (const kind of ["hmac_wrong_key", "hmac_expired", "hmac_replayed_nonce", "other_connection", "no_envelope"]) {
        expect(report.byKind[kind] ?? 0).toBeGreaterThan(0)
      }
      expect(report.expected.bad_envelope ?? 0).toBeGreaterThan(0)
      expect(report.expected.undecodable ?? 0).toBeGreaterThan(0)
    },
    180_000
  )

  const legitTable = {
    _tag: "ScheduleTable" as const,
    version: "fuzz-v1",
    schedules: [
      new Messages.ScheduleSpec({
        name: "legit",
        onCalendar: "*-*-* *:*:*",
        calendar: "*-*-* *:*:*",
        cmds: ["echo legit"],
        overlap: "allow",
        onFailure: "continue",
        paused: false
      })
    ]
  }
  let fuzzed: Proc | undefined
  /** A fake bartos (signing and HMAC, bound to the connection) with one real bartoc on it, started once. */
  const fuzzedAgent = async () => {
    if (fake === undefined || fuzzed === undefined) {
      fake = await startFakeBartos({ hmacKey: HMAC_KEY, signingKey, table: legitTable })
      fuzzed = await lone.startAgent("fuzzed", {
        enable_std_output: true,
        hmac_key: HMAC_KEY,
        server_public_key: publicKeyB64
      }, fake.port)
      await fuzzed.waitForLine(/accepted agent/, 30_000)
    }
    return { f: fake, agent: fuzzed }
  }
  const droppedLogged = () =>
    readFileSync(join(lone.dir, "bartoc-fuzzed.log"), "utf8").split("\n").filter((l) =>
      l.includes("dropping a frame from bartos")
    ).length
  const sealFull = (conn: ConnState, payload: Uint8Array) =>
    Envelope.seal({ hmacKey: hmacBytes, signingKey }, payload, Date.now() / 1000, ourBinding(conn))
  /** bartoc's link through the fake; `decoded` refines the codec's verdict on a frame that opened. */
  const agentLink = (f: FakeBartos, next: Link["next"], decoded: (payload: Uint8Array) => Verdict): Link => ({
    connect: () => f.nextAgent(),
    hello: () => [],
    // bartoc seals its frames with the HMAC key (no signature on agent frames); the fake has
    // opened each one already, on the same 'message' event, just before the driver sees it.
    reply: (_data, conn) => conn.opening,
    isHelloReply: () => true,
    ping: (id, conn) => plainFrame(sealFull(conn, serverFrame({ _tag: "Ping", id, sentAt: micros(Date.now()) }))),
    next,
    // bartoc: text frames are dropped; then signature, HMAC; then the codec.
    verdict: (fr, conn) =>
      envelopeVerdict(fr, conn, { hmacKey: hmacBytes, publicKey, windowSecs: 60 }, Number.POSITIVE_INFINITY, decoded)
  })

  it(
    "bartoc: 1,500 hostile frames from a fake bartos (wrong or missing signatures, bad envelopes, sealed garbage): each dropped, counted and answered; its jobs keep running",
    async () => {
      const { agent, f } = await fuzzedAgent()
      const droppedBefore = droppedLogged()
      let agentFrames = 0
      const link = agentLink(
        f,
        (rand, conn) =>
          envelopeFrame(
            rand,
            conn,
            { hmacKey: HMAC_KEY, signingKey, wrongSigner },
            serverFrame({ _tag: "Ping", id: 5, sentAt: micros(Date.now()) }),
            // Every 150th payload oversized, so each seed has some (they are 1% otherwise).
            () =>
              ++agentFrames % 150 === 75
                ? {
                  kind: "oversized",
                  binary: true,
                  bytes: serverFrame({ _tag: "ProtocolError", code: "undecodable", message: "x".repeat(MAX_FRAME) })
                }
                : hostilePayload(rand, VALID_SERVER, MAX_FRAME)
          ),
        (payload) => decodeVerdict(codec, Messages.ServerMessage, payload)
      )
      const from = Date.now()
      const report = await fuzzLink(link, { total: 1_500, seed: SEED + 3, label: "agent" })
      const to = Date.now()
      summary("agent", report)
      expect(report.sent).toBe(1_500)
      // One connection throughout: bartoc has no close rule, bad frames never end its link.
      expect(report.connections).toBe(1)
      expect(f.connections()).toBe(1)
      expect(report.received).toEqual(report.expected)
      // A sealed frame over max_frame_bytes is answered too, not cut by the socket's size cap.
      expect(report.expected.frame_too_large ?? 0).toBeGreaterThan(0)
      for (
        const kind of [
          "unsigned",
          "wrong_signature",
          "hmac_wrong_key",
          "hmac_expired",
          "hmac_replayed_nonce",
          "other_connection",
          "no_envelope"
        ]
      ) {
        expect(report.byKind[kind] ?? 0).toBeGreaterThan(0)
      }
      expect(isAlive(agent)).toBe(true)
      // Each dropped frame was logged (its counter is internal; its log is not).
      expect(droppedLogged() - droppedBefore).toBe(total(report.expected))
      // Its jobs kept running and reporting, during and after.
      await waitFor(
        "a run after the fuzz",
        () => f.records.some((r) => r._tag === "RunStarted" && r.scheduledAt / 1000 > to) || undefined
      )
      if (to - from > 2_500) {
        expect(
          f.records.some((r) => r._tag === "RunStarted" && r.scheduledAt / 1000 > from && r.scheduledAt / 1000 < to)
        ).toBe(true)
      }
    },
    180_000
  )
  // --- the worst value in every field of every message type (issue 11) -------------------------

  /** Every field of one message of each type, with each of `WORST_VALUES` in turn. */
  const everyField = (messages: ReadonlyArray<Record<string, unknown>>) => {
    const frames = worstFrames(messages)
    const tags = new Set(messages.map((m) => m._tag))
    return { frames, tags }
  }
  const expectWorstCovered = (report: FuzzReport, frames: number) => {
    expect(report.sent).toBe(frames)
    for (
      const kind of [
        "worst_nested_arrays",
        "worst_nested_objects",
        "worst_huge_number",
        "worst_unsafe_integer",
        "worst_int32_overflow",
        "worst_huge_string",
        "worst_long_array",
        "worst_invalid_utf8"
      ]
    ) expect(report.byKind[kind] ?? 0).toBeGreaterThan(0)
  }

  /** Every worst frame of `messages` down `link` while the legitimate agent keeps running. */
  const worstAgainstBartos = async (
    messages: ReadonlyArray<Record<string, unknown>>,
    link: (next: Link["next"]) => Link,
    schema: Schema.Schema<any, any>,
    label: string,
    seed: number
  ) => {
    const { frames, tags } = everyField(messages)
    expect(tags.size).toBe(membersCount(schema))
    const report = await underFuzz(
      plain,
      "legit",
      () => fuzzLink(link(fromList(frames)), { total: frames.length, seed, label })
    )
    summary(label, report)
    expectWorstCovered(report, frames.length)
  }

  it(
    "bartos /v1/ws/worker: the worst value in every field of every message type, each answered; bartos stays up",
    async () => {
      // A batch carries one record of each kind, so every record field gets every worst value.
      const messages = sampleEach(FromAgent, SEED).map((m) =>
        m._tag === "RecordBatch" ? { ...m, records: sampleEach(Messages.AgentRecord, SEED) } : m
      )
      await worstAgainstBartos(messages, workerLink, FromAgent, "worker-worst", SEED + 4)
    },
    300_000
  )

  it(
    "bartos /v1/ws/cli: the worst value in every field of every message type, each answered; bartos stays up",
    async () => {
      // Requests that change something are aimed at nothing (a dry run, an agent that does not exist).
      const messages = sampleEach(FromCli, SEED, {
        CleanupRequest: { _tag: "CleanupRequest", id: 1, before: micros(1), dryRun: true },
        RunNowRequest: { _tag: "RunNowRequest", id: 2, agent: "nobody", schedule: "none" },
        PauseRequest: { _tag: "PauseRequest", id: 3, agent: "nobody", schedule: "none" },
        ResumeRequest: { _tag: "ResumeRequest", id: 4, agent: "nobody", schedule: "none" },
        QueryRequest: { _tag: "QueryRequest", id: 5, sql: "SELECT 1" },
        TailRequest: { _tag: "TailRequest", id: 6, runId: "0190aaaa-0000-7000-8000-000000000000", follow: false }
      })
      await worstAgainstBartos(messages, cliLink, FromCli, "cli-worst", SEED + 5)
    },
    300_000
  )

  it(
    "bartoc: the worst value in every field of every message type from its bartos, each dropped and answered; it stays up and keeps running",
    async () => {
      const { agent, f } = await fuzzedAgent()
      const droppedBefore = droppedLogged()
      const messages = sampleEach(Messages.ServerMessage, SEED, {
        ServerHello: {
          _tag: "ServerHello",
          protocol: Messages.PROTOCOL_VERSION,
          serverVersion: "x",
          capabilities: [],
          sessionId: "s",
          ackedUpTo: -1
        },
        ScheduleTable: legitTable,
        RunNow: { _tag: "RunNow", requestId: "r", schedule: "none", runId: "0190aaaa-0000-7000-8000-000000000000" },
        ProtocolError: { _tag: "ProtocolError", code: "undecodable", message: "m" }
      })
      const { frames, tags } = everyField(messages)
      expect(tags.size).toBe(membersCount(Messages.ServerMessage))
      // Sealed for this connection: each frame is judged on its payload alone.
      const link = agentLink(
        f,
        sealedList(frames, sealFull),
        (payload) => {
          const v = decodeVerdict(codec, Messages.ServerMessage, payload)
          if (!v.ok) return v
          const m = JSON.parse(new TextDecoder().decode(payload)) as { _tag: string; upTo?: number }
          // Handshaken already: a ServerHello is refused; an Ack only covers what was sent.
          if (m._tag === "ServerHello") return { ok: false, code: "unexpected" }
          if (m._tag === "Ack" && (m.upTo ?? 0) > 1e9) return { ok: false, code: "unexpected" }
          return v
        }
      )
      const report = await fuzzLink(link, { total: frames.length, seed: SEED + 6, label: "agent-worst" })
      summary("agent-worst", report)
      expectWorstCovered(report, frames.length)
      expect(report.received).toEqual(report.expected)
      expect(isAlive(agent)).toBe(true)
      expect(droppedLogged() - droppedBefore).toBe(total(report.expected))
      // Some frames were valid tables with odd values: the legit one again, then its job runs.
      f.send({ ...legitTable, version: "fuzz-v2" })
      const after = Date.now()
      await waitFor(
        "a run after the worst frames",
        () => f.records.some((r) => r._tag === "RunStarted" && r.scheduledAt / 1000 > after) || undefined
      )
    },
    300_000
  )
})
