/**
 * One agent per name (issue 12 §2), with the real programs on SQLite and MariaDB: two bartoc
 * instances (two state files, so two outbox ids) configured with the same name.
 *
 * - Under a per-second schedule for 30 s, every second of the window has exactly one row in the
 *   database: the second instance is refused (4003), says so at ERROR on stderr without `-e`, runs
 *   nothing, and `barto-cli clients` and `/metrics` show the refused attempts.
 * - The refused one takes over once the holder dies (its liveness expires).
 * - A cached table is not run while another live instance holds the name, nor under another
 *   name; it still runs while bartos is unreachable (D3).
 */
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { type Cluster, dbKinds, makeCluster, waitFor } from "./utils/cluster.js"
import { metrics, runs, waitUntilClock } from "./utils/faults.js"
import { killAll } from "./utils/procs.js"

const SECOND = 1_000_000

/** Which instance ran a job: each bartoc's environment names it, and its jobs inherit that. */
const marker = (dir: string) => join(dir, "ran.log")
const ranBy = (dir: string): Array<string> => {
  try {
    return readFileSync(marker(dir), "utf8").split("\n").filter((l) => l !== "")
  } catch {
    return []
  }
}

/** A fast handover: bartos drops a silent agent after 3 s, the refused one retries every ≤ 1 s. */
const FAST = { connection: { reconnect_base_secs: 0.2, reconnect_max_secs: 1 } }

for (const kind of dbKinds()) {
  describe(`one agent per name on ${kind}`, () => {
    let cluster: Cluster | undefined
    afterEach(async () => {
      await killAll()
      await cluster?.stop()
      cluster = undefined
    })

    const start = async () => {
      const dir = await makeCluster(kind)
      cluster = dir
      dir.writeServerConfig({
        schedules: {
          web1: [{ name: "tick", on_calendar: "*-*-* *:*:*", cmds: [`echo "$INSTANCE" >> '${marker(dir.dir)}'`] }]
        },
        extra: { limits: { liveness_secs: 3 } }
      })
      await dir.startServer()
      return dir
    }

    it("two bartoc with one name for 30 s: exactly one row per second; the second is refused, loudly", async () => {
      const c = await start()
      await c.startAgent("web1", FAST, undefined, { instance: "a", env: { INSTANCE: "a" } })
      await c.waitForLog("a", /accepted agent 'web1'/, 30_000)
      const b = await c.startAgent("web1", FAST, undefined, { instance: "b", env: { INSTANCE: "b" } })
      // Without -e its log goes to its file only; the refusal is on stderr all the same.
      await b.waitForLine(
        /^bartoc: ERROR bartos refused agent name 'web1' for this instance .*4003: name 'web1' is in use by another agent from 127\.0\.0\.1 since \d\d:\d\d:\d\d UTC/,
        30_000
      )

      const from = Math.ceil(Date.now() / 1000) + 1
      const to = from + 30
      await waitUntilClock(to * 1000 + 1500, "30 s of a per-second schedule with both instances up")
      // Every occurrence of the window is in the database: one row per second, no more, no less.
      const rows = await waitFor("the last occurrence of the window in the database", async () => {
        const rs = (await runs(c.db, "web1", "tick")).filter((r) =>
          r.scheduled_at >= from * SECOND && r.scheduled_at <= to * SECOND
        )
        return rs.some((r) => r.scheduled_at === to * SECOND) ? rs : undefined
      })
      const perSecond = new Map<number, number>()
      for (const r of rows) perSecond.set(r.scheduled_at / SECOND, (perSecond.get(r.scheduled_at / SECOND) ?? 0) + 1)
      const wrong = Array.from({ length: to - from + 1 }, (_, i) => from + i).flatMap((s) =>
        (perSecond.get(s) ?? 0) === 1 ? [] : [`${new Date(s * 1000).toISOString()}: ${perSecond.get(s) ?? 0} rows`]
      )
      expect(wrong, c.diagnostics()).toEqual([])
      expect(rows.length).toBe(31)
      // Only the holder ran anything.
      expect(ranBy(c.dir).filter((l) => l !== "a")).toEqual([])
      expect(c.log("b")).not.toMatch(/accepted agent/)

      // Operators can see it: /metrics and barto-cli clients (text and --json).
      const m = await metrics(c.port)
      expect(m.get("bartos_duplicate_names_refused_total")).toBeGreaterThanOrEqual(1)
      const clients = await c.cliJson<
        Array<{ name: string; refusedDuplicates: { count: number; lastIp: string } | null }>
      >(["clients"])
      const web1 = clients.find((x) => x.name === "web1")!
      expect(web1.refusedDuplicates?.count).toBeGreaterThanOrEqual(1)
      expect(web1.refusedDuplicates?.lastIp).toBe("127.0.0.1")
      const text = await c.cli(["clients"])
      expect(text.stdout).toMatch(
        /Refused duplicate connections[^\n]*\n\s+web1: \d+ attempt\(s\), last from 127\.0\.0\.1 at /
      )
    }, 120_000)

    it(
      "the refused instance takes over once the holder's session ends, and does not catch up the other's runs",
      async () => {
        const c = await start()
        const a = await c.startAgent("web1", FAST, undefined, { instance: "a", env: { INSTANCE: "a" } })
        await c.waitForLog("a", /accepted agent 'web1'/, 30_000)
        const b = await c.startAgent("web1", FAST, undefined, { instance: "b", env: { INSTANCE: "b" } })
        await b.waitForLine(/bartoc: ERROR bartos refused agent name 'web1'/, 30_000)
        await waitFor("a run by the holder", () => ranBy(c.dir).includes("a") || undefined)
        await a.kill9()
        const killedAt = Date.now()
        // bartos drops the dead holder after its liveness (3 s); b's next attempt is accepted.
        await c.waitForLog("b", /accepted agent 'web1'/, 30_000)
        await waitFor("a run by the new holder", () => ranBy(c.dir).includes("b") || undefined, { timeoutMs: 20_000 })
        // Nothing the holder ran before it died is run again by its successor.
        const bRuns = ranBy(c.dir).filter((l) => l === "b").length
        expect(bRuns).toBeLessThanOrEqual(Math.ceil((Date.now() - killedAt) / 1000) + 1)
      },
      120_000
    )

    it(
      "a cached table is not run while another instance holds the name; it still runs while bartos is down",
      async () => {
        const c = await start()
        // b alone first: accepted, it caches web1's table.
        const b1 = await c.startAgent("web1", FAST, undefined, { instance: "b", env: { INSTANCE: "b" } })
        await c.waitForLog("b", /schedule table \S+: 1 schedule/, 30_000)
        await waitFor("a run by b", () => ranBy(c.dir).includes("b") || undefined)
        await b1.stop()
        // a takes the name; b comes back with its cached table and is refused: it runs nothing.
        const a = await c.startAgent("web1", FAST, undefined, { instance: "a", env: { INSTANCE: "a" } })
        await c.waitForLog("a", /accepted agent 'web1'/, 30_000)
        const before = ranBy(c.dir).filter((l) => l === "b").length
        const b2 = await c.startAgent("web1", FAST, undefined, { instance: "b", env: { INSTANCE: "b" } })
        await b2.waitForLine(/bartoc: ERROR bartos refused agent name 'web1'/, 30_000)
        const watchUntil = Date.now() + 5_000
        await waitUntilClock(watchUntil, "5 s with the cached table held back")
        expect(ranBy(c.dir).filter((l) => l === "b").length).toBe(before)
        expect(ranBy(c.dir).filter((l) => l === "a").length).toBeGreaterThan(0)

        // bartos down: a restarted bartoc runs its cached table (D3), refused by nobody.
        await a.stop()
        await b2.stop()
        await c.server!.stop()
        const b3 = await c.startAgent("web1", FAST, undefined, { instance: "b", env: { INSTANCE: "b" } })
        await waitFor(
          "b running its cached table while bartos is down",
          () => ranBy(c.dir).filter((l) => l === "b").length > before || undefined,
          { timeoutMs: 20_000 }
        )
        await b3.stop()

        // Under another name, the same state file's table is never run.
        const renamedFrom = ranBy(c.dir).length
        const other = await c.startAgent("web2", FAST, undefined, { instance: "b", env: { INSTANCE: "renamed" } })
        await c.waitForLog(
          "b",
          /the cached schedule table belongs to agent 'web1', this is 'web2': not running it/,
          20_000
        )
        await waitUntilClock(Date.now() + 3_000, "3 s of the renamed agent")
        expect(ranBy(c.dir).slice(renamedFrom)).toEqual([])
        await other.stop()
      },
      120_000
    )
  })
}
