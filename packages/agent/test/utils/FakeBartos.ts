/**
 * A small stand-in for bartos' worker endpoint, for the agent's Connection and Program tests: a
 * real `ws` WebSocketServer on 127.0.0.1 port 0 that speaks the real Codec and Envelope. It
 * records every connection and every decoded frame, and lets a test wait on conditions (never on
 * fixed sleeps).
 */
import * as Codec from "@barto/domain/Codec"
import * as Envelope from "@barto/domain/Envelope"
import * as Ids from "@barto/domain/Ids"
import {
  AgentToServer,
  type AgentToServer as AgentToServerType,
  type Micros,
  PROTOCOL_VERSION,
  ServerMessage,
  type ServerMessage as ServerMessageType
} from "@barto/domain/Messages"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Scope from "effect/Scope"
import type { IncomingMessage } from "node:http"
import * as Https from "node:https"
import type { AddressInfo } from "node:net"
import { type WebSocket, WebSocketServer } from "ws"

const codec = Codec.makeJson()

export interface Options {
  /** Required Bearer token; a missing or wrong one gets 401. */
  readonly apiKey?: string
  /** Frames to the agent are HMAC-wrapped, and frames from it must be. */
  readonly hmacKey?: string
  /** Frames to the agent are signed. */
  readonly signingKey?: Envelope.SigningKey
  /** Answer AgentHello with ServerHello automatically (default true). */
  readonly autoHello?: boolean
  /** `ackedUpTo` of the automatic ServerHello, per connection number (1-based); default -1. */
  readonly ackedUpTo?: (connection: number) => number
  /** Answer Ping with Pong (default true). */
  readonly autoPong?: boolean
  /** Listen with TLS (wss); with `ca`, clients must present a certificate chaining to it (mTLS). */
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca?: string }
  /** Send no session nonce in the upgrade, as a bartos from before session binding. */
  readonly noNonce?: boolean
}

export interface FakeConn {
  readonly number: number
  readonly request: IncomingMessage
  /** The agent name (`?name=`) and both session nonces of this connection (see Envelope.ts). */
  readonly agent: string
  readonly agentNonce: Envelope.SessionNonce | undefined
  readonly serverNonce: Envelope.SessionNonce
  readonly received: Array<AgentToServerType>
  /** Every frame written to the agent, as written (to replay elsewhere). */
  readonly sent: Array<Uint8Array>
  /** Frames from the agent that did not open or decode. */
  readonly badFrames: Array<string>
  closed: { readonly code: number; readonly reason: string } | undefined
  readonly send: (message: ServerMessageType) => Effect.Effect<void>
  readonly sendRaw: (bytes: Uint8Array) => Effect.Effect<void>
  /**
   * The bytes `send` would put on the wire next: sealed for this connection with the next
   * counter, which this takes (write them with `sendRaw`, or the counters part ways).
   */
  readonly seal: (message: ServerMessageType) => Uint8Array
  /** `seal` for any payload bytes (valid JSON or not). */
  readonly sealPayload: (payload: Uint8Array) => Uint8Array
  /** The first received message satisfying `pred` (waits for it). */
  readonly waitFor: <A extends AgentToServerType>(
    pred: (m: AgentToServerType) => m is A,
    what?: string
  ) => Effect.Effect<A>
  readonly waitUntil: (check: () => boolean, what?: string) => Effect.Effect<void>
  readonly waitClosed: Effect.Effect<{ readonly code: number; readonly reason: string }>
  readonly close: (code?: number, reason?: string) => Effect.Effect<void>
  /** Drops the TCP connection without a close frame (the agent sees 1006). */
  readonly terminate: Effect.Effect<void>
}

export interface FakeBartos {
  readonly port: number
  readonly connections: Array<FakeConn>
  /** Waits until connection number `n` (1-based) has been accepted. */
  readonly connection: (n: number) => Effect.Effect<FakeConn>
  readonly rejected: Array<{ readonly status: number; readonly authorization: string | undefined }>
  /** Stops listening (existing connections are terminated). */
  readonly stop: Effect.Effect<void>
}

export const isTag =
  <T extends AgentToServerType["_tag"]>(tag: T) =>
  (m: AgentToServerType): m is Extract<AgentToServerType, { _tag: T }> => m._tag === tag

/** Resolves when `check` returns a value, re-checking on every change notification. */
const until = <A>(listeners: Set<() => void>, check: () => A | undefined): Effect.Effect<A> =>
  Effect.async<A>((resume) => {
    const first = check()
    if (first !== undefined) return resume(Effect.succeed(first))
    const listener = () => {
      const value = check()
      if (value !== undefined) {
        listeners.delete(listener)
        resume(Effect.succeed(value))
      }
    }
    listeners.add(listener)
    return Effect.sync(() => listeners.delete(listener))
  })

/** Fails the test with `what` instead of hanging until vitest's timeout. */
export const within = <A, E, R>(ms: number, what: string) => (self: Effect.Effect<A, E, R>) =>
  self.pipe(
    Effect.timeoutFail({ duration: ms, onTimeout: () => new Error(`timed out waiting for ${what}`) }),
    Effect.orDie
  )

export const make = (options: Options = {}): Effect.Effect<FakeBartos, never, Scope.Scope> =>
  Effect.gen(function*() {
    const hmacKey = options.hmacKey === undefined ? undefined : Envelope.hmacKeyFromString(options.hmacKey)
    const listeners = new Set<() => void>()
    const notify = () => {
      for (const l of [...listeners]) l()
    }
    const connections: Array<FakeConn> = []
    const rejected: Array<{ status: number; authorization: string | undefined }> = []

    const tls = options.tls
    const https = tls === undefined ? undefined : Https.createServer({
      cert: tls.cert,
      key: tls.key,
      ...(tls.ca === undefined ? {} : { ca: tls.ca, requestCert: true, rejectUnauthorized: true })
    })
    /** Stops the ws server and, with TLS, the https server under it. */
    const shutdown = (server: WebSocketServer) =>
      Effect.async<void>((resume) => {
        for (const client of server.clients) client.terminate()
        server.close(() => {
          if (https === undefined || !https.listening) return resume(Effect.void)
          https.closeAllConnections()
          https.close(() => resume(Effect.void))
        })
      })
    const wss = yield* Effect.acquireRelease(
      Effect.async<WebSocketServer>((resume) => {
        const server = new WebSocketServer({
          ...(https === undefined ? { host: "127.0.0.1", port: 0 } : { server: https }),
          verifyClient: (info, cb) => {
            const authorization = info.req.headers.authorization
            if (options.apiKey !== undefined && authorization !== `Bearer ${options.apiKey}`) {
              rejected.push({ status: 401, authorization })
              notify()
              return cb(false, 401, "Unauthorized")
            }
            cb(true)
          }
        })
        if (https === undefined) server.on("listening", () => resume(Effect.succeed(server)))
        else https.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      shutdown
    )

    // Our session nonce per upgrade, sent in the 101 response as bartos does.
    const serverNonces = new WeakMap<IncomingMessage, Envelope.SessionNonce>()
    wss.on("headers", (headers: Array<string>, request: IncomingMessage) => {
      const nonce = Envelope.makeSessionNonce()
      serverNonces.set(request, nonce)
      if (options.noNonce !== true) headers.push(`${Envelope.NONCE_HEADER}: ${Envelope.formatSessionNonce(nonce)}`)
    })

    wss.on("connection", (ws: WebSocket, request: IncomingMessage) => {
      const number = connections.length + 1
      const nonces = Envelope.makeNonceCache()
      const agent = new URL(request.url ?? "/", "http://fake").searchParams.get("name") ?? ""
      const agentNonce = Envelope.parseSessionNonce(request.headers[Envelope.NONCE_HEADER])
      const serverNonce = serverNonces.get(request)!
      let sealed = 0n
      let opened = 0n
      const binding = (sender: "server" | "agent"): Envelope.Binding | undefined =>
        agentNonce === undefined || options.noNonce === true
          ? undefined
          : { sender, agent, agentNonce, serverNonce, counter: sender === "server" ? sealed : opened }
      const sealPayload = (payload: Uint8Array) => {
        const frame = Envelope.seal(
          { hmacKey, signingKey: options.signingKey },
          payload,
          Date.now() / 1000,
          binding("server")
        )
        sealed++
        return frame
      }
      const seal = (message: ServerMessageType) => sealPayload(codec.encode(ServerMessage, message))
      const sendRaw = (bytes: Uint8Array) =>
        Effect.sync(() => {
          if (ws.readyState === ws.OPEN) {
            conn.sent.push(bytes)
            ws.send(bytes, { binary: true })
          }
        })
      const conn: FakeConn = {
        number,
        request,
        agent,
        agentNonce,
        serverNonce,
        received: [],
        sent: [],
        badFrames: [],
        closed: undefined,
        seal,
        sealPayload,
        send: (message) => Effect.suspend(() => sendRaw(seal(message))),
        sendRaw,
        waitFor: (pred, what) =>
          until(listeners, () => conn.received.find(pred)).pipe(
            within(25_000, what ?? `a message on connection ${number}`)
          ) as any,
        waitUntil: (check, what) =>
          until(listeners, () => (check() ? true : undefined)).pipe(
            Effect.asVoid,
            within(25_000, what ?? `a condition on connection ${number}`)
          ),
        waitClosed: until(listeners, () => conn.closed).pipe(within(25_000, `connection ${number} to close`)),
        close: (code = 1000, reason = "") => Effect.sync(() => ws.close(code, reason)),
        terminate: Effect.sync(() => ws.terminate())
      }
      ws.on("message", (data: Buffer, isBinary: boolean) => {
        let bytes: Uint8Array = new Uint8Array(data)
        if (!isBinary) {
          conn.badFrames.push("text frame")
          return notify()
        }
        if (hmacKey !== undefined) {
          const open = Envelope.open({ hmacKey, windowSecs: 60, nonces }, bytes, Date.now() / 1000, binding("agent"))
          if (Either.isLeft(open)) {
            conn.badFrames.push(open.left.message)
            return notify()
          }
          opened++
          bytes = open.right
        }
        const decoded = codec.decode(AgentToServer, bytes)
        if (Either.isLeft(decoded)) {
          conn.badFrames.push(decoded.left.message)
          return notify()
        }
        const message = decoded.right
        conn.received.push(message)
        if (message._tag === "AgentHello" && options.autoHello !== false) {
          Effect.runSync(conn.send({
            _tag: "ServerHello",
            protocol: PROTOCOL_VERSION,
            serverVersion: "fake-0",
            capabilities: [],
            sessionId: Ids.uuidv7(),
            ackedUpTo: options.ackedUpTo?.(number) ?? -1
          }))
        }
        if (message._tag === "Ping" && options.autoPong !== false) {
          Effect.runSync(conn.send({ _tag: "Pong", id: message.id, sentAt: message.sentAt as Micros }))
        }
        notify()
      })
      ws.on("close", (code: number, reason: Buffer) => {
        conn.closed = { code, reason: reason.toString("utf8") }
        notify()
      })
      ws.on("error", () => {})
      connections.push(conn)
      notify()
    })

    return {
      port: ((https ?? wss).address() as AddressInfo).port,
      connections,
      rejected,
      connection: (n) => until(listeners, () => connections[n - 1]).pipe(within(25_000, `connection number ${n}`)),
      stop: shutdown(wss)
    } satisfies FakeBartos
  })
