/** Static facts about the running bartos, for `info` and the CLI handler's limits. */
import type { Micros } from "@barto/domain/Messages"
import * as Context from "effect/Context"

export interface ServerInfoShape {
  readonly version: string
  readonly startedAt: Micros
  /** e.g. `ws://127.0.0.1:20000`, `wss://0.0.0.0:20443`. */
  readonly listeners: ReadonlyArray<string>
  readonly queryRowCap: number
  readonly queryMaxBytes: number
  readonly queryTimeoutMs: number
  /** Total bytes of one `list`/`cmd`/`failed`/`runs` answer (sent in frames); the rest is cut. */
  readonly maxAnswerBytes: number
}

export class ServerInfo extends Context.Tag("@barto/server/ServerInfo")<ServerInfo, ServerInfoShape>() {}
