/**
 * `barto-cli schedules` and `status` show each agent's `missed_tick` and `catch_up_limit`, with
 * the real programs: bartoc reports them in its hello, bartos keeps them with the session and in
 * `agents`, so they still show once the agent is offline; an agent that never connected shows `-`.
 */
import { describe, expect, it } from "vitest"
import { dbKinds, makeCluster, type Schedule, waitFor } from "./utils/cluster.js"
import { clusterPerDescribe } from "./utils/clusterPerDescribe.js"

const daily: Schedule = { name: "nightly", on_calendar: "*-*-* 03:00:00", cmds: ["echo nightly"] }

interface ScheduleJson {
  readonly agent: string
  readonly name: string
  readonly connected: boolean
  readonly missedTick: string | null
  readonly catchUpLimit: number | null
}

for (const kind of dbKinds()) {
  describe(`schedules and status show missed_tick on ${kind}`, { timeout: 120_000 }, () => {
    const cluster = clusterPerDescribe(async () => {
      const made = await makeCluster(kind, { schedules: { a: [daily], b: [daily], c: [daily] } })
      await made.startServer()
      return made
    })

    it("as each bartoc reports it, kept after it disconnects; '-' for an agent never seen", async () => {
      const c = cluster.get()
      await c.startAgent("a", { missed_tick: "Skip" })
      await c.startAgent("c", { missed_tick: "Burst", catch_up_limit: 4 })
      await c.waitForLog("a", /accepted agent 'a'/, 30_000)
      await c.waitForLog("c", /accepted agent 'c'/, 30_000)
      const byAgent = async () =>
        new Map((await c.cliJson<Array<ScheduleJson>>(["schedules"])).map((s) => [s.agent, s]))

      const online = await byAgent()
      expect(online.get("a")).toMatchObject({ connected: true, missedTick: "Skip", catchUpLimit: 10 })
      expect(online.get("b")).toMatchObject({ connected: false, missedTick: null, catchUpLimit: null })
      expect(online.get("c")).toMatchObject({ connected: true, missedTick: "Burst", catchUpLimit: 4 })
      const text = await c.cli(["schedules"])
      expect(text.code, text.stderr).toBe(0)
      expect(text.stdout).toMatch(/ MISSED TICK /)
      expect(text.stdout).toMatch(/\na +nightly .* Skip +UTC /)
      expect(text.stdout).toMatch(/\nb \(offline\) +nightly .* - +UTC /)
      expect(text.stdout).toMatch(/\nc +nightly .* Burst \(4\) +UTC /)

      // Offline: the last session's report, from the database.
      await c.agents.get("a")!.stop("SIGTERM")
      await waitFor("a to be offline", async () => (await byAgent()).get("a")?.connected === false || undefined, {
        timeoutMs: 20_000
      })
      const status = await c.cliJson<{ schedules: Array<ScheduleJson> }>(["status"])
      expect(status.schedules.find((s) => s.agent === "a")).toMatchObject({ missedTick: "Skip", catchUpLimit: 10 })
      expect(status.schedules.find((s) => s.agent === "b")).toMatchObject({ missedTick: null })
      const st = await c.cli(["status"])
      expect(st.code, st.stderr).toBe(0)
      expect(st.stdout).toMatch(/\n {2}a \(offline\) +nightly .* Skip +UTC /)
    })
  })
}
