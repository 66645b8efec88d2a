/**
 * barto-cli entry point (run by bin/barto-cli.mjs through tsx).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Cli from "./Cli.js"
import { CliEnv, processEnv } from "./internal/root.js"

// `barto-cli runs | head -1`: the reader went away; stop quietly instead of dying on EPIPE.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0)
  throw error
})

Cli.run(process.argv).pipe(
  Effect.flatMap((code) =>
    Effect.sync(() => {
      // Let the process end by itself so stdout is flushed; every socket is closed by now. Should
      // a handle leak anyway, this unref'd timer ends the process instead of hanging.
      process.exitCode = code
      setTimeout(() => process.exit(code), 2000).unref()
    })
  ),
  Effect.provide(NodeContext.layer),
  Effect.provideService(CliEnv, processEnv()),
  NodeRuntime.runMain({
    // Cli.run has printed every error once already (style.md §8: no double printing).
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) =>
      // Only an interruption (SIGINT/SIGTERM) gets here as a failure; Cli.run catches the rest.
      onExit(Exit.isFailure(exit) ? (Cause.isInterruptedOnly(exit.cause) ? 130 : 1) : 0)
  })
)
