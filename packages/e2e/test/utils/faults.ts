/**
 * Helpers of the fault, durability and fuzz suites: job commands that print numbered lines,
 * invariants over the database bartos writes (exactly once, contiguous, final states), the
 * agent's outbox file read from outside, `/metrics`, and waiting for the wall clock.
 */
import * as Calendar from "@barto/scheduler/Calendar"
import * as MissedTicks from "@barto/scheduler/MissedTicks"
import Database from "better-sqlite3"
import * as Either from "effect/Either"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { expect } from "vitest"
import type { Cluster, Db } from "./cluster.js"
import { type Proc, waitFor } from "./procs.js"

/** The states a run that started ends in (`missed` is the final state of one that never started). */
export const FINAL_STATES = ["succeeded", "failed", "timed_out", "cancelled", "interrupted"] as const

/**
 * A job printing `1..n` on stdout (one number per line) in `chunks` slices, with one
 * `err <k>` line on stderr after each slice and `pauseSecs` between slices, so it is mid-run
 * for about `chunks * pauseSecs` seconds.
 */
export const numberedJob = (n: number, chunks: number, pauseSecs: number): string => {
  const per = Math.ceil(n / chunks)
  return `for k in $(seq 1 ${chunks}); do ` +
    `a=$(( (k - 1) * ${per} + 1 )); b=$(( k * ${per} )); [ $b -gt ${n} ] && b=${n}; ` +
    `[ $a -le ${n} ] && seq $a $b; echo "err $k" >&2; sleep ${pauseSecs}; done`
}

export interface RunRow {
  readonly run_id: string
  readonly agent: string
  readonly schedule: string
  readonly run_trigger: string
  readonly state: string
  readonly scheduled_at: number
  readonly started_at: number | null
  readonly finished_at: number | null
}

export interface LineRow {
  readonly run_id: string
  readonly line_seq: number
  readonly stream: string
  readonly data: string
}

const toNum = (v: unknown) => Number(v)

export const runs = async (db: Db, agent: string, schedule?: string): Promise<Array<RunRow>> => {
  const rows = await db.all<RunRow>(
    `SELECT run_id, agent, schedule, run_trigger, state, scheduled_at, started_at, finished_at FROM runs
     WHERE agent = ?${schedule === undefined ? "" : " AND schedule = ?"} ORDER BY scheduled_at, run_id`,
    schedule === undefined ? [agent] : [agent, schedule]
  )
  return rows.map((r) => ({
    ...r,
    scheduled_at: toNum(r.scheduled_at),
    started_at: r.started_at === null ? null : toNum(r.started_at),
    finished_at: r.finished_at === null ? null : toNum(r.finished_at)
  }))
}

export const lines = async (db: Db, runId: string): Promise<Array<LineRow>> =>
  (await db.all<LineRow>(
    `SELECT run_id, line_seq, stream, data FROM output_lines WHERE run_id = ? ORDER BY line_seq`,
    [runId]
  )).map((l) => ({ ...l, line_seq: toNum(l.line_seq) }))

export const lineCount = async (db: Db, runId: string): Promise<number> =>
  toNum((await db.all<{ n: unknown }>(`SELECT COUNT(*) AS n FROM output_lines WHERE run_id = ?`, [runId]))[0]!.n)

/** D5: no (run, line) stored twice. The primary key forbids it; this checks it from outside. */
export const expectNoDuplicateLines = async (db: Db) => {
  const dups = await db.all(
    `SELECT run_id, line_seq, COUNT(*) AS n FROM output_lines GROUP BY run_id, line_seq HAVING COUNT(*) > 1`
  )
  expect(dups).toEqual([])
}

/** Line sequences of a run are 0..n-1 without a gap. */
export const expectContiguous = (ls: ReadonlyArray<LineRow>) => {
  const gaps = ls.flatMap((l, i) => (l.line_seq === i ? [] : [`position ${i} holds line_seq ${l.line_seq}`]))
  expect(gaps.slice(0, 5)).toEqual([])
}

/** The stdout lines of a `numberedJob` are 1, 2, 3, … in order; returns how many. */
export const expectNumbered = (ls: ReadonlyArray<LineRow>): number => {
  const out = ls.filter((l) => l.stream === "stdout")
  const wrong = out.flatMap((l, i) => (l.data === String(i + 1) ? [] : [`stdout line ${i} is '${l.data}'`]))
  expect(wrong.slice(0, 5)).toEqual([])
  return out.length
}

/** Runs of an agent that are not in a final state (running or lost are reported separately). */
export const unfinished = (rs: ReadonlyArray<RunRow>) =>
  rs.filter((r) => !(FINAL_STATES as ReadonlyArray<string>).includes(r.state) && r.state !== "missed")

/** Exactly one RunFinished decided each run: it is in one state, and a final one. */
export const expectAllFinal = (rs: ReadonlyArray<RunRow>) => {
  expect(unfinished(rs).map((r) => `${r.run_id} ${r.state}`)).toEqual([])
  for (const r of rs) if (r.state !== "missed") expect(r.finished_at).not.toBeNull()
}

// ---------------------------------------------------------------------------------------------
// The run ledger: every occurrence accounted for exactly once
// ---------------------------------------------------------------------------------------------

export interface LedgerRow {
  readonly run_id: string
  readonly run_trigger: string
  readonly state: string
  /** Microseconds: the occurrence (a range's first). */
  readonly scheduled_at: number
  /** Microseconds: a range's last occurrence. */
  readonly scheduled_until: number | null
  readonly occurrences: number
  readonly reason: string | null
}

export const ledger = async (db: Db, agent: string, schedule: string): Promise<Array<LedgerRow>> =>
  (await db.all<LedgerRow>(
    `SELECT run_id, run_trigger, state, scheduled_at, scheduled_until, occurrences, reason FROM runs
     WHERE agent = ? AND schedule = ? AND run_trigger <> 'manual' ORDER BY scheduled_at, run_id`,
    [agent, schedule]
  )).map((r) => ({
    ...r,
    scheduled_at: toNum(r.scheduled_at),
    scheduled_until: r.scheduled_until === null ? null : toNum(r.scheduled_until),
    occurrences: toNum(r.occurrences)
  }))

/** The rows once none is `running` or `lost` any more: every one final, or missed. */
export const settledLedger = async (db: Db, agent: string, schedule: string, timeoutMs = 30_000) => {
  let open: Array<string> = []
  try {
    return await waitFor(`the ledger of ${agent}/${schedule} to settle`, async () => {
      const rows = await ledger(db, agent, schedule)
      open = rows.filter((r) => r.state === "running" || r.state === "lost").map((r) =>
        `${r.run_id} ${r.run_trigger} ${r.state} ${iso(r.scheduled_at / 1000)}`
      )
      return rows.length > 0 && open.length === 0 ? rows : undefined
    }, { timeoutMs })
  } catch (e) {
    throw new Error(`${e instanceof Error ? e.message : String(e)}; still open: ${open.join(", ")}`)
  }
}

const iso = (ms: number) => new Date(ms).toISOString()

/**
 * The ledger identity (issue 12 §3; `MissedTicks.ledgerProblems`): every occurrence of `calendar`
 * from the first row's to the last row's has exactly one row (a run, or a missed record; a
 * missed range stands for each of its occurrences), no row is for an instant the calendar does
 * not have; also every row is in a final state, and every missed or interrupted row says why.
 * Returns the occurrences per state.
 */
export const expectLedgerIdentity = (rows: ReadonlyArray<LedgerRow>, calendar: string): Record<string, number> => {
  const problems = MissedTicks.ledgerProblems(
    Either.getOrThrow(Calendar.parse(calendar)),
    rows.map((r) => ({
      from: r.scheduled_at / 1000,
      to: (r.scheduled_until ?? r.scheduled_at) / 1000,
      count: r.occurrences,
      label: `${r.run_id} ${r.state}`
    }))
  )
  const byState: Record<string, number> = {}
  for (const r of rows) {
    if (!(FINAL_STATES as ReadonlyArray<string>).includes(r.state) && r.state !== "missed") {
      problems.push(`${r.run_id} is ${r.state}`)
    }
    if ((r.state === "missed" || r.state === "interrupted") && (r.reason === null || r.reason === "")) {
      problems.push(`${r.run_id} is ${r.state} without a reason`)
    }
    byState[r.state] = (byState[r.state] ?? 0) + r.occurrences
  }
  expect(problems.slice(0, 20)).toEqual([])
  return byState
}

// ---------------------------------------------------------------------------------------------
// The agent's outbox, read from outside (WAL: a reader sees every committed append)
// ---------------------------------------------------------------------------------------------

export const agentStatePath = (cluster: Cluster, agent: string) => join(cluster.dir, `bartoc-${agent}.db`)

export interface OutboxLine {
  readonly seq: number
  readonly runId: string
  readonly lineSeq: number
}

/** Output lines still pending in an agent's outbox (the agent must be stopped or killed). */
export const outboxLines = (statePath: string): Array<OutboxLine> => {
  if (!existsSync(statePath)) return []
  const db = new Database(statePath, { readonly: true, fileMustExist: true })
  try {
    return (db.prepare(`SELECT seq, body FROM records WHERE kind = 'OutputLine' ORDER BY seq`).all() as Array<{
      seq: number
      body: string
    }>).map((r) => {
      const b = JSON.parse(r.body) as { runId: string; lineSeq: number }
      return { seq: r.seq, runId: b.runId, lineSeq: b.lineSeq }
    })
  } finally {
    db.close()
  }
}

/** RunStarted records still pending in an agent's outbox (readable while the agent runs: WAL). */
export const outboxRunStarts = (
  statePath: string
): Array<{ seq: number; runId: string; scheduledAt: number; trigger: string }> => {
  if (!existsSync(statePath)) return []
  const db = new Database(statePath, { readonly: true, fileMustExist: true })
  try {
    return (db.prepare(`SELECT seq, body FROM records WHERE kind = 'RunStarted' ORDER BY seq`).all() as Array<{
      seq: number
      body: string
    }>).map((r) => {
      const b = JSON.parse(r.body) as { runId: string; scheduledAt: number; trigger: string }
      return { seq: r.seq, runId: b.runId, scheduledAt: b.scheduledAt, trigger: b.trigger }
    })
  } finally {
    db.close()
  }
}

// ---------------------------------------------------------------------------------------------
// Processes and time
// ---------------------------------------------------------------------------------------------

/** Waits until the wall clock passed `epochMs` (polling, no fixed sleep). */
export const waitUntilClock = (epochMs: number, what = `the clock to pass ${new Date(epochMs).toISOString()}`) =>
  waitFor(what, () => Date.now() > epochMs || undefined, {
    timeoutMs: Math.max(5_000, epochMs - Date.now() + 5_000),
    intervalMs: 20
  })

export const isAlive = (p: Proc) => p.child.exitCode === null && p.child.signalCode === null

/** Prometheus text of `/metrics` as a map "name{labels}" -> value. */
export const metrics = async (port: number): Promise<Map<string, number>> => {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`)
  const text = await res.text()
  const out = new Map<string, number>()
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue
    const at = line.lastIndexOf(" ")
    out.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return out
}

/** Sum of a metric over every label set. */
export const metricSum = (m: Map<string, number>, name: string): number => {
  let sum = 0
  for (const [k, v] of m) if (k === name || k.startsWith(`${name}{`)) sum += v
  return sum
}

/** An epoch-ms instant as a one-shot UTC calendar expression (`YYYY-MM-DD HH:MM:SS`). */
export const oneShot = (epochMs: number): string =>
  new Date(Math.ceil(epochMs / 1000) * 1000).toISOString().slice(0, 19).replace("T", " ")
