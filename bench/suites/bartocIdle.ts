/**
 * Suite 5, bartoc idle RSS: a real bartoc connected to a real bartos (SQLite) with a few schedules
 * that fire rarely; its RSS (VmRSS) after ~10 s idle. Peers measured in the same run: a bare Node
 * process, and Node with the tsx loader registered (what the bin shim adds before any barto code).
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { startAgent, startServer } from "../lib/barto.js"
import { type Db, openDb } from "../lib/db.js"
import { childPids, type Proc, removeDir, rssBytes, sleep, startNode, tempDir, waitForFileLine } from "../lib/procs.js"
import { atMost, median, type Row } from "../lib/report.js"

const MiB = 1024 * 1024
const AGENT = "bench-idle"

/** RSS of a small node program after it has idled `ms` (median of 3 samples). */
const idleRss = async (dir: string, name: string, source: string, ms: number): Promise<number | undefined> => {
  const file = join(dir, `${name}.mjs`)
  writeFileSync(file, source)
  const proc = startNode(file, [], { name })
  try {
    await proc.waitForLine(/^ready$/, 60_000)
    await sleep(ms)
    const samples: Array<number> = []
    for (let i = 0; i < 3; i++) {
      const rss = rssBytes(proc.pid)
      if (rss !== undefined) samples.push(rss)
      await sleep(300)
    }
    return samples.length === 0 ? undefined : median(samples)
  } finally {
    await proc.stop(2000)
  }
}

export const run = async (quick: boolean): Promise<Array<Row>> => {
  const idleMs = quick ? 5000 : 10_000
  const dir = tempDir("idle")
  let db: Db | undefined
  const procs: Array<Proc> = []
  try {
    db = await openDb("sqlite", dir)
    const server = await startServer(dir, db, {
      schedules: {
        [AGENT]: [
          { name: "nightly", on_calendar: "*-*-* 03:00:00", cmds: ["true"] },
          { name: "weekly", on_calendar: "Mon *-*-* 04:30:00", cmds: ["true", "true"] },
          { name: "new-year", on_calendar: "*-01-01 00:00:00", cmds: ["true"] }
        ]
      }
    })
    procs.push(server.proc)
    const agent = startAgent(dir, server, AGENT)
    procs.push(agent.proc)
    await waitForFileLine(agent.logFile, /schedule table \S+: 3 schedule\(s\)/, 120_000)
    await sleep(idleMs)
    const samples: Array<number> = []
    for (let i = 0; i < 3; i++) {
      const rss = rssBytes(agent.proc.pid)
      if (rss !== undefined) samples.push(rss)
      await sleep(300)
    }
    const rss = samples.length === 0 ? null : median(samples) / MiB
    const children = childPids(agent.proc.pid)
    const childRss = children.reduce((n, pid) => n + (rssBytes(pid) ?? 0), 0) / MiB
    await agent.proc.stop()
    await server.proc.stop()
    procs.length = 0

    const bare = await idleRss(dir, "bare", "setInterval(() => {}, 1000)\nconsole.log('ready')\n", 2000)
    const tsx = await idleRss(
      dir,
      "tsx",
      // The same loader the bin shims register, by absolute URL (the script lives in a temp dir).
      `import { register } from ${JSON.stringify(import.meta.resolve("tsx/esm/api"))}\nregister()\n` +
        "setInterval(() => {}, 1000)\nconsole.log('ready')\n",
      2000
    )
    const rows: Array<Row> = [{
      suite: "bartoc",
      metric: `idle RSS after ${idleMs / 1000} s`,
      value: rss,
      unit: "MiB",
      target: "≤ 60 MiB",
      // The fair floor depends on how the shim ran bartoc: a bundle is plain Node, sources need tsx.
      ...(agent.launch === "tsx"
        ? tsx !== undefined && rss !== null
          ? { peer: { label: "node+tsx, empty", value: tsx / MiB }, ratio: rss / (tsx / MiB) }
          : {}
        : bare !== undefined && rss !== null
        ? { peer: { label: "bare node", value: bare / MiB }, ratio: rss / (bare / MiB) }
        : {}),
      verdict: atMost(rss, 60),
      note: `bartoc from the ${agent.launch === "bundle" ? "esbuild bundle" : "TypeScript sources through tsx"}; ` +
        `node+tsx empty: ${tsx === undefined ? "?" : (tsx / MiB).toFixed(1)} MiB; ` +
        `connected, 3 schedules that fire rarely; child processes of bartoc: ${children.length}` +
        (children.length > 0 ? ` (${childRss.toFixed(1)} MiB more)` : "")
    }]
    if (bare !== undefined && agent.launch === "tsx") {
      rows.push({
        suite: "bartoc",
        metric: "bare node process RSS (floor)",
        value: bare / MiB,
        unit: "MiB",
        target: "",
        verdict: "info"
      })
    }
    return rows
  } finally {
    for (const p of procs.reverse()) await p.stop().catch(() => undefined)
    await db?.close().catch(() => undefined)
    removeDir(dir)
  }
}
