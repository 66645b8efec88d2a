/**
 * The honest run ledger (issue 12 §3) with the real programs: for every agent and schedule, each
 * occurrence of the calendar over the whole window of a test has exactly one row in bartos'
 * database, a run or a missed record with its reason, under kill -9 at each durable step of the
 * agent's multi-step writes, restarts in between (each one a gap to catch up), and stalls.
 *
 * The kill -9 is exact: `BARTO_TEST_CRASH_AT=<step>[@n]` makes bartoc SIGKILL itself right after
 * the n-th commit of that step (packages/agent/src/internal/crashPoint.ts), which no test can time
 * from outside. Each scenario is a chain of such crashes, every restart settling what the
 * previous process left, then a clean run ended by SIGTERM; the identity is then checked over
 * every row (`expectLedgerIdentity`: computed with the calendar engine, not sampled).
 */
import { afterEach, describe, expect, it } from "vitest"
import { type Cluster, dbKinds, makeCluster, type Schedule, waitFor } from "./utils/cluster.js"
import { expectLedgerIdentity, ledger, type LedgerRow, settledLedger, waitUntilClock } from "./utils/faults.js"
import { killAll, type Proc } from "./utils/procs.js"

const EVERY_SECOND = "*-*-* *:*:*"

interface Step {
  /** The step to crash at; none: a clean run, ended by SIGTERM once `runs` more occurrences were handled. */
  readonly crash?: string
  /** Freeze the agent (SIGSTOP) for 3.5 s once it runs: a stall, caught up per missed_tick after SIGCONT. */
  readonly stall?: boolean
}

interface Scenario {
  readonly agent: string
  readonly schedule: Schedule
  readonly config: Record<string, unknown>
  readonly steps: ReadonlyArray<Step>
}

const scenarios: ReadonlyArray<Scenario> = [
  {
    // Burst, one catch-up per gap: every restart is a catch-up plan with missed occurrences.
    agent: "burst",
    schedule: { name: "tick", on_calendar: EVERY_SECOND, cmds: ["echo at $BARTO_SCHEDULED_AT; sleep 0.3"] },
    config: { missed_tick: "Burst", catch_up_limit: 1 },
    steps: [
      { crash: "RunStarted:schedule@2" }, // an on-time run started and running: interrupted
      { crash: "watermark" }, // the restart's catch-up plan committed, nothing started: its intents missed
      { crash: "RunStarted:catch_up" }, // its first catch-up run started
      { crash: "RunFinished:interrupted" }, // the restart settled the run left running, and died at once
      { crash: "arm@2" }, // intents armed for an instant, the spawn not done
      { stall: true },
      {} // a graceful restart
    ]
  },
  {
    // Runs queue behind a slow one (overlap = queue): the queued ones die with the process.
    agent: "queue",
    schedule: {
      name: "tick",
      on_calendar: EVERY_SECOND,
      cmds: ["echo at $BARTO_SCHEDULED_AT; sleep 1.3"],
      overlap: "queue"
    },
    config: { missed_tick: "Burst", catch_up_limit: 2 },
    steps: [{ crash: "RunStarted:schedule@2" }, { crash: "RunStarted:catch_up" }, {}]
  },
  {
    // Skip: a gap is only missed records.
    agent: "skip",
    schedule: { name: "tick", on_calendar: EVERY_SECOND, cmds: ["echo at $BARTO_SCHEDULED_AT"] },
    config: { missed_tick: "Skip" },
    steps: [{ crash: "arm@3" }, { crash: "watermark" }, { crash: "RunFinished:succeeded@2" }, { stall: true }]
  }
]

/** Occurrences handled since `since` (ms): rows whose occurrence is later. */
const handledSince = async (c: Cluster, agent: string, since: number) =>
  (await ledger(c.db, agent, "tick")).filter((r) => (r.scheduled_until ?? r.scheduled_at) / 1000 > since).length

const freeze = async (p: Proc, ms: number) => {
  p.child.kill("SIGSTOP")
  await waitUntilClock(Date.now() + ms)
  p.child.kill("SIGCONT")
}

const runScenario = async (c: Cluster, s: Scenario) => {
  for (const [i, step] of s.steps.entries()) {
    const startedAt = Date.now()
    const agent = await c.startAgent(
      s.agent,
      { enable_std_output: true, ...s.config },
      undefined,
      step.crash === undefined ? {} : { env: { BARTO_TEST_CRASH_AT: step.crash } }
    )
    if (step.stall) {
      await waitFor(
        `${s.agent}: a run after its start`,
        () => handledSince(c, s.agent, startedAt + 1000).then((n) => n >= 2 || undefined),
        {
          timeoutMs: 30_000
        }
      )
      await freeze(agent, 3_500)
    }
    if (step.crash !== undefined) {
      const exit = await Promise.race([
        agent.exited,
        waitUntilClock(Date.now() + 60_000).then(() => ({ code: null, signal: "timeout" as const }))
      ])
      // Killed at the step: the crash point was reached.
      expect(exit.signal, `${s.agent} step ${i} (${step.crash}): ${agent.output().slice(-2000)}`).toBe("SIGKILL")
      // Down for a while: the restart has a gap of a few occurrences to plan.
      await waitUntilClock(Date.now() + 2_500)
    } else {
      const from = Date.now()
      await waitFor(
        `${s.agent}: three occurrences handled after the last step`,
        () => handledSince(c, s.agent, from).then((n) => n >= 3 || undefined),
        { timeoutMs: 40_000 }
      )
      const exit = await agent.stop()
      expect(exit.code, agent.output().slice(-2000)).toBe(0)
    }
  }
}

describe.each(dbKinds())("the run ledger on %s", (kind) => {
  let cluster: Cluster | undefined
  afterEach(async () => {
    await killAll()
    await cluster?.stop()
    cluster = undefined
  })

  it("kill -9 at every durable step, restarts and stalls: each occurrence has exactly one row", async () => {
    cluster = await makeCluster(kind, {
      // bartos gives up on a killed agent's running runs (lost) before the restarted one settles them.
      server: { limits: { liveness_secs: 3 } },
      schedules: Object.fromEntries(scenarios.map((s) => [s.agent, [s.schedule]]))
    })
    const c = cluster
    await c.startServer()
    await Promise.all(scenarios.map((s) => runScenario(c, s)))

    const results: Record<string, Record<string, number>> = {}
    const reasons: Record<string, Array<string>> = {}
    for (const s of scenarios) {
      const rows: Array<LedgerRow> = await settledLedger(c.db, s.agent, "tick")
      results[s.agent] = expectLedgerIdentity(rows, s.schedule.on_calendar)
      reasons[s.agent] = [...new Set(rows.flatMap((r) => (r.reason === null ? [] : [`${r.state} ${r.reason}`])))].sort()
    }
    // The faults happened, and each is said: runs that died with bartoc, runs it never started.
    expect(reasons.burst).toEqual(expect.arrayContaining([
      "interrupted agent_restart",
      "missed agent_restart",
      "missed catch_up_limit"
    ]))
    expect(reasons.queue).toEqual(expect.arrayContaining(["interrupted agent_restart", "missed agent_restart"]))
    expect(reasons.skip).toEqual(expect.arrayContaining(["missed agent_restart", "missed missed_tick:Skip"]))
    for (const s of scenarios) expect(results[s.agent]!.succeeded ?? 0, s.agent).toBeGreaterThan(0)
  }, 300_000)

  it(
    "a paused schedule records its occurrences meanwhile as one missed range (reason paused) when resumed",
    async () => {
      const schedule: Schedule = { name: "tick", on_calendar: EVERY_SECOND, cmds: ["echo at $BARTO_SCHEDULED_AT"] }
      cluster = await makeCluster(kind, { schedules: { paused: [schedule] } })
      const c = cluster
      await c.startServer()
      const agent = await c.startAgent("paused", { enable_std_output: true })
      await agent.waitForLine(/accepted agent/, 30_000)
      await waitFor("two runs", async () => (await ledger(c.db, "paused", "tick")).length >= 2 || undefined)
      expect((await c.cli(["pause", "paused", "tick"])).code).toBe(0)
      const pausedAt = Date.now()
      await waitUntilClock(pausedAt + 4_000)
      // Nothing recorded while paused (it is recorded when the pause ends).
      expect((await ledger(c.db, "paused", "tick")).filter((r) => r.scheduled_at / 1000 > pausedAt + 1_000)).toEqual([])
      expect((await c.cli(["resume", "paused", "tick"])).code).toBe(0)
      const resumedAt = Date.now()
      await waitFor(
        "two runs after the resume",
        async () =>
          (await ledger(c.db, "paused", "tick")).filter((r) =>
              r.scheduled_at / 1000 > resumedAt && r.state === "succeeded"
            ).length >= 2 ||
          undefined,
        { timeoutMs: 20_000 }
      )
      expect((await agent.stop()).code).toBe(0)
      const rows = await settledLedger(c.db, "paused", "tick")
      expectLedgerIdentity(rows, EVERY_SECOND)
      const ranges = rows.filter((r) => r.reason === "paused")
      expect(ranges.length).toBe(1)
      expect(ranges[0]!.occurrences).toBeGreaterThanOrEqual(3)
      expect(ranges[0]!.scheduled_until).not.toBeNull()
      // barto-cli shows the range as what it stands for.
      const text = await c.cli(["runs", "--agent", "paused", "--state", "missed"])
      expect(text.stdout).toMatch(new RegExp(`missed ×${ranges[0]!.occurrences} .* paused, until `))
      expect(text.stdout).toMatch(/Total: 1 row, \d+ occurrences/)
    },
    120_000
  )
})
