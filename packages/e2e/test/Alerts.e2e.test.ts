/**
 * Alerts (issue 14) with the real programs on loopback, on SQLite and MariaDB: a webhook receiver,
 * an SMTP server (`smtp-server`) and a command channel started by the test, the events read from
 * bartos' database.
 *
 * The webhook signature is checked by a verifier written here from the README's description
 * (HMAC-SHA256 over `<timestamp>.<body>`), not by bartos' own code, so a change on one side that
 * the other does not follow fails.
 */
import { createHmac, timingSafeEqual } from "node:crypto"
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { createServer, type IncomingHttpHeaders, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { join } from "node:path"
import { SMTPServer } from "smtp-server"
import { afterEach, describe, expect, it } from "vitest"
import { type Cluster, dbKinds, makeCluster, type Schedule, waitFor } from "./utils/cluster.js"
import { binPath, killAll } from "./utils/procs.js"

interface Received {
  readonly headers: IncomingHttpHeaders
  readonly body: string
  readonly status: number
}

interface Receiver {
  readonly url: string
  readonly received: Array<Received>
  /** The status the next requests get (default 200). */
  status: number
  readonly close: () => Promise<void>
}

const startReceiver = async (): Promise<Receiver> => {
  const received: Array<Received> = []
  const receiver = { status: 200 } as { status: number }
  const server: Server = createServer((req, res) => {
    let body = ""
    req.setEncoding("utf8")
    req.on("data", (c: string) => (body += c))
    req.on("end", () => {
      const status = receiver.status
      received.push({ headers: req.headers, body, status })
      res.writeHead(status).end()
    })
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const port = (server.address() as AddressInfo).port
  return Object.assign(receiver, {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    close: () => new Promise<void>((r) => server.close(() => r()))
  })
}

/** What a receiver does with the README's description of the signature. */
const referenceVerify = (secret: string, r: Received, nowSecs = Math.floor(Date.now() / 1000)): boolean => {
  const ts = r.headers["x-barto-timestamp"]
  const sig = r.headers["x-barto-signature"]
  if (typeof ts !== "string" || typeof sig !== "string" || !/^\d+$/.test(ts)) return false
  if (Math.abs(nowSecs - Number(ts)) > 300) return false
  const expected = Buffer.from("sha256=" + createHmac("sha256", secret).update(ts + "." + r.body).digest("hex"))
  const given = Buffer.from(sig)
  return expected.length === given.length && timingSafeEqual(expected, given)
}

interface EventRow {
  event_id: string
  kind: string
  agent: string
  schedule: string | null
  run_id: string | null
  at: number
  detail: string
}

const events = (c: Cluster, kind?: string) =>
  c.db.all<EventRow>(
    `SELECT event_id, kind, agent, schedule, run_id, at, detail FROM alert_events${
      kind ? " WHERE kind = ?" : ""
    } ORDER BY at`,
    kind ? [kind] : []
  )

const SECRET = "hook-secret-\u00e9"
const clusters: Array<Cluster> = []
const closers: Array<() => Promise<void>> = []

afterEach(async () => {
  await killAll()
  for (const c of clusters.splice(0)) await c.stop()
  for (const close of closers.splice(0)) await close()
})

describe.each(dbKinds())("alerts on %s", (kind) => {
  it(
    "a failing job: one signed webhook for the incident, then recovered; the command gets the JSON; a mail arrives",
    async () => {
      const hook = await startReceiver()
      closers.push(hook.close)
      const mails: Array<string> = []
      const smtp = new SMTPServer({
        authOptional: true,
        disabledCommands: ["STARTTLS"],
        logger: false,
        onData: (stream, _session, done) => {
          let text = ""
          stream.on("data", (c: Buffer) => (text += c.toString("utf8")))
          stream.on("end", () => {
            mails.push(text)
            done()
          })
        }
      })
      await new Promise<void>((r) => smtp.listen(0, "127.0.0.1", r))
      closers.push(() => new Promise<void>((r) => smtp.close(() => r())))
      const smtpPort = (smtp.server.address() as AddressInfo).port

      const c = await makeCluster(kind)
      clusters.push(c)
      const secretFile = c.file("hook.secret", SECRET + "\n")
      const okFile = join(c.dir, "ok")
      const eventsDir = join(c.dir, "events")
      const flaky = {
        name: "flaky",
        on_calendar: "*-*-* *:*:*",
        cmds: [`echo attempt; test -f ${okFile} || { echo boom >&2; exit 3; }`],
        alert: { to: ["hook", "pager", "mail"] }
      } as Schedule
      c.writeServerConfig({
        schedules: { web1: [flaky] },
        extra: {
          notify: {
            hook: { type: "webhook", url: hook.url, secret_file: secretFile, timeout: "5s" },
            pager: {
              type: "command",
              command: ["sh", "-c", `mkdir -p ${eventsDir} && cat > ${eventsDir}/$BARTO_EVENT_ID.json`]
            },
            mail: {
              type: "email",
              smtp_host: "127.0.0.1",
              smtp_port: smtpPort,
              smtp_security: "none",
              from: "barto@example.org",
              to: ["oncall@example.org"]
            }
          }
        }
      })
      await c.startServer()
      await c.startAgent("web1")

      // Several failed runs, one incident: wait for three failures, then let it succeed.
      await waitFor("three failed events", async () => ((await events(c, "failed")).length >= 3 ? true : undefined), {
        timeoutMs: 60_000
      })
      writeFileSync(okFile, "")
      const recovered = await waitFor("recovered", async () => (await events(c, "recovered"))[0], { timeoutMs: 60_000 })
      await waitFor("the recovered webhook", () => (hook.received.length >= 2 ? true : undefined))
      // Nothing else arrives: every further failure was counted into the incident that was notified.
      await new Promise((r) => setTimeout(r, 1500))
      const bodies = hook.received.map((r) =>
        JSON.parse(r.body) as {
          id: string
          kind: string
          agent: string
          schedule: string
          incident: { id: string; state: string }
          detail: { output: Array<string>; exit_code: number }
        }
      )
      expect(bodies.map((b) => b.kind), c.diagnostics()).toEqual(["failed", "recovered"])
      expect(bodies[0]!.agent).toBe("web1")
      expect(bodies[0]!.schedule).toBe("flaky")
      expect(bodies[0]!.detail.exit_code).toBe(3)
      expect(bodies[0]!.detail.output).toEqual(["attempt", "boom"])
      expect(bodies[0]!.incident.state).toBe("open")
      expect(bodies[1]!.incident).toMatchObject({ id: bodies[0]!.incident.id, state: "closed" })
      expect(bodies[1]!.id).toBe(recovered.event_id)
      for (const r of hook.received) {
        expect(r.status).toBe(200)
        expect(r.headers["x-barto-event-id"]).toBe((JSON.parse(r.body) as { id: string }).id)
        expect(referenceVerify(SECRET, r)).toBe(true)
        // A receiver with the wrong secret, a tampered body or a stale timestamp rejects it.
        expect(referenceVerify("wrong-secret", r)).toBe(false)
        expect(referenceVerify(SECRET, { ...r, body: r.body.replace("web1", "web2") })).toBe(false)
        expect(referenceVerify(SECRET, r, Math.floor(Date.now() / 1000) + 3600)).toBe(false)
      }

      // The command channel got the same two events as JSON on stdin.
      const files = await waitFor("two command deliveries", () => {
        const names = existsSync(eventsDir) ? readdirSync(eventsDir) : []
        return names.length >= 2 ? names : undefined
      })
      const commandKinds = files.map((f) =>
        (JSON.parse(readFileSync(join(eventsDir, f), "utf8")) as { kind: string }).kind
      ).sort()
      expect(commandKinds).toEqual(["failed", "recovered"])

      // And two mails: agent, schedule, state, exit status and the last output lines.
      await waitFor("two mails", () => (mails.length >= 2 ? true : undefined))
      const failedMail = mails.find((m) => /Subject: \[barto\] failed: web1\/flaky/.test(m))
      expect(failedMail, mails.join("\n----\n")).toBeDefined()
      expect(failedMail).toMatch(/agent: +web1/)
      expect(failedMail).toMatch(/schedule: +flaky/)
      expect(failedMail).toMatch(/state: +failed/)
      expect(failedMail).toMatch(/exit: +exit 3/)
      expect(failedMail).toMatch(/Last 2 output lines:\r?\nattempt\r?\nboom/)
      expect(mails.some((m) => /Subject: \[barto\] recovered: web1\/flaky/.test(m))).toBe(true)

      const deliveries = await c.db.all<{ state: string; n: number }>(
        "SELECT state, COUNT(*) AS n FROM alert_deliveries GROUP BY state"
      )
      expect(deliveries.map((d) => [d.state, Number(d.n)])).toEqual([["delivered", 6]])

      // barto-cli alerts: no incident open any more, the six deliveries with their status.
      const shown = await c.cliJson<
        {
          incidents: Array<unknown>
          deliveries: Array<{ kind: string; channel: string; state: string; attempts: number }>
        }
      >(
        ["alerts"]
      )
      expect(shown.incidents).toEqual([])
      expect(shown.deliveries.map((d) => `${d.kind} ${d.channel} ${d.state}`).sort()).toEqual([
        "failed hook delivered",
        "failed mail delivered",
        "failed pager delivered",
        "recovered hook delivered",
        "recovered mail delivered",
        "recovered pager delivered"
      ])
      const text = await c.cli(["alerts"])
      expect(text.stdout).toMatch(/no open incidents/)
      expect(text.stdout).toMatch(/recovered\s+web1\/flaky\s+hook\s+delivered\s+1/)

      // The same through the HTTP API.
      const api = await (await fetch(`http://127.0.0.1:${c.port}/v1/api/alerts?limit=50`)).json() as typeof shown & {
        deliveries: Array<{ state: string }>
      }
      expect(api.incidents).toEqual([])
      expect(api.deliveries.map((d) => d.state)).toEqual(Array(6).fill("delivered"))

      // barto-cli notify test: delivered, signed like the rest; an unknown channel says so.
      const before = hook.received.length
      const test = await c.cli(["notify", "test", "hook"])
      expect(test.code, test.stderr).toBe(0)
      expect(test.stdout).toMatch(/delivered to \[notify\.hook\]/)
      const received = hook.received.slice(before)
      expect(received.map((r) => (JSON.parse(r.body) as { kind: string }).kind)).toEqual(["test"])
      expect(referenceVerify(SECRET, received[0]!)).toBe(true)
      const unknown = await c.cli(["notify", "test", "nope"])
      expect(unknown.code).toBe(1)
      expect(unknown.stderr).toMatch(/no \[notify\.nope\] channel configured/)
    },
    240_000
  )

  it("kill -9 of bartos with notifications queued: delivered after the restart, once per event id", async () => {
    const hook = await startReceiver()
    closers.push(hook.close)
    hook.status = 503
    const c = await makeCluster(kind)
    clusters.push(c)
    const secretFile = c.file("hook.secret", SECRET)
    c.writeServerConfig({
      schedules: {
        web1: [{ name: "fails", on_calendar: "*-*-* *:*:*", cmds: ["exit 1"], alert: { to: ["hook"] } } as Schedule]
      },
      extra: {
        alerts: { reminder_interval: "1h" },
        notify: { hook: { type: "webhook", url: hook.url, secret_file: secretFile, backoff_max: "1s" } }
      }
    })
    const server = await c.startServer()
    await c.startAgent("web1")
    // The receiver refuses: the notification stays queued (at least one attempt made).
    await waitFor("a refused attempt", () => (hook.received.length >= 1 ? true : undefined), { timeoutMs: 60_000 })
    await server.kill9()
    hook.status = 200
    await c.startServer()
    await waitFor(
      "the delivery after the restart",
      () => (hook.received.some((r) => r.status === 200) ? true : undefined),
      {
        timeoutMs: 60_000
      }
    )
    await new Promise((r) => setTimeout(r, 2000))
    const ok = hook.received.filter((r) => r.status === 200)
    const ids = ok.map((r) => r.headers["x-barto-event-id"])
    expect(new Set(ids).size, c.diagnostics()).toBe(ids.length)
    expect(ids.length).toBe(1)
    for (const r of hook.received) expect(referenceVerify(SECRET, r)).toBe(true)
    // Every attempt carried the same event id and the same body.
    expect(new Set(hook.received.map((r) => r.body)).size).toBe(1)
    const rows = await c.db.all<{ state: string; attempts: number }>("SELECT state, attempts FROM alert_deliveries")
    expect(rows.length).toBe(1)
    expect(rows[0]!.state).toBe("delivered")
    // The refused attempt may have been recorded or not (the kill can fall before its update):
    // either way the receiver saw it, and the delivery was retried after the restart.
    expect(hook.received.length).toBeGreaterThanOrEqual(2)
    expect(hook.received[0]!.status).toBe(503)
  }, 240_000)

  it("a silent job is stalled within a second of stall_after; a stopped agent is late and agent_down", async () => {
    const c = await makeCluster(kind)
    clusters.push(c)
    c.writeServerConfig({
      schedules: {
        quiet: [
          {
            name: "hang",
            on_calendar: "*-*-* *:*:0/30",
            cmds: ["echo started; sleep 60"],
            stall_after: "2s"
          } as Schedule
        ],
        gone: [{ name: "tick", on_calendar: "*-*-* *:*:0/3", cmds: ["echo tick"], late_after: "1s" } as Schedule]
      },
      extra: { alerts: { agent_down_after: "2s" } }
    })
    await c.startServer()
    await c.startAgent("quiet")
    const gone = await c.startAgent("gone")
    // `run` needs the agent connected: retried until a run of `hang` exists.
    await waitFor("a run of quiet/hang", async () => {
      if ((await c.db.all("SELECT 1 FROM runs WHERE agent = 'quiet'")).length > 0) return true
      const r = await c.cli(["run", "quiet", "hang"])
      return r.code === 0 ? undefined : undefined
    }, { timeoutMs: 60_000, intervalMs: 500 })

    const stalled = await waitFor("stalled", async () => (await events(c, "stalled"))[0], { timeoutMs: 60_000 })
    const lastLine = await c.db.all<{ ts: number }>("SELECT MAX(ts) AS ts FROM output_lines WHERE run_id = ?", [
      stalled.run_id
    ])
    const silentSecs = (Number(stalled.at) - Number(lastLine[0]!.ts)) / 1e6
    expect(silentSecs, c.diagnostics()).toBeGreaterThanOrEqual(2)
    expect(silentSecs).toBeLessThan(3)

    // `gone` ran on time; stopped, its next occurrence is late and the agent down.
    await waitFor(
      "a run of gone",
      async () => ((await c.db.all("SELECT 1 FROM runs WHERE agent = 'gone'")).length > 0 ? true : undefined)
    )
    // Taken before the stop: bartos may see the session end before the process has exited.
    const stoppedAt = Date.now()
    await gone.stop()
    // (An occurrence before the agent first connected may be late too: it did not start either.)
    const occurrenceOf = (e: EventRow) => Date.parse((JSON.parse(e.detail) as { occurrence: string }).occurrence)
    const late = await waitFor(
      "late after the stop",
      async () => (await events(c, "late")).find((e) => e.agent === "gone" && occurrenceOf(e) > stoppedAt),
      { timeoutMs: 60_000 }
    )
    expect(late.agent).toBe("gone")
    expect(late.schedule).toBe("tick")
    // Detected at its time plus late_after (1 s), within the check interval and the commit.
    expect((Number(late.at) / 1000 - occurrenceOf(late)) / 1000).toBeGreaterThanOrEqual(1)
    // (Agents slower to start than agent_down_after were down at the start too: also true.)
    const down = await waitFor(
      "agent_down after the stop",
      async () => (await events(c, "agent_down")).find((e) => e.agent === "gone" && Number(e.at) / 1000 > stoppedAt),
      { timeoutMs: 60_000 }
    )
    expect((Number(down.at) / 1000 - stoppedAt) / 1000).toBeGreaterThanOrEqual(2)
    expect(down.schedule).toBeNull()
    // The agent comes back: agent_up closes its incident.
    await c.startAgent("gone")
    await waitFor(
      "agent_up",
      async () => (await events(c, "agent_up")).find((e) => e.agent === "gone" && Number(e.at) > Number(down.at)),
      { timeoutMs: 60_000 }
    )
  }, 240_000)

  it("/metrics: per-schedule series bounded with 10,000 schedules, behind metrics_token", async () => {
    const c = await makeCluster(kind)
    clusters.push(c)
    const schedules: Record<string, Array<Schedule>> = {
      live: [{ name: "fails", on_calendar: "*-*-* *:*:*", cmds: ["exit 2"], late_after: "1s" } as Schedule]
    }
    for (let a = 0; a < 9; a++) {
      schedules[`idle${a}`] = Array.from({ length: 1111 }, (_, i) => ({
        name: `s${i}`,
        on_calendar: "*-01-01 00:00:00",
        cmds: ["true"]
      }))
    }
    expect(Object.values(schedules).reduce((n, l) => n + l.length, 0)).toBe(10_000)
    c.writeServerConfig({ schedules, extra: { metrics_token: "scrape-me", limits: { metrics_max_schedules: 100 } } })
    await c.startServer()
    await c.startAgent("live")
    const scrape = async (token?: string) => {
      const res = await fetch(
        `http://127.0.0.1:${c.port}/metrics`,
        token ? { headers: { authorization: `Bearer ${token}` } } : {}
      )
      return { status: res.status, text: await res.text() }
    }
    expect((await scrape()).status).toBe(401)
    expect((await scrape("wrong")).status).toBe(401)
    const text = await waitFor("the live schedule's series", async () => {
      const r = await scrape("scrape-me")
      return /bartos_schedule_runs\{agent="live",schedule="fails",state="failed"\} [1-9]/.test(r.text)
        ? r.text
        : undefined
    }, { timeoutMs: 40_000, intervalMs: 500 })
    const series = text.split("\n").filter((l) => l !== "" && !l.startsWith("#"))
    const perSchedule = series.filter((l) => l.includes("schedule=\""))
    const schedulesSeen = new Set(
      perSchedule.map((l) => /agent="([^"]*)",.*schedule="([^"]*)"/.exec(l)!.slice(1).join("/"))
    )
    expect(schedulesSeen.size).toBeLessThanOrEqual(100)
    // 2 gauges, 7 final states, 3 event kinds per schedule at most.
    expect(perSchedule.length).toBeLessThanOrEqual(100 * 12)
    expect(series.length, `${series.length} series`).toBeLessThan(2000)
    expect(text).toMatch(/^bartos_schedules_omitted 9900$/m)
    expect(text).toMatch(/^bartos_agent_up\{agent="live"\} 1$/m)
    expect(text).toMatch(/^bartos_agent_up\{agent="idle0"\} 0$/m)
    expect(text).toMatch(/^bartos_alert_incidents_open 1$/m)
  }, 240_000)

  it(
    "heartbeats: barto-cli beat and a shell one-liner keep a silent job from stalling; the last beat is stored",
    async () => {
      const c = await makeCluster(kind)
      clusters.push(c)
      const beat = `${process.execPath} ${binPath("barto-cli")} beat`
      // Beats every second from the shell for 10 s, barto-cli's in the background meanwhile (its
      // start-up time must not count as silence on a loaded machine); stall_after is 6 s, so the
      // same job without beats would stall.
      const job = [
        "echo start",
        `(${beat} --progress 3/10 --status ok "from barto-cli" || echo "beat failed" >&2) &`,
        "for i in 1 2 3 4 5 6 7 8 9; do sleep 1; echo \"progress=$i/10 status=ok\" >&3; done",
        "wait",
        "sleep 1; echo \"progress=10/10 status=done finishing\" >&3",
        "sleep 0.5"
      ].join("\n")
      c.writeServerConfig({
        schedules: {
          hb: [{ name: "beats", on_calendar: "*-01-01 00:00:00", cmds: [job], stall_after: "6s" } as Schedule]
        }
      })
      await c.startServer()
      await c.startAgent("hb")
      await waitFor("a run of hb/beats", async () => {
        if ((await c.db.all("SELECT 1 FROM runs WHERE agent = 'hb'")).length > 0) return true
        await c.cli(["run", "hb", "beats"])
        return undefined
      }, { timeoutMs: 60_000, intervalMs: 500 })
      const run = await waitFor("the run to end", async () => {
        const rows = await c.db.all<{ state: string; heartbeat: string | null; run_id: string }>(
          "SELECT state, heartbeat, run_id FROM runs WHERE agent = 'hb'"
        )
        return rows[0]?.state !== "running" ? rows[0] : undefined
      }, { timeoutMs: 60_000 })
      expect(run.state, c.diagnostics()).toBe("succeeded")
      expect(JSON.parse(run.heartbeat!)).toMatchObject({ progress: "10/10", status: "done", message: "finishing" })
      const listed = await c.cliJson<Array<{ heartbeat?: { progress: string; status: string } }>>([
        "runs",
        "--agent",
        "hb"
      ])
      expect(listed[0]!.heartbeat).toMatchObject({ progress: "10/10", status: "done" })
      // barto-cli beat exited 0 (else "beat failed" would be output), and no beat became output.
      const output = await c.db.all<{ data: string }>("SELECT data FROM output_lines WHERE run_id = ?", [run.run_id])
      expect(output.map((l) => l.data)).toEqual(["start"])
      // Output only at the start, then beats for 10 s (longer than stall_after): never 6 s of silence.
      await new Promise((r) => setTimeout(r, 500))
      expect(await events(c, "stalled")).toEqual([])
      // Outside a job, beat says why it cannot work.
      const outside = await c.cli(["beat", "hello"])
      expect(outside.code).toBe(1)
      expect(outside.stderr).toMatch(/BARTO_HEARTBEAT is not set/)
    },
    240_000
  )
})
