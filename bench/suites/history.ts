/**
 * Suite "history" (issue 18, history at scale), SQLite and MariaDB: a stored history of runs with
 * one command and LINES_PER_RUN output lines each (5% of them failed, spread over the last 30
 * days, 100 agents × 10 schedules) seeded through `Store.ingest` (the transactions bartos runs for
 * agents), then the reads behind the CLI in-process through the Store, each p99 ≤ 50 ms:
 * `runs --agent A --limit 20`, `tail RUN` (the run and its first page of lines), `failed` with the
 * CLI's default window (last 24 h, newest 50) and the schedule view (`schedules`: the newest run
 * of every schedule). Then retention: `Store.retention` deletes the older half of the history in
 * RETENTION_SLICES passes while one live agent ingests 500-line batches (for the first DURING_SECS
 * of each pass), with windows of that ingest alone before each pass and after the last; the rate
 * during the passes against the rate of the windows alone, target ≥ 80%.
 *
 * Every statement a read runs is captured (an `@effect/sql` statement transformer) and shown with
 * its plan (SQLite `EXPLAIN QUERY PLAN`, MariaDB `EXPLAIN`) on stderr with `BENCH_EXPLAIN=1`; a
 * plan that scans a table or sorts (filesort / temp b-tree) is counted in the row's note.
 *
 * Scale: issue 18's target is 1,000,000 runs and 20,000,000 lines (`BENCH_HISTORY_SCALE=1`);
 * the default 0.05 (50,000 runs, 1,000,000 lines) keeps the suite to a few minutes, `--quick`
 * 0.01. The full scale on MariaDB seeds for a long time (bench/README.md).
 */
import * as M from "@barto/domain/Messages"
import * as Store from "@barto/server/Store"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { performance } from "node:perf_hooks"
import { type Db, type DbKind, mariadbReachable, onlyDbFromEnv, openDb, storeConfig } from "../lib/db.js"
import { removeDir, tempDir } from "../lib/procs.js"
import { atLeast, atMost, median, percentile, type Row } from "../lib/report.js"

const AGENTS = 100
const SCHEDULES_PER_AGENT = 10
const LINES_PER_RUN = 20
const DAY_MS = 86_400_000
const TARGET_MS = 50
/** What the CLI's `tail` reads per page (Operations.TAIL_PAGE_LINES). */
const TAIL_PAGE_LINES = 500
const LIVE_LINES = 500
/** Retention's passes in the bench, and the seconds of ingest alone before each and after the last. */
const RETENTION_SLICES = 5
const ALONE_SECS = 3
/** Ingest during a pass for at most this long (see the retention part of `suiteFor`). */
const DURING_SECS = 20

const FULL_RUNS = 1_000_000

type Services = Store.Store | SqlClient.SqlClient

const storeLayer = (db: Db): Layer.Layer<Services, Store.StoreError> => Store.layerFromConfigWithClient(storeConfig(db))

const agentName = (a: number) => `agent-${String(a).padStart(3, "0")}`
const scheduleName = (s: number) => `job-${String(s).padStart(2, "0")}`
const runIdOf = (i: number) => `run-${String(i).padStart(8, "0")}`

/** The records of seeded run `i` (scheduled at `at` ms), continuing the agent's sequence at `seq`. */
const runRecords = (i: number, at: number, seq: number, failed: boolean): Array<M.AgentRecord> => {
  const runId = runIdOf(i) as M.RunId
  const cmdUuid = `cmd-${String(i).padStart(8, "0")}`
  const t = at * 1000
  const out: Array<M.AgentRecord> = [
    {
      _tag: "RunStarted",
      seq: seq++,
      runId,
      schedule: scheduleName(Math.floor(i / AGENTS) % SCHEDULES_PER_AGENT),
      trigger: "schedule",
      scheduledAt: M.Micros.make(t),
      startedAt: M.Micros.make(t + 500)
    },
    {
      _tag: "CommandStarted",
      seq: seq++,
      runId,
      cmdUuid,
      cmdIndex: 0,
      command: "job",
      startedAt: M.Micros.make(t + 600)
    }
  ]
  for (let l = 0; l < LINES_PER_RUN; l++) {
    out.push({
      _tag: "OutputLine",
      seq: seq++,
      runId,
      cmdUuid,
      lineSeq: l,
      stream: l % 7 === 0 ? "stderr" : "stdout",
      ts: M.Micros.make(t + 1000 + l),
      data: `line ${l} of run ${i}: the quick brown fox jumps over the lazy dog 0123456789`,
      continuation: false
    })
  }
  const end = M.Micros.make(t + 1_500_000 + (i % 97) * 10_000)
  out.push(
    { _tag: "CommandExited", seq: seq++, runId, cmdUuid, exitCode: failed ? 1 : 0, signal: null, finishedAt: end },
    { _tag: "RunFinished", seq: seq++, runId, state: failed ? "failed" : "succeeded", finishedAt: end }
  )
  return out
}

/**
 * How the history is seeded through `Store.ingest`, per database: records of RUNS_PER_INGEST runs
 * per agent in one batch (1,200 records, ~180 KB, under a frame), and on MariaDB several agents'
 * batches at once, as bartos ingests its agents' sessions side by side (each batch is its own
 * transaction on a connection of the pool; one round trip per statement, so concurrency is what
 * hides them). SQLite has one writer: its batches go one after the other.
 */
const RUNS_PER_INGEST = 50
const SEED_CONCURRENCY: Record<DbKind, number> = { sqlite: 1, mariadb: 4 }

/** `runs` runs round-robin over the agents, oldest 30 days ago, newest now, through `Store.ingest`. */
const seed = (runs: number, now: number, kind: DbKind) =>
  Effect.gen(function*() {
    const store = yield* Store.Store
    const span = 30 * DAY_MS
    const seqs = new Map<string, number>()
    const round = AGENTS * RUNS_PER_INGEST
    for (let start = 0; start < runs; start += round) {
      // One batch per agent: an agent's batches stay in order (its seq grows), different agents' run side by side.
      const byAgent = new Map<string, Array<M.AgentRecord>>()
      for (let i = start; i < Math.min(runs, start + round); i++) {
        const agent = agentName(i % AGENTS)
        const at = now - span + Math.floor((i / runs) * span)
        const records = runRecords(i, at, seqs.get(agent) ?? 0, i % 20 === 7)
        seqs.set(agent, (seqs.get(agent) ?? 0) + records.length)
        const list = byAgent.get(agent)
        if (list === undefined) byAgent.set(agent, records)
        else list.push(...records)
      }
      yield* Effect.forEach(byAgent, ([agent, records]) => store.ingest(agent, "bench-outbox", records), {
        concurrency: SEED_CONCURRENCY[kind],
        discard: true
      })
    }
  })

/** p99 and median (ms) of `n` sequential calls after a warm-up; `i` varies the arguments. */
const timed = <A, E>(n: number, call: (i: number) => Effect.Effect<A, E, Services>) =>
  Effect.gen(function*() {
    for (let i = 0; i < Math.max(5, n / 10); i++) yield* call(i)
    const times: Array<number> = []
    for (let i = 0; i < n; i++) {
      const t0 = performance.now()
      yield* call(i)
      times.push(performance.now() - t0)
    }
    return times
  })

/** The statements `effect` runs (text and parameters), through the client's statement transformer. */
const captured = <A, E>(effect: Effect.Effect<A, E, Services>) =>
  Effect.gen(function*() {
    const seen: Array<readonly [string, ReadonlyArray<unknown>]> = []
    yield* Statement.withTransformer(effect, (statement) =>
      Effect.sync(() => {
        const [text, params] = statement.compile()
        if (!seen.some(([t]) => t === text)) seen.push([text, params])
        return statement
      }))
    return seen
  })

// A step that reads a whole stored table, or sorts rows read from one: what the index fixes
// should prevent. Sorting a derived table (a LIMITed part of a UNION) is the merge of parts.
const BAD_PLAN: Record<DbKind, RegExp> = {
  sqlite: /^ {2}SCAN (runs|run_commands|output_lines|r|c|ol)$/,
  mariadb: /^ {2}\S+ (?!<)\S+ type=(ALL|index) |^ {2}\S+ (?!<)\S+ .*Using filesort/
}

/** Each statement's plan as text lines; how many of them scan or sort. */
const explain = (kind: DbKind, statements: ReadonlyArray<readonly [string, ReadonlyArray<unknown>]>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const lines: Array<string> = []
    let bad = 0
    for (const [text, params] of statements) {
      const rows = yield* Statement.withTransformerDisabled(
        sql.unsafe<Record<string, unknown>>(`${kind === "sqlite" ? "EXPLAIN QUERY PLAN" : "EXPLAIN"} ${text}`, params)
      )
      const plan = kind === "sqlite"
        ? rows.map((r) => `  ${String(r.detail)}`)
        : rows.map((r) =>
          `  ${r.select_type} ${r.table} type=${r.type} key=${r.key ?? "-"} rows=${r.rows} ${r.Extra ?? ""}`.trimEnd()
        )
      lines.push(text.replace(/\s+/g, " ").slice(0, 400), ...plan)
      bad += plan.filter((l) => BAD_PLAN[kind].test(l)).length
    }
    return { text: lines.join("\n"), bad }
  })

const nextTurn = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/**
 * Windows of one live agent ingesting sequential 500-line runs: each window runs for at least
 * `minSecs` and until `until()`, and returns the lines it stored and its length. Every run id is
 * new (one counter over all windows), and each window is an agent of its own: a run id stored
 * before belongs to another agent, so its records would be refused and nothing written (the
 * first full-scale run reused ids after retention and measured 3.4× the rate before it).
 */
const liveIngest = () => {
  let next = 0
  let window = 0
  return (until: () => boolean, minSecs: number) =>
    Effect.gen(function*() {
      const store = yield* Store.Store
      const from = next
      const agent = `live-${window++}`
      let seq = 0
      let batches = 0
      const t0 = performance.now()
      while (performance.now() - t0 < minSecs * 1000 || !until()) {
        const runId = `live-${String(from + batches).padStart(8, "0")}` as M.RunId
        const cmdUuid = `live-cmd-${from + batches}`
        const t = Date.now() * 1000
        const records: Array<M.AgentRecord> = [
          {
            _tag: "RunStarted",
            seq: seq++,
            runId,
            schedule: "live",
            trigger: "manual",
            scheduledAt: M.Micros.make(t),
            startedAt: M.Micros.make(t)
          },
          {
            _tag: "CommandStarted",
            seq: seq++,
            runId,
            cmdUuid,
            cmdIndex: 0,
            command: "live",
            startedAt: M.Micros.make(t)
          }
        ]
        for (let l = 0; l < LIVE_LINES; l++) {
          records.push({
            _tag: "OutputLine",
            seq: seq++,
            runId,
            cmdUuid,
            lineSeq: l,
            stream: "stdout",
            ts: M.Micros.make(t + l),
            data: `live line ${l}: the quick brown fox jumps over the lazy dog 0123456789`,
            continuation: false
          })
        }
        records.push(
          {
            _tag: "CommandExited",
            seq: seq++,
            runId,
            cmdUuid,
            exitCode: 0,
            signal: null,
            finishedAt: M.Micros.make(t + 1)
          },
          { _tag: "RunFinished", seq: seq++, runId, state: "succeeded", finishedAt: M.Micros.make(t + 1) }
        )
        yield* store.ingest(agent, "live-outbox", records)
        batches++
        next++
        // The next batch arrives as a socket frame does in bartos: from the event loop, so that
        // whatever waits on it (retention's next chunk) gets its turn.
        yield* nextTurn
      }
      return { lines: batches * LIVE_LINES, secs: (performance.now() - t0) / 1000 }
    })
}

export const scaleOf = (quick: boolean): number => {
  const env = process.env.BENCH_HISTORY_SCALE
  if (env !== undefined && env !== "") {
    const n = Number(env)
    if (!(n > 0 && n <= 1)) throw new Error(`BENCH_HISTORY_SCALE: '${env}' is not a number in (0, 1]`)
    return n
  }
  return quick ? 0.01 : 0.05
}

const suiteFor = async (kind: DbKind, quick: boolean): Promise<Array<Row>> => {
  const scale = scaleOf(quick)
  const runs = Math.round(FULL_RUNS * scale)
  const label = `${kind}, ${runs.toLocaleString("en")} runs, ${(runs * LINES_PER_RUN).toLocaleString("en")} lines`
  const dir = tempDir(`barto-bench-history-${kind}-`)
  const db = await openDb(kind, dir)
  const showPlans = process.env.BENCH_EXPLAIN === "1"
  try {
    return await Effect.runPromise(
      Effect.gen(function*() {
        const store = yield* Store.Store
        const now = Date.now()
        const t0 = performance.now()
        yield* seed(runs, now, kind)
        const seedSecs = (performance.now() - t0) / 1000
        process.stderr.write(`history: ${label} seeded in ${seedSecs.toFixed(0)} s\n`)
        const n = quick ? 50 : 200
        const schedules = Array.from(
          { length: AGENTS * SCHEDULES_PER_AGENT },
          (_, k) => ({ agent: agentName(k % AGENTS), schedule: scheduleName(Math.floor(k / AGENTS)) })
        )
        const since = M.Micros.make((now - DAY_MS) * 1000)
        const failedWindow = { since, limit: 50 }
        const reads: Array<{ metric: string; call: (i: number) => Effect.Effect<unknown, Store.StoreError> }> = [
          {
            metric: "runs --agent A --limit 20",
            call: (i) => store.runs({ agent: agentName((i * 37) % AGENTS), limit: 20 })
          },
          {
            metric: "tail RUN (run + first page of lines)",
            call: (i) =>
              Effect.zip(
                store.getRun(runIdOf((i * 7919) % runs)),
                store.runLines(runIdOf((i * 7919) % runs), -1, TAIL_PAGE_LINES)
              )
          },
          {
            metric: "failed (last 24 h, newest 50)",
            call: () => Stream.runDrain(store.failed(failedWindow))
          },
          {
            metric: `schedule view (${schedules.length.toLocaleString("en")} schedules' newest run)`,
            call: () => store.recentRuns(schedules, 1)
          }
        ]
        const rows: Array<Row> = []
        const plans: Array<string> = []
        for (const read of reads) {
          const plan = yield* explain(kind, yield* captured(read.call(1)))
          plans.push(`-- ${read.metric} (${kind})`, plan.text)
          const t2 = performance.now()
          const times = yield* timed(n, read.call)
          process.stderr.write(`history: ${kind} ${read.metric}: ${((performance.now() - t2) / 1000).toFixed(1)} s\n`)
          const p99 = percentile(times, 99)
          rows.push({
            suite: "history",
            metric: `${read.metric} (${label})`,
            value: Number(p99.toFixed(1)),
            unit: "ms p99",
            target: `≤ ${TARGET_MS} ms`,
            verdict: atMost(p99, TARGET_MS),
            note: `median ${median(times).toFixed(1)} ms over ${times.length} sequential calls; ` +
              `plans: ${plan.bad === 0 ? "no scan or sort" : `${plan.bad} step(s) scan or sort`}` +
              (rows.length === 0 ? `; seeded through Store.ingest in ${seedSecs.toFixed(0)} s` : "")
          })
        }
        // Show the check's plans too.
        if (showPlans) process.stderr.write(`${plans.join("\n")}\n`)

        // Retention: the older half deleted in RETENTION_SLICES passes (3 more days each), with
        // ingest alone for a few seconds before each pass and after the last, and ingest during
        // each pass. Alone and during alternate, so both see the same machine (it is shared and
        // its speed drifts) and the same database (live ingest grows it: at full scale by more
        // lines than the history holds).
        process.stderr.write(`history: ${kind} ingest alone and during retention, ${RETENTION_SLICES} passes…\n`)
        const live = liveIngest()
        const alone = { lines: 0, secs: 0 }
        const during = { lines: 0, secs: 0 }
        const aloneRates: Array<number> = []
        const duringRates: Array<number> = []
        let deleted = { runs: 0, lines: 0 }
        let retentionSecs = 0
        let failure: string | undefined
        for (let pass = 0; pass <= RETENTION_SLICES; pass++) {
          const a = yield* live(() => true, quick ? 1 : ALONE_SECS)
          alone.lines += a.lines
          alone.secs += a.secs
          aloneRates.push(a.lines / a.secs)
          if (pass === RETENTION_SLICES || failure !== undefined) break
          let retentionDone = false
          const maxAgeDays = 30 - (pass + 1) * (15 / RETENTION_SLICES)
          const retention = yield* Effect.fork(
            store.retention({ maxAgeDays, now: M.Micros.make(now * 1000) }).pipe(
              Effect.ensuring(Effect.sync(() => {
                retentionDone = true
              }))
            )
          )
          const t2 = performance.now()
          // The first DURING_SECS of the pass (all of a shorter one); the rest of the pass runs
          // without ingest (retention's idle pace). Saturating ingest through a whole pass wrote
          // ~10× the history at full scale (SQLite grew past 40 GB).
          const d = yield* live(() => retentionDone || performance.now() - t2 > DURING_SECS * 1000, 0)
          during.lines += d.lines
          during.secs += d.secs
          duringRates.push(d.lines / d.secs)
          const n = yield* Fiber.join(retention).pipe(
            Effect.catchAll((e) => Effect.succeed({ runs: 0, lines: 0, error: e.message }))
          )
          retentionSecs += (performance.now() - t2) / 1000
          if ("error" in n) failure = n.error
          deleted = { runs: deleted.runs + n.runs, lines: deleted.lines + n.lines }
        }
        const aloneRate = alone.lines / alone.secs
        const duringRate = during.lines / during.secs
        const ratio = duringRate / aloneRate
        // Each pass against the mean of the alone windows before and after it.
        const ratios = duringRates.map((r, i) => r / ((aloneRates[i]! + (aloneRates[i + 1] ?? aloneRates[i]!)) / 2))
        const fmt = (n: number) => Math.round(n).toLocaleString("en")
        rows.push({
          suite: "history",
          metric: `ingest during retention vs alone (${label})`,
          value: Number((ratio * 100).toFixed(0)),
          unit: "%",
          target: "≥ 80%",
          verdict: failure !== undefined ? "error" : atLeast(ratio, 0.8),
          note: `${fmt(duringRate)} vs ${fmt(aloneRate)} lines/s (500-line batches of one agent; alone ${
            aloneRates.map(fmt).join(", ")
          } around the ${RETENTION_SLICES} passes, each pass ${
            ratios.map((r) => `${(r * 100).toFixed(0)}%`).join(", ")
          } of the mean of the windows beside it); retention deleted ${fmt(deleted.runs)} runs, ${
            fmt(deleted.lines)
          } lines in ${retentionSecs.toFixed(1)} s, ${during.secs.toFixed(1)} s of it with ingest${
            failure !== undefined ? `; retention failed: ${failure}` : ""
          }`
        })
        return rows
      }).pipe(Effect.provide(storeLayer(db)))
    )
  } finally {
    await db.close()
    removeDir(dir)
  }
}

export const run = async (quick: boolean): Promise<Array<Row>> => {
  // BENCH_HISTORY_DB=sqlite|mariadb: one database only (the full scale takes long on MariaDB).
  const only = onlyDbFromEnv("BENCH_HISTORY_DB")
  const rows = only === "mariadb" ? [] : await suiteFor("sqlite", quick)
  if (only === "sqlite") return rows
  if (await mariadbReachable()) rows.push(...(await suiteFor("mariadb", quick)))
  else {
    rows.push({
      suite: "history",
      metric: "history reads (mariadb)",
      value: null,
      unit: "",
      target: `≤ ${TARGET_MS} ms`,
      verdict: "skip",
      note: "MariaDB not reachable"
    })
  }
  return rows
}
