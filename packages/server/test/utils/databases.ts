/**
 * The databases every store-backed server suite runs against: SQLite always, MariaDB when it
 * answers. Each layer build gets a fresh database (a temporary SQLite file; a new MariaDB
 * database `barto_test_<random>`, dropped when the layer is released).
 *
 * MariaDB: `BARTO_TEST_MARIADB_URL` (`mysql://user:pass@host:port`), else 127.0.0.1:3306 as root
 * with an empty password. When it does not answer, the MariaDB half is skipped with a loud
 * warning, unless `BARTO_REQUIRE_MARIADB=1` (CI), where its layer fails and so do its tests.
 *
 * Use with `layer(db.layer(), { excludeTestServices: true })` from @effect/vitest: the clients
 * time out on the clock, and a layer built under TestClock hangs (style.md §6).
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Mysql from "mysql2/promise"
import * as Crypto from "node:crypto"
import type { Store } from "../../src/Store.js"
import { layerMariadbWithClient, layerSqliteWithClient, StoreError } from "../../src/Store.js"

export interface TestDatabase {
  readonly name: "sqlite" | "mariadb"
  /** A fresh, migrated database per build. */
  readonly layer: () => Layer.Layer<Store | SqlClient.SqlClient, StoreError>
}

interface MariadbServer {
  readonly host: string
  readonly port: number
  readonly user: string
  readonly password: string
}

const mariadbServer = (): MariadbServer => {
  const url = process.env.BARTO_TEST_MARIADB_URL
  if (url === undefined || url === "") return { host: "127.0.0.1", port: 3306, user: "root", password: "" }
  const u = new URL(url)
  return {
    host: u.hostname,
    port: u.port === "" ? 3306 : Number(u.port),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password)
  }
}

const admin = (server: MariadbServer) =>
  Mysql.createConnection({
    host: server.host,
    port: server.port,
    user: server.user,
    password: server.password,
    connectTimeout: 3000
  })

const probe = async (server: MariadbServer): Promise<string | undefined> => {
  try {
    const conn = await admin(server)
    await conn.query("SELECT 1")
    await conn.end()
    return undefined
  } catch (e) {
    return e instanceof Error ? e.message : String(e)
  }
}

const server = mariadbServer()
const where = `${server.host}:${server.port}`
const required = process.env.BARTO_REQUIRE_MARIADB === "1"
const unreachable = await probe(server)

const sqlite: TestDatabase = { name: "sqlite", layer: () => layerSqliteWithClient({ filename: ":memory:" }) }

/** A fresh database and its `query` account (SELECT on it only), both dropped with the scope. */
export const mariadbDatabase = (prefix = "barto_test") =>
  Effect.gen(function*() {
    const database = `${prefix}_${Crypto.randomBytes(6).toString("hex")}`
    const queryUser = `bq_${Crypto.randomBytes(6).toString("hex")}`
    const queryPassword = Crypto.randomBytes(12).toString("hex")
    yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const conn = await admin(server)
          await conn.query(`CREATE DATABASE \`${database}\``)
          await conn.query(`CREATE USER '${queryUser}'@'%' IDENTIFIED BY '${queryPassword}'`)
          await conn.query(`GRANT SELECT ON \`${database}\`.* TO '${queryUser}'@'%'`)
          await conn.end()
        },
        catch: (cause) => new StoreError({ message: `cannot create test database ${database} on ${where}`, cause })
      }),
      () =>
        Effect.promise(async () => {
          const conn = await admin(server)
          await conn.query(`DROP DATABASE IF EXISTS \`${database}\``)
          await conn.query(`DROP USER IF EXISTS '${queryUser}'@'%'`)
          await conn.end()
        }).pipe(Effect.orElse(() => Effect.void))
    )
    return {
      host: server.host,
      port: server.port,
      username: server.user,
      password: Redacted.make(server.password),
      database,
      queryUsername: queryUser,
      queryPassword: Redacted.make(queryPassword)
    }
  })

/** Runs statements as the server's admin account (tests that change grants or watch the server). */
export const asAdmin = <A>(use: (conn: Mysql.Connection) => Promise<A>) =>
  Effect.promise(async () => {
    const conn = await admin(server)
    try {
      return await use(conn)
    } finally {
      await conn.end()
    }
  })

/** How many statements starting with `prefix` run on the server as `user` (from the processlist). */
export const runningStatements = (user: string, prefix: string) =>
  asAdmin(async (conn) => {
    const [rows] = await conn.query(
      "SELECT id FROM information_schema.PROCESSLIST WHERE user = ? AND command = 'Query' AND info LIKE ?",
      [user, `${prefix}%`]
    )
    return (rows as Array<unknown>).length
  })

const mariadbLayer = (): Layer.Layer<Store | SqlClient.SqlClient, StoreError> =>
  Layer.unwrapScoped(Effect.map(mariadbDatabase(), (options) => layerMariadbWithClient(options)))

const mariadb: TestDatabase | undefined = unreachable === undefined
  ? { name: "mariadb", layer: mariadbLayer }
  : required
  ? {
    name: "mariadb",
    layer: () =>
      Layer.fail(
        new StoreError({
          message: `BARTO_REQUIRE_MARIADB=1 but MariaDB is not reachable at ${where}: ${unreachable}`
        })
      )
  }
  : undefined

if (mariadb === undefined) {
  console.warn(
    [
      "",
      "#".repeat(100),
      `#  MariaDB not reachable at ${where} (${unreachable}):`,
      "#  the MariaDB half of the store tests did NOT run. Set BARTO_TEST_MARIADB_URL, or start MariaDB.",
      "#".repeat(100),
      ""
    ].join("\n")
  )
}

export const databases: ReadonlyArray<TestDatabase> = mariadb === undefined ? [sqlite] : [sqlite, mariadb]
