/**
 * `npm run bench`: every benchmark suite in one run, one table, the same rows as JSON.
 *
 *   npm run bench                       all suites, full sizes (~12-15 min)
 *   npm run bench -- --quick            smaller sizes, a smoke run
 *   npm run bench -- --only ingest      one suite (repeatable, or comma-separated)
 *   npm run bench -- --profile          also write CPU profiles of bartos/bartoc at their exit
 *                                       (bench/results/profiles/<date>/*.cpuprofile)
 *
 * Suites: calendar, dispatch, ingest, agents, reconnect, bartoc, console, history. Results: bench/results/latest.json and a
 * dated copy next to it (rows + machine facts). Everything talks to 127.0.0.1 only; every child
 * process and temp dir is removed at the end, also on Ctrl-C.
 */
import { execFileSync } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import { join } from "node:path"
import { launchMode } from "./lib/barto.js"
import { mariadbVersion } from "./lib/db.js"
import { killEverythingNow, repoRoot } from "./lib/procs.js"
import { formatNotes, formatTable, type Row } from "./lib/report.js"
import * as Agents from "./suites/agents.js"
import * as BartocIdle from "./suites/bartocIdle.js"
import * as Calendar from "./suites/calendar.js"
import * as Console from "./suites/console.js"
import * as Dispatch from "./suites/dispatch.js"
import * as History from "./suites/history.js"
import * as Ingest from "./suites/ingest.js"
import * as Reconnect from "./suites/reconnect.js"

const SUITES: ReadonlyArray<{ readonly name: string; readonly run: (quick: boolean) => Promise<Array<Row>> }> = [
  { name: "calendar", run: Calendar.run },
  { name: "dispatch", run: Dispatch.run },
  { name: "ingest", run: Ingest.run },
  { name: "agents", run: Agents.run },
  { name: "reconnect", run: Reconnect.run },
  { name: "bartoc", run: BartocIdle.run },
  { name: "console", run: Console.run },
  { name: "history", run: History.run }
]

const usage = `usage: npm run bench -- [--quick] [--profile] [--only <suite>[,<suite>…]]…
suites: ${SUITES.map((s) => s.name).join(", ")}`

const parseArgs = (argv: ReadonlyArray<string>) => {
  let quick = false
  let profile = false
  const only = new Set<string>()
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === "--quick") quick = true
    else if (a === "--profile") profile = true
    else if (a === "--only" || a.startsWith("--only=")) {
      const value = a === "--only" ? argv[++i] : a.slice("--only=".length)
      if (value === undefined || value === "") throw new Error("--only needs a suite name")
      for (const name of value.split(",")) only.add(name.trim())
    } else if (a === "--help" || a === "-h") {
      console.log(usage)
      process.exit(0)
    } else throw new Error(`unknown argument ${a}`)
  }
  for (const name of only) {
    if (!SUITES.some((s) => s.name === name)) throw new Error(`unknown suite ${name}`)
  }
  return { quick, profile, only }
}

const git = (...args: Array<string>): string | undefined => {
  try {
    return execFileSync("git", args, { cwd: repoRoot, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim()
  } catch {
    return undefined
  }
}

const main = async () => {
  let args: ReturnType<typeof parseArgs>
  try {
    args = parseArgs(process.argv.slice(2))
  } catch (e) {
    console.error(`bench: ${(e as Error).message}\n${usage}`)
    process.exit(2)
  }
  const started = new Date()
  const stamp = started.toISOString().replace(/[:.]/g, "-")
  const loadBefore = os.loadavg()
  const launch = { bartos: launchMode("bartos"), bartoc: launchMode("bartoc") }
  if (args.profile) {
    process.env.BENCH_PROFILE_DIR = join(repoRoot, "bench", "results", "profiles", stamp)
    mkdirSync(process.env.BENCH_PROFILE_DIR, { recursive: true })
  }
  const selected = SUITES.filter((s) => args.only.size === 0 || args.only.has(s.name))
  const rows: Array<Row> = []
  const durations: Record<string, number> = {}
  for (const suite of selected) {
    process.stderr.write(`bench: ${suite.name}${args.quick ? " (quick)" : ""}…\n`)
    const t0 = Date.now()
    try {
      rows.push(...(await suite.run(args.quick)))
    } catch (e) {
      rows.push({
        suite: suite.name,
        metric: "suite failed",
        value: null,
        unit: "",
        target: "",
        verdict: "error",
        note: e instanceof Error ? e.message : String(e)
      })
    }
    durations[suite.name] = (Date.now() - t0) / 1000
    process.stderr.write(`bench: ${suite.name} done in ${durations[suite.name]!.toFixed(0)} s\n`)
  }

  const cpus = os.cpus()
  const machine = {
    cpu: cpus[0]?.model ?? "unknown",
    cores: os.availableParallelism(),
    memoryGiB: Number((os.totalmem() / 1024 ** 3).toFixed(1)),
    kernel: os.release(),
    node: process.version,
    mariadb: (await mariadbVersion().catch(() => undefined)) ?? null,
    timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    /** How the bin shims ran the programs (bundle or TypeScript sources through tsx). */
    launch,
    loadAverageBefore: loadBefore.map((l) => Number(l.toFixed(2))),
    loadAverageAfter: os.loadavg().map((l) => Number(l.toFixed(2)))
  }
  const result = {
    date: started.toISOString(),
    commit: git("rev-parse", "HEAD") ?? null,
    dirty: (git("status", "--porcelain", "--untracked-files=no") ?? "") !== "",
    quick: args.quick,
    suites: selected.map((s) => s.name),
    durationsSecs: durations,
    machine,
    rows
  }

  console.log(
    `\nbarto bench ${started.toISOString()}${args.quick ? " (quick)" : ""}: ${machine.cpu}, ${machine.cores} cores, ` +
      `node ${machine.node}, MariaDB ${
        machine.mariadb ?? "n/a"
      }, bartos/bartoc from ${launch.bartos}/${launch.bartoc}, ` +
      `load ${machine.loadAverageBefore.join("/")} → ${machine.loadAverageAfter.join("/")}\n`
  )
  console.log(formatTable(rows))
  const notes = formatNotes(rows)
  if (notes !== "") console.log(`\nnotes:\n${notes}`)

  const dir = join(repoRoot, "bench", "results")
  mkdirSync(dir, { recursive: true })
  const text = JSON.stringify(result, null, 2) + "\n"
  const dated = join(dir, `${stamp}${args.quick ? "-quick" : ""}.json`)
  writeFileSync(join(dir, "latest.json"), text)
  writeFileSync(dated, text)
  console.log(`\nresults: ${join(dir, "latest.json")} (and ${dated})`)
  if (process.env.BENCH_PROFILE_DIR !== undefined) console.log(`CPU profiles: ${process.env.BENCH_PROFILE_DIR}`)
  const failed = rows.filter((r) => r.verdict === "FAIL" || r.verdict === "error").length
  console.log(`${rows.filter((r) => r.verdict === "pass").length} pass, ${failed} fail/error`)
}

main().then(
  () => {
    killEverythingNow()
    process.exit(0)
  },
  (e) => {
    console.error("bench: crashed", e)
    killEverythingNow()
    process.exit(1)
  }
)
