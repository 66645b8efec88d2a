/**
 * bartoc assembled from its Layers: Outbox (durable state) ← Runner, CurrentTable ← Ticker,
 * Connection. The program is the Connection's reconnect loop; it ends only by interruption
 * (SIGINT/SIGTERM: sockets close with 1000, running jobs get SIGTERM from the Runner's
 * finalizer and their final records land in the outbox) or by failing (retry budget exhausted,
 * unusable state file), which the program turns into exit status 1.
 */
import * as Codec from "@barto/domain/Codec"
import type { BartocConfig } from "@barto/domain/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Connection from "./Connection.js"
import * as Outbox from "./Outbox.js"
import * as Runner from "./Runner.js"
import { AGENT_VERSION } from "./SystemInfo.js"
import * as Ticker from "./Ticker.js"

const MIB = 1024 * 1024

/** Test and benchmark knobs; programs use the defaults. */
export interface Overrides {
  readonly connection?: Partial<Connection.Options>
  readonly ticker?: Partial<Ticker.Options>
  readonly runner?: Partial<Runner.Options>
}

export const layer = (
  config: BartocConfig,
  overrides: Overrides = {}
): Layer.Layer<Connection.Connection, Connection.ConnectionError | Outbox.OutboxError> => {
  const outbox = Outbox.layer({
    path: config.state_path,
    maxBytes: Math.floor(config.outbox_max_mb * MIB),
    agentName: config.name
  })
  const base = Layer.mergeAll(
    Runner.layer({ agentName: config.name, ...overrides.runner }),
    Ticker.layerCurrentTable
  ).pipe(Layer.provideMerge(outbox))
  const tickerOptions: Ticker.Options = {
    agentName: config.name,
    missedTick: config.missed_tick,
    catchUpLimit: config.catch_up_limit,
    ...overrides.ticker
  }
  // The ticker starts once the first connection attempt is decided (see `Connection.decided`):
  // a cached table must not run while bartos says another live instance holds the name. Its
  // first table is then the cached one (unreachable bartos: D3) or none (refused); either way
  // it is the ticker's initial table, from which it catches up.
  const ticker = Layer.scopedDiscard(
    Effect.flatMap(Connection.Connection, (connection) =>
      Effect.forkScoped(Effect.zipRight(connection.decided, Ticker.run(tickerOptions))))
  )
  const connection = Connection.layer({ ...Connection.fromConfig(config), ...overrides.connection })
  // Built in this order and released in reverse: the ticker stops first, then the Runner
  // terminates running jobs (their last records go to the still-open outbox), then the outbox.
  return ticker.pipe(
    Layer.provideMerge(connection),
    Layer.provide(Codec.layerJson()),
    Layer.provide(base)
  )
}

/** The line printed on stdout at start (reference §1.5 step 2, plus where it connects and keeps state). */
export const startLine = (config: BartocConfig): string =>
  `bartoc ${AGENT_VERSION} starting (agent '${config.name}', server ${config.bartos.prefix}://` +
  `${config.bartos.host}:${config.bartos.port}, state ${config.state_path})`

/** Runs bartoc with a loaded configuration until interrupted or out of retries. */
export const program = (
  config: BartocConfig,
  overrides: Overrides = {}
): Effect.Effect<never, Connection.ConnectionError | Outbox.OutboxError> =>
  Console.log(startLine(config)).pipe(
    Effect.zipRight(
      Connection.run.pipe(
        Effect.onInterrupt(() => Effect.logInfo("bartoc shutting down")),
        Effect.provide(layer(config, overrides))
      )
    )
  )
