/**
 * Rows read back from the store are decoded through Schema (`internal/store/rows.ts`): the
 * compiled decoders agree with the schemas of record on both drivers' value shapes, and a stored
 * row that does not fit its schema is a `StoreError` naming the read, never a malformed RunRow.
 */
import * as Decoder from "@barto/domain/Decoder"
import { FailedRow, LineRow, RunRow } from "@barto/domain/Messages"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import {
  compiledRowSchemas,
  decodeFailedRow,
  decodeLineRow,
  decodeRunRow,
  FailedRowFromDb,
  LineRowFromDb,
  RunRowFromDb
} from "../src/internal/store/rows.js"
import { Store } from "../src/Store.js"
import { databases } from "./utils/databases.js"

// SQLite hands back numbers; mysql2 (bigNumberStrings) hands back BIGINT and COUNT as strings.
const runSqlite = {
  run_id: "r-1",
  agent: "a",
  schedule: "s",
  run_trigger: "manual",
  state: "failed",
  scheduled_at: 1_900_000_000_000_000,
  started_at: 1_900_000_000_100_000,
  finished_at: 1_900_000_000_200_000,
  exit_code: 3,
  exit_signal: null,
  reason: null,
  scheduled_until: null,
  occurrences: 1
}
const runMariadb = {
  ...runSqlite,
  scheduled_at: "1900000000000000",
  started_at: "1900000000100000",
  finished_at: "1900000000200000"
}

const lineRow = {
  run_id: "r-1",
  agent: "a",
  schedule: "s",
  cmd_uuid: "c-1",
  line_seq: 7,
  stream: "stderr",
  ts: "1900000000150000",
  data: "boom",
  continuation: 1,
  exit_code: 3,
  state: "failed"
}

const failedRow = {
  run_id: "r-1",
  agent: "a",
  schedule: "s",
  cmd_uuid: "c-1",
  command: "false",
  state: "failed",
  exit_code: "3",
  exit_signal: null,
  fin: 1_900_000_000_200_000,
  lines: ["boom"]
}

describe("store rows", () => {
  it("the row decoders compile (the hot path of paged reads)", () => {
    assert.isTrue(Decoder.isCompiled(compiledRowSchemas.run))
    assert.isTrue(Decoder.isCompiled(compiledRowSchemas.line))
    assert.isTrue(Decoder.isCompiled(compiledRowSchemas.failed))
  })

  it("compiled decoding equals the schema of record, for both drivers' value shapes", () => {
    for (const row of [runSqlite, runMariadb]) {
      const fast = Either.getOrThrow(decodeRunRow(row))
      assert.instanceOf(fast, RunRow)
      assert.deepStrictEqual(fast, Schema.decodeUnknownSync(RunRowFromDb)(row))
      assert.strictEqual(fast.scheduledAt, 1_900_000_000_000_000)
      assert.strictEqual(fast.trigger, "manual")
    }
    const line = Either.getOrThrow(decodeLineRow(lineRow))
    assert.instanceOf(line, LineRow)
    assert.deepStrictEqual(line, Schema.decodeUnknownSync(LineRowFromDb)(lineRow))
    assert.isTrue(line.continuation)
    assert.strictEqual(line.ts, 1_900_000_000_150_000)
    const failed = Either.getOrThrow(decodeFailedRow(failedRow))
    assert.instanceOf(failed, FailedRow)
    assert.deepStrictEqual(failed, Schema.decodeUnknownSync(FailedRowFromDb)(failedRow))
    assert.strictEqual(failed.exitCode, 3)
  })

  it("a row written before the occurrences column counts as one occurrence", () => {
    assert.strictEqual(Either.getOrThrow(decodeRunRow({ ...runSqlite, occurrences: null })).occurrences, 1)
  })

  it("values outside the schema are refused, by the compiled path and by Schema alike", () => {
    const bad: ReadonlyArray<Record<string, unknown>> = [
      { ...runSqlite, state: "exploded" },
      { ...runSqlite, run_trigger: "cron" },
      { ...runSqlite, scheduled_at: 1.5 },
      { ...runMariadb, started_at: "soon" },
      { ...runSqlite, scheduled_at: null },
      { ...runSqlite, agent: 42 },
      { ...runSqlite, run_id: "x".repeat(65) }
    ]
    for (const row of bad) {
      const result = decodeRunRow(row)
      assert.isTrue(Either.isLeft(result), JSON.stringify(row))
      assert.isTrue(Either.isLeft(Schema.decodeUnknownEither(RunRowFromDb)(row)))
    }
    assert.isTrue(Either.isLeft(decodeLineRow({ ...lineRow, stream: "stdin" })))
    assert.isTrue(Either.isLeft(decodeFailedRow({ ...failedRow, lines: [1] })))
  })
})

for (const db of databases) {
  layer(db.layer(), { excludeTestServices: true, timeout: "60 seconds" })(`store rows on ${db.name}`, (it) => {
    it.effect("a stored row that does not decode fails the read with a StoreError naming it", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const sql = yield* SqlClient.SqlClient
        yield* store.ingest("rows-agent", "o", [{
          _tag: "RunStarted",
          seq: 0,
          runId: "rows-run" as never,
          schedule: "rows-s",
          trigger: "schedule",
          scheduledAt: 1_900_000_000_000_000 as never,
          startedAt: 1_900_000_000_000_000 as never
        }, {
          _tag: "OutputLine",
          seq: 1,
          runId: "rows-run" as never,
          cmdUuid: "rows-cmd",
          lineSeq: 0,
          stream: "stdout",
          ts: 1_900_000_000_000_001 as never,
          data: "hello",
          continuation: false
        }])
        const good = yield* store.runs({ agent: "rows-agent", limit: 10 })
        assert.strictEqual(good.length, 1)
        assert.strictEqual(good[0]!.state, "running")
        const before = yield* Stream.runCollect(store.listLines("rows-agent", "rows-s"))
        assert.deepStrictEqual(Array.from(before).map((l) => l.data), ["hello"])
        // A state no version of bartos writes (a hand edit, a newer schema).
        yield* sql.unsafe(`UPDATE runs SET state = 'exploded' WHERE run_id = 'rows-run'`)
        const error = yield* Effect.flip(store.runs({ agent: "rows-agent", limit: 10 }))
        assert.strictEqual(error._tag, "StoreError")
        assert.include(error.message, "runs: a stored row does not decode")
        assert.include(error.message, "exploded")
        const byId = yield* Effect.flip(store.getRun("rows-run"))
        assert.include(byId.message, "getRun")
        const recent = yield* Effect.flip(store.recentRuns([{ agent: "rows-agent", schedule: "rows-s" }], 5))
        assert.include(recent.message, "recentRuns")
        const lines = yield* Effect.flip(Stream.runCollect(store.listLines("rows-agent", "rows-s")))
        assert.strictEqual(lines._tag, "StoreError")
        yield* sql.unsafe(`UPDATE runs SET state = 'failed' WHERE run_id = 'rows-run'`)
        const fixed = yield* store.runs({ agent: "rows-agent", limit: 10 })
        assert.strictEqual(fixed[0]!.state, "failed")
      }))
  })
}
