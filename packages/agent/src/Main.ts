/**
 * bartoc assembled from its Layers: Outbox (durable state) ← Runner, CurrentTable ← Ticker,
 * Connection. The program is the Connection's reconnect loop; it ends by interruption
 * (SIGINT/SIGTERM) or by failing (retry budget exhausted, unusable state file), which the
 * program turns into exit status 1.
 *
 * Shutdown, in this order, while the link to bartos is still up: the Ticker stops (no new
 * occurrence starts), the Runner drains (`[runner] shutdown`: running jobs finish within
 * `shutdown_grace_secs`, or are stopped and recorded `interrupted`; a second SIGINT/SIGTERM
 * stops them at once), the last records are delivered (briefly), and only then does the link
 * close with 1000.
 */
import * as Codec from "@barto/domain/Codec"
import type { BartocConfig } from "@barto/domain/Config"
import * as Link from "@barto/domain/Link"
import * as Console from "effect/Console"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Connection from "./Connection.js"
import * as CurrentTable from "./CurrentTable.js"
import { inOwnFiber } from "./internal/ownFiber.js"
import * as Outbox from "./Outbox.js"
import * as Runner from "./Runner.js"
import { AGENT_VERSION } from "./SystemInfo.js"
import * as Ticker from "./Ticker.js"

const MIB = 1024 * 1024

/** How long the shutdown waits for bartos to ack the last records (when connected). */
const DELIVERY_TIMEOUT_MS = 5_000

/** Test and benchmark knobs; programs use the defaults. */
export interface Overrides {
  readonly connection?: Partial<Connection.Options>
  readonly ticker?: Partial<Ticker.Options>
  readonly runner?: Partial<Runner.Options>
}

export const layer = (
  config: BartocConfig,
  overrides: Overrides = {}
): Layer.Layer<
  Connection.Connection | Ticker.Ticker | Runner.Runner | Outbox.Outbox,
  Connection.ConnectionError | Outbox.OutboxError
> => {
  const outbox = Outbox.layer({
    path: config.state_path,
    maxBytes: Math.floor(config.outbox_max_mb * MIB),
    agentName: config.name
  })
  const base = Layer.mergeAll(
    Runner.layer({
      agentName: config.name,
      shutdown: config.runner.shutdown,
      shutdownGraceMs: config.runner.shutdown_grace_secs * 1000,
      ...overrides.runner
    }),
    CurrentTable.layer
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
  const ticker = Ticker.layerAfter(Effect.flatMap(Connection.Connection, (c) => c.decided), tickerOptions)
  // The hello reports the policy the ticker really applies (tests may override it).
  const connection = Connection.layer({
    ...Connection.fromConfig(config),
    missedTick: { policy: tickerOptions.missedTick, catchUpLimit: tickerOptions.catchUpLimit },
    ...overrides.connection
  })
  // Built in this order and released in reverse: the ticker stops first, then the Runner
  // terminates what still runs (their last records go to the still-open outbox), then the outbox.
  return ticker.pipe(
    Layer.provideMerge(connection),
    Layer.provide([Codec.layerJson(), Link.layer]),
    Layer.provideMerge(base)
  )
}

/** The line printed on stdout at start (reference §1.5 step 2, plus where it connects and keeps state). */
export const startLine = (config: BartocConfig): string => {
  const { port, prefix, servers } = config.bartos
  const where = servers === undefined
    ? `server ${prefix}://${config.bartos.host}:${port}`
    : `servers ${
      servers.map((s) => `${prefix}://${s.host.includes(":") ? `[${s.host}]` : s.host}:${s.port ?? port}`).join(", ")
    }`
  return `bartoc ${AGENT_VERSION} starting (agent '${config.name}', ${where}, state ${config.state_path})`
}

/** Completes on the next SIGINT or SIGTERM (while the returned scope lasts). */
const nextStopSignal = Effect.gen(function*() {
  const signalled = yield* Deferred.make<void>()
  const onSignal = () => Deferred.unsafeDone(signalled, Effect.void)
  yield* Effect.acquireRelease(
    Effect.sync(() => {
      process.once("SIGINT", onSignal)
      process.once("SIGTERM", onSignal)
    }),
    () =>
      Effect.sync(() => {
        process.off("SIGINT", onSignal)
        process.off("SIGTERM", onSignal)
      })
  )
  return Deferred.await(signalled)
})

/** Waits (bounded) until bartos acked every record, if a session is up: the last records of the drained runs. */
const delivered = Effect.gen(function*() {
  const connection = yield* Connection.Connection
  const outbox = yield* Outbox.Outbox
  if (Option.isNone(yield* SubscriptionRef.get(connection.session))) return
  const empty = Effect.map(outbox.stats, (s) => s.pending === 0)
  yield* inOwnFiber(
    Effect.gen(function*() {
      while (!(yield* empty)) yield* Effect.sleep(50)
    }).pipe(Effect.timeout(DELIVERY_TIMEOUT_MS))
  ).pipe(
    Effect.catchAll(() =>
      Effect.logWarning("shutting down with records not yet acked by bartos; they are sent at the next start")
    )
  )
})

const shutdown = Effect.scoped(Effect.gen(function*() {
  yield* Effect.logInfo("bartoc shutting down")
  const hurry = yield* nextStopSignal
  yield* Effect.flatMap(Ticker.Ticker, (t) => t.stop)
  yield* Effect.flatMap(Runner.Runner, (r) => r.drain({ hurry }))
  yield* delivered
}))

/**
 * Runs bartoc with a loaded configuration until interrupted or out of retries. `onHangup` runs on
 * every SIGHUP (bartoc never stops on one; by default it logs that there is nothing to reload).
 */
export const program = (
  config: BartocConfig,
  overrides: Overrides = {},
  hooks: { readonly onHangup?: Effect.Effect<void> } = {}
): Effect.Effect<never, Connection.ConnectionError | Outbox.OutboxError> =>
  Console.log(startLine(config)).pipe(
    Effect.zipRight(
      Effect.scoped(Effect.gen(function*() {
        // Runs with this fiber's runtime: its logger and level, not a bare default one.
        const runFork = Runtime.runFork(yield* Effect.runtime<never>())
        const onHangup = hooks.onHangup ?? Effect.logInfo("SIGHUP: nothing to reload")
        const hup = () => {
          runFork(onHangup)
        }
        yield* Effect.acquireRelease(
          Effect.sync(() => process.on("SIGHUP", hup)),
          () => Effect.sync(() => process.off("SIGHUP", hup))
        )
        const link = yield* Effect.forkScoped(Effect.flatMap(Connection.Connection, (c) => c.run))
        // Added after the fork, so it runs before the link is interrupted: the link stays up while
        // the running jobs finish and their last records go out.
        yield* Effect.addFinalizer(() => shutdown)
        return yield* Fiber.join(link)
      })).pipe(Effect.provide(layer(config, overrides)))
    )
  )
