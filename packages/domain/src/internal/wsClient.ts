/**
 * The `ws` client seen from Effect (style §4.2), under `Link.ts`. We use `ws` directly rather than
 * `@effect/platform` Socket because we need custom headers (Bearer), TLS options (pinned CA,
 * mTLS), `maxPayload` and protocol-level ping/pong events.
 *
 * Every socket event is pushed synchronously into one unbounded Queue, so a single fiber sees
 * frames in arrival order (handlers forked per message would reorder them). Writes complete when
 * `ws` has handed the bytes to the socket, which gives the sender natural backpressure.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import WebSocket from "ws"

export type SocketEvent =
  | { readonly _tag: "Frame"; readonly data: Uint8Array; readonly binary: boolean }
  /** A protocol-level ping or pong: proof of life, nothing to process. */
  | { readonly _tag: "Heard" }
  | { readonly _tag: "Closed"; readonly code: number; readonly reason: string }

export class SocketError extends Data.TaggedError("SocketError")<{
  readonly reason: "Open" | "Write"
  readonly message: string
  /** The HTTP status the server answered the upgrade with, when it refused it. */
  readonly status?: number
  /** The system error code of a failed open (`ECONNREFUSED`, `DEPTH_ZERO_SELF_SIGNED_CERT`…). */
  readonly code?: string
}> {}

export interface ConnectOptions {
  readonly headers: Record<string, string>
  readonly ca?: Buffer | undefined
  readonly cert?: Buffer | undefined
  readonly key?: Buffer | undefined
  readonly maxPayload: number
  readonly openTimeoutMs: number
  readonly perMessageDeflate?: boolean | undefined
}

export interface ClientSocket {
  readonly events: Queue.Dequeue<SocketEvent>
  /**
   * Writes one frame. Given a function, it is called right before the write, in the same
   * synchronous step: frames that must leave in the order they were made (sealed with a counter)
   * cannot be overtaken by another fiber's frame in between.
   */
  readonly send: (bytes: Uint8Array | (() => Uint8Array)) => Effect.Effect<void, SocketError>
  /** Headers of the server's 101 response (lower-case names). */
  readonly responseHeaders: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
  /**
   * Starts the close handshake with this code and reason; the scope's finalizer waits briefly for
   * the peer and then terminates the TCP connection.
   */
  readonly close: (code: number, reason: string) => Effect.Effect<void>
}

/** How long the finalizer waits for the peer's close frame before dropping the TCP connection. */
const CLOSE_GRACE_MS = 1000

const toBytes = (data: WebSocket.RawData): Uint8Array =>
  Array.isArray(data) ? Buffer.concat(data) : data instanceof ArrayBuffer ? new Uint8Array(data) : data

/** Close reasons are limited to 123 bytes by RFC 6455; `ws` throws on longer ones. */
const clampReason = (reason: string): string => {
  let out = reason
  while (Buffer.byteLength(out, "utf8") > 123) out = out.slice(0, -1)
  return out
}

const closeAndWait = (ws: WebSocket, code: number, reason: string): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (ws.readyState === WebSocket.CLOSED) return resume(Effect.void)
    const timer = setTimeout(() => {
      ws.terminate()
      resume(Effect.void)
    }, CLOSE_GRACE_MS)
    ws.once("close", () => {
      clearTimeout(timer)
      resume(Effect.void)
    })
    try {
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate()
      else if (ws.readyState === WebSocket.OPEN) ws.close(code, clampReason(reason))
    } catch {
      ws.terminate()
    }
    return Effect.sync(() => clearTimeout(timer))
  })

/**
 * Opens a connection; fails with `SocketError("Open")` when the server refuses (e.g. 401), TLS
 * fails or nothing answers within `openTimeoutMs`. The socket is closed when the scope closes,
 * with the code given to `close` (default 1000).
 */
export const connect = (url: string, options: ConnectOptions): Effect.Effect<ClientSocket, SocketError, Scope.Scope> =>
  Effect.gen(function*() {
    const events = yield* Queue.unbounded<SocketEvent>()
    let closeCode = 1000
    let closeReason = "closing the connection"

    const ws = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const socket = new WebSocket(url, {
          headers: options.headers,
          maxPayload: options.maxPayload,
          handshakeTimeout: options.openTimeoutMs,
          ...(options.perMessageDeflate !== undefined ? { perMessageDeflate: options.perMessageDeflate } : {}),
          ...(options.ca !== undefined ? { ca: options.ca } : {}),
          ...(options.cert !== undefined ? { cert: options.cert } : {}),
          ...(options.key !== undefined ? { key: options.key } : {})
        })
        // Listeners go on before anything can arrive; 'error' without a listener would crash the
        // process, and it is always followed by 'close', which ends the session.
        socket.on(
          "message",
          (data, isBinary) => Queue.unsafeOffer(events, { _tag: "Frame", data: toBytes(data), binary: isBinary })
        )
        socket.on("ping", () => Queue.unsafeOffer(events, { _tag: "Heard" }))
        socket.on("pong", () => Queue.unsafeOffer(events, { _tag: "Heard" }))
        socket.on(
          "close",
          (code, reason) => Queue.unsafeOffer(events, { _tag: "Closed", code, reason: reason.toString("utf8") })
        )
        socket.on("error", () => {})
        return socket
      }),
      (socket) => Effect.suspend(() => closeAndWait(socket, closeCode, closeReason))
    )

    let responseHeaders: ClientSocket["responseHeaders"] = {}
    ws.once("upgrade", (res) => {
      responseHeaders = res.headers
    })

    yield* Effect.async<void, SocketError>((resume) => {
      const cleanup = () => {
        ws.off("open", onOpen)
        ws.off("error", onError)
        ws.off("unexpected-response", onResponse)
      }
      const onOpen = () => {
        cleanup()
        resume(Effect.void)
      }
      const onError = (error: Error) => {
        cleanup()
        // Several addresses tried (localhost: ::1 and 127.0.0.1) come as an AggregateError.
        const e = error as { code?: unknown; errors?: ReadonlyArray<{ code?: unknown }> }
        const code = typeof e.code === "string"
          ? e.code
          : typeof e.errors?.[0]?.code === "string"
          ? e.errors[0].code
          : undefined
        const message = error.message !== "" ? error.message : code ?? String(error)
        resume(Effect.fail(new SocketError({ reason: "Open", message, ...(code !== undefined ? { code } : {}) })))
      }
      const onResponse = (_req: unknown, res: { statusCode?: number; statusMessage?: string }) => {
        cleanup()
        ws.terminate()
        resume(
          Effect.fail(
            new SocketError({
              reason: "Open",
              ...(res.statusCode !== undefined ? { status: res.statusCode } : {}),
              message: `server answered the upgrade with HTTP ${res.statusCode ?? "?"} ${res.statusMessage ?? ""}`
                .trim()
            })
          )
        )
      }
      ws.on("open", onOpen)
      ws.on("error", onError)
      ws.on("unexpected-response", onResponse)
      return Effect.sync(cleanup)
    })

    const send = (bytes: Uint8Array | (() => Uint8Array)): Effect.Effect<void, SocketError> =>
      Effect.async<void, SocketError>((resume) => {
        if (ws.readyState !== WebSocket.OPEN) {
          return resume(Effect.fail(new SocketError({ reason: "Write", message: "socket is not open" })))
        }
        ws.send(typeof bytes === "function" ? bytes() : bytes, { binary: true }, (error) =>
          resume(
            error === undefined || error === null
              ? Effect.void
              : Effect.fail(new SocketError({ reason: "Write", message: error.message }))
          ))
      })

    const close = (code: number, reason: string): Effect.Effect<void> =>
      Effect.sync(() => {
        closeCode = code
        closeReason = reason
        try {
          if (ws.readyState === WebSocket.OPEN) ws.close(code, clampReason(reason))
        } catch {
          ws.terminate()
        }
      })

    return { events, send, close, responseHeaders }
  })
