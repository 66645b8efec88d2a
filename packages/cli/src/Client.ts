/**
 * The CLI link (D6, D10), over the shared client link (`@barto/domain/Link`): one WebSocket to `{prefix}://{host}:{port}/v1/ws/cli?name=<name>`
 * (Bearer `api_key`, pinned `ca_cert`, mTLS `client_cert`/`client_key`), `CliHello` →
 * `ServerHelloCli`, then requests carrying an `id` and the responses echoing it.
 *
 * Failures are `ClientError`s with the message the user sees (`barto-cli: <message>`, exit 1).
 * Every connection is scoped: the socket is closed (and waited for, briefly) when the scope ends,
 * so a finished command never keeps the process alive.
 */
import * as Codec from "@barto/domain/Codec"
import type * as Config from "@barto/domain/Config"
import * as Link from "@barto/domain/Link"
import * as Messages from "@barto/domain/Messages"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

export type ClientErrorReason =
  | "connect"
  | "unauthorized"
  | "timeout"
  | "closed"
  | "protocol"
  | "server"
  | "config"

export class ClientError extends Data.TaggedError("ClientError")<{
  readonly reason: ClientErrorReason
  readonly message: string
  /** The server's `CliError.code` when `reason` is `server`. */
  readonly code?: typeof Messages.CliError.Type["code"]
}> {}

export interface ConnectOptions {
  readonly prefix: "ws" | "wss"
  readonly host: string
  readonly port: number
  /** Sent as `?name=`. */
  readonly name: string
  readonly apiKey?: string | undefined
  readonly adminKey?: string | undefined
  /** Paths (PEM). */
  readonly caCert?: string | undefined
  readonly clientCert?: string | undefined
  readonly clientKey?: string | undefined
  /** Reply timeout (connect + hello + first answer). */
  readonly timeoutMs: number
  readonly cliVersion: string
  /** App-level ping period while following a stream (a silent server is noticed after 3 periods). */
  readonly keepaliveMs?: number | undefined
}

export const fromConfig = (
  config: Config.CliConfig,
  cliVersion: string,
  timeoutSecs: number | undefined
): ConnectOptions => ({
  prefix: config.bartos.prefix,
  host: config.bartos.host,
  port: config.bartos.port,
  name: config.name,
  apiKey: config.bartos.api_key === undefined ? undefined : Redacted.value(config.bartos.api_key),
  adminKey: config.bartos.admin_key === undefined ? undefined : Redacted.value(config.bartos.admin_key),
  caCert: config.bartos.ca_cert,
  clientCert: config.bartos.client_cert,
  clientKey: config.bartos.client_key,
  timeoutMs: Math.round((timeoutSecs ?? config.timeout_secs) * 1000),
  cliVersion
})

const hostPart = (host: string) => (host.includes(":") && !host.startsWith("[") ? `[${host}]` : host)

/** The endpoint without the query (what error messages show). */
export const endpointOf = (o: Pick<ConnectOptions, "prefix" | "host" | "port">): string =>
  `${o.prefix}://${hostPart(o.host)}:${o.port}/v1/ws/cli`

export const urlOf = (o: Pick<ConnectOptions, "prefix" | "host" | "port" | "name">): string =>
  `${endpointOf(o)}?name=${encodeURIComponent(o.name)}`

const secondsText = (ms: number) => `${Number((ms / 1000).toFixed(3))}s`

export const timeoutError = (ms: number) =>
  new ClientError({ reason: "timeout", message: `no reply from bartos within ${secondsText(ms)}` })

// ---------------------------------------------------------------------------------------------
// Connection
// ---------------------------------------------------------------------------------------------

export type Answer = Exclude<Messages.CliResponse, { readonly _tag: "CliError" }>
export type NewRequest = Messages.CliRequest extends infer R ? R extends unknown ? Omit<R, "id"> : never : never

/** What the server may send once the protocol errors are handled. */
type Incoming = Exclude<Messages.ServerToCli, { readonly _tag: "ProtocolError" }>

export interface Connection {
  readonly hello: typeof Messages.ServerHelloCli.Type
  /** Sends one request and returns its answer; a `CliError` becomes a `ClientError` (`server`). */
  readonly request: (request: NewRequest) => Effect.Effect<Answer, ClientError>
  /**
   * Sends one request and hands every answer with its id to `onAnswer` until it returns true
   * (e.g. a `done` TailChunk). The first answer must come within the reply timeout; after that a
   * keepalive ping notices a dead server instead.
   */
  readonly follow: <E, R>(
    request: NewRequest,
    onAnswer: (answer: Answer) => Effect.Effect<boolean, E, R>
  ) => Effect.Effect<void, ClientError | E, R>
}

/** What the link said, in barto-cli's words (`barto-cli: <message>`). */
const fromLinkError = (endpoint: string, e: Link.LinkError): ClientError => {
  switch (e.reason) {
    case "Config":
      return new ClientError({ reason: "config", message: e.message })
    case "Open": {
      if (e.status === 401) return new ClientError({ reason: "unauthorized", message: "unauthorized (check api_key)" })
      if (e.status !== undefined) {
        return new ClientError({ reason: "connect", message: `cannot connect to ${endpoint}: HTTP ${e.status}` })
      }
      // A readable first line only: OpenSSL's messages carry internal dumps (`…:error:0A00045C:…`).
      const firstLine = e.message.split("\n")[0]!.trim()
      const code = e.code
      const detail =
        code !== undefined && firstLine !== "" && !firstLine.includes(code) && !/error:[0-9A-F]{8}/.test(firstLine)
          ? ` (${firstLine})`
          : ""
      return new ClientError({
        reason: "connect",
        message: `cannot connect to ${endpoint}: ${code ?? firstLine}${detail}`
      })
    }
    case "Closed":
      return new ClientError({ reason: "closed", message: closeText(e.closeCode ?? 1006, e.closeReason ?? "") })
    case "Write":
      return new ClientError({ reason: "closed", message: `cannot send to bartos: ${e.message}` })
    case "Protocol":
      return new ClientError({ reason: "protocol", message: `bartos ${e.message}` })
    case "Silent":
    case "Stalled":
      return new ClientError({ reason: "timeout", message: e.message })
  }
}

const closeText = (code: number, reason: string) =>
  `connection closed by bartos (code ${code}${reason === "" ? "" : `: ${reason}`})`

/**
 * Largest frame barto-cli accepts. bartos sends large answers in parts of about 256 KiB; one
 * part is bigger only when a single row is (a query cell up to `[limits] query_max_bytes`).
 */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024

/**
 * How much longer than bartos' statement time limit (announced in its hello) barto-cli waits
 * for an answer, so that bartos' own "the statement exceeded the time limit of N ms" reaches the
 * user rather than a client-side "no reply" racing it.
 */
export const STATEMENT_MARGIN_MS = 2_000

/**
 * Opens the link and completes the hello. Fails with `connect`, `unauthorized`, `protocol`,
 * `config` or `closed`; bounded by the reply timeout.
 */
export const connect = (o: ConnectOptions): Effect.Effect<Connection, ClientError, Scope.Scope | Link.Link> =>
  Effect.gen(function*() {
    const link = yield* Link.Link
    const codec = Codec.makeJson({ maxFrameBytes: MAX_ANSWER_BYTES })
    const endpoint = endpointOf(o)
    const conn = yield* link.connect({
      url: urlOf(o),
      headers: o.apiKey === undefined ? {} : { authorization: `Bearer ${o.apiKey}` },
      caCert: o.caCert,
      clientCert: o.clientCert,
      clientKey: o.clientKey,
      maxPayload: MAX_ANSWER_BYTES,
      openTimeoutMs: Math.max(1, o.timeoutMs),
      perMessageDeflate: false,
      codec,
      inbound: Messages.ServerToCli,
      outbound: Messages.CliToServer
    }).pipe(Effect.mapError((e) => fromLinkError(endpoint, e)))
    yield* Effect.logDebug(`connected to ${endpoint}`)

    const send = (message: Messages.CliToServer) =>
      conn.send(message).pipe(Effect.mapError((e) => fromLinkError(endpoint, e)))

    // One consumer of the link's stream for the whole connection; its end is kept for every
    // later read (a closed link stays closed).
    const pull = yield* Stream.toPull(conn.inbound)
    const buffered: Array<Link.Inbound<Messages.ServerToCli>> = []
    let ended: ClientError | undefined
    const nextItem: Effect.Effect<Link.Inbound<Messages.ServerToCli>, ClientError> = Effect.suspend(() => {
      if (ended !== undefined) return Effect.fail(ended)
      const item = buffered.shift()
      if (item !== undefined) return Effect.succeed(item)
      return pull.pipe(
        Effect.catchAll(Option.match({
          onNone: () => Effect.fail(new ClientError({ reason: "closed", message: "connection to bartos is closed" })),
          onSome: (e) => Effect.fail(fromLinkError(endpoint, e))
        })),
        Effect.tapError((e) => Effect.sync(() => (ended = e))),
        Effect.flatMap((chunk) => {
          buffered.push(...Chunk.toReadonlyArray(chunk))
          return nextItem
        })
      )
    })

    /** Next decoded message; undecodable and text frames are logged and skipped (D6). */
    const receive: Effect.Effect<Incoming, ClientError> = Effect.flatMap(nextItem, (item) => {
      if (item._tag === "Dropped") {
        return Effect.logWarning(`ignoring a frame from bartos (${item.code}): ${item.reason}`).pipe(
          Effect.zipRight(receive)
        )
      }
      const message = item.message
      if (message._tag === "ProtocolError") {
        return Effect.fail(
          new ClientError({
            reason: "protocol",
            message: `bartos reported a protocol error (${message.code}): ${message.message}`
          })
        )
      }
      return Effect.succeed(message)
    })

    yield* send({
      _tag: "CliHello",
      protocol: Messages.PROTOCOL_VERSION,
      cliVersion: o.cliVersion,
      ...(o.adminKey !== undefined ? { adminKey: o.adminKey } : {})
    })
    const first = yield* receive
    if (first._tag !== "ServerHelloCli") {
      return yield* new ClientError({
        reason: "protocol",
        message: `expected ServerHelloCli from bartos, got ${first._tag}`
      })
    }
    if (first.protocol !== Messages.PROTOCOL_VERSION) {
      return yield* new ClientError({
        reason: "protocol",
        message: `protocol version mismatch: bartos speaks ${first.protocol}, barto-cli ${Messages.PROTOCOL_VERSION}`
      })
    }
    yield* Effect.logDebug(`bartos ${first.serverVersion}, admin: ${first.admin}`)
    // A statement's own time limit on bartos must be what the user hears about: wait past it.
    const replyMsFor = (request: NewRequest) =>
      request._tag === "QueryRequest" && first.statementTimeoutMs !== undefined
        ? Math.max(o.timeoutMs, first.statementTimeoutMs + STATEMENT_MARGIN_MS)
        : o.timeoutMs

    let nextId = 1
    const submit = (request: NewRequest) =>
      Effect.suspend(() => {
        const id = nextId++
        return send({ ...request, id } as Messages.CliRequest).pipe(Effect.as(id))
      })

    /** Our answer, or undefined for anything else (hello repeats, pongs, other ids). */
    const answerOf = (id: number, message: Incoming): Effect.Effect<Answer | undefined, ClientError> => {
      if (message._tag === "ServerHelloCli" || message._tag === "Pong" || message.id !== id) {
        return Effect.succeed(undefined)
      }
      if (message._tag === "CliError") {
        return Effect.fail(
          new ClientError({ reason: "server", code: message.code, message: `${message.code}: ${message.message}` })
        )
      }
      return Effect.succeed(message as Answer)
    }

    /** The next answer to request `id`, skipping anything else. */
    const nextAnswer = (
      id: number,
      receiveNext: Effect.Effect<Incoming, ClientError>
    ): Effect.Effect<Answer, ClientError> =>
      Effect.flatMap(receiveNext, (message) => answerOf(id, message)).pipe(
        Effect.flatMap((answer) => (answer === undefined ? nextAnswer(id, receiveNext) : Effect.succeed(answer)))
      )

    const keepaliveMs = o.keepaliveMs ?? 5000
    let heartbeat = false
    // Pings while following; three periods of silence mean bartos (or the path) is gone.
    const startHeartbeat = Effect.suspend(() => {
      if (heartbeat) return Effect.void
      heartbeat = true
      return conn.heartbeat({
        intervalMs: keepaliveMs,
        ping: (id, nowMs) => ({ _tag: "Ping", id: id + 1, sentAt: Messages.Micros.make(nowMs * 1000) }),
        silenceMs: 3 * keepaliveMs,
        silentMessage: () => `bartos stopped answering (nothing for ${secondsText(3 * keepaliveMs)})`
      })
    })

    const connection: Connection = {
      hello: first,
      request: (request) =>
        Effect.gen(function*() {
          const id = yield* submit(request)
          // A large answer comes in parts (`more`): each must arrive within the reply timeout,
          // however long the whole takes.
          const part = nextAnswer(id, receive.pipe(withTimeout(replyMsFor(request))))
          return yield* Effect.iterate(
            { whole: yield* part, done: false },
            {
              while: (s) => !s.done && Messages.isPaged(s.whole) && s.whole.more === true,
              body: (s) =>
                Effect.map(part, (answer) => ({
                  whole: Messages.isPaged(s.whole) && Messages.isPaged(answer)
                    ? Messages.appendPart(s.whole, answer)
                    : answer,
                  done: !Messages.isPaged(answer) || answer.more !== true
                }))
            }
          ).pipe(Effect.map((s) => s.whole))
        }),
      follow: <E, R>(request: NewRequest, onAnswer: (answer: Answer) => Effect.Effect<boolean, E, R>) =>
        Effect.gen(function*() {
          const id = yield* submit(request)
          // A ping right behind the request: its pong proves bartos is alive even while it has
          // nothing to say yet (e.g. waiting for the next run to start).
          yield* startHeartbeat
          const early = yield* receive.pipe(withTimeout(replyMsFor(request)))
          const first = yield* answerOf(id, early)
          const handled = first === undefined ? false : yield* onAnswer(first)
          if (handled) return
          // Then every answer until onAnswer says the stream is over.
          yield* Stream.repeatEffect(nextAnswer(id, receive)).pipe(
            Stream.mapEffect(onAnswer),
            Stream.takeUntil((finished) => finished),
            Stream.runDrain
          )
        })
    }
    return connection
  }).pipe(
    // Opening and the hello are bounded by the reply timeout too (a server that accepts the
    // connection and never says hello must not hang the CLI).
    withTimeout(o.timeoutMs)
  )

const withTimeout = (ms: number) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.timeoutFail(effect, { duration: Duration.millis(ms), onTimeout: () => timeoutError(ms) })

/** Connects (through the `Link` in the context, else a real socket), lets `use` talk, closes. */
export const withConnection = <A, E, R>(
  o: ConnectOptions,
  use: (connection: Connection) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | ClientError, R> =>
  Effect.flatMap(Effect.serviceOption(Link.Link), (provided) =>
    Effect.scoped(Effect.flatMap(connect(o), use)).pipe(
      Effect.provideService(Link.Link, Option.getOrElse(provided, () => Link.Link.of({ connect: Link.connectWs })))
    ))
