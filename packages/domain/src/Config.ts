/**
 * Configuration of the three programs (D9): `bartos.toml`, `bartoc.toml`, `barto-cli.toml`.
 *
 * Field names are the TOML keys (snake_case, reference §4.3–4.5, plus ours). Sources, highest
 * first: **flags > environment > TOML > defaults**. Environment names are `BARTOS_…`, `BARTOC_…`,
 * `BARTO_CLI_…` with `__` between nested tables (`BARTOS_ACTIX__PORT` → `actix.port`); their
 * values stay strings until the key's own schema converts them (an api key `00123` stays `00123`,
 * unlike the reference). Arrays (schedules) are not overridable from the environment.
 *
 * Everything goes through Effect's `ConfigProvider` (internal/configLoad.ts): the environment,
 * HOME and XDG_* are read from the ambient provider (`ConfigProvider.fromEnv()` by default; tests
 * and embedders install their own with `Effect.withConfigProvider` / `Layer.setConfigProvider`,
 * or pass `env`), and the sources are chained with `ConfigProvider.orElse` in precedence order.
 * Env names are matched case-insensitively when the provider lists its names as given
 * (`fromMap`, the `env` option); `fromEnv` is case-sensitive, so from the process environment
 * only the upper-case spelling is read.
 *
 * Secrets are `Redacted<string>`; every secret key `k` also accepts `k_file`, a path whose
 * contents (trailing newline trimmed) become the secret. Giving both in one source is an error; a
 * higher source giving either one replaces both from lower sources. Relative `k_file` paths in the
 * TOML file are resolved against the file's directory; a leading `~/` is the home directory.
 *
 * A missing default config file means "defaults only" (bartos and bartoc start with zero
 * configuration); an explicit `configPath` that does not exist is an error.
 */
import * as ConfigProvider from "effect/ConfigProvider"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { alertFields, Alerts, checkAlertTargets, NotifyChannels } from "./internal/alertConfig.js"
import { type ConfigErrorFields, load, readVars, unknownEnv } from "./internal/configLoad.js"
import {
  Bool,
  CidrList,
  defaultTable,
  DurationSecs,
  Enum,
  Int,
  IpAddress,
  ListenPort,
  NonEmptyText,
  NonNegativeInt,
  opt,
  Port,
  PositiveInt,
  PositiveNumber,
  Secret,
  ServerList,
  shapeOf,
  StringArray,
  table,
  tableOf,
  tableWithExclusive,
  Text,
  U8,
  withDefault
} from "./internal/configSchema.js"
import { type KeyPath, locateKeys, type Position } from "./internal/tomlLocate.js"
import * as Messages from "./Messages.js"

export { type AlertRule, BAD_KINDS, EVENT_KINDS, type EventKind, type NotifyChannel } from "./internal/alertConfig.js"

export { parseDurationSecs } from "./internal/configSchema.js"

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/**
 * One configuration problem. `file` names where the bad value came from: the TOML file path,
 * `environment BARTOS_ACTIX__PORT`, `command line`, or undefined (defaults). `path` is the key
 * path (`actix.port`, `schedules.web1.schedules[2].timeout`; for an unknown key, the table that
 * holds it), empty for whole-file problems; `line`/`column` (1-based) say where in the TOML file
 * the key is written, or where a syntax error is.
 */
export type ConfigProblem = ConfigErrorFields

/** `bartos.toml:41:1: schedules.web1.schedules[2]: unknown key 'timout' (did you mean 'timeout'?)` */
export const formatProblem = (p: ConfigProblem): string => {
  const where = p.file === undefined
    ? ""
    : p.line !== undefined
    ? `${p.file}:${p.line}:${p.column ?? 0}: `
    : `${p.file}: `
  return `${where}${p.path === "" ? "" : `${p.path}: `}${p.reason}`
}

/**
 * A configuration that cannot be used: every problem found (at least one), in file order. The
 * first problem's fields are also the error's own, and `message` has one line per problem.
 */
export class ConfigError extends Data.TaggedError("ConfigError")<
  ConfigProblem & {
    readonly problems: ReadonlyArray<ConfigProblem>
  }
> {
  static of(problems: ReadonlyArray<ConfigProblem>): ConfigError {
    const first = problems[0] ?? { file: undefined, path: "", reason: "invalid configuration" }
    return new ConfigError({ ...first, problems: problems.length > 0 ? problems : [first] })
  }
  override get message(): string {
    return this.problems.map(formatProblem).join("\n")
  }
}

/** The key path style of every config error: `schedules.web1.schedules[2].on_calendar`. */
export { formatKeyPath, type KeyPath, type Position } from "./internal/tomlLocate.js"

/**
 * Where a key path is written in a TOML file, or the nearest table around it (for a key that is
 * missing); undefined when the file cannot be read, or the path is not in it. For errors found
 * after loading, such as an invalid calendar expression. The file is read at the first lookup.
 */
export const keyLocator = (file: string): (path: KeyPath) => Position | undefined => {
  let locations: ReturnType<typeof locateKeys> | null | undefined
  return (path) => {
    if (locations === undefined) {
      try {
        locations = locateKeys(fs.readFileSync(file, "utf8"))
      } catch {
        locations = null
      }
    }
    return locations?.locateNearest(path)
  }
}

// ---------------------------------------------------------------------------------------------
// Default paths (reference §4.7, XDG)
// ---------------------------------------------------------------------------------------------

export type Program = "bartos" | "bartoc" | "barto-cli"

export interface DefaultPaths {
  /** `<config_dir>/<pkg>/<pkg>.toml` */
  readonly configFile: string
  /** `<data_dir>/<pkg>`: the program's own data directory. */
  readonly dataDir: string
  /** `<data_dir>/<pkg>/logs/<pkg>.log` */
  readonly logFile: string
  /** bartos: `<data_dir>/bartos/bartos.db` (SQLite); bartoc: `<data_dir>/bartoc/db/bartoc.db` (state). */
  readonly dbFile: string
}

const xdgDir = (value: string | undefined, fallback: string): string =>
  // The XDG spec says relative values are invalid and must be ignored.
  value !== undefined && value !== "" && path.isAbsolute(value) ? value : fallback

const homeOf = (env: { readonly HOME?: string | undefined }): string =>
  env.HOME !== undefined && env.HOME !== "" ? env.HOME : os.homedir()

/**
 * Synchronous, for callers outside an Effect (log file defaults); the loader reads HOME and XDG_*
 * through the ambient ConfigProvider and passes them here.
 */
export const defaultPaths = (program: Program, env: Record<string, string | undefined> = process.env): DefaultPaths => {
  const home = homeOf(env)
  const configHome = xdgDir(env.XDG_CONFIG_HOME, path.join(home, ".config"))
  const dataHome = xdgDir(env.XDG_DATA_HOME, path.join(home, ".local", "share"))
  const dataDir = path.join(dataHome, program)
  return {
    configFile: path.join(configHome, program, `${program}.toml`),
    dataDir,
    logFile: path.join(dataDir, "logs", `${program}.log`),
    dbFile: program === "bartoc" ? path.join(dataDir, "db", "bartoc.db") : path.join(dataDir, `${program}.db`)
  }
}

// ---------------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------------

const common = {
  verbose: withDefault(U8, () => 0),
  quiet: withDefault(U8, () => 0),
  enable_std_output: withDefault(Bool, () => false)
}

/** Reference §4.6, every key optional here. */
const TracingLayer = {
  with_target: withDefault(Bool, () => false),
  with_thread_ids: withDefault(Bool, () => false),
  with_thread_names: withDefault(Bool, () => false),
  with_line_number: withDefault(Bool, () => false),
  with_level: withDefault(Bool, () => true),
  directives: opt(Text)
}

export const Tracing = table({
  stdout: defaultTable(TracingLayer),
  file: defaultTable({
    quiet: withDefault(U8, () => 0),
    verbose: withDefault(U8, () => 0),
    layer: defaultTable(TracingLayer)
  })
})
export type Tracing = typeof Tracing.Type

export const Tls = table({
  ip: withDefault(IpAddress, () => "127.0.0.1"),
  port: withDefault(ListenPort, () => 20443),
  cert_file_path: NonEmptyText,
  key_file_path: NonEmptyText,
  /** Enables mTLS: clients must present a certificate chaining to these CA(s). */
  client_ca_cert: opt(NonEmptyText)
})
export type Tls = typeof Tls.Type

export const Actix = {
  workers: opt(PositiveInt),
  ip: withDefault(NonEmptyText, () => "127.0.0.1"),
  port: withDefault(ListenPort, () => 20000),
  /**
   * Reverse proxies / load balancers (addresses or CIDR blocks) whose `Forwarded` /
   * `X-Forwarded-For` headers are believed: the client address is the nearest one in the chain
   * that is not a trusted proxy. Empty: the headers are ignored and the peer is the client.
   */
  trusted_proxies: withDefault(CidrList, () => []),
  tls: opt(Tls)
}

export const MariaDb = table({
  host: NonEmptyText,
  port: withDefault(Port, () => 3306),
  username: NonEmptyText,
  password: opt(Secret),
  database: NonEmptyText,
  options: opt(Text),
  /** The least-privilege account `barto-cli query` runs as (SECURITY.md); without it `query` is refused. */
  query_username: opt(NonEmptyText),
  query_password: opt(Secret)
})
export type MariaDb = typeof MariaDb.Type

export const ScheduleEntry = table({
  name: NonEmptyText,
  on_calendar: NonEmptyText,
  // A schedule with nothing to run would record empty successes forever.
  cmds: StringArray.pipe(
    Schema.filter((cmds) => cmds.length > 0 || "expected at least one command, got an empty array")
  ),
  timezone: opt(NonEmptyText),
  /** Seconds; TOML may say `"90s"`, `"5m"`, `"1h"`. */
  timeout: opt(DurationSecs),
  overlap: withDefault(Enum(...Messages.Overlap.literals), () => "allow" as const),
  on_failure: withDefault(Enum(...Messages.OnFailure.literals), () => "continue" as const),
  /** Niceness below bartoc's for the commands (Messages.Nice). */
  nice: withDefault(Int(0, 19, "an integer 0..19"), () => Messages.DEFAULT_NICE),
  ...alertFields
})
export type ScheduleEntry = typeof ScheduleEntry.Type

const ScheduleList = Schema.Array(ScheduleEntry).annotations({ message: () => "expected an array of schedule tables" })
  .pipe(Schema.filter((entries) => {
    const seen = new Set<string>()
    for (let i = 0; i < entries.length; i++) {
      const name = entries[i]!.name
      if (seen.has(name)) return { path: [i, "name"], message: `duplicate schedule name ${JSON.stringify(name)}` }
      seen.add(name)
    }
    return true
  }))

/** `[schedules.<agent>]`: its schedules, and the alert defaults of its schedules (and of the agent itself). */
export const AgentSchedules = table({ schedules: withDefault(ScheduleList, () => []), ...alertFields })
export type AgentSchedules = typeof AgentSchedules.Type

export const BartosConfig = Schema.Struct({
  ...common,
  /** Base64 Ed25519 32-byte seed; frames to agents are signed when set. */
  signing_key: opt(Secret),
  /** Raw UTF-8 bytes are the HMAC key. */
  hmac_key: opt(Secret),
  /** Bearer token required on both WebSocket endpoints. */
  api_key: opt(Secret),
  /** Admin role on the CLI link (cleanup, run, cancel, pause). */
  admin_key: opt(Secret),
  /** `query` needs the admin role; absent = on exactly when `admin_key` is set. */
  query_requires_admin: opt(Bool),
  /** With TLS configured the plain listener is off unless this is true (D7). */
  allow_plaintext: withDefault(Bool, () => false),
  actix: defaultTable(Actix),
  mariadb: opt(MariaDb),
  sqlite: defaultTable({ path: withDefault(NonEmptyText, () => defaultPaths("bartos").dbFile) }),
  retention: defaultTable({
    max_age_days: opt(PositiveNumber),
    max_runs_per_schedule: opt(PositiveInt),
    interval_secs: withDefault(PositiveNumber, () => 3600)
  }),
  /**
   * Several bartos on one MariaDB (issue 18, README "Deployment"); ignored on SQLite, which serves
   * one instance. `instance_id` names this instance in `agent_claims` and the leader lease
   * (default `<hostname>:<port>`, unique per instance). A dead instance's agents and leadership
   * are taken over after `lease_secs`; `heartbeat_secs` (at most half of it, checked at start) is
   * how often an instance renews both and picks up commands addressed to it.
   */
  cluster: defaultTable({
    instance_id: opt(NonEmptyText),
    lease_secs: withDefault(PositiveNumber, () => 10),
    heartbeat_secs: withDefault(PositiveNumber, () => 2),
    /** How long a CLI action for an agent connected to another instance waits for that instance. */
    command_timeout_secs: withDefault(PositiveNumber, () => 5)
  }),
  limits: defaultTable({
    max_frame_bytes: withDefault(PositiveInt, () => 1048576),
    query_row_cap: withDefault(PositiveInt, () => 1000),
    query_max_bytes: withDefault(PositiveInt, () => 8 * 1024 * 1024),
    query_timeout_ms: withDefault(PositiveInt, () => 5000),
    query_concurrency: withDefault(PositiveInt, () => 2),
    max_answer_bytes: withDefault(PositiveInt, () => 64 * 1024 * 1024),
    liveness_secs: withDefault(PositiveNumber, () => 15),
    /** Per-schedule series on /metrics for at most this many schedules (config order); the rest are counted. */
    metrics_max_schedules: withDefault(NonNegativeInt, () => 1000)
  }),
  /** The web console and its login sessions (the HTTP API under /v1/api is always served). */
  console: defaultTable({
    enabled: withDefault(Bool, () => true),
    /** Lifetime of a console login; TOML may say `"12h"`. */
    session_ttl: withDefault(DurationSecs, () => 12 * 3600)
  }),
  tracing: opt(Tracing),
  /** Keyed by agent name (`[[schedules.<name>.schedules]]`); order preserved. */
  schedules: withDefault(tableOf(AgentSchedules), () => ({})),
  /** `[alerts]`: global alert defaults, reminders, detection timings (issue 14). */
  alerts: withDefault(Alerts, () => Schema.decodeUnknownSync(Alerts)({})),
  /** `[notify.NAME]`: notification channels (webhook, email, command). */
  notify: withDefault(NotifyChannels, () => ({})),
  /** Bearer token `GET /metrics` requires; absent: /metrics is open. */
  metrics_token: opt(Secret)
}).pipe(Schema.filter(checkAlertTargets))
export type BartosConfig = typeof BartosConfig.Type

const bartosLinkFields = {
  prefix: withDefault(Enum("ws", "wss"), () => "ws" as const),
  host: withDefault(NonEmptyText, () => "127.0.0.1"),
  port: withDefault(Port, () => 20000),
  /** Pinned CA bundle. */
  ca_cert: opt(NonEmptyText),
  /** mTLS: both or neither. */
  client_cert: opt(NonEmptyText),
  client_key: opt(NonEmptyText),
  api_key: opt(Secret)
}

const bothOrNeither = (t: { readonly client_cert?: string; readonly client_key?: string }) =>
  (t.client_cert === undefined) === (t.client_key === undefined) ||
  {
    path: [t.client_cert === undefined ? "client_cert" : "client_key"],
    message: "client_cert and client_key must be given together"
  }

const bartosLink = <F extends Schema.Struct.Fields>(
  fields: F,
  exclusive: ReadonlyArray<readonly [keyof F & string, keyof F & string]> = []
) => {
  const t = tableWithExclusive(fields, exclusive).pipe(
    Schema.filter(bothOrNeither as (t: any) => true | Schema.FilterIssue)
  ) as unknown as Schema.Schema<Schema.Struct.Type<F>, unknown, never>
  return withDefault(t, () => Schema.decodeUnknownSync(t)({}))
}

/**
 * bartoc's link timings (D5, reference §1.10/§1.11). Defaults are the protocol's. bartos pings a
 * quiet agent at half its `limits.liveness_secs` (default 15, so every 7.5 s) and drops it after
 * the whole of it: `ping_interval_secs` should stay below bartos' `liveness_secs`, and
 * `server_silence_secs` above bartos' half-liveness ping.
 */
const connectionFields = {
  /** Seconds between app-level Pings to bartos (the first goes out at once). */
  ping_interval_secs: withDefault(PositiveNumber, () => 5),
  /** Seconds without any frame from bartos after which the connection is dropped (and the ServerHello deadline). */
  server_silence_secs: withDefault(PositiveNumber, () => 15),
  /** Reconnect backoff: delay n is uniform in [0, min(max, base * 2^n)] seconds. */
  reconnect_base_secs: withDefault(PositiveNumber, () => 1),
  reconnect_max_secs: withDefault(PositiveNumber, () => 30)
}

const connectionTimings = (t: {
  readonly ping_interval_secs: number
  readonly server_silence_secs: number
  readonly reconnect_base_secs: number
  readonly reconnect_max_secs: number
}): true | Schema.FilterIssue =>
  t.server_silence_secs <= t.ping_interval_secs
    ? {
      path: ["server_silence_secs"],
      message: `must be greater than ping_interval_secs (${t.ping_interval_secs}), got ${t.server_silence_secs}`
    }
    : t.reconnect_max_secs < t.reconnect_base_secs
    ? {
      path: ["reconnect_max_secs"],
      message: `must be at least reconnect_base_secs (${t.reconnect_base_secs}), got ${t.reconnect_max_secs}`
    }
    : true

export const BartocConnection = table(connectionFields).pipe(Schema.filter(connectionTimings))
export type BartocConnection = typeof BartocConnection.Type

/**
 * bartoc's `[runner]`: what SIGTERM / Ctrl-C does to running jobs. `wait`: start nothing new, keep
 * streaming the running jobs' output until they end or `shutdown_grace_secs` passes, then stop the
 * rest (recorded `interrupted`, reason `shutdown`); `terminate`: stop them at once. Either way a
 * stopped job gets SIGTERM, then SIGKILL 5 s later. The systemd unit's `TimeoutStopSec` must cover
 * the grace plus that (dist/bartoc.service).
 */
export const BartocRunner = table({
  shutdown: withDefault(Enum("wait", "terminate"), () => "wait" as const),
  shutdown_grace_secs: withDefault(NonNegativeInt, () => 60)
})
export type BartocRunner = typeof BartocRunner.Type

export const BartocConfig = Schema.Struct({
  ...common,
  /** Sent as `?name=`; must match a `[schedules.<name>]` table on bartos. */
  name: withDefault(NonEmptyText, () => os.hostname()),
  /** Absent = retry forever; 0 = exit at once; exhausted = exit 1. */
  retry_count: opt(NonNegativeInt),
  /**
   * Seconds a heartbeat tick may be late before bartoc decides its own runtime stalled and
   * reconnects (reference meaning). A silent server is dropped after
   * `connection.server_silence_secs` regardless.
   */
  client_timeout: withDefault(PositiveNumber, () => 10),
  missed_tick: withDefault(Enum(...Messages.MissedTick.literals), () => "Burst" as const),
  catch_up_limit: withDefault(NonNegativeInt, () => 10),
  outbox_max_mb: withDefault(PositiveNumber, () => 256),
  /** Base64 32-byte Ed25519 public key; set = every bartos frame must verify. */
  server_public_key: opt(Secret),
  hmac_key: opt(Secret),
  replay_window_secs: withDefault(NonNegativeInt, () => 60),
  /** Agent state (outbox) SQLite file; `-r/--redb-absolute-path`. */
  state_path: withDefault(NonEmptyText, () => defaultPaths("bartoc").dbFile),
  /**
   * `servers = ["host1:port", "host2"]` lists every bartos instance to fail over between (an entry
   * without a port takes `port`); prefix, TLS files and api key are shared. `servers` and `host`
   * are one setting: both in one source is an error, and a higher source giving either replaces
   * the other (`BARTOC_BARTOS__SERVERS="h1:20000,h2"` from the environment).
   */
  bartos: bartosLink({ ...bartosLinkFields, servers: opt(ServerList) }, [["host", "servers"]]),
  /** `[connection]`: ping interval, server silence, reconnect backoff. */
  connection: withDefault(BartocConnection, () => Schema.decodeUnknownSync(BartocConnection)({})),
  /** `[runner]`: shutdown behaviour. */
  runner: withDefault(BartocRunner, () => Schema.decodeUnknownSync(BartocRunner)({})),
  tracing: opt(Tracing)
})
export type BartocConfig = typeof BartocConfig.Type

export const CliConfig = Schema.Struct({
  ...common,
  name: withDefault(NonEmptyText, () => "barto-cli"),
  /** Seconds to wait for a reply. */
  timeout_secs: withDefault(PositiveNumber, () => 5),
  bartos: bartosLink({ ...bartosLinkFields, admin_key: opt(Secret) }),
  tracing: opt(Tracing)
})
export type CliConfig = typeof CliConfig.Type

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

export interface LoadOptions {
  /** Explicit config file (`-c`); must exist. Absent: the default path, which may be missing. */
  readonly configPath?: string | undefined
  /** Read no file at all (defaults, env and flags only). */
  readonly noConfigFile?: boolean | undefined
  /**
   * The environment for this call, as a convenience: it becomes `ConfigProvider.fromMap` for the
   * load. Absent: the ambient ConfigProvider (`ConfigProvider.fromEnv()` unless the caller
   * installed another with `Layer.setConfigProvider` / `Effect.withConfigProvider`).
   */
  readonly env?: Record<string, string | undefined> | undefined
  /** Highest-precedence values, nested, with TOML key names; `undefined` leaves mean "not given". */
  readonly flags?: Record<string, unknown> | undefined
}

/**
 * The logging flags every program has (`-v`/`-q` counted, `-e`) as `LoadOptions.flags` values: a
 * flag not given leaves the key to the environment, the file and the default.
 */
export const loggingFlags = (flags: {
  readonly verbose: number
  readonly quiet: number
  readonly enableStdOutput: boolean
}): { verbose: number | undefined; quiet: number | undefined; enable_std_output: true | undefined } => ({
  verbose: flags.verbose > 0 ? flags.verbose : undefined,
  quiet: flags.quiet > 0 ? flags.quiet : undefined,
  enable_std_output: flags.enableStdOutput ? true : undefined
})

const ENV_PREFIX: Record<Program, string> = { bartos: "BARTOS", bartoc: "BARTOC", "barto-cli": "BARTO_CLI" }

const envProvider = (env: Record<string, string | undefined>): ConfigProvider.ConfigProvider =>
  ConfigProvider.fromMap(
    new Map(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined))
  )

/**
 * The environment variables with the program's prefix (`BARTOS_`, `BARTOC_`, `BARTO_CLI_`) that
 * set no key, one warning each (`environment BARTOS_ACTIX_PORT: sets no configuration key,
 * ignored (did you mean BARTOS_ACTIX__PORT?)`). Read from `env`, else the ambient provider.
 */
export const unknownEnvironment = (
  program: Program,
  options?: Pick<LoadOptions, "env">
): Effect.Effect<ReadonlyArray<string>> => {
  const schema = program === "bartos" ? BartosConfig : program === "bartoc" ? BartocConfig : CliConfig
  const found = unknownEnv(ENV_PREFIX[program], shapeOf(schema))
  return options?.env === undefined ? found : Effect.withConfigProvider(found, envProvider(options.env))
}

const loadProgram = <A>(
  program: Program,
  schema: Schema.Schema<A, any, never>,
  defaults: (paths: DefaultPaths) => Record<string, unknown>,
  options: LoadOptions | undefined
): Effect.Effect<A, ConfigError> => {
  const loaded = Effect.gen(function*() {
    // HOME and XDG_* come through the provider too, so an injected environment is self-contained.
    const vars = yield* readVars(["HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"])
    const paths = defaultPaths(program, vars)
    const skipFile = options?.noConfigFile === true
    return yield* load<A>({
      schema,
      envPrefix: ENV_PREFIX[program],
      defaults: defaults(paths),
      configFile: skipFile ? undefined : options?.configPath ?? paths.configFile,
      explicitFile: options?.configPath !== undefined,
      flags: options?.flags,
      home: homeOf(vars)
    })
  }).pipe(Effect.mapError((problems) => ConfigError.of(Array.isArray(problems) ? problems : [problems])))
  return options?.env === undefined ? loaded : Effect.withConfigProvider(loaded, envProvider(options.env))
}

export const loadBartos = (options?: LoadOptions): Effect.Effect<BartosConfig, ConfigError> =>
  loadProgram("bartos", BartosConfig, (p) => ({ sqlite: { path: p.dbFile } }), options)

export const loadBartoc = (options?: LoadOptions): Effect.Effect<BartocConfig, ConfigError> =>
  loadProgram("bartoc", BartocConfig, (p) => ({ name: os.hostname(), state_path: p.dbFile }), options)

export const loadCli = (options?: LoadOptions): Effect.Effect<CliConfig, ConfigError> =>
  loadProgram("barto-cli", CliConfig, () => ({}), options)
