/**
 * bartos assembled from Layers: config -> Store, registry and leader (in memory on SQLite; in
 * MariaDB with several instances, `Cluster.ts`), metrics, events, codec -> the live schedule
 * table -> the HTTP/WebSocket hub, the retention job (leader only) and the cluster's table sync.
 *
 * Release runs in reverse: the hub first (stop accepting, close every socket with 1001, let an
 * ingest transaction in flight finish), then the schedule watchers, then the database.
 */
import * as Codec from "@barto/domain/Codec"
import * as Config from "@barto/domain/Config"
import * as Envelope from "@barto/domain/Envelope"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as fs from "node:fs"
import * as os from "node:os"
import * as Alerts from "./Alerts.js"
import * as Cluster from "./Cluster.js"
import * as Events from "./Events.js"
import * as Hub from "./Hub.js"
import * as SessionBatch from "./internal/sessionBatch.js"
import * as Leader from "./Leader.js"
import * as Metrics from "./Metrics.js"
import * as Registry from "./Registry.js"
import * as Retention from "./Retention.js"
import * as Schedules from "./Schedules.js"
import * as Store from "./Store.js"

/** A start-up problem outside the config schema: unreadable certificate, invalid signing key… */
export class StartError extends Data.TaggedError("StartError")<{ readonly message: string }> {}

export interface StartOptions {
  readonly version: string
  readonly config: Config.BartosConfig
  /** The same sources as at start, for every schedule reload. */
  readonly loadOptions: Config.LoadOptions
  /** The config file in use (explicit `-c`, else the default path); watched for changes. */
  readonly configFile: string
  /** Watch the config file and listen for SIGHUP (default true; tests may turn it off). */
  readonly hotReload?: boolean
  /** Tests: adjust the hub (ephemeral ports, short timeouts) or bring their own Store. */
  readonly overrides?: {
    readonly hub?: (options: Hub.Options) => Hub.Options
    readonly store?: Layer.Layer<Store.Store, Store.StoreError>
  }
}

const readPem = (what: string, file: string) =>
  Effect.try({
    try: () => fs.readFileSync(file, "utf8"),
    catch: (e) => new StartError({ message: `actix.tls.${what}: cannot read ${file}: ${(e as Error).message}` })
  })

/** Hub options from config; reads the TLS files and parses the keys (fail-closed on bad keys). */
export const hubOptions = (config: Config.BartosConfig, version: string): Effect.Effect<Hub.Options, StartError> =>
  Effect.gen(function*() {
    const signingKey = config.signing_key === undefined ? undefined : Envelope.parseSigningKey(config.signing_key)
    if (signingKey !== undefined && Either.isLeft(signingKey)) {
      // The reference warns and sends unsigned frames; agents that pin the key would then drop
      // every frame while bartos looks healthy. Refusing to start is the honest failure.
      return yield* new StartError({ message: `signing_key: ${signingKey.left.message}` })
    }
    const t = config.actix.tls
    const tls = t === undefined ? undefined : {
      host: t.ip,
      port: t.port,
      cert: yield* readPem("cert_file_path", t.cert_file_path),
      key: yield* readPem("key_file_path", t.key_file_path),
      clientCa: t.client_ca_cert === undefined ? undefined : yield* readPem("client_ca_cert", t.client_ca_cert)
    }
    const plainOn = tls === undefined || config.allow_plaintext
    if (plainOn && tls?.clientCa !== undefined) {
      yield* Effect.logWarning(
        `SECURITY: allow_plaintext = true with mTLS: the plain listener ws://${config.actix.ip}:${config.actix.port} ` +
          "takes no client certificate, so neither the agent name binding nor the barto-cli certificate role applies " +
          "there: whoever holds the api key (every agent does) can connect as any agent or as barto-cli. " +
          "Turn allow_plaintext off, or bind the plain listener to an interface only trusted peers reach."
      )
    }
    if (config.admin_key === undefined) {
      yield* Effect.logWarning(
        "no admin_key configured: cleanup, run, cancel, pause and resume are allowed only from loopback CLIs"
      )
    }
    return {
      serverVersion: version,
      plain: plainOn ? { host: config.actix.ip, port: config.actix.port } : undefined,
      tls,
      apiKey: config.api_key,
      adminKey: config.admin_key,
      metricsToken: config.metrics_token,
      hmacKey: config.hmac_key === undefined ? undefined : Envelope.hmacKeyFromString(config.hmac_key),
      signingKey: signingKey === undefined ? undefined : signingKey.right,
      maxFrameBytes: config.limits.max_frame_bytes,
      livenessMs: Math.round(config.limits.liveness_secs * 1000),
      queryRowCap: config.limits.query_row_cap,
      queryMaxBytes: config.limits.query_max_bytes,
      queryTimeoutMs: config.limits.query_timeout_ms,
      queryRequiresAdmin: config.query_requires_admin ?? config.admin_key !== undefined,
      maxAnswerBytes: config.limits.max_answer_bytes,
      trustedProxies: config.actix.trusted_proxies,
      web: { consoleEnabled: config.console.enabled, sessionTtlSecs: config.console.session_ttl }
    } satisfies Hub.Options
  })

export const storeLayer = (config: Config.BartosConfig): Layer.Layer<Store.Store, Store.StoreError> =>
  Store.layerFromConfig(config)

/** The configured store with its session rows group-committed (`internal/sessionBatch.ts`), and its client. */
export const storeWithClientLayer = (
  config: Config.BartosConfig
): Layer.Layer<Store.Store | SqlClient.SqlClient, Store.StoreError> =>
  Layer.scopedContext(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const store = yield* SessionBatch.make(yield* Store.Store, sql)
    return Context.make(Store.Store, store).pipe(Context.add(SqlClient.SqlClient, sql))
  })).pipe(Layer.provide(Store.layerFromConfigWithClient(config)))

/** "sqlite: /path/bartos.db" or "mariadb: host:3306/db" (never a password). */
export const databaseLabel = (config: Config.BartosConfig): string =>
  config.mariadb === undefined
    ? `sqlite: ${config.sqlite.path}`
    : `mariadb: ${config.mariadb.host}:${config.mariadb.port}/${config.mariadb.database}`

const existing = (file: string) => (fs.existsSync(file) ? file : undefined)

/** The schedules of a loaded config, with a locator into the file for their errors. */
export const loadedSchedules = (configFile: string, config: Config.BartosConfig): Schedules.LoadedSchedules => {
  const file = existing(configFile)
  return { file, schedules: config.schedules, locate: file === undefined ? undefined : Config.keyLocator(file) }
}

/**
 * A reload: the whole config again, from the same sources; any error keeps the old table.
 * `onLoad` sees every config that loaded (the alert settings follow reloads through it).
 */
export const reloadSchedules = (
  options: StartOptions,
  onLoad: (config: Config.BartosConfig) => Effect.Effect<void> = () => Effect.void
): Effect.Effect<Schedules.LoadedSchedules, Schedules.ScheduleLoadError> =>
  Config.loadBartos(options.loadOptions).pipe(
    Effect.tap(onLoad),
    Effect.map((config) => loadedSchedules(options.configFile, config)),
    Effect.mapError((e) => new Schedules.ScheduleLoadError({ problems: e.problems }))
  )

export type StartFailure = StartError | Hub.HubError | Schedules.ScheduleLoadError | Store.StoreError

/** The whole server; building it starts listening, releasing it shuts down cleanly. */
export const layer = (options: StartOptions) =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const { config } = options
      const computed = yield* hubOptions(config, options.version)
      const hub = options.overrides?.hub?.(computed) ?? computed
      const services = Layer.mergeAll(
        Metrics.layer,
        Events.layer,
        Codec.layerJson({ maxFrameBytes: config.limits.max_frame_bytes })
      )
      // Several instances share a MariaDB (Cluster.ts): the registry, the leader and the
      // commands live in the database. On SQLite (or a store a test brings) this is the one bartos.
      const clustered = config.mariadb !== undefined && options.overrides?.store === undefined
      const instanceId = config.cluster.instance_id ?? `${os.hostname()}:${config.actix.port}`
      if (clustered && config.cluster.heartbeat_secs * 2 > config.cluster.lease_secs) {
        return yield* new StartError({
          message:
            `cluster.heartbeat_secs: expected at most half of cluster.lease_secs (${config.cluster.lease_secs}), ` +
            `got ${config.cluster.heartbeat_secs}`
        })
      }
      const cluster = Cluster.layer({
        instanceId,
        leaseMs: config.cluster.lease_secs * 1000,
        heartbeatMs: config.cluster.heartbeat_secs * 1000,
        commandTimeoutMs: config.cluster.command_timeout_secs * 1000,
        livenessMs: config.limits.liveness_secs * 1000
      }).pipe(Layer.mapError((e) => new Store.StoreError({ message: `cluster: ${e.message}`, cause: e })))
      const hotReload = options.hotReload ?? true
      const current = yield* Ref.make(config)
      const schedules = Schedules.layer({
        initial: loadedSchedules(options.configFile, config),
        load: reloadSchedules(options, (loaded) => Ref.set(current, loaded)),
        watchFile: hotReload ? options.configFile : undefined,
        sighup: hotReload
      })
      const retention = Retention.layer({
        maxAgeDays: config.retention.max_age_days,
        maxRunsPerSchedule: config.retention.max_runs_per_schedule,
        intervalSecs: config.retention.interval_secs
      })
      // Alert evaluation and delivery: one layer, run on the leader only (Alerts.evaluator).
      const alerts = Alerts.evaluator({ config: Ref.get(current) })
      if (clustered) {
        const base = Layer.mergeAll(services, cluster).pipe(Layer.provideMerge(storeWithClientLayer(config)))
        return Layer.mergeAll(Hub.layer(hub), retention, alerts, Cluster.layerTableSync).pipe(
          Layer.provideMerge(schedules),
          Layer.provideMerge(base)
        )
      }
      const base = Layer.mergeAll(
        services,
        Registry.layer,
        Leader.layerSingle(instanceId),
        options.overrides?.store ??
          Layer.effect(Store.Store, Store.Store).pipe(Layer.provide(storeWithClientLayer(config)))
      )
      return Layer.mergeAll(Hub.layer(hub), retention, alerts).pipe(
        Layer.provideMerge(schedules),
        Layer.provideMerge(base)
      )
    })
  )
