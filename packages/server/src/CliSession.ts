/**
 * One barto-cli connection on `/v1/ws/cli` (D7, D10). Never enveloped (TLS + bearer + admin key).
 *
 * `CliHello` (within 10 s) -> `ServerHelloCli{admin}`; then each `CliRequest` is handed to
 * `CliHandler.handle` and every response it streams is sent back carrying the request's `id`.
 * Requests run concurrently, so a `tail -f` does not block a second request on the same link.
 * Unlike the reference, a bad frame is answered (`ProtocolError`), never silently dropped.
 */
import { Codec } from "@barto/domain/Codec"
import * as Messages from "@barto/domain/Messages"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { timingSafeEqual } from "node:crypto"
import type { WebSocket } from "ws"
import * as CliHandler from "./CliHandler.js"
import type { Ingested } from "./Events.js"
import * as Inbound from "./internal/inbound.js"
import * as Socket from "./internal/socket.js"
import { Metrics } from "./Metrics.js"
import type { Registry } from "./Registry.js"
import type { Schedules } from "./Schedules.js"
import { ServerInfo } from "./ServerInfo.js"
import type { Store } from "./Store.js"

export interface Options {
  readonly serverVersion: string
  /**
   * Absent: only CLIs connecting from the loopback interface are admin (a single-host set-up
   * needs no key; a remote operator cannot clean up or run jobs without one).
   */
  readonly adminKey: Redacted.Redacted<string> | undefined
  /** `query` needs the admin role too. */
  readonly queryRequiresAdmin: boolean
  readonly maxFrameBytes: number
  readonly helloTimeoutMs: number
  readonly maxBadFrames: number
  /** A protocol-level ping goes out this often; a CLI that never answers is dropped (half-open TCP). */
  readonly keepaliveMs: number
  /** Bytes queued for one CLI before its answers wait (default SEND_BUFFER_BYTES). */
  readonly sendBufferBytes?: number
  /** A CLI whose queue does not shrink for this long is dropped (default: `keepaliveMs`). */
  readonly stallMs?: number
}

/**
 * Bytes waiting to be written to one CLI (`ws.bufferedAmount`) above which its answers wait for
 * it to read: what one connection holds stays near this plus a frame per request in flight.
 */
export const SEND_BUFFER_BYTES = 4 * 1024 * 1024
/** Requests one CLI connection may have in flight (a `tail -f` counts until it ends). */
export const MAX_INFLIGHT = 8

export type Requirements = Store | Registry | Schedules | Ingested | ServerInfo | Metrics | Codec

/** Constant time in the length of the expected value; a length mismatch is still a mismatch. */
export const secretEquals = (given: string, expected: string): boolean => {
  const a = Buffer.from(given, "utf8")
  const b = Buffer.from(expected, "utf8")
  if (a.length !== b.length) {
    timingSafeEqual(b, b)
    return false
  }
  return timingSafeEqual(a, b)
}

export const isLoopback = (ip: string): boolean => ip === "::1" || ip.startsWith("127.") || ip.startsWith("::ffff:127.")

export const run = (
  ws: WebSocket,
  peer: { readonly name: string; readonly ip: string },
  options: Options
): Effect.Effect<void, never, Requirements> =>
  Effect.scoped(session(ws, peer, options)).pipe(
    // Frames are guarded one by one; this is the last line: the socket never outlives its session.
    Effect.catchAllDefect((cause) =>
      Effect.logError("defect in a cli session; closing it", cause).pipe(
        Effect.zipRight(Effect.sync(() => {
          if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(1011, "internal error")
        }))
      )
    ),
    Effect.annotateLogs({ cli: peer.name, ip: peer.ip, link: "cli" })
  )

const session = (
  ws: WebSocket,
  peer: { readonly name: string; readonly ip: string },
  options: Options
): Effect.Effect<void, never, Requirements | Scope.Scope> =>
  Effect.gen(function*() {
    const codec = yield* Codec
    const metrics = yield* Metrics
    const conn = yield* Socket.attach(ws)
    const labels = { link: "cli" }
    yield* metrics.add("bartos_connections_total", 1, labels)
    yield* metrics.add("bartos_connections_open", 1, labels)
    yield* Effect.addFinalizer(() => metrics.add("bartos_connections_open", -1, labels))
    yield* Effect.logDebug(`cli connection from '${peer.name} (${peer.ip})'`)
    yield* Effect.addFinalizer((exit) =>
      Exit.isInterrupted(exit) ? Effect.sync(() => conn.close(1001, "server shutting down")) : Effect.void
    )

    // Backpressure (a CLI that stops reading must not grow bartos): after a frame, while more than
    // `sendBufferBytes` wait unsent the sender waits; a queue that does not shrink for `stallMs`
    // means the CLI does not read, and it is dropped.
    const sendBuffer = options.sendBufferBytes ?? SEND_BUFFER_BYTES
    const stallMs = options.stallMs ?? options.keepaliveMs
    const drained = Effect.gen(function*() {
      let least = ws.bufferedAmount
      let progressAt = yield* Clock.currentTimeMillis
      while (conn.isOpen() && ws.bufferedAmount > sendBuffer) {
        yield* Effect.sleep(Duration.millis(20))
        const now = yield* Clock.currentTimeMillis
        if (ws.bufferedAmount < least) {
          least = ws.bufferedAmount
          progressAt = now
        } else if (now - progressAt >= stallMs) {
          yield* metrics.add("bartos_cli_dropped_total", 1, { reason: "not_reading" })
          yield* Effect.logWarning(
            `dropped cli connection: it read nothing for ${stallMs} ms with ${ws.bufferedAmount} bytes waiting`
          )
          ws.terminate()
          return
        }
      }
    })
    const send = (message: Messages.ServerToCli) =>
      Effect.sync(() => conn.sendBytes(codec.encode(Messages.ServerToCli, message))).pipe(
        Effect.tap((sent) => (sent ? metrics.add("bartos_frames_out_total", 1, labels) : Effect.void)),
        Effect.zipRight(Effect.suspend(() => (ws.bufferedAmount > sendBuffer ? drained : Effect.void)))
      )

    // Keepalive: `ws` clients answer pings by themselves; no pong between two pings = dead peer.
    let alive = true
    const onPong = () => {
      alive = true
    }
    ws.on("pong", onPong)
    yield* Effect.addFinalizer(() => Effect.sync(() => ws.off("pong", onPong)))
    yield* Effect.sync(() => {
      if (!alive) {
        ws.terminate()
        return
      }
      alive = false
      if (conn.isOpen()) ws.ping()
    }).pipe(Effect.delay(Duration.millis(options.keepaliveMs)), Effect.forever, Effect.forkScoped)

    let badInARow = 0
    const decode = (item: Extract<Socket.Inbound, { _tag: "Frame" }>) =>
      Effect.sync(() => {
        metrics.unsafeAdd("bartos_frames_in_total", 1, labels)
        return item.binary
          ? Either.mapLeft(codec.decode(Inbound.FromCli, item.data), (e) => ({
            code: e.code as Messages.ProtocolError["code"],
            message: e.message
          }))
          : Either.left({
            code: "undecodable" as Messages.ProtocolError["code"],
            message: "text frames are not accepted; send binary frames"
          })
      })
    const rejected = (bad: { readonly code: Messages.ProtocolError["code"]; readonly message: string }) =>
      Effect.gen(function*() {
        badInARow++
        yield* metrics.add("bartos_frames_rejected_total", 1, { reason: bad.code })
        yield* Effect.logWarning(`rejected cli frame (${bad.code}): ${bad.message}`)
        yield* send({ _tag: "ProtocolError", code: bad.code, message: bad.message })
        if (badInARow >= options.maxBadFrames) {
          conn.close(1008, `${badInARow} bad frames in a row`)
          return true
        }
        return false
      })
    /**
     * A defect while handling one frame (a bug, or a peer that found one): counted and answered
     * like a refused frame, then the session ends with 1011; the process stays up.
     */
    const guarded = <A, R>(handle: Effect.Effect<A, never, R>, onDefect: A): Effect.Effect<A, never, R> =>
      Effect.catchAllDefect(handle, (cause) =>
        Effect.gen(function*() {
          yield* metrics.add("bartos_frames_rejected_total", 1, { reason: "unexpected" })
          yield* Effect.logError("defect while handling a cli frame; closing the session", cause)
          yield* send({ _tag: "ProtocolError", code: "unexpected", message: "internal error handling this frame" })
            .pipe(
              Effect.catchAllDefect(() => Effect.void)
            )
          conn.close(1011, "internal error handling a frame")
          return onDefect
        }))

    // --- hello ---------------------------------------------------------------------------------
    type HelloStep = { readonly _tag: "Hello"; readonly hello: typeof Messages.CliHello.Type } | {
      readonly _tag: "Again"
    } | {
      readonly _tag: "Stop"
    }
    const helloFrame = (item: Extract<Socket.Inbound, { _tag: "Frame" }>): Effect.Effect<HelloStep> =>
      Effect.gen(function*() {
        const decoded = yield* decode(item)
        if (Either.isLeft(decoded)) {
          return (yield* rejected(decoded.left)) ? { _tag: "Stop" as const } : { _tag: "Again" as const }
        }
        const message = decoded.right
        if (message._tag === "CliHello") return { _tag: "Hello" as const, hello: message }
        yield* rejected({ code: "unexpected", message: `expected CliHello, got ${message._tag}` })
        conn.close(1008, "first frame must be CliHello")
        return { _tag: "Stop" as const }
      })
    // The connection's frames until it closes; each handled before the next is taken.
    const frames = Stream.repeatEffect(conn.take).pipe(
      Stream.takeWhile((item): item is Extract<Socket.Inbound, { _tag: "Frame" }> => item._tag === "Frame")
    )
    // Bad frames before the hello are answered and skipped ("Again") until one decides.
    const awaitHello = frames.pipe(
      Stream.mapEffect((item) => guarded(helloFrame(item), { _tag: "Stop" } as HelloStep)),
      Stream.filter((step) => step._tag !== "Again"),
      Stream.runHead,
      Effect.map(Option.flatMap((step) => (step._tag === "Hello" ? Option.some(step.hello) : Option.none())))
    )
    const hello = yield* awaitHello.pipe(
      Effect.timeout(Duration.millis(options.helloTimeoutMs)),
      Effect.catchTag("TimeoutException", () =>
        Effect.sync(() =>
          conn.close(1008, `no CliHello within ${options.helloTimeoutMs / 1000} s`)
        ).pipe(
          Effect.as(Option.none())
        ))
    )
    if (Option.isNone(hello)) {
      return
    }
    badInARow = 0
    if (hello.value.protocol !== Messages.PROTOCOL_VERSION) {
      const reason = `protocol version mismatch: server ${Messages.PROTOCOL_VERSION}, cli ${hello.value.protocol}`
      yield* send({ _tag: "ProtocolError", code: "protocol_version", message: reason })
      conn.close(4002, reason)
      return
    }
    const admin = options.adminKey === undefined
      ? isLoopback(peer.ip)
      : hello.value.adminKey !== undefined && secretEquals(hello.value.adminKey, Redacted.value(options.adminKey))
    // The statement limit goes with the hello so the CLI outwaits it (and shows our refusal).
    const { queryTimeoutMs } = yield* ServerInfo
    yield* send({
      _tag: "ServerHelloCli",
      protocol: Messages.PROTOCOL_VERSION,
      serverVersion: options.serverVersion,
      admin,
      statementTimeoutMs: queryTimeoutMs
    })

    // --- requests ------------------------------------------------------------------------------
    const inflight = yield* FiberSet.make()
    let queries = 0
    const serve = (request: Messages.CliRequest) =>
      CliHandler.handle(request, { admin, queryRequiresAdmin: options.queryRequiresAdmin }).pipe(
        Stream.runForEach((response) => send(response)),
        Effect.catchAllCause((cause) =>
          Effect.logError(`request ${request._tag} #${request.id} failed`, cause).pipe(
            Effect.zipRight(
              send({
                _tag: "CliError",
                id: request.id,
                code: "internal",
                message: "internal error; see the server log"
              })
            )
          )
        ),
        Effect.annotateLogs({ request: request._tag, id: request.id })
      )
    /** Handles one frame; false once the session must end. */
    const requestFrame = (item: Extract<Socket.Inbound, { _tag: "Frame" }>) =>
      Effect.gen(function*() {
        const decoded = yield* decode(item)
        if (Either.isLeft(decoded)) return !(yield* rejected(decoded.left))
        const message = decoded.right
        // A second CliHello is a bad frame: it does not end a run of them.
        if (message._tag !== "CliHello") badInARow = 0
        switch (message._tag) {
          case "Ping":
            yield* send({ _tag: "Pong", id: message.id, sentAt: message.sentAt })
            break
          case "CliHello":
            return !(yield* rejected({ code: "unexpected", message: "CliHello was already received" }))
          default: {
            // Bounded work per connection: a CLI cannot pile up requests (each holds a frame being
            // built, a query a process or a database connection).
            const busy = (yield* FiberSet.size(inflight)) >= MAX_INFLIGHT
              ? `too many requests in flight on this connection (at most ${MAX_INFLIGHT})`
              : message._tag === "QueryRequest" && queries > 0
              ? "one query at a time per connection; wait for the previous one"
              : undefined
            if (busy !== undefined) {
              yield* send({ _tag: "CliError", id: message.id, code: "refused", message: busy })
              break
            }
            if (message._tag === "QueryRequest") {
              queries++
              yield* FiberSet.run(inflight, serve(message).pipe(Effect.ensuring(Effect.sync(() => queries--))))
            } else {
              yield* FiberSet.run(inflight, serve(message))
            }
          }
        }
        return true
      })
    // Until the peer closes or a frame ends the session (requestFrame answers false).
    yield* frames.pipe(
      Stream.mapEffect((item) => guarded(requestFrame(item), false)),
      Stream.takeWhile((more) => more),
      Stream.runDrain
    )
  })
