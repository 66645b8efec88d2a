/**
 * Operating barto with the real programs: schedule hot reload reaching a connected agent (file
 * edit and SIGHUP, an invalid reload rejected whole) and configuration errors reported by the
 * real binaries (exit 1, naming the file, the key and, for calendars, the position).
 */
import { mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { stringify } from "smol-toml"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { type Cluster, dbKinds, makeCluster, openDb, type Schedule, waitFor } from "./utils/cluster.js"
import { killAll, runProgram } from "./utils/procs.js"

const tick: Schedule = { name: "tick", on_calendar: "*-*-* *:*:0/2", cmds: ["echo tick"] }

const countLines = (text: string, re: RegExp) => text.split("\n").filter((l) => re.test(l)).length

for (const kind of dbKinds()) {
  describe(`schedule hot reload on ${kind}`, { timeout: 120_000 }, () => {
    let c: Cluster

    const runsOf = (schedule: string, where = "1 = 1") =>
      c.db.all<{ run_id: string; state: string; scheduled_at: number }>(
        `SELECT run_id, state, scheduled_at FROM runs WHERE agent = 'a' AND schedule = ? AND ${where} ORDER BY scheduled_at`,
        [schedule]
      )
    const outputOf = async (runId: string) =>
      (await c.db.all<{ data: string }>(`SELECT data FROM output_lines WHERE run_id = ? ORDER BY line_seq`, [runId]))
        .map((l) => l.data)
    const finishedRunAfter = (schedule: string, afterMs: number) =>
      waitFor(
        `a finished run of ${schedule} after ${new Date(afterMs).toISOString()}`,
        async () => (await runsOf(schedule, `scheduled_at > ${afterMs * 1000} AND finished_at IS NOT NULL`))[0],
        { timeoutMs: 30_000 }
      )

    beforeAll(async () => {
      c = await makeCluster(kind, { schedules: { a: [tick] } })
      await c.startServer()
      await c.startAgent("a")
      await c.waitForLog("a", /accepted agent 'a'/, 30_000)
    })

    beforeEach(({ onTestFailed }) => {
      onTestFailed(() => console.log(c.diagnostics()))
    })

    afterAll(async () => {
      await c?.stop()
      await killAll()
    })

    it("a schedule added to bartos.toml runs on the connected agent, nothing restarted", async () => {
      const server = c.server!
      const agent = c.agents.get("a")!
      await finishedRunAfter("tick", 0)
      c.writeServerConfig({
        schedules: { a: [tick, { name: "added", on_calendar: "*-*-* *:*:*", cmds: ["echo added $BARTO_SCHEDULE"] }] }
      })
      await c.waitForLog("bartos", /schedules reloaded: 1 agents, 2 schedules; changed: a/)
      const run = await finishedRunAfter("added", 0)
      expect(run.state).toBe("succeeded")
      expect(await outputOf(run.run_id)).toEqual(["added added"])
      // the same two processes all along
      expect(server.child.exitCode).toBeNull()
      expect(agent.child.exitCode).toBeNull()
      expect(c.server).toBe(server)
    })

    it("an invalid expression rejects the whole reload: the old table keeps running", async () => {
      const rejectedBefore = countLines(c.log("bartos"), /schedule reload rejected/)
      c.writeServerConfig({
        schedules: {
          a: [
            tick,
            { name: "added", on_calendar: "*-*-* *:*:*", cmds: ["echo changed"] },
            { name: "new2", on_calendar: "*-*-* *:*:*", cmds: ["echo new2"] },
            { name: "bad", on_calendar: "*-*-* 25:00:00", cmds: ["echo bad"] }
          ]
        }
      })
      await waitFor(
        "the rejection in bartos' log",
        () => countLines(c.log("bartos"), /schedule reload rejected/) > rejectedBefore || undefined
      )
      const line = c.log("bartos").split("\n").filter((l) => /schedule reload rejected/.test(l)).at(-1)!
      // file, key path, the offending text and its position
      expect(line).toContain(c.serverToml())
      expect(line).toContain("schedules.a.schedules[3].on_calendar")
      expect(line).toContain("'*-*-* 25:00:00'")
      expect(line).toMatch(/hour '25' at position 6/)

      // the old table still runs: "added" prints its old output, "new2" never starts
      const rejectedAt = Date.now()
      const run = await finishedRunAfter("added", rejectedAt + 1000)
      expect(await outputOf(run.run_id)).toEqual(["added added"])
      await finishedRunAfter("tick", rejectedAt + 1000)
      expect(await runsOf("new2")).toEqual([])
      expect(await runsOf("bad")).toEqual([])
    })

    it("SIGHUP reloads a change that the file watcher did not pick up", async () => {
      const path = c.serverToml()
      const rejected = () => countLines(c.log("bartos"), /schedule reload rejected/)
      // 1. Give the (still invalid) file a fixed mtime and let bartos see it (one more rejection).
      const fixed = Math.floor(Date.now() / 1000) - 3600
      const before = rejected()
      utimesSync(path, fixed, fixed)
      await waitFor("bartos to re-read the touched file", () => rejected() > before || undefined)
      // 2. A valid edit that keeps that mtime: the watcher ignores an event whose mtime did not
      //    move, so only the signal can apply it.
      c.writeServerConfig({
        schedules: { a: [tick, { name: "hup", on_calendar: "*-*-* *:*:*", cmds: ["echo hup"] }] }
      })
      utimesSync(path, fixed, fixed)
      expect(statSync(path).mtimeMs).toBe(fixed * 1000)
      const reloadsBefore = countLines(c.log("bartos"), /schedules reloaded/)
      c.server!.child.kill("SIGHUP")
      await waitFor("the reload", () => countLines(c.log("bartos"), /schedules reloaded/) > reloadsBefore || undefined)
      const triggers = c.log("bartos").split("\n").filter((l) => /reloading schedules \(/.test(l)).at(-1)!
      expect(triggers).toMatch(/reloading schedules \([^)]*sighup/)
      const run = await finishedRunAfter("hup", 0)
      expect(await outputOf(run.run_id)).toEqual(["hup"])
      // "added" is gone from the table: no run of it starts after the reload
      const reloadedAt = Date.now()
      await finishedRunAfter("tick", reloadedAt + 2000)
      expect(await runsOf("added", `scheduled_at > ${(reloadedAt + 1000) * 1000}`)).toEqual([])
      expect(c.server!.child.exitCode).toBeNull()
    })
  })

  describe(`configuration errors from the real binaries (${kind})`, { timeout: 120_000 }, () => {
    let dir: string
    let dbToml: Record<string, unknown>
    let close: () => Promise<void>

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), "barto-e2e-config-"))
      const db = await openDb(kind, dir)
      dbToml = db.toml
      close = db.close
    })

    afterAll(async () => {
      await close?.()
      rmSync(dir, { recursive: true, force: true })
      await killAll()
    })

    const write = (name: string, body: Record<string, unknown>) => {
      const path = join(dir, name)
      writeFileSync(path, stringify(body))
      return path
    }

    it("bartos, bartoc and barto-cli exit 1 naming the file, the key and the position", async () => {
      const badPort = write("bad-port.toml", { ...dbToml, actix: { ip: "127.0.0.1", port: "abc" } })
      const badCalendar = write("bad-calendar.toml", {
        ...dbToml,
        actix: { ip: "127.0.0.1", port: 0 },
        schedules: {
          web1: {
            schedules: [
              { name: "ok", on_calendar: "*-*-* *:*:00", cmds: ["true"] },
              { name: "backup", on_calendar: "*-*-* 10:61:00", cmds: ["true"] }
            ]
          }
        }
      })
      const badAgent = write("bad-bartoc.toml", {
        name: "a",
        state_path: join(dir, "bartoc.db"),
        missed_tick: "Sometimes",
        bartos: { port: 1 }
      })
      const badCli = write("bad-cli.toml", { timeout_secs: "soon" })
      const log = (n: string) => ["-t", join(dir, `${n}.log`)]
      const [port, calendar, agent, cli] = await Promise.all([
        runProgram("bartos", ["-c", badPort, ...log("port")], { timeoutMs: 60_000 }),
        runProgram("bartos", ["-c", badCalendar, ...log("calendar")], { timeoutMs: 60_000 }),
        runProgram("bartoc", ["-c", badAgent, ...log("agent")], { timeoutMs: 60_000 }),
        runProgram("barto-cli", ["-c", badCli, ...log("cli"), "info"], { timeoutMs: 60_000 })
      ])

      expect(port.code, port.stderr).toBe(1)
      expect(port.stderr).toContain(badPort)
      expect(port.stderr).toContain("actix.port")
      expect(port.stderr).toMatch(/expected a port number.*"abc"/)
      expect(port.stdout).not.toMatch(/listening on/)

      expect(calendar.code, calendar.stderr).toBe(1)
      expect(calendar.stderr).toContain(badCalendar)
      expect(calendar.stderr).toContain("schedules.web1.schedules[1].on_calendar")
      expect(calendar.stderr).toMatch(/minute '61' at position 9/)
      expect(calendar.stdout).not.toMatch(/listening on/)

      expect(agent.code, agent.stderr).toBe(1)
      expect(agent.stderr).toContain(badAgent)
      expect(agent.stderr).toContain("missed_tick")
      expect(agent.stderr).toContain("Sometimes")

      expect(cli.code, cli.stderr).toBe(1)
      expect(cli.stderr).toContain(badCli)
      expect(cli.stderr).toContain("timeout_secs")
      expect(cli.stdout).toBe("")
    })
  })
}
