/**
 * The yardstick for ingest throughput: how fast this database takes plain batched inserts of
 * output-line-shaped rows (1,000 rows per INSERT by default, each its own autocommitted statement) into a
 * scratch table with the same primary key as `output_lines`. Ingest is expected to reach at
 * least half of this rate (it also reads and advances the offset, and dedupes).
 *
 * Use with the client of the store under test, e.g. `layerSqliteWithClient` /
 * `layerMariadbWithClient` from `@barto/server/Store`. (Benchmark code: it lives here, not in
 * the server's sources, and reaches the server only through its public exports.)
 */
import { StoreError } from "@barto/server/Store"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"

const TABLE = "barto_bench_raw"

/** The scratch table's DDL (same primary key as `output_lines`); `options` = dialect suffix. */
export const rawTableSql = (table: string, options = ""): string =>
  `CREATE TABLE ${table} (run_id VARCHAR(64) NOT NULL, line_seq INT NOT NULL, agent VARCHAR(255) NOT NULL,
    cmd_uuid VARCHAR(64) NOT NULL, stream VARCHAR(8) NOT NULL, ts BIGINT NOT NULL, data MEDIUMTEXT NOT NULL,
    continuation TINYINT NOT NULL, PRIMARY KEY (run_id, line_seq))${options}`

/** One multi-row INSERT of `rowsPerInsert` output-line-shaped rows. */
export const rawInsertSql = (table: string, rowsPerInsert: number): string =>
  `INSERT INTO ${table} (run_id, line_seq, agent, cmd_uuid, stream, ts, data, continuation) VALUES ${
    Array.from({ length: rowsPerInsert }, () => "(?, ?, ?, ?, ?, ?, ?, ?)").join(", ")
  }`

/** The parameters of statement number `b` (rows `b * rowsPerInsert …`). */
export const rawBatchParams = (b: number, rowsPerInsert: number): Array<unknown> => {
  const params: Array<unknown> = []
  for (let i = 0; i < rowsPerInsert; i++) {
    const seq = b * rowsPerInsert + i
    params.push(
      "0190a8f0-0000-7000-8000-000000000001",
      seq,
      "bench-agent",
      "0190a8f0-0000-7000-8000-000000000002",
      seq % 7 === 0 ? "stderr" : "stdout",
      1_700_000_000_000_000 + seq,
      `line ${seq}: the quick brown fox jumps over the lazy dog 0123456789`,
      0
    )
  }
  return params
}

/**
 * Rows per second for `rows` rows (rounded up to whole statements of `rowsPerInsert`, default
 * 1,000). Each statement commits on its own, so on a durable database the rate is bounded by
 * commits: `rowsPerInsert: 500` matches an agent batch (≤ 500 records, one transaction).
 */
export const measureRawInsertRate = (
  rows: number,
  settings?: { readonly rowsPerInsert?: number }
): Effect.Effect<number, StoreError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const BATCH = Math.max(1, Math.floor(settings?.rowsPerInsert ?? 1000))
    const sql = yield* SqlClient.SqlClient
    const options = sql.onDialectOrElse({
      mysql: () => " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
      orElse: () => ""
    })
    yield* sql.unsafe(`DROP TABLE IF EXISTS ${TABLE}`)
    yield* sql.unsafe(rawTableSql(TABLE, options))
    const text = rawInsertSql(TABLE, BATCH)
    const batches = Math.max(1, Math.ceil(rows / BATCH))
    const start = yield* Clock.currentTimeNanos
    for (let b = 0; b < batches; b++) yield* sql.unsafe(text, rawBatchParams(b, BATCH))
    const elapsedNs = Number((yield* Clock.currentTimeNanos) - start)
    yield* sql.unsafe(`DROP TABLE IF EXISTS ${TABLE}`)
    return (batches * BATCH) / (elapsedNs / 1e9)
  }).pipe(
    Effect.mapError((e) => new StoreError({ message: `raw insert benchmark: ${e.message}`, cause: e }))
  )
