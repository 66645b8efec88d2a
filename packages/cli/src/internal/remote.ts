/**
 * What every command that talks to bartos shares: load the config (D9), connect, map every
 * failure to a printed message with exit status 1, print lines.
 */
import * as Config from "@barto/domain/Config"
import * as Ids from "@barto/domain/Ids"
import type * as Messages from "@barto/domain/Messages"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Client from "../Client.js"
import * as Render from "../Render.js"
import { CliEnv, failure, type Globals, usageError, VERSION } from "./root.js"

export interface Session {
  readonly connection: Client.Connection
  readonly style: Render.Style
  readonly globals: Globals
}

/**
 * Loads the config with the command-line values on top (flags > env > TOML > defaults). A
 * BARTO_CLI_* variable that sets no key is a warning on stderr; every config problem is an error.
 */
export const loadConfig = (g: Globals) =>
  Effect.gen(function*() {
    const env = yield* CliEnv
    const stray = yield* Config.unknownEnvironment("barto-cli", { env: env.env })
    yield* Effect.forEach(stray, (w) => Console.error(`barto-cli: warning: ${w}`))
    return yield* Config.loadCli({
      configPath: g.configPath,
      env: env.env,
      flags: {
        ...Config.loggingFlags(g),
        timeout_secs: g.timeoutSecs
      }
    }).pipe(
      Effect.mapError((e) => failure(e.problems.map((p) => `config: ${Config.formatProblem(p)}`).join("\nbarto-cli: ")))
    )
  })

/** Loads the config, connects, runs `body`, closes; a `ClientError` becomes `barto-cli: <message>`, exit 1. */
export const withSession = <A, E, R>(
  g: Globals,
  style: Render.Style,
  body: (session: Session) => Effect.Effect<A, E | Client.ClientError, R>
) =>
  Effect.gen(function*() {
    const config = yield* loadConfig(g)
    const options = Client.fromConfig(config, VERSION, g.timeoutSecs)
    yield* Effect.logDebug(`connecting to ${Client.urlOf(options)}`)
    return yield* Client.withConnection(options, (connection) => body({ connection, style, globals: g })).pipe(
      Effect.catchIf(
        (e): e is Client.ClientError => e instanceof Client.ClientError,
        (e) => Effect.fail(failure(e.message))
      )
    )
  })

/** Sends one request and checks the answer is the expected kind. */
export const ask = <T extends Client.Answer["_tag"]>(
  connection: Client.Connection,
  request: Client.NewRequest,
  tag: T
): Effect.Effect<Extract<Client.Answer, { readonly _tag: T }>, Client.ClientError> =>
  Effect.flatMap(connection.request(request), (answer) =>
    answer._tag === tag
      ? Effect.succeed(answer as Extract<Client.Answer, { readonly _tag: T }>)
      : Effect.fail(
        new Client.ClientError({ reason: "protocol", message: `bartos answered ${answer._tag} to ${request._tag}` })
      ))

/** Says on stderr that bartos cut an answer at its limit, so that stdout keeps its shape. */
export const warnIfTruncated = (answer: { readonly truncated?: boolean | undefined }) =>
  answer.truncated === true
    ? Console.error(
      "barto-cli: warning: bartos cut this answer at its size limit ([limits] max_answer_bytes); the output is incomplete"
    )
    : Effect.void

/** Prints lines on stdout (nothing for none), through `Render.terminalSafe`. */
export const print = (lines: ReadonlyArray<string>) =>
  lines.length === 0 ? Effect.void : Console.log(Render.terminalSafe(lines.join("\n")))

/** At most this many candidates are listed when a run id prefix is ambiguous. */
const CANDIDATES = 10

/** `input` as a run id or a part of one (lower case), else a usage error: checked before connecting. */
export const runIdInput = (input: string, command?: string) => {
  const text = input.trim().toLowerCase()
  return Ids.isUuid(text) || Ids.isRunIdInput(text) ? Effect.succeed(text) : usageError(
    `${
      command === undefined ? "" : `${command}: `
    }RUN: '${input}' is not a run id (a whole id, a unique prefix of ${Ids.MIN_RUN_ID_INPUT} or more characters, ` +
      `or the ${Ids.SHORT_RUN_ID_LENGTH}-character short form that tables show)`
  )
}

/**
 * The run a user means by `text`: a whole run id, a unique prefix of one (6 characters or more,
 * like git and docker), or the short form tables show (its last 8 characters). Unknown → exit 1;
 * ambiguous → exit 1 listing the candidates; not a run id at all → usage error (exit 2).
 */
export const resolveRunId = (connection: Client.Connection, input: string) =>
  Effect.gen(function*() {
    const text = yield* runIdInput(input)
    if (Ids.isUuid(text)) return text as Messages.RunId
    const r = yield* ask(connection, { _tag: "RunsRequest", runId: text, limit: CANDIDATES + 1 }, "RunsResponse")
    // A bartos that predates `runId` answers the newest runs instead: keep only real matches.
    const matches = r.runs.filter((run) => Ids.matchesRunId(run.runId, text))
    if (matches.length === 1) return matches[0]!.runId
    if (matches.length === 0) return yield* failure(`no run id starts or ends with '${text}'`)
    const listed = matches.slice(0, CANDIDATES).map((run) =>
      `  ${run.runId}  ${Render.clean(run.agent)}/${Render.clean(run.schedule)}  ${run.state}  ${
        Render.formatMicros(run.scheduledAt)
      }`
    )
    return yield* failure(
      [
        `run id '${text}' is ambiguous; it matches ${
          matches.length > CANDIDATES ? `more than ${CANDIDATES}` : matches.length
        } runs:`,
        ...listed,
        ...(matches.length > CANDIDATES ? ["  …"] : [])
      ].join("\n")
    )
  })
