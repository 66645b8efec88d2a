/**
 * The registry of connected agents (in memory, one entry per agent name). Worker sessions add
 * and remove themselves; CLI handlers read it and send commands (run now, cancel, cleanup) to
 * agents through it. A newer connection with the same name replaces the older one (D7: the older
 * socket is closed with 4001, unlike the reference which left it running).
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type { ClientInfo, ClientRow, Micros, ServerMessage } from "@barto/domain/Messages"

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
