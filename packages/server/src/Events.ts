/**
 * In-process events. `Ingested` carries every record batch after its transaction committed, so
 * `tail -f` can follow a run live without polling the database.
 */
import * as Context from "effect/Context"
import type * as PubSub from "effect/PubSub"
import type { AgentRecord } from "@barto/domain/Messages"

export interface IngestedBatch {
  readonly agent: string
  readonly records: ReadonlyArray<AgentRecord>
}

export class Ingested extends Context.Tag("@barto/server/Ingested")<Ingested, PubSub.PubSub<IngestedBatch>>() {}
