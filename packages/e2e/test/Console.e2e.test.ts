/**
 * The web console in real Chromium against real bartos + bartoc processes: the dashboard sees the
 * agent online, a run's lines arrive live, pause/resume and run now act on the real schedule
 * table, hostile output renders inert, and with keys configured the console asks for a login.
 * Every wait is on a condition (Playwright's auto-waiting locators, `waitFor` on the database),
 * never a fixed sleep. One screenshot per scenario goes to packages/e2e/screenshots/.
 *
 * Runs on SQLite only: the API under the console is tested on both databases in
 * packages/server/test/Web.test.ts, and each browser scenario costs seconds of a 2-core CI.
 */
import { readFileSync } from "node:fs"
import type { Page } from "playwright-core"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { type Browser, chromiumAvailable, chromiumPath, launch } from "./utils/browser.js"
import { type Cluster, makeCluster, waitFor } from "./utils/cluster.js"
import { killAll } from "./utils/procs.js"

if (!chromiumAvailable()) {
  // CI installs it (.ci/run); a developer machine without it fails loudly instead of skipping.
  throw new Error(`Chromium not found at ${chromiumPath()}: apt-get install -y chromium (or set BARTO_CHROMIUM)`)
}

/** Clicks an action button and confirms it in its dialog. */
const confirmAction = async (page: Page, label: string) => {
  await page.getByRole("button", { name: label }).click()
  await page.getByRole("dialog").getByRole("button", { name: label }).click()
}

const XSS_LINE = `<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">`
const XSS_AGENT = `<img src=x onerror="window.__xss = 3">`
const XSS_SCHEDULE = `<script>window.__xss = 4</script>`

describe("web console (no keys: read for all, admin from loopback)", { timeout: 120_000 }, () => {
  let c: Cluster
  let browser: Browser
  let base: string

  beforeAll(async () => {
    c = await makeCluster("sqlite", {
      schedules: {
        a: [
          { name: "tick", on_calendar: "*-*-* *:*:0/2", cmds: ["echo tick"] },
          // Started by "run now" only (the calendar fires once a year): prints for ~3 s.
          {
            name: "slow",
            on_calendar: "*-01-01 00:00:00",
            cmds: ["for i in 1 2 3 4 5 6 7 8 9 10; do echo \"line $i\"; sleep 0.3; done"]
          },
          {
            name: "xss",
            on_calendar: "*-01-01 00:00:00",
            cmds: [`printf '%s\\n' '${XSS_LINE}'; printf '\\033[31mred\\033[0m plain\\n'; echo oops >&2`]
          },
          { name: XSS_SCHEDULE, on_calendar: "*-01-01 00:00:00", cmds: ["true"] }
        ],
        // configured, never connected: listed offline under its hostile name
        [XSS_AGENT]: [{ name: "idle", on_calendar: "*-01-01 00:00:00", cmds: ["true"] }]
      }
    })
    await c.startServer()
    await c.startAgent("a")
    await c.waitForLog("a", /accepted agent 'a'|connected/i, 30_000).catch(() => undefined)
    base = `http://127.0.0.1:${c.port}`
    browser = await launch()
  })

  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => console.log(c.diagnostics(), browser.problems.join("\n")))
  })

  afterAll(async () => {
    await browser?.close()
    await c?.stop()
    await killAll()
  })

  it("the dashboard shows the agent online and its schedules with their recent results", async () => {
    const page = await browser.page()
    await page.goto(`${base}/`)
    await page.locator("tr[data-agent=\"a\"] .badge.online").waitFor()
    await page.locator("tr[data-schedule=\"a/tick\"]").waitFor()
    // the strip fills as tick runs every 2 s (the dashboard refreshes itself)
    await page.locator("tr[data-schedule=\"a/tick\"] .strip .tick.state-succeeded").first().waitFor()
    expect(await page.getByTestId("role").textContent()).toBe("admin")
    expect(await page.locator(".notice").textContent()).toContain("loopback only")
    // times in the browser's zone (Europe/Berlin here), UTC on hover
    const time = page.locator("tr[data-agent=\"a\"] time")
    const iso = (await time.getAttribute("datetime"))!
    const berlin = new Intl.DateTimeFormat("sv-SE", {
      timeZone: "Europe/Berlin",
      dateStyle: "short",
      timeStyle: "medium"
    })
      .format(new Date(iso))
    expect(await time.textContent()).toBe(berlin)
    expect(await time.getAttribute("title")).toBe(`${iso.replace(".000Z", "Z")} (UTC)`)
    await browser.screenshot(page, "dashboard")
    await page.close()
  })

  it("run now follows the new run, whose lines arrive live until it succeeds", async () => {
    const page = await browser.page()
    await page.goto(`${base}/#/schedules/a/slow`)
    await confirmAction(page, "Run now")
    await page.waitForURL(/#\/runs\//)
    const runId = decodeURIComponent(page.url().split("#/runs/")[1]!)
    // The first line is on the page while the run is still running: it streamed in, live.
    await page.locator(".output .line", { hasText: "line 1" }).first().waitFor()
    const shownWhileRunning = await page.locator(".output .line").count()
    const stateThen = await c.db.all<{ state: string }>(`SELECT state FROM runs WHERE run_id = ?`, [runId])
    expect(shownWhileRunning).toBeLessThan(10)
    expect(stateThen[0]?.state).toBe("running")
    await browser.screenshot(page, "run-live")
    await page.locator(".output .line", { hasText: "line 10" }).waitFor()
    await page.getByTestId("live-state").filter({ hasText: "complete" }).waitFor()
    await page.locator(".toolbar .state-succeeded").waitFor()
    expect(await page.locator(".output .line").count()).toBe(10)
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Download output" }).click()
    ])
    const text = readFileSync((await download.path())!, "utf8")
    expect(text).toBe(Array.from({ length: 10 }, (_, i) => `line ${i + 1}`).join("\n") + "\n")
    // the new run is the schedule's latest on its page, as in the database
    await page.goto(`${base}/#/schedules/a/slow`)
    await page.locator(`tr[data-run="${runId}"] .state-succeeded`).waitFor()
    const stored = await c.db.all<{ state: string; run_trigger: string }>(
      `SELECT state, run_trigger FROM runs WHERE run_id = ?`,
      [runId]
    )
    expect(stored).toEqual([{ state: "succeeded", run_trigger: "manual" }])
    await browser.screenshot(page, "schedule")
    await page.close()
  })

  it("pause and resume change the live schedule table", async () => {
    const page = await browser.page()
    await page.goto(`${base}/#/schedules/a/tick`)
    await confirmAction(page, "Pause")
    await page.locator(".toolbar .badge.paused").waitFor()
    const paused = await c.cliJson<Array<{ name: string; paused: boolean }>>(["schedules", "a"])
    expect(paused.find((s) => s.name === "tick")?.paused).toBe(true)
    await browser.screenshot(page, "paused")
    await confirmAction(page, "Resume")
    await page.locator(".toolbar .badge.paused").waitFor({ state: "detached" })
    const resumed = await c.cliJson<Array<{ name: string; paused: boolean }>>(["schedules", "a"])
    expect(resumed.find((s) => s.name === "tick")?.paused).toBe(false)
    await page.close()
  })

  it("hostile output is shown as text: no script runs, colours become classes, stderr is marked", async () => {
    const page = await browser.page()
    await page.goto(`${base}/#/schedules/a/xss`)
    await confirmAction(page, "Run now")
    await page.waitForURL(/#\/runs\//)
    await page.getByTestId("live-state").filter({ hasText: "complete" }).waitFor()
    const first = page.locator(".output .line").first()
    expect(await first.locator(".text").textContent()).toBe(XSS_LINE)
    expect(await page.locator(".output script, .output img").count()).toBe(0)
    expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined()
    const red = page.locator(".output .ansi-fg-1")
    expect(await red.textContent()).toBe("red")
    expect(await page.locator(".output .line.stderr .text").textContent()).toContain("oops")
    // the search box narrows the output to matching lines
    await page.getByLabel("Search in output").fill("oops")
    await page.getByText("1 matching lines").waitFor()
    await browser.screenshot(page, "xss-inert")
    // hostile agent and schedule names are text on the dashboard too
    await page.goto(`${base}/`)
    await page.getByRole("link", { name: XSS_AGENT, exact: true }).first().waitFor()
    await page.getByRole("link", { name: XSS_SCHEDULE, exact: true }).waitFor()
    expect(await page.locator("main img, main script").count()).toBe(0)
    expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined()
    expect(browser.problems.filter((p) => /Content Security Policy|page error/i.test(p))).toEqual([])
    await page.close()
  })

  it("the calendar playground normalises, lists occurrences and points at errors; dark mode follows the system", async () => {
    const page = await browser.page()
    await page.goto(`${base}/#/calendar`)
    const input = page.getByLabel("Expression", { exact: true })
    await input.fill("mon..fri *-*-* 9:00")
    await page.getByTestId("normalized").filter({ hasText: "Mon..Fri *-*-* 09:00:00" }).waitFor()
    await input.fill("*-*-* 25:00:00")
    await page.getByRole("alert").filter({ hasText: "invalid hour '25' at position 6" }).waitFor()
    await browser.screenshot(page, "calendar")
    await page.emulateMedia({ colorScheme: "dark" })
    await page.goto(`${base}/#/failures`)
    await page.getByRole("heading", { name: "Failures" }).waitFor()
    const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor)
    expect(background).toBe("rgb(15, 23, 42)")
    await browser.screenshot(page, "failures-dark")
    await page.close()
  })
})

describe("web console with keys", { timeout: 120_000 }, () => {
  let c: Cluster
  let browser: Browser

  beforeAll(async () => {
    c = await makeCluster("sqlite", {
      schedules: { k: [{ name: "tick", on_calendar: "*-*-* *:*:0/2", cmds: ["echo tick"] }] },
      server: { api_key: "read-key-123", admin_key: "admin-key-456" }
    })
    await c.startServer()
    await c.startAgent("k", { bartos: { api_key: "read-key-123" } })
    browser = await launch()
  })

  afterAll(async () => {
    await browser?.close()
    await c?.stop()
    await killAll()
  })

  it("asks for a key, refuses a wrong one, and the admin key can pause", async () => {
    const page = await browser.page()
    await page.goto(`http://127.0.0.1:${c.port}/`)
    const key = page.getByLabel(/Key/)
    await key.fill("not-the-key")
    await page.getByRole("button", { name: "Log in" }).click()
    await page.getByRole("alert").filter({ hasText: "wrong key" }).waitFor()
    await browser.screenshot(page, "login")
    await key.fill("admin-key-456")
    await page.getByRole("button", { name: "Log in" }).click()
    await page.locator("tr[data-agent=\"k\"] .badge.online").waitFor()
    expect(await page.getByTestId("role").textContent()).toBe("admin")
    // The session cookie is HttpOnly: the page's script cannot read it.
    expect(await page.evaluate(() => document.cookie)).toBe("")
    await page.goto(`http://127.0.0.1:${c.port}/#/schedules/k/tick`)
    await confirmAction(page, "Pause")
    await page.locator(".toolbar .badge.paused").waitFor()
    await waitFor(
      "the pause in the database",
      async () =>
        (await c.db.all(`SELECT 1 FROM paused_schedules WHERE agent = 'k' AND schedule = 'tick'`)).length === 1 ||
        undefined
    )
    await page.getByRole("button", { name: "Log out" }).click()
    await page.getByLabel(/Key/).waitFor()
    await page.close()
  })
})
