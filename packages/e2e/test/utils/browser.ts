/**
 * Real Chromium for the console tests: Debian's `chromium` package (`/usr/bin/chromium`, or
 * `BARTO_CHROMIUM`) driven by playwright-core, which never downloads a browser of its own. Each
 * browser gets a fresh profile directory, removed on close. Screenshots go to
 * packages/e2e/screenshots/ (git-ignored) for a person to look at.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type BrowserContext, chromium, type Page } from "playwright-core"
import { repoRoot } from "./procs.js"

export const chromiumPath = () => process.env.BARTO_CHROMIUM ?? "/usr/bin/chromium"

export const chromiumAvailable = () => existsSync(chromiumPath())

export const screenshotDir = join(repoRoot, "packages", "e2e", "screenshots")

export interface Browser {
  readonly context: BrowserContext
  /** A new tab; console errors (a CSP violation, an uncaught exception) are collected in `problems`. */
  readonly page: () => Promise<Page>
  readonly problems: Array<string>
  readonly screenshot: (page: Page, name: string) => Promise<string>
  readonly close: () => Promise<void>
}

export const launch = async (): Promise<Browser> => {
  const profile = mkdtempSync(join(tmpdir(), "barto-chromium-"))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync"
    ],
    viewport: { width: 1280, height: 900 },
    timezoneId: "Europe/Berlin"
  })
  context.setDefaultTimeout(20_000)
  const problems: Array<string> = []
  return {
    context,
    problems,
    page: async () => {
      const page = await context.newPage()
      page.on("console", (m) => {
        if (m.type() === "error") problems.push(m.text())
      })
      page.on("pageerror", (e) => problems.push(`page error: ${e.message}`))
      return page
    },
    screenshot: async (page, name) => {
      mkdirSync(screenshotDir, { recursive: true })
      const file = join(screenshotDir, `${name}.png`)
      await page.screenshot({ path: file, fullPage: true })
      return file
    },
    close: async () => {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
    }
  }
}
