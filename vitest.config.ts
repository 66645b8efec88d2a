import { defineConfig } from "vitest/config"

// One vitest run over every package. Files run in parallel across 2 workers; tests inside a file
// run sequentially (suites that share a database or spawn processes rely on that).
export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "bench/test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ["default", "./scripts/summary-reporter.ts"]
  }
})
