/**
 * bartoc's link to bartos (D5, D6, D7; reference §1.5, §1.10, §1.11).
 *
 * One connection at a time over the shared client link (`@barto/domain/Link`: TLS, envelopes,
 * codec, heartbeat). The reconnect loop is `session.pipe(Effect.retry(Backoff.reconnect(...)))`:
 * a round of attempts with a fresh schedule ends at the first handshake, so a connection that
 * completed the handshake restores the full retry budget (reference §1.11); an exhausted budget
 * fails `run`, which makes the program exit 1 so a service manager restarts it. What each message
 * from bartos does is `internal/serverMessages.ts`.
 *
 * Per connection:
 * - `AgentHello` (protocol, outbox id, last seq) and `AgentInfo` go first; `ServerHello` answers
 *   with the highest seq bartos stored, and the sender resends from there.
 * - Frames are queued synchronously by the socket and handled by ONE fiber, in order. Each is
 *   opened (by the link) (signature and/or HMAC with a replay window and a per-connection nonce cache, as
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
import * as Link from "@barto/domain/Link"
import {
  type AgentRecord,
  AgentToServer,
  type Micros,
  type MissedTick,
  PROTOCOL_VERSION,
  recordBatchWire,
  ServerMessage
} from "@barto/domain/Messages"
import * as Backoff from "@barto/scheduler/Backoff"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { CurrentTable } from "./CurrentTable.js"
import * as ServerMessages from "./internal/serverMessages.js"
import { Outbox } from "./Outbox.js"
import { Runner } from "./Runner.js"
import * as SystemInfo from "./SystemInfo.js"

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
  /** The ticker's missed-tick policy, reported in the hello (bartos shows it in `schedules`). */
  readonly missedTick?: { readonly policy: MissedTick; readonly catchUpLimit: number } | undefined
}

/** The largest `catchUpLimit` the hello carries (an INT column on bartos). */
const INT32_MAX = 2 ** 31 - 1

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
  stderr: config.enable_std_output ? undefined : process.stderr,
  missedTick: { policy: config.missed_tick, catchUpLimit: config.catch_up_limit }
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
  /** The connection got as far as ServerHello. */
  readonly handshook: boolean
  /** The server's URL (set once the attempt is over). */
  readonly server?: string
}> {}

/** bartos' close code for "another live agent instance holds this name" (issue 12 §2). */
export const NAME_IN_USE = 4003

/** The "cannot reach bartos" line on stderr comes at most this often (unless what it says changes). */
export const UNREACHABLE_EVERY_MS = 10_000

const HELLO_CAPABILITIES = ["records.v1", "run_now", "cancel", "hmac_agent_frames"] as const

/** Completes when `pred` holds for the ref's current or a later value. */
const waitFor = <A>(ref: SubscriptionRef.SubscriptionRef<A>, pred: (a: A) => boolean): Effect.Effect<void> =>
  ref.changes.pipe(Stream.filter(pred), Stream.take(1), Stream.runDrain)

/** What the link said, in the words of bartoc's log (bartos is the peer). */
const describeLinkError = (url: string, e: Link.LinkError): string => {
  switch (e.reason) {
    case "Open":
      return `cannot connect to ${url}: ${
        e.status !== undefined && !e.message.includes(String(e.status)) ? `HTTP ${e.status} ${e.message}` : e.message
      }`
    case "Config":
    case "Write":
    case "Stalled":
    case "Silent":
      return e.message
    case "Closed":
    case "Protocol":
      return `bartos ${e.message}`
  }
}

const utf8 = new TextEncoder()

const isoSecond = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z")

export const make = (
  options: Options
): Effect.Effect<ConnectionShape, ConnectionError, Outbox | Runner | CurrentTable | Codec.Codec | Link.Link> =>
  Effect.gen(function*() {
    const outbox = yield* Outbox
    const runner = yield* Runner
    const tableRef = yield* CurrentTable
    const codec = yield* Codec.Codec
    const link = yield* Link.Link

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
    const headers: Record<string, string> = options.apiKey === undefined
      ? {}
      : { Authorization: `Bearer ${Redacted.value(options.apiKey)}` }
    // The socket's hard cap is 16 x the codec's limit, as on bartos (D6): a frame just over the
    // limit is received, dropped and answered `frame_too_large` with the link kept, where a cap at
    // the limit itself made ws close every such link with 1009.
    const maxPayload = 16 * codec.maxFrameBytes + Link.ENVELOPE_OVERHEAD
    // Our own frames must fit bartos' limit (same default) once the HMAC header is added.
    const maxBatchBytes = codec.maxFrameBytes - (hmacKey === undefined ? 0 : Envelope.HMAC_HEADER_LEN)

    const failedFrames = yield* Ref.make(0)
    const attempts = yield* Ref.make(0)
    const session = yield* SubscriptionRef.make<Option.Option<string>>(Option.none())
    const info = yield* SystemInfo.read
    /** Completes once the first attempt was accepted, refused or failed: see `ConnectionShape.decided`. */
    const decided = yield* Deferred.make<void>()
    /** The server of the next attempt (failover: an index into `urls`). */
    let current = 0

    const stderr = (line: string) => Effect.sync(() => options.stderr?.write(`bartoc: ${line}\n`))

    /** Once per table: a name bartos has no schedule for runs nothing, which an operator must hear about. */
    const warnedTables = new Set<string>()
    const checkName = (table: Extract<ServerMessage, { readonly _tag: "ScheduleTable" }>) =>
      Effect.suspend(() => {
        if (table.schedules.length > 0 || warnedTables.has(table.version)) return Effect.void
        warnedTables.add(table.version)
        const line = `WARN agent name '${options.name}' matches no schedule in the table bartos sent ` +
          `(version ${table.version}): nothing will run here; check [schedules.${options.name}] in bartos.toml ` +
          "or this agent's name"
        return Effect.logWarning(line).pipe(Effect.zipRight(stderr(line)))
      })

    /** One connection to `url`, from open to end; fails with why it ended. */
    const connectTo = (url: string): Effect.Effect<never, SessionEnded> => {
      let handshook = false
      const ended = (message: string, nameInUse?: boolean) =>
        new SessionEnded({ message, handshook, ...(nameInUse === true ? { nameInUse } : {}) })
      return Effect.scoped(Effect.gen(function*() {
        const conn = yield* link.connect({
          url,
          headers,
          caCert: options.caCert,
          clientCert: options.clientCert,
          clientKey: options.clientKey,
          maxPayload,
          openTimeoutMs: options.openTimeoutMs ?? DEFAULTS.openTimeoutMs,
          codec,
          inbound: ServerMessage,
          outbound: AgentToServer,
          sealing: { agent: options.name, hmacKey, publicKey, windowSecs: options.replayWindowSecs }
        }).pipe(Effect.mapError((e) => ended(describeLinkError(url, e))))
        // Runs before the link's own finalizer: a shutdown closes with 1000 and says why.
        yield* Effect.addFinalizer((exit) =>
          Exit.isInterrupted(exit) ? conn.close(1000, "bartoc shutting down") : Effect.void
        )
        yield* Effect.logInfo(`connected to ${url}`)
        const scope = yield* Effect.scope
        const done = yield* Deferred.make<never, SessionEnded>()
        const end = (why: SessionEnded) => Deferred.fail(done, why).pipe(Effect.asVoid)
        const fromLink = (e: Link.LinkError) =>
          ended(describeLinkError(url, e), e.reason === "Closed" && e.closeCode === NAME_IN_USE)
        /** Runs a session task in the background; whatever ends it ends the session. */
        const task = (name: string, effect: Effect.Effect<unknown, SessionEnded | Link.LinkError>) =>
          effect.pipe(
            Effect.catchAllCause((cause) =>
              Cause.isInterruptedOnly(cause)
                ? Effect.void
                : Option.match(Cause.failureOption(cause), {
                  onNone: () => end(ended(`${name} died: ${Cause.pretty(cause)}`)),
                  onSome: (e) => end(e._tag === "LinkError" ? fromLink(e) : e)
                })
            ),
            Effect.forkIn(scope)
          )

        const acked = yield* SubscriptionRef.make(-1)
        const dropFrame = (why: string, code: ServerMessages.DropCode) =>
          Ref.update(failedFrames, (n) => n + 1).pipe(
            Effect.zipRight(Effect.logWarning(`dropping a frame from bartos: ${why}`)),
            // D6: the peer hears what was wrong with its frame; the connection stays.
            Effect.zipRight(conn.send({ _tag: "ProtocolError", code, message: why.slice(0, 500) }).pipe(Effect.ignore))
          )

        // ---- sender -----------------------------------------------------------------------
        // Records go out in the encoded form the outbox stored them in: one JSON.parse per record
        // on the way out, no Schema decode and encode.
        const sendRecords = (records: ReadonlyArray<typeof AgentRecord.Encoded>): Effect.Effect<void, Link.LinkError> =>
          Effect.suspend(() => {
            const payload = utf8.encode(JSON.stringify(recordBatchWire(records)))
            if (payload.byteLength > maxBatchBytes && records.length > 1) {
              const half = Math.ceil(records.length / 2)
              return sendRecords(records.slice(0, half)).pipe(Effect.zipRight(sendRecords(records.slice(half))))
            }
            const last = records[records.length - 1]
            return conn.sendPayload(payload, () => {
              if (last !== undefined) state.sentUpTo = Math.max(state.sentUpTo, last.seq)
            })
          })

        /** One batch: waits for room under the in-flight cap and for records, then sends them. */
        const sendBatch = (sent: number): Effect.Effect<number, SessionEnded | Link.LinkError> =>
          Effect.gen(function*() {
            // Backpressure: no more than maxInFlight unacked records on the wire.
            yield* waitFor(acked, (a) => sent - a < maxInFlight)
            const room = maxInFlight - (sent - (yield* SubscriptionRef.get(acked)))
            const records = yield* outbox.pendingEncoded(sent, Math.min(batchMax, room)).pipe(
              Effect.mapError((e) => ended(`sender: ${e.message}`))
            )
            if (records.length === 0) {
              // Idle: wake on the next record, then give it flushMs to gather a batch.
              yield* waitFor(outbox.lastSeq, (s) => s > sent)
              yield* Effect.raceFirst(Effect.sleep(flushMs), waitFor(outbox.lastSeq, (s) => s - sent >= batchMax))
              return sent
            }
            yield* sendRecords(records)
            return records[records.length - 1]!.seq
          })
        const sender = (from: number) => Effect.iterate(from, { while: () => true, body: sendBatch })

        const state: ServerMessages.SessionState<Link.LinkError> = {
          agentName: options.name,
          outbox,
          runner,
          table: tableRef,
          session,
          acked,
          handshook: false,
          sentUpTo: -1,
          send: conn.send,
          dropFrame,
          onHandshake: (ackedUpTo) =>
            Effect.gen(function*() {
              handshook = true
              yield* Deferred.succeed(decided, undefined)
              yield* task("sender", sender(ackedUpTo))
            }),
          onTable: checkName
        }

        /** One item from the link: a message handled, or a bad frame dropped and answered. */
        const onInbound = (item: Link.Inbound<ServerMessage>) =>
          (item._tag === "Dropped"
            ? dropFrame(item.reason, item.code)
            : ServerMessages.handle(state, item.message).pipe(
              Effect.catchIf(
                (e): e is ServerMessages.Ending => e._tag === "Ending",
                (e) => Effect.fail(ended(e.message))
              )
            )).pipe(
              // A defect (a bug, or a server that found one) costs this frame, not the connection.
              Effect.catchAllDefect((cause) =>
                Effect.logError("defect while handling a frame from bartos", cause).pipe(
                  Effect.zipRight(dropFrame("internal error handling the frame", "unexpected"))
                )
              )
            )

        const helloTimeout = Effect.sleep(livenessMs).pipe(
          Effect.zipRight(
            Effect.suspend(() => state.handshook ? Effect.void : Effect.fail(ended("no ServerHello from bartos")))
          )
        )

        yield* conn.send({
          _tag: "AgentHello",
          protocol: PROTOCOL_VERSION,
          agentVersion: SystemInfo.AGENT_VERSION,
          capabilities: HELLO_CAPABILITIES,
          outboxId: outbox.outboxId,
          lastSeq: yield* SubscriptionRef.get(outbox.lastSeq),
          ...(options.missedTick === undefined ? {} : {
            missedTick: options.missedTick.policy,
            catchUpLimit: Math.min(options.missedTick.catchUpLimit, INT32_MAX)
          })
        }).pipe(Effect.mapError((e) => ended(`sending hello: ${e.message}`)))
        yield* conn.send({ _tag: "AgentInfo", info }).pipe(Effect.mapError((e) => ended(`sending info: ${e.message}`)))

        yield* task("inbound", Stream.runForEach(conn.inbound, onInbound))
        // Liveness: an app-level Ping every pingIntervalMs (the first at once), a silent bartos
        // dropped; reference §1.10: a tick later than client_timeout means our own runtime stalled.
        yield* conn.heartbeat({
          intervalMs: pingIntervalMs,
          ping: (id, nowMs) => ({ _tag: "Ping", id, sentAt: (nowMs * 1000) as Micros }),
          silenceMs: livenessMs,
          silentMessage: (ms) => `bartos silent for ${Math.round(ms / 1000)} s`,
          lateMs: options.clientTimeoutSecs * 1000
        })
        yield* task("hello", helloTimeout)

        const why = yield* Effect.flip(Deferred.await(done))
        yield* conn.close(1000, why.message)
        return yield* why
      })).pipe(
        Effect.ensuring(SubscriptionRef.set(session, Option.none()))
      )
    }

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
        yield* stderr(`ERROR ${message}`)
        if (Option.isSome(yield* SubscriptionRef.get(tableRef))) yield* SubscriptionRef.set(tableRef, Option.none())
      })

    /** One attempt at the current server of the failover list; the rotation moves on unless it handshook. */
    const attempt: Effect.Effect<never, SessionEnded> = Effect.gen(function*() {
      const n = yield* Ref.updateAndGet(attempts, (k) => k + 1)
      const url = urls[current]!
      const ended = yield* Effect.flip(connectTo(url))
      // Failover: a server that failed hands over to the next; one that worked is tried first again.
      if (!ended.handshook) current = (current + 1) % urls.length
      if (ended.nameInUse === true) yield* refusedName(ended.message)
      else {
        yield* Effect.logWarning(
          `connection to bartos ended (attempt ${n}): ${ended.message}${ended.message.includes(url) ? "" : ` (${url})`}`
        )
      }
      yield* Deferred.succeed(decided, undefined)
      return yield* Effect.fail(
        new SessionEnded({
          message: ended.message,
          handshook: ended.handshook,
          server: url,
          ...(ended.nameInUse === true ? { nameInUse: true } : {})
        })
      )
    })

    /** The last "cannot reach" line on stderr: when, and what it said (rate limit). */
    let lastReport: { readonly at: number; readonly what: string } | undefined
    /** Each backoff step that follows a failed attempt says so on stderr (rate-limited). */
    const reportStep = (ended: SessionEnded, delay: Duration.Duration) =>
      Effect.gen(function*() {
        if (ended.handshook || ended.nameInUse === true) return
        const now = yield* Clock.currentTimeMillis
        const server = ended.server ?? "?"
        const reason = ended.message.startsWith(`cannot connect to ${server}: `)
          ? ended.message.slice(`cannot connect to ${server}: `.length)
          : ended.message
        const what = `${server} (${reason})`
        if (lastReport !== undefined && lastReport.what === what && now - lastReport.at < UNREACHABLE_EVERY_MS) return
        lastReport = { at: now, what }
        const ms = Duration.toMillis(delay)
        yield* stderr(
          `WARN cannot reach bartos at ${what}; next attempt at ${isoSecond(now + ms)} (in ${(ms / 1000).toFixed(1)} s)`
        )
      })

    const backoff = (retries: number | undefined) =>
      Backoff.reconnect({
        baseMs: options.backoffBaseMs ?? DEFAULTS.backoffBaseMs,
        capMs: options.backoffCapMs ?? DEFAULTS.backoffCapMs,
        ...(retries === undefined ? {} : { retries })
      })

    /**
     * A round: attempts with a fresh backoff until one handshakes (then the round ends with that
     * session's end), or the budget is spent. retry_count counts attempts (reference §1.11); the
     * schedule counts the retries after the first.
     */
    const round = attempt.pipe(
      Effect.flip,
      Effect.filterOrFail((ended) => ended.handshook, (ended) => ended),
      Effect.retry(
        backoff(options.retryCount === undefined ? undefined : options.retryCount - 1).pipe(
          Schedule.intersect(Schedule.identity<SessionEnded>()),
          Schedule.tapOutput(([delay, ended]) => reportStep(ended, delay))
        )
      )
    )

    const run: Effect.Effect<never, ConnectionError> = Effect.gen(function*() {
      if (options.retryCount === 0) {
        return yield* new ConnectionError({
          reason: "NoRetries",
          message: "retry_count = 0: not connecting to bartos",
          attempts: 0
        })
      }
      // After a handshaken session ends, the next round starts after the first step of a fresh
      // backoff (uniform in [0, base]): the budget is full again.
      const base = options.backoffBaseMs ?? DEFAULTS.backoffBaseMs
      return yield* round.pipe(
        Effect.repeat(Backoff.reconnect({ baseMs: base, capMs: base })),
        Effect.flatMap(() => Effect.never),
        Effect.catchAll((ended) =>
          Effect.flatMap(Ref.get(attempts), (n) =>
            Effect.fail(
              new ConnectionError({
                reason: "RetriesExhausted",
                message: `giving up after ${n} attempt(s); last: ${ended.message}`,
                attempts: n
              })
            ))
        )
      )
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
): Layer.Layer<Connection, ConnectionError, Outbox | Runner | CurrentTable | Codec.Codec | Link.Link> =>
  Layer.effect(Connection, make(options))

/** Runs the reconnect loop of the Connection in the context. */
export const run: Effect.Effect<never, ConnectionError, Connection> = Effect.flatMap(Connection, (c) => c.run)
