import type { AgentRecord, FinalRunState, Micros, RunId, Trigger } from "@barto/domain/Messages"
import { ClientInfo, FailedRow, type LineRow } from "@barto/domain/Messages"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { checkReadOnly } from "../src/internal/store/guard.js"
import { excessGrants, makeMariadbQueryRunner } from "../src/internal/store/mariadbQuery.js"
import { migrate, migrateWith, migrations, MIGRATIONS_TABLE } from "../src/internal/store/migrations.js"
import { parseMariadbOptions } from "../src/internal/store/resources.js"
import type { FailedWindow, QueryResult, StoreShape } from "../src/Store.js"
import { layerFromConfig, layerMariadb, layerSqlite, layerSqliteWithClient, recentKey, Store } from "../src/Store.js"

/** Every migration id from `first` on, in order: what a start applies once they are forgotten. */
const migrationIdsFrom = (first: number): Array<number> =>
  Object.keys(migrations).map((name) => Number(name.slice(0, 4))).filter((id) => id >= first).sort((a, b) => a - b)
import { asAdmin, databases, mariadbDatabase, runningStatements } from "./utils/databases.js"

// --- record builders -------------------------------------------------------------------------

const T0 = 1_900_000_000_000_000 // 2030-03-17, microseconds
const at = (secs: number) => (T0 + secs * 1_000_000) as Micros

let unique = 0
const nextName = (prefix: string) => `${prefix}-${++unique}-${Math.random().toString(36).slice(2, 8)}`
const rid = (name: string) => name as RunId

const runStarted = (
  seq: number,
  runId: string,
  schedule: string,
  t: number,
  trigger: Trigger = "schedule"
): AgentRecord => ({
  _tag: "RunStarted",
  seq,
  runId: rid(runId),
  schedule,
  trigger,
  scheduledAt: at(t),
  startedAt: at(t)
})
const commandStarted = (
  seq: number,
  runId: string,
  cmdUuid: string,
  cmdIndex: number,
  command: string,
  t: number
): AgentRecord => ({
  _tag: "CommandStarted",
  seq,
  runId: rid(runId),
  cmdUuid,
  cmdIndex,
  command,
  startedAt: at(t)
})
const line = (
  seq: number,
  runId: string,
  cmdUuid: string,
  lineSeq: number,
  data: string,
  t: number,
  stream: "stdout" | "stderr" = "stdout",
  continuation = false
): AgentRecord => ({
  _tag: "OutputLine",
  seq,
  runId: rid(runId),
  cmdUuid,
  lineSeq,
  stream,
  ts: at(t),
  data,
  continuation
})
const commandExited = (
  seq: number,
  runId: string,
  cmdUuid: string,
  exitCode: number | null,
  t: number,
  signal: string | null = null
): AgentRecord => ({
  _tag: "CommandExited",
  seq,
  runId: rid(runId),
  cmdUuid,
  exitCode,
  signal,
  finishedAt: at(t)
})
const runFinished = (seq: number, runId: string, state: FinalRunState, t: number): AgentRecord => ({
  _tag: "RunFinished",
  seq,
  runId: rid(runId),
  state,
  finishedAt: at(t)
})
const runMissed = (seq: number, runId: string, schedule: string, t: number): AgentRecord => ({
  _tag: "RunMissed",
  seq,
  runId: rid(runId),
  schedule,
  scheduledAt: at(t),
  reason: "stall"
})

/** A whole run of one command: started, `lines`, exited with `exit`, finished; seqs from `seq`. */
const wholeRun = (
  seq: number,
  runId: string,
  schedule: string,
  t: number,
  lines: ReadonlyArray<string>,
  exit: number | null,
  state: FinalRunState = exit === 0 ? "succeeded" : "failed",
  signal: string | null = null
): Array<AgentRecord> => {
  const cmd = `${runId}-c0`
  return [
    runStarted(seq, runId, schedule, t),
    commandStarted(seq + 1, runId, cmd, 0, `echo ${schedule}`, t),
    ...lines.map((d, i) => line(seq + 2 + i, runId, cmd, i, d, t + i / 1000)),
    commandExited(seq + 2 + lines.length, runId, cmd, exit, t + 1, signal),
    runFinished(seq + 3 + lines.length, runId, state, t + 1)
  ]
}

const upTo = <E, R>(ingest: Effect.Effect<{ readonly upTo: number }, E, R>) => Effect.map(ingest, (r) => r.upTo)

const countRows = (table: string, where: string, params: ReadonlyArray<unknown>) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql.unsafe<{ n: unknown }>(`SELECT COUNT(*) AS n FROM ${table} WHERE ${where}`, params)
  ).pipe(
    Effect.map((rows) => Number(rows[0].n))
  )

/** Every element of a store stream. */
const collect = <A, E>(s: Stream.Stream<A, E>) => Effect.map(Stream.runCollect(s), Chunk.toReadonlyArray)

/** `cmdLines` as the CLI shows it: consecutive lines of one agent grouped. */
const groupByAgent = (lines: ReadonlyArray<LineRow>) => {
  const groups: Array<{ agent: string; lines: Array<LineRow> }> = []
  for (const l of lines) {
    const last = groups[groups.length - 1]
    if (last !== undefined && last.agent === l.agent) last.lines.push(l)
    else groups.push({ agent: l.agent, lines: [l] })
  }
  return groups
}

/** `failed` with a command's consecutive rows (one per page of its lines) joined, as the CLI does. */
const failedRows = (store: StoreShape) =>
  Effect.map(collect(store.failed()), (rows) => {
    const out: Array<FailedRow> = []
    for (const f of rows) {
      const last = out[out.length - 1]
      if (last !== undefined && last.runId === f.runId && last.cmdUuid === f.cmdUuid) {
        out[out.length - 1] = new FailedRow({ ...last, lines: [...last.lines, ...f.lines] })
      } else out.push(f)
    }
    return out
  })

// --- pure: the read-only guard ----------------------------------------------------------------

describe("query guard", () => {
  const ok = (text: string, dialect: "mysql" | "sqlite" = "mysql") => {
    const r = checkReadOnly(text, dialect)
    assert.isTrue(Either.isRight(r), `expected ${JSON.stringify(text)} to pass, got ${JSON.stringify(r)}`)
    return Either.getOrThrow(r)
  }
  const refused = (text: string, pattern: RegExp, dialect: "mysql" | "sqlite" = "mysql") => {
    const r = checkReadOnly(text, dialect)
    assert.isTrue(Either.isLeft(r), `expected ${JSON.stringify(text)} to be refused`)
    if (Either.isLeft(r)) assert.match(r.left, pattern)
  }

  it("accepts SELECT, WITH, SHOW, EXPLAIN, with comments and a trailing semicolon", () => {
    assert.strictEqual(ok("  -- why\n select 1 ;  -- trailing"), "  -- why\n select 1")
    assert.strictEqual(ok("SELECT 1;"), "SELECT 1")
    assert.strictEqual(
      ok("/* c */ with x as (select 1) select * from x"),
      "/* c */ with x as (select 1) select * from x"
    )
    ok("SHOW TABLES")
    ok("explain select * from runs")
    ok("(SELECT 1) UNION (SELECT 2)")
    ok("select 'delete; drop table runs' as s")
    ok("select `update` from t")
    ok("select \"it\\\"s; insert\" from t")
    ok("select replace(data, 'a', 'b') from output_lines")
    ok("select 1 -- ; delete from runs")
  })

  it("refuses writes, multiple statements and smuggling", () => {
    refused("INSERT INTO runs VALUES (1)", /INSERT is not allowed/)
    refused("update runs set state = 'x'", /UPDATE is not allowed/)
    refused("DELETE FROM runs", /DELETE is not allowed/)
    refused("DROP TABLE runs", /DROP is not allowed/)
    refused("select 1; delete from runs", /only one statement/)
    refused("select 1;;select 2", /only one statement/)
    refused("with x as (select 1) delete from runs", /DELETE writes data/)
    refused("select * from runs into outfile '/tmp/x'", /INTO/)
    refused("select * from runs for update", /UPDATE/)
    refused("select * from runs lock in share mode", /LOCK|locking/)
    refused("select 1 /*! ; delete from runs */", /executable comments/)
    refused("select 1 /*M!100000 into outfile '/tmp/x' */", /executable comments/)
    refused("select load_file('/etc/passwd')", /LOAD_FILE/)
    refused("select 'unterminated", /unterminated/)
    refused("   ", /empty/)
    refused("-- only a comment", /empty/)
    refused("SHOW TABLES", /MariaDB syntax/, "sqlite")
    refused("PRAGMA query_only = OFF", /PRAGMA is not allowed/, "sqlite")
    refused("select 1 --1; delete from runs", /only one statement/, "mysql")
  })

  it("the dialects lex strings their own way", () => {
    // MariaDB: backslash escapes the quote, so the `;` is inside the string.
    ok("select 'a\\'; delete from runs; --'", "mysql")
    // SQLite: backslash is an ordinary character, so the string ends early and a DELETE follows.
    refused("select 'a\\'; delete from runs; --'", /only one statement|DELETE/, "sqlite")
  })

  it("a quoted name called as a function is checked like the built-in it resolves to", () => {
    // MariaDB resolves `load_file`(…) to LOAD_FILE: the quotes hide the name from a word filter.
    refused("SELECT `load_file`('/etc/passwd')", /LOAD_FILE/)
    refused("SELECT `LOAD_FILE` ('/etc/passwd')", /LOAD_FILE/)
    refused("SELECT `get_lock`('x', 0)", /GET_LOCK/)
    refused("SELECT `release_all_locks`()", /RELEASE_ALL_LOCKS/)
    refused("SELECT \"load_file\"('/etc/passwd')", /LOAD_FILE/)
    refused("SELECT [load_extension]('x')", /LOAD_EXTENSION/, "sqlite")
    refused("SELECT \"load_extension\"('x')", /LOAD_EXTENSION/, "sqlite")
    refused("SELECT next value for s", /NEXT VALUE/)
    // A quoted name that is not called is just a name.
    ok("select `update`, `load_file` from t")
    ok("select 'get_lock' as `get_lock`")
  })

  it("numbers end where the server ends them", () => {
    // MariaDB lexes 1e0LOCK as the number 1e0 then LOCK, 1.5INTO as 1.5 then INTO.
    refused("SELECT 1=1e0LOCK IN SHARE MODE", /LOCK|locking/)
    refused("SELECT 1.5INTO @v", /INTO/)
    refused("SELECT .5INTO @v", /INTO/)
    refused("SELECT 1.INTO @v", /INTO/)
    refused("SELECT 1e+5INTO @v", /INTO/)
    refused("SELECT 1.5e-3FOR UPDATE", /UPDATE/)
    refused("SELECT 1=1e0LOCK IN SHARE MODE", /LOCK|locking/, "sqlite")
    ok("select 1e3, 1.5, .5, 2e-3, 0x1f from t")
    ok("select t.c1 from t1 t")
  })

  it("a comment start MariaDB does not honour hides nothing", () => {
    // `--` needs a space or control character after it in MariaDB; U+00A0 is neither.
    refused("SELECT 1 --\u00a0 INTO @v", /INTO/)
    ok("SELECT 1 --\tcomment\n")
  })

  it.prop("any forbidden keyword glued to a number is seen", [
    FastCheck.constantFrom("1e0", "1.5", ".5", "1.", "1e+0", "2.5E-1", "007"),
    FastCheck.constantFrom(
      "INTO @v",
      "LOCK IN SHARE MODE",
      "FOR UPDATE",
      "INTO OUTFILE '/tmp/x'",
      "PROCEDURE ANALYSE()"
    )
  ], ([num, rest]) => {
    assert.isTrue(Either.isLeft(checkReadOnly(`SELECT ${num}${rest}`, "mysql")), `SELECT ${num}${rest}`)
    assert.isTrue(Either.isLeft(checkReadOnly(`SELECT 1 FROM t WHERE x=${num}${rest}`, "sqlite")))
  })

  it.prop("a second statement after ';' is always refused", [
    FastCheck.constantFrom("select 1", "with x as (select 1) select * from x", "explain select 1"),
    FastCheck.constantFrom("select 2", "delete from runs", "drop table runs", "x")
  ], ([first, second]) => {
    assert.isTrue(Either.isLeft(checkReadOnly(`${first}; ${second}`, "mysql")))
    assert.isTrue(Either.isLeft(checkReadOnly(`${first}; ${second}`, "sqlite")))
  })
})

// --- layers ---------------------------------------------------------------------------------------

describe("Store layers", () => {
  it.live("layerSqlite creates the parent directories and reports the file as its location", () =>
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "barto-store-test-"))
      const file = Path.join(dir, "a", "b", "bartos.db")
      yield* Effect.gen(function*() {
        const store = yield* Store
        assert.strictEqual(store.kind, "sqlite")
        assert.strictEqual(store.location, file)
        yield* store.setPaused("x", "y", true)
      }).pipe(Effect.provide(layerFromConfig({ sqlite: { path: file } })))
      assert.isTrue(Fs.existsSync(file))
      // The same file again: migrations are already there, the data survived.
      const paused = yield* Effect.flatMap(Store, (s) => s.paused()).pipe(
        Effect.provide(layerSqlite({ filename: file }))
      )
      assert.deepStrictEqual(paused, [{ agent: "x", schedule: "y" }])
      Fs.rmSync(dir, { recursive: true, force: true })
    }))

  it.live("SQLite file: the WAL is checkpointed beside ingest, by the checkpointer thread", () =>
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "barto-store-test-"))
      const file = Path.join(dir, "bartos.db")
      const pages = (f: string) => (Fs.existsSync(f) ? Fs.statSync(f).size : 0) / 4096
      yield* Effect.gen(function*() {
        const store = yield* Store
        const run = nextName("run")
        const cmd = `${run}-c0`
        let seq = 0
        yield* store.ingest("a", "o", [runStarted(seq++, run, "s", 10)])
        // 20 batches of 500 lines of 200 bytes: ~600 WAL pages, under the main connection's own
        // automatic checkpoint (4,000 pages), so only the thread copies them into the file.
        const filler = "x".repeat(190)
        for (let b = 0; b < 20; b++) {
          const records = Array.from({ length: 500 }, () => line(seq, run, cmd, seq - 1, `${seq++} ${filler}`, 10))
          yield* store.ingest("a", "o", records)
          yield* Effect.sleep("60 millis") // past the poke interval, so each batch wakes it
        }
        // The copy runs on another thread: wait for it (bounded) rather than for a fixed time.
        for (let i = 0; i < 100 && pages(file) < 500; i++) yield* Effect.sleep("50 millis")
        assert.isAtLeast(pages(file), 500, `database file pages (WAL: ${pages(`${file}-wal`)})`)
        assert.isBelow(pages(`${file}-wal`), 4100)
        assert.strictEqual(yield* countRows("output_lines", "run_id = ?", [run]), 10_000)
      }).pipe(Effect.provide(layerSqliteWithClient({ filename: file })))
      Fs.rmSync(dir, { recursive: true, force: true })
    }))

  it.live("SQLite client: a statement can be streamed (upstream's client dies there)", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE stream_probe (n INTEGER)`
      yield* sql`INSERT INTO stream_probe (n) VALUES (1), (2), (3)`
      const rows = yield* sql<{ n: number }>`SELECT n FROM stream_probe ORDER BY n`.stream.pipe(Stream.runCollect)
      assert.deepStrictEqual(Chunk.toReadonlyArray(rows).map((r) => r.n), [1, 2, 3])
    }).pipe(Effect.provide(layerSqliteWithClient({ filename: ":memory:" }))))

  it.live("an unreachable MariaDB is a StoreError naming the place, never the password", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(Effect.scoped(Layer.build(layerMariadb({
        host: "127.0.0.1",
        port: 1,
        username: "u",
        password: Redacted.make("s3cret-pw"),
        database: "d"
      }))))
      assert.strictEqual(e._tag, "StoreError")
      assert.match(e.message, /cannot open MariaDB at 127\.0\.0\.1:1\/d/)
      assert.notInclude(e.message, "s3cret-pw")
    }))

  it.effect("[mariadb] options: ssl and connect_timeout are understood, anything else is an error", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* parseMariadbOptions("ssl=true&connect_timeout=3"), {
        ssl: true,
        connectTimeoutMs: 3000
      })
      assert.deepStrictEqual(yield* parseMariadbOptions(undefined), {})
      assert.deepStrictEqual(yield* parseMariadbOptions("?ssl-mode=DISABLED"), { ssl: false })
      const e = yield* Effect.flip(parseMariadbOptions("charset=latin1"))
      assert.match(e.message, /unsupported key "charset"/)
    }))
})

// --- both databases ---------------------------------------------------------------------------

for (const db of databases) {
  layer(db.layer(), { excludeTestServices: true, timeout: "60 seconds" })(`Store on ${db.name}`, (it) => {
    it.effect("migrations are idempotent: a second run applies nothing and the schema is intact", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const again = yield* migrate
        assert.deepStrictEqual(again, [])
        const rows = yield* sql.unsafe<{ n: unknown }>(`SELECT COUNT(*) AS n FROM ${MIGRATIONS_TABLE}`)
        assert.strictEqual(Number(rows[0].n), Object.keys(migrations).length)
        const store = yield* Store
        assert.strictEqual(store.kind, db.name)
        assert.notInclude(store.location, "password")
      }))

    it.effect("an incomplete schema is reported; a forgotten migration is applied again", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        // The newest migration's column gone (a hand-edited database; SQLite drops no column a view uses).
        yield* sql.unsafe("DROP VIEW IF EXISTS runs_view")
        yield* sql.unsafe("ALTER TABLE runs DROP COLUMN occurrences")
        const e = yield* Effect.flip(migrateWith({ verifyRetries: 0 }))
        assert.match(e.message, /schema check failed/)
        yield* sql.unsafe(`DELETE FROM ${MIGRATIONS_TABLE} WHERE migration_id >= 18`)
        // Forgetting the migrations makes the next start apply them again (each checks first or
        // is IF NOT EXISTS).
        assert.deepStrictEqual((yield* migrate).map(([id]) => id), migrationIdsFrom(18))
        yield* (yield* Store).ingest("a", "o", [runMissed(0, "m", "s", 1)])
        assert.strictEqual(Option.getOrThrow(yield* (yield* Store).getRun("m")).occurrences, 1)
      }).pipe(Effect.provide(db.layer())))

    it.effect("ingests every record kind", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("a")
        const run = nextName("run")
        const stored = yield* store.ingest(agent, "o1", [
          runStarted(0, run, "backup", 10, "manual"),
          commandStarted(1, run, `${run}-c1`, 0, "tar czf x", 10),
          line(2, run, `${run}-c1`, 0, "hello", 10.1),
          line(3, run, `${run}-c1`, 1, "oops", 10.2, "stderr"),
          line(4, run, `${run}-c1`, 2, "continued", 10.3, "stderr", true),
          commandExited(5, run, `${run}-c1`, 0, 11),
          runFinished(6, run, "succeeded", 11),
          runMissed(7, `${run}-m`, "backup", 5)
        ])
        assert.deepStrictEqual(stored, { upTo: 7, refused: [], lineConflicts: [] })
        assert.strictEqual(yield* store.ackedUpTo(agent, "o1"), 7)

        const r = Option.getOrThrow(yield* store.getRun(run))
        assert.deepInclude(r, {
          runId: rid(run),
          agent,
          schedule: "backup",
          trigger: "manual",
          state: "succeeded",
          scheduledAt: at(10),
          startedAt: at(10),
          finishedAt: at(11),
          exitCode: 0,
          signal: null
        })
        const lines = yield* store.runLines(run, -1, 100)
        assert.deepStrictEqual(
          lines.map((l) => [l.lineSeq, l.stream, l.data, l.continuation, l.exitCode, l.runState]),
          [
            [0, "stdout", "hello", false, 0, "succeeded"],
            [1, "stderr", "oops", false, 0, "succeeded"],
            [2, "stderr", "continued", true, 0, "succeeded"]
          ]
        )
        assert.strictEqual(lines[0].ts, at(10.1))
        assert.strictEqual(lines[0].cmdUuid, `${run}-c1`)

        const missed = Option.getOrThrow(yield* store.getRun(`${run}-m`))
        assert.deepInclude(missed, {
          state: "missed",
          trigger: "schedule",
          startedAt: null,
          finishedAt: null,
          scheduledAt: at(5)
        })
        assert.strictEqual(yield* store.ackedUpTo(agent, "never"), -1)
      }))

    it.effect("a run's exit status is the first failure, not the last command's", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("a")
        const run = nextName("run")
        yield* store.ingest(agent, "o1", [
          runStarted(0, run, "s", 10),
          commandStarted(1, run, `${run}-c0`, 0, "true", 10),
          commandExited(2, run, `${run}-c0`, 0, 10.1),
          commandStarted(3, run, `${run}-c1`, 1, "exit 3", 10.2),
          commandExited(4, run, `${run}-c1`, 3, 10.3),
          commandStarted(5, run, `${run}-c2`, 2, "true", 10.4),
          commandExited(6, run, `${run}-c2`, 0, 10.5),
          runFinished(7, run, "failed", 11)
        ])
        assert.strictEqual(Option.getOrThrow(yield* store.getRun(run)).exitCode, 3)
        const ok = nextName("run")
        yield* store.ingest(agent, "o1", [
          runStarted(8, ok, "s", 20),
          commandStarted(9, ok, `${ok}-c0`, 0, "true", 20),
          commandExited(10, ok, `${ok}-c0`, 0, 20.1),
          runFinished(11, ok, "succeeded", 21)
        ])
        assert.strictEqual(Option.getOrThrow(yield* store.getRun(ok)).exitCode, 0)
      }).pipe(Effect.provide(db.layer())))

    it.effect("re-ingest is idempotent: same batch twice, overlapping batches, out-of-date seqs", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("a")
        const run = nextName("run")
        const batch = wholeRun(0, run, "s", 20, ["a", "b", "c", "d"], 0) // seqs 0..7
        assert.strictEqual(yield* upTo(store.ingest(agent, "o", batch.slice(0, 5))), 4)
        assert.strictEqual(yield* upTo(store.ingest(agent, "o", batch.slice(0, 5))), 4)
        assert.strictEqual(yield* upTo(store.ingest(agent, "o", batch.slice(3))), 7)
        assert.strictEqual(yield* upTo(store.ingest(agent, "o", batch)), 7)
        // An old seq carrying different content is not applied.
        assert.strictEqual(yield* upTo(store.ingest(agent, "o", [line(2, run, `${run}-c0`, 0, "CHANGED", 20)])), 7)
        // Empty batch: the stored offset.
        assert.strictEqual(yield* upTo(store.ingest(agent, "o", [])), 7)

        assert.strictEqual(yield* countRows("runs", "run_id = ?", [run]), 1)
        assert.strictEqual(yield* countRows("run_commands", "run_id = ?", [run]), 1)
        assert.strictEqual(yield* countRows("output_lines", "run_id = ?", [run]), 4)
        const lines = yield* store.runLines(run, -1, 10)
        assert.deepStrictEqual(lines.map((l) => l.data), ["a", "b", "c", "d"])
        // Duplicates inside one batch (same seq twice) count once.
        const run2 = nextName("run")
        const dup = wholeRun(8, run2, "s", 30, ["x"], 0)
        assert.strictEqual(yield* upTo(store.ingest(agent, "o", [...dup, ...dup])), 12)
        assert.strictEqual(yield* countRows("output_lines", "run_id = ?", [run2]), 1)
      }))

    it.effect("a new outboxId starts fresh; a line already stored is not duplicated by it", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("a")
        const run = nextName("run")
        assert.strictEqual(yield* upTo(store.ingest(agent, "old", wholeRun(0, run, "s", 40, ["one"], 0))), 4)
        assert.strictEqual(yield* store.ackedUpTo(agent, "new"), -1)
        const run2 = nextName("run")
        assert.strictEqual(yield* upTo(store.ingest(agent, "new", wholeRun(0, run2, "s", 50, ["two"], 0))), 4)
        assert.strictEqual(yield* store.ackedUpTo(agent, "old"), 4)
        assert.strictEqual(yield* store.ackedUpTo(agent, "new"), 4)
        // Second guard: (run_id, line_seq) is unique even when the offset cannot tell.
        const third = yield* store.ingest(agent, "third", [line(0, run, `${run}-c0`, 0, "again", 40)])
        assert.deepStrictEqual(third, { upTo: 0, refused: [], lineConflicts: [{ seq: 0, runId: run, lineSeq: 0 }] })
        assert.deepStrictEqual((yield* store.runLines(run, -1, 10)).map((l) => l.data), ["one"])
        // Offsets are per agent too.
        assert.strictEqual(yield* store.ackedUpTo(nextName("other"), "old"), -1)
      }))

    it.effect("lost runs are reconciled by a later report; a final state is never overwritten", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("a")
        const [r1, r2, r3] = [nextName("run"), nextName("run"), nextName("run")]
        yield* store.ingest(agent, "o", [
          runStarted(0, r1, "s", 100),
          runStarted(1, r2, "s", 200),
          runStarted(2, r3, "s", 50)
        ])
        yield* store.ingest(agent, "o", [runFinished(3, r3, "failed", 60)])
        const other = nextName("a")
        yield* store.ingest(other, "o", [runStarted(0, nextName("run"), "s", 100)])

        // r1 started before the cut, r2 after; r3 is already final; other agents untouched.
        assert.strictEqual(yield* store.markLost(agent, at(150)), 1)
        assert.strictEqual(Option.getOrThrow(yield* store.getRun(r1)).state, "lost")
        assert.strictEqual(Option.getOrThrow(yield* store.getRun(r2)).state, "running")
        assert.strictEqual(Option.getOrThrow(yield* store.getRun(r3)).state, "failed")
        assert.strictEqual(yield* store.markLost(agent, at(150)), 0)

        yield* store.ingest(agent, "o", [runFinished(4, r1, "succeeded", 170)])
        const reconciled = Option.getOrThrow(yield* store.getRun(r1))
        assert.strictEqual(reconciled.state, "succeeded")
        assert.strictEqual(reconciled.finishedAt, at(170))

        // Another final report never flips a final state.
        yield* store.ingest(agent, "o", [runFinished(5, r1, "failed", 180), runFinished(6, r3, "succeeded", 190)])
        assert.strictEqual(Option.getOrThrow(yield* store.getRun(r1)).state, "succeeded")
        assert.strictEqual(Option.getOrThrow(yield* store.getRun(r3)).state, "failed")
        assert.strictEqual(Option.getOrThrow(yield* store.getRun(r3)).finishedAt, at(60))
      }))

    it.effect("the ledger records: interrupted runs and missed occurrences keep their reason; a missed range counts as its occurrences", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("a")
        const [died, stopped, lostOne, single, range] = ["died", "stopped", "lost", "single", "range"].map(nextName)
        yield* store.ingest(agent, "o", [
          runStarted(0, died, "s", 100),
          commandStarted(1, died, `${died}-c0`, 0, "sleep 60", 100),
          runStarted(2, stopped, "s", 110),
          runStarted(3, lostOne, "s", 120),
          {
            _tag: "RunMissed",
            seq: 4,
            runId: rid(single),
            schedule: "s",
            scheduledAt: at(130),
            reason: "agent_restart",
            trigger: "catch_up"
          },
          {
            _tag: "RunMissed",
            seq: 5,
            runId: rid(range),
            schedule: "s",
            scheduledAt: at(900_000),
            reason: "catch_up_limit",
            until: at(907_149),
            count: 7150
          }
        ])
        yield* store.markLost(agent, at(125))
        yield* store.ingest(agent, "o", [
          {
            _tag: "RunFinished",
            seq: 6,
            runId: rid(died),
            state: "interrupted",
            finishedAt: at(140),
            reason: "agent_restart"
          },
          {
            _tag: "RunFinished",
            seq: 7,
            runId: rid(stopped),
            state: "interrupted",
            finishedAt: at(150),
            reason: "shutdown"
          },
          // A lost run is reconciled to what its agent says, reason included.
          {
            _tag: "RunFinished",
            seq: 8,
            runId: rid(lostOne),
            state: "interrupted",
            finishedAt: at(160),
            reason: "agent_restart"
          }
        ])
        const get = (id: string) => Effect.map(store.getRun(id), Option.getOrThrow)
        assert.deepInclude(yield* get(died), {
          state: "interrupted",
          reason: "agent_restart",
          occurrences: 1,
          scheduledUntil: null
        })
        assert.deepInclude(yield* get(stopped), { state: "interrupted", reason: "shutdown", finishedAt: at(150) })
        assert.deepInclude(yield* get(lostOne), { state: "interrupted", reason: "agent_restart" })
        assert.deepInclude(yield* get(single), {
          state: "missed",
          trigger: "catch_up",
          reason: "agent_restart",
          scheduledAt: at(130),
          scheduledUntil: null,
          occurrences: 1
        })
        assert.deepInclude(yield* get(range), {
          state: "missed",
          trigger: "schedule",
          reason: "catch_up_limit",
          scheduledAt: at(900_000),
          scheduledUntil: at(907_149),
          occurrences: 7150,
          startedAt: null
        })
        // `runs --state missed`, and `--since` inside the range: the range is there, once.
        const missed = yield* store.runs({ agent, state: "missed", limit: 10 })
        assert.deepStrictEqual(missed.map((r) => [r.runId, r.occurrences]), [[range, 7150], [single, 1]])
        assert.deepStrictEqual((yield* store.runs({ agent, since: at(905_000), limit: 10 })).map((r) => r.runId), [
          range
        ])
        assert.deepStrictEqual((yield* store.runs({ agent, since: at(115), limit: 10 })).map((r) => r.runId), [
          range,
          single,
          lostOne
        ])
        assert.deepStrictEqual((yield* store.runs({ agent, since: at(115), limit: 2 })).map((r) => r.runId), [
          range,
          single
        ])
        assert.deepStrictEqual(
          (yield* store.runs({ agent, state: "interrupted", limit: 10 })).map((r) => r.runId).sort(),
          [died, lostOne, stopped].sort()
        )
        // `failed` shows interrupted runs: the command that never exited, and the runs without one.
        const failed = (yield* collect(store.failed())).filter((f) => f.agent === agent)
        assert.sameDeepMembers(failed.map((f) => [f.runId, f.state, f.command]), [
          [died, "interrupted", "sleep 60"],
          [stopped, "interrupted", ""],
          [lostOne, "interrupted", ""]
        ])
        // Totals in SQL: rows vs occurrences.
        const totals = yield* store.query(
          `SELECT state, COUNT(*) AS n, SUM(occurrences) AS occ FROM runs WHERE agent = '${agent}' GROUP BY state ORDER BY state`,
          { rowCap: 10, maxBytes: 1 << 20, timeoutMs: 5000 }
        )
        assert.deepStrictEqual(totals.rows, [["interrupted", "3", "3"], ["missed", "2", "7151"]])
        // A range ages by its last occurrence: a cleanup cutting through it keeps it.
        const keptRange = yield* store.cleanup(at(905_000), true)
        const range2 = yield* store.cleanup(at(907_150), true)
        assert.strictEqual(range2.runs - keptRange.runs, 1)
        // A missed row that starts after all runs again, without its reason.
        yield* store.ingest(agent, "o", [runStarted(9, single, "s", 130)])
        assert.deepInclude(yield* get(single), { state: "running", reason: null })
      }))

    it.effect("migrating a database from before the ledger keeps its missed reasons", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const store = yield* Store
        // Back to the schema of migration 15, with a missed run recorded then.
        yield* sql.unsafe(sql.onDialectOrElse({
          mysql: () => "DROP INDEX runs_scheduled_until ON runs",
          orElse: () => "DROP INDEX runs_scheduled_until"
        }))
        // A database from before the views (0030–0032) had none.
        for (const view of ["runs_view", "run_commands_view", "output_lines_view"]) {
          yield* sql.unsafe(`DROP VIEW IF EXISTS ${view}`)
        }
        yield* sql.unsafe("ALTER TABLE runs DROP COLUMN occurrences")
        yield* sql.unsafe("ALTER TABLE runs DROP COLUMN scheduled_until")
        yield* sql.unsafe("ALTER TABLE runs RENAME COLUMN reason TO missed_reason")
        yield* sql.unsafe(`DELETE FROM ${MIGRATIONS_TABLE} WHERE migration_id > 15`)
        yield* sql.unsafe(
          `INSERT INTO runs (run_id, agent, schedule, run_trigger, state, scheduled_at, missed_reason)
           VALUES ('old-missed', 'a', 's', 'schedule', 'missed', 5, 'missed_tick:Skip')`
        )
        assert.deepStrictEqual((yield* migrate).map(([id]) => id), migrationIdsFrom(16))
        assert.deepInclude(Option.getOrThrow(yield* store.getRun("old-missed")), {
          state: "missed",
          reason: "missed_tick:Skip",
          scheduledUntil: null,
          occurrences: 1
        })
      }).pipe(Effect.provide(db.layer())))

    it.effect("records of an unknown run create a placeholder run that RunStarted later completes", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("a")
        const run = nextName("run")
        yield* store.ingest(agent, "o", [
          commandStarted(0, run, `${run}-pc`, 0, "true", 300),
          line(1, run, `${run}-pc`, 0, "orphan", 300.5),
          commandExited(2, run, `${run}-pc`, 3, 301)
        ])
        const placeholder = Option.getOrThrow(yield* store.getRun(run))
        assert.deepInclude(placeholder, { schedule: "unknown", state: "running", agent, exitCode: 3 })
        assert.deepStrictEqual((yield* store.runLines(run, -1, 10)).map((l) => [l.data, l.exitCode]), [["orphan", 3]])

        // A RunStarted arriving late fills in the schedule; a lost placeholder runs again.
        assert.strictEqual(yield* store.markLost(agent, at(1000)), 1)
        yield* store.ingest(agent, "o2", [runStarted(0, run, "nightly", 299)])
        assert.deepInclude(Option.getOrThrow(yield* store.getRun(run)), {
          schedule: "nightly",
          state: "running",
          startedAt: at(299)
        })

        // Only a RunFinished: the placeholder takes the final state at once.
        const lone = nextName("run")
        yield* store.ingest(agent, "o", [runFinished(3, lone, "timed_out", 400)])
        assert.deepInclude(Option.getOrThrow(yield* store.getRun(lone)), { state: "timed_out", finishedAt: at(400) })
        // A command exit for a command never announced is still recorded.
        const anon = nextName("run")
        yield* store.ingest(agent, "o", [
          runStarted(4, anon, "s", 500),
          commandExited(5, anon, `${anon}-ghost`, 1, 501)
        ])
        const failed = (yield* failedRows(store)).filter((f) => f.runId === anon)
        assert.deepStrictEqual(failed.map((f) => [f.cmdUuid, f.command, f.exitCode]), [[`${anon}-ghost`, "unknown", 1]])
      }))

    it.effect("listCommands, listLines and cmdLines", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const [a1, a2] = [nextName("a-1"), nextName("a-2")]
        const [early, late] = [nextName("run"), nextName("run")]
        const cmdE = `${early}-c0`
        const cmdL = `${late}-c0`
        // The later run is ingested first and its lines arrive out of order within the batch.
        yield* store.ingest(a1, "o", [
          runStarted(0, late, "backup", 700),
          commandStarted(1, late, cmdL, 0, "x", 700),
          line(3, late, cmdL, 1, "late-1", 700.2),
          line(2, late, cmdL, 0, "late-0", 700.1),
          commandExited(4, late, cmdL, 2, 701),
          runFinished(5, late, "failed", 701)
        ])
        yield* store.ingest(a1, "o", [
          runStarted(6, early, "backup", 600),
          commandStarted(7, early, cmdE, 0, "x", 600),
          line(8, early, cmdE, 0, "early-0", 600.1),
          line(9, early, cmdE, 1, "early-1", 600.2)
        ])
        yield* store.ingest(a1, "o", [
          ...wholeRun(10, nextName("run"), "alpha", 650, [], 0),
          runMissed(20, nextName("run"), "zeta", 10)
        ])
        yield* store.ingest(a2, "o", wholeRun(0, nextName("run"), "backup", 100, ["other agent"], 0))

        assert.deepStrictEqual(yield* store.listCommands(a1), ["alpha", "backup", "zeta"])
        assert.deepStrictEqual(yield* store.listCommands(nextName("nobody")), [])

        const lines = yield* collect(store.listLines(a1, "backup"))
        assert.deepStrictEqual(lines.map((l) => l.data), ["early-0", "early-1", "late-0", "late-1"])
        assert.deepStrictEqual(lines.map((l) => [l.exitCode, l.runState]), [
          [null, "running"],
          [null, "running"],
          [2, "failed"],
          [2, "failed"]
        ])
        assert.deepStrictEqual(lines.map((l) => l.agent), [a1, a1, a1, a1])

        const byAgent = groupByAgent(yield* collect(store.cmdLines("backup"))).filter((g) =>
          g.agent === a1 || g.agent === a2
        )
        assert.deepStrictEqual(byAgent.map((g) => g.agent), [a1, a2])
        assert.deepStrictEqual(byAgent[0].lines.map((l) => l.data), ["early-0", "early-1", "late-0", "late-1"])
        assert.deepStrictEqual(byAgent[1].lines.map((l) => l.data), ["other agent"])
        // Grouping is sorted by agent name overall.
        const all = groupByAgent(yield* collect(store.cmdLines("backup")))
        assert.deepStrictEqual(all.map((g) => g.agent), [...all.map((g) => g.agent)].sort())
      }))

    it.effect("failed: non-zero exits, signals and bad runs without commands, newest last, with their lines", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("a")
        const [ok, bad, killed, timedOut, lost] = [
          nextName("ok"),
          nextName("bad"),
          nextName("killed"),
          nextName("to"),
          nextName("lost")
        ]
        yield* store.ingest(agent, "o", [
          ...wholeRun(0, ok, "s", 800, ["fine"], 0), // 0..4
          ...wholeRun(5, killed, "s", 900, ["k1"], null, "cancelled", "SIGKILL"), // 5..9
          ...wholeRun(10, bad, "s", 850, ["e1", "e2"], 2), // 10..15
          runStarted(16, timedOut, "s", 950),
          runFinished(17, timedOut, "timed_out", 960),
          runStarted(18, lost, "s", 100)
        ])
        yield* store.markLost(agent, at(500))
        const failed = (yield* failedRows(store)).filter((f) => f.agent === agent)
        assert.deepStrictEqual(failed.map((f) => [f.runId, f.exitCode, f.signal, f.state, f.lines]), [
          [lost, null, null, "lost", []],
          [bad, 2, null, "failed", ["e1", "e2"]],
          [killed, null, "SIGKILL", "cancelled", ["k1"]],
          [timedOut, null, null, "timed_out", []]
        ])
        assert.strictEqual(failed[1].command, "echo s")
        assert.strictEqual(failed[1].cmdUuid, `${bad}-c0`)
        assert.strictEqual(failed[1].finishedAt, at(851))
        assert.strictEqual(failed[3].cmdUuid, "")
      }))

    it.effect("successfulLines: lines of commands that exited 0, in time order", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("a")
        yield* store.ingest(agent, "o", [
          ...wholeRun(0, nextName("run"), "upd", 1200, ["second-a", "second-b"], 0),
          ...wholeRun(10, nextName("run"), "upd", 1100, ["first"], 0),
          ...wholeRun(20, nextName("run"), "upd", 1150, ["failing"], 1),
          runStarted(30, "unfinished-" + agent, "upd", 1300),
          commandStarted(31, "unfinished-" + agent, `${agent}-u1`, 0, "x", 1300),
          line(32, "unfinished-" + agent, `${agent}-u1`, 0, "no exit yet", 1300)
        ])
        assert.deepStrictEqual(yield* store.successfulLines(agent), ["first", "second-a", "second-b"])
        assert.deepStrictEqual(yield* store.successfulLines(nextName("nobody")), [])
      }))

    it.effect("runs (filters, newest first, limit), getRun, latestRun", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("a")
        const [r1, r2, r3, m] = [nextName("r1"), nextName("r2"), nextName("r3"), nextName("m")]
        yield* store.ingest(agent, "o", [
          ...wholeRun(0, r1, "a", 2000, [], 0),
          ...wholeRun(10, r2, "b", 2100, [], 1),
          runStarted(20, r3, "a", 2200),
          runMissed(21, m, "a", 2300)
        ])
        const ids = (rows: ReadonlyArray<{ readonly runId: string }>) => rows.map((r) => r.runId)
        assert.deepStrictEqual(ids(yield* store.runs({ agent, limit: 10 })), [m, r3, r2, r1])
        assert.deepStrictEqual(ids(yield* store.runs({ agent, limit: 2 })), [m, r3])
        assert.deepStrictEqual(ids(yield* store.runs({ agent, schedule: "a", limit: 10 })), [m, r3, r1])
        assert.deepStrictEqual(ids(yield* store.runs({ agent, state: "failed", limit: 10 })), [r2])
        assert.deepStrictEqual(ids(yield* store.runs({ agent, since: at(2100), limit: 10 })), [m, r3, r2])
        assert.deepStrictEqual(ids(yield* store.runs({ agent, limit: 0 })), [])
        const newest = yield* store.runs({ limit: 1 })
        assert.strictEqual(newest.length, 1)

        const two = Option.getOrThrow(yield* store.getRun(r2))
        assert.deepInclude(two, { exitCode: 1, state: "failed", schedule: "b", trigger: "schedule" })
        assert.isTrue(Option.isNone(yield* store.getRun("no-such-run")))

        // The missed occurrence is newer but never started: latestRun is the running r3.
        assert.strictEqual(Option.getOrThrow(yield* store.latestRun(agent, "a")).runId, r3)
        assert.strictEqual(Option.getOrThrow(yield* store.latestRun(agent, "b")).runId, r2)
        assert.isTrue(Option.isNone(yield* store.latestRun(agent, "nope")))
      }))

    it.effect("runLines pages through a large batch (multi-row inserts of 600 lines)", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("a")
        const run = nextName("run")
        const data = Array.from({ length: 600 }, (_, i) => `line ${i}`)
        const records = wholeRun(0, run, "big", 3000, data, 0)
        yield* store.ingest(agent, "o", records.slice(0, 300))
        yield* store.ingest(agent, "o", records.slice(250))
        assert.strictEqual(yield* countRows("output_lines", "run_id = ?", [run]), 600)
        const seen: Array<string> = []
        let after = -1
        while (true) {
          const page = yield* store.runLines(run, after, 250)
          if (page.length === 0) break
          seen.push(...page.map((l) => l.data))
          after = page[page.length - 1].lineSeq
        }
        assert.deepStrictEqual(seen, data)
        assert.deepStrictEqual((yield* store.runLines(run, 597, 10)).map((l) => l.lineSeq), [598, 599])
        assert.deepStrictEqual(yield* store.runLines(run, -1, 0), [])
      }))

    it.effect("a batch failing half-way leaves nothing behind: no run, no line, no offset", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("a")
        const run = nextName("run")
        yield* store.ingest(agent, "o", [runStarted(0, run, "s", 10)])
        const cmd = `${run}-c0`
        const good = [
          commandStarted(1, run, cmd, 0, "x", 10),
          line(2, run, cmd, 0, "kept?", 10),
          line(3, run, cmd, 1, "kept?", 10)
        ]
        // A line the database refuses (NOT NULL), after statements that already ran in the batch.
        const bad = { ...line(4, run, cmd, 2, "x", 10), cmdUuid: null } as unknown as AgentRecord
        const e = yield* Effect.flip(store.ingest(agent, "o", [...good, bad, runFinished(5, run, "succeeded", 11)]))
        assert.strictEqual(e._tag, "StoreError")
        assert.strictEqual(yield* store.ackedUpTo(agent, "o"), 0)
        assert.strictEqual(yield* countRows("run_commands", "run_id = ?", [run]), 0)
        assert.strictEqual(yield* countRows("output_lines", "run_id = ?", [run]), 0)
        assert.strictEqual(Option.getOrThrow(yield* store.getRun(run)).state, "running")
        // The agent resends it fixed: all of it lands, once.
        assert.strictEqual(
          yield* upTo(
            store.ingest(agent, "o", [...good, line(4, run, cmd, 2, "x", 10), runFinished(5, run, "succeeded", 11)])
          ),
          5
        )
        assert.strictEqual(yield* countRows("output_lines", "run_id = ?", [run]), 3)
        assert.strictEqual(Option.getOrThrow(yield* store.getRun(run)).state, "succeeded")
      }))

    it.effect("ingest waits for a transaction in progress on the store's client, and both commit", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const sql = yield* SqlClient.SqlClient
        const agent = nextName("a")
        const run = nextName("run")
        const gate = yield* Deferred.make<void>()
        const entered = yield* Deferred.make<void>()
        const other = yield* sql.withTransaction(
          sql.unsafe(`INSERT INTO paused_schedules (agent, schedule) VALUES (?, ?)`, [agent, "held"]).pipe(
            Effect.zipRight(Deferred.succeed(entered, undefined)),
            Effect.zipRight(Deferred.await(gate))
          )
        ).pipe(Effect.fork)
        yield* Deferred.await(entered)
        const ingest = yield* Effect.fork(store.ingest(agent, "o", wholeRun(0, run, "s", 10, ["a", "b"], 0)))
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
        // SQLite has one connection: the batch must not run inside (or beside) the open transaction.
        if (db.name === "sqlite") assert.isTrue(Option.isNone(yield* Fiber.poll(ingest)))
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(other)
        assert.strictEqual((yield* Fiber.join(ingest)).upTo, 5)
        assert.deepStrictEqual(yield* store.paused().pipe(Effect.map((p) => p.filter((x) => x.agent === agent))), [
          { agent, schedule: "held" }
        ])
        assert.strictEqual(yield* countRows("output_lines", "run_id = ?", [run]), 2)
      }))

    it.effect("interleaved lines of several runs and commands in one batch keep their own run, command and fields", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("a")
        const [r1, r2] = [nextName("run"), nextName("run")]
        const cmds = [[r1, `${r1}-c0`], [r1, `${r1}-c1`], [r2, `${r2}-c0`]] as const
        const records: Array<AgentRecord> = [runStarted(0, r1, "s1", 10), runStarted(1, r2, "s2", 10)]
        const lineSeqs = new Map<string, number>()
        // 1,500 lines round-robin over three commands: more than one statement's worth each
        // time a command's rows are chunked, with 8 KiB lines pushing the byte cut too.
        for (let i = 0; i < 1500; i++) {
          const [run, cmd] = cmds[i % 3]
          const n = lineSeqs.get(run) ?? 0
          lineSeqs.set(run, n + 1)
          const data = i % 100 === 0 ? `${i}:${"z".repeat(8192)}` : `${i}:${cmd}`
          records.push(line(2 + i, run, cmd, n, data, 10 + i / 1e4, i % 2 === 0 ? "stdout" : "stderr", i % 5 === 0))
        }
        assert.strictEqual(yield* upTo(store.ingest(agent, "o", records)), 1501)
        // A resend overlapping the end adds nothing.
        assert.strictEqual(yield* upTo(store.ingest(agent, "o", records.slice(1000))), 1501)
        const expected = (run: string) =>
          records.filter((r): r is Extract<AgentRecord, { _tag: "OutputLine" }> =>
            r._tag === "OutputLine" && r.runId === run
          )
            .map((l) => [l.lineSeq, l.cmdUuid, l.stream, l.ts, l.data, l.continuation, agent])
        for (const run of [r1, r2]) {
          const stored = yield* store.runLines(run, -1, 2000)
          assert.deepStrictEqual(
            stored.map((l) => [l.lineSeq, l.cmdUuid, l.stream, l.ts, l.data, l.continuation, l.agent]),
            expected(run)
          )
        }
        assert.strictEqual(yield* countRows("output_lines", "agent = ?", [agent]), 1500)
      }))

    it.effect("64 KiB lines and unicode (emoji, utf8mb4) round-trip", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("agent-🚀")
        const run = nextName("run")
        const big = "x".repeat(65536)
        const bigMultiByte = "é".repeat(32768) // 64 KiB of UTF-8
        const emoji = "done ✅ 🎉 👩‍💻 — ünïcödé 中文 𝄞"
        yield* store.ingest(agent, "o", wholeRun(0, run, "übung-📦", 4000, [big, bigMultiByte, emoji], 0))
        const lines = yield* store.runLines(run, -1, 10)
        assert.strictEqual(lines[0].data, big)
        assert.strictEqual(lines[1].data, bigMultiByte)
        assert.strictEqual(lines[2].data, emoji)
        assert.deepStrictEqual(yield* store.listCommands(agent), ["übung-📦"])
        assert.strictEqual(lines[2].agent, agent)
      }))

    it.effect("sessions are recorded", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const sql = yield* SqlClient.SqlClient
        const agent = nextName("a")
        yield* store.sessionStarted({ agent, sessionId: `${agent}-s1`, ip: "10.0.0.7", connectedAt: at(1) })
        yield* store.sessionInfo(
          agent,
          `${agent}-s1`,
          new ClientInfo({ osName: "Debian", hostname: "h", osVersion: "12", kernel: "6.1", agentVersion: "0.1.0" })
        )
        yield* store.sessionEnded(agent, `${agent}-s1`, at(9))
        yield* store.sessionStarted({ agent, sessionId: `${agent}-s2`, ip: "10.0.0.8", connectedAt: at(10) })
        const sessions = yield* sql.unsafe<Record<string, unknown>>(
          `SELECT session_id, ip, connected_at, disconnected_at, os_name, agent_version FROM agent_sessions WHERE agent = ? ORDER BY connected_at`,
          [agent]
        )
        assert.deepStrictEqual(
          sessions.map((
            s
          ) => [
            s.session_id,
            s.ip,
            Number(s.connected_at),
            s.disconnected_at === null ? null : Number(s.disconnected_at),
            s.os_name,
            s.agent_version
          ]),
          [
            [`${agent}-s1`, "10.0.0.7", at(1), at(9), "Debian", "0.1.0"],
            [`${agent}-s2`, "10.0.0.8", at(10), null, null, null]
          ]
        )
        const agents = yield* sql.unsafe<Record<string, unknown>>(
          `SELECT first_seen_at, last_seen_at, last_ip, os_name FROM agents WHERE name = ?`,
          [agent]
        )
        assert.deepStrictEqual(
          agents.map((a) => [Number(a.first_seen_at), Number(a.last_seen_at), a.last_ip, a.os_name]),
          [[at(1), at(10), "10.0.0.8", "Debian"]]
        )
      }))

    it.effect("an agent's missed-tick report is its latest session's (null when that one did not say)", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("a")
        const row = Effect.map(store.agents(), (rows) => rows.find((r) => r.name === agent))
        yield* store.sessionStarted({
          agent,
          sessionId: `${agent}-s1`,
          ip: "10.0.0.7",
          connectedAt: at(1),
          missedTick: "Delay",
          catchUpLimit: 2147483647
        })
        assert.deepInclude(yield* row, { missedTick: "Delay", catchUpLimit: 2147483647 })
        yield* store.sessionStarted({ agent, sessionId: `${agent}-s2`, ip: "10.0.0.7", connectedAt: at(2) })
        assert.deepInclude(yield* row, { missedTick: null, catchUpLimit: null })
      }))

    it.effect("pause set", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("a")
        yield* store.setPaused(agent, "b", true)
        yield* store.setPaused(agent, "a", true)
        yield* store.setPaused(agent, "a", true)
        const mine = (yield* store.paused()).filter((p) => p.agent === agent)
        assert.deepStrictEqual(mine, [{ agent, schedule: "a" }, { agent, schedule: "b" }])
        yield* store.setPaused(agent, "a", false)
        yield* store.setPaused(agent, "zzz", false)
        assert.deepStrictEqual((yield* store.paused()).filter((p) => p.agent === agent), [{ agent, schedule: "b" }])
      }))

    it.effect("query: read-only statements run, rendered as text, capped", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("q")
        const run = nextName("run")
        yield* store.ingest(agent, "o", wholeRun(0, run, "qs", 5000, ["l0", "l1", "l2"], 0))
        const opts = { rowCap: 100, maxBytes: 1024 * 1024, timeoutMs: 5000 }
        const r = yield* store.query(
          `SELECT r.run_id, r.exit_code, r.finished_at, NULL AS empty_cell, 1.5 AS half, r.run_id FROM runs r WHERE r.agent = '${agent}'`,
          opts
        )
        assert.deepStrictEqual(r.columns, ["run_id", "exit_code", "finished_at", "empty_cell", "half", "run_id"])
        assert.deepStrictEqual(r.rows, [[run, "0", String(at(5001)), null, "1.5", run]])
        assert.isFalse(r.truncated)

        const capped = yield* store.query(`SELECT data FROM output_lines WHERE run_id = '${run}' ORDER BY line_seq;`, {
          ...opts,
          rowCap: 2
        })
        assert.deepStrictEqual(capped.rows, [["l0"], ["l1"]])
        assert.isTrue(capped.truncated)
        const exact = yield* store.query(`SELECT data FROM output_lines WHERE run_id = '${run}' ORDER BY line_seq`, {
          ...opts,
          rowCap: 3
        })
        assert.isFalse(exact.truncated)

        const withQ = yield* store.query(
          `WITH x AS (SELECT COUNT(*) AS n FROM output_lines WHERE run_id = '${run}') SELECT n FROM x`,
          opts
        )
        assert.deepStrictEqual(withQ.rows, [["3"]])
        const explain = yield* store.query(`EXPLAIN SELECT * FROM runs WHERE run_id = 'x'`, opts)
        assert.isAbove(explain.rows.length, 0)
        const bytes = yield* store.query(
          db.name === "mariadb"
            ? "SELECT X'00ff10' AS b, CAST('2025-10-20 08:34:56' AS DATETIME) AS d"
            : "SELECT X'00ff10' AS b",
          opts
        )
        assert.strictEqual(bytes.rows[0][0], "00ff10")
        if (db.name === "mariadb") {
          assert.strictEqual(bytes.rows[0][1], "2025-10-20T08:34:56Z")
          const show = yield* store.query("SHOW TABLES", opts)
          assert.includeDeepMembers([...show.rows], [["runs"], ["output_lines"]])
        }
        const unicode = yield* store.query("SELECT '🎉 ü' AS s", opts)
        assert.deepStrictEqual(unicode.rows, [["🎉 ü"]])
      }))

    it.effect("query: writes, multi-statements and bad SQL are refused with reasons; nothing changes", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const opts = { rowCap: 10, maxBytes: 1024 * 1024, timeoutMs: 5000 }
        const refusal = (text: string) =>
          Effect.flip(store.query(text, opts)).pipe(Effect.map((e) => {
            assert.strictEqual(e._tag, "QueryRefused")
            return e._tag === "QueryRefused" ? e.reason : ""
          }))
        const before = yield* countRows("runs", "1 = 1", [])
        assert.match(yield* refusal("INSERT INTO runs (run_id) VALUES ('x')"), /INSERT/)
        assert.match(yield* refusal("UPDATE runs SET state = 'lost'"), /UPDATE/)
        assert.match(yield* refusal("DELETE FROM runs"), /DELETE/)
        assert.match(yield* refusal("DROP TABLE runs"), /DROP/)
        assert.match(yield* refusal("SELECT 1; DELETE FROM runs"), /one statement/)
        assert.match(yield* refusal("SELECT * FROM runs INTO OUTFILE '/tmp/barto-x'"), /INTO/)
        assert.match(yield* refusal("WITH x AS (SELECT 1) DELETE FROM runs"), /DELETE/)
        assert.match(yield* refusal("SELECT * FROM runs FOR UPDATE"), /UPDATE/)
        assert.match(yield* refusal("SELECT * FROM no_such_table"), /rejected/)
        if (db.name === "sqlite") assert.match(yield* refusal("SHOW TABLES"), /MariaDB/)
        assert.strictEqual(yield* countRows("runs", "1 = 1", []), before)
      }))

    it.effect("query: a statement over the time limit is stopped", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const slow = db.name === "mariadb"
          ? "SELECT SLEEP(5)"
          : "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"
        const started = Date.now()
        const e = yield* Effect.flip(store.query(slow, { rowCap: 10, maxBytes: 1024 * 1024, timeoutMs: 300 }))
        assert.strictEqual(e._tag, "QueryRefused")
        if (e._tag === "QueryRefused") assert.match(e.reason, /time limit of 300 ms/)
        assert.isBelow(Date.now() - started, 4000)
        // The store still answers.
        const r: QueryResult = yield* store.query("SELECT 1 AS one", {
          rowCap: 10,
          maxBytes: 1024 * 1024,
          timeoutMs: 5000
        })
        assert.deepStrictEqual(r.rows, [["1"]])
      }))

    it.effect("query: the guard's bypass classes are refused by the real store", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const opts = { rowCap: 10, maxBytes: 1024 * 1024, timeoutMs: 5000 }
        for (
          const [text, reason] of [
            ["SELECT `load_file`('/etc/passwd')", /LOAD_FILE/],
            ["SELECT `get_lock`('barto-test', 0)", /GET_LOCK/],
            ["SELECT 1=1e0LOCK IN SHARE MODE", /LOCK|locking/],
            ["SELECT 1.5INTO @v", /INTO/],
            ["SELECT 1 FROM runs WHERE 1=1e0FOR UPDATE", /UPDATE/]
          ] as const
        ) {
          const e = yield* Effect.flip(store.query(text, opts))
          assert.strictEqual(e._tag, "QueryRefused", text)
          assert.match(e.message, reason, text)
        }
      }))

    it.effect("query: the result stops at the byte cap as at the row cap", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("q")
        const run = nextName("run")
        const big = "x".repeat(10_000)
        yield* store.ingest(agent, "o", wholeRun(0, run, "qb", 5000, Array.from({ length: 20 }, () => big), 0))
        const text = `SELECT data FROM output_lines WHERE run_id = '${run}' ORDER BY line_seq`
        const capped = yield* store.query(text, { rowCap: 100, maxBytes: 35_000, timeoutMs: 5000 })
        assert.strictEqual(capped.rows.length, 3)
        assert.isTrue(capped.truncated)
        const whole = yield* store.query(text, { rowCap: 100, maxBytes: 1024 * 1024, timeoutMs: 5000 })
        assert.strictEqual(whole.rows.length, 20)
        assert.isFalse(whole.truncated)
      }))

    it.effect("list, cmd and failed read page by page and keep the order of one whole read", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("paged")
        const schedule = nextName("s")
        // 300 small runs (more than a page of runs), one run of 1,200 lines (more than a page of
        // lines) in the middle, started in an order unlike their ids.
        const records: Array<AgentRecord> = []
        let seq = 0
        const bigRun = nextName("big")
        for (let i = 0; i < 300; i++) {
          const id = i === 150 ? bigRun : `${schedule}-${(i * 7919) % 1000}`
          const lines = i === 150
            ? Array.from({ length: 1200 }, (_, k) => `big ${k}`)
            : i % 3 === 0
            ? []
            : [`r${i} a`, `r${i} b`]
          const run = wholeRun(seq, id, schedule, 10_000 + (i % 2 === 0 ? i : 600 - i), lines, i % 5 === 0 ? 1 : 0)
          records.push(...run)
          seq += run.length
        }
        for (let i = 0; i < records.length; i += 500) yield* store.ingest(agent, "o", records.slice(i, i + 500))
        const sql = yield* SqlClient.SqlClient
        const expected = yield* sql.unsafe<{ data: string }>(
          `SELECT ol.data FROM output_lines ol JOIN runs r ON r.run_id = ol.run_id WHERE r.agent = ? AND r.schedule = ?
           ORDER BY COALESCE(r.started_at, r.scheduled_at), r.run_id, ol.line_seq`,
          [agent, schedule]
        )
        assert.strictEqual(expected.length, 1200 + 2 * 200)
        const listed = yield* collect(store.listLines(agent, schedule))
        assert.deepStrictEqual(listed.map((l) => l.data), expected.map((r) => r.data))
        const cmd = yield* collect(store.cmdLines(schedule))
        assert.deepStrictEqual(cmd.map((l) => l.data), expected.map((r) => r.data))
        // failed: the runs that exited 1, the big one among them with all its lines in order.
        const failed = (yield* failedRows(store)).filter((f) => f.agent === agent)
        assert.strictEqual(failed.length, 60)
        const big = failed.find((f) => f.runId === bigRun)
        assert.deepStrictEqual(big?.lines, Array.from({ length: 1200 }, (_, k) => `big ${k}`))
        const keys = failed.map((f) => f.finishedAt ?? 0)
        assert.deepStrictEqual(keys, [...keys].sort((a, b) => a - b))
      }))

    it.effect("failed with a window gives exactly what windowing the whole read keeps", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("fw")
        const records: Array<AgentRecord> = []
        let seq = 0
        const push = (rs: ReadonlyArray<AgentRecord>) => {
          records.push(...rs)
          seq += rs.length
        }
        // 400 runs at 5,000 s on (later than the file's other runs), two of three failing, more
        // than a page (256) of failures, several ending at the same instant; one with more than a
        // page of lines; a killed one; timed-out and lost runs without commands; a failed run whose
        // command never reported its exit.
        for (let i = 0; i < 400; i++) {
          const id = `${agent}-${String((i * 7919) % 1000).padStart(3, "0")}`
          const lines = i === 200 ? Array.from({ length: 1200 }, (_, k) => `big ${k}`) : [`r${i}`]
          const exit = i % 3 === 0 ? 0 : i % 3
          push(
            wholeRun(
              seq,
              id,
              "s",
              5_000 + Math.floor(i / 2),
              lines,
              i === 77 ? null : exit,
              i === 77 ? "cancelled" : undefined,
              i === 77 ? "SIGKILL" : null
            )
          )
        }
        const [timedOut, lost, open] = [nextName("to"), nextName("lost"), nextName("open")]
        push([runStarted(seq, timedOut, "s", 5_100), runFinished(seq + 1, timedOut, "timed_out", 5_101)])
        push([runStarted(seq, lost, "s", 5_050)])
        push([
          runStarted(seq, open, "s", 5_120),
          commandStarted(seq + 1, open, `${open}-c0`, 0, "echo open", 5_120),
          runFinished(seq + 2, open, "failed", 5_130)
        ])
        for (let i = 0; i < records.length; i += 500) yield* store.ingest(agent, "o", records.slice(i, i + 500))
        yield* store.markLost(agent, at(5_060))

        // The CLI's window (CliHandler.windowed): finishedAt in [since, until), then the newest
        // `limit` (rows of one command counted once).
        const windowOf = (rows: ReadonlyArray<FailedRow>, w: FailedWindow) => {
          const inside = w.since === undefined && w.until === undefined ?
            rows :
            rows.filter((f) =>
              f.finishedAt !== null && (w.since === undefined || f.finishedAt >= w.since) &&
              (w.until === undefined || f.finishedAt < w.until)
            )
          if (w.limit === undefined) return inside
          const keys = Array.from(new Set(inside.map((f) => `${f.runId}/${f.cmdUuid}`)))
          const kept = new Set(keys.slice(Math.max(0, keys.length - w.limit)))
          return inside.filter((f) => kept.has(`${f.runId}/${f.cmdUuid}`))
        }
        const whole = yield* collect(store.failed())
        const windows: ReadonlyArray<FailedWindow> = [
          { since: at(5_100) },
          { until: at(5_100) },
          { since: at(5_050), until: at(5_150) },
          { since: at(5_100), limit: 50 },
          { since: at(5_100), limit: 1 },
          { since: at(5_100), until: at(5_120), limit: 7 },
          // The commands part fills the limit, so its limit-th key bounds the other parts: the
          // command that never exited (5,130) and the timed-out run (5,101) near that bound.
          { since: at(5_098), until: at(5_132), limit: 40 },
          { since: at(5_100), until: at(5_110), limit: 12 },
          { limit: 1 },
          { limit: 300 },
          { since: at(9_000), limit: 50 },
          { since: at(5_101), until: at(5_101) }
        ]
        let nonEmpty = 0
        for (const w of windows) {
          const expected = windowOf(whole, w)
          const got = yield* collect(store.failed(w))
          assert.deepStrictEqual(windowOf(got, w), expected, JSON.stringify(w))
          // Nothing more than the window, either: its rows in the same order.
          assert.deepStrictEqual(got, expected, `exact ${JSON.stringify(w)}`)
          if (expected.length > 0) nonEmpty++
        }
        // Every window but the last two holds this test's failures (other tests' may add to them).
        assert.isAtLeast(nonEmpty, 10)
        assert.deepStrictEqual(yield* collect(store.failed({ since: at(5_101), until: at(5_101) })), [])
        // The cases are there: a page and more, the big command's split rows, the kinds of failure.
        const all = windowOf(whole, { since: at(5_000) })
        assert.isAbove(new Set(all.map((f) => f.runId)).size, 256)
        assert.isAbove(all.filter((f) => f.lines.includes("big 0") || f.lines.includes("big 1199")).length, 1)
        assert.includeMembers(all.map((f) => f.runId), [timedOut, open])
        assert.include(windowOf(whole, { limit: 300 }).map((f) => f.runId), lost)
      }))

    it.effect("recentRuns of many schedules (the schedule view) gives each one's newest run, as runs orders them", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const prefix = nextName("rv")
        // 40 agents × 2 schedules (more than one statement's 64), three runs each, two of them
        // at the same instant (the higher run id is the newer); one schedule that never ran.
        const schedules: Array<{ agent: string; schedule: string }> = []
        for (let a = 0; a < 40; a++) {
          const agent = `${prefix}-${a}`
          const records: Array<AgentRecord> = []
          let seq = 0
          for (const schedule of ["x", "y"]) {
            schedules.push({ agent, schedule })
            for (const [n, t] of [[1, 100], [2, 300 + a], [3, 300 + a]] as const) {
              const run = wholeRun(seq, `${agent}-${schedule}-${n}`, schedule, t, [], n === 1 ? 1 : 0)
              records.push(...run)
              seq += run.length
            }
          }
          yield* store.ingest(agent, "o", records)
        }
        schedules.push({ agent: `${prefix}-0`, schedule: "never" })
        const recent = yield* store.recentRuns(schedules, 1)
        assert.strictEqual(recent.size, 80)
        for (const { agent, schedule } of schedules) {
          const expected = yield* store.runs({ agent, schedule, limit: 1 })
          const got = recent.get(recentKey(agent, schedule))
          if (schedule === "never") assert.isUndefined(got)
          else {
            assert.deepStrictEqual(got?.last, expected[0])
            assert.deepStrictEqual(got?.states, [expected[0]!.state])
            assert.strictEqual(got?.last.runId, `${agent}-${schedule}-3`)
          }
        }
      }))

    it.effect("query: at most queryConcurrency statements run; one more is refused at once", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const slow = db.name === "mariadb"
          ? "SELECT SLEEP(3)"
          : "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"
        const caps = { rowCap: 10, maxBytes: 1024 * 1024, timeoutMs: 1500 }
        const running = yield* Effect.all([store.query(slow, caps), store.query(slow, caps)], { concurrency: 2 }).pipe(
          Effect.either,
          Effect.fork
        )
        // Both slots taken (default 2): the next is refused without waiting.
        let refusal: unknown
        for (let i = 0; i < 100 && refusal === undefined; i++) {
          yield* Effect.sleep("20 millis")
          const r = yield* Effect.either(store.query("SELECT 1", caps))
          if (Either.isLeft(r) && /already running 2 queries/.test(r.left.message)) refusal = r.left
        }
        assert.isDefined(refusal, "a third concurrent query is refused")
        yield* Fiber.join(running)
        const after: QueryResult = yield* store.query("SELECT 1 AS one", caps)
        assert.deepStrictEqual(after.rows, [["1"]])
      }))

    it.effect("cleanup deletes finished runs with their commands and lines, never running ones; dryRun only counts", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("a")
        const T = -1_000_000_000 // seconds before T0: this test's past, older than every other test's data
        const [old1, old2, missedOld, runningOld, recent] = [
          nextName("o1"),
          nextName("o2"),
          nextName("mo"),
          nextName("ro"),
          nextName("new")
        ]
        yield* store.ingest(agent, "o", [
          ...wholeRun(0, old1, "s", T, ["a", "b"], 0), // 0..5: 1 command, 2 lines
          ...wholeRun(10, old2, "s", T + 10, [], 1), // 10..13
          runMissed(20, missedOld, "s", T + 20),
          runStarted(21, runningOld, "s", T + 30),
          commandStarted(22, runningOld, `${runningOld}-c`, 0, "x", T + 30),
          line(23, runningOld, `${runningOld}-c`, 0, "still going", T + 30),
          ...wholeRun(30, recent, "s", T + 1000, ["keep"], 0)
        ])
        const before = at(T + 500)
        const dry = yield* store.cleanup(before, true)
        assert.deepStrictEqual(dry, { runs: 3, commands: 2, lines: 2 })
        assert.isTrue(Option.isSome(yield* store.getRun(old1)))
        const done = yield* store.cleanup(before, false)
        assert.deepStrictEqual(done, { runs: 3, commands: 2, lines: 2 })
        for (const gone of [old1, old2, missedOld]) assert.isTrue(Option.isNone(yield* store.getRun(gone)))
        assert.strictEqual(yield* countRows("output_lines", "run_id = ?", [old1]), 0)
        assert.strictEqual(yield* countRows("run_commands", "run_id = ?", [old1]), 0)
        assert.isTrue(Option.isSome(yield* store.getRun(runningOld)))
        assert.strictEqual((yield* store.runLines(runningOld, -1, 10)).length, 1)
        assert.isTrue(Option.isSome(yield* store.getRun(recent)))
        assert.deepStrictEqual(yield* store.cleanup(before, false), { runs: 0, commands: 0, lines: 0 })
      }))

    it.effect("retention: max age and max runs per schedule", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = nextName("a")
        const T = -2_000_000_000
        const day = 86_400
        const ids = Array.from({ length: 5 }, (_, i) => nextName(`r${i}`))
        const records: Array<AgentRecord> = []
        ids.forEach((id, i) => records.push(...wholeRun(i * 10, id, "keep3", T + i * day, [`l${i}`], 0)))
        const otherSchedule = nextName("solo")
        records.push(...wholeRun(100, otherSchedule, "solo", T, ["solo"], 0))
        yield* store.ingest(agent, "o", records)

        // Finished more than 3.4 days before T + 4.5 days: runs 0 and 1 (finished at +0 and +1 day), and solo.
        const byAge = yield* store.retention({ maxAgeDays: 3.4, now: at(T + 4.5 * day) })
        assert.deepStrictEqual(byAge, { runs: 3, lines: 3 })
        assert.isTrue(Option.isNone(yield* store.getRun(ids[1])))
        assert.isTrue(Option.isSome(yield* store.getRun(ids[2])))

        const running = nextName("running")
        yield* store.ingest(agent, "o", [runStarted(200, running, "keep3", T + 1)])
        const byCount = yield* store.retention({ maxRunsPerSchedule: 1, now: at(T + 4.5 * day) })
        // Of keep3 (runs 2, 3, 4 and an old running one), only the newest (4) stays, and the running one.
        assert.isAtLeast(byCount.runs, 2)
        const left = (yield* store.runs({ agent, limit: 10 })).map((r) => r.runId)
        assert.deepStrictEqual(left, [ids[4], running])
      }))
  })
}

// --- MariaDB: the query account --------------------------------------------------------------

describe("MariaDB query account: grants", () => {
  const db = "barto"
  it("only USAGE and SELECT on barto's database pass; anything else is named", () => {
    assert.deepStrictEqual(
      excessGrants([
        "GRANT USAGE ON *.* TO `q`@`%` IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122'",
        "GRANT SELECT ON `barto`.* TO `q`@`%`",
        "GRANT SELECT ON `barto`.`runs` TO `q`@`%`",
        "GRANT SELECT (`run_id`, `state`) ON `barto`.`runs` TO `q`@`%`"
      ], db),
      []
    )
    const excess = excessGrants([
      "GRANT FILE ON *.* TO `q`@`%` IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122'",
      "GRANT SELECT ON *.* TO `q`@`%`",
      "GRANT SELECT ON `other`.* TO `q`@`%`",
      "GRANT SELECT, INSERT ON `barto`.* TO `q`@`%`",
      "GRANT SELECT ON `barto`.* TO `q`@`%` WITH GRANT OPTION",
      "GRANT `reporting` TO `q`@`%`",
      "GRANT PROXY ON ''@'%' TO 'q'@'%'"
    ], db)
    assert.strictEqual(excess.length, 7)
    assert.notInclude(excess.join(), "D821809F")
  })
})

const mariadbAvailable = databases.some((d) => d.name === "mariadb")

describe.runIf(mariadbAvailable)("MariaDB query account", () => {
  const caps = { rowCap: 10, maxBytes: 1024 * 1024, timeoutMs: 5000 }
  /** A migrated test database (its query account created) and a runner for the raw sandbox. */
  const withDatabase = <A, E>(
    use: (options: Effect.Effect.Success<ReturnType<typeof mariadbDatabase>>) => Effect.Effect<A, E, Scope.Scope>
  ) =>
    Effect.scoped(Effect.gen(function*() {
      const options = yield* mariadbDatabase()
      yield* Layer.build(layerMariadb(options))
      return yield* use(options)
    }))

  it.live("the account is the barrier behind the guard: no files, no DDL, no writes, no other schema", () =>
    withDatabase((options) =>
      Effect.gen(function*() {
        // Straight to the sandbox, as a statement that got past the guard would run.
        const runner = yield* makeMariadbQueryRunner({ ...options, concurrency: 2 })
        const file = yield* runner.run("SELECT load_file('/etc/passwd') AS f, `load_file`('/etc/hostname') AS g", caps)
        assert.deepStrictEqual(file.rows, [[null, null]])
        for (
          const text of [
            "CREATE TABLE evil (a INT)",
            "DROP TABLE runs",
            "INSERT INTO paused_schedules (agent, schedule) VALUES ('a', 'b')",
            "SELECT * FROM mysql.user",
            "CREATE TEMPORARY TABLE t (a INT)"
          ]
        ) {
          const e = yield* Effect.flip(runner.run(text, caps))
          assert.strictEqual(e._tag, "QueryRefused", text)
          assert.match(e.message, /denied|READ ONLY|read only/i, text)
        }
        const dbs = yield* runner.run("SHOW DATABASES", caps)
        assert.sameMembers(dbs.rows.map((r) => r[0]), ["information_schema", options.database])
        const tables = yield* runner.run("SELECT COUNT(*) FROM runs", caps)
        assert.deepStrictEqual(tables.rows, [["0"]])
      })
    ))

  it.live("the grants SECURITY.md documents for the main account are enough: migrate, ingest, read, clean up", () =>
    Effect.gen(function*() {
      const options = yield* mariadbDatabase()
      const user = `bm_${Math.random().toString(36).slice(2, 10)}`
      const password = Math.random().toString(36).slice(2)
      yield* Effect.acquireRelease(
        asAdmin(async (conn) => {
          await conn.query(`CREATE USER '${user}'@'%' IDENTIFIED BY '${password}'`)
          await conn.query(
            `GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, CREATE VIEW ON \`${options.database}\`.* TO '${user}'@'%'`
          )
        }),
        () => asAdmin((conn) => conn.query(`DROP USER IF EXISTS '${user}'@'%'`))
      )
      const ctx = yield* Layer.build(layerMariadb({ ...options, username: user, password: Redacted.make(password) }))
      const store = Context.get(ctx, Store)
      const run = nextName("run")
      yield* store.ingest("a", "o", wholeRun(0, run, "s", -2_000_000_000, ["line"], 1))
      assert.deepStrictEqual((yield* collect(store.listLines("a", "s"))).map((l) => l.data), ["line"])
      assert.deepStrictEqual((yield* store.query("SELECT COUNT(*) FROM runs", caps)).rows, [["1"]])
      assert.strictEqual((yield* store.cleanup(at(0), false)).runs, 1)
    }).pipe(Effect.scoped))

  it.live("an account that may do more than SELECT keeps the store from starting, naming the grant", () =>
    withDatabase((options) =>
      Effect.gen(function*() {
        yield* asAdmin((conn) => conn.query(`GRANT FILE ON *.* TO '${options.queryUsername}'@'%'`))
        const broad = yield* Effect.flip(Effect.scoped(Layer.build(layerMariadb(options))))
        assert.match(broad.message, /may do more than SELECT/)
        assert.match(broad.message, /GRANT FILE ON \*\.\*/)
        assert.notMatch(broad.message, /\*[0-9A-F]{40}/)
        const same = yield* Effect.flip(Effect.scoped(Layer.build(layerMariadb({
          ...options,
          queryUsername: options.username,
          queryPassword: options.password
        }))))
        assert.match(same.message, /account of its own/)
        const wrong = yield* Effect.flip(Effect.scoped(Layer.build(layerMariadb({
          ...options,
          queryPassword: Redacted.make("wrong-password")
        }))))
        assert.match(wrong.message, /cannot log in to MariaDB as the query account/)
        assert.notInclude(wrong.message, "wrong-password")
      })
    ))

  it.live("without a query account, query is refused with the statements that create one", () =>
    withDatabase((options) =>
      Effect.gen(function*() {
        const { queryPassword: _p, queryUsername: _u, ...withoutAccount } = options
        const store = yield* Effect.flatMap(Layer.build(layerMariadb(withoutAccount)), (ctx) =>
          Effect.succeed(Context.get(ctx, Store)))
        const e = yield* Effect.flip(store.query("SELECT 1", caps))
        assert.strictEqual(e._tag, "QueryRefused")
        assert.match(e.message, /query_username/)
        assert.include(e.message, `GRANT SELECT ON \`${options.database}\`.*`)
      })
    ))

  it.live("an abandoned statement is killed on the server, and a quick one runs at once", () =>
    withDatabase((options) =>
      Effect.gen(function*() {
        const runner = yield* makeMariadbQueryRunner({ ...options, concurrency: 1 })
        const running = () => runningStatements(options.queryUsername, "SELECT SLEEP")
        const fiber = yield* Effect.fork(runner.run("SELECT SLEEP(60)", { ...caps, timeoutMs: 120_000 }))
        for (let i = 0; i < 100 && (yield* running()) === 0; i++) yield* Effect.sleep("20 millis")
        assert.strictEqual(yield* running(), 1, "the statement runs")
        // The CLI went away: interrupting waits for KILL QUERY, so the server is free when it returns.
        yield* Fiber.interrupt(fiber)
        assert.strictEqual(yield* running(), 0, "no SLEEP left on the server")
        const started = yield* Clock.currentTimeMillis
        const quick = yield* runner.run("SELECT 1", caps)
        assert.deepStrictEqual(quick.rows, [["1"]])
        assert.isBelow((yield* Clock.currentTimeMillis) - started, 1000)
      })
    ))
})
