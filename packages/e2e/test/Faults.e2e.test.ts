/**
 * Network faults and a stalled agent, with the real programs. A TCP proxy sits between bartoc and
 * bartos and cuts, stalls or refuses the connection while output streams; the agent must
 * reconnect (backoff), and every line must still be stored exactly once and every run end in one
 * final state. A bartoc frozen with SIGSTOP must handle the occurrences it slept through per its
 * `missed_tick` policy (D3): `Skip` records them as `missed`, `Burst` catches them up.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type Cluster, dbKinds, makeCluster, waitFor } from "./utils/cluster.js"
import {
  expectAllFinal,
  expectContiguous,
  expectNoDuplicateLines,
  expectNumbered,
  FINAL_STATES,
  isAlive,
  lineCount,
  lines,
  numberedJob,
  type RunRow,
  runs,
  waitUntilClock
} from "./utils/faults.js"
import { killAll, type Proc } from "./utils/procs.js"
import { type FaultProxy, startProxy } from "./utils/proxy.js"

const LIVENESS_SECS = 2
const N = 20_000
const CHUNKS = 100
/** ~3 s of paced output: long enough to be cut, stalled and refused mid-stream. */
const BIG = numberedJob(N, CHUNKS, 0.03)
const NEVER = "2099-01-01 00:00:00"
const EVERY_SECOND = "*-*-* *:*:*"

const streaming = (agent: string) => [
  { name: "big", on_calendar: NEVER, cmds: [BIG] },
  // Small runs every second meanwhile: each must still end once, with its 100 lines.
  { name: "tick", on_calendar: EVERY_SECOND, cmds: [`echo ${agent}; seq 1 99`] }
]

const ticking = [{ name: "tick", on_calendar: EVERY_SECOND, cmds: ["echo at $BARTO_SCHEDULED_AT"] }]

const count = (p: Proc, re: RegExp) => [...p.stdout, ...p.stderr].filter((l) => re.test(l)).length
const handshakes = (p: Proc) => count(p, /accepted agent/)

describe.each(dbKinds())("faults on %s", (kind) => {
  let cluster: Cluster
  let proxy: FaultProxy | undefined
  let agent: Proc | undefined
  let idle: Proc
  let idleSince = 0

  beforeAll(async () => {
    cluster = await makeCluster(kind, {
      server: { limits: { liveness_secs: LIVENESS_SECS } },
      schedules: {
        cut: streaming("cut"),
        stall: streaming("stall"),
        refuse: streaming("refuse"),
        idle: [],
        skip: ticking,
        burst: ticking
      }
    })
    await cluster.startServer()
    // An agent with nothing to run, checked by the last test once the others have taken their time.
    idle = await cluster.startAgent("idle", { enable_std_output: true })
    await idle.waitForLine(/accepted agent/, 30_000)
    idleSince = Date.now()
  })
  afterEach(async () => {
    await agent?.stop()
    agent = undefined
    await proxy?.close()
    proxy = undefined
  })
  afterAll(async () => {
    await killAll()
    await cluster.stop()
  })

  /** bartoc through a fresh proxy; resolves once bartos accepted it. */
  const agentBehindProxy = async (name: string) => {
    proxy = await startProxy(cluster.port)
    agent = await cluster.startAgent(name, { enable_std_output: true }, proxy.port)
    await agent.waitForLine(/accepted agent/, 30_000)
    return { proxy, agent }
  }

  const startBig = async (name: string) => {
    const { runId } = await cluster.cliJson<{ runId: string }>(["run", name, "big"])
    await waitFor("the big run to stream", async () => (await lineCount(cluster.db, runId)) >= 1_000 || undefined, {
      timeoutMs: 30_000
    })
    return runId
  }

  /** The big run complete: every number once, in order, one final state. */
  const expectBigComplete = async (name: string, runId: string) => {
    const [run] = await runs(cluster.db, name, "big")
    expect(run!.state).toBe("succeeded")
    const ls = await lines(cluster.db, runId)
    expect(ls.length).toBe(N + CHUNKS)
    expectContiguous(ls)
    expect(expectNumbered(ls)).toBe(N)
  }

  const bigDone = (name: string, runId: string) =>
    waitFor("the big run to finish with all its lines", async () => {
      const [run] = await runs(cluster.db, name, "big")
      // Not merely "not running": a lost run's lines may all be in before its RunFinished.
      return run !== undefined && (FINAL_STATES as ReadonlyArray<string>).includes(run.state) &&
          (await lineCount(cluster.db, runId)) >= N + CHUNKS || undefined
    }, { timeoutMs: 60_000 })

  /** Every `tick` run scheduled until now ends in a final state with its 100 lines. */
  const expectTicksComplete = async (name: string) => {
    const cutoff = Date.now() * 1000
    const rs = await waitFor("the tick runs to settle", async () => {
      const all = (await runs(cluster.db, name, "tick")).filter((r) => r.scheduled_at <= cutoff)
      return all.every((r) => r.state !== "running" && r.state !== "lost") ? all : undefined
    }, { timeoutMs: 30_000 })
    expect(rs.length).toBeGreaterThan(0)
    expectAllFinal(rs)
    expectOnePerOccurrence(rs)
    for (const r of rs) {
      const ls = await lines(cluster.db, r.run_id)
      expect(ls.length).toBe(100)
      expectContiguous(ls)
    }
  }

  it("connections cut again and again mid-stream: the agent reconnects, every line stored once", async () => {
    const { agent, proxy } = await agentBehindProxy("cut")
    const runId = await startBig("cut")
    let cuts = 0
    let midStream = 0
    let last = await lineCount(cluster.db, runId)
    while (cuts < 4) {
      const stored = await waitFor("progress since the last cut", async () => {
        const n = await lineCount(cluster.db, runId)
        const [run] = await runs(cluster.db, "cut", "big")
        return n >= last + 1_500 || run?.state !== "running" ? { n, running: run?.state === "running" } : undefined
      }, { timeoutMs: 30_000 })
      const before = handshakes(agent)
      proxy.cut()
      cuts++
      if (stored.running) midStream++
      last = stored.n
      await waitFor("the agent to reconnect", () => handshakes(agent) > before || undefined, { timeoutMs: 30_000 })
    }
    expect(midStream).toBeGreaterThanOrEqual(2)
    await bigDone("cut", runId)
    await expectBigComplete("cut", runId)
    await expectTicksComplete("cut")
    await expectNoDuplicateLines(cluster.db)
    // Exactly one reconnect per cut: with liveness_secs (2) below bartoc's ping interval (5 s),
    // bartos must keep the idle link alive itself rather than drop the agent every 2 s.
    expect(handshakes(agent)).toBe(cuts + 1)
    expect(count(agent, /connection to bartos ended/)).toBe(cuts)
    expect(isAlive(cluster.server!)).toBe(true)
  }, 120_000)

  it(
    "a connection stalled past the liveness timeout: bartos drops the agent, marks the run lost, and the late records reconcile it",
    async () => {
      const { agent, proxy } = await agentBehindProxy("stall")
      const runId = await startBig("stall")
      proxy.stall()
      // bartos hears nothing for liveness_secs: it drops the session, then gives the run up as lost.
      await waitFor("bartos to mark the stalled agent's run lost", async () => {
        const [run] = await runs(cluster.db, "stall", "big")
        return run?.state === "lost" || undefined
      }, { timeoutMs: 30_000 })
      const before = handshakes(agent)
      proxy.resume()
      await waitFor("the agent to reconnect", () => handshakes(agent) > before || undefined, { timeoutMs: 40_000 })
      await bigDone("stall", runId)
      // Reconciled: lost -> succeeded, one row, one state.
      await expectBigComplete("stall", runId)
      await expectTicksComplete("stall")
      await expectNoDuplicateLines(cluster.db)
    },
    120_000
  )

  it(
    "connections refused for a while, then accepted: the agent backs off, retries, and delivers everything",
    async () => {
      const { agent, proxy } = await agentBehindProxy("refuse")
      const runId = await startBig("refuse")
      proxy.refuse()
      proxy.cut()
      const ended = count(agent, /connection to bartos ended/)
      await waitFor(
        "three refused attempts",
        () => count(agent, /connection to bartos ended/) >= ended + 3 || undefined,
        {
          timeoutMs: 30_000
        }
      )
      const before = handshakes(agent)
      proxy.accept()
      await waitFor("the agent to reconnect", () => handshakes(agent) > before || undefined, { timeoutMs: 40_000 })
      await bigDone("refuse", runId)
      await expectBigComplete("refuse", runId)
      await expectTicksComplete("refuse")
      await expectNoDuplicateLines(cluster.db)
    },
    120_000
  )

  /** Freezes bartoc for `ms` with SIGSTOP; returns the window during which it was stopped. */
  const freeze = async (p: Proc, ms: number) => {
    p.child.kill("SIGSTOP")
    const from = Date.now()
    await waitUntilClock(from + ms)
    p.child.kill("SIGCONT")
    return { from, to: Date.now() }
  }

  /** The runs of the frozen window's occurrences, once the agent has dealt with them. */
  const frozenRuns = async (name: string, window: { from: number; to: number }) => {
    // Occurrences strictly inside the window (the first at or before `from` may have run on time).
    const inside = (r: RunRow) => r.scheduled_at / 1000 > window.from + 1000 && r.scheduled_at / 1000 < window.to - 1000
    await waitUntilClock(window.to + 2_000)
    const cutoff = window.to + 1_000
    return waitFor("the occurrences around the freeze to settle", async () => {
      const rs = (await runs(cluster.db, name, "tick")).filter((r) => r.scheduled_at / 1000 <= cutoff)
      const gap = rs.filter(inside)
      return gap.length >= 2 && rs.every((r) => r.state !== "running" && r.state !== "lost") ? { rs, gap } : undefined
    }, { timeoutMs: 30_000 })
  }

  it(
    "a bartoc frozen with SIGSTOP under missed_tick = Skip records the occurrences it slept through as missed",
    async () => {
      agent = await cluster.startAgent("skip", { enable_std_output: true, missed_tick: "Skip" })
      await agent.waitForLine(/accepted agent/, 30_000)
      await waitFor(
        "two runs",
        async () =>
          (await runs(cluster.db, "skip", "tick")).filter((r) => r.state === "succeeded").length >= 2 || undefined
      )
      const window = await freeze(agent, 4_000)
      const { gap, rs } = await frozenRuns("skip", window)
      expect(gap.every((r) => r.state === "missed")).toBe(true)
      const reasons = await cluster.db.all<{ reason: string }>(
        `SELECT reason FROM runs WHERE agent = 'skip' AND state = 'missed'`
      )
      expect(reasons.length).toBeGreaterThanOrEqual(2)
      expect(new Set(reasons.map((r) => r.reason))).toEqual(new Set(["missed_tick:Skip"]))
      expectOnePerOccurrence(rs)
      expect(
        rs.filter((r) => r.state !== "missed").every((r) => r.state === "succeeded" && r.run_trigger === "schedule")
      ).toBe(true)
      // After the freeze it keeps running on time.
      await waitFor(
        "an on-time run after the freeze",
        async () =>
          (await runs(cluster.db, "skip", "tick")).some((r) =>
            r.scheduled_at / 1000 > window.to && r.state === "succeeded"
          ) || undefined
      )
    },
    90_000
  )

  it(
    "a bartoc frozen with SIGSTOP under missed_tick = Burst catches the occurrences up (trigger catch_up)",
    async () => {
      agent = await cluster.startAgent("burst", { enable_std_output: true, missed_tick: "Burst", catch_up_limit: 10 })
      await agent.waitForLine(/accepted agent/, 30_000)
      await waitFor(
        "two runs",
        async () =>
          (await runs(cluster.db, "burst", "tick")).filter((r) => r.state === "succeeded").length >= 2 || undefined
      )
      const window = await freeze(agent, 4_000)
      const { gap, rs } = await frozenRuns("burst", window)
      expect(gap.map((r) => `${r.run_trigger} ${r.state}`)).toEqual(gap.map(() => "catch_up succeeded"))
      expect(rs.filter((r) => r.state === "missed")).toEqual([])
      expectOnePerOccurrence(rs)
      // Each caught-up run knows the occurrence it stands for.
      for (const r of gap) {
        const [first] = await lines(cluster.db, r.run_id)
        expect(first!.data).toBe(`at ${new Date(r.scheduled_at / 1000).toISOString().replace(".000Z", "Z")}`)
      }
    },
    90_000
  )

  it("an idle agent is kept, not dropped, when liveness_secs is below bartoc's 5 s ping interval", async () => {
    // At least three liveness periods without a single record (normally long past by now).
    await waitUntilClock(idleSince + 3 * LIVENESS_SECS * 1000 + 500)
    expect(handshakes(idle)).toBe(1)
    expect(count(idle, /connection to bartos ended/)).toBe(0)
    const sessions = await cluster.db.all<{ disconnected_at: unknown }>(
      `SELECT disconnected_at FROM agent_sessions WHERE agent = 'idle'`
    )
    expect(sessions).toEqual([{ disconnected_at: null }])
    const clients = await cluster.cliJson<unknown>(["clients"])
    expect(JSON.stringify(clients)).toContain("\"idle\"")
  }, 60_000)
})

/** One run per occurrence of the every-second grid: no occurrence twice, no hole in between. */
const expectOnePerOccurrence = (rs: ReadonlyArray<RunRow>) => {
  const at = rs.map((r) => r.scheduled_at / 1000).sort((a, b) => a - b)
  expect(new Set(at).size).toBe(at.length)
  const holes = at.slice(1).flatMap((
    t,
    i
  ) => (t - at[i]! === 1000 ? [] : [`${new Date(at[i]!).toISOString()} -> ${new Date(t).toISOString()}`]))
  expect(holes).toEqual([])
}
