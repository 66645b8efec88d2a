/**
 * Databases for the benchmarks: a SQLite file in a temp dir or a scratch MariaDB database on
 * 127.0.0.1 (created here, dropped afterwards), read access for checks, and the raw batched-insert
 * yardstick of the Store engineer (`measureRawInsertRate`) run through the store's own layer, so
 * the yardstick uses the same client, pragmas and table shape as bartos.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import Database from "better-sqlite3"
import mysql from "mysql2/promise"
import * as net from "node:net"
import { join } from "node:path"
import * as Store from "@barto/server/Store"
import { type Db as E2eDb, type DbKind, mariadbTarget, openDb as openE2eDb } from "../../packages/e2e/test/utils/cluster.js"
import {
  measureRawInsertRate,
  rawBatchParams,
  rawInsertSql,
  rawTableSql
} from "../../packages/server/src/internal/store/bench.js"

export { type DbKind, mariadbTarget }

/** True when something answers on the MariaDB port within 2 s. */
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
   * The same inserts through the plain driver (better-sqlite3 / mysql2 `query`), as perf-baselines
   * §3 measured the database: the physical yardstick, without any client library on top.
   */
  readonly rawDriverRate: (rows: number) => Promise<number>
}

/** The e2e tests' database (SQLite file or scratch MariaDB database) plus the two yardsticks. */
export const openDb = async (kind: DbKind, dir: string): Promise<Db> => {
  const base = await openE2eDb(kind, dir, { prefix: "barto_bench" })
  if (kind === "sqlite") {
    return {
      ...base,
      // A separate file in the same directory: same filesystem, same store pragmas.
      rawInsertRate: (rows) =>
        Effect.runPromise(
          measureRawInsertRate(rows).pipe(Effect.provide(Layer.orDie(Store.layerSqliteWithClient({ filename: join(dir, "raw.db") }))))
        ),
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
