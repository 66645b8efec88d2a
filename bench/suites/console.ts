/**
 * Suite "console": latency of the web console's API on a big installation, SQLite and MariaDB.
 * 10,000 schedules (100 agents × 100) in bartos.toml and 1,000,000 runs (about 5% failed, a few
 * still running, spread over the last 30 days) stored through the Store's own ingest (the same
 * transactions bartos runs for agents) before a real bartos process starts on that database.
 * Then sequential `GET`s over loopback, after a warm-up: `/v1/api/dashboard` (what the console's
 * first page asks: agents, running runs, 24 h failures with their count, the first 50 schedules
 * with next/last/recent strip), a deep schedules page, a schedule's runs and the failures page.
 * Target (issue 16): dashboard p99 ≤ 100 ms. `--quick`: 1,000 schedules and 100,000 runs.
 */
import * as M from "@barto/domain/Messages"
import * as Store from "@barto/server/Store"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as http from "node:http"
import { performance } from "node:perf_hooks"
import { startServer } from "../lib/barto.js"
import { type Db, type DbKind, mariadbReachable, onlyDbFromEnv, openDb, storeConfig } from "../lib/db.js"
import { removeDir, tempDir } from "../lib/procs.js"
import { atMost, median, percentile, type Row } from "../lib/report.js"

const AGENTS = 100
const DAY_MS = 86_400_000
const BATCH_RUNS = 2500

const get = (agent: http.Agent, port: number, target: string) =>
  new Promise<number>((resolve, reject) => {
    const t0 = performance.now()
    http.get({ host: "127.0.0.1", port, path: target, agent }, (res) => {
      res.resume()
      res.on("end", () => (res.statusCode === 200
        ? resolve(performance.now() - t0)
        : reject(new Error(`${target}: HTTP ${res.statusCode}`))))
    }).on("error", reject)
  })

const storeLayer = (db: Db): Layer.Layer<Store.Store, Store.StoreError> => Store.layerFromConfig(storeConfig(db))

/** `runs` runs round-robin over every schedule, newest now, through `Store.ingest` in batches. */
const seed = (db: Db, perAgent: number, runs: number) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const store = yield* Store.Store
      const now = Date.now()
      const span = 30 * DAY_MS
      const seqs = new Map<string, number>()
      for (let start = 0; start < runs; start += BATCH_RUNS) {
        const byAgent = new Map<string, Array<M.AgentRecord>>()
        for (let i = start; i < Math.min(runs, start + BATCH_RUNS); i++) {
          const agent = `agent-${String(i % AGENTS).padStart(3, "0")}`
          const schedule = `job-${String(Math.floor(i / AGENTS) % perAgent).padStart(3, "0")}`
          const at = now - span + Math.floor((i / runs) * span)
          const runId = `run-${String(i).padStart(8, "0")}` as M.RunId
          const list = byAgent.get(agent) ?? []
          let seq = seqs.get(agent) ?? 0
          list.push({
            _tag: "RunStarted",
            seq: seq++,
            runId,
            schedule,
            trigger: "schedule",
            scheduledAt: M.Micros.make(at * 1000),
            startedAt: M.Micros.make(at * 1000 + 500)
          })
          if (i < runs - 20) {
            const state = i % 20 === 7 ? "failed" : "succeeded"
            list.push({
              _tag: "RunFinished",
              seq: seq++,
              runId,
              state,
              finishedAt: M.Micros.make(at * 1000 + 1_500_000 + (i % 97) * 10_000)
            })
          }
          seqs.set(agent, seq)
          byAgent.set(agent, list)
        }
        for (const [agent, records] of byAgent) yield* store.ingest(agent, "bench-outbox", records)
      }
    }).pipe(Effect.provide(storeLayer(db)))
  )

const measure = async (port: number, target: string, n: number) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  try {
    for (let i = 0; i < Math.max(5, n / 10); i++) await get(agent, port, target)
    const times: Array<number> = []
    for (let i = 0; i < n; i++) times.push(await get(agent, port, target))
    return times
  } finally {
    agent.destroy()
  }
}

const suiteFor = async (kind: DbKind, quick: boolean): Promise<Array<Row>> => {
  const perAgent = quick ? 10 : 100
  const runs = quick ? 100_000 : 1_000_000
  const schedules = AGENTS * perAgent
  const label = `${kind}, ${schedules.toLocaleString("en")} schedules, ${runs.toLocaleString("en")} runs`
  const dir = tempDir(`barto-bench-console-${kind}-`)
  const db = await openDb(kind, dir)
  try {
    const t0 = performance.now()
    await seed(db, perAgent, runs)
    const seedSecs = (performance.now() - t0) / 1000
    const table = Object.fromEntries(
      Array.from({ length: AGENTS }, (_, a) => [
        `agent-${String(a).padStart(3, "0")}`,
        Array.from({ length: perAgent }, (_, s) => ({
          name: `job-${String(s).padStart(3, "0")}`,
          on_calendar: `*-*-* ${s % 24}:${a % 60}:00`,
          cmds: ["true"]
        }))
      ])
    )
    const server = await startServer(dir, db, { schedules: table })
    try {
      const n = quick ? 50 : 300
      const dashboard = await measure(server.port, "/v1/api/dashboard", n)
      const deep = await measure(server.port, `/v1/api/schedules?offset=${schedules - 50}&limit=50`, Math.ceil(n / 3))
      const history = await measure(
        server.port,
        "/v1/api/runs?agent=agent-042&schedule=job-007&limit=100",
        Math.ceil(n / 3)
      )
      const failures = await measure(server.port, "/v1/api/failures?limit=50", Math.ceil(n / 3))
      const row = (metric: string, times: Array<number>, target?: number): Row => ({
        suite: "console",
        metric: `${metric} (${label})`,
        value: Number(percentile(times, 99).toFixed(1)),
        unit: "ms p99",
        target: target === undefined ? "" : `≤ ${target} ms`,
        verdict: target === undefined ? "info" : atMost(percentile(times, 99), target),
        note: `median ${median(times).toFixed(1)} ms over ${times.length} sequential requests`
      })
      return [
        {
          ...row("dashboard API", dashboard, 100),
          note: `${row("", dashboard).note}; seeded through Store.ingest in ${seedSecs.toFixed(0)} s`
        },
        row("schedules page at the end", deep),
        row("one schedule's runs", history),
        row("failures page", failures)
      ]
    } finally {
      await server.proc.stop()
    }
  } finally {
    await db.close()
    removeDir(dir)
  }
}

export const run = async (quick: boolean): Promise<Array<Row>> => {
  // BENCH_CONSOLE_DB=sqlite|mariadb: one database only (MariaDB's seeding takes minutes).
  const only = onlyDbFromEnv("BENCH_CONSOLE_DB")
  const rows = only === "mariadb" ? [] : await suiteFor("sqlite", quick)
  if (only === "sqlite") return rows
  if (await mariadbReachable()) rows.push(...(await suiteFor("mariadb", quick)))
  else {
    rows.push({
      suite: "console",
      metric: "dashboard API (mariadb)",
      value: null,
      unit: "",
      target: "≤ 100 ms",
      verdict: "skip",
      note: "MariaDB not reachable"
    })
  }
  return rows
}
