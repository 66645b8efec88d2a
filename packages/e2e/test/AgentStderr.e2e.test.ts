/**
 * What bartoc says on stderr without `-e` (issue 15), with the real programs: an operator who
 * started it by hand, or reads `journalctl -u bartoc`, learns that it cannot reach bartos (which
 * server, why, when it tries next; rate-limited) and that its name matches no schedule in the
 * table bartos sent (once per table).
 */
import { readFileSync } from "node:fs"
import { createServer } from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { type Cluster, makeCluster, waitFor } from "./utils/cluster.js"
import { killAll } from "./utils/procs.js"

/** A port nothing listens on (bound, read, released). */
const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
    })
  })

const UNREACHABLE =
  /^bartoc: WARN cannot reach bartos at (ws:\/\/\S+) \((.+)\); next attempt at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) \(in (\d+\.\d) s\)$/

describe("bartoc on stderr without -e", () => {
  let cluster: Cluster | undefined
  afterEach(async () => {
    await killAll()
    await cluster?.stop()
    cluster = undefined
  })

  it(
    "says when it cannot reach bartos: the server, the reason, the next attempt; at most one line per 10 s",
    async () => {
      const c = await makeCluster("sqlite")
      cluster = c
      const port = await freePort()
      // Fast retries (every ≤ 0.3 s): many attempts, and still one line per 10 s for the same reason.
      const agent = await c.startAgent(
        "web1",
        { connection: { reconnect_base_secs: 0.1, reconnect_max_secs: 0.3 } },
        port
      )
      const m = await agent.waitForLine(UNREACHABLE, 20_000)
      expect(m[1]).toBe(`ws://127.0.0.1:${port}/v1/ws/worker?name=web1`)
      expect(m[2]).toMatch(/ECONNREFUSED/)
      const said = Date.parse(m[3]!)
      expect(Math.abs(said - (Date.now() + Number(m[4]) * 1000))).toBeLessThan(5_000)
      // Many attempts in the log file...
      await waitFor("ten failed attempts in the log", () => {
        const ended = readFileSync(`${c.dir}/bartoc-web1.log`, "utf8").match(
          /connection to bartos ended \(attempt \d+\)/g
        )
        return ended !== null && ended.length >= 10 ? true : undefined
      }, { timeoutMs: 20_000 })
      // ...one line on stderr, and never the log itself (no -e).
      const lines = agent.stderr.filter((l) => UNREACHABLE.test(l))
      expect(lines.length, agent.output()).toBe(1)
      expect(agent.stderr.filter((l) => l !== "" && !l.startsWith("bartoc: ")), agent.output()).toEqual([])
    },
    60_000
  )

  it("warns once per table when its name matches no schedule in the table bartos sent", async () => {
    const c = await makeCluster("sqlite")
    cluster = c
    c.writeServerConfig({ schedules: { web1: [{ name: "tick", on_calendar: "*-*-* 03:00:00", cmds: ["true"] }] } })
    await c.startServer()
    const typo = await c.startAgent("wbe1")
    const m = await typo.waitForLine(/^bartoc: WARN agent name 'wbe1' matches no schedule/, 30_000)
    expect(m.input).toMatch(/check \[schedules\.wbe1\] in bartos\.toml or this agent's name$/)
    // A correctly named agent says nothing of the kind.
    const good = await c.startAgent("web1")
    await c.waitForLog("web1", /schedule table \S+: 1 schedule\(s\)/, 30_000)
    expect(good.stderr.filter((l) => /matches no schedule/.test(l))).toEqual([])
    expect(typo.stderr.filter((l) => /matches no schedule/.test(l)).length).toBe(1)
  }, 60_000)
})
