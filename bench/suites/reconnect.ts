/**
 * Suite "reconnect" (issue 18): the reconnect storm after a bartos restart. N simulated agents
 * (real handshake: hello → ServerHello + table) connect once, so bartos knows them; bartos is
 * restarted on the same database; then all N connect again at once (holders of at most 5,000
 * agents, 200 handshakes in flight each) and the row is the time until the last one is
 * re-established. Session rows, acked offsets and, on MariaDB, the claims in `agent_claims` are
 * handled per group (`internal/sessionBatch.ts`). On SQLite and MariaDB; the peer is a bare `ws`
 * server (`lib/wspeer.ts`: the same handshake frames, nothing else) measured in the same run with
 * the same holders, just before.
 */
import { join } from "node:path"
import { NOFILE, type Server, startServer } from "../lib/barto.js"
import { type Db, type DbKind, mariadbReachable, openDb } from "../lib/db.js"
import { cpuSeconds, freePort, type Proc, removeDir, repoRoot, startNode, tempDir } from "../lib/procs.js"
import { atMost, type Row } from "../lib/report.js"

const PER_HOLDER = 5000
const TARGET_SECS = 5

interface PeerRun {
  readonly secs: number
  /** The peer's CPU seconds during the storm (the floor for bartos' own), if it could be read. */
  readonly cpu: number | undefined
}

/** The same storm against a bare `ws` server (`lib/wspeer.ts`) started for it, or undefined. */
const peerRun = async (n: number): Promise<PeerRun | undefined> => {
  const port = await freePort()
  const peer = startNode(join(repoRoot, "bench/lib/wspeer.ts"), [String(port)], {
    name: "wspeer",
    nofile: NOFILE,
    nodeArgs: ["--import", "tsx"]
  })
  try {
    await peer.waitForLine(/^listening/, 60_000)
    const cpuBefore = cpuSeconds(peer.pid)
    const run = await connectAll(`ws://127.0.0.1:${port}`, n)
    const cpuAfter = cpuSeconds(peer.pid)
    for (const h of run.holders) await h.stop(2000).catch(() => undefined)
    const cpu = cpuBefore !== undefined && cpuAfter !== undefined ? cpuAfter - cpuBefore : undefined
    return run.failure === undefined && run.held === n ? { secs: run.secs, cpu } : undefined
  } catch {
    return undefined
  } finally {
    await peer.stop(5000).catch(() => undefined)
  }
}

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

const storm = async (kind: DbKind, n: number, quick: boolean, peer: PeerRun | undefined): Promise<Row> => {
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
    // bartos' own CPU during the storm: unlike the wall time, the load of the machine (the
    // holders share its cores) does not move it much, so it shows what a change to the hello
    // path saves.
    const cpuBefore = cpuSeconds(server.proc.pid)
    const again = await connectAll(server.url, n)
    const cpuAfter = cpuSeconds(server.proc.pid)
    const cpu = cpuBefore !== undefined && cpuAfter !== undefined ? cpuAfter - cpuBefore : undefined
    await stopHolders(again.holders)
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
      ...(peer !== undefined
        ? { peer: { label: "bare ws server", value: peer.secs }, ratio: again.secs / peer.secs }
        : {}),
      note: `${(n / again.secs).toFixed(0)} handshakes/s; held ${again.held}/${n}` +
        (cpu !== undefined
          ? `; bartos CPU ${cpu.toFixed(2)} s (${((cpu * 1000) / n).toFixed(2)} ms per hello)`
          : "") +
        (peer?.cpu !== undefined ? `; bare ws peer CPU ${((peer.cpu * 1000) / n).toFixed(2)} ms per hello` : "") +
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
  // Measured once, right before the rows it stands next to.
  const peer = await peerRun(n)
  const rows = [await storm("sqlite", n, quick, peer)]
  if (await mariadbReachable()) rows.push(await storm("mariadb", n, quick, peer))
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
