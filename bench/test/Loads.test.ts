/**
 * `npm run bench` runs under plain Node with the tsx loader, not under vitest. A module the bench
 * imports that pulls in vitest (a test helper, say) throws at load time there and breaks every
 * suite at once, while every vitest test still passes. `--help` loads `run.ts` and, through its
 * static imports, every suite and every `lib/` module they use, then prints the suite list.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../..", import.meta.url))

describe("the bench outside vitest", () => {
  it("loads every suite under plain node and lists them", () => {
    const out = execFileSync(process.execPath, ["--import", "tsx", "bench/run.ts", "--help"], {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, VITEST: undefined, VITEST_WORKER_ID: undefined, VITEST_POOL_ID: undefined }
    })
    expect(out).toContain("usage: npm run bench")
    for (const suite of ["calendar", "dispatch", "ingest", "agents", "reconnect", "bartoc", "console", "history"]) {
      expect(out).toContain(suite)
    }
  }, 60_000)
})
