/**
 * Suite 4, agents held by one bartos (SQLite): simulated agents (real handshake, pings every 5 s)
 * in holder processes of at most 5,000 each, added in steps up to 1,000, 5,000 and 10,000. At
 * each level: every handshake must complete and the server must still hold them all; then the
 * server's RSS (VmRSS) once the connections have settled (one ping round), and the connect time
 * of that step. bartos and the holders run with `ulimit -n 20000`.
 */
import { join } from "node:path"
import { NOFILE, startServer } from "../lib/barto.js"
import { type Db, openDb } from "../lib/db.js"
import { cpuSeconds, type Proc, removeDir, repoRoot, rssBytes, sleep, startNode, tempDir } from "../lib/procs.js"
import { atMost, median, type Row } from "../lib/report.js"

const PER_HOLDER = 5000
const MiB = 1024 * 1024
const PREFIX = "bench-held"

// perf-baselines §2 (idle ws connections, one plain `ws` server process): RSS after N idle
// connections and the connect rate. 10,000 was not measured: interpolated between 5k and 15k.
const WS_RSS_MIB: Record<number, number> = { 0: 51, 1000: 61.8, 5000: 89.6, 10000: (89.6 + 127.7) / 2 }
const WS_CONNECTS_PER_S: Record<number, number> = { 1000: 2330, 5000: 4232, 10000: 4613 }
const WS_KB_PER_CONN = 8

interface Holder {
  readonly proc: Proc
  readonly count: number
  held: number
  ms: number
}

const startHolder = (url: string, prefix: string, count: number): Holder => ({
  proc: startNode(join(repoRoot, "bench/lib/holder.ts"), [url, prefix, String(count)], {
    name: `holder:${prefix}`,
    nofile: NOFILE,
    nodeArgs: ["--import", "tsx"],
    stdin: "pipe"
  }),
  count,
  held: 0,
  ms: 0
})

/** Connections the holders saw closed by bartos since they were ready, and the close codes. */
const closedOf = (h: Holder): { readonly n: number; readonly codes: string } => {
  for (let i = h.proc.lines.length - 1; i >= 0; i--) {
    const m = h.proc.lines[i]!.match(/^closed (\d+) codes (\S*)/)
    if (m) return { n: Number(m[1]), codes: m[2]! }
  }
  return { n: 0, codes: "" }
}

/** Median of three RSS samples a second apart. */
const settledRss = async (pid: number): Promise<number | undefined> => {
  const samples: Array<number> = []
  for (let i = 0; i < 3; i++) {
    const rss = rssBytes(pid)
    if (rss !== undefined) samples.push(rss)
    await sleep(1000)
  }
  return samples.length === 0 ? undefined : median(samples)
}

export const run = async (quick: boolean): Promise<Array<Row>> => {
  const levels = quick ? [100, 500, 1000] : [1000, 5000, 10000]
  const rows: Array<Row> = []
  const dir = tempDir("agents")
  let db: Db | undefined
  const holders: Array<Holder> = []
  let server: Awaited<ReturnType<typeof startServer>> | undefined
  const row = (metric: string, value: number | null, unit: string, extra: Partial<Row> = {}): Row => ({
    suite: "agents",
    metric,
    value,
    unit,
    target: "",
    verdict: "info",
    ...extra
  })
  try {
    db = await openDb("sqlite", dir)
    server = await startServer(dir, db, { nofile: NOFILE })
    const pid = server.proc.pid
    await sleep(3000)
    const rss0 = await settledRss(pid)
    rows.push(row("bartos RSS, no agents", rss0 === undefined ? null : rss0 / MiB, "MiB", {
      peer: { label: "ws server §2", value: WS_RSS_MIB[0]! },
      ratio: rss0 === undefined ? undefined : rss0 / MiB / WS_RSS_MIB[0]!,
      note: `bartos from the ${
        server.launch === "bundle"
          ? "esbuild bundle"
          : "TypeScript sources through tsx (its loader thread adds ~100 MiB)"
      }; ` +
        "the peer is a bare `ws` server process"
    }))
    let current = 0
    for (const level of levels) {
      // Add holders of at most PER_HOLDER agents each, all connecting at once.
      const step: Array<Holder> = []
      for (let left = level - current; left > 0; left -= PER_HOLDER) {
        const count = Math.min(PER_HOLDER, left)
        step.push(startHolder(server.url, `${PREFIX}-${holders.length + step.length}`, count))
      }
      holders.push(...step)
      let failure: string | undefined
      for (const h of step) {
        try {
          const m = await h.proc.waitForLine(/^ready (\d+) failed (\d+) ms (\d+)(?: error (.*))?/, 240_000)
          h.held = Number(m[1])
          h.ms = Number(m[3])
          if (Number(m[2]) > 0) failure ??= `${m[2]} handshakes failed, first: ${m[4] ?? "?"}`
        } catch (e) {
          failure ??= e instanceof Error ? e.message.split("\n")[0] : String(e)
        }
      }
      if (!server.proc.alive()) failure ??= `bartos exited: ${server.proc.tail(10)}`
      const stepCount = level - current
      const connectSecs = Math.max(...step.map((h) => h.ms)) / 1000
      // Settle: one full ping round of the holders (every 5 s) before measuring.
      const cpu0 = cpuSeconds(pid)
      await sleep(6000)
      const rss = await settledRss(pid)
      const cpu1 = cpuSeconds(pid)
      const closed = holders.reduce((n, h) => n + closedOf(h).n, 0)
      const closeCodes = holders.map((h) => closedOf(h).codes).filter(Boolean).join(",")
      const held = holders.reduce((n, h) => n + h.held, 0) - closed
      const open = await db.all<{ n: number }>(
        `SELECT COUNT(*) AS n FROM agent_sessions WHERE disconnected_at IS NULL AND agent LIKE '${PREFIX}-%'`
      ).then((r) => Number(r[0]?.n ?? 0), () => -1)
      const rssMiB = rss === undefined ? null : rss / MiB
      const idleCpu = cpu0 !== undefined && cpu1 !== undefined ? ((cpu1 - cpu0) / 9) * 100 : undefined
      const label = level.toLocaleString("en-US")
      rows.push(row(`agents held @${label}`, held, "agents", {
        target: `= ${label}`,
        verdict: held === level && failure === undefined ? "pass" : "FAIL",
        note: `open sessions in agent_sessions: ${open}; closed by bartos after handshake: ${closed}` +
          (closeCodes !== "" ? ` (close code:count ${closeCodes})` : "") +
          (failure !== undefined ? `; ${failure}` : "")
      }))
      const peerRss = WS_RSS_MIB[level]
      const isTop = level === levels[levels.length - 1]
      rows.push(row(`bartos RSS @${label} agents`, rssMiB, "MiB", {
        target: isTop && !quick ? "≤ 300 MiB" : "",
        verdict: isTop && !quick ? (held === level ? atMost(rssMiB, 300) : "FAIL") : "info",
        ...(peerRss !== undefined && rssMiB !== null
          ? {
            peer: { label: level === 10000 ? "ws server §2 (interp.)" : "ws server §2", value: peerRss },
            ratio: rssMiB / peerRss
          }
          : {}),
        note: idleCpu !== undefined ? `bartos CPU while holding (pings every 5 s): ${idleCpu.toFixed(1)}%` : undefined
      }))
      const peerRate = WS_CONNECTS_PER_S[level]
      rows.push(row(`connect +${stepCount.toLocaleString("en-US")} (→ ${label})`, connectSecs, "s", {
        ...(peerRate !== undefined
          ? {
            peer: { label: "ws connect §2", value: stepCount / peerRate },
            ratio: connectSecs / (stepCount / peerRate)
          }
          : {}),
        note: `${
          (stepCount / connectSecs).toFixed(0)
        } handshakes/s (hello → ServerHello + table), ${step.length} holder(s), 200 in flight each`
      }))
      current = level
      if (failure !== undefined || !server.proc.alive()) break
      if (isTop && rss !== undefined && rss0 !== undefined) {
        const perAgent = (rss - rss0) / level / 1024
        rows.push(row("RSS per held agent (marginal)", perAgent, "KiB", {
          peer: { label: "ws conn §2", value: WS_KB_PER_CONN },
          ratio: perAgent / WS_KB_PER_CONN,
          note: `(RSS @${label} − RSS with none) / ${label}`
        }))
      }
    }
    return rows
  } finally {
    for (const h of holders) await h.proc.stop(2000).catch(() => undefined)
    // bartos records every disconnect; give it time to drain before the SIGKILL fallback.
    await server?.proc.stop(30_000).catch(() => undefined)
    await db?.close().catch(() => undefined)
    removeDir(dir)
  }
}
