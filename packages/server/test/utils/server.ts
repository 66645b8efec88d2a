/**
 * Test support: a real bartos in-process (real `ws` sockets, port 0) and real `ws` clients that
 * speak the worker and CLI links. Reusable by the e2e suites:
 *
 * ```ts
 * const server = await TestServer.start({ toml: "[[schedules.a.schedules]] ..." })
 * // server.port, server.url("worker", "a") ...
 * await server.close()
 * ```
 * or, in Effect tests, `yield* TestServer.make({...})` inside a scope.
 */
import * as Codec from "@barto/domain/Codec"
import * as Config from "@barto/domain/Config"
import * as Envelope from "@barto/domain/Envelope"
import * as Messages from "@barto/domain/Messages"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { WebSocket } from "ws"
import type { Ingested } from "../../src/Events.js"
import type * as Hub from "../../src/Hub.js"
import { Hub as HubTag } from "../../src/Hub.js"
import * as Main from "../../src/Main.js"
import type { Metrics } from "../../src/Metrics.js"
import type { Registry } from "../../src/Registry.js"
import type { Schedules } from "../../src/Schedules.js"
import type { ServerInfo } from "../../src/ServerInfo.js"
import * as Store from "../../src/Store.js"

// ---------------------------------------------------------------------------------------------
// In-memory Store: the transport tests do not depend on a database, and it can fail on demand
// ---------------------------------------------------------------------------------------------

export interface MemoryStoreControl {
  /** While true, `ingest` fails with a StoreError (as a lost database connection would). */
  failIngest: boolean
  /** When set, `ingest` runs this first (e.g. to hold a transaction open). */
  beforeIngest: Effect.Effect<void> | undefined
  /** Stored records per agent, in arrival order, each seq once per (agent, outboxId). */
  readonly records: Map<string, Array<Messages.AgentRecord>>
  readonly offsets: Map<string, number>
  readonly events: Array<string>
  readonly paused: Set<string>
}

/**
 * Holds the next ingests open: `started` completes when one begins, and every ingest waits for
 * `release` (then clear `beforeIngest` to let later ones through untouched).
 */
export const holdIngest = (control: MemoryStoreControl) =>
  Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    const release = yield* Deferred.make<void>()
    control.beforeIngest = Deferred.succeed(started, undefined).pipe(Effect.zipRight(Deferred.await(release)))
    return {
      started: Deferred.await(started),
      release: Effect.asVoid(Deferred.succeed(release, undefined))
    }
  })

/** The memory store keeps no alert state: no events, no incidents, nothing to deliver. */
const inertAlerts: Store.StoreWithAlerts["alerts"] = {
  record: () => Effect.succeed({ _tag: "Duplicate", decision: undefined, incidentId: null, queued: 0 }),
  known: () => Effect.succeed(false),
  openIncident: () => Effect.succeed(undefined),
  openIncidents: () => Effect.succeed([]),
  remind: () => Effect.succeed(0),
  enqueue: () => Effect.void,
  due: () => Effect.succeed([]),
  delivered: () => Effect.void,
  attemptFailed: () => Effect.void,
  recentDeliveries: () => Effect.succeed([]),
  recentEvents: () => Effect.succeed([]),
  eventCounts: () => Effect.succeed([]),
  deliveryCounts: () => Effect.succeed([]),
  prune: () => Effect.succeed(0),
  scheduleStats: () => Effect.succeed({ runs: [], last: [], events: [], openIncidents: 0, deliveries: [] }),
  run: () => Effect.succeed(undefined),
  finishedSince: () => Effect.succeed([]),
  running: () => Effect.succeed([]),
  lastOutputAt: () => Effect.succeed(null),
  lastLines: () => Effect.succeed([]),
  occurrenceSeen: () => Effect.succeed(true)
}

export const memoryStore = (): { readonly layer: Layer.Layer<Store.Store>; readonly control: MemoryStoreControl } => {
  const control: MemoryStoreControl = {
    failIngest: false,
    beforeIngest: undefined,
    records: new Map(),
    offsets: new Map(),
    events: [],
    paused: new Set()
  }
  const unsupported = (what: string) => Effect.die(`memoryStore: ${what} is not supported`)
  const key = (agent: string, outboxId: string) => `${agent}\u0000${outboxId}`
  const shape: Store.StoreWithAlerts = {
    alerts: inertAlerts,
    kind: "sqlite",
    location: ":memory-test:",
    ingest: (agent, outboxId, records) =>
      Effect.zipRight(
        Effect.suspend(() => control.beforeIngest ?? Effect.void),
        Effect.suspend(() => {
          if (control.failIngest) return Effect.fail(new Store.StoreError({ message: "injected failure" }))
          let offset = control.offsets.get(key(agent, outboxId)) ?? -1
          const stored = control.records.get(agent) ?? []
          for (const r of [...records].sort((a, b) => a.seq - b.seq)) {
            if (r.seq <= offset) continue
            stored.push(r)
            offset = r.seq
          }
          control.records.set(agent, stored)
          control.offsets.set(key(agent, outboxId), offset)
          return Effect.succeed({ upTo: offset, refused: [], lineConflicts: [] })
        })
      ),
    ackedUpTo: (agent, outboxId) => Effect.sync(() => control.offsets.get(key(agent, outboxId)) ?? -1),
    ackedUpToMany: (keys) => Effect.sync(() => keys.map((k) => control.offsets.get(key(k.agent, k.outboxId)) ?? -1)),
    sessionStarted: (s) => Effect.sync(() => void control.events.push(`started ${s.agent} ${s.sessionId}`)),
    sessionOpened: (s, outboxId) =>
      Effect.sync(() => {
        control.events.push(`started ${s.agent} ${s.sessionId}`)
        return {
          started: Either.right(undefined),
          acked: Either.right(control.offsets.get(key(s.agent, outboxId)) ?? -1)
        }
      }),
    sessionsStarted: (ss) =>
      Effect.sync(() => {
        for (const s of ss) control.events.push(`started ${s.agent} ${s.sessionId}`)
      }),
    sessionInfo: (agent, sessionId, info) =>
      Effect.sync(() => void control.events.push(`info ${agent} ${sessionId} ${info.hostname}`)),
    sessionEnded: (agent, sessionId) => Effect.sync(() => void control.events.push(`ended ${agent} ${sessionId}`)),
    sessionsEnded: (ends) =>
      Effect.sync(() => {
        for (const e of ends) control.events.push(`ended ${e.agent} ${e.sessionId}`)
      }),
    markLost: (agent) => Effect.sync(() => (control.events.push(`lost ${agent}`), 1)),
    listCommands: () => unsupported("listCommands"),
    listLines: () => unsupported("listLines"),
    cmdLines: () => unsupported("cmdLines"),
    failed: () => unsupported("failed"),
    successfulLines: () => unsupported("successfulLines"),
    runs: () => unsupported("runs"),
    getRun: () => unsupported("getRun"),
    runCommands: () => unsupported("runCommands"),
    countRuns: () => unsupported("countRuns"),
    recentRuns: () => unsupported("recentRuns"),
    agents: () => unsupported("agents"),
    latestRun: () => unsupported("latestRun"),
    runLines: () => unsupported("runLines"),
    query: () => unsupported("query"),
    cleanup: () => unsupported("cleanup"),
    retention: () => Effect.succeed({ runs: 0, lines: 0 }),
    setPaused: (agent, schedule, paused) =>
      Effect.sync(() => {
        if (paused) control.paused.add(`${agent}/${schedule}`)
        else control.paused.delete(`${agent}/${schedule}`)
      }),
    paused: () =>
      Effect.sync(() =>
        [...control.paused].map((p) => {
          const [agent, schedule] = p.split("/") as [string, string]
          return { agent, schedule }
        })
      )
  }
  return { layer: Layer.succeed(Store.Store, shape), control }
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

export type Services = Hub.Hub | ServerInfo | Registry | Schedules | Metrics | Store.Store | Ingested

export interface TestServerOptions {
  /** bartos.toml contents. `[actix]`/`[sqlite]`/`[mariadb]` are ignored: port 0, store below. */
  readonly toml?: string
  /** Default "memory" (see `memoryStore`); "sqlite" = a fresh file in the temp dir. */
  readonly store?: "memory" | "sqlite" | Layer.Layer<Store.Store, Store.StoreError>
  /** Adjust the hub (TLS, timeouts); ports are 0 unless set here. */
  readonly hub?: (options: Hub.Options) => Hub.Options
  /** File watch + SIGHUP (default false, so parallel servers in one process stay independent). */
  readonly hotReload?: boolean
  /** Print the server's logs to stderr as they happen (debugging). */
  readonly printLogs?: boolean
}

export interface TestServer {
  readonly port: number
  readonly listeners: ReadonlyArray<Hub.Listener>
  readonly url: (link: "worker" | "cli", name?: string) => string
  readonly dir: string
  readonly configFile: string
  readonly config: Config.BartosConfig
  readonly memory: MemoryStoreControl | undefined
  readonly context: Context.Context<Services>
  /** Every log message so far, `LEVEL message`. */
  readonly logs: Array<string>
  /** Resolves when a log message containing `text` appears (already logged counts). */
  readonly waitForLog: (text: string, timeoutMs?: number) => Effect.Effect<void, Error>
  readonly writeConfig: (toml: string) => Effect.Effect<void>
  readonly teardown: Effect.Effect<void>
}

export const make = (options: TestServerOptions = {}): Effect.Effect<TestServer, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bartos-test-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
    const configFile = path.join(dir, "bartos.toml")
    fs.writeFileSync(configFile, options.toml ?? "")
    const loadOptions: Config.LoadOptions = { configPath: configFile, env: {} }
    const config = yield* Config.loadBartos(loadOptions)
    const memory = options.store === undefined || options.store === "memory" ? memoryStore() : undefined
    const store = memory !== undefined
      ? memory.layer
      : options.store === "sqlite"
      ? Store.layerSqlite({ filename: path.join(dir, "bartos.db") })
      : (options.store as Layer.Layer<Store.Store, Store.StoreError>)

    const logs: Array<string> = []
    const logWaiters = new Set<{ text: string; done: Deferred.Deferred<void> }>()
    const capture = Logger.make(({ logLevel, message }) => {
      const text = `${logLevel.label} ${Array.isArray(message) ? message.map(String).join(" ") : String(message)}`
      logs.push(text)
      if (options.printLogs) process.stderr.write(`[bartos] ${text}\n`)
      for (const w of logWaiters) if (text.includes(w.text)) Deferred.unsafeDone(w.done, Exit.void)
    })

    const main = Main.layer({
      version: "0.0.0-test",
      config,
      loadOptions,
      configFile,
      hotReload: options.hotReload ?? false,
      overrides: {
        store,
        hub: (o) => {
          const base: Hub.Options = {
            ...o,
            plain: o.plain === undefined ? undefined : { host: "127.0.0.1", port: 0 },
            tls: o.tls === undefined ? undefined : { ...o.tls, host: "127.0.0.1", port: 0 }
          }
          return options.hub?.(base) ?? base
        }
      }
    }).pipe(
      Layer.provide(Logger.replace(Logger.defaultLogger, capture)),
      Layer.provide(Logger.minimumLogLevel(LogLevel.Debug))
    )
    const scope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
    const context = (yield* Layer.buildWithScope(main, scope)) as Context.Context<Services>
    const hub = Context.get(context, HubTag)
    const first = hub.listeners[0]!
    return {
      port: first.port,
      listeners: hub.listeners,
      url: (link, name) => `${first.url}/v1/ws/${link}${name === undefined ? "" : `?name=${encodeURIComponent(name)}`}`,
      dir,
      configFile,
      config,
      memory: memory?.control,
      context,
      logs,
      waitForLog: (text, timeoutMs = 5000) =>
        Effect.suspend(() => {
          if (logs.some((l) => l.includes(text))) return Effect.void
          const done = Deferred.unsafeMake<void>(undefined as never)
          const waiter = { text, done }
          logWaiters.add(waiter)
          return Deferred.await(done).pipe(
            Effect.timeoutFail({
              duration: Duration.millis(timeoutMs),
              onTimeout: () =>
                new Error(`no log containing '${text}' within ${timeoutMs} ms; logs:\n${logs.join("\n")}`)
            }),
            Effect.ensuring(Effect.sync(() => logWaiters.delete(waiter)))
          )
        }),
      writeConfig: (toml) => Effect.sync(() => fs.writeFileSync(configFile, toml)),
      teardown: Scope.close(scope, Exit.void)
    } satisfies TestServer
  })

/** Promise form for suites outside Effect: `close()` shuts the server down and deletes its files. */
export const start = async (options: TestServerOptions = {}): Promise<TestServer & { close: () => Promise<void> }> => {
  const scope = Effect.runSync(Scope.make())
  const server = await Effect.runPromise(Scope.extend(make(options), scope))
  return { ...server, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

export interface ClientOptions {
  readonly headers?: Record<string, string>
  /** TLS: CA to trust, and a client certificate for mTLS (PEM contents). */
  readonly ca?: string
  readonly cert?: string
  readonly key?: string
  /** Worker link: wrap outgoing frames in the HMAC envelope and open incoming ones. */
  readonly hmacKey?: string
  /** Worker link: verify the server's signature on incoming frames. */
  readonly publicKey?: Envelope.PublicKey
  /** Answer protocol pings (default true, as every `ws` client). */
  readonly autoPong?: boolean
  /**
   * Worker link: this connection's session nonce, sent in the upgrade (default: a fresh one);
   * `null` sends none, as a bartoc from before session binding.
   */
  readonly agentNonce?: Envelope.SessionNonce | null
}

export interface Closed {
  readonly code: number
  readonly reason: string
}

export interface Client<In, Out> {
  readonly ws: WebSocket
  /** Every frame received, as received (before opening and decoding). */
  readonly frames: Array<Uint8Array>
  /** The next message (fails after `timeoutMs`, default 5 s, or if the socket closed first). */
  readonly next: (timeoutMs?: number) => Effect.Effect<In, Error>
  /** Skips messages until one with `tag` arrives. */
  readonly nextTagged: <T extends In extends { _tag: infer X } ? X : never>(
    tag: T,
    timeoutMs?: number
  ) => Effect.Effect<Extract<In, { _tag: T }>, Error>
  /** Every message received and not yet taken. */
  readonly drain: Effect.Effect<ReadonlyArray<In>>
  readonly send: (message: Out) => Effect.Effect<void>
  readonly sendRaw: (data: Uint8Array | string, binary?: boolean) => Effect.Effect<void>
  readonly closed: (timeoutMs?: number) => Effect.Effect<Closed, Error>
  readonly close: Effect.Effect<void>
}

/** Outcome of an upgrade attempt: the HTTP status when refused, or a live socket. */
export const attempt = (url: string, options: ClientOptions = {}): Effect.Effect<
  | {
    readonly _tag: "Open"
    readonly ws: WebSocket
    readonly headers: Record<string, string | Array<string> | undefined>
  }
  | { readonly _tag: "Refused"; readonly status: number; readonly body: string }
  | {
    readonly _tag: "Failed"
    readonly error: string
  }
> =>
  Effect.async((resume) => {
    const ws = new WebSocket(url, {
      ...(options.headers !== undefined ? { headers: options.headers } : {}),
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
      ...(options.cert !== undefined ? { cert: options.cert } : {}),
      ...(options.key !== undefined ? { key: options.key } : {}),
      ...(options.autoPong !== undefined ? { autoPong: options.autoPong } : {})
    })
    ws.on("unexpected-response", (_req, res) => {
      let body = ""
      res.on("data", (c: Buffer) => (body += c.toString("utf8")))
      res.on("end", () => resume(Effect.succeed({ _tag: "Refused", status: res.statusCode ?? 0, body })))
      res.on("error", () => resume(Effect.succeed({ _tag: "Refused", status: res.statusCode ?? 0, body })))
    })
    let headers: Record<string, string | Array<string> | undefined> = {}
    ws.once("upgrade", (res) => (headers = res.headers))
    ws.once("open", () => resume(Effect.succeed({ _tag: "Open", ws, headers })))
    ws.once("error", (e) => resume(Effect.succeed({ _tag: "Failed", error: e.message })))
    return Effect.sync(() => ws.terminate())
  })

const makeClient = <In, Out>(
  ws: WebSocket,
  decode: (bytes: Uint8Array) => Either.Either<In, string>,
  encode: (message: Out) => Uint8Array
): Effect.Effect<Client<In, Out>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const inbox = yield* Queue.unbounded<Either.Either<In, string>>()
    const closed = yield* Deferred.make<Closed>()
    const frames: Array<Uint8Array> = []
    ws.on("message", (data: Buffer) => {
      const bytes = new Uint8Array(data)
      frames.push(bytes)
      Queue.unsafeOffer(inbox, decode(bytes))
    })
    ws.on(
      "close",
      (code, reason) => Deferred.unsafeDone(closed, Exit.succeed({ code, reason: reason.toString("utf8") }))
    )
    ws.on("error", () => {})
    yield* Effect.addFinalizer(() => Effect.sync(() => ws.terminate()))
    const timeout = (ms: number | undefined, what: string) =>
      Effect.timeoutFail({
        duration: Duration.millis(ms ?? 5000),
        onTimeout: () => new Error(`timed out waiting for ${what}`)
      })
    const next = (timeoutMs?: number) =>
      Effect.raceFirst(
        Queue.take(inbox).pipe(
          Effect.flatMap(Either.match({ onLeft: (e) => Effect.fail(new Error(e)), onRight: Effect.succeed }))
        ),
        Deferred.await(closed).pipe(
          Effect.delay(Duration.millis(50)),
          Effect.flatMap((c) =>
            Queue.poll(inbox).pipe(
              Effect.flatMap(Option.match({
                onNone: () =>
                  Effect.fail(new Error(`socket closed (${c.code} ${c.reason}) while waiting for a message`)),
                onSome: Either.match({ onLeft: (e) => Effect.fail(new Error(e)), onRight: Effect.succeed })
              }))
            )
          )
        )
      ).pipe(timeout(timeoutMs, "a message"))
    const client: Client<In, Out> = {
      ws,
      frames,
      next,
      nextTagged: (tag, timeoutMs) =>
        Effect.gen(function*() {
          while (true) {
            const m = yield* next(timeoutMs)
            if ((m as { _tag?: unknown })._tag === tag) return m as never
          }
        }).pipe(timeout(timeoutMs, `a ${tag}`)),
      drain: Queue.takeAll(inbox).pipe(
        Effect.map((all) => [...all].flatMap((e) => (Either.isRight(e) ? [e.right] : [])))
      ),
      send: (message) => Effect.sync(() => ws.send(encode(message), { binary: true })),
      sendRaw: (data, binary = true) => Effect.sync(() => ws.send(data, { binary })),
      closed: (timeoutMs) => Deferred.await(closed).pipe(timeout(timeoutMs, "the close")),
      close: Effect.sync(() => ws.close())
    }
    return client
  })

const codec = Codec.makeJson({ maxFrameBytes: 64 * 1024 * 1024 })

const openOrFail = (url: string, options: ClientOptions) =>
  attempt(url, options).pipe(
    Effect.flatMap((r) =>
      r._tag === "Open"
        ? Effect.succeed(r)
        : Effect.fail(new Error(r._tag === "Refused" ? `upgrade refused: ${r.status} ${r.body}` : r.error))
    )
  )

export interface AgentClient extends Client<Messages.ServerMessage, Messages.AgentToServer> {
  /** The bytes `send` would write, sealed for this connection with the next counter (which it takes). */
  readonly seal: (message: Messages.AgentToServer) => Uint8Array
  /** This connection's session nonces (undefined when the server sent none, or we sent none). */
  readonly nonces:
    | { readonly agentNonce: Envelope.SessionNonce; readonly serverNonce: Envelope.SessionNonce }
    | undefined
}

/**
 * A worker-link client that seals and opens like bartoc: HMAC (and the server's signature) over
 * the session binding of this connection (`Envelope.ts`), counters included.
 */
export const connectAgent = (
  url: string,
  options: ClientOptions = {}
): Effect.Effect<AgentClient, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const agentNonce = options.agentNonce === undefined ? Envelope.makeSessionNonce() : options.agentNonce
    const { headers, ws } = yield* openOrFail(url, {
      ...options,
      headers: {
        ...options.headers,
        ...(agentNonce === null ? {} : { [Envelope.NONCE_HEADER]: Envelope.formatSessionNonce(agentNonce) })
      }
    })
    const serverNonce = Envelope.parseSessionNonce(headers[Envelope.NONCE_HEADER])
    const agent = new URL(url).searchParams.get("name") ?? ""
    const hmacKey = options.hmacKey === undefined ? undefined : Envelope.hmacKeyFromString(options.hmacKey)
    const nonces = Envelope.makeNonceCache()
    const nowSecs = () => Math.floor(Date.now() / 1000)
    let sealed = 0n
    let opened = 0n
    const binding = (sender: "server" | "agent"): Envelope.Binding | undefined =>
      agentNonce === null || serverNonce === undefined
        ? undefined
        : { sender, agent, agentNonce, serverNonce, counter: sender === "agent" ? sealed : opened }
    const seal = (message: Messages.AgentToServer) => {
      const frame = Envelope.seal(
        { hmacKey },
        codec.encode(Messages.AgentToServer, message),
        nowSecs(),
        binding("agent")
      )
      if (hmacKey !== undefined) sealed++
      return frame
    }
    const client = yield* makeClient<Messages.ServerMessage, Messages.AgentToServer>(
      ws,
      (bytes) =>
        Envelope.open(
          { hmacKey, publicKey: options.publicKey, windowSecs: 60, nonces },
          bytes,
          nowSecs(),
          binding("server")
        )
          .pipe(
            Either.map((payload) => {
              opened++
              return payload
            }),
            Either.mapLeft((e) => `bad envelope from server: ${e.message}`),
            Either.flatMap((payload) =>
              Either.mapLeft(
                codec.decode(Messages.ServerMessage, payload),
                (e) => `undecodable server frame: ${e.message}`
              )
            )
          ),
      seal
    )
    return {
      ...client,
      seal,
      nonces: agentNonce === null || serverNonce === undefined ? undefined : { agentNonce, serverNonce }
    }
  })

export type CliClient = Client<Messages.ServerToCli, Messages.CliToServer>

export const connectCli = (url: string, options: ClientOptions = {}): Effect.Effect<CliClient, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const { ws } = yield* openOrFail(url, options)
    return yield* makeClient<Messages.ServerToCli, Messages.CliToServer>(
      ws,
      (bytes) => Either.mapLeft(codec.decode(Messages.ServerToCli, bytes), (e) => e.message),
      (message) => codec.encode(Messages.CliToServer, message)
    )
  })

export const agentHello = (
  overrides: Partial<Omit<typeof Messages.AgentHello.Type, "_tag">> = {}
): typeof Messages.AgentHello.Type => ({
  _tag: "AgentHello",
  protocol: Messages.PROTOCOL_VERSION,
  agentVersion: "0.0.0-test",
  capabilities: [],
  outboxId: "outbox-1",
  lastSeq: -1,
  ...overrides
})

/** Connects, says hello, and returns the client with the server's hello and first table. */
export const helloAgent = (
  server: TestServer,
  name: string,
  options: ClientOptions & { readonly hello?: Partial<Omit<typeof Messages.AgentHello.Type, "_tag">> } = {}
) =>
  Effect.gen(function*() {
    const client = yield* connectAgent(server.url("worker", name), options)
    yield* client.send(agentHello(options.hello))
    const hello = yield* client.nextTagged("ServerHello")
    const table = yield* client.nextTagged("ScheduleTable")
    return { client, hello, table }
  })

export const micros = (ms: number) => Messages.Micros.make(ms * 1000)

/** Encoded form of a message, for tests that tamper with bytes. */
export const encodeAgent = (message: Messages.AgentToServer): Uint8Array =>
  codec.encode(Messages.AgentToServer, message)

export const decodeJson = Schema.decodeUnknownSync(Schema.parseJson(Schema.Unknown))
