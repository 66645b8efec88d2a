/**
 * bartoc's signals and lifecycle (issue 12 §4) with the real processes: SIGHUP never stops it
 * (it reloads the log level), and SIGTERM lets the running jobs finish (`[runner] shutdown =
 * "wait"`, the default) or stops them (`terminate`, past `shutdown_grace_secs`, or on a second
 * SIGTERM), each recorded with its output, exit and final state.
 */
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Cluster, dbKinds, makeCluster, waitFor } from "./utils/cluster.js"
import { isAlive, lines, runs } from "./utils/faults.js"
import { killAll, type Proc } from "./utils/procs.js"

const NEVER = "2099-01-01 00:00:00"
const EVERY_SECOND = "*-*-* *:*:*"

interface RunState {
  readonly state: string
  readonly reason: string | null
  readonly exit_code: number | null
  readonly exit_signal: string | null
  readonly finished_at: unknown
}

describe.each(dbKinds())("bartoc signals on %s", (kind) => {
  let c: Cluster

  const agentSchedules = [
    { name: "tick", on_calendar: EVERY_SECOND, cmds: ["echo tick"] },
    { name: "slow", on_calendar: NEVER, cmds: ["echo start; sleep 3; echo end"] },
    { name: "forever", on_calendar: NEVER, cmds: ["echo start; sleep 30; echo never"] }
  ]

  beforeAll(async () => {
    c = await makeCluster(kind, {
      schedules: Object.fromEntries(["hup", "wait", "term", "grace", "twice"].map((a) => [a, agentSchedules]))
    })
    await c.startServer()
  })
  afterAll(async () => {
    await killAll()
    await c.stop()
  })

  const startAgent = async (name: string, extra: Record<string, unknown> = {}) => {
    const agent = await c.startAgent(name, { enable_std_output: true, ...extra })
    await agent.waitForLine(/accepted agent/, 30_000)
    return agent
  }

  const runState = async (runId: string) =>
    (await c.db.all<RunState>(
      `SELECT r.state, r.reason, r.exit_code, r.exit_signal, r.finished_at FROM runs r WHERE r.run_id = ?`,
      [runId]
    ))[0]

  /** Starts `schedule` now on `agent` and waits until its job printed its first line. */
  const runNow = async (agent: string, schedule: string) => {
    const { runId } = await c.cliJson<{ runId: string }>(["run", agent, schedule])
    await waitFor("the job to print", async () => (await lines(c.db, runId)).length > 0 || undefined, {
      timeoutMs: 20_000
    })
    return runId
  }

  const exitOf = (p: Proc) => p.exited

  it(
    "SIGHUP never stops bartoc: it reloads the log level, reports a config it cannot load, and keeps running",
    async () => {
      const agent = await startAgent("hup")
      const config = join(c.dir, "bartoc-hup.toml")
      const original = readFileSync(config, "utf8")
      expect(agent.stderr.some((l) => / DEBUG /.test(l))).toBe(false)

      writeFileSync(config, `verbose = 1\n${original}`)
      agent.child.kill("SIGHUP")
      await agent.waitForLine(/SIGHUP: log level now DEBUG/)
      // The new level applies to fibers that were already running (the ticker's debug lines).
      await agent.waitForLine(/DEBUG ticker: 'tick' occurrence/, 10_000)

      writeFileSync(config, `verbose = "loud"\n${original}`)
      agent.child.kill("SIGHUP")
      await agent.waitForLine(/SIGHUP: configuration not reloaded: .*verbose/)

      const after = Date.now()
      await waitFor(
        "a run after the SIGHUPs",
        async () =>
          (await runs(c.db, "hup", "tick")).some((r) => r.scheduled_at / 1000 > after && r.state === "succeeded") ||
          undefined
      )
      expect(isAlive(agent)).toBe(true)
      writeFileSync(config, original)
      expect((await agent.stop()).code).toBe(0)
    },
    90_000
  )

  it(
    "SIGTERM (shutdown = wait): the running job finishes, its output and exit are stored; nothing new starts",
    async () => {
      const agent = await startAgent("wait")
      const runId = await runNow("wait", "slow")
      const sigtermAt = Date.now()
      agent.child.kill("SIGTERM")
      await agent.waitForLine(/shutting down: waiting up to 1m for 1 running run/)
      const exit = await exitOf(agent)
      expect(exit.code).toBe(0)
      // bartoc waited for the job (3 s), and delivered its end before closing the link.
      expect(Date.now() - sigtermAt).toBeGreaterThan(1_500)
      const row = await runState(runId)
      expect(row).toMatchObject({ state: "succeeded", reason: null })
      expect(Number(row!.exit_code)).toBe(0)
      expect((await lines(c.db, runId)).map((l) => l.data)).toEqual(["start", "end"])
      // The ticker stopped at SIGTERM: no per-second occurrence started while the job finished.
      const ticks = (await runs(c.db, "wait", "tick")).filter((r) => r.scheduled_at / 1000 > sigtermAt + 1_000)
      expect(ticks).toEqual([])
    },
    90_000
  )

  it("SIGTERM with shutdown = terminate: the job is stopped at once and recorded interrupted (shutdown)", async () => {
    const agent = await startAgent("term", { runner: { shutdown: "terminate" } })
    const runId = await runNow("term", "forever")
    const sigtermAt = Date.now()
    agent.child.kill("SIGTERM")
    expect((await exitOf(agent)).code).toBe(0)
    expect(Date.now() - sigtermAt).toBeLessThan(15_000)
    const row = await runState(runId)
    expect(row).toMatchObject({ state: "interrupted", reason: "shutdown", exit_signal: "SIGTERM" })
    expect((await lines(c.db, runId)).map((l) => l.data)).toEqual(["start"])
  }, 90_000)

  it(
    "SIGTERM with shutdown = wait past shutdown_grace_secs: the job is then stopped and recorded interrupted (shutdown)",
    async () => {
      const agent = await startAgent("grace", { runner: { shutdown_grace_secs: 1 } })
      const runId = await runNow("grace", "forever")
      agent.child.kill("SIGTERM")
      await agent.waitForLine(/shutting down: waiting up to 1s/)
      await agent.waitForLine(/shutting down: stopping 1 run\(s\) still running/, 10_000)
      expect((await exitOf(agent)).code).toBe(0)
      expect(await runState(runId)).toMatchObject({ state: "interrupted", reason: "shutdown", exit_signal: "SIGTERM" })
    },
    90_000
  )

  it("a second SIGTERM while waiting stops the running jobs at once", async () => {
    const agent = await startAgent("twice")
    const runId = await runNow("twice", "forever")
    agent.child.kill("SIGTERM")
    await agent.waitForLine(/shutting down: waiting up to 1m/)
    const secondAt = Date.now()
    agent.child.kill("SIGTERM")
    expect((await exitOf(agent)).code).toBe(0)
    expect(Date.now() - secondAt).toBeLessThan(15_000)
    expect(await runState(runId)).toMatchObject({ state: "interrupted", reason: "shutdown", exit_signal: "SIGTERM" })
  }, 90_000)
})
