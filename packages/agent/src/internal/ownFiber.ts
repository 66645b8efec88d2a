import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"

/**
 * Runs `effect` in a fiber of its own, interruptible there, and waits for it. For races and
 * timeouts during shutdown: shutdown runs in finalizers, uninterruptible and often on a fiber
 * already interrupted (SIGTERM). There a race cannot interrupt its loser (it inherits the
 * region and waits for it), and an `Effect.interruptible` region is cut short at once by the
 * pending interruption; a fresh fiber has neither problem.
 */
export const inOwnFiber = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.fork(Effect.interruptible(effect)), Fiber.join)
