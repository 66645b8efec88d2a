/**
 * The client end of a barto WebSocket link (D5, D6, D7), shared by bartoc and barto-cli.
 *
 * `Link.connect` opens one connection in the caller's scope: Bearer and custom headers, a pinned
 * CA and mTLS files, the session nonces and connection-bound envelopes (Envelope.ts) when the
 * link is sealed, the codec's frame limit. What it gives back speaks messages:
 * - `inbound`: a Stream of what the peer sent, in arrival order (one queue fed synchronously by
 *   the socket, read by one consumer): each frame opened, then decoded, as a `Message`, or as a
 *   `Dropped` with the reason and the protocol's error code when it failed either (the caller
 *   decides whether to answer it: D6 "reject, log, keep working"). The stream fails with a
 *   `LinkError` when the link ends: the peer closed (`Closed`, with its code), the heartbeat says
 *   it is silent or our own runtime stalled (`Silent`, `Stalled`).
 * - `send` / `sendPayload`: one frame, sealed (HMAC over this connection's binding) right before
 *   the write in the same synchronous step, so the binding's counter follows the wire whichever
 *   fiber writes.
 * - `heartbeat`: app-level pings on a fixed Schedule (the first at once) and a silence watchdog,
 *   both in the link's scope; either one ending ends `inbound`. Started by the caller after its
 *   own hello, since a Ping may not come first.
 * - `close(code, reason)`: starts the close handshake; the scope's finalizer waits briefly for the
 *   peer's close frame, then drops the TCP connection (close-and-wait).
 *
 * `Link` is a service so that tests about protocol logic swap it for an in-memory peer
 * (`layerTest`-style doubles in the agent's tests) while the real-socket tests stay here.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import type * as Codec from "./Codec.js"
import * as Envelope from "./Envelope.js"
import * as WsClient from "./internal/wsClient.js"

export class LinkError extends Data.TaggedError("LinkError")<{
  /**
   * `Config`: a TLS file cannot be read; `Open`: the connection could not be made (`status` when
   * the server refused the upgrade, `code` for a system error); `Protocol`: the peer cannot be
   * spoken to (no session nonce on a sealed link); `Write`: a frame could not be sent; `Closed`:
   * the peer closed (`closeCode`); `Silent`: nothing heard for the silence limit; `Stalled`: a
   * heartbeat tick came later than allowed (our own runtime stalled).
   */
  readonly reason: "Config" | "Open" | "Protocol" | "Write" | "Closed" | "Silent" | "Stalled"
  readonly message: string
  readonly status?: number
  readonly code?: string
  readonly closeCode?: number
  readonly closeReason?: string
}> {}

export type DropCode = "bad_envelope" | Codec.FrameErrorCode

export type Inbound<I> =
  | { readonly _tag: "Message"; readonly message: I }
  | { readonly _tag: "Dropped"; readonly reason: string; readonly code: DropCode }

/** Sealed link: frames are bound to the connection (session nonces) and checked both ways. */
export interface Sealing {
  /** The agent name in the binding. */
  readonly agent: string
  /** Seals our frames and opens the peer's (HMAC with a replay window). */
  readonly hmacKey?: Uint8Array | undefined
  /** The peer's frames must carry a valid signature. */
  readonly publicKey?: Envelope.PublicKey | undefined
  readonly windowSecs: number
}

export interface ConnectOptions<I, O> {
  readonly url: string
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** PEM files: pinned CA bundle (replaces the default roots), client certificate and key (mTLS). */
  readonly caCert?: string | undefined
  readonly clientCert?: string | undefined
  readonly clientKey?: string | undefined
  /** The socket's hard cap on an inbound frame. */
  readonly maxPayload: number
  readonly openTimeoutMs: number
  readonly perMessageDeflate?: boolean | undefined
  readonly codec: Codec.Codec
  readonly inbound: Schema.Schema<I, any>
  readonly outbound: Schema.Schema<O, any>
  /** Absent: frames go as they are, and any frame or protocol ping/pong proves the peer alive. */
  readonly sealing?: Sealing | undefined
}

export interface HeartbeatOptions<O> {
  readonly intervalMs: number
  /** The app-level ping to send (`id` counts from 0, `nowMs` is the Clock's time). */
  readonly ping: (id: number, nowMs: number) => O
  /** Nothing heard this long ends the link (`Silent`, `silentMessage(secs)`). */
  readonly silenceMs: number
  readonly silentMessage?: ((silentMs: number) => string) | undefined
  /** A tick this much later than due ends the link (`Stalled`): our own runtime stalled. */
  readonly lateMs?: number | undefined
}

export interface Connection<I, O> {
  readonly inbound: Stream.Stream<Inbound<I>, LinkError>
  readonly send: (message: O) => Effect.Effect<void, LinkError>
  /** One already-encoded payload; `onWrite` runs in the step that writes it. */
  readonly sendPayload: (payload: Uint8Array, onWrite?: () => void) => Effect.Effect<void, LinkError>
  readonly heartbeat: (options: HeartbeatOptions<O>) => Effect.Effect<void>
  /** Ends the link from our side: `inbound` fails with this error, and the socket closes with `code`. */
  readonly end: (error: LinkError, code?: number) => Effect.Effect<void>
  readonly close: (code: number, reason: string) => Effect.Effect<void>
}

export interface LinkShape {
  readonly connect: <I, O>(options: ConnectOptions<I, O>) => Effect.Effect<Connection<I, O>, LinkError, Scope.Scope>
}

export class Link extends Context.Tag("@barto/domain/Link")<Link, LinkShape>() {}

/** Frames from the peer carry up to a signature and an HMAC header around the codec's limit. */
export const ENVELOPE_OVERHEAD = Envelope.SIGNATURE_LEN + Envelope.HMAC_HEADER_LEN

const readPem = (what: string, file: string | undefined) =>
  file === undefined ? Effect.succeed(undefined) : Effect.try({
    try: () => fs.readFileSync(file),
    catch: (e) =>
      new LinkError({ reason: "Config", message: `cannot read ${what} ${file}: ${e instanceof Error ? e.message : e}` })
  })

const closedError = (code: number, reason: string) =>
  new LinkError({
    reason: "Closed",
    message: `closed the connection (code ${code}${reason === "" ? "" : `: ${reason}`})`,
    closeCode: code,
    closeReason: reason
  })

const writeError = (e: WsClient.SocketError) => new LinkError({ reason: "Write", message: e.message })

/**
 * The heartbeat of a link, for `Connection.heartbeat` implementations (the socket link here, an
 * in-memory link in tests): pings on a fixed Schedule, the first at once, failing `Stalled` when
 * a tick is later than `lateMs`; a watchdog that wakes when the silence limit would be reached
 * if nothing else were heard (`lastHeard`). Both run in `scope`; either one failing calls `end`.
 */
export const startHeartbeat = <O>(
  h: HeartbeatOptions<O>,
  link: {
    readonly send: (message: O) => Effect.Effect<void, LinkError>
    readonly lastHeard: Ref.Ref<number>
    readonly end: (error: LinkError) => Effect.Effect<void>
    readonly scope: Scope.Scope
  }
): Effect.Effect<void> =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    yield* Ref.set(link.lastHeard, start)
    const ids = yield* Ref.make(0)
    const pingOnce = Effect.gen(function*() {
      const id = yield* Ref.getAndUpdate(ids, (n) => n + 1)
      const now = yield* Clock.currentTimeMillis
      const late = now - (start + id * h.intervalMs)
      if (h.lateMs !== undefined && late > h.lateMs) {
        return yield* new LinkError({
          reason: "Stalled",
          message: `heartbeat timed out (tick ${late} ms late), disconnecting`
        })
      }
      yield* link.send(h.ping(id, now))
    })
    /** Fails once the peer was silent too long; else the time left until it would be. */
    const silence = Effect.gen(function*() {
      const silent = (yield* Clock.currentTimeMillis) - (yield* Ref.get(link.lastHeard))
      if (silent >= h.silenceMs) {
        return yield* new LinkError({
          reason: "Silent",
          message: h.silentMessage?.(silent) ?? `silent for ${Math.round(silent / 1000)} s`
        })
      }
      return h.silenceMs - silent
    })
    const endOnFailure = (effect: Effect.Effect<unknown, LinkError>) =>
      effect.pipe(Effect.catchAll(link.end), Effect.forkIn(link.scope))
    yield* endOnFailure(Effect.repeat(pingOnce, Schedule.fixed(h.intervalMs)))
    yield* endOnFailure(Effect.repeat(silence, Schedule.identity<number>().pipe(Schedule.addDelay(Duration.millis))))
  })

/** A link over a real `ws` socket. */
export const connectWs = <I, O>(
  options: ConnectOptions<I, O>
): Effect.Effect<Connection<I, O>, LinkError, Scope.Scope> =>
  Effect.gen(function*() {
    const ca = yield* readPem("ca_cert", options.caCert)
    const cert = yield* readPem("client_cert", options.clientCert)
    const key = yield* readPem("client_key", options.clientKey)
    const sealing = options.sealing
    const sealed = sealing !== undefined && (sealing.hmacKey !== undefined || sealing.publicKey !== undefined)
    // Our half of the session binding (see Envelope.ts); the server answers with its own.
    const agentNonce = Envelope.makeSessionNonce()
    const sock = yield* WsClient.connect(options.url, {
      headers: {
        ...options.headers,
        ...(sealing === undefined ? {} : { [Envelope.NONCE_HEADER]: Envelope.formatSessionNonce(agentNonce) })
      },
      ca,
      cert,
      key,
      maxPayload: options.maxPayload,
      openTimeoutMs: options.openTimeoutMs,
      perMessageDeflate: options.perMessageDeflate
    }).pipe(Effect.mapError((e) =>
      new LinkError({
        reason: "Open",
        message: e.message,
        ...(e.status !== undefined ? { status: e.status } : {}),
        ...(e.code !== undefined ? { code: e.code } : {})
      })
    ))
    const serverNonce = Envelope.parseSessionNonce(sock.responseHeaders[Envelope.NONCE_HEADER])
    if (sealed && serverNonce === undefined) {
      return yield* new LinkError({
        reason: "Protocol",
        message: `sent no session nonce (${Envelope.NONCE_HEADER}) with its upgrade: it is older than this ` +
          "client (upgrade the server first), or something between strips the header"
      })
    }
    /** Frames sealed to the peer and frames from it that opened on this connection: the binding's counters. */
    let sealedCount = 0n
    let openedCount = 0n
    const binding = (sender: "server" | "agent"): Envelope.Binding | undefined =>
      sealing === undefined || serverNonce === undefined ? undefined : {
        sender,
        agent: sealing.agent,
        agentNonce,
        serverNonce,
        counter: sender === "agent" ? sealedCount : openedCount
      }
    const nonces = Envelope.makeNonceCache()
    const hmacKey = sealing?.hmacKey
    const lastHeard = yield* Ref.make(yield* Clock.currentTimeMillis)
    const ended = yield* Deferred.make<never, LinkError>()
    const scope = yield* Effect.scope
    const nowSecs = Effect.map(Clock.currentTimeMillis, (ms) => ms / 1000)

    const sendPayload = (payload: Uint8Array, onWrite?: () => void) =>
      Effect.flatMap(nowSecs, (now) =>
        sock.send(() => {
          const frame = hmacKey === undefined ? payload : Envelope.seal({ hmacKey }, payload, now, binding("agent"))
          if (hmacKey !== undefined) sealedCount++
          onWrite?.()
          return frame
        })).pipe(Effect.mapError(writeError))
    const send = (message: O) => Effect.suspend(() => sendPayload(options.codec.encode(options.outbound, message)))

    const onFrame = (data: Uint8Array, binary: boolean): Effect.Effect<Option.Option<Inbound<I>>> =>
      Effect.gen(function*() {
        if (!binary) {
          return Option.some(
            { _tag: "Dropped", reason: "text frame (frames are binary)", code: "undecodable" } as const
          )
        }
        const opened = Envelope.open(
          { hmacKey, publicKey: sealing?.publicKey, windowSecs: sealing?.windowSecs ?? 0, nonces },
          data,
          yield* nowSecs,
          binding("server")
        )
        if (Either.isLeft(opened)) {
          return Option.some(
            { _tag: "Dropped", reason: `${opened.left.reason}: ${opened.left.message}`, code: "bad_envelope" } as const
          )
        }
        if (sealed) {
          openedCount++
          // Only frames that prove the peer (and this connection) count as hearing from it.
          yield* Ref.set(lastHeard, yield* Clock.currentTimeMillis)
        }
        const decoded = options.codec.decode(options.inbound, opened.right)
        return Option.some(
          Either.isLeft(decoded)
            ? {
              _tag: "Dropped",
              reason: `${decoded.left.code}: ${decoded.left.message}`,
              code: decoded.left.code
            } as const
            : { _tag: "Message", message: decoded.right } as const
        )
      })

    const fromSocket: Stream.Stream<Inbound<I>, LinkError> = Stream.repeatEffectOption(
      Effect.gen(function*() {
        const event = yield* Queue.take(sock.events)
        if (!sealed) yield* Ref.set(lastHeard, yield* Clock.currentTimeMillis)
        switch (event._tag) {
          case "Heard":
            return Option.none<Inbound<I>>()
          case "Closed":
            return yield* Effect.fail(Option.some(closedError(event.code, event.reason)))
          case "Frame":
            return yield* onFrame(event.data, event.binary)
        }
      })
    ).pipe(Stream.filterMap((item) => item))
    // Whichever ends first: the socket, or `end` (heartbeat, caller).
    const inbound = Stream.interruptWhen(fromSocket, Deferred.await(ended))

    const end = (error: LinkError, code = 1000) =>
      Deferred.fail(ended, error).pipe(Effect.zipRight(sock.close(code, error.message)))

    const heartbeat = (h: HeartbeatOptions<O>) => startHeartbeat(h, { send, lastHeard, end, scope })

    return {
      inbound,
      send,
      sendPayload,
      heartbeat,
      end,
      close: sock.close
    } satisfies Connection<I, O>
  })

export const layer: Layer.Layer<Link> = Layer.succeed(Link, { connect: connectWs })
