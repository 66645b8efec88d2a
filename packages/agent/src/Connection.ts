/**
 * bartoc's link to bartos (D5, D6, D7; reference §1.5, §1.10, §1.11).
 *
 * One connection at a time, re-established with a capped, jittered exponential backoff. A
 * connection that completed the handshake restores the full retry budget (reference §1.11); an
 * exhausted budget fails `run`, which makes the program exit 1 so a service manager restarts it.
 *
 * Per connection:
 * - `AgentHello` (protocol, outbox id, last seq) and `AgentInfo` go first; `ServerHello` answers
 *   with the highest seq bartos stored, and the sender resends from there.
 * - Frames are queued synchronously by the socket and handled by ONE fiber, in order. Each is
 *   opened (signature and/or HMAC with a replay window and a per-connection nonce cache, as
 *   configured, bound to this connection: Envelope.ts) and decoded; a frame failing either, an
 *   Ack covering records not sent on this connection, a second ServerHello, or a defect while
 *   handling it, is dropped, logged, counted and answered, and the connection stays.
 * - bartos refusing this instance because another live one holds the name (close 4003): the
 *   table is withdrawn (no job runs under a name another instance holds), the refusal is said at
 *   ERROR on stderr, and the backoff retries until bartos accepts this instance.
 * - The sender streams outbox records in batches (≤ 500 records, flushed within 50 ms of the
 *   first unsent one) and keeps at most `maxInFlight` unacked records in flight, so a slow bartos
 *   slows the agent's sending, never its jobs (they write to the durable outbox).
 * - Liveness: an app-level `Ping` every `ping_interval_secs` (default 5 s, the first at once); a
 *   bartos silent for `server_silence_secs` (default 15 s) is dropped. `client_timeout` keeps the
 *   reference meaning: a heartbeat tick that fires later than that (a stalled runtime) drops the
 *   connection too. The backoff runs from `reconnect_base_secs` to `reconnect_max_secs` (1 s, 30 s).
 * - Failover (`[bartos] servers`): each attempt goes to the next server of the list, in order and
 *   round the list, with the same backoff between attempts; after a handshake the next attempt
 *   goes to the server that worked first, and the rotation goes on from there.
 */
import * as Codec from "@barto/domain/Codec"
import type { BartocConfig } from "@barto/domain/Config"
import * as Envelope from "@barto/domain/Envelope"
import {
  type AgentRecord,
  type AgentToServer as AgentToServerType,
  AgentToServer,
  type Micros,
  PROTOCOL_VERSION,
  type ServerMessage as ServerMessageType,
  ServerMessage
} from "@barto/domain/Messages"
import * as Backoff from "@barto/scheduler/Backoff"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as fs from "node:fs"
import * as WsClient from "./internal/wsClient.js"
import { Outbox } from "./Outbox.js"
import { Runner } from "./Runner.js"
import * as SystemInfo from "./SystemInfo.js"
import { CurrentTable } from "./Ticker.js"

export interface Options {
  /** The agent name, sent as `?name=`. */
  readonly name: string
  readonly prefix: "ws" | "wss"
  readonly host: string
  readonly port: number
  /** Failover list (`[bartos] servers`); set, it replaces `host`/`port`. */
  readonly servers?: ReadonlyArray<{ readonly host: string; readonly port: number }> | undefined
  /** PEM file: pinned CA bundle (replaces the default roots). */
  readonly caCert?: string | undefined
  /** PEM files for mTLS (both or neither). */
  readonly clientCert?: string | undefined
  readonly clientKey?: string | undefined
  readonly apiKey?: Redacted.Redacted<string> | undefined
  readonly hmacKey?: Redacted.Redacted<string> | undefined
  /** Base64 Ed25519 public key; set = every frame from bartos must carry a valid signature. */
  readonly serverPublicKey?: Redacted.Redacted<string> | undefined
  readonly replayWindowSecs: number
  /** Connection attempts before giving up; undefined = forever, 0 = fail at once. */
  readonly retryCount?: number | undefined
  /** Seconds a heartbeat tick may be late before the connection is dropped (stalled runtime). */
  readonly clientTimeoutSecs: number
  // Tuning; the defaults are the protocol's (D5, D6). The ping interval, the server silence and
  // the backoff come from `[connection]` in bartoc.toml; tests shrink the rest too.
  readonly pingIntervalMs?: number
  /** A bartos silent (no frame at all) this long is dropped; also the ServerHello deadline. */
  readonly livenessMs?: number
  readonly batchMax?: number
  readonly flushMs?: number
  readonly maxInFlight?: number
  readonly backoffBaseMs?: number
  readonly backoffCapMs?: number
  readonly openTimeoutMs?: number
  /**
   * Where errors an operator must see are also written (bartoc without `-e` logs to its file
   * only): `process.stderr` in the program.
   */
  readonly stderr?: { readonly write: (text: string) => unknown } | undefined
}

export const DEFAULTS = {
  pingIntervalMs: 5_000,
  livenessMs: 15_000,
  batchMax: 500,
  flushMs: 50,
  maxInFlight: 5_000,
  backoffBaseMs: 1_000,
  backoffCapMs: 30_000,
  openTimeoutMs: 10_000
} as const

/** Options from the loaded `bartoc.toml` (+ env + flags). */
export const fromConfig = (config: BartocConfig): Options => ({
  name: config.name,
  prefix: config.bartos.prefix,
  host: config.bartos.host,
  port: config.bartos.port,
  servers: config.bartos.servers?.map((s) => ({ host: s.host, port: s.port ?? config.bartos.port })),
  caCert: config.bartos.ca_cert,
  clientCert: config.bartos.client_cert,
  clientKey: config.bartos.client_key,
  apiKey: config.bartos.api_key,
  hmacKey: config.hmac_key,
  serverPublicKey: config.server_public_key,
  replayWindowSecs: config.replay_window_secs,
  retryCount: config.retry_count,
  clientTimeoutSecs: config.client_timeout,
  pingIntervalMs: config.connection.ping_interval_secs * 1000,
  livenessMs: config.connection.server_silence_secs * 1000,
  backoffBaseMs: config.connection.reconnect_base_secs * 1000,
  backoffCapMs: config.connection.reconnect_max_secs * 1000,
  // With -e the log itself is on stderr already.
  stderr: config.enable_std_output ? undefined : process.stderr
})

/** `{prefix}://{host}:{port}/v1/ws/worker?name=<name>` (IPv6 hosts bracketed). */
export const workerUrl = (o: Pick<Options, "prefix" | "host" | "port" | "name">): string => {
  const host = o.host.includes(":") && !o.host.startsWith("[") ? `[${o.host}]` : o.host
  return `${o.prefix}://${host}:${o.port}/v1/ws/worker?name=${encodeURIComponent(o.name)}`
}

/** The worker URL of every server, in failover order: `servers`, else `host`/`port`. */
export const serverUrls = (
  o: Pick<Options, "prefix" | "host" | "port" | "name" | "servers">
): ReadonlyArray<string> =>
  (o.servers !== undefined && o.servers.length > 0 ? o.servers : [{ host: o.host, port: o.port }])
    .map((s) => workerUrl({ ...o, ...s }))

/** The reconnect loop gave up (retry budget exhausted, or `retry_count = 0`), or the config cannot work. */
export class ConnectionError extends Data.TaggedError("ConnectionError")<{
  readonly reason: "RetriesExhausted" | "NoRetries" | "BadConfig"
  readonly message: string
  readonly attempts: number
}> {}

export interface ConnectionShape {
  /** The reconnect loop; never succeeds. Interrupt it to shut down (closes with 1000). */
  readonly run: Effect.Effect<never, ConnectionError>
  /** Server frames dropped because they failed verification or decoding (all connections). */
  readonly failedFrames: Effect.Effect<number>
  /** Connection attempts so far. */
  readonly attempts: Effect.Effect<number>
  /** Session id of the current handshaken connection, if any. */
  readonly session: SubscriptionRef.SubscriptionRef<Option.Option<string>>
  /**
   * Completes when the first connection attempt is decided: accepted (ServerHello), refused
   * because another live instance holds the name (the cached table withdrawn first), or failed
   * otherwise (bartos unreachable: the cached table runs, D3). The ticker starts then, so a
   * cached table never runs while bartos says the name belongs to another instance.
   */
  readonly decided: Effect.Effect<void>
}

export class Connection extends Context.Tag("@barto/agent/Connection")<Connection, ConnectionShape>() {}

/** Why one connection ended. */
class SessionEnded extends Data.TaggedError("SessionEnded")<{
  readonly message: string
  /** bartos refused this instance: another live instance holds the name (close 4003). */
  readonly nameInUse?: boolean
}> {}

/** bartos' close code for "another live agent instance holds this name" (issue 12 §2). */
export const NAME_IN_USE = 4003

const HELLO_CAPABILITIES = ["records.v1", "run_now", "cancel", "hmac_agent_frames"] as const

const readPem = (what: string, file: string | undefined) =>
  file === undefined ? Effect.succeed(undefined) : Effect.try({
    try: () => fs.readFileSync(file),
    catch: (e) => new SessionEnded({ message: `cannot read ${what} ${file}: ${e instanceof Error ? e.message : e}` })
  })

/** Completes when `pred` holds for the ref's current or a later value. */
const waitFor = <A>(ref: SubscriptionRef.SubscriptionRef<A>, pred: (a: A) => boolean): Effect.Effect<void> =>
  ref.changes.pipe(Stream.filter(pred), Stream.take(1), Stream.runDrain)

export const make = (
  options: Options
): Effect.Effect<ConnectionShape, ConnectionError, Outbox | Runner | CurrentTable | Codec.Codec> =>
  Effect.gen(function*() {
    const outbox = yield* Outbox
    const runner = yield* Runner
    const tableRef = yield* CurrentTable
    const codec = yield* Codec.Codec

    const pingIntervalMs = options.pingIntervalMs ?? DEFAULTS.pingIntervalMs
    const livenessMs = options.livenessMs ?? DEFAULTS.livenessMs
    const batchMax = Math.max(1, options.batchMax ?? DEFAULTS.batchMax)
    const flushMs = options.flushMs ?? DEFAULTS.flushMs
    const maxInFlight = Math.max(batchMax, options.maxInFlight ?? DEFAULTS.maxInFlight)
    const urls = serverUrls(options)

    // A key that cannot work is a configuration error, not something a retry fixes.
    let publicKey: Envelope.PublicKey | undefined
    if (options.serverPublicKey !== undefined) {
      const parsed = Envelope.parsePublicKey(options.serverPublicKey)
      if (Either.isLeft(parsed)) {
        return yield* new ConnectionError({
          reason: "BadConfig",
          message: `server_public_key: ${parsed.left.message}`,
          attempts: 0
        })
      }
      publicKey = parsed.right
    }
    const hmacKey = options.hmacKey === undefined ? undefined : Envelope.hmacKeyFromString(options.hmacKey)
    /** Frames from bartos are checked (signature and/or HMAC): only checked frames prove it alive. */
    const sealedLink = hmacKey !== undefined || publicKey !== undefined
    const headers: Record<string, string> = options.apiKey === undefined
      ? {}
      : { Authorization: `Bearer ${Redacted.value(options.apiKey)}` }
    // Frames from bartos carry up to a signature and an HMAC header around the codec's limit.
    // The socket's hard cap is 16 x that limit, as on bartos (D6): a frame just over the limit is
    // received, dropped and answered `frame_too_large` with the link kept, where a cap at the
    // limit itself made ws close every such link with 1009.
    const maxPayload = 16 * codec.maxFrameBytes + Envelope.SIGNATURE_LEN + Envelope.HMAC_HEADER_LEN
    // Our own frames must fit bartos' limit (same default) once the HMAC header is added.
    const maxBatchBytes = codec.maxFrameBytes - (hmacKey === undefined ? 0 : Envelope.HMAC_HEADER_LEN)

    const failedFrames = yield* Ref.make(0)
    const attempts = yield* Ref.make(0)
    const session = yield* SubscriptionRef.make<Option.Option<string>>(Option.none())
    const info = yield* SystemInfo.read

    const nowSecs = Effect.map(Clock.currentTimeMillis, (ms) => ms / 1000)

    /** One connection, from open to end. Never succeeds; `onHandshake` runs once ServerHello came. */
    const connectOnce = (url: string, onHandshake: Effect.Effect<void>): Effect.Effect<never, SessionEnded> =>
      Effect.scoped(Effect.gen(function*() {
        const ca = yield* readPem("ca_cert", options.caCert)
        const cert = yield* readPem("client_cert", options.clientCert)
        const key = yield* readPem("client_key", options.clientKey)
        // Our half of the session binding (see Envelope.ts); bartos answers with its own.
        const agentNonce = Envelope.makeSessionNonce()
        const sock = yield* WsClient.connect(url, {
          headers: { ...headers, [Envelope.NONCE_HEADER]: Envelope.formatSessionNonce(agentNonce) },
          ca,
          cert,
          key,
          maxPayload,
          openTimeoutMs: options.openTimeoutMs ?? DEFAULTS.openTimeoutMs
        }).pipe(Effect.mapError((e) => new SessionEnded({ message: `cannot connect to ${url}: ${e.message}` })))
        // Runs before the socket's own finalizer: a shutdown closes with 1000 and says why.
        yield* Effect.addFinalizer((exit) =>
          Exit.isInterrupted(exit) ? sock.close(1000, "bartoc shutting down") : Effect.void
        )
        yield* Effect.logInfo(`connected to ${url}`)

        const scope = yield* Effect.scope
        const done = yield* Deferred.make<never, SessionEnded>()
        const end = (ended: SessionEnded | string) =>
          Deferred.fail(done, typeof ended === "string" ? new SessionEnded({ message: ended }) : ended).pipe(Effect.asVoid)
        /** Runs a session task in the background; whatever ends it ends the session. */
        const task = (name: string, effect: Effect.Effect<unknown, SessionEnded | WsClient.SocketError>) =>
          effect.pipe(
            Effect.catchAllCause((cause) =>
              Cause.isInterruptedOnly(cause)
                ? Effect.void
                : Option.match(Cause.failureOption(cause), {
                  onNone: () => end(`${name} died: ${Cause.pretty(cause)}`),
                  onSome: (e) => end(e._tag === "SocketError" ? `${name}: ${e.message}` : e)
                })
            ),
            Effect.forkIn(scope)
          )

        const serverNonce = Envelope.parseSessionNonce(sock.responseHeaders[Envelope.NONCE_HEADER])
        if (sealedLink && serverNonce === undefined) {
          return yield* new SessionEnded({
            message: `bartos sent no session nonce (${Envelope.NONCE_HEADER}) with its upgrade: it is older than this ` +
              "bartoc (upgrade bartos first), or something between strips the header"
          })
        }
        /** Frames sealed to bartos and frames from it that opened on this connection: the binding's counters. */
        let sealed = 0n
        let opened = 0n
        const binding = (sender: "server" | "agent"): Envelope.Binding | undefined =>
          serverNonce === undefined ? undefined : {
            sender,
            agent: options.name,
            agentNonce,
            serverNonce,
            counter: sender === "agent" ? sealed : opened
          }
        /** The highest seq sent on this connection (or acked by bartos before it): an Ack may not go beyond. */
        let sentUpTo = -1

        const nonces = Envelope.makeNonceCache()
        let handshook = false
        const lastHeard = yield* Ref.make(yield* Clock.currentTimeMillis)
        const acked = yield* SubscriptionRef.make(-1)

        /**
         * Sealed right before the write, in the same synchronous step (see `WsClient.send`): the
         * sender, the pinger and the inbound fiber all write, and the counter must follow the wire.
         */
        const sendPayload = (payload: Uint8Array, onWrite?: () => void) =>
          Effect.flatMap(nowSecs, (now) =>
            sock.send(() => {
              const frame = hmacKey === undefined ? payload : Envelope.seal({ hmacKey }, payload, now, binding("agent"))
              if (hmacKey !== undefined) sealed++
              onWrite?.()
              return frame
            }))

        const send = (message: AgentToServerType) => Effect.suspend(() => sendPayload(codec.encode(AgentToServer, message)))

        const reject = (requestId: string, reason: string) =>
          Effect.logWarning(`rejecting request ${requestId}: ${reason}`).pipe(
            Effect.zipRight(send({ _tag: "CommandRejected", requestId, reason }))
          )

        // ---- sender -----------------------------------------------------------------------
        const sendRecords = (records: ReadonlyArray<AgentRecord>): Effect.Effect<void, WsClient.SocketError> =>
          Effect.suspend(() => {
            const payload = codec.encode(AgentToServer, { _tag: "RecordBatch", records })
            if (payload.byteLength > maxBatchBytes && records.length > 1) {
              const half = Math.ceil(records.length / 2)
              return sendRecords(records.slice(0, half)).pipe(Effect.zipRight(sendRecords(records.slice(half))))
            }
            const last = records[records.length - 1]
            return sendPayload(payload, () => {
              if (last !== undefined) sentUpTo = Math.max(sentUpTo, last.seq)
            })
          })

        const sender = (from: number) =>
          Effect.gen(function*() {
            let sent = from
            while (true) {
              // Backpressure: no more than maxInFlight unacked records on the wire.
              yield* waitFor(acked, (a) => sent - a < maxInFlight)
              const room = maxInFlight - (sent - (yield* SubscriptionRef.get(acked)))
              const records = yield* outbox.pending(sent, Math.min(batchMax, room)).pipe(
                Effect.mapError((e) => new SessionEnded({ message: `sender: ${e.message}` }))
              )
              if (records.length === 0) {
                // Idle: wake on the next record, then give it flushMs to gather a batch.
                yield* waitFor(outbox.lastSeq, (s) => s > sent)
                yield* Effect.raceFirst(Effect.sleep(flushMs), waitFor(outbox.lastSeq, (s) => s - sent >= batchMax))
                continue
              }
              yield* sendRecords(records)
              sent = records[records.length - 1]!.seq
            }
          })

        // ---- inbound ----------------------------------------------------------------------
        const dropFrame = (why: string, code: "bad_envelope" | "undecodable" | "unknown_tag" | "frame_too_large" | "unexpected") =>
          Ref.update(failedFrames, (n) => n + 1).pipe(
            Effect.zipRight(Effect.logWarning(`dropping a frame from bartos: ${why}`)),
            // D6: the peer hears what was wrong with its frame; the connection stays.
            Effect.zipRight(send({ _tag: "ProtocolError", code, message: why.slice(0, 500) }).pipe(Effect.ignore))
          )

        const handle = (message: ServerMessageType): Effect.Effect<void, SessionEnded | WsClient.SocketError> => {
          switch (message._tag) {
            case "ServerHello":
              return Effect.gen(function*() {
                // Once handshaken, another ServerHello is a bad frame like any other, whatever it says.
                if (handshook) return yield* dropFrame("a second ServerHello on this connection", "unexpected")
                if (message.protocol !== PROTOCOL_VERSION) {
                  return yield* new SessionEnded({
                    message: `bartos speaks protocol ${message.protocol}, this agent speaks ${PROTOCOL_VERSION}`
                  })
                }
                handshook = true
                if (message.ackedUpTo >= 0) {
                  yield* outbox.ack(message.ackedUpTo).pipe(
                    Effect.catchAll((e) => Effect.logError(`cannot ack the outbox: ${e.message}`))
                  )
                }
                yield* SubscriptionRef.set(acked, message.ackedUpTo)
                sentUpTo = Math.max(sentUpTo, message.ackedUpTo)
                yield* SubscriptionRef.set(session, Option.some(message.sessionId))
                yield* onHandshake
                yield* Effect.logInfo(
                  `bartos ${message.serverVersion} accepted agent '${options.name}' (session ${message.sessionId}); ` +
                    `resending after seq ${message.ackedUpTo}`
                )
                yield* task("sender", sender(message.ackedUpTo))
              })
            case "ScheduleTable":
              return Effect.gen(function*() {
                yield* outbox.saveTable(message).pipe(
                  Effect.catchAll((e) => Effect.logError(`cannot cache the schedule table: ${e.message}`))
                )
                yield* SubscriptionRef.set(tableRef, Option.some(message))
                yield* Effect.logInfo(
                  `schedule table ${message.version}: ${message.schedules.length} schedule(s)`
                )
              })
            case "Ack":
              if (message.upTo > sentUpTo) {
                // Only what this agent sent on this connection can have been stored from it.
                return dropFrame(
                  `Ack up to ${message.upTo} covers records never sent on this connection (sent up to ${sentUpTo})`,
                  "unexpected"
                )
              }
              return outbox.ack(message.upTo).pipe(
                Effect.zipRight(SubscriptionRef.update(acked, (a) => Math.max(a, message.upTo))),
                Effect.catchAll((e) => Effect.logError(`cannot ack the outbox up to ${message.upTo}: ${e.message}`))
              )
            case "Ping":
              return send({ _tag: "Pong", id: message.id, sentAt: message.sentAt })
            case "Pong":
              return Effect.void
            case "RunNow":
              return Effect.gen(function*() {
                const table = yield* SubscriptionRef.get(tableRef)
                const spec = Option.flatMap(
                  table,
                  (t) => Option.fromNullable(t.schedules.find((s) => s.name === message.schedule))
                )
                if (Option.isNone(spec)) {
                  return yield* reject(message.requestId, `unknown schedule '${message.schedule}'`)
                }
                const now = yield* Clock.currentTimeMillis
                const outcome = yield* runner.start({
                  runId: message.runId,
                  spec: spec.value,
                  trigger: "manual",
                  scheduledAt: now
                }).pipe(Effect.catchAll((e) => Effect.succeed(`failed: ${e.message}` as const)))
                if (outcome === "skipped") {
                  return yield* reject(
                    message.requestId,
                    `schedule '${message.schedule}' is already running and its overlap policy is 'forbid'`
                  )
                }
                if (outcome === "refused") return yield* reject(message.requestId, "bartoc is shutting down")
                if (outcome !== "started" && outcome !== "queued") {
                  return yield* reject(message.requestId, `cannot start: ${outcome}`)
                }
                yield* Effect.logInfo(`run-now of '${message.schedule}' (${message.runId}): ${outcome}`)
              })
            case "CancelRun":
              return Effect.gen(function*() {
                const cancelled = yield* runner.cancel(message.runId)
                if (!cancelled) return yield* reject(message.requestId, `run ${message.runId} is not running here`)
                yield* Effect.logInfo(`cancelled run ${message.runId}`)
              })
            case "AgentCleanup":
              // The outbox only holds unacked records, so there is nothing old to delete here.
              return Effect.logInfo("bartos asked for a cleanup; the outbox keeps only unacked records")
            case "ProtocolError":
              if (message.code === "protocol_version" && !handshook) {
                return Effect.fail(new SessionEnded({ message: `bartos refused the protocol: ${message.message.slice(0, 500)}` }))
              }
              return Effect.logWarning(`bartos reports ${message.code}: ${message.message.slice(0, 500)}`)
          }
        }

        /** One frame from bartos: opened, decoded, handled; a frame that fails is dropped and answered. */
        const onFrame = (data: Uint8Array, binary: boolean) =>
          Effect.gen(function*() {
            if (!binary) return yield* dropFrame("text frame (frames are binary)", "undecodable")
            const open = Envelope.open(
              { hmacKey, publicKey, windowSecs: options.replayWindowSecs, nonces },
              data,
              yield* nowSecs,
              binding("server")
            )
            if (Either.isLeft(open)) return yield* dropFrame(`${open.left.reason}: ${open.left.message}`, "bad_envelope")
            if (sealedLink) {
              opened++
              // Only frames that prove bartos (and this connection) count as hearing from it: a
              // frame held back is accepted at most `server_silence_secs` late, which is the time
              // window of signature-only frames (they carry no timestamp).
              yield* Ref.set(lastHeard, yield* Clock.currentTimeMillis)
            }
            const decoded = codec.decode(ServerMessage, open.right)
            if (Either.isLeft(decoded)) return yield* dropFrame(`${decoded.left.code}: ${decoded.left.message}`, decoded.left.code)
            yield* handle(decoded.right)
          }).pipe(
            // A defect (a bug, or a server that found one) costs this frame, not the connection.
            Effect.catchAllDefect((cause) =>
              Effect.logError("defect while handling a frame from bartos", cause).pipe(
                Effect.zipRight(dropFrame("internal error handling the frame", "unexpected"))
              )
            )
          )

        const inbound = Effect.gen(function*() {
          while (true) {
            const event = yield* Queue.take(sock.events)
            if (!sealedLink) yield* Ref.set(lastHeard, yield* Clock.currentTimeMillis)
            if (event._tag === "Heard") continue
            if (event._tag === "Closed") {
              return yield* new SessionEnded({
                message: `bartos closed the connection (code ${event.code}${event.reason === "" ? "" : `: ${event.reason}`})`,
                nameInUse: event.code === NAME_IN_USE
              })
            }
            yield* onFrame(event.data, event.binary)
          }
        })

        // ---- liveness ---------------------------------------------------------------------
        const pinger = Effect.gen(function*() {
          const start = yield* Clock.currentTimeMillis
          for (let id = 0;; id++) {
            const due = start + id * pingIntervalMs
            const now = yield* Clock.currentTimeMillis
            // Reference §1.10: a tick this late means our own runtime stalled; start afresh.
            if (now - due > options.clientTimeoutSecs * 1000) {
              return yield* new SessionEnded({
                message: `heartbeat timed out (tick ${now - due} ms late), disconnecting`
              })
            }
            yield* send({ _tag: "Ping", id, sentAt: (now * 1000) as Micros })
            yield* Effect.sleep(Math.max(0, due + pingIntervalMs - (yield* Clock.currentTimeMillis)))
          }
        })

        const watchdog = Effect.gen(function*() {
          while (true) {
            const last = yield* Ref.get(lastHeard)
            const now = yield* Clock.currentTimeMillis
            if (now - last >= livenessMs) {
              return yield* new SessionEnded({ message: `bartos silent for ${Math.round((now - last) / 1000)} s` })
            }
            yield* Effect.sleep(last + livenessMs - now)
          }
        })

        const helloTimeout = Effect.sleep(livenessMs).pipe(
          Effect.zipRight(Effect.suspend(() =>
            handshook ? Effect.void : Effect.fail(new SessionEnded({ message: "no ServerHello from bartos" }))
          ))
        )

        yield* send({
          _tag: "AgentHello",
          protocol: PROTOCOL_VERSION,
          agentVersion: SystemInfo.AGENT_VERSION,
          capabilities: HELLO_CAPABILITIES,
          outboxId: outbox.outboxId,
          lastSeq: yield* SubscriptionRef.get(outbox.lastSeq)
        }).pipe(Effect.mapError((e) => new SessionEnded({ message: `sending hello: ${e.message}` })))
        yield* send({ _tag: "AgentInfo", info }).pipe(
          Effect.mapError((e) => new SessionEnded({ message: `sending info: ${e.message}` }))
        )

        yield* task("inbound", inbound)
        yield* task("pinger", pinger)
        yield* task("watchdog", watchdog)
        yield* task("hello", helloTimeout)

        const ended = yield* Effect.flip(Deferred.await(done))
        yield* sock.close(1000, ended.message)
        return yield* ended
      })).pipe(
        Effect.ensuring(SubscriptionRef.set(session, Option.none()))
      )

    /** Completes once the first attempt was accepted, refused or failed: see `ConnectionShape.decided`. */
    const decided = yield* Deferred.make<void>()

    /**
     * Another live instance holds our name: two agents with one name would run every job twice.
     * Its table (or our cached one) is not ours to run until bartos accepts this instance, which
     * it does once the other's session ends; the backoff keeps retrying until then.
     */
    const refusedName = (reason: string) =>
      Effect.gen(function*() {
        const message = `bartos refused agent name '${options.name}' for this instance (${reason}); ` +
          "running no schedule until bartos accepts it; retrying"
        yield* Effect.logError(message)
        // Said on stderr even without -e: the operator must see it (issue 12 §2).
        yield* Effect.sync(() => options.stderr?.write(`bartoc: ERROR ${message}\n`))
        if (Option.isSome(yield* SubscriptionRef.get(tableRef))) yield* SubscriptionRef.set(tableRef, Option.none())
      })

    const run: Effect.Effect<never, ConnectionError> = Effect.gen(function*() {
      if (options.retryCount === 0) {
        return yield* new ConnectionError({
          reason: "NoRetries",
          message: "retry_count = 0: not connecting to bartos",
          attempts: 0
        })
      }
      const driver = yield* Schedule.driver(
        Backoff.reconnect({
          baseMs: options.backoffBaseMs ?? DEFAULTS.backoffBaseMs,
          capMs: options.backoffCapMs ?? DEFAULTS.backoffCapMs,
          // retry_count counts attempts (reference §1.11); the schedule counts the retries after the first.
          ...(options.retryCount === undefined ? {} : { retries: options.retryCount - 1 })
        })
      )
      /** The server of the next attempt (an index into `urls`). */
      let current = 0
      while (true) {
        const attempt = yield* Ref.updateAndGet(attempts, (n) => n + 1)
        const url = urls[current]!
        let handshook = false
        const onHandshake = Effect.sync(() => {
          handshook = true
        }).pipe(Effect.zipRight(driver.reset), Effect.zipRight(Deferred.succeed(decided, undefined)))
        const ended = yield* Effect.flip(connectOnce(url, onHandshake))
        // Failover: a server that failed hands over to the next; one that worked is tried first again.
        if (!handshook) current = (current + 1) % urls.length
        if (ended.nameInUse === true) yield* refusedName(ended.message)
        else yield* Effect.logWarning(`connection to bartos ${url} ended (attempt ${attempt}): ${ended.message}`)
        yield* Deferred.succeed(decided, undefined)
        const retry = yield* Effect.either(driver.next(ended))
        if (Either.isLeft(retry)) {
          return yield* new ConnectionError({
            reason: "RetriesExhausted",
            message: `giving up after ${attempt} attempt(s); last: ${ended.message}`,
            attempts: attempt
          })
        }
      }
    })

    return {
      run,
      failedFrames: Ref.get(failedFrames),
      attempts: Ref.get(attempts),
      session,
      decided: Deferred.await(decided)
    } satisfies ConnectionShape
  })

export const layer = (
  options: Options
): Layer.Layer<Connection, ConnectionError, Outbox | Runner | CurrentTable | Codec.Codec> =>
  Layer.effect(Connection, make(options))

/** Runs the reconnect loop of the Connection in the context. */
export const run: Effect.Effect<never, ConnectionError, Connection> = Effect.flatMap(Connection, (c) => c.run)
