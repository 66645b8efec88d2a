/**
 * One bartoc connection on `/v1/ws/worker` (D5, D6, D7; reference §1.3 with its bugs fixed).
 *
 * One fiber per connection processes inbound frames strictly in order. Lifecycle:
 * `AgentHello` (within 10 s) -> `ServerHello` + the agent's `ScheduleTable` -> records, acks,
 * pings until the socket closes, the agent goes silent for `liveness`, a newer connection with the
 * same name replaces this one, or the server shuts down.
 *
 * Every bad frame (too large, not decodable, unknown tag, bad envelope) is answered with a
 * `ProtocolError` naming the problem and the connection stays up; only a peer that keeps sending
 * garbage (`maxBadFrames` in a row) is closed with 1008.
 */
import { randomUUID } from "node:crypto"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import type * as Scope from "effect/Scope"
import { Codec } from "@barto/domain/Codec"
import * as Envelope from "@barto/domain/Envelope"
import * as Messages from "@barto/domain/Messages"
import type { WebSocket } from "ws"
import { Ingested } from "./Events.js"
import { AgentSessions, type WorkerHandle } from "./internal/agentSessions.js"
import * as Inbound from "./internal/inbound.js"
import * as ScheduleTable from "./internal/scheduleTable.js"
import * as Socket from "./internal/socket.js"
import { Metrics } from "./Metrics.js"
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
  /** Holds the "mark runs lost" checks that outlive their session. */
  readonly background: FiberSet.FiberSet
}

export const defaults = {
  helloTimeoutMs: 10_000,
  replayWindowSecs: 60,
  maxBadFrames: 20
} as const

export const CAPABILITIES: ReadonlyArray<string> = ["ack", "schedule-table", "run-now", "cancel", "hmac-in"]

/** Close codes of the worker link (4000-4999 is the application range of RFC 6455). */
export const CloseCode = {
  goingAway: 1001,
  policy: 1008,
  liveness: 4000,
  replaced: 4001,
  protocolVersion: 4002
} as const

/** HMAC envelope overhead: ts (8) + nonce (8) + MAC (32). */
const HMAC_OVERHEAD = 48

interface BadFrame {
  readonly code: Messages.ProtocolError["code"]
  readonly message: string
}

const nowMicros = Clock.currentTimeMillis.pipe(Effect.map((ms) => Messages.Micros.make(ms * 1000)))

export type Requirements = Store | Schedules | AgentSessions | Ingested | Metrics | Codec

/** Runs the session until it ends; never fails. */
export const run = (
  ws: WebSocket,
  peer: { readonly agent: string; readonly ip: string },
  options: Options
): Effect.Effect<void, never, Requirements> =>
  Effect.scoped(session(ws, peer, options)).pipe(
    Effect.annotateLogs({ agent: peer.agent, ip: peer.ip, link: "worker" })
  )

const session = (
  ws: WebSocket,
  peer: { readonly agent: string; readonly ip: string },
  options: Options
): Effect.Effect<void, never, Requirements | Scope.Scope> =>
  Effect.gen(function*() {
    const store = yield* Store
    const schedules = yield* Schedules
    const sessions = yield* AgentSessions
    const ingested = yield* Ingested
    const metrics = yield* Metrics
    const codec = yield* Codec
    const conn = yield* Socket.attach(ws)
    const nonces = Envelope.makeNonceCache()
    const agent = peer.agent
    const labels = { link: "worker" }

    yield* metrics.add("bartos_connections_total", 1, labels)
    yield* metrics.add("bartos_connections_open", 1, labels)
    yield* Effect.addFinalizer(() => metrics.add("bartos_connections_open", -1, labels))
    yield* Effect.logInfo(`worker connection from '${agent} (${peer.ip})'`)

    const send = (message: Messages.ServerMessage): Effect.Effect<boolean> =>
      Effect.gen(function*() {
        if (!conn.isOpen()) return false
        const nowSecs = Math.floor((yield* Clock.currentTimeMillis) / 1000)
        const payload = codec.encode(Messages.ServerMessage, message)
        const frame = Envelope.seal(
          {
            ...(options.hmacKey !== undefined ? { hmacKey: options.hmacKey } : {}),
            ...(options.signingKey !== undefined ? { signingKey: options.signingKey } : {})
          },
          payload,
          nowSecs
        )
        const sent = conn.sendBytes(frame)
        if (sent) yield* metrics.add("bartos_frames_out_total", 1, labels)
        return sent
      })

    const close = (code: number, reason: string) =>
      Effect.zipRight(
        Effect.logInfo(`closing worker session: ${code} ${reason}`),
        Effect.sync(() => conn.close(code, reason))
      )

    // Interruption means the server is shutting down: tell the agent why.
    yield* Effect.addFinalizer((exit) =>
      Exit.isInterrupted(exit) ? Effect.sync(() => conn.close(CloseCode.goingAway, "server shutting down")) : Effect.void
    )

    const decode = (item: Extract<Socket.Inbound, { _tag: "Frame" }>) =>
      Effect.gen(function*() {
        yield* metrics.add("bartos_frames_in_total", 1, labels)
        if (!item.binary) {
          return Either.left<BadFrame>({ code: "undecodable", message: "text frames are not accepted; send binary frames" })
        }
        const limit = options.maxFrameBytes + (options.hmacKey !== undefined ? HMAC_OVERHEAD : 0)
        if (item.data.byteLength > limit) {
          return Either.left<BadFrame>({
            code: "frame_too_large",
            message: `frame of ${item.data.byteLength} bytes exceeds the limit of ${limit} bytes`
          })
        }
        let payload = item.data
        if (options.hmacKey !== undefined) {
          const nowSecs = Math.floor((yield* Clock.currentTimeMillis) / 1000)
          const opened = Envelope.open(
            { hmacKey: options.hmacKey, windowSecs: options.replayWindowSecs, nonces },
            item.data,
            nowSecs
          )
          if (Either.isLeft(opened)) {
            return Either.left<BadFrame>({
              code: "bad_envelope",
              message: `${opened.left.reason}: ${opened.left.message}`
            })
          }
          payload = opened.right
        }
        return Either.mapLeft(
          codec.decode(Inbound.FromAgent, payload),
          (e): BadFrame => ({ code: e.code, message: e.message })
        )
      })

    let badInARow = 0
    /** Answers a bad frame; true when the peer has sent too many and the session must end. */
    const rejected = (bad: BadFrame) =>
      Effect.gen(function*() {
        badInARow++
        yield* metrics.add("bartos_frames_rejected_total", 1, { reason: bad.code })
        yield* Effect.logWarning(`rejected frame (${bad.code}): ${bad.message}`)
        yield* send({ _tag: "ProtocolError", code: bad.code, message: bad.message })
        if (badInARow >= options.maxBadFrames) {
          yield* close(CloseCode.policy, `${badInARow} bad frames in a row`)
          return true
        }
        return false
      })

    // --- hello ---------------------------------------------------------------------------------
    const awaitHello: Effect.Effect<Option.Option<typeof Messages.AgentHello.Type>> = Effect.gen(function*() {
      while (true) {
        const item = yield* conn.take
        if (item._tag === "Closed") return Option.none()
        const decoded = yield* decode(item)
        if (Either.isLeft(decoded)) {
          if (yield* rejected(decoded.left)) return Option.none()
          continue
        }
        const message = decoded.right
        if (message._tag === "AgentHello") return Option.some(message)
        yield* send({ _tag: "ProtocolError", code: "unexpected", message: `expected AgentHello, got ${message._tag}` })
        yield* close(CloseCode.policy, "first frame must be AgentHello")
        return Option.none()
      }
    })
    const hello = yield* awaitHello.pipe(
      Effect.timeout(Duration.millis(options.helloTimeoutMs)),
      Effect.catchTag("TimeoutException", () =>
        close(CloseCode.policy, `no AgentHello within ${options.helloTimeoutMs / 1000} s`).pipe(Effect.as(Option.none()))
      )
    )
    if (Option.isNone(hello)) return
    badInARow = 0
    const { outboxId, protocol } = hello.value
    if (protocol !== Messages.PROTOCOL_VERSION) {
      const reason = `protocol version mismatch: server ${Messages.PROTOCOL_VERSION}, agent ${protocol}`
      yield* send({ _tag: "ProtocolError", code: "protocol_version", message: reason })
      yield* close(CloseCode.protocolVersion, reason)
      return
    }

    const sessionId = randomUUID()
    const connectedAt = yield* nowMicros
    yield* Effect.annotateLogsScoped({ sessionId })
    yield* store.sessionStarted({ agent, sessionId, ip: peer.ip, connectedAt }).pipe(
      Effect.catchAll((e) => Effect.logError(`cannot record session start: ${e.message}`))
    )
    // On a DB error the agent is told nothing is stored (-1): it keeps its records and resends,
    // and the idempotent ingest makes the resend harmless.
    let acked = yield* store.ackedUpTo(agent, outboxId).pipe(
      Effect.catchAll((e) => Effect.logError(`cannot read the acked offset: ${e.message}`).pipe(Effect.as(-1)))
    )
    yield* send({
      _tag: "ServerHello",
      protocol: Messages.PROTOCOL_VERSION,
      serverVersion: options.serverVersion,
      capabilities: CAPABILITIES,
      sessionId,
      ackedUpTo: acked
    })

    // The table is sent under a lock and only when its version moved, so a push from a reload
    // and this session's own first send can never deliver an older table last.
    const tableLock = yield* Effect.makeSemaphore(1)
    let lastVersion: string | undefined
    const syncTable = tableLock.withPermits(1)(
      Effect.gen(function*() {
        const specs = yield* schedules.forAgent(agent)
        const version = ScheduleTable.version(specs)
        if (version === lastVersion) return
        if (yield* send({ _tag: "ScheduleTable", version, schedules: specs })) lastVersion = version
      })
    )
    const handle: WorkerHandle = {
      connection: { agent, sessionId, ip: peer.ip, connectedAt, info: null },
      send,
      close,
      syncTable
    }
    const replaced = yield* sessions.register(handle)
    if (Option.isSome(replaced)) {
      yield* Effect.logInfo(`replacing the older session ${replaced.value.connection.sessionId} of '${agent}'`)
      yield* replaced.value.close(CloseCode.replaced, "replaced by a newer connection")
    }
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const endedAt = yield* nowMicros
        const wasCurrent = yield* sessions.unregister(agent, sessionId)
        yield* Effect.logInfo(`websocket disconnected '${agent} (${peer.ip})'`)
        yield* store.sessionEnded(agent, sessionId, endedAt).pipe(
          Effect.catchAll((e) => Effect.logError(`cannot record session end: ${e.message}`))
        )
        // Runs still `running` become `lost` only if the agent does not come back in time;
        // a replaced session has a successor by definition. (Interruptible explicitly: a fiber
        // forked from a finalizer would otherwise inherit its uninterruptible region.)
        if (wasCurrent) {
          yield* FiberSet.run(options.background, Effect.interruptible(lostCheck(agent, endedAt, options.livenessMs)))
        }
      })
    )
    yield* syncTable

    // --- session loop --------------------------------------------------------------------------
    const onRecords = (records: ReadonlyArray<Messages.AgentRecord>) =>
      Effect.gen(function*() {
        // Uninterruptible: a shutdown waits for the transaction in flight instead of cutting it.
        const result = yield* Effect.either(Effect.uninterruptible(store.ingest(agent, outboxId, records)))
        if (Either.isLeft(result)) {
          yield* metrics.add("bartos_ingest_errors_total", 1)
          yield* Effect.logError(`ingest of ${records.length} records failed, not acked: ${result.left.message}`)
          return
        }
        const upTo = result.right
        const fresh = records.filter((r) => r.seq > acked)
        acked = Math.max(acked, upTo)
        yield* send({ _tag: "Ack", upTo })
        yield* metrics.add("bartos_acks_total", 1)
        if (fresh.length > 0) {
          yield* metrics.add("bartos_records_ingested_total", fresh.length)
          yield* PubSub.publish(ingested, { agent, records: fresh })
        }
      })

    const onMessage = (message: Messages.AgentToServer): Effect.Effect<void> => {
      switch (message._tag) {
        case "RecordBatch":
          return onRecords(message.records)
        case "AgentInfo":
          return Effect.zipRight(
            sessions.setInfo(agent, sessionId, message.info),
            store.sessionInfo(agent, sessionId, message.info).pipe(
              Effect.catchAll((e) => Effect.logError(`cannot store agent info: ${e.message}`))
            )
          )
        case "Ping":
          return Effect.asVoid(send({ _tag: "Pong", id: message.id, sentAt: message.sentAt }))
        case "Pong":
          return Effect.void
        case "CommandRejected":
          return Effect.logWarning(`agent rejected request ${message.requestId}: ${message.reason}`)
        case "ProtocolError":
          return Effect.logWarning(`agent reports a protocol error (${message.code}): ${message.message}`)
        case "AgentHello":
          return Effect.asVoid(send({ _tag: "ProtocolError", code: "unexpected", message: "AgentHello was already received" }))
      }
    }

    // Liveness: one watchdog fiber per session sleeping until the deadline, instead of a timeout
    // around every take (which costs a fiber and a timer per frame).
    // An agent silent for half the timeout gets a Ping, and its Pong counts as a frame: bartoc
    // pings every 5 s whatever `liveness_secs` says, so a timeout below that would otherwise drop
    // every healthy idle agent again and again. At the default (15 s) a live agent is never idle
    // that long, so no extra frames are sent.
    let lastSeen = yield* Clock.currentTimeMillis
    yield* Effect.gen(function*() {
      let probed = -1
      let pingId = 0
      while (true) {
        const now = yield* Clock.currentTimeMillis
        const idle = now - lastSeen
        if (idle >= options.livenessMs) break
        const half = options.livenessMs / 2
        if (idle >= half && probed !== lastSeen) {
          probed = lastSeen
          yield* send({ _tag: "Ping", id: pingId++, sentAt: Messages.Micros.make(now * 1000) })
        }
        yield* Effect.sleep(Duration.millis(idle < half ? half - idle : options.livenessMs - idle))
      }
      yield* Effect.logWarning(`no frame for ${options.livenessMs / 1000} s, dropping the agent`)
      yield* close(CloseCode.liveness, "liveness timeout")
    }).pipe(Effect.forkScoped)

    while (true) {
      const item = yield* conn.take
      if (item._tag === "Closed") return
      lastSeen = yield* Clock.currentTimeMillis
      const decoded = yield* decode(item)
      if (Either.isLeft(decoded)) {
        if (yield* rejected(decoded.left)) return
        continue
      }
      badInARow = 0
      yield* onMessage(decoded.right)
    }
  })

const lostCheck = (agent: string, endedAt: Messages.Micros, livenessMs: number) =>
  Effect.gen(function*() {
    yield* Effect.sleep(Duration.millis(livenessMs))
    const sessions = yield* AgentSessions
    const back = (yield* sessions.handles).some((h) => h.connection.agent === agent)
    if (back) return
    const store = yield* Store
    const lost = yield* store.markLost(agent, endedAt)
    if (lost > 0) yield* Effect.logWarning(`agent '${agent}' did not come back: ${lost} running runs marked lost`)
  }).pipe(
    Effect.catchAll((e) => Effect.logError(`cannot mark runs of '${agent}' lost: ${e.message}`)),
    Effect.annotateLogs({ agent })
  )
