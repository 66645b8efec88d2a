/**
 * `barto-cli beat [--progress 40/100] [--status degraded] [MESSAGE…]`: a heartbeat from inside a
 * job (issue 14). Writes one line to the pipe bartoc named in `BARTO_HEARTBEAT` (domain
 * Heartbeat.ts); needs no config and no connection to bartos.
 */
import * as Heartbeat from "@barto/domain/Heartbeat"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as fs from "node:fs"
import { CliEnv, failure, helpText, usageError } from "../internal/root.js"

export const command = Command.make(
  "beat",
  {
    progress: Options.text("progress").pipe(
      Options.withPseudoName("DONE/TOTAL"),
      Options.optional,
      Options.withDescription("How far the job got: DONE or DONE/TOTAL (e.g. 40/100).")
    ),
    status: Options.text("status").pipe(
      Options.withPseudoName("WORD"),
      Options.optional,
      Options.withDescription("One word, e.g. ok or degraded; shown with the run.")
    ),
    message: Args.text({ name: "MESSAGE" }).pipe(Args.repeated)
  },
  (o) =>
    Effect.gen(function*() {
      const { env } = yield* CliEnv
      const beat: Heartbeat.Beat = {
        ...Option.match(o.progress, { onNone: () => ({}), onSome: (progress) => ({ progress }) }),
        ...Option.match(o.status, { onNone: () => ({}), onSome: (status) => ({ status }) }),
        ...(o.message.length > 0 ? { message: o.message.join(" ") } : {})
      }
      const bad = Heartbeat.invalid(beat)
      if (bad !== undefined) return yield* usageError(`beat: ${bad}`)
      const target = env[Heartbeat.ENV_NAME]
      const fd = target === undefined ? undefined : /^fd:(\d+)$/.exec(target)?.[1]
      if (fd === undefined) {
        return yield* failure(
          `${Heartbeat.ENV_NAME} is ${
            target === undefined ? "not set" : `'${target}', not fd:N`
          }: beat works inside a job run by bartoc`
        )
      }
      yield* Effect.try({
        try: () => fs.writeSync(Number(fd), Heartbeat.format(beat)),
        catch: (e) => failure(`cannot write to ${target}: ${(e as Error).message}`)
      })
    })
).pipe(
  Command.withDescription(helpText(
    "beat",
    "Inside a job: tell bartos the job is alive (resets stall detection), with progress and status.",
    ["barto-cli beat --progress 40/100 'copying /home'", "barto-cli beat --status degraded 'mirror 2 is slow'"],
    [
      "0  written to BARTO_HEARTBEAT",
      "1  BARTO_HEARTBEAT is not set (not inside a job run by bartoc) or cannot be written",
      "2  usage error (a malformed --progress or --status)"
    ]
  ))
)
