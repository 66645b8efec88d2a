/**
 * The fuzz driver of `Fuzz.e2e.test.ts`: sends seeded hostile frames down one WebSocket link and
 * checks every reaction against a model of the receiver built from the same domain code (codec,
 * envelopes), so the expectation is exact rather than "some frames were rejected":
 *
 * - each frame the receiver cannot use is answered with exactly one `ProtocolError` of the
 *   predicted code, and nothing else is;
 * - the link is closed only by the "N bad frames in a row -> 1008" rule, exactly when the model
 *   says so (the driver then reconnects and carries on);
 * - a valid `Ping` barrier every few frames proves the receiver has caught up (replies are
 *   ordered), so a count mismatch is reported at the frame where it happened, with the seed.
 */
import * as Codec from "@barto/domain/Codec"
import * as Envelope from "@barto/domain/Envelope"
import * as Messages from "@barto/domain/Messages"
import * as Arbitrary from "effect/Arbitrary"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import type * as Schema from "effect/Schema"
import * as SchemaModule from "effect/Schema"
import type * as SchemaAST from "effect/SchemaAST"
import { randomBytes } from "node:crypto"
import { WebSocket } from "ws"
import { type FrameKind, hmacEnvelope, hostileFrame, prng } from "./fuzz.js"

const enc = new TextEncoder()

/** What the receiver will say about one frame: nothing (it is valid), or a ProtocolError code. */
export type Verdict = { readonly ok: true } | { readonly ok: false; readonly code: string }

export interface Frame {
  readonly bytes: Uint8Array
  readonly binary: boolean
  readonly kind: string
}

/** The session binding of one worker connection (Envelope.ts): who we are, and both nonces. */
export interface Session {
  readonly agent: string
  readonly agentNonce: Envelope.SessionNonce
  readonly serverNonce: Envelope.SessionNonce
  /** Our side of the link. */
  readonly us: "agent" | "server"
}

/** Per-connection state of the model (replay caches and binding counters are per connection on both sides). */
export interface ConnState {
  /** The receiver's nonce cache, mirrored. */
  readonly theirNonces: Envelope.NonceCache
  /** Our cache for opening the receiver's sealed replies. */
  readonly ourNonces: Envelope.NonceCache
  /** Nonces the receiver accepted on this connection: replaying one must be refused. */
  readonly accepted: Array<bigint>
  readonly session: Session | undefined
  /** Our frames the receiver opened (the counter our next frame must carry), and theirs we opened. */
  sentOpened: bigint
  repliesOpened: bigint
  /**
   * The fake bartos opens each frame of the agent itself (the binding's counter allows one look
   * only): what it made of the frame being delivered, for the driver's `reply`.
   */
  opening?: { readonly _tag: string } | undefined
  /** The receiver took our hello on this connection: another one is a bad frame. */
  helloTaken?: boolean
}

/** What a frame we seal now is bound to (undefined on a link without binding). */
export const ourBinding = (conn: ConnState): Envelope.Binding | undefined =>
  conn.session === undefined ? undefined : {
    sender: conn.session.us,
    agent: conn.session.agent,
    agentNonce: conn.session.agentNonce,
    serverNonce: conn.session.serverNonce,
    counter: conn.sentOpened
  }

const theirBinding = (conn: ConnState): Envelope.Binding | undefined =>
  conn.session === undefined ? undefined : {
    sender: conn.session.us === "agent" ? "server" : "agent",
    agent: conn.session.agent,
    agentNonce: conn.session.agentNonce,
    serverNonce: conn.session.serverNonce,
    counter: conn.repliesOpened
  }

const contextOf = (conn: ConnState) => {
  const binding = ourBinding(conn)
  return binding === undefined ? new Uint8Array(0) : Envelope.bindingContext(binding)
}

export interface Link {
  /** Opens one connection (the peer may be a server we dial, or an agent that dials us). */
  readonly connect: () => Promise<{ readonly ws: WebSocket; readonly conn: ConnState }>
  /** The handshake frames we send first (none when the receiver speaks first). */
  readonly hello: (conn: ConnState) => Array<Frame>
  /** Decodes (and opens) one frame the receiver sent; undefined if it is not for us. */
  readonly reply: (data: Uint8Array, conn: ConnState) => { readonly _tag: string } | undefined
  readonly isHelloReply: (m: { readonly _tag: string }) => boolean
  /** A valid Ping with this id (the barrier). */
  readonly ping: (id: number, conn: ConnState) => Frame
  /** The next hostile (or occasionally valid) frame. */
  readonly next: (rand: () => number, conn: ConnState) => Frame
  /** The model: what the receiver will make of `frame`; updates `conn` as the receiver would. */
  readonly verdict: (frame: Frame, conn: ConnState) => Verdict
  /** The receiver's rule: this many bad frames in a row close the link with 1008 (none: never). */
  readonly maxBadFrames?: number
}

export interface FuzzReport {
  readonly sent: number
  readonly byKind: Record<string, number>
  /** Predicted ProtocolErrors by code. */
  readonly expected: Record<string, number>
  /** ProtocolErrors received by code (code "unexpected" included, if any). */
  readonly received: Record<string, number>
  readonly connections: number
  readonly policyCloses: number
  readonly barriers: number
}

const bump = (r: Record<string, number>, k: string, by = 1) => {
  r[k] = (r[k] ?? 0) + by
}

/** A socket's decoded inbound messages and its close, awaitable. */
class Inbox {
  readonly messages: Array<{ readonly _tag: string; readonly [k: string]: unknown }> = []
  closed: { code: number; reason: string } | undefined
  private waiters = new Set<() => void>()
  constructor(ws: WebSocket, decode: (data: Uint8Array) => { readonly _tag: string } | undefined) {
    ws.on("message", (data: Buffer) => {
      const m = decode(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
      if (m !== undefined) this.messages.push(m as never)
      this.poke()
    })
    ws.on("close", (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString("utf8") }
      this.poke()
    })
    ws.on("error", () => {})
  }
  private poke() {
    for (const w of [...this.waiters]) w()
  }
  /** Resolves when `check` holds (checked on every message and at close); rejects after `ms`. */
  until(what: string, check: () => boolean, ms = 20_000): Promise<void> {
    if (check()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(w)
        reject(new Error(`fuzz: timed out after ${ms} ms waiting for ${what}`))
      }, ms)
      const w = () => {
        if (check()) {
          clearTimeout(timer)
          this.waiters.delete(w)
          resolve()
        }
      }
      this.waiters.add(w)
    })
  }
}

export const newConn = (session?: Session): ConnState => ({
  theirNonces: Envelope.makeNonceCache(),
  ourNonces: Envelope.makeNonceCache(),
  accepted: [],
  session,
  sentOpened: 0n,
  repliesOpened: 0n
})

/** Dials a worker or CLI endpoint of bartos; on the worker link, as an agent with a session nonce. */
export const dialBartos = (url: string): Promise<{ readonly ws: WebSocket; readonly conn: ConnState }> =>
  new Promise((resolve, reject) => {
    const agentNonce = Envelope.makeSessionNonce()
    const worker = new URL(url).pathname === "/v1/ws/worker"
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      maxPayload: 64 * 1024 * 1024,
      ...(worker ? { headers: { [Envelope.NONCE_HEADER]: Envelope.formatSessionNonce(agentNonce) } } : {})
    })
    let serverNonce: Envelope.SessionNonce | undefined
    ws.once("upgrade", (res) => (serverNonce = Envelope.parseSessionNonce(res.headers[Envelope.NONCE_HEADER])))
    ws.once("open", () =>
      resolve({
        ws,
        conn: newConn(
          worker && serverNonce !== undefined
            ? { agent: new URL(url).searchParams.get("name") ?? "", agentNonce, serverNonce, us: "agent" }
            : undefined
        )
      }))
    ws.once("error", reject)
  })

/**
 * Sends `total` frames down `link` (reconnecting after each predicted 1008 close) and returns
 * what was predicted and what came back. Throws at the first disagreement with the model.
 */
export const fuzzLink = async (
  link: Link,
  options: { readonly total: number; readonly seed: number; readonly label: string; readonly barrierEvery?: number }
): Promise<FuzzReport> => {
  const rand = prng(options.seed)
  const every = options.barrierEvery ?? 30
  const report = {
    sent: 0,
    byKind: {} as Record<string, number>,
    expected: {} as Record<string, number>,
    received: {} as Record<string, number>,
    connections: 0,
    policyCloses: 0,
    barriers: 0
  }
  let barrierId = 1_000_000_000
  const where = () => `${options.label}, seed ${options.seed}, frame #${report.sent}`
  while (report.sent < options.total) {
    const { conn, ws } = await link.connect()
    report.connections++
    const inbox = new Inbox(ws, (data) => link.reply(data, conn))
    const errors = () => inbox.messages.filter((m) => m._tag === "ProtocolError").length
    const hello = link.hello(conn)
    for (const f of hello) {
      const v = link.verdict(f, conn)
      if (!v.ok) throw new Error(`fuzz: the model rejects our own hello (${v.code}) (${where()})`)
      ws.send(f.bytes, { binary: f.binary })
    }
    // A receiver that dialled us has already been greeted (connect resolves after the handshake).
    if (hello.length > 0) {
      await inbox.until("the hello reply", () => inbox.messages.some(link.isHelloReply) || inbox.closed !== undefined)
    }
    if (inbox.closed !== undefined) {
      throw new Error(`fuzz: closed during the hello: ${JSON.stringify(inbox.closed)} (${where()})`)
    }
    let expectedHere = 0
    let badInARow = 0
    let sinceBarrier = 0
    let gap = 1 + Math.floor(rand() * every)
    const barrier = async () => {
      const id = barrierId++
      const f = link.ping(id, conn)
      const v = link.verdict(f, conn)
      if (!v.ok) throw new Error(`fuzz: the model rejects our own barrier (${v.code}) (${where()})`)
      ws.send(f.bytes, { binary: f.binary })
      badInARow = 0
      report.barriers++
      await inbox.until(
        `Pong ${id} (${where()})`,
        () => inbox.closed !== undefined || inbox.messages.some((m) => m._tag === "Pong" && m.id === id)
      )
      if (inbox.closed !== undefined) {
        throw new Error(`fuzz: link closed outside the bad-frame rule: ${JSON.stringify(inbox.closed)} (${where()})`)
      }
      if (errors() !== expectedHere) {
        throw new Error(
          `fuzz: ${errors()} ProtocolErrors on this connection, the model expects ${expectedHere} (${where()})`
        )
      }
    }
    let policyClosed = false
    while (report.sent < options.total) {
      const f = link.next(rand, conn)
      const v = link.verdict(f, conn)
      ws.send(f.bytes, { binary: f.binary })
      report.sent++
      bump(report.byKind, f.kind)
      if (v.ok) {
        badInARow = 0
      } else {
        badInARow++
        expectedHere++
        bump(report.expected, v.code)
      }
      if (link.maxBadFrames !== undefined && badInARow >= link.maxBadFrames) {
        // The rule: the last ProtocolError, then close 1008 naming it.
        await inbox.until(`the 1008 close (${where()})`, () => inbox.closed !== undefined)
        const closed = inbox.closed!
        if (closed.code !== 1008 || !closed.reason.includes(`${link.maxBadFrames} bad frames in a row`)) {
          throw new Error(
            `fuzz: expected close 1008 "${link.maxBadFrames} bad frames in a row", got ${
              JSON.stringify(closed)
            } (${where()})`
          )
        }
        if (errors() !== expectedHere) {
          throw new Error(
            `fuzz: ${errors()} ProtocolErrors before the 1008 close, the model expects ${expectedHere} (${where()})`
          )
        }
        report.policyCloses++
        policyClosed = true
        break
      }
      if (++sinceBarrier >= gap) {
        await barrier()
        sinceBarrier = 0
        gap = 1 + Math.floor(rand() * every)
      }
    }
    if (!policyClosed) {
      await barrier()
      ws.close(1000)
      await inbox.until("our close", () => inbox.closed !== undefined).catch(() => ws.terminate())
    }
    for (const m of inbox.messages) if (m._tag === "ProtocolError") bump(report.received, String(m.code))
  }
  return report
}

// ---------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------

const replyCodec = Codec.makeJson({ maxFrameBytes: 64 * 1024 * 1024 })

/** Mirror of a receiver's checks: size limit, envelope, codec (the same domain code it runs). */
export const decodeVerdict = <A, I>(
  codec: Codec.Codec,
  schema: Schema.Schema<A, I>,
  payload: Uint8Array
): Verdict => {
  const decoded = codec.decode(schema, payload)
  return Either.isRight(decoded) ? { ok: true } : { ok: false, code: decoded.left.code }
}

/** A hostile payload from `fuzz.ts`, or now and then a text frame (every receiver wants binary). */
export const hostilePayload = (
  rand: () => number,
  valid: ReadonlyArray<Uint8Array>,
  maxFrameBytes: number
): { kind: FrameKind | "text_frame"; bytes: Uint8Array; binary: boolean } => {
  if (rand() < 0.03) {
    return { kind: "text_frame", bytes: enc.encode(`{"_tag":"Ping","id":1,"sentAt":1}`), binary: false }
  }
  const f = hostileFrame(rand, valid, maxFrameBytes)
  return { ...f, binary: true }
}

const nowSecs = () => Date.now() / 1000
const randomNonce = () => randomBytes(8).readBigUInt64BE(0)

/**
 * Envelope attacks against a receiver that checks HMAC (and optionally a signature). Each frame
 * is a valid payload, made bad only by its envelope, or a hostile payload in a good envelope.
 */
export const envelopeFrame = (
  rand: () => number,
  conn: ConnState,
  keys: {
    readonly hmacKey: string
    readonly signingKey?: Envelope.SigningKey
    readonly wrongSigner?: Envelope.SigningKey
  },
  valid: Uint8Array,
  hostile: () => { kind: string; bytes: Uint8Array; binary: boolean }
): Frame => {
  // Every frame is bound to this connection at the position the receiver expects next, so it is
  // bad only for the reason its kind names.
  const context = contextOf(conn)
  const sign = (
    inner: Uint8Array
  ) => (keys.signingKey === undefined ? inner : Envelope.sign(keys.signingKey, inner, context))
  const good = (payload: Uint8Array, nonce = randomNonce()) =>
    sign(hmacEnvelope(keys.hmacKey, payload, Math.floor(nowSecs()), nonce, context))
  const r = rand()
  if (r < 0.1) {
    return {
      kind: "hmac_wrong_key",
      binary: true,
      bytes: sign(hmacEnvelope(`${keys.hmacKey}!`, valid, Math.floor(nowSecs()), randomNonce(), context))
    }
  }
  if (r < 0.2) {
    return {
      kind: "hmac_expired",
      binary: true,
      bytes: sign(hmacEnvelope(keys.hmacKey, valid, Math.floor(nowSecs()) - 3600, randomNonce(), context))
    }
  }
  if (r < 0.3 && conn.accepted.length > 0) {
    const nonce = conn.accepted[Math.floor(rand() * conn.accepted.length)]!
    return { kind: "hmac_replayed_nonce", binary: true, bytes: good(valid, nonce) }
  }
  if (r < 0.35) return { kind: "no_envelope", binary: true, bytes: hostile().bytes }
  if (conn.session !== undefined && r < 0.4) {
    // A genuine envelope for another connection (other nonces): a frame replayed from elsewhere.
    const elsewhere = Envelope.bindingContext({ ...ourBinding(conn)!, serverNonce: Envelope.makeSessionNonce() })
    const inner = hmacEnvelope(keys.hmacKey, valid, Math.floor(nowSecs()), randomNonce(), elsewhere)
    return {
      kind: "other_connection",
      binary: true,
      bytes: keys.signingKey === undefined ? inner : Envelope.sign(keys.signingKey, inner, elsewhere)
    }
  }
  if (keys.signingKey !== undefined && r < 0.45) {
    return {
      kind: "unsigned",
      binary: true,
      bytes: hmacEnvelope(keys.hmacKey, valid, Math.floor(nowSecs()), randomNonce(), context)
    }
  }
  if (keys.signingKey !== undefined && keys.wrongSigner !== undefined && r < 0.55) {
    const inner = hmacEnvelope(keys.hmacKey, valid, Math.floor(nowSecs()), randomNonce(), context)
    return { kind: "wrong_signature", binary: true, bytes: Envelope.sign(keys.wrongSigner, inner, context) }
  }
  const h = hostile()
  return { kind: `sealed_${h.kind}`, binary: h.binary, bytes: h.binary ? good(h.bytes) : h.bytes }
}

/** The model of a receiver that opens envelopes: records accepted nonces as the receiver does. */
export const envelopeVerdict = (
  frame: Frame,
  conn: ConnState,
  opts: { readonly hmacKey: Uint8Array; readonly publicKey?: Envelope.PublicKey; readonly windowSecs: number },
  sizeLimit: number,
  decode: (payload: Uint8Array) => Verdict
): Verdict => {
  if (!frame.binary) return { ok: false, code: "undecodable" }
  if (frame.bytes.byteLength > sizeLimit) return { ok: false, code: "frame_too_large" }
  const opened = Envelope.open(
    { hmacKey: opts.hmacKey, publicKey: opts.publicKey, windowSecs: opts.windowSecs, nonces: conn.theirNonces },
    frame.bytes,
    nowSecs(),
    ourBinding(conn)
  )
  if (Either.isLeft(opened)) return { ok: false, code: "bad_envelope" }
  conn.sentOpened++
  const offset = (opts.publicKey === undefined ? 0 : Envelope.SIGNATURE_LEN) + 8
  conn.accepted.push(Buffer.from(frame.bytes).readBigUInt64BE(offset))
  return decode(opened.right)
}

/** Opens a sealed reply (signature and/or HMAC) and decodes it; undefined if it does not open. */
export const openReply = <A, I>(
  schema: Schema.Schema<A, I>,
  data: Uint8Array,
  conn: ConnState,
  opts: { readonly hmacKey?: Uint8Array; readonly publicKey?: Envelope.PublicKey }
): A | undefined => {
  const opened = opts.hmacKey === undefined && opts.publicKey === undefined
    ? Either.right(data)
    : Envelope.open({ ...opts, windowSecs: 60, nonces: conn.ourNonces }, data, nowSecs(), theirBinding(conn))
  if (Either.isLeft(opened)) return undefined
  if (opts.hmacKey !== undefined || opts.publicKey !== undefined) conn.repliesOpened++
  const decoded = replyCodec.decode(schema, opened.right)
  return Either.isRight(decoded) ? decoded.right : undefined
}

/** Plain (unenveloped) encoding of a message. */
export const encode = <A, I>(schema: Schema.Schema<A, I>, message: A): Uint8Array => replyCodec.encode(schema, message)

export const micros = (ms: number) => Messages.Micros.make(Math.floor(ms) * 1000)

// ---------------------------------------------------------------------------------------------
// A fake bartos for fuzzing the agent
// ---------------------------------------------------------------------------------------------

export interface FakeBartos {
  readonly port: number
  /**
   * Resolves with the agent's current connection once its handshake is done (ServerHello + table
   * sent), with the model state the fake shares with the driver (its own frames take counters).
   */
  readonly nextAgent: () => Promise<{ readonly ws: WebSocket; readonly conn: ConnState }>
  /** Sends a frame sealed for the current connection (the legit table, say), taking its counter. */
  readonly send: (m: Messages.ServerMessage) => void
  /** Records received (and acked), in arrival order. */
  readonly records: Array<Messages.AgentRecord>
  readonly connections: () => number
  readonly close: () => Promise<void>
}

/**
 * Speaks the worker protocol correctly (every frame sealed with the HMAC key and signed, bound to
 * the connection), greets each agent with a ServerHello and `table`, answers pings and acks every
 * batch. Tests send their hostile frames on the sockets it hands out: the fake's own frames and
 * theirs share one counter (`ConnState.sentOpened`), as on one real connection.
 */
export const startFakeBartos = async (options: {
  readonly hmacKey: string
  readonly signingKey: Envelope.SigningKey
  readonly table: typeof Messages.ScheduleTable.Type
}): Promise<FakeBartos> => {
  const { WebSocketServer } = await import("ws")
  const hmacKey = Envelope.hmacKeyFromString(options.hmacKey)
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, maxPayload: 64 * 1024 * 1024 })
  await new Promise<void>((r) => wss.once("listening", () => r()))
  const records: Array<Messages.AgentRecord> = []
  const waiting: Array<(c: { ws: WebSocket; conn: ConnState }) => void> = []
  let current: { ws: WebSocket; conn: ConnState; send: (m: Messages.ServerMessage) => void } | undefined
  let connections = 0
  const serverNonces = new WeakMap<object, Envelope.SessionNonce>()
  wss.on("headers", (headers: Array<string>, req: object) => {
    const nonce = Envelope.makeSessionNonce()
    serverNonces.set(req, nonce)
    headers.push(`${Envelope.NONCE_HEADER}: ${Envelope.formatSessionNonce(nonce)}`)
  })
  wss.on("connection", (ws, req) => {
    connections++
    const conn = newConn({
      agent: new URL(req.url ?? "/", "http://fake").searchParams.get("name") ?? "",
      agentNonce: Envelope.parseSessionNonce(req.headers[Envelope.NONCE_HEADER])!,
      serverNonce: serverNonces.get(req)!,
      us: "server"
    })
    // Sealed and written in one step, taking the shared counter: bartoc opens every one of them.
    const send = (m: Messages.ServerMessage) => {
      ws.send(
        Envelope.seal(
          { hmacKey, signingKey: options.signingKey },
          encode(Messages.ServerMessage, m),
          nowSecs(),
          ourBinding(conn)
        )
      )
      conn.sentOpened++
    }
    const nonces = Envelope.makeNonceCache()
    let agentFrames = 0n
    ws.on("error", () => {})
    ws.on("message", (data: Buffer) => {
      conn.opening = undefined
      const opened = Envelope.open({ hmacKey, windowSecs: 60, nonces }, new Uint8Array(data), nowSecs(), {
        ...conn.session!,
        sender: "agent",
        counter: agentFrames
      })
      if (Either.isLeft(opened)) return
      agentFrames++
      const decoded = replyCodec.decode(Messages.AgentToServer, opened.right)
      if (Either.isLeft(decoded)) return
      const m = decoded.right
      conn.opening = m
      switch (m._tag) {
        case "AgentHello": {
          send({
            _tag: "ServerHello",
            protocol: Messages.PROTOCOL_VERSION,
            serverVersion: "fake",
            capabilities: [],
            sessionId: `fake-${connections}`,
            ackedUpTo: -1
          })
          send(options.table)
          current = { ws, conn, send }
          for (const w of waiting.splice(0)) w({ ws, conn })
          break
        }
        case "RecordBatch":
          records.push(...m.records)
          if (m.records.length > 0) send({ _tag: "Ack", upTo: m.records[m.records.length - 1]!.seq })
          break
        case "Ping":
          send({ _tag: "Pong", id: m.id, sentAt: m.sentAt })
          break
        default:
          break
      }
    })
  })
  return {
    port: (wss.address() as { port: number }).port,
    nextAgent: () =>
      current !== undefined && current.ws.readyState === current.ws.OPEN
        ? Promise.resolve(current)
        : new Promise((r) => waiting.push(r)),
    send: (m) => current?.send(m),
    records,
    connections: () => connections,
    close: async () => {
      for (const ws of wss.clients) ws.terminate()
      await new Promise<void>((r) => wss.close(() => r()))
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One valid message of each type of a link, to put the worst values into
// ---------------------------------------------------------------------------------------------

/**
 * The encoded (JSON) form of one sample of every member of the tagged union `link` (unions of
 * unions flattened), seeded; `fixed` replaces a member's sample by tag (e.g. a harmless request
 * instead of a random cleanup).
 */
export const sampleEach = (
  link: Schema.Schema<any, any>,
  seed: number,
  fixed: Readonly<Record<string, unknown>> = {}
): Array<Record<string, unknown>> => {
  const out: Array<Record<string, unknown>> = []
  const walk = (ast: SchemaAST.AST) => {
    if (ast._tag === "Union") return ast.types.forEach(walk)
    const member = SchemaModule.make(ast)
    const literal = ast._tag === "Transformation" ? ast.to : ast
    const tagSignature = literal._tag === "TypeLiteral"
      ? literal.propertySignatures.find((p) => p.name === "_tag")
      : undefined
    const tag = tagSignature?.type._tag === "Literal" ? String(tagSignature.type.literal) : undefined
    if (tag !== undefined && tag in fixed) {
      out.push(JSON.parse(JSON.stringify(SchemaModule.encodeSync(member)(fixed[tag]))))
      return
    }
    // Only values that survive the wire as they are (JSON has no NaN, UTF-8 no lone surrogate).
    const [value] = FastCheck.sample(
      Arbitrary.make(member).filter((v) => Either.isRight(replyCodec.decode(member, replyCodec.encode(member, v)))),
      { seed, numRuns: 1 }
    )
    out.push(JSON.parse(JSON.stringify(SchemaModule.encodeSync(member)(value))))
  }
  walk(link.ast)
  return out
}
