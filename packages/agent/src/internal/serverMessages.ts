/**
 * What bartoc does with each message from bartos on one connection (D5, D6): the protocol's
 * message switch, kept apart from the link and the reconnect loop so it reads as the table of
 * the protocol it is. The session owns the state; this module only reads and changes it.
 */
import { type AgentToServer, PROTOCOL_VERSION, type ServerMessage } from "@barto/domain/Messages"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { CurrentTable } from "../CurrentTable.js"
import type { OutboxShape } from "../Outbox.js"
import type { RunnerShape } from "../Runner.js"

/** Why a session must end (the caller turns it into its own error). */
export interface Ending {
  readonly _tag: "Ending"
  readonly message: string
}

export type DropCode = "bad_envelope" | "undecodable" | "unknown_tag" | "frame_too_large" | "unexpected"

/** The per-connection state and the session's effects the switch needs. */
export interface SessionState<E> {
  readonly agentName: string
  readonly outbox: OutboxShape
  readonly runner: RunnerShape
  readonly table: typeof CurrentTable.Service
  readonly session: SubscriptionRef.SubscriptionRef<Option.Option<string>>
  /** Highest seq acked by bartos on this connection. */
  readonly acked: SubscriptionRef.SubscriptionRef<number>
  /** Set once ServerHello came. */
  handshook: boolean
  /** The highest seq sent on this connection (or acked before it): an Ack may not go beyond. */
  sentUpTo: number
  readonly send: (message: AgentToServer) => Effect.Effect<void, E>
  readonly dropFrame: (why: string, code: DropCode) => Effect.Effect<void>
  /** Runs once ServerHello was accepted (resets the backoff, starts the sender). */
  readonly onHandshake: (ackedUpTo: number) => Effect.Effect<void, E>
  /** Called with each table bartos sends, after it was cached. */
  readonly onTable?:
    | ((table: Extract<ServerMessage, { readonly _tag: "ScheduleTable" }>) => Effect.Effect<void>)
    | undefined
}

const ending = (message: string): Ending => ({ _tag: "Ending", message })

const reject = <E>(s: SessionState<E>, requestId: string, reason: string) =>
  Effect.logWarning(`rejecting request ${requestId}: ${reason}`).pipe(
    Effect.zipRight(s.send({ _tag: "CommandRejected", requestId, reason }))
  )

export const handle = <E>(s: SessionState<E>, message: ServerMessage): Effect.Effect<void, E | Ending> => {
  switch (message._tag) {
    case "ServerHello":
      return Effect.gen(function*() {
        // Once handshaken, another ServerHello is a bad frame like any other, whatever it says.
        if (s.handshook) return yield* s.dropFrame("a second ServerHello on this connection", "unexpected")
        if (message.protocol !== PROTOCOL_VERSION) {
          return yield* Effect.fail(
            ending(`bartos speaks protocol ${message.protocol}, this agent speaks ${PROTOCOL_VERSION}`)
          )
        }
        s.handshook = true
        if (message.ackedUpTo >= 0) {
          yield* s.outbox.ack(message.ackedUpTo).pipe(
            Effect.catchAll((e) => Effect.logError(`cannot ack the outbox: ${e.message}`))
          )
        }
        yield* SubscriptionRef.set(s.acked, message.ackedUpTo)
        s.sentUpTo = Math.max(s.sentUpTo, message.ackedUpTo)
        yield* SubscriptionRef.set(s.session, Option.some(message.sessionId))
        yield* Effect.logInfo(
          `bartos ${message.serverVersion} accepted agent '${s.agentName}' (session ${message.sessionId}); ` +
            `resending after seq ${message.ackedUpTo}`
        )
        yield* s.onHandshake(message.ackedUpTo)
      })
    case "ScheduleTable":
      return Effect.gen(function*() {
        yield* s.outbox.saveTable(message).pipe(
          Effect.catchAll((e) => Effect.logError(`cannot cache the schedule table: ${e.message}`))
        )
        yield* SubscriptionRef.set(s.table, Option.some(message))
        yield* Effect.logInfo(`schedule table ${message.version}: ${message.schedules.length} schedule(s)`)
        if (s.onTable !== undefined) yield* s.onTable(message)
      })
    case "Ack":
      if (message.upTo > s.sentUpTo) {
        // Only what this agent sent on this connection can have been stored from it.
        return s.dropFrame(
          `Ack up to ${message.upTo} covers records never sent on this connection (sent up to ${s.sentUpTo})`,
          "unexpected"
        )
      }
      return s.outbox.ack(message.upTo).pipe(
        Effect.zipRight(SubscriptionRef.update(s.acked, (a) => Math.max(a, message.upTo))),
        Effect.catchAll((e) => Effect.logError(`cannot ack the outbox up to ${message.upTo}: ${e.message}`))
      )
    case "Ping":
      return s.send({ _tag: "Pong", id: message.id, sentAt: message.sentAt })
    case "Pong":
      return Effect.void
    case "RunNow":
      return Effect.gen(function*() {
        const table = yield* SubscriptionRef.get(s.table)
        const spec = Option.flatMap(
          table,
          (t) => Option.fromNullable(t.schedules.find((x) => x.name === message.schedule))
        )
        if (Option.isNone(spec)) return yield* reject(s, message.requestId, `unknown schedule '${message.schedule}'`)
        const now = yield* Clock.currentTimeMillis
        const outcome = yield* s.runner.start({
          runId: message.runId,
          spec: spec.value,
          trigger: "manual",
          scheduledAt: now
        }).pipe(Effect.catchAll((e) => Effect.succeed(`failed: ${e.message}` as const)))
        if (outcome === "skipped") {
          return yield* reject(
            s,
            message.requestId,
            `schedule '${message.schedule}' is already running and its overlap policy is 'forbid'`
          )
        }
        if (outcome === "refused") return yield* reject(s, message.requestId, "bartoc is shutting down")
        if (outcome !== "started" && outcome !== "queued") {
          return yield* reject(s, message.requestId, `cannot start: ${outcome}`)
        }
        yield* Effect.logInfo(`run-now of '${message.schedule}' (${message.runId}): ${outcome}`)
      })
    case "CancelRun":
      return Effect.gen(function*() {
        const cancelled = yield* s.runner.cancel(message.runId)
        if (!cancelled) return yield* reject(s, message.requestId, `run ${message.runId} is not running here`)
        yield* Effect.logInfo(`cancelled run ${message.runId}`)
      })
    case "AgentCleanup":
      // The outbox only holds unacked records, so there is nothing old to delete here.
      return Effect.logInfo("bartos asked for a cleanup; the outbox keeps only unacked records")
    case "ProtocolError":
      if (message.code === "protocol_version" && !s.handshook) {
        return Effect.fail(ending(`bartos refused the protocol: ${message.message.slice(0, 500)}`))
      }
      return Effect.logWarning(`bartos reports ${message.code}: ${message.message.slice(0, 500)}`)
  }
}
