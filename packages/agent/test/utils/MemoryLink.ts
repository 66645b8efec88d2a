/**
 * An in-memory bartos behind the `Link` service: for tests about the agent's protocol logic
 * (what it sends, when it gives up on a silent peer) that must not depend on real sockets or
 * on real time. Everything runs on the test's Clock, so TestClock drives it deterministically.
 * The real link is tested over sockets (Connection.test.ts with FakeBartos).
 */
import * as Codec from "@barto/domain/Codec"
import * as Link from "@barto/domain/Link"
import { type AgentToServer, PROTOCOL_VERSION, type ServerMessage } from "@barto/domain/Messages"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"

export interface MemoryConn {
  readonly url: string
  /** What the agent sent, decoded, in order. */
  readonly received: SubscriptionRef.SubscriptionRef<ReadonlyArray<AgentToServer>>
  /** Delivers a message to the agent. */
  readonly send: (message: ServerMessage) => Effect.Effect<void>
  /** The agent closed the link (code and reason). */
  readonly closed: Deferred.Deferred<{ readonly code: number; readonly reason: string }>
}

export interface MemoryBartos {
  readonly connections: SubscriptionRef.SubscriptionRef<ReadonlyArray<MemoryConn>>
  /** Waits until connection number `n` (1-based) was opened. */
  readonly connection: (n: number) => Effect.Effect<MemoryConn>
  /** Waits for the first message of `conn` that satisfies `pred`. */
  readonly waitFor: <A extends AgentToServer>(
    conn: MemoryConn,
    pred: (m: AgentToServer) => m is A
  ) => Effect.Effect<A>
  readonly layer: Layer.Layer<Link.Link>
}

export interface Options {
  /** Answer AgentHello with ServerHello (default true). */
  readonly autoHello?: boolean
  /** Answer Ping with Pong (default true). */
  readonly autoPong?: boolean
}

export const make = (options: Options = {}): Effect.Effect<MemoryBartos> =>
  Effect.gen(function*() {
    const connections = yield* SubscriptionRef.make<ReadonlyArray<MemoryConn>>([])
    const codec = Codec.makeJson()

    const waitFor = <A extends AgentToServer>(conn: MemoryConn, pred: (m: AgentToServer) => m is A) =>
      conn.received.changes.pipe(
        Stream.map((all) => Option.fromNullable(all.find(pred))),
        Stream.filterMap((found) => found),
        Stream.take(1),
        Stream.runHead,
        Effect.map(Option.getOrThrow)
      )

    const connect = <I, O>(o: Link.ConnectOptions<I, O>) =>
      Effect.gen(function*() {
        const scope = yield* Effect.scope
        const inbox = yield* Queue.unbounded<Link.Inbound<I>>()
        const ended = yield* Deferred.make<never, Link.LinkError>()
        const lastHeard = yield* Ref.make(yield* Clock.currentTimeMillis)
        const received = yield* SubscriptionRef.make<ReadonlyArray<AgentToServer>>([])
        const closed = yield* Deferred.make<{ readonly code: number; readonly reason: string }>()
        const n = (yield* SubscriptionRef.get(connections)).length + 1

        const deliver = (message: ServerMessage) =>
          Clock.currentTimeMillis.pipe(
            Effect.flatMap((now) => Ref.set(lastHeard, now)),
            Effect.zipRight(Queue.offer(inbox, { _tag: "Message", message: message as unknown as I })),
            Effect.asVoid
          )
        const record = (message: AgentToServer) =>
          Effect.gen(function*() {
            yield* SubscriptionRef.update(received, (all) => [...all, message])
            if (message._tag === "AgentHello" && options.autoHello !== false) {
              yield* deliver({
                _tag: "ServerHello",
                protocol: PROTOCOL_VERSION,
                serverVersion: "memory",
                capabilities: [],
                sessionId: `memory-${n}`,
                ackedUpTo: -1
              })
            }
            if (message._tag === "Ping" && options.autoPong !== false) {
              yield* deliver({ _tag: "Pong", id: message.id, sentAt: message.sentAt })
            }
          })
        const sendPayload = (payload: Uint8Array, onWrite?: () => void) =>
          Effect.suspend(() => {
            onWrite?.()
            const decoded = codec.decode(o.outbound, payload)
            return Either.isLeft(decoded) ? Effect.die(decoded.left) : record(decoded.right as unknown as AgentToServer)
          })
        const send = (message: O) => sendPayload(codec.encode(o.outbound, message))
        const close = (code: number, reason: string) => Deferred.succeed(closed, { code, reason }).pipe(Effect.asVoid)
        const end = (error: Link.LinkError, code = 1000) =>
          Deferred.fail(ended, error).pipe(Effect.zipRight(close(code, error.message)))
        yield* Effect.addFinalizer(() => close(1000, "scope closed"))

        const conn: MemoryConn = { url: o.url, received, send: deliver, closed }
        yield* SubscriptionRef.update(connections, (all) => [...all, conn])
        return {
          inbound: Stream.fromQueue(inbox).pipe(Stream.interruptWhen(Deferred.await(ended))),
          send,
          sendPayload,
          heartbeat: (h) => Link.startHeartbeat(h, { send, lastHeard, end, scope }),
          end,
          close
        } satisfies Link.Connection<I, O>
      })

    return {
      connections,
      connection: (n) =>
        connections.changes.pipe(
          Stream.filter((all) => all.length >= n),
          Stream.take(1),
          Stream.runHead,
          Effect.map((all) => Option.getOrThrow(all)[n - 1]!)
        ),
      waitFor,
      layer: Layer.succeed(Link.Link, { connect })
    } satisfies MemoryBartos
  })
