/**
 * A fake bartos for the CLI tests: a `ws` server on port 0 speaking the real codec. It records
 * every upgrade (url, Authorization header), hello and request, and answers requests with what
 * the test's `answer` function returns (possibly over time, for tails).
 */
import * as Codec from "@barto/domain/Codec"
import * as Messages from "@barto/domain/Messages"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Scope from "effect/Scope"
import type { IncomingMessage } from "node:http"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import type { TLSSocket } from "node:tls"
import { WebSocketServer } from "ws"

export type Send = (response: Messages.ServerToCli) => void

export interface FakeOptions {
  /** Bearer token required on the upgrade (401 otherwise). */
  readonly apiKey?: string
  /** `silent`: accept the socket and never say hello. */
  readonly hello?: "ok" | "silent"
  /** Answers a request; return nothing to stay silent (or send later through `send`). */
  readonly answer?: (request: Messages.CliRequest, send: Send) => ReadonlyArray<Messages.CliResponse> | void
  readonly admin?: boolean
  /** Serve wss with this PEM key pair; with `clientCa`, require a client certificate it signed. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer; readonly clientCa?: Buffer }
  /** Filled with the CN of each client certificate presented (mTLS). */
  readonly peerNames?: Array<string>
}

export interface FakeBartos {
  readonly port: number
  readonly upgrades: Array<{ readonly url: string; readonly authorization: string | undefined }>
  readonly hellos: Array<typeof Messages.CliHello.Type>
  readonly requests: Array<Messages.CliRequest>
  readonly pings: Array<number>
  /** Close codes of client-initiated closes (1000 = clean). */
  readonly closes: Array<number>
  /** Resolves once `n` connections have been closed. */
  readonly closed: (n: number) => Promise<void>
}

export const fakeBartos = (options: FakeOptions = {}): Effect.Effect<FakeBartos, never, Scope.Scope> =>
  Effect.gen(function*() {
    const codec = Codec.makeJson()
    const server = yield* Effect.acquireRelease(
      Effect.async<{ wss: WebSocketServer; https: https.Server | undefined }>((resume) => {
        const verifyClient = (
          info: { req: IncomingMessage },
          cb: (ok: boolean, code?: number, message?: string) => void
        ) => {
          if (options.apiKey !== undefined && info.req.headers.authorization !== `Bearer ${options.apiKey}`) {
            cb(false, 401, "Unauthorized")
          } else cb(true)
        }
        if (options.tls === undefined) {
          const wss: WebSocketServer = new WebSocketServer(
            { host: "127.0.0.1", port: 0, verifyClient },
            () => resume(Effect.succeed({ wss, https: undefined }))
          )
          return
        }
        const server = https.createServer({
          cert: options.tls.cert,
          key: options.tls.key,
          ...(options.tls.clientCa !== undefined
            ? { ca: options.tls.clientCa, requestCert: true, rejectUnauthorized: true }
            : {})
        })
        const wss = new WebSocketServer({ server, verifyClient })
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ wss, https: server })))
      }),
      ({ https, wss }) =>
        Effect.async<void>((resume) => {
          for (const c of wss.clients) c.terminate()
          wss.close(() => (https === undefined ? resume(Effect.void) : https.close(() => resume(Effect.void))))
        })
    )
    const address = (server.https ?? server.wss).address() as AddressInfo
    const fake: FakeBartos & { waiters: Array<() => void> } = {
      port: address.port,
      upgrades: [],
      hellos: [],
      requests: [],
      pings: [],
      closes: [],
      waiters: [],
      closed: (n) =>
        new Promise<void>((resolve) => {
          const check = () => {
            if (fake.closes.length >= n) resolve()
            else fake.waiters.push(check)
          }
          check()
        })
    }
    server.wss.on("connection", (ws, req) => {
      fake.upgrades.push({ url: req.url ?? "", authorization: req.headers.authorization })
      const peer = (req.socket as TLSSocket).getPeerCertificate?.()
      if (peer !== undefined && peer.subject !== undefined) options.peerNames?.push(String(peer.subject.CN))
      const send: Send = (m) => {
        if (ws.readyState === ws.OPEN) ws.send(codec.encode(Messages.ServerToCli, m), { binary: true })
      }
      ws.on("close", (code) => {
        fake.closes.push(code)
        for (const w of fake.waiters.splice(0)) w()
      })
      ws.on("message", (data, isBinary) => {
        if (!isBinary) return
        const decoded = codec.decode(Messages.CliToServer, new Uint8Array(data as Buffer))
        if (Either.isLeft(decoded)) {
          send({ _tag: "ProtocolError", code: decoded.left.code, message: decoded.left.message })
          return
        }
        const m = decoded.right
        switch (m._tag) {
          case "CliHello":
            fake.hellos.push(m)
            if (options.hello !== "silent") {
              send({
                _tag: "ServerHelloCli",
                protocol: Messages.PROTOCOL_VERSION,
                serverVersion: "fake",
                admin: options.admin ?? true
              })
            }
            return
          case "Ping":
            fake.pings.push(m.id)
            send({ _tag: "Pong", id: m.id, sentAt: m.sentAt })
            return
          default: {
            fake.requests.push(m)
            const out = options.answer?.(m, send)
            if (out !== undefined) { for (const r of out) send(r) }
          }
        }
      })
    })
    return fake
  })

/** Env pointing barto-cli at the fake. */
export const envFor = (fake: FakeBartos, extra: Record<string, string> = {}): Record<string, string> => ({
  BARTO_CLI_BARTOS__HOST: "127.0.0.1",
  BARTO_CLI_BARTOS__PORT: String(fake.port),
  ...extra
})
