/**
 * A whole barto on loopback for end-to-end tests: real config files in a temp directory, the real
 * bartos / bartoc / barto-cli processes, and direct read access to the database they write, on
 * SQLite or a fresh MariaDB database.
 */
import Database from "better-sqlite3"
import mysql from "mysql2/promise"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { stringify } from "smol-toml"
import { type CliResult, type Proc, runCli, startProcess, waitFor } from "./procs.js"

export type DbKind = "sqlite" | "mariadb"

export const mariadbAvailable = () =>
  process.env.BARTO_MARIADB_AVAILABLE === "1" || process.env.BARTO_REQUIRE_MARIADB === "1"

/** Databases the e2e suites run against: SQLite always, MariaDB when `npm test` found it. */
export const dbKinds = (): Array<DbKind> => (mariadbAvailable() ? ["sqlite", "mariadb"] : ["sqlite"])

export const mariadbTarget = () => {
  const url = new URL(process.env.BARTO_TEST_MARIADB_URL ?? "mysql://root@127.0.0.1:3306")
  return {
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username || "root"),
    password: decodeURIComponent(url.password || "")
  }
}

export interface Db {
  readonly kind: DbKind
  /** Config table for bartos.toml (`[sqlite]` or `[mariadb]`). */
  readonly toml: Record<string, unknown>
  readonly all: <T = Record<string, unknown>>(sql: string, params?: Array<unknown>) => Promise<Array<T>>
  readonly close: () => Promise<void>
}

/**
 * SQLite: the file bartos will create in `dir`. MariaDB: a fresh database named
 * `<prefix>_<pid>_<random>`, dropped by `close`.
 */
export const openDb = async (kind: DbKind, dir: string, options: { readonly prefix?: string } = {}): Promise<Db> => {
  if (kind === "sqlite") {
    const path = join(dir, "bartos.db")
    let handle: Database.Database | undefined
    return {
      kind,
      toml: { sqlite: { path } },
      all: async <T>(sql: string, params: Array<unknown> = []) => {
        handle ??= new Database(path, { readonly: true, fileMustExist: true })
        return handle.prepare(sql).all(...params) as Array<T>
      },
      close: async () => {
        handle?.close()
      }
    }
  }
  const target = mariadbTarget()
  const database = `${options.prefix ?? "barto_e2e"}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  const admin = await mysql.createConnection({ ...target })
  await admin.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4`)
  // `query` runs as an account of its own with SELECT on this database only (SECURITY.md).
  const queryUser = `bq_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  const queryPassword = Math.random().toString(36).slice(2)
  await admin.query(`CREATE USER '${queryUser}'@'%' IDENTIFIED BY '${queryPassword}'`)
  await admin.query(`GRANT SELECT ON \`${database}\`.* TO '${queryUser}'@'%'`)
  const conn = await mysql.createConnection({ ...target, database, supportBigNumbers: true })
  return {
    kind,
    toml: {
      mariadb: {
        host: target.host,
        port: target.port,
        username: target.user,
        database,
        ...(target.password ? { password: target.password } : {}),
        query_username: queryUser,
        query_password: queryPassword
      }
    },
    all: async <T>(sql: string, params: Array<unknown> = []) => {
      const [rows] = await conn.query(sql, params)
      return rows as Array<T>
    },
    close: async () => {
      await conn.end()
      await admin.query(`DROP DATABASE IF EXISTS \`${database}\``)
      await admin.query(`DROP USER IF EXISTS '${queryUser}'@'%'`)
      await admin.end()
    }
  }
}

export interface Schedule {
  name: string
  on_calendar: string
  cmds: Array<string>
  timeout?: number | string
  overlap?: "allow" | "forbid" | "queue"
  on_failure?: "continue" | "stop"
  timezone?: string
}

export interface Cluster {
  readonly dir: string
  readonly db: Db
  port: number
  server: Proc | undefined
  readonly agents: Map<string, Proc>
  readonly serverToml: () => string
  readonly writeServerConfig: (
    patch?: { schedules?: Record<string, Array<Schedule>>; extra?: Record<string, unknown> }
  ) => void
  readonly startServer: (extraArgs?: Array<string>) => Promise<Proc>
  /**
   * Starts a bartoc named `name`. `instance` (default: the name) names its files (config, state,
   * log) and its entry in `agents`, so two instances can share one name; `env` is added to its
   * environment (its jobs inherit it).
   */
  readonly startAgent: (
    name: string,
    extra?: Record<string, unknown>,
    serverPort?: number,
    options?: { readonly instance?: string; readonly env?: Record<string, string> }
  ) => Promise<Proc>
  readonly cli: (args: Array<string>, extra?: Record<string, unknown>) => Promise<CliResult>
  readonly cliJson: <T = unknown>(args: Array<string>, extra?: Record<string, unknown>) => Promise<T>
  /** Writes a file into the cluster's directory; returns its path. */
  readonly file: (name: string, contents: string) => string
  /** The log file (`-t`) of bartos (`"bartos"`) or of an agent (its instance: by default its name). */
  readonly logPath: (who: string) => string
  /** Its contents so far ("" before it exists). */
  readonly log: (who: string) => string
  /** Waits until a line of that log matches `re`; returns the match. */
  readonly waitForLog: (who: string, re: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>
  /** The last lines of every log and process output, for a failing test's report. */
  readonly diagnostics: (lines?: number) => string
  readonly stop: () => Promise<void>
}

export const makeCluster = async (
  kind: DbKind,
  options: { schedules?: Record<string, Array<Schedule>>; server?: Record<string, unknown> } = {}
): Promise<Cluster> => {
  const dir = mkdtempSync(join(tmpdir(), "barto-e2e-"))
  const db = await openDb(kind, dir)
  let schedules = options.schedules ?? {}
  let extra = options.server ?? {}
  const serverTomlPath = join(dir, "bartos.toml")
  let cliCalls = 0
  const cluster: Cluster = {
    dir,
    db,
    port: 0,
    server: undefined,
    agents: new Map(),
    serverToml: () => serverTomlPath,
    writeServerConfig: (patch = {}) => {
      if (patch.schedules) schedules = patch.schedules
      if (patch.extra) extra = patch.extra
      const actixExtra = (extra.actix as Record<string, unknown> | undefined) ?? {}
      const tls = actixExtra.tls as Record<string, unknown> | undefined
      // With TLS the port the cluster pins (and agents dial) is the TLS listener's; the plain
      // one (off unless allow_plaintext) keeps asking for any free port.
      const actix = tls === undefined
        ? { ip: "127.0.0.1", port: cluster.port, ...actixExtra }
        : { ip: "127.0.0.1", port: 0, ...actixExtra, tls: { ip: "127.0.0.1", ...tls, port: cluster.port } }
      const body: Record<string, unknown> = {
        ...extra,
        ...db.toml,
        actix,
        schedules: Object.fromEntries(Object.entries(schedules).map(([agent, list]) => [agent, { schedules: list }]))
      }
      writeFileSync(serverTomlPath, stringify(body))
    },
    startServer: async (extraArgs = []) => {
      cluster.writeServerConfig()
      const proc = startProcess("bartos", ["-c", serverTomlPath, "-t", join(dir, "bartos.log"), ...extraArgs])
      const m = await proc.waitForLine(/listening on wss?:\/\/[^:]+:(\d+)/, 30_000)
      const port = Number(m[1])
      if (cluster.port === 0) {
        // pin the port so restarts and hot reloads keep it
        cluster.port = port
        cluster.writeServerConfig()
      }
      cluster.server = proc
      return proc
    },
    startAgent: async (name, agentExtra = {}, serverPort, options = {}) => {
      const instance = options.instance ?? name
      const path = join(dir, `bartoc-${instance}.toml`)
      const bartos = {
        prefix: "ws",
        host: "127.0.0.1",
        port: serverPort ?? cluster.port,
        ...((agentExtra.bartos as object | undefined) ?? {})
      }
      writeFileSync(
        path,
        stringify({ name, state_path: join(dir, `bartoc-${instance}.db`), ...agentExtra, bartos })
      )
      const proc = startProcess("bartoc", ["-c", path, "-t", join(dir, `bartoc-${instance}.log`)], {
        name: `bartoc:${instance}`,
        ...(options.env !== undefined ? { env: options.env } : {})
      })
      cluster.agents.set(instance, proc)
      return proc
    },
    cli: async (args, cliExtra = {}) => {
      // one config file per call: calls may run concurrently with different settings
      const n = ++cliCalls
      const path = join(dir, `barto-cli-${n}.toml`)
      const bartos = {
        prefix: "ws",
        host: "127.0.0.1",
        port: cluster.port,
        ...((cliExtra.bartos as object | undefined) ?? {})
      }
      writeFileSync(path, stringify({ name: "e2e", ...cliExtra, bartos }))
      return runCli(["-c", path, "-t", join(dir, `barto-cli-${n}.log`), ...args])
    },
    cliJson: async <T>(args: Array<string>, cliExtra?: Record<string, unknown>) => {
      const r = await cluster.cli([...args, "--json"], cliExtra)
      if (r.code !== 0) throw new Error(`barto-cli ${args.join(" ")} exited ${r.code}: ${r.stderr}`)
      return JSON.parse(r.stdout) as T
    },
    file: (name, contents) => {
      const path = join(dir, name)
      writeFileSync(path, contents)
      return path
    },
    logPath: (who) => join(dir, who === "bartos" ? "bartos.log" : `bartoc-${who}.log`),
    log: (who) => {
      const path = cluster.logPath(who)
      return existsSync(path) ? readFileSync(path, "utf8") : ""
    },
    waitForLog: (who, re, timeoutMs = 20_000) =>
      waitFor(`${who}'s log to match ${re}`, () => {
        for (const line of cluster.log(who).split("\n")) {
          const m = line.match(re)
          if (m) return m
        }
        return undefined
      }, { timeoutMs, intervalMs: 100 }),
    diagnostics: (lines = 40) => {
      const tail = (text: string) => text.split("\n").slice(-lines).join("\n")
      const parts = [`=== bartos.log ===\n${tail(cluster.log("bartos"))}`]
      if (cluster.server) parts.push(tail(cluster.server.output()))
      for (const [name, proc] of cluster.agents) {
        parts.push(`=== bartoc-${name}.log ===\n${tail(cluster.log(name))}`, tail(proc.output()))
      }
      return parts.join("\n")
    },
    stop: async () => {
      await Promise.all([...cluster.agents.values()].map((a) => a.stop()))
      if (cluster.server) await cluster.server.stop()
      await db.close()
      rmSync(dir, { recursive: true, force: true })
    }
  }
  return cluster
}

export { waitFor }
