/**
 * The HTTP side of bartos (D6, D7): Node `http`/`https` listeners and a `ws` server that takes
 * upgrades on `/v1/ws/worker` and `/v1/ws/cli`, after the bearer check and, under mTLS, after
 * binding the worker's certificate to its `name` and each certificate to its role (agent or
 * barto-cli, `CLI_CERT_OU`). Everything else is Effect: each connection is a
 * fiber in one `FiberSet` owned by the layer's scope, so shutdown closes every socket with 1001.
 *
 * Raw `ws` (not @effect/platform's bundled server) because we need `maxPayload`, request headers
 * and the TLS peer certificate (style §4.1).
 *
 * Frame size: `maxPayload` is 16 × `max_frame_bytes`. A frame above `max_frame_bytes` but below
 * that hard cap is received and answered with `ProtocolError{code:"frame_too_large"}` (the
 * connection stays); above the cap `ws` itself closes the connection with 1009 before we can
 * look at it, so a peer cannot make bartos buffer unbounded frames.
 */
import * as Envelope from "@barto/domain/Envelope"
import { Micros } from "@barto/domain/Messages"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as http from "node:http"
import * as https from "node:https"
import type * as net from "node:net"
import type * as tls from "node:tls"
import { type WebSocket, WebSocketServer } from "ws"
import * as CliSession from "./CliSession.js"
import * as Forwarded from "./internal/forwarded.js"
import { MAX_NAME_LENGTH, validName } from "./internal/scheduleTable.js"
import { Metrics } from "./Metrics.js"
import { ServerInfo, type ServerInfoShape } from "./ServerInfo.js"
import * as Web from "./Web.js"
import * as WorkerSession from "./WorkerSession.js"

export class HubError extends Data.TaggedError("HubError")<{ readonly message: string; readonly cause?: unknown }> {}

export interface TlsOptions {
  readonly host: string
  readonly port: number
  /** PEM contents (not paths). */
  readonly cert: string
  readonly key: string
  /** PEM of the CA that client certificates must chain to: turns on mTLS. */
  readonly clientCa?: string | undefined
}

export interface Options {
  readonly serverVersion: string
  /** The plain listener; absent when TLS is configured without `allow_plaintext`. */
  readonly plain?: { readonly host: string; readonly port: number } | undefined
  readonly tls?: TlsOptions | undefined
  readonly apiKey?: Redacted.Redacted<string> | undefined
  readonly adminKey?: Redacted.Redacted<string> | undefined
  /** `GET /metrics` needs `Authorization: Bearer <token>` when set (`metrics_token`). */
  readonly metricsToken?: Redacted.Redacted<string> | undefined
  readonly hmacKey?: Uint8Array | undefined
  readonly signingKey?: Envelope.SigningKey | undefined
  readonly maxFrameBytes: number
  readonly livenessMs: number
  readonly queryRowCap: number
  readonly queryMaxBytes: number
  readonly queryTimeoutMs: number
  /** `query` needs the admin role (default: on exactly when an admin key is set). */
  readonly queryRequiresAdmin?: boolean
  readonly maxAnswerBytes: number
  readonly helloTimeoutMs?: number
  readonly replayWindowSecs?: number
  readonly maxBadFrames?: number
  /** CLI keepalive ping interval; default: the liveness timeout. */
  readonly cliKeepaliveMs?: number
  /** CLI backpressure (`CliSession.Options`): send buffer and stall time before a CLI is dropped. */
  readonly cliSendBufferBytes?: number
  readonly cliStallMs?: number
  /** How long shutdown waits for peers to answer the close handshake. */
  readonly shutdownGraceMs?: number
  /** `[actix] trusted_proxies`: whose `Forwarded` / `X-Forwarded-For` give the client address. */
  readonly trustedProxies?: ReadonlyArray<string> | undefined
  /** The web console and HTTP API (`Web.ts`); the API is served on every listener. */
  readonly web?: {
    readonly consoleEnabled: boolean
    readonly sessionTtlSecs: number
    readonly consoleDir?: string | undefined
  }
}

export interface Listener {
  readonly scheme: "ws" | "wss"
  readonly host: string
  readonly port: number
  readonly url: string
}

export interface HubShape {
  readonly listeners: ReadonlyArray<Listener>
}

export class Hub extends Context.Tag("@barto/server/Hub")<Hub, HubShape>() {}

export type Requirements = WorkerSession.Requirements | Exclude<CliSession.Requirements, ServerInfo>

/** Default lifetime of a console session (`[console] session_ttl`). */
export const WEB_SESSION_TTL_SECS = 12 * 3600

const STATUS_BODIES: Record<number, string> = {
  400: "bad request",
  401: "unauthorized",
  403: "forbidden",
  404: "not found",
  426: "upgrade required",
  500: "internal error",
  503: "shutting down"
}

/** Answers a refused upgrade on the raw socket (no WebSocket exists yet). */
const refuseUpgrade = (socket: net.Socket, status: number, body = STATUS_BODIES[status] ?? "") => {
  if (!socket.writable) return void socket.destroy()
  socket.once("finish", () => socket.destroy())
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ""}\r\nConnection: close\r\n` +
      `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  )
}

/** `Authorization: Bearer <key>`: exact scheme, one space, constant-time compare. */
export const bearerOk = (header: string | undefined, apiKey: Redacted.Redacted<string> | undefined): boolean => {
  if (apiKey === undefined) return true
  if (header === undefined || !header.startsWith("Bearer ")) return false
  const token = header.slice("Bearer ".length)
  return token.length > 0 && CliSession.secretEquals(token, Redacted.value(apiKey))
}

/** The identities a client certificate vouches for: its subject CN and its DNS SANs. */
export const certificateNames = (cert: tls.PeerCertificate | undefined): ReadonlyArray<string> => {
  if (cert === undefined || cert === null || Object.keys(cert).length === 0) return []
  const names: Array<string> = []
  const cn = cert.subject?.CN
  if (typeof cn === "string") names.push(cn)
  else if (Array.isArray(cn)) names.push(...(cn as Array<string>))
  for (const part of (cert.subjectaltname ?? "").split(",")) {
    const san = part.trim()
    if (san.startsWith("DNS:")) names.push(san.slice(4))
  }
  return names
}

/**
 * Under mTLS a client certificate carries a role: one whose subject has this organisational unit
 * is barto-cli's, any other one an agent's. The CLI link takes only the former, the worker link
 * only the latter, so that an agent's certificate (found on every agent host) never opens the
 * operator link, and an operator's certificate never poses as an agent.
 */
export const CLI_CERT_OU = "barto-cli"

/** The subject OUs of a client certificate. */
export const certificateOus = (cert: tls.PeerCertificate | undefined): ReadonlyArray<string> => {
  if (cert === undefined || cert === null || Object.keys(cert).length === 0) return []
  const ou = cert.subject?.OU as unknown
  return typeof ou === "string" ? [ou] : Array.isArray(ou) ? ou.filter((x): x is string => typeof x === "string") : []
}

const peerIp = (socket: net.Socket): string => {
  const ip = socket.remoteAddress ?? "unknown"
  return ip.startsWith("::ffff:") ? ip.slice(7) : ip
}

const urlHost = (host: string) => (host.includes(":") ? `[${host}]` : host)

const listen = (server: http.Server, host: string, port: number) =>
  Effect.async<number, HubError>((resume) => {
    const onError = (error: Error) =>
      resume(Effect.fail(new HubError({ message: `cannot listen on ${host}:${port}: ${error.message}`, cause: error })))
    server.once("error", onError)
    server.listen(port, host, () => {
      server.off("error", onError)
      const address = server.address()
      resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : port))
    })
  })

export const make = (options: Options) =>
  Effect.gen(function*() {
    const metrics = yield* Metrics
    const startedAt = Micros.make((yield* Clock.currentTimeMillis) * 1000)
    const ready = yield* Deferred.make<ServerInfoShape>()
    const connections = yield* FiberSet.make()
    const fork = yield* FiberSet.runtime(connections)<Requirements>()
    const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * options.maxFrameBytes, clientTracking: true })
    // bartos' session nonce of each worker upgrade, sent in the 101 response.
    const serverNonces = new WeakMap<http.IncomingMessage, Envelope.SessionNonce>()
    wss.on("headers", (headers: Array<string>, req: http.IncomingMessage) => {
      const nonce = serverNonces.get(req)
      if (nonce !== undefined) headers.push(`${Envelope.NONCE_HEADER}: ${Envelope.formatSessionNonce(nonce)}`)
    })
    let shuttingDown = false

    const workerOptions: WorkerSession.Options = {
      serverVersion: options.serverVersion,
      hmacKey: options.hmacKey,
      signingKey: options.signingKey,
      maxFrameBytes: options.maxFrameBytes,
      livenessMs: options.livenessMs,
      helloTimeoutMs: options.helloTimeoutMs ?? WorkerSession.defaults.helloTimeoutMs,
      replayWindowSecs: options.replayWindowSecs ?? WorkerSession.defaults.replayWindowSecs,
      maxBadFrames: options.maxBadFrames ?? WorkerSession.defaults.maxBadFrames
    }
    const workers = yield* WorkerSession.make(workerOptions)
    const cliOptions: CliSession.Options = {
      serverVersion: options.serverVersion,
      adminKey: options.adminKey,
      queryRequiresAdmin: options.queryRequiresAdmin ?? options.adminKey !== undefined,
      maxFrameBytes: options.maxFrameBytes,
      helloTimeoutMs: workerOptions.helloTimeoutMs,
      maxBadFrames: workerOptions.maxBadFrames,
      keepaliveMs: options.cliKeepaliveMs ?? Math.max(options.livenessMs, 1000),
      ...(options.cliSendBufferBytes !== undefined ? { sendBufferBytes: options.cliSendBufferBytes } : {}),
      ...(options.cliStallMs !== undefined ? { stallMs: options.cliStallMs } : {})
    }

    const clientAddress = Forwarded.make(options.trustedProxies ?? [])
    const web = yield* Web.make({
      clientAddress,
      apiKey: options.apiKey,
      adminKey: options.adminKey,
      consoleEnabled: options.web?.consoleEnabled ?? true,
      sessionTtlSecs: options.web?.sessionTtlSecs ?? WEB_SESSION_TTL_SECS,
      consoleDir: options.web?.consoleDir,
      serverInfo: Deferred.await(ready)
    })

    const onUpgrade = (secure: boolean) => (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      socket.on("error", () => {})
      let who = "a connection"
      const refuse = (status: number, body?: string) => {
        metrics.unsafeAdd("bartos_http_rejected_total", 1, { status: String(status) })
        // An operator must be able to see why an agent never shows up (bad key, wrong certificate).
        if (status !== 503) {
          const log = status === 404 ? Effect.logDebug : Effect.logWarning
          fork(log(`refused ${who} from ${peerIp(socket)}: HTTP ${status} ${body ?? STATUS_BODIES[status] ?? ""}`))
        }
        refuseUpgrade(socket, status, body)
      }
      if (shuttingDown) return refuse(503)
      let url: URL
      try {
        url = new URL(req.url ?? "/", "http://bartos")
      } catch {
        return refuse(404)
      }
      const link = url.pathname === "/v1/ws/worker" ? "worker" : url.pathname === "/v1/ws/cli" ? "cli" : undefined
      if (link === undefined || req.method !== "GET") return refuse(404)
      const name = url.searchParams.get("name") || "Unknown"
      who = `${link} connection '${name.slice(0, 100)}'`
      if (!bearerOk(req.headers.authorization, options.apiKey)) return refuse(401)
      // Names are keys in the database (VARCHAR(255)) and in logs: refuse what cannot be stored
      // rather than accept records that could never be acknowledged.
      if (!validName(name)) return refuse(400, `bad request: invalid name (1..${MAX_NAME_LENGTH} printable characters)`)
      if (secure && options.tls?.clientCa !== undefined) {
        const cert = (socket as tls.TLSSocket).getPeerCertificate()
        const cliRole = certificateOus(cert).includes(CLI_CERT_OU)
        if (link === "cli" && !cliRole) {
          return refuse(403, `forbidden: the CLI link takes only barto-cli certificates (OU=${CLI_CERT_OU})`)
        }
        if (link === "worker" && cliRole) {
          return refuse(403, `forbidden: a barto-cli certificate (OU=${CLI_CERT_OU}) cannot connect as an agent`)
        }
        if (link === "worker" && !certificateNames(cert).includes(name)) {
          return refuse(403, `forbidden: the client certificate is not issued to '${name}'`)
        }
      }
      const ip = clientAddress(peerIp(socket), req.headers)
      let nonces: {
        readonly agentNonce: Envelope.SessionNonce | undefined
        readonly serverNonce: Envelope.SessionNonce
      } | undefined
      if (link === "worker") {
        // Both sides' session nonces are bound into every sealed frame (see Envelope.ts). With a
        // key configured an agent must send one; without keys nothing is sealed and it is unused.
        const agentNonce = Envelope.parseSessionNonce(req.headers[Envelope.NONCE_HEADER])
        if (agentNonce === undefined && (options.hmacKey !== undefined || options.signingKey !== undefined)) {
          return refuse(
            400,
            `bad request: missing or malformed ${Envelope.NONCE_HEADER} (32 hex digits); is bartoc older than bartos?`
          )
        }
        nonces = { agentNonce, serverNonce: Envelope.makeSessionNonce() }
        serverNonces.set(req, nonces.serverNonce)
      }
      wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        if (nonces !== undefined) return workers.accept(ws, { agent: name, ip, ...nonces })
        fork(
          Deferred.await(ready).pipe(
            Effect.flatMap((info) =>
              Effect.provideService(CliSession.run(ws, { name, ip }, cliOptions), ServerInfo, info)
            )
          )
        )
      })
    }

    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
      const pathname = (req.url ?? "/").split("?")[0]
      const reply = (status: number, body: string, type = "text/plain; charset=utf-8") => {
        if (status >= 400) metrics.unsafeAdd("bartos_http_rejected_total", 1, { status: String(status) })
        res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(body) })
        res.end(body)
      }
      if (req.method === "GET" && pathname === "/healthz") return reply(200, "ok")
      if (!shuttingDown && web(req, res)) return
      if (req.method === "GET" && pathname === "/metrics") {
        if (options.metricsToken !== undefined && !bearerOk(req.headers.authorization, options.metricsToken)) {
          res.setHeader("WWW-Authenticate", "Bearer")
          return reply(401, STATUS_BODIES[401] ?? "unauthorized")
        }
        return reply(200, Effect.runSync(metrics.render), "text/plain; version=0.0.4; charset=utf-8")
      }
      if (pathname === "/v1/ws/worker" || pathname === "/v1/ws/cli") return reply(426, STATUS_BODIES[426]!)
      return reply(404, STATUS_BODIES[404]!)
    }

    /** Node callbacks must not throw (it would end the process): a defect is logged and answered 500. */
    const guard =
      <Args extends Array<any>>(what: string, f: (...args: Args) => void, answer: (...args: Args) => void) =>
      (...args: Args) => {
        try {
          f(...args)
        } catch (cause) {
          fork(Effect.logError(`defect while handling an HTTP ${what}`, cause))
          try {
            answer(...args)
          } catch {
            // Nothing more to say to this peer.
          }
        }
      }

    const servers: Array<{ server: http.Server; listener: Listener }> = []
    const start = (server: http.Server, scheme: "ws" | "wss", host: string, port: number) =>
      Effect.gen(function*() {
        server.on(
          "request",
          guard("request", onRequest, (_req, res) => {
            if (!res.headersSent) res.writeHead(500)
            res.end()
          })
        )
        server.on(
          "upgrade",
          guard("upgrade", onUpgrade(scheme === "wss"), (_req, socket) => refuseUpgrade(socket, 500))
        )
        server.on("clientError", (_err, socket) => socket.destroy())
        const bound = yield* listen(server, host, port)
        servers.push({ server, listener: { scheme, host, port: bound, url: `${scheme}://${urlHost(host)}:${bound}` } })
      })

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        shuttingDown = true
        for (const { server } of servers) server.close()
        // Worker sessions close with 1001 once the frame in hand is done (an ingest transaction
        // in flight completes and is acked); interrupting the CLI sessions closes theirs.
        yield* workers.shutdown
        yield* FiberSet.clear(connections)
        yield* Effect.async<void>((resume) => {
          if (wss.clients.size === 0) return resume(Effect.void)
          let left = wss.clients.size
          for (const ws of wss.clients) {
            ws.once("close", () => {
              if (--left === 0) resume(Effect.void)
            })
          }
        }).pipe(Effect.timeout(options.shutdownGraceMs ?? 2000), Effect.ignore)
        for (const ws of wss.clients) ws.terminate()
        for (const { server } of servers) server.closeAllConnections()
        yield* Effect.sync(() => wss.close())
      })
    )

    if (options.plain !== undefined) {
      yield* start(http.createServer(), "ws", options.plain.host, options.plain.port)
    }
    if (options.tls !== undefined) {
      const t = options.tls
      const server = yield* Effect.try({
        try: () =>
          https.createServer({
            cert: t.cert,
            key: t.key,
            ...(t.clientCa !== undefined ? { ca: t.clientCa, requestCert: true, rejectUnauthorized: true } : {})
          }),
        catch: (e) => new HubError({ message: `invalid TLS certificate or key: ${String(e)}`, cause: e })
      })
      // Refused handshakes (no or untrusted client certificate) never reach us as requests.
      server.on("tlsClientError", (error, socket) => {
        metrics.unsafeAdd("bartos_http_rejected_total", 1, { status: "tls" })
        fork(Effect.logWarning(`refused a TLS handshake from ${peerIp(socket)}: ${error.message}`))
      })
      yield* start(server, "wss", t.host, t.port)
    }
    if (servers.length === 0) {
      return yield* new HubError({ message: "no listener: TLS is not configured and the plain listener is off" })
    }
    const listeners = servers.map((s) => s.listener)
    const info: ServerInfoShape = {
      version: options.serverVersion,
      startedAt,
      listeners: listeners.map((l) => l.url),
      queryRowCap: options.queryRowCap,
      queryMaxBytes: options.queryMaxBytes,
      queryTimeoutMs: options.queryTimeoutMs,
      maxAnswerBytes: options.maxAnswerBytes
    }
    yield* Deferred.succeed(ready, info)
    return { hub: { listeners } satisfies HubShape, info }
  })

export const layer = (options: Options): Layer.Layer<Hub | ServerInfo, HubError, Requirements> =>
  Layer.scopedContext(
    make(options).pipe(Effect.map(({ hub, info }) => Context.make(Hub, hub).pipe(Context.add(ServerInfo, info))))
  )
