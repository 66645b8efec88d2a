/**
 * The console's alerts page and heartbeats (issue 14) in real Chromium, and heartbeats in
 * `barto-cli tail`, against real bartos + bartoc processes: a failing job opens an incident whose
 * notifications go to a real webhook receiver (delivered) and to a command channel that fails
 * (retried, then failed, its error shown); a job that beats through `BARTO_HEARTBEAT` shows its
 * progress, status and message on the run page (live), in the dashboard's running runs, and on
 * tail's stderr (text) or as `heartbeat` events (--json), never among the output lines.
 *
 * SQLite only, as Console.e2e.test.ts: the API under the page is the same on both databases and
 * the alert store is tested on both in Alerts.e2e.test.ts. Waits are on conditions, never sleeps.
 */
import { writeFileSync } from "node:fs"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { join } from "node:path"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { type Browser, chromiumAvailable, chromiumPath, launch } from "./utils/browser.js"
import { type Cluster, makeCluster, type Schedule, waitFor } from "./utils/cluster.js"
import { killAll, type Proc, startProcess } from "./utils/procs.js"

if (!chromiumAvailable()) {
  throw new Error(`Chromium not found at ${chromiumPath()}: apt-get install -y chromium (or set BARTO_CHROMIUM)`)
}

interface IncidentRow {
  incident_id: string
  first_kind: string
  bad_events: number
}
interface DeliveryRow {
  delivery_id: string
  channel: string
  state: string
  attempts: number
  last_error: string | null
}

describe("console: alerts page and heartbeats", { timeout: 180_000 }, () => {
  let c: Cluster
  let browser: Browser
  let base: string
  let hook: Server
  const hookBodies: Array<string> = []
  const tails: Array<Proc> = []

  beforeAll(async () => {
    hook = createServer((req, res) => {
      let body = ""
      req.setEncoding("utf8")
      req.on("data", (chunk: string) => (body += chunk))
      req.on("end", () => {
        hookBodies.push(body)
        res.writeHead(200).end()
      })
    })
    await new Promise<void>((r) => hook.listen(0, "127.0.0.1", r))
    const hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`
    c = await makeCluster("sqlite")
    const gate = (name: string) => `while [ ! -f ${join(c.dir, name)} ]; do sleep 0.1; done`
    c.writeServerConfig({
      schedules: {
        web1: [
          {
            name: "boom",
            on_calendar: "*-*-* *:*:0/2",
            cmds: ["echo boom >&2; exit 3"],
            alert: { to: ["hook", "pager"] }
          } as Schedule,
          // Started by the test only. Beats, then waits for the test before the next beat and the end.
          {
            name: "beats",
            on_calendar: "*-01-01 00:00:00",
            cmds: [
              [
                "echo start",
                "echo \"progress=40/100 status=degraded disk slow\" >&3",
                gate("step2"),
                "echo \"progress=70/100 status=ok almost <b>there</b>\" >&3",
                gate("step3"),
                "echo done"
              ].join("\n")
            ]
          }
        ]
      },
      extra: {
        notify: {
          hook: { type: "webhook", url: hookUrl, secret: "s3cret", timeout: "5s" },
          // A pager that is down: two attempts, then given up.
          pager: { type: "command", command: ["sh", "-c", "echo pager down >&2; exit 7"], max_attempts: 2 }
        }
      }
    })
    await c.startServer()
    base = `http://127.0.0.1:${c.port}`
    browser = await launch()
  })

  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => console.log(c.diagnostics(), browser.problems.join("\n"), ...tails.map((t) => t.output())))
  })

  afterAll(async () => {
    await browser?.close()
    await c?.stop()
    await killAll()
    await new Promise<void>((r) => (hook ? hook.close(() => r()) : r()))
  })

  it("says so when there is nothing yet, then shows the incident, its events and deliveries", async () => {
    const page = await browser.page()
    // No agent has connected yet (agent_down comes only after 60 s): nothing to show.
    await page.goto(`${base}/`)
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Alerts" }).click()
    await page.waitForURL(/#\/alerts$/)
    expect(await page.getByRole("link", { name: "Alerts" }).getAttribute("aria-current")).toBe("page")
    await page.getByTestId("no-incidents").waitFor()
    await page.getByTestId("no-events").waitFor()
    await page.getByTestId("no-deliveries").waitFor()
    expect(await page.getByTestId("incident-count").textContent()).toBe("0")
    await browser.screenshot(page, "alerts-empty")

    await c.startAgent("web1")
    // The database first: the incident is open, the hook has its delivery, the pager gave up.
    const incident = await waitFor("an open incident of web1/boom", async () =>
      (await c.db.all<IncidentRow>(
        "SELECT incident_id, first_kind, bad_events FROM alert_incidents WHERE open_key IS NOT NULL"
      ))[0], { timeoutMs: 60_000 })
    const deliveries = await waitFor("the hook delivered and the pager given up", async () => {
      const rows = await c.db.all<DeliveryRow>(
        "SELECT delivery_id, channel, state, attempts, last_error FROM alert_deliveries"
      )
      const hookRow = rows.find((r) => r.channel === "hook" && r.state === "delivered")
      const pagerRow = rows.find((r) => r.channel === "pager" && r.state === "failed")
      return hookRow !== undefined && pagerRow !== undefined ? { hookRow, pagerRow } : undefined
    }, { timeoutMs: 60_000 })
    expect(incident.first_kind).toBe("failed")
    expect(hookBodies.length).toBeGreaterThanOrEqual(1)

    // The page refreshes itself: the same rows appear.
    const row = page.locator(`tr[data-incident="${incident.incident_id}"]`)
    await row.waitFor()
    expect(await row.locator("td").nth(0).textContent()).toBe("web1 / boomopen")
    expect(await row.locator("[data-kind]").textContent()).toBe("failed")
    // notified at once (after_failures = 1): a time, not "not notified"
    expect(await row.locator("td").nth(4).locator("time").count()).toBe(1)
    expect(await page.getByTestId("incident-count").textContent()).toBe("1")

    const failedEvent = page.locator("tr[data-event]", { hasText: "exit 3" }).first()
    await failedEvent.waitFor()
    expect(await failedEvent.locator("[data-kind]").textContent()).toBe("failed")
    expect(await failedEvent.textContent()).toContain("failed, exit 3")
    // the run link leads to the failed run
    const runHref = await failedEvent.locator("a.mono").getAttribute("href")
    expect(runHref).toMatch(/^#\/runs\//)

    const hookRow = page.locator(`tr[data-delivery="${deliveries.hookRow.delivery_id}"]`)
    await hookRow.locator(".delivery-delivered").waitFor()
    expect(await hookRow.locator("td").nth(5).textContent()).toBe(String(deliveries.hookRow.attempts))
    const pagerRow = page.locator(`tr[data-delivery="${deliveries.pagerRow.delivery_id}"]`)
    await pagerRow.locator(".delivery-failed").waitFor()
    expect(await pagerRow.locator("td").nth(5).textContent()).toBe("2")
    expect(await pagerRow.locator("td").nth(7).textContent()).toBe(deliveries.pagerRow.last_error)
    expect(deliveries.pagerRow.last_error).toContain("exit 7: pager down")
    await browser.screenshot(page, "alerts")

    await page.goto(`${base}/${runHref}`)
    await page.locator(".toolbar .state-failed").waitFor()
    expect(browser.problems).toEqual([])
    await page.close()
  })

  it("a beating job: its heartbeat on the run page (live), among running runs, and in barto-cli tail", async () => {
    const { runId } = await c.cliJson<{ runId: string }>(["run", "web1", "beats"])
    const cliConfig = c.file(
      "tail-cli.toml",
      `name = "e2e"\n[bartos]\nprefix = "ws"\nhost = "127.0.0.1"\nport = ${c.port}\n`
    )
    const page = await browser.page()
    await page.goto(`${base}/#/runs/${encodeURIComponent(runId)}`)
    const beat = page.locator("dl.facts [data-testid=heartbeat]")
    await beat.filter({ hasText: "40/100" }).waitFor()
    expect(await beat.locator(".beat-status").textContent()).toBe("degraded")
    expect(await beat.locator(".beat-message").textContent()).toBe("disk slow")
    expect(await beat.locator("progress").getAttribute("value")).toBe("40")
    expect(await beat.locator("progress").getAttribute("max")).toBe("100")
    expect(await beat.locator("time").count()).toBe(1)
    await browser.screenshot(page, "run-heartbeat")

    // Two tails follow the run from here: text and --json.
    const text = startProcess("barto-cli", ["-c", cliConfig, "tail", "-f", runId], { name: "tail-text" })
    const json = startProcess("barto-cli", ["-c", cliConfig, "tail", "-f", runId, "--json"], { name: "tail-json" })
    tails.push(text, json)
    // The run already beat: both show that beat as they start.
    await text.waitForLine(/^-- heartbeat 40\/100 degraded: disk slow$/)
    await json.waitForLine(/"event":"heartbeat"/)

    writeFileSync(join(c.dir, "step2"), "")
    // The next beat arrives live on the page (the SSE stream, no reload) and in both tails.
    await beat.filter({ hasText: "70/100" }).waitFor()
    expect(await beat.locator(".beat-status").textContent()).toBe("ok")
    // The job's words are text: shown as written, never markup.
    expect(await beat.locator(".beat-message").textContent()).toBe("almost <b>there</b>")
    expect(await beat.locator(".beat-message b").count()).toBe(0)
    await text.waitForLine(/^-- heartbeat 70\/100 ok: almost <b>there<\/b>$/)
    await json.waitForLine(/"progress":"70\/100"/)

    // The dashboard's running runs show it too.
    const dash = await browser.page()
    await dash.goto(`${base}/`)
    const running = dash.locator(`section[aria-labelledby="running-h"] tr[data-run="${runId}"]`)
    await running.locator("[data-testid=heartbeat]", { hasText: "70/100" }).waitFor()
    expect(await running.locator(".beat-status").textContent()).toBe("ok")
    await browser.screenshot(dash, "dashboard-heartbeat")
    await dash.close()

    writeFileSync(join(c.dir, "step3"), "")
    const [textExit, jsonExit] = await Promise.all([text.exited, json.exited])
    expect(textExit.code).toBe(0)
    expect(jsonExit.code).toBe(0)
    // Let the pipes drain before reading what the tails printed.
    await waitFor(
      "both tails' pipes closed",
      () => [text, json].every((p) => p.child.stdout!.closed && p.child.stderr!.closed) || undefined
    )

    // Text: the output lines alone on stdout, the beats on stderr, in order.
    const stdoutLines = text.stdout.filter((l) => l !== "")
    expect(stdoutLines.some((l) => l.includes("heartbeat"))).toBe(false)
    expect(stdoutLines[0]).toBe(`run ${runId} web1 beats running`)
    expect(stdoutLines.slice(1, 3).map((l) => l.replace(/^\S+Z\s+/, ""))).toEqual(["start", "done"])
    expect(text.stderr.filter((l) => l.startsWith("-- heartbeat"))).toEqual([
      "-- heartbeat 40/100 degraded: disk slow",
      "-- heartbeat 70/100 ok: almost <b>there</b>"
    ])

    // JSON: one NDJSON stream; heartbeats are their own events, the lines are only the job's output.
    const events = json.stdout.filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(events.filter((e) => e.event === "line").map((e) => e.data)).toEqual(["start", "done"])
    const beats = events.filter((e) => e.event === "heartbeat")
    expect(beats.map((b) => [b.runId, b.agent, b.schedule, b.progress, b.status, b.message])).toEqual([
      [runId, "web1", "beats", "40/100", "degraded", "disk slow"],
      [runId, "web1", "beats", "70/100", "ok", "almost <b>there</b>"]
    ])
    expect(typeof beats[0]!.at).toBe("string")
    expect(json.stderr.filter((l) => l.includes("heartbeat"))).toEqual([])

    // After the end the run page says it was the last one.
    await page.locator(".toolbar .state-succeeded").waitFor()
    await page.locator("dl.facts dt", { hasText: "Last heartbeat" }).waitFor()
    expect(browser.problems).toEqual([])
    await page.close()
  })
})
