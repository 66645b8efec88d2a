/**
 * Databases for the benchmarks: a SQLite file in a temp dir or a scratch MariaDB database on
 * 127.0.0.1 (created here, dropped afterwards), read access for checks, and three raw
 * batched-insert yardsticks: perf-baselines §3's own method (`baselineRate`), the same 1,000-row
 * statements on `output_lines`' shape through the plain driver (`rawDriverRate`), and through the
 * store's own layer (`rawInsertRate`: the Store engineer's `measureRawInsertRate`).
 */
import * as Store from "@barto/server/Store"
import Database from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import mysql from "mysql2/promise"
import { randomUUID } from "node:crypto"
import * as net from "node:net"
import { join } from "node:path"
import {
  type Db as E2eDb,
  type DbKind,
  mariadbTarget,
  openDb as openE2eDb
} from "../../packages/e2e/test/utils/cluster.js"
import { measureRawInsertRate, rawBatchParams, rawInsertSql, rawTableSql } from "./rawInsert.js"

export { type DbKind, mariadbTarget }

/** True when something answers on the MariaDB port within 2 s. */
/** `<name>=sqlite|mariadb` in the environment: a suite run on that database only; unset or empty: both. */
export const onlyDbFromEnv = (name: string): DbKind | undefined => {
  const only = process.env[name]
  if (only === undefined || only === "") return undefined
  if (only !== "sqlite" && only !== "mariadb") throw new Error(`${name}: '${only}' is not sqlite or mariadb`)
  return only
}

export const mariadbReachable = (): Promise<boolean> => {
  const { host, port } = mariadbTarget()
  return new Promise((resolve) => {
    const socket = net.connect({ host, port })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(2000, () => done(false))
    socket.once("connect", () => done(true))
    socket.once("error", () => done(false))
  })
}

export const mariadbVersion = async (): Promise<string | undefined> => {
  if (!(await mariadbReachable())) return undefined
  const conn = await mysql.createConnection({ ...mariadbTarget(), connectTimeout: 3000 })
  try {
    const [rows] = await conn.query("SELECT VERSION() AS v")
    return String((rows as Array<{ v: unknown }>)[0]?.v)
  } finally {
    await conn.end()
  }
}

export interface Db extends E2eDb {
  /**
   * Raw batched-insert rate (rows/s) of this database through the Store's own client
   * (`measureRawInsertRate`: @effect/sql, 1,000-row INSERTs into a scratch table).
   */
  readonly rawInsertRate: (rows: number) => Promise<number>
  /**
   * The same inserts through the plain driver (better-sqlite3 / mysql2 `query` with 8,000 `?`), one
   * run: the database's speed on bartos' own table shape, without any client library on top.
   */
  readonly rawDriverRate: (rows: number) => Promise<number>
  /**
   * perf-baselines §3's yardstick, measured as §3 did: its table, 1,000-row statements through the
   * plain driver, the table emptied before each of three runs, every row counted. The three rates
   * (rows/s); §3 reports their median.
   */
  readonly baselineRate: (rows: number) => Promise<ReadonlyArray<number>>
}

/** What `Store.layerFromConfig` takes to open `db` (the bartos.toml it was made for, as bartos reads it). */
export const storeConfig = (db: E2eDb): Parameters<typeof Store.layerFromConfig>[0] => {
  const m = db.toml["mariadb"] as
    | { host: string; port: number; username: string; database: string; password?: string; query_password?: string }
    | undefined
  const s = db.toml["sqlite"] as { path: string } | undefined
  return {
    sqlite: { path: s?.path ?? "" },
    mariadb: m === undefined ? undefined : {
      ...m,
      password: m.password === undefined ? undefined : Redacted.make(m.password),
      query_password: m.query_password === undefined ? undefined : Redacted.make(m.query_password)
    }
  }
}

/** The e2e tests' database (SQLite file or scratch MariaDB database) plus the three yardsticks. */
export const openDb = async (kind: DbKind, dir: string): Promise<Db> => {
  const base = await openE2eDb(kind, dir, { prefix: "barto_bench" })
  if (kind === "sqlite") {
    return {
      ...base,
      // A separate file in the same directory: same filesystem, same store pragmas.
      rawInsertRate: (rows) =>
        Effect.runPromise(
          measureRawInsertRate(rows).pipe(
            Effect.provide(Layer.orDie(Store.layerSqliteWithClient({ filename: join(dir, "raw.db") })))
          )
        ),
      baselineRate: async (rows) => {
        const db = new Database(join(dir, "baseline.db"))
        try {
          db.pragma("journal_mode = WAL")
          db.exec(`DROP TABLE IF EXISTS ${BASELINE_TABLE}`)
          db.exec(BASELINE_TABLE_SQLITE)
          const insert = db.prepare(BASELINE_INSERT_SQLITE)
          // §3's SQLite rows: single-row INSERTs, 1,000 per transaction.
          const batch = db.transaction((values: ReadonlyArray<ReadonlyArray<unknown>>) => {
            for (const v of values) insert.run(...v)
          })
          return await baselineRuns(rows, {
            empty: async () => {
              db.exec(`DELETE FROM ${BASELINE_TABLE}`)
            },
            insert: async (b) => {
              batch(baselineRows(b, "sqlite"))
            },
            count: async () => (db.prepare(`SELECT COUNT(*) AS n FROM ${BASELINE_TABLE}`).get() as { n: number }).n
          })
        } finally {
          db.close()
        }
      },
      rawDriverRate: async (rows) => {
        const db = new Database(join(dir, "raw-driver.db"))
        try {
          db.pragma("journal_mode = WAL")
          db.exec(CREATE("barto_bench_driver"))
          const insert = db.prepare(INSERT("barto_bench_driver"))
          return timeBatches(rows, (params) => {
            insert.run(...params)
          })
        } finally {
          db.close()
        }
      }
    }
  }
  const target = mariadbTarget()
  const { database } = base.toml["mariadb"] as { readonly database: string }
  return {
    ...base,
    baselineRate: async (rows) => {
      // A connection of its own with mysql2's defaults: nothing between the driver and the server.
      const conn = await mysql.createConnection({ ...target, database })
      try {
        await conn.query(`DROP TABLE IF EXISTS ${BASELINE_TABLE}`)
        await conn.query(BASELINE_TABLE_MARIADB)
        return await baselineRuns(rows, {
          empty: async () => {
            await conn.query(`TRUNCATE TABLE ${BASELINE_TABLE}`)
          },
          insert: async (b) => {
            await conn.query(BASELINE_INSERT_MARIADB, [baselineRows(b, "mariadb")])
          },
          count: async () => {
            const [r] = await conn.query(`SELECT COUNT(*) AS n FROM ${BASELINE_TABLE}`)
            return Number((r as Array<{ n: number | string }>)[0]?.n ?? 0)
          }
        })
      } finally {
        await conn.query(`DROP TABLE IF EXISTS ${BASELINE_TABLE}`).catch(() => undefined)
        await conn.end()
      }
    },
    rawInsertRate: async (rows) => {
      const layer = Store.layerMariadbWithClient({
        host: target.host,
        port: target.port,
        username: target.user,
        database,
        ...(target.password ? { password: Redacted.make(target.password) } : {})
      })
      return Effect.runPromise(measureRawInsertRate(rows).pipe(Effect.provide(Layer.orDie(layer))))
    },
    rawDriverRate: async (rows) => {
      await base.all(`DROP TABLE IF EXISTS barto_bench_driver`)
      await base.all(`${CREATE("barto_bench_driver")} ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`)
      try {
        const text = INSERT("barto_bench_driver")
        return await timeBatchesAsync(rows, async (params) => {
          await base.all(text, params)
        })
      } finally {
        await base.all(`DROP TABLE IF EXISTS barto_bench_driver`)
      }
    }
  }
}

// --- the plain-driver yardstick: same table shape and rows as the Store's measureRawInsertRate ---

const BATCH = 1000

const CREATE = (table: string) => rawTableSql(table)
const INSERT = (table: string) => rawInsertSql(table, BATCH)
const batchParams = (b: number): Array<unknown> => rawBatchParams(b, BATCH)

/** Rows/s of `rows` rows in autocommitted 1,000-row statements (parameters built inside the clock, as the Store helper does). */
const timeBatches = (rows: number, run: (params: Array<unknown>) => void): number => {
  const batches = Math.max(1, Math.ceil(rows / BATCH))
  const t0 = performance.now()
  for (let b = 0; b < batches; b++) run(batchParams(b))
  return (batches * BATCH) / ((performance.now() - t0) / 1000)
}

const timeBatchesAsync = async (rows: number, run: (params: Array<unknown>) => Promise<void>): Promise<number> => {
  const batches = Math.max(1, Math.ceil(rows / BATCH))
  const t0 = performance.now()
  for (let b = 0; b < batches; b++) await run(batchParams(b))
  return (batches * BATCH) / ((performance.now() - t0) / 1000)
}

// --- perf-baselines §3's yardstick: its table, rows and method ---

const BASELINE_TABLE = "barto_bench_baseline"
const BASELINE_COLUMNS = "run_uuid, client, cmd_name, kind, ts, line"
// §3's planned output table, with the two secondary indexes of its "+ KEY(run_uuid), KEY(ts)" row.
const BASELINE_TABLE_MARIADB = `CREATE TABLE ${BASELINE_TABLE} (id BIGINT AUTO_INCREMENT PRIMARY KEY,
  run_uuid CHAR(36) NOT NULL, client VARCHAR(64) NOT NULL, cmd_name VARCHAR(64) NOT NULL, kind TINYINT NOT NULL,
  ts DATETIME(6) NOT NULL, line TEXT NOT NULL, KEY (run_uuid), KEY (ts)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`
// §3 measured SQLite on the same columns without secondary indexes (no indexed row there).
// `INTEGER PRIMARY KEY` is SQLite's auto-increment rowid (AUTOINCREMENT would add a write per row).
const BASELINE_TABLE_SQLITE = `CREATE TABLE ${BASELINE_TABLE} (id INTEGER PRIMARY KEY,
  run_uuid TEXT NOT NULL, client TEXT NOT NULL, cmd_name TEXT NOT NULL, kind INTEGER NOT NULL, ts TEXT NOT NULL,
  line TEXT NOT NULL)`
// mysql2 expands `VALUES ?` with an array of rows into one multi-row statement (client-side).
const BASELINE_INSERT_MARIADB = `INSERT INTO ${BASELINE_TABLE} (${BASELINE_COLUMNS}) VALUES ?`
const BASELINE_INSERT_SQLITE = `INSERT INTO ${BASELINE_TABLE} (${BASELINE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`
const BASELINE_RUNS = 3

/**
 * Statement `b`'s rows: one run's lines (a random uuid per statement), increasing timestamps and
 * 75-byte lines, ~165 B of payload a row as in §3.
 */
const baselineRows = (b: number, kind: DbKind): Array<Array<unknown>> => {
  const runUuid = randomUUID()
  const t0 = Date.UTC(2026, 10, 23) + b * BATCH
  return Array.from({ length: BATCH }, (_, i) => {
    const n = b * BATCH + i
    const ts = new Date(t0 + i)
    return [
      runUuid,
      "bench-agent-0001",
      "nightly-backup",
      n % 7 === 0 ? 2 : 1,
      kind === "sqlite" ? ts.toISOString() : ts,
      `line ${String(n).padStart(9, "0")}: the quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJ`.slice(
        0,
        75
      )
    ]
  })
}

/**
 * Rows/s of BASELINE_RUNS runs of `rows` rows each in BATCH-row statements (`insert(b)` builds
 * statement b's rows inside the clock, as a writer must); throws if a count is off.
 */
const baselineRuns = async (
  rows: number,
  db: {
    readonly empty: () => Promise<void>
    readonly insert: (b: number) => Promise<void>
    readonly count: () => Promise<number>
  }
): Promise<ReadonlyArray<number>> => {
  const batches = Math.max(1, Math.ceil(rows / BATCH))
  const runs: Array<number> = []
  for (let r = 0; r < BASELINE_RUNS; r++) {
    await db.empty()
    const t0 = performance.now()
    for (let b = 0; b < batches; b++) await db.insert(b)
    runs.push((batches * BATCH) / ((performance.now() - t0) / 1000))
    const counted = await db.count()
    if (counted !== batches * BATCH) throw new Error(`§3 yardstick: ${counted} rows stored of ${batches * BATCH}`)
  }
  return runs
}
