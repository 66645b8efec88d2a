/**
 * Suite "reconnect" (issue 18): the reconnect storm after a bartos restart. N simulated agents
 * (real handshake: hello → ServerHello + table) connect once, so bartos knows them; bartos is
 * restarted on the same database; then all N connect again at once (holders of at most 5,000
 * agents, 200 handshakes in flight each) and the row is the time until the last one is
 * re-established. Session rows are group-committed (`internal/sessionBatch.ts`), and on MariaDB
 * each hello also claims its name in `agent_claims`. On SQLite and MariaDB; the peer is a bare
 * `ws` server connecting the same number (perf-baselines §2).
 */
import { join } from "node:path"
import { NOFILE, type Server, startServer } from "../lib/barto.js"
import { type Db, type DbKind, mariadbReachable, openDb } from "../lib/db.js"
import { type Proc, removeDir, repoRoot, startNode, tempDir } from "../lib/procs.js"
import { atMost, type Row } from "../lib/report.js"

const PER_HOLDER = 5000
// perf-baselines §2: a bare `ws` server accepting idle connections (connects/s at that level).
const WS_CONNECTS_PER_S: Record<number, number> = { 1000: 2330, 5000: 4232, 10000: 4613 }
const TARGET_SECS = 5

const connectAll = async (
  url: string,
  n: number
): Promise<{ secs: number; held: number; failure?: string; holders: Array<Proc> }> => {
  const holders: Array<Proc> = []
  for (let left = n, i = 0; left > 0; left -= PER_HOLDER, i++) {
    holders.push(
      startNode(join(repoRoot, "bench/lib/holder.ts"), [url, `storm-${i}`, String(Math.min(PER_HOLDER, left))], {
        name: `holder:storm-${i}`,
        nofile: NOFILE,
        nodeArgs: ["--import", "tsx"],
        stdin: "pipe"
      })
    )
  }
  let held = 0
  let ms = 0
  let failure: string | undefined
  for (const h of holders) {
    try {
      const m = await h.waitForLine(/^ready (\d+) failed (\d+) ms (\d+)(?: error (.*))?/, 240_000)
      held += Number(m[1])
      ms = Math.max(ms, Number(m[3]))
      if (Number(m[2]) > 0) failure ??= `${m[2]} handshakes failed, first: ${m[4] ?? "?"}`
    } catch (e) {
      failure ??= e instanceof Error ? e.message.split("\n")[0] : String(e)
    }
  }
  return { secs: ms / 1000, held, holders, ...(failure !== undefined ? { failure } : {}) }
}

const storm = async (kind: DbKind, n: number, quick: boolean): Promise<Row> => {
  const dir = tempDir(`reconnect-${kind}`)
  let db: Db | undefined
  let server: Server | undefined
  const stopHolders = async (hs: ReadonlyArray<Proc>) => {
    for (const h of hs) await h.stop(2000).catch(() => undefined)
  }
  const label = n.toLocaleString("en-US")
  try {
    db = await openDb(kind, dir)
    server = await startServer(dir, db, { nofile: NOFILE })
    const first = await connectAll(server.url, n)
    await stopHolders(first.holders)
    if (first.failure !== undefined) throw new Error(`first connect: ${first.failure}`)
    await server.proc.stop(30_000)
    server = await startServer(dir, db, { nofile: NOFILE })
    const again = await connectAll(server.url, n)
    await stopHolders(again.holders)
    const peerRate = WS_CONNECTS_PER_S[n]
    return {
      suite: "reconnect",
      metric: `${label} agents re-established after a restart (${kind})`,
      value: again.secs,
      unit: "s",
      target: quick ? "" : `≤ ${TARGET_SECS} s`,
      verdict: again.failure !== undefined || again.held !== n
        ? "FAIL"
        : quick
        ? "info"
        : atMost(again.secs, TARGET_SECS),
      ...(peerRate !== undefined
        ? { peer: { label: "bare ws server §2", value: n / peerRate }, ratio: again.secs / (n / peerRate) }
        : {}),
      note: `${(n / again.secs).toFixed(0)} handshakes/s; held ${again.held}/${n}` +
        (again.failure !== undefined ? `; ${again.failure}` : "")
    }
  } catch (e) {
    return {
      suite: "reconnect",
      metric: `${label} agents re-established after a restart (${kind})`,
      value: null,
      unit: "s",
      target: `≤ ${TARGET_SECS} s`,
      verdict: "error",
      note: e instanceof Error ? e.message.split("\n")[0] : String(e)
    }
  } finally {
    await server?.proc.stop(30_000).catch(() => undefined)
    await db?.close().catch(() => undefined)
    removeDir(dir)
  }
}

export const run = async (quick: boolean): Promise<Array<Row>> => {
  const n = quick ? 1000 : 10_000
  const rows = [await storm("sqlite", n, quick)]
  if (await mariadbReachable()) rows.push(await storm("mariadb", n, quick))
  else {
    rows.push({
      suite: "reconnect",
      metric: `${n.toLocaleString("en-US")} agents re-established after a restart (mariadb)`,
      value: null,
      unit: "s",
      target: `≤ ${TARGET_SECS} s`,
      verdict: "skip",
      note: "MariaDB not reachable"
    })
  }
  return rows
}
