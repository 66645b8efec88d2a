/**
 * Worker sessions on `/v1/ws/worker` (D5, D6, D7; reference §1.3 with its bugs fixed).
 *
 * Lifecycle of one connection: `AgentHello` (within `helloTimeoutMs`) -> the name is claimed for
 * this agent instance (its outbox id; another instance holding the live name means close 4003) ->
 * `ServerHello` + the agent's `ScheduleTable` -> records, acks, pings until the socket closes, the
 * agent goes silent for `liveness`, a newer connection of the same instance replaces this one, or
 * the server shuts down. Every sealed frame, both ways, is bound to this connection (Envelope.ts).
 *
 * Built for thousands of mostly idle agents on one process: a session at rest is a small state
 * object beside its socket, with no fiber, scope or timer of its own (a parked fiber with its
 * stack, contexts and a watchdog cost ~40 KiB per agent; this costs a few hundred bytes).
 * - The `ws` callbacks append frames to the session's inbox. A drain fiber exists only while the
 *   inbox holds work: it handles the frames strictly in arrival order (style §4.2), then ends.
 * - ONE sweep fiber for all sessions enforces the hello deadline and liveness: an agent silent for
 *   half of `liveness` gets a Ping (its Pong counts as a frame), one silent for all of it is
 *   closed with 4000. The decision per session is the pure `internal/sessionSweep.ts`; the inbox
 *   (order, backlog, flow control) is `internal/sessionInbox.ts`.
 * - Closing (ours or the peer's) is one more inbox item, so it happens after the frame in hand:
 *   an ingest transaction in flight always completes and its Ack is still sent.
 *
 * Every bad frame (too large, not decodable, unknown tag, bad envelope, a hello out of place) is
 * answered with a `ProtocolError` naming the problem, counted, and the connection stays up; only
 * a peer that keeps sending garbage (`maxBadFrames` in a row) is closed with 1008. Nothing thrown
 * while handling a frame reaches `ws` (which would end the process): it is a counted
 * `ProtocolError` and a 1011 close of that connection.
 */
import { Codec } from "@barto/domain/Codec"
import * as Envelope from "@barto/domain/Envelope"
import * as Messages from "@barto/domain/Messages"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import * as FiberSet from "effect/FiberSet"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { randomUUID } from "node:crypto"
import type { RawData, WebSocket } from "ws"
import { Ingested } from "./Events.js"
import { AgentSessions, type WorkerHandle } from "./internal/agentSessions.js"
import * as Inbound from "./internal/inbound.js"
import { LineBudget } from "./internal/lineBudget.js"
import * as LostChecks from "./internal/lostChecks.js"
import * as ScheduleTable from "./internal/scheduleTable.js"
import { SocketInbox } from "./internal/sessionInbox.js"
import * as Sweep from "./internal/sessionSweep.js"
import { ENDED, HELLO, READY } from "./internal/sessionSweep.js"
import { corked, toBytes, truncateReason } from "./internal/socket.js"
import { breathe } from "./internal/store/common.js"
import { Metrics } from "./Metrics.js"
import type { AgentConnection } from "./Registry.js"
import { Schedules } from "./Schedules.js"
import { Store } from "./Store.js"

export interface Options {
  readonly serverVersion: string
  /** Agent->server frames must carry this HMAC envelope, server->agent frames are sealed with it. */
  readonly hmacKey: Uint8Array | undefined
  /** Server->agent frames are signed with it. */
  readonly signingKey: Envelope.SigningKey | undefined
  readonly maxFrameBytes: number
  /** An agent silent this long is dropped (close 4000). */
  readonly livenessMs: number
  readonly helloTimeoutMs: number
  readonly replayWindowSecs: number
  readonly maxBadFrames: number
}

export const defaults = {
  helloTimeoutMs: 10_000,
  replayWindowSecs: 60,
  maxBadFrames: 20
} as const

export const CAPABILITIES: ReadonlyArray<string> = [
  "ack",
  "schedule-table",
  "run-now",
  "cancel",
  "hmac-in",
  "heartbeat"
]

/** Close codes of the worker link (4000-4999 is the application range of RFC 6455). */
export const CloseCode = {
  goingAway: 1001,
  policy: 1008,
  /** A defect while handling a frame: the frame is refused and the session ends, the process stays. */
  internalError: 1011,
  liveness: 4000,
  replaced: 4001,
  protocolVersion: 4002,
  /** Another live agent instance holds the name (issue 12 §2). */
  nameInUse: 4003
} as const

/** HMAC envelope overhead: ts (8) + nonce (8) + MAC (32). */
const HMAC_OVERHEAD = 48

/**
 * Batches already waiting behind the one in hand are stored with it, in one transaction with one
 * Ack (acks are cumulative), up to this many records: an agent with a window of frames in flight
 * then pays the per-transaction and per-Ack costs (a commit's WAL sync, the offset read, the Ack's
 * socket write) once per window, not once per frame.
 *
 * Before it joins them, the drain lets the event loop turn once (`breathe`): Node reads a socket
 * 64 KiB at a time and runs the microtasks, hence the drain, after each read, so without the turn
 * the batches behind one of ~37 KiB were still unread and every batch went alone (the `ingest`
 * bench: 1,000 Acks for 1,000 frames with 4 in flight). The turn reads what the kernel already
 * holds; it costs one `setImmediate` per batch.
 */
const MAX_JOINED_RECORDS = 5000

/**
 * Connection lines (and, apart, disconnection lines) written at INFO per sweep period (at most
 * 1 s); beyond that each is at DEBUG and the period ends with one summary line (`LineBudget`; a
 * shutdown writes the last one): a restart of a small fleet logs every agent as before, the
 * reconnect storm of 10,000 a line a second.
 */
export const CONNECTION_LINES_PER_PERIOD = 20

/** How long a shutdown waits for sessions to finish the frame in hand and record their end. */
const SHUTDOWN_GRACE_MS = 5000

const LABELS = { link: "worker" } as const

export type Requirements = Store | Schedules | AgentSessions | Ingested | Metrics | Codec

export interface Peer {
  readonly agent: string
  readonly ip: string
  /** The session nonces of this connection (from the upgrade); bound into every sealed frame. */
  readonly agentNonce: Envelope.SessionNonce | undefined
  readonly serverNonce: Envelope.SessionNonce
}

export interface Workers {
  /** Takes over an upgraded socket. Synchronous; never throws. */
  readonly accept: (ws: WebSocket, peer: Peer) => void
  /**
   * Closes every session with 1001 once the frame in hand is done (an ingest in flight completes
   * and is acked) and waits, bounded, for each to record its end.
   */
  readonly shutdown: Effect.Effect<void>
  /** Sessions not yet ended (hello phase included). */
  readonly size: () => number
}

interface BadFrame {
  readonly code: Messages.ProtocolError["code"]
  readonly message: string
}

interface Frame {
  readonly data: Uint8Array
  readonly binary: boolean
}

/** A frame already decoded on arrival (see the Ping fast path). */
interface Decoded {
  readonly decoded: Either.Either<Messages.AgentToServer, BadFrame>
}

type Item = Frame | Decoded

/** One agent's `ScheduleTable` message, encoded (not sealed: sealing binds it to a connection). */
interface TableFrame {
  readonly version: string
  readonly payload: Uint8Array
}

interface Closing {
  readonly code: number
  readonly reason: string
  /** We close: the close frame is sent when the drain reaches this item. */
  readonly ours: boolean
}

/**
 * All the state of one connection; plain fields, so an idle session costs little. The inbox
 * (frames not yet handled, flow control) is its base class: one object per session.
 */
class Session extends SocketInbox<Item> {
  phase: Sweep.Phase = HELLO
  helloSeen = false
  /** The connection's first log line was written (by its first drain). */
  announced = false
  draining = false
  closing: Closing | undefined = undefined
  lastSeen: number
  probed = -1
  pingId = 0
  badInARow = 0
  acked = -1
  outboxId = ""
  sessionId = ""
  connectedAt = Messages.Micros.make(0)
  lastVersion: string | undefined = undefined
  handle: WorkerHandle | undefined = undefined
  /** Holds its name in the registry (from the hello until the end). */
  registered = false
  /** Frames sealed to the agent, and frames from it that opened, on this connection (the binding's counters). */
  sealed = 0n
  opened = 0n
  readonly nonces: Envelope.NonceCache | undefined
  readonly listeners: {
    readonly message: (data: RawData, binary: boolean) => void
    readonly close: (code: number, reason: Buffer) => void
  }

  constructor(
    override readonly ws: WebSocket,
    readonly agent: string,
    readonly ip: string,
    readonly openedAt: number,
    hmac: boolean,
    readonly agentNonce: Envelope.SessionNonce | undefined,
    readonly serverNonce: Envelope.SessionNonce,
    listeners: (s: Session) => Session["listeners"]
  ) {
    super(ws)
    this.lastSeen = openedAt
    this.nonces = hmac ? Envelope.makeNonceCache() : undefined
    this.listeners = listeners(this)
  }

  /** What a frame sealed by `sender` now is bound to; undefined without an agent nonce (no keys). */
  binding(sender: "server" | "agent"): Envelope.Binding | undefined {
    if (this.agentNonce === undefined) return undefined
    return {
      sender,
      agent: this.agent,
      agentNonce: this.agentNonce,
      serverNonce: this.serverNonce,
      counter: sender === "server" ? this.sealed : this.opened
    }
  }

  annotations(): Record<string, string> {
    return this.sessionId === ""
      ? { agent: this.agent, ip: this.ip, link: "worker" }
      : { agent: this.agent, ip: this.ip, link: "worker", sessionId: this.sessionId }
  }
}

const nowMicros = Clock.currentTimeMillis.pipe(Effect.map((ms) => Messages.Micros.make(ms * 1000)))

export const make = (options: Options): Effect.Effect<Workers, never, Requirements | Scope.Scope> =>
  Effect.gen(function*() {
    const store = yield* Store
    const schedules = yield* Schedules
    const sessions = yield* AgentSessions
    const ingested = yield* Ingested
    const metrics = yield* Metrics
    const codec = yield* Codec
    const clock = yield* Effect.clock
    const drains = yield* FiberSet.make()
    const fork = yield* FiberSet.runtime(drains)<Requirements>()
    const live = new Set<Session>()
    const lostChecks = yield* LostChecks.make({
      livenessMs: options.livenessMs,
      check: (agent, endedAt) => lostCheck(store, sessions, agent, endedAt)
    })
    let allEnded: Deferred.Deferred<void> | undefined
    const sealOptions: Envelope.SealOptions = {
      ...(options.hmacKey !== undefined ? { hmacKey: options.hmacKey } : {}),
      ...(options.signingKey !== undefined ? { signingKey: options.signingKey } : {})
    }
    const frameLimit = options.maxFrameBytes + (options.hmacKey !== undefined ? HMAC_OVERHEAD : 0)
    const connectionLines = new LineBudget(CONNECTION_LINES_PER_PERIOD, clock.unsafeCurrentTimeMillis())
    const disconnectionLines = new LineBudget(CONNECTION_LINES_PER_PERIOD, clock.unsafeCurrentTimeMillis())
    /** Ends the period of both budgets: one summary line for each that folded lines. */
    const lineSummaries = (now: number): Array<Effect.Effect<void>> => {
      const out: Array<Effect.Effect<void>> = []
      for (
        const [budget, what] of [[connectionLines, "connections"], [disconnectionLines, "disconnections"]] as const
      ) {
        const { folded, periodMs } = budget.flush(now)
        if (folded > 0) {
          const secs = (periodMs / 1000).toFixed(1)
          out.push(Effect.logInfo(`${folded} more worker ${what} in the last ${secs} s (each one logged at DEBUG)`))
        }
      }
      return out
    }

    // --- socket side (synchronous, called by `ws`) --------------------------------------------
    const kick = (s: Session) => {
      if (s.draining) return
      s.draining = true
      fork(Effect.zipRight(annotateFiber(s.annotations()), drain(s)))
    }

    /** Ends intake; the drain closes the socket (ours) or records the end once it reaches this. */
    const finish = (s: Session, closing: Closing) => {
      if (s.closing !== undefined) return
      s.closing = closing
      // Frames not yet handled are dropped when we close: they cannot be acked any more and the
      // agent keeps them in its outbox. After a peer's close they are still stored (idempotently).
      if (closing.ours) s.clear()
      kick(s)
    }

    const closeSession = (s: Session, code: number, reason: string) => finish(s, { code, reason, ours: true })

    /**
     * A defect while handling a frame (a bug, or a peer that found one): counted and answered
     * like any refused frame, then the session ends with 1011. Nothing escapes into `ws`, whose
     * callbacks would otherwise take the whole process down.
     */
    const defect = (s: Session, where: string, cause: unknown) => {
      metrics.unsafeAdd("bartos_frames_rejected_total", 1, { reason: "unexpected" })
      fork(
        Effect.logError(`defect while handling a frame (${where}); closing the session`, cause).pipe(
          Effect.annotateLogs(s.annotations())
        )
      )
      try {
        sendNow(s, { _tag: "ProtocolError", code: "unexpected", message: "internal error handling this frame" })
      } catch {
        // The close below still ends the session.
      }
      closeSession(s, CloseCode.internalError, "internal error handling a frame")
    }

    const onFrame = (s: Session, data: RawData, binary: boolean) => {
      if (s.closing !== undefined) return
      // Any frame proves the agent alive, even while an earlier one is still being handled.
      s.lastSeen = clock.unsafeCurrentTimeMillis()
      const frame: Frame = { data: toBytes(data), binary }
      if (s.phase === READY && !s.draining) {
        // Fast path for the bulk of idle traffic (bartoc pings every 5 s): with nothing queued
        // before it, a Ping is answered right here, without starting a fiber. Anything else
        // goes to the inbox already decoded.
        const decoded = decode(s, frame)
        if (Either.isRight(decoded) && decoded.right._tag === "Ping") {
          s.badInARow = 0
          sendNow(s, { _tag: "Pong", id: decoded.right.id, sentAt: decoded.right.sentAt })
          return
        }
        s.push({ decoded })
      } else {
        s.push(frame)
      }
      kick(s)
    }

    const listenersOf = (s: Session): Session["listeners"] => ({
      message: (data, binary) => {
        try {
          onFrame(s, data, binary)
        } catch (cause) {
          defect(s, "on arrival", cause)
        }
      },
      close: (code, reason) => finish(s, { code, reason: reason.toString("utf8"), ours: false })
    })

    // An 'error' is always followed by 'close'; without a listener it would crash the process.
    const ignoreError = () => {}

    const accept = (ws: WebSocket, peer: Peer) => {
      const s = new Session(
        ws,
        peer.agent,
        peer.ip,
        clock.unsafeCurrentTimeMillis(),
        options.hmacKey !== undefined,
        peer.agentNonce,
        peer.serverNonce,
        listenersOf
      )
      live.add(s)
      metrics.unsafeAdd("bartos_connections_total", 1, LABELS)
      metrics.unsafeAdd("bartos_connections_open", 1, LABELS)
      ws.on("message", s.listeners.message)
      ws.on("close", s.listeners.close)
      ws.on("error", ignoreError)
      if (ws.readyState !== ws.OPEN) finish(s, { code: 1006, reason: "closed before the session started", ours: false })
    }

    // --- effects of one session ---------------------------------------------------------------
    /** Encodes, seals and writes one frame; false when the socket is no longer open. */
    const sendNow = (s: Session, message: Messages.ServerMessage): boolean =>
      s.ws.readyState === s.ws.OPEN && sendEncodedNow(s, codec.encode(Messages.ServerMessage, message))
    /** `sendNow` of a message already encoded (`codec.encode(Messages.ServerMessage, …)`). */
    const sendEncodedNow = (s: Session, payload: Uint8Array): boolean => {
      if (s.ws.readyState !== s.ws.OPEN) return false
      const nowSecs = Math.floor(clock.unsafeCurrentTimeMillis() / 1000)
      // Sealed and written in one synchronous step, so frames leave in their counter's order.
      const frame = Envelope.seal(sealOptions, payload, nowSecs, s.binding("server"))
      s.sealed++
      s.ws.send(frame, { binary: true })
      metrics.unsafeAdd("bartos_frames_out_total", 1, LABELS)
      return true
    }
    const send = (s: Session, message: Messages.ServerMessage): Effect.Effect<boolean> =>
      Effect.sync(() => sendNow(s, message))

    const close = (s: Session, code: number, reason: string) =>
      Effect.zipRight(
        Effect.logInfo(`closing worker session: ${code} ${reason}`),
        Effect.sync(() => closeSession(s, code, reason))
      )

    const decode = (s: Session, frame: Frame): Either.Either<Messages.AgentToServer, BadFrame> => {
      metrics.unsafeAdd("bartos_frames_in_total", 1, LABELS)
      if (!frame.binary) {
        return Either.left({ code: "undecodable", message: "text frames are not accepted; send binary frames" })
      }
      if (frame.data.byteLength > frameLimit) {
        return Either.left({
          code: "frame_too_large",
          message: `frame of ${frame.data.byteLength} bytes exceeds the limit of ${frameLimit} bytes`
        })
      }
      let payload = frame.data
      if (options.hmacKey !== undefined) {
        const nowSecs = Math.floor(clock.unsafeCurrentTimeMillis() / 1000)
        // Frames are opened strictly in arrival order (on arrival, or by the drain), so the count
        // of frames opened is the counter the agent sealed this one with.
        const opened = Envelope.open(
          { hmacKey: options.hmacKey, windowSecs: options.replayWindowSecs, nonces: s.nonces! },
          frame.data,
          nowSecs,
          s.binding("agent")
        )
        if (Either.isLeft(opened)) {
          return Either.left({ code: "bad_envelope", message: `${opened.left.reason}: ${opened.left.message}` })
        }
        s.opened++
        payload = opened.right
      }
      return Either.mapLeft(
        codec.decode(Inbound.FromAgent, payload),
        (e): BadFrame => ({ code: e.code, message: e.message })
      )
    }

    /** Answers a bad frame; closes with 1008 once the peer has sent too many in a row. */
    const rejected = (s: Session, bad: BadFrame) =>
      Effect.gen(function*() {
        s.badInARow++
        metrics.unsafeAdd("bartos_frames_rejected_total", 1, { reason: bad.code })
        yield* Effect.logWarning(`rejected frame (${bad.code}): ${bad.message}`)
        yield* send(s, { _tag: "ProtocolError", code: bad.code, message: bad.message })
        if (s.badInARow >= options.maxBadFrames) yield* close(s, CloseCode.policy, `${s.badInARow} bad frames in a row`)
      })

    // An agent's table frame is the same for every agent given the same specs (the same array
    // until the next reload or pause): encoded once, not on each of 10,000 hellos after a restart.
    const tableFrames = new WeakMap<ReadonlyArray<Messages.ScheduleSpec>, TableFrame>()
    const tableFrame = (specs: ReadonlyArray<Messages.ScheduleSpec>): TableFrame => {
      let frame = tableFrames.get(specs)
      if (frame === undefined) {
        const version = ScheduleTable.version(specs)
        frame = {
          version,
          payload: codec.encode(Messages.ServerMessage, { _tag: "ScheduleTable", version, schedules: specs })
        }
        tableFrames.set(specs, frame)
      }
      return frame
    }

    // The table is sent under a lock and only when its version moved, so a push from a reload
    // and this session's own first send can never deliver an older table last. One lock for all
    // sessions, not one each (~0.5 KiB per agent held): what it guards is a few synchronous steps.
    const tableLock = yield* Effect.makeSemaphore(1)
    const syncTable = (s: Session) =>
      tableLock.withPermits(1)(
        Effect.gen(function*() {
          const specs = yield* schedules.forAgent(s.agent)
          const table = tableFrame(specs)
          if (table.version === s.lastVersion) return
          if (sendEncodedNow(s, table.payload)) s.lastVersion = table.version
        })
      )

    const onHello = (s: Session, hello: typeof Messages.AgentHello.Type) =>
      Effect.gen(function*() {
        const { outboxId, protocol } = hello
        if (protocol !== Messages.PROTOCOL_VERSION) {
          const reason = `protocol version mismatch: server ${Messages.PROTOCOL_VERSION}, agent ${protocol}`
          yield* send(s, { _tag: "ProtocolError", code: "protocol_version", message: reason })
          return yield* close(s, CloseCode.protocolVersion, reason)
        }
        s.sessionId = randomUUID()
        s.outboxId = outboxId
        s.connectedAt = yield* nowMicros
        yield* annotateFiber({ sessionId: s.sessionId })
        yield* Effect.gen(function*() {
          // Registered before the ServerHello so that claiming the name is one atomic step; until
          // the session is READY nothing is sent through the handle (the ServerHello goes first).
          s.handle = {
            connection: {
              agent: s.agent,
              sessionId: s.sessionId,
              ip: s.ip,
              connectedAt: s.connectedAt,
              info: null,
              outboxId,
              ...missedTickOf(hello)
            },
            send: (message) => Effect.suspend(() => (s.phase === READY ? send(s, message) : Effect.succeed(false))),
            close: (code, reason) => close(s, code, reason),
            syncTable: Effect.suspend(() => (s.phase === READY ? syncTable(s) : Effect.void))
          }
          const registration = yield* sessions.register(s.handle)
          if (registration._tag === "Refused") {
            s.handle = undefined
            return yield* refuseName(s, registration.holder)
          }
          s.registered = true
          if (Option.isSome(registration.replaced)) {
            const older = registration.replaced.value
            yield* Effect.logInfo(
              `replacing the older session ${older.connection.sessionId} of '${s.agent}' (same instance)`
            )
            yield* older.close(CloseCode.replaced, "replaced by a newer connection")
          }
          // With several bartos the claim's transaction already did this (`Cluster.ts`); else both
          // at once, each in its own group (`internal/sessionBatch.ts`), without a fiber each.
          const opened = registration.opened ?? (yield* store.sessionOpened({
            agent: s.agent,
            sessionId: s.sessionId,
            ip: s.ip,
            connectedAt: s.connectedAt,
            ...missedTickOf(hello)
          }, outboxId))
          if (Either.isLeft(opened.started)) {
            yield* Effect.logError(`cannot record session start: ${opened.started.left.message}`)
          }
          // On a DB error the agent is told nothing is stored (-1): it keeps its records and
          // resends, and the idempotent ingest makes the resend harmless.
          if (Either.isLeft(opened.acked)) {
            yield* Effect.logError(`cannot read the acked offset: ${opened.acked.left.message}`)
          }
          s.acked = Either.getOrElse(opened.acked, () => -1)
          const syncFirstTable = s.handle.syncTable
          // The ServerHello and the table leave in one socket write, not two.
          yield* corked(
            s.ws,
            Effect.gen(function*() {
              yield* send(s, {
                _tag: "ServerHello",
                protocol: Messages.PROTOCOL_VERSION,
                serverVersion: options.serverVersion,
                capabilities: CAPABILITIES,
                sessionId: s.sessionId,
                ackedUpTo: s.acked
              })
              s.phase = READY
              s.lastSeen = clock.unsafeCurrentTimeMillis()
              yield* syncFirstTable
            })
          )
        })
      })

    /**
     * Another instance (another outbox id) holds this live name: refused, so that a job never
     * runs twice because two bartoc share a name. The refused one gets no ServerHello and no
     * table, and retries with its backoff; it takes over once the holder's session ends (its
     * liveness expires, it disconnects).
     */
    const refuseName = (s: Session, holder: AgentConnection) =>
      Effect.gen(function*() {
        metrics.unsafeAdd("bartos_duplicate_names_refused_total", 1)
        const since = new Date(holder.connectedAt / 1000).toISOString().slice(11, 19)
        const reason = `name '${s.agent}' is in use by another agent from ${holder.ip} since ${since} UTC`
        yield* Effect.logWarning(
          `refused a second instance of '${s.agent}' from ${s.ip} (outbox ${s.outboxId}): ${reason} ` +
            `(session ${holder.sessionId}, outbox ${holder.outboxId})`
        )
        yield* close(s, CloseCode.nameInUse, reason)
      })

    const onRecords = (s: Session, records: ReadonlyArray<Messages.AgentRecord>) =>
      Effect.gen(function*() {
        // Uninterruptible: a shutdown waits for the transaction in flight instead of cutting it.
        const result = yield* Effect.either(Effect.uninterruptible(store.ingest(s.agent, s.outboxId, records)))
        if (Either.isLeft(result)) {
          metrics.unsafeAdd("bartos_ingest_errors_total", 1)
          yield* Effect.logError(`ingest of ${records.length} records failed, not acked: ${result.left.message}`)
          return
        }
        const { lineConflicts, refused, upTo } = result.right
        if (refused.length > 0) {
          for (const r of refused) metrics.unsafeAdd("bartos_records_refused_total", 1, { reason: r.reason })
          const first = refused[0]!
          yield* send(s, {
            _tag: "ProtocolError",
            code: "unexpected",
            message:
              `refused ${refused.length} record(s) about runs or commands of another agent (first: seq ${first.seq}, ` +
              `run ${first.runId}): never stored`
          })
        }
        if (lineConflicts.length > 0) metrics.unsafeAdd("bartos_line_conflicts_total", lineConflicts.length)
        const notStored = refused.length + lineConflicts.length === 0
          ? undefined
          : new Set([...refused, ...lineConflicts].map((r) => r.seq))
        // What this call stored for the first time, for `tail -f` subscribers (seqs increase).
        let last = s.acked
        const fresh =
          notStored === undefined && records[0] !== undefined && records[0].seq > last && isIncreasing(records)
            ? records
            : records.filter((r) => (r.seq > last && notStored?.has(r.seq) !== true ? ((last = r.seq), true) : false))
        s.acked = Math.max(s.acked, upTo)
        yield* send(s, { _tag: "Ack", upTo })
        metrics.unsafeAdd("bartos_acks_total", 1)
        if (fresh.length > 0) {
          metrics.unsafeAdd("bartos_records_ingested_total", fresh.length)
          yield* PubSub.publish(ingested, { agent: s.agent, records: fresh })
        }
      })

    const onMessage = (s: Session, message: Messages.AgentToServer): Effect.Effect<void> => {
      switch (message._tag) {
        case "RecordBatch":
          return onRecords(s, message.records)
        case "AgentInfo":
          return Effect.zipRight(
            sessions.setInfo(s.agent, s.sessionId, message.info),
            store.sessionInfo(s.agent, s.sessionId, message.info).pipe(
              Effect.catchAll((e) => Effect.logError(`cannot store agent info: ${e.message}`))
            )
          )
        case "Ping":
          return Effect.asVoid(send(s, { _tag: "Pong", id: message.id, sentAt: message.sentAt }))
        case "Pong":
          return Effect.void
        case "CommandRejected":
          return Effect.logWarning(
            `agent rejected request ${clip(message.requestId, 80)}: ${clip(message.reason, 500)}`
          )
        case "ProtocolError":
          return Effect.logWarning(`agent reports a protocol error (${message.code}): ${clip(message.message, 500)}`)
        case "AgentHello":
          return rejected(s, { code: "unexpected", message: "AgentHello was already received" })
      }
    }

    /** Takes the next inbox item; a paused socket reads again once the backlog is down to half. */
    const shift = (s: Session): Item | undefined => s.shift(s.closing === undefined)

    /** `records` plus those of the RecordBatches queued right behind it (see MAX_JOINED_RECORDS). */
    const withQueuedBatches = (s: Session, records: ReadonlyArray<Messages.AgentRecord>) => {
      let joined: Array<Messages.AgentRecord> | undefined
      let total = records.length
      for (let next = s.peek(); next !== undefined; next = s.peek()) {
        // Decoded once only: the HMAC nonce check would call a second look a replay.
        const decoded = "decoded" in next ? next.decoded : decode(s, next)
        if (
          Either.isLeft(decoded) || decoded.right._tag !== "RecordBatch" ||
          total + decoded.right.records.length > MAX_JOINED_RECORDS
        ) {
          s.replaceNext({ decoded })
          break
        }
        shift(s)
        joined ??= records.slice()
        for (const r of decoded.right.records) joined.push(r)
        total += decoded.right.records.length
      }
      return joined ?? records
    }

    const onItem = (s: Session, item: Item): Effect.Effect<void> => {
      const decoded = "decoded" in item ? item.decoded : decode(s, item)
      if (Either.isLeft(decoded)) return rejected(s, decoded.left)
      const message = decoded.right
      if (s.phase === READY) {
        // A second AgentHello is a bad frame (see onMessage): it does not end a run of them.
        if (message._tag !== "AgentHello") s.badInARow = 0
        return message._tag === "RecordBatch"
          ? Effect.zipRight(breathe, Effect.suspend(() => onRecords(s, withQueuedBatches(s, message.records))))
          : onMessage(s, message)
      }
      if (message._tag === "AgentHello") {
        s.helloSeen = true
        s.badInARow = 0
        return onHello(s, message)
      }
      return Effect.zipRight(
        rejected(s, { code: "unexpected", message: `expected AgentHello, got ${message._tag}` }),
        close(s, CloseCode.policy, "first frame must be AgentHello")
      )
    }

    const end = (s: Session, closing: Closing) =>
      Effect.gen(function*() {
        const wasReady = s.phase === READY
        s.phase = ENDED
        s.ws.off("message", s.listeners.message)
        s.ws.off("close", s.listeners.close)
        if (closing.ours) {
          const ws = s.ws
          if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) {
            ws.close(closing.code, truncateReason(closing.reason))
          }
        }
        const wasCurrent = s.registered && (yield* sessions.unregister(s.agent, s.sessionId))
        if (wasReady) {
          const endedAt = yield* nowMicros
          const line = `websocket disconnected '${s.agent} (${s.ip})'`
          yield* disconnectionLines.take() ? Effect.logInfo(line) : Effect.logDebug(line)
          yield* store.sessionEnded(s.agent, s.sessionId, endedAt).pipe(
            Effect.catchAll((e) => Effect.logError(`cannot record session end: ${e.message}`))
          )
          // Runs still `running` become `lost` only if the agent does not come back in time;
          // a replaced session has a successor by definition.
          if (wasCurrent) lostChecks.schedule(s.agent, endedAt)
        }
      }).pipe(
        Effect.ensuring(Effect.suspend(() => {
          metrics.unsafeAdd("bartos_connections_open", -1, LABELS)
          live.delete(s)
          return allEnded !== undefined && live.size === 0 ? Deferred.succeed(allEnded, undefined) : Effect.void
        }))
      )

    /** Handles the inbox in order until it is empty; the only fiber a session ever has. */
    const drain = (s: Session): Effect.Effect<void> =>
      Effect.gen(function*() {
        // Logged by the first drain (the hello, or the close of a silent connection) rather than
        // on accept: a fiber per connection only for this line was a good part of a hello's garbage.
        if (!s.announced) {
          s.announced = true
          const line = `worker connection from '${s.agent} (${s.ip})'`
          yield* connectionLines.take() ? Effect.logInfo(line) : Effect.logDebug(line)
        }
        while (s.phase !== ENDED) {
          const item = shift(s)
          if (item !== undefined) {
            // A backlog being worked through is not silence (reading is paused meanwhile).
            s.lastSeen = clock.unsafeCurrentTimeMillis()
            yield* Effect.catchAllDefect(Effect.suspend(() => onItem(s, item)), (cause) =>
              Effect.sync(() => defect(s, "in the session", cause)))
            continue
          }
          if (s.closing !== undefined) {
            yield* end(s, s.closing)
            break
          }
          break
        }
        s.draining = false
      }).pipe(Effect.onInterrupt(() =>
        Effect.sync(() => (s.draining = false))
      ))

    // --- one sweep for every session: hello deadline, liveness probe and timeout --------------
    const sweepOptions: Sweep.SweepOptions = { livenessMs: options.livenessMs, helloTimeoutMs: options.helloTimeoutMs }
    const sweep = Effect.suspend(() => {
      const now = clock.unsafeCurrentTimeMillis()
      const due: Array<Effect.Effect<unknown>> = lineSummaries(now)
      for (const s of live) {
        const action = Sweep.decide(s, now, sweepOptions)
        if (action === undefined) continue
        if (action._tag === "Ping") {
          s.probed = s.lastSeen
          due.push(send(s, { _tag: "Ping", id: s.pingId++, sentAt: Messages.Micros.make(now * 1000) }))
        } else {
          const closing = close(s, action.code, action.reason)
          due.push(Effect.annotateLogs(
            action.warning === undefined ? closing : Effect.zipRight(Effect.logWarning(action.warning), closing),
            s.annotations()
          ))
        }
      }
      return due.length === 0 ? Effect.void : Effect.all(due, { discard: true })
    })
    // A defect in one sweep must not end liveness checks for every later one.
    const sweepSafely = Effect.catchAllDefect(
      sweep,
      (cause) => Effect.logError("defect in the worker session sweep", cause)
    )
    // `schedule`, not `repeat`: the first sweep comes one interval after the start.
    yield* Effect.forkScoped(Effect.schedule(sweepSafely, Schedule.spaced(Sweep.interval(sweepOptions))))

    const shutdown = Effect.gen(function*() {
      if (live.size > 0) {
        const ended = yield* Deferred.make<void>()
        allEnded = ended
        for (const s of live) closeSession(s, CloseCode.goingAway, "server shutting down")
        if (live.size > 0) yield* Deferred.await(ended).pipe(Effect.timeout(SHUTDOWN_GRACE_MS), Effect.ignore)
      }
      yield* FiberSet.clear(drains)
      // What the last period folded, the shutdown's own disconnections included.
      yield* Effect.all(lineSummaries(clock.unsafeCurrentTimeMillis()), { discard: true })
    })
    yield* Effect.addFinalizer(() => shutdown)

    return { accept, shutdown, size: () => live.size } satisfies Workers
  })

/**
 * The log annotations for the rest of the current fiber. A drain fiber is one session's and ends
 * with the drain: nothing to restore, so not `Effect.annotateLogs` (a get, a set and a restore of
 * the fiber's refs, each a copy of their map, on every hello).
 */
const annotateFiber = (annotations: Record<string, string>): Effect.Effect<void> =>
  FiberRef.update(FiberRef.currentLogAnnotations, (current) => {
    let out = current
    for (const key in annotations) out = HashMap.set(out, key, annotations[key] as unknown)
    return out
  })

/** The missed-tick settings an agent reported in its hello, as the fields they are kept under. */
const missedTickOf = (
  hello: typeof Messages.AgentHello.Type
): { missedTick?: Messages.MissedTick; catchUpLimit?: number } => ({
  ...(hello.missedTick === undefined ? {} : { missedTick: hello.missedTick }),
  ...(hello.catchUpLimit === undefined ? {} : { catchUpLimit: hello.catchUpLimit })
})

/** The peer's free text, bounded before it reaches a log line. */
const clip = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max)}…`)

const isIncreasing = (records: ReadonlyArray<Messages.AgentRecord>) => {
  for (let i = 1; i < records.length; i++) if (records[i]!.seq <= records[i - 1]!.seq) return false
  return true
}

/** Run `livenessMs` after the session of `agent` ended at `endedAt` (`internal/lostChecks.ts`). */
const lostCheck = (
  store: Store["Type"],
  sessions: AgentSessions["Type"],
  agent: string,
  endedAt: Messages.Micros
) =>
  Effect.gen(function*() {
    if (yield* sessions.isConnected(agent)) return
    const lost = yield* sessions.whenLeader(store.markLost(agent, endedAt))
    if (Option.getOrElse(lost, () => 0) > 0) {
      yield* Effect.logWarning(
        `agent '${agent}' did not come back: ${Option.getOrElse(lost, () => 0)} running runs marked lost`
      )
    }
  }).pipe(
    Effect.catchAll((e) => Effect.logError(`cannot mark runs of '${agent}' lost: ${e.message}`)),
    Effect.annotateLogs({ agent })
  )
