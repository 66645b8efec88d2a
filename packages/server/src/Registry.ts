/**
 * The registry of connected agents (in memory, one entry per agent name). Worker sessions add
 * and remove themselves; CLI handlers read it and send commands (run now, cancel, cleanup) to
 * agents through it.
 *
 * One agent instance per name (issue 12 §2): an instance is identified by its outbox id. A newer
 * connection of the same instance replaces the older one (closed with 4001, unlike the reference
 * which left it running beside the new one); another instance claiming a name that is live is
 * refused (the session closes it with 4003), and the refusal is remembered for `clients`.
 */
import { ClientRow } from "@barto/domain/Messages"
import type { ClientInfo, DuplicateAttempts, Micros, MissedTick, ServerMessage } from "@barto/domain/Messages"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import {
  AgentSessions,
  type AgentSessionsShape,
  type Registration,
  type WorkerHandle
} from "./internal/agentSessions.js"

export interface AgentConnection {
  readonly agent: string
  readonly sessionId: string
  readonly ip: string
  readonly connectedAt: Micros
  readonly info: ClientInfo | null
  /** The instance's identity (its outbox id, `AgentHello.outboxId`). */
  readonly outboxId: string
  /** Its `missed_tick` and `catch_up_limit` from its hello (absent: not reported, or held by another bartos). */
  readonly missedTick?: MissedTick
  readonly catchUpLimit?: number
}

export interface RegistryShape {
  /** Connected agents, sorted by name. */
  readonly list: Effect.Effect<ReadonlyArray<ClientRow>>
  readonly get: (agent: string) => Effect.Effect<Option.Option<AgentConnection>>
  /** Sealed per config (HMAC and/or signature); false if the agent is not connected. */
  readonly send: (agent: string, message: ServerMessage) => Effect.Effect<boolean>
  /** Returns the number of sessions reached. */
  readonly broadcast: (message: ServerMessage) => Effect.Effect<number>
}

export class Registry extends Context.Tag("@barto/server/Registry")<Registry, RegistryShape>() {}

interface Entry {
  readonly handle: WorkerHandle
  info: ClientInfo | null
}

const connectionOf = (entry: Entry): AgentConnection => ({ ...entry.handle.connection, info: entry.info })

/** One map behind both views; every operation is a synchronous step, so no lock is needed. */
/** Names refused attempts are kept for at most; the oldest is forgotten first. */
const MAX_REFUSED_NAMES = 10_000

export const make = (): { readonly registry: RegistryShape; readonly sessions: AgentSessionsShape } => {
  const entries = new Map<string, Entry>()
  const refused = new Map<string, DuplicateAttempts>()
  const registry: RegistryShape = {
    list: Effect.sync(() =>
      [...entries.values()]
        .map(connectionOf)
        .sort((a, b) => (a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0))
        .map((c) => {
          const attempts = refused.get(c.agent)
          return new ClientRow({
            name: c.agent,
            ip: c.ip,
            sessionId: c.sessionId,
            connectedAt: c.connectedAt,
            info: c.info,
            ...(c.missedTick === undefined ? {} : { missedTick: c.missedTick }),
            ...(c.catchUpLimit === undefined ? {} : { catchUpLimit: c.catchUpLimit }),
            ...(attempts === undefined ? {} : { refused: attempts })
            // Not validated again: every field is already a decoded hello's or our own. Validating
            // 10,000 rows cost ~14 MiB of garbage per call, and the alerts' metrics refresh lists
            // every 10 s.
          }, true)
        })
    ),
    get: (agent) => Effect.sync(() => Option.map(Option.fromNullable(entries.get(agent)), connectionOf)),
    send: (agent, message) =>
      Effect.suspend(() => {
        const entry = entries.get(agent)
        return entry === undefined ? Effect.succeed(false) : entry.handle.send(message)
      }),
    broadcast: (message) =>
      Effect.suspend(() =>
        Effect.forEach([...entries.values()], (entry) => entry.handle.send(message), { concurrency: "unbounded" })
      ).pipe(Effect.map((sent) => sent.filter(Boolean).length))
  }
  const sessions: AgentSessionsShape = {
    register: (handle) =>
      Effect.sync((): Registration => {
        const agent = handle.connection.agent
        const previous = entries.get(agent)
        if (previous !== undefined && previous.handle.connection.outboxId !== handle.connection.outboxId) {
          const before = refused.get(agent)
          refused.delete(agent)
          if (refused.size >= MAX_REFUSED_NAMES) refused.delete(refused.keys().next().value!)
          refused.set(agent, {
            count: (before?.count ?? 0) + 1,
            lastIp: handle.connection.ip,
            lastAt: handle.connection.connectedAt
          })
          return { _tag: "Refused", holder: connectionOf(previous) }
        }
        entries.set(agent, { handle, info: handle.connection.info })
        return { _tag: "Registered", replaced: Option.map(Option.fromNullable(previous), (e) => e.handle) }
      }),
    unregister: (agent, sessionId) =>
      Effect.sync(() => {
        const entry = entries.get(agent)
        if (entry === undefined || entry.handle.connection.sessionId !== sessionId) return false
        entries.delete(agent)
        return true
      }),
    setInfo: (agent, sessionId, info) =>
      Effect.sync(() => {
        const entry = entries.get(agent)
        if (entry !== undefined && entry.handle.connection.sessionId === sessionId) entry.info = info
      }),
    handles: Effect.sync(() => [...entries.values()].map((e) => e.handle)),
    size: Effect.sync(() => entries.size),
    isConnected: (agent) => Effect.sync(() => entries.has(agent)),
    whenLeader: Effect.asSome
  }
  return { registry, sessions }
}

/** Provides `Registry` and the internal `AgentSessions` over one shared map. */
export const layer: Layer.Layer<Registry | AgentSessions> = Layer.effectContext(
  Effect.sync(() => {
    const { registry, sessions } = make()
    return Context.make(Registry, registry).pipe(Context.add(AgentSessions, sessions))
  })
)
