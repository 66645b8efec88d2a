/**
 * The registry of connected agents (in memory, one entry per agent name). Worker sessions add
 * and remove themselves; CLI handlers read it and send commands (run now, cancel, cleanup) to
 * agents through it. A newer connection with the same name replaces the older one (the older
 * socket is closed with 4001, unlike the reference which left it running beside the new one).
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { ClientRow } from "@barto/domain/Messages"
import type { ClientInfo, Micros, ServerMessage } from "@barto/domain/Messages"
import { AgentSessions, type AgentSessionsShape, type WorkerHandle } from "./internal/agentSessions.js"

export interface AgentConnection {
  readonly agent: string
  readonly sessionId: string
  readonly ip: string
  readonly connectedAt: Micros
  readonly info: ClientInfo | null
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
export const make = (): { readonly registry: RegistryShape; readonly sessions: AgentSessionsShape } => {
  const entries = new Map<string, Entry>()
  const registry: RegistryShape = {
    list: Effect.sync(() =>
      [...entries.values()]
        .map(connectionOf)
        .sort((a, b) => (a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0))
        .map((c) => new ClientRow({ name: c.agent, ip: c.ip, sessionId: c.sessionId, connectedAt: c.connectedAt, info: c.info }))
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
      Effect.sync(() => {
        const agent = handle.connection.agent
        const previous = entries.get(agent)
        entries.set(agent, { handle, info: handle.connection.info })
        return Option.map(Option.fromNullable(previous), (e) => e.handle)
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
    size: Effect.sync(() => entries.size)
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
