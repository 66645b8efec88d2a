/**
 * The CLI link (D6, D10): one WebSocket to `{prefix}://{host}:{port}/v1/ws/cli?name=<name>`
 * (Bearer `api_key`, pinned `ca_cert`, mTLS `client_cert`/`client_key`), `CliHello` →
 * `ServerHelloCli`, then requests carrying an `id` and the responses echoing it.
 *
 * Failures are `ClientError`s with the message the user sees (`barto-cli: <message>`, exit 1).
 * Every connection is scoped: the socket is closed (and waited for, briefly) when the scope ends,
 * so a finished command never keeps the process alive.
 */
import * as Codec from "@barto/domain/Codec"
import type * as Config from "@barto/domain/Config"
import * as Messages from "@barto/domain/Messages"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs/promises"
import WebSocket from "ws"

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

type Inbound =
  | { readonly _tag: "Frame"; readonly data: Uint8Array }
  | { readonly _tag: "Text" }
  | { readonly _tag: "Closed"; readonly code: number; readonly reason: string }

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

const describeConnectError = (endpoint: string, error: unknown): ClientError => {
  const e = error as { code?: unknown; message?: unknown; errors?: ReadonlyArray<{ code?: unknown }> }
  const message = typeof e.message === "string" ? e.message : String(error)
  const status = /Unexpected server response: (\d+)/.exec(message)
  if (status !== null) {
    return status[1] === "401"
      ? new ClientError({ reason: "unauthorized", message: "unauthorized (check api_key)" })
      : new ClientError({ reason: "connect", message: `cannot connect to ${endpoint}: HTTP ${status[1]}` })
  }
  const code = typeof e.code === "string"
    ? e.code
    : typeof e.errors?.[0]?.code === "string"
    ? e.errors[0].code
    : undefined
  // A readable first line only: OpenSSL's messages carry internal dumps (`…:error:0A00045C:…`).
  const firstLine = message.split("\n")[0]!.trim()
  const detail = code !== undefined && firstLine !== "" && !firstLine.includes(code) && !/error:[0-9A-F]{8}/.test(firstLine)
    ? ` (${firstLine})`
    : ""
  return new ClientError({
    reason: "connect",
    message: `cannot connect to ${endpoint}: ${code ?? firstLine}${detail}`
  })
}

const readPem = (what: string, path: string | undefined) =>
  path === undefined
    ? Effect.succeed(undefined)
    : Effect.tryPromise({
      try: () => fs.readFile(path),
      catch: (e) => new ClientError({ reason: "config", message: `cannot read ${what} ${path}: ${(e as Error).message}` })
    })

const closeText = (code: number, reason: string) =>
  `connection closed by bartos (code ${code}${reason === "" ? "" : `: ${reason}`})`

/**
 * Opens the socket and completes the hello. Fails with `connect`, `unauthorized`, `protocol` or
 * `closed`; the caller bounds it with the reply timeout.
 */
/**
 * Largest frame barto-cli accepts. bartos sends large answers in parts of about 256 KiB; one
 * part is bigger only when a single row is (a query cell up to `[limits] query_max_bytes`).
 */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024

export const connect = (o: ConnectOptions): Effect.Effect<Connection, ClientError, Scope.Scope> =>
  Effect.gen(function*() {
    const codec = Codec.makeJson({ maxFrameBytes: MAX_ANSWER_BYTES })
    const endpoint = endpointOf(o)
    const ca = yield* readPem("ca_cert", o.caCert)
    const cert = yield* readPem("client_cert", o.clientCert)
    const key = yield* readPem("client_key", o.clientKey)
    const inbox = yield* Queue.unbounded<Inbound>()

    const ws = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const socket = new WebSocket(urlOf(o), {
          headers: o.apiKey === undefined ? {} : { authorization: `Bearer ${o.apiKey}` },
          ...(ca !== undefined ? { ca } : {}),
          ...(cert !== undefined ? { cert } : {}),
          ...(key !== undefined ? { key } : {}),
          handshakeTimeout: Math.max(1, o.timeoutMs),
          maxPayload: MAX_ANSWER_BYTES,
          perMessageDeflate: false
        })
        // Pushed synchronously, drained by one fiber: the order of frames is kept.
        socket.on("message", (data, isBinary) => {
          if (!isBinary) {
            inbox.unsafeOffer({ _tag: "Text" })
            return
          }
          const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)
          inbox.unsafeOffer({ _tag: "Frame", data: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) })
        })
        socket.on("close", (code, reason) => {
          inbox.unsafeOffer({ _tag: "Closed", code, reason: reason.toString("utf8") })
        })
        return socket
      }),
      (socket) =>
        Effect.async<void>((resume) => {
          if (socket.readyState === WebSocket.CLOSED) return resume(Effect.void)
          const done = () => {
            clearTimeout(timer)
            resume(Effect.void)
          }
          // A clean close first; a server that does not answer it within 500 ms is cut off.
          const timer = setTimeout(() => {
            socket.terminate()
            resume(Effect.void)
          }, 500)
          socket.once("close", done)
          if (socket.readyState === WebSocket.OPEN) socket.close(1000, "bye")
          else socket.terminate()
        })
    )

    // Open (or fail). The error listener stays for the life of the socket: `ws` emits an error on
    // e.g. a reset, and an EventEmitter error without a listener would crash the process.
    yield* Effect.async<void, ClientError>((resume) => {
      let settled = false
      const onOpen = () => {
        if (settled) return
        settled = true
        resume(Effect.void)
      }
      const onError = (error: Error) => {
        if (settled) return
        settled = true
        resume(Effect.fail(describeConnectError(endpoint, error)))
      }
      ws.once("open", onOpen)
      ws.on("error", onError)
      return Effect.sync(() => {
        ws.off("open", onOpen)
      })
    })
    // Later errors (a reset…) also end in a close event, which `receive` reports; this listener
    // only keeps an unhandled EventEmitter error from crashing the process.
    ws.on("error", () => {})
    yield* Effect.logDebug(`connected to ${endpoint}`)

    const send = (message: Messages.CliToServer) =>
      Effect.async<void, ClientError>((resume) => {
        if (ws.readyState !== WebSocket.OPEN) {
          resume(Effect.fail(new ClientError({ reason: "closed", message: "connection to bartos is closed" })))
          return
        }
        ws.send(codec.encode(Messages.CliToServer, message), { binary: true }, (err) =>
          resume(
            err === undefined || err === null
              ? Effect.void
              : Effect.fail(new ClientError({ reason: "closed", message: `cannot send to bartos: ${err.message}` }))
          ))
      })

    /** Next decoded message; undecodable and text frames are logged and skipped (D6). */
    const receive: Effect.Effect<Incoming, ClientError> = Effect.gen(function*() {
      while (true) {
        const item = yield* Queue.take(inbox)
        switch (item._tag) {
          case "Closed":
            // Keep it for anyone reading after us.
            yield* Queue.offer(inbox, item)
            return yield* new ClientError({ reason: "closed", message: closeText(item.code, item.reason) })
          case "Text":
            yield* Effect.logWarning("ignoring a text frame from bartos")
            continue
          case "Frame": {
            const decoded = codec.decode(Messages.ServerToCli, item.data)
            if (Either.isLeft(decoded)) {
              yield* Effect.logWarning(`ignoring a frame from bartos (${decoded.left.code}): ${decoded.left.message}`)
              continue
            }
            const message = decoded.right
            if (message._tag === "ProtocolError") {
              return yield* new ClientError({
                reason: "protocol",
                message: `bartos reported a protocol error (${message.code}): ${message.message}`
              })
            }
            return message
          }
        }
      }
    })

    yield* send({
      _tag: "CliHello",
      protocol: Messages.PROTOCOL_VERSION,
      cliVersion: o.cliVersion,
      ...(o.adminKey !== undefined ? { adminKey: o.adminKey } : {})
    })
    const first = yield* receive
    if (first._tag !== "ServerHelloCli") {
      return yield* new ClientError({ reason: "protocol", message: `expected ServerHelloCli from bartos, got ${first._tag}` })
    }
    if (first.protocol !== Messages.PROTOCOL_VERSION) {
      return yield* new ClientError({
        reason: "protocol",
        message: `protocol version mismatch: bartos speaks ${first.protocol}, barto-cli ${Messages.PROTOCOL_VERSION}`
      })
    }
    yield* Effect.logDebug(`bartos ${first.serverVersion}, admin: ${first.admin}`)

    let nextId = 1
    let nextPing = 1
    const submit = (request: NewRequest) =>
      Effect.suspend(() => {
        const id = nextId++
        return send({ ...request, id } as Messages.CliRequest).pipe(Effect.as(id))
      })
    const ping = Effect.suspend(() =>
      send({ _tag: "Ping", id: nextPing++, sentAt: Messages.Micros.make(Date.now() * 1000) })
    )

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

    const connection: Connection = {
      hello: first,
      request: (request) =>
        Effect.gen(function*() {
          const id = yield* submit(request)
          // A large answer comes in parts (`more`): each must arrive within the reply timeout,
          // however long the whole takes.
          let whole: Answer | undefined
          while (true) {
            const answer = yield* answerOf(id, yield* receive.pipe(withTimeout(o.timeoutMs)))
            if (answer === undefined) continue
            whole = whole !== undefined && Messages.isPaged(whole) && Messages.isPaged(answer)
              ? Messages.appendPart(whole, answer)
              : answer
            if (!Messages.isPaged(answer) || answer.more !== true) return whole
          }
        }),
      follow: <E, R>(request: NewRequest, onAnswer: (answer: Answer) => Effect.Effect<boolean, E, R>) =>
        Effect.gen(function*() {
          const id = yield* submit(request)
          // A ping right behind the request: its pong proves bartos is alive even while it has
          // nothing to say yet (e.g. waiting for the next run to start).
          yield* ping
          const early = yield* receive.pipe(withTimeout(o.timeoutMs))
          let lastHeard = Date.now()
          const keepaliveMs = o.keepaliveMs ?? 5000
          // Pings while following; three periods of silence mean bartos (or the path) is gone.
          let silent = false
          yield* Effect.gen(function*() {
            while (true) {
              yield* Effect.sleep(Duration.millis(keepaliveMs))
              if (Date.now() - lastHeard > 3 * keepaliveMs) {
                silent = true
                ws.terminate()
                return
              }
              yield* Effect.ignore(ping)
            }
          }).pipe(Effect.forkScoped)
          let message = early
          while (true) {
            lastHeard = Date.now()
            const answer = yield* answerOf(id, message)
            if (answer !== undefined && (yield* onAnswer(answer))) return
            message = yield* receive.pipe(
              Effect.mapError((e) =>
                silent
                  ? new ClientError({
                    reason: "timeout",
                    message: `bartos stopped answering (nothing for ${secondsText(3 * keepaliveMs)})`
                  })
                  : e
              )
            )
          }
        }).pipe(Effect.scoped)
    }
    return connection
  }).pipe(
    // Opening and the hello are bounded by the reply timeout too (a server that accepts the
    // connection and never says hello must not hang the CLI).
    withTimeout(o.timeoutMs)
  )

const withTimeout = (ms: number) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.timeoutFail(effect, { duration: Duration.millis(ms), onTimeout: () => timeoutError(ms) })

/** Connects, lets `use` talk, closes. */
export const withConnection = <A, E, R>(
  o: ConnectOptions,
  use: (connection: Connection) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | ClientError, R> => Effect.scoped(Effect.flatMap(connect(o), use))
