/**
 * The mutable side of the agent registry, used only by worker sessions and the schedule table.
 * The public `Registry` (read, send, broadcast) is a view over the same map.
 */
import type { ClientInfo, ServerMessage } from "@barto/domain/Messages"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type { AgentConnection } from "../Registry.js"
import type { SessionOpened } from "../Store.js"

/** What a live worker session hands to the registry. */
export interface WorkerHandle {
  readonly connection: AgentConnection
  /** Encode, seal and write one frame; false when the socket is no longer open. */
  readonly send: (message: ServerMessage) => Effect.Effect<boolean>
  readonly close: (code: number, reason: string) => Effect.Effect<void>
  /** Send the agent its current schedule table if it differs from the last one it got. */
  readonly syncTable: Effect.Effect<void>
}

/**
 * The outcome of claiming a name: registered (replacing the same instance's older session, which
 * the caller closes), or refused because another instance (another outbox id) holds it.
 * `opened`: the claim's own transaction also recorded the session and read the acked offset
 * (several bartos, `Cluster.ts`), so the caller does not call `Store.sessionOpened` again.
 */
export type Registration =
  | {
    readonly _tag: "Registered"
    readonly replaced: Option.Option<WorkerHandle>
    readonly opened?: SessionOpened | undefined
  }
  | { readonly _tag: "Refused"; readonly holder: AgentConnection }

export interface AgentSessionsShape {
  /** Claims the handle's name for it, atomically; a refusal is counted for `clients`. */
  readonly register: (handle: WorkerHandle) => Effect.Effect<Registration>
  /** Removes the entry only if it still belongs to `sessionId` (a newer session may own the name). */
  readonly unregister: (agent: string, sessionId: string) => Effect.Effect<boolean>
  readonly setInfo: (agent: string, sessionId: string, info: ClientInfo) => Effect.Effect<void>
  readonly handles: Effect.Effect<ReadonlyArray<WorkerHandle>>
  /** Every registered session, e.g. to close them all at shutdown. */
  readonly size: Effect.Effect<number>
  /** Whether `agent` has a live session here, or (several bartos, `Cluster.ts`) on any instance. */
  readonly isConnected: (agent: string) => Effect.Effect<boolean>
  /**
   * Leader work a session triggers (marking its runs lost): run now by the one bartos; with
   * several, only on the leader and fenced, none otherwise (the leader's sweep covers it).
   */
  readonly whenLeader: <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<Option.Option<A>, E>
}

export class AgentSessions extends Context.Tag("@barto/server/internal/AgentSessions")<
  AgentSessions,
  AgentSessionsShape
>() {}
