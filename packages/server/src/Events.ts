/**
 * In-process events. `Ingested` carries every record batch after its transaction committed, so
 * `tail -f` can follow a run live without polling the database.
 */
import type { AgentRecord } from "@barto/domain/Messages"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"

export interface IngestedBatch {
  readonly agent: string
  readonly records: ReadonlyArray<AgentRecord>
}

export class Ingested extends Context.Tag("@barto/server/Ingested")<Ingested, PubSub.PubSub<IngestedBatch>>() {}

/** Unbounded: a publish never waits; each `tail -f` subscriber drains its own queue. */
export const layer: Layer.Layer<Ingested> = Layer.scoped(
  Ingested,
  Effect.acquireRelease(PubSub.unbounded<IngestedBatch>(), PubSub.shutdown)
)
