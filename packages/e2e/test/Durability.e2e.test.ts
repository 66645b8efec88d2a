/**
 * D5 with the real programs: kill -9 either side mid-stream, or keep bartos down for whole
 * schedule periods (D3: the agent runs its cached table meanwhile), and check that every line
 * that reached the agent's outbox is stored exactly once and in order, and that every run ends in
 * exactly one state: a final one, or `lost` — never `running` for ever.
 */
import { afterEach, describe, expect, it } from "vitest"
import { type Cluster, dbKinds, makeCluster, waitFor } from "./utils/cluster.js"
import {
  agentStatePath,
  expectAllFinal,
  expectContiguous,
  expectNoDuplicateLines,
  expectNumbered,
  FINAL_STATES,
  lineCount,
  lines,
  numberedJob,
  outboxLines,
  outboxRunStarts,
  type RunRow,
  runs,
  waitUntilClock
} from "./utils/faults.js"
import { killAll, type Proc } from "./utils/procs.js"

/** Short liveness where the test wants bartos to give up on a vanished agent quickly. */
const LIVENESS_SECS = 2
/** Logs on stderr too, so the tests can wait for "accepted agent". */
const AGENT = { enable_std_output: true }
const PERIOD_MS = 2_000
const EVERY_2S = "*-*-* *:*:0/2"

const connected = (p: Proc) => p.waitForLine(/accepted agent/, 30_000)

/** Every run of `rs` is one occurrence of the 2-second grid, each once, none left out in between. */
const expectCompleteGrid = (rs: ReadonlyArray<RunRow>) => {
  const at = rs.map((r) => r.scheduled_at / 1000)
  expect(new Set(at).size).toBe(at.length)
  for (const t of at) expect(t % PERIOD_MS).toBe(0)
  const sorted = [...at].sort((a, b) => a - b)
  const holes = sorted.slice(1).flatMap((t, i) => (t - sorted[i]! === PERIOD_MS ? [] : [`${sorted[i]} -> ${t}`]))
  expect(holes).toEqual([])
}

/** The runs of `schedule` scheduled up to now, once every one of them has reached its final state. */
const settled = async (c: Cluster, schedule: string) => {
  const cutoff = Date.now() * 1000
  return waitFor("the runs up to now to settle", async () => {
    const rs = (await runs(c.db, "dur", schedule)).filter((r) => r.scheduled_at <= cutoff)
    return rs.every((r) => r.state !== "running") ? rs : undefined
  }, { timeoutMs: 20_000 })
}

describe.each(dbKinds())("durability on %s", (kind) => {
  let cluster: Cluster | undefined
  afterEach(async () => {
    await killAll()
    await cluster?.stop()
    cluster = undefined
  })

  const N = 20_000
  const bigJob = numberedJob(N, 200, 0.02)

  it(
    "kill -9 bartoc mid-run and restart it at once: every outboxed line stored once, the run does not stay running",
    async () => {
      // A long liveness: the new bartoc is back long before bartos would give up on the old one,
      // so only the restarted agent itself can settle the run its predecessor left behind.
      cluster = await makeCluster(kind, {
        server: { limits: { liveness_secs: 60 } },
        schedules: { dur: [{ name: "big", on_calendar: "2099-01-01 00:00:00", cmds: [bigJob] }] }
      })
      const c = cluster
      await c.startServer()
      const agent = await c.startAgent("dur", AGENT)
      await connected(agent)
      const { runId } = await c.cliJson<{ runId: string }>(["run", "dur", "big"])
      await waitFor("the run to be mid-stream", async () => (await lineCount(c.db, runId)) >= 2_000 || undefined, {
        timeoutMs: 30_000
      })
      await agent.kill9()
      const outboxed = outboxLines(agentStatePath(c, "dur")).filter((l) => l.runId === runId)
      const restarted = await c.startAgent("dur", AGENT)
      await connected(restarted)
      const run = await waitFor("the run to leave 'running'", async () => {
        const [r] = await runs(c.db, "dur", "big")
        return r !== undefined && r.state !== "running" ? r : undefined
      }, { timeoutMs: 20_000 })
      // "interrupted" (reason agent_restart) from the restarted agent (its predecessor died
      // mid-run), or "succeeded" if the job happened to end before the kill; never both, never
      // still running.
      expect(["interrupted", "succeeded"]).toContain(run.state)
      await waitFor("every outboxed line stored", async () => {
        const stored = new Set((await lines(c.db, runId)).map((l) => l.line_seq))
        return outboxed.every((l) => stored.has(l.lineSeq)) || undefined
      })
      await expectNoDuplicateLines(c.db)
      const ls = await lines(c.db, runId)
      expectContiguous(ls)
      expect(expectNumbered(ls)).toBeGreaterThanOrEqual(2_000)
    },
    90_000
  )

  it(
    "kill -9 bartos mid-batch and restart it on the same port: all lines of the run exactly once, in order",
    async () => {
      cluster = await makeCluster(kind, {
        server: { limits: { liveness_secs: LIVENESS_SECS } },
        schedules: { dur: [{ name: "big", on_calendar: "2099-01-01 00:00:00", cmds: [bigJob] }] }
      })
      const c = cluster
      const server = await c.startServer()
      const agent = await c.startAgent("dur", AGENT)
      await connected(agent)
      const { runId } = await c.cliJson<{ runId: string }>(["run", "dur", "big"])
      await waitFor("the run to be mid-stream", async () => (await lineCount(c.db, runId)) >= 2_000 || undefined, {
        timeoutMs: 30_000
      })
      await server.kill9()
      await c.startServer()
      const run = await waitFor("the run to finish", async () => {
        const [r] = await runs(c.db, "dur", "big")
        return r !== undefined && r.state !== "running" ? r : undefined
      }, { timeoutMs: 60_000 })
      expect(run.state).toBe("succeeded")
      await waitFor(`all ${N} + 200 lines`, async () => (await lineCount(c.db, runId)) >= N + 200 || undefined, {
        timeoutMs: 30_000
      })
      await expectNoDuplicateLines(c.db)
      const ls = await lines(c.db, runId)
      expect(ls.length).toBe(N + 200)
      expectContiguous(ls)
      expect(expectNumbered(ls)).toBe(N)
      expect(ls.filter((l) => l.stream === "stderr").map((l) => l.data)).toEqual(
        Array.from({ length: 200 }, (_, i) => `err ${i + 1}`)
      )
    },
    120_000
  )

  it(
    "bartos down for several periods, bartoc restarted meanwhile: the cached table keeps running, every occurrence arrives once",
    async () => {
      cluster = await makeCluster(kind, {
        server: { limits: { liveness_secs: LIVENESS_SECS } },
        schedules: { dur: [{ name: "tick", on_calendar: EVERY_2S, cmds: ["echo at $BARTO_SCHEDULED_AT; seq 1 50"] }] }
      })
      const c = cluster
      const server = await c.startServer()
      const agent = await c.startAgent("dur", AGENT)
      await connected(agent)
      await waitFor(
        "a first run stored",
        async () => (await runs(c.db, "dur", "tick")).some((r) => r.state === "succeeded") || undefined
      )
      await server.stop()
      const downAt = Date.now()
      // (c) Whole periods pass with bartos down: the agent runs them into its outbox.
      await waitUntilClock(downAt + 2 * PERIOD_MS + 100)
      await waitFor(
        "the agent to run the occurrences while bartos is down",
        () =>
          outboxRunStarts(agentStatePath(c, "dur")).filter((r) => r.scheduledAt / 1000 > downAt).length >= 2 ||
          undefined
      )
      // (d) bartoc restarted while bartos is still down: it has only its cached table.
      await agent.stop()
      const restartedAt = Date.now()
      const restarted = await c.startAgent("dur", AGENT)
      await restarted.waitForLine(/starting/)
      await waitFor(
        "the restarted agent to run its cached schedule",
        () =>
          outboxRunStarts(agentStatePath(c, "dur")).filter((r) => r.scheduledAt / 1000 > restartedAt + PERIOD_MS)
              .length >= 2 || undefined,
        { timeoutMs: 30_000 }
      )
      const upAt = Date.now()
      await c.startServer()
      await connected(restarted)
      await waitFor("every occurrence of the down time stored", async () => {
        const rs = await runs(c.db, "dur", "tick")
        const during = rs.filter((r) => r.scheduled_at / 1000 > downAt && r.scheduled_at / 1000 < upAt)
        return during.length >= Math.floor((upAt - downAt) / PERIOD_MS) - 1 &&
            during.every((r) => (FINAL_STATES as ReadonlyArray<string>).includes(r.state)) || undefined
      }, { timeoutMs: 60_000 })
      const rs = await settled(c, "tick")
      // No hole: the occurrences during bartoc's own restart were caught up (Burst, the default).
      expectCompleteGrid(rs)
      expectAllFinal(rs)
      expect(rs.some((r) => r.scheduled_at / 1000 > restartedAt && r.scheduled_at / 1000 < upAt)).toBe(true)
      await expectNoDuplicateLines(c.db)
      // A run in flight when bartoc was stopped finished first ([runner] shutdown = "wait", the
      // default): every run succeeded with all its lines.
      expect(rs.filter((r) => r.state !== "succeeded").map((r) => r.state)).toEqual([])
      for (const r of rs) {
        const ls = await lines(c.db, r.run_id)
        if (r.state === "succeeded") expect(ls.length).toBe(51)
        expectContiguous(ls)
        if (ls.length > 0) {
          expect(ls[0]!.data).toBe(`at ${new Date(r.scheduled_at / 1000).toISOString().replace(".000Z", "Z")}`)
        }
      }
    },
    120_000
  )
})
