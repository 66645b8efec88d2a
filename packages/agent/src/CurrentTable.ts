/**
 * The schedule table the agent follows (D3): written by the Connection when bartos pushes one
 * (after saving it durably), read by the Ticker. Its own module so neither imports the other.
 */
import type { ScheduleTable } from "@barto/domain/Messages"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { Outbox, type OutboxError } from "./Outbox.js"

export type Table = typeof ScheduleTable.Type

/**
 * The schedule table the agent currently follows: written by the Connection when bartos pushes
 * one (after saving it durably), read by the Ticker. `None` until a table was ever received.
 */
export class CurrentTable extends Context.Tag("@barto/agent/CurrentTable")<
  CurrentTable,
  SubscriptionRef.SubscriptionRef<Option.Option<Table>>
>() {}

/**
 * Starts from the table cached in the Outbox, so the agent runs its jobs while bartos is down. An
 * unreadable cache is logged and treated as no cache: bartos sends the table again on connect.
 */
export const layer: Layer.Layer<CurrentTable, never, Outbox> = Layer.effect(
  CurrentTable,
  Effect.flatMap(Outbox, (outbox) => outbox.loadTable).pipe(
    Effect.catchAll((e: OutboxError) =>
      Effect.logError(`cannot read the cached schedule table, starting without one: ${e.message}`).pipe(
        Effect.as(Option.none<Table>())
      )
    ),
    Effect.flatMap(SubscriptionRef.make)
  )
)
