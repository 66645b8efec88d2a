import { assert, describe, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import * as MallocTrim from "../src/internal/mallocTrim.js"

const addon = fileURLToPath(new URL("../dist/malloc_trim.node", import.meta.url))

// scripts/build.mjs (run before the tests) builds the addon wherever a C compiler and Node's headers
// are, which this project's machines and CI have: its absence here is a failure, not a skip.
describe("mallocTrim (bartoc's memory addon)", () => {
  it("loads the addon that scripts/build.mjs built", () => {
    assert.isTrue(existsSync(addon), `${addon} missing: did scripts/build.mjs warn about it?`)
    assert.isTrue(MallocTrim.available)
  })

  it("hands freed malloc memory back to the kernel", () => {
    // In a fresh node with --expose-gc: 64 KiB buffers land in the malloc heap (below glibc's mmap
    // threshold), one small buffer allocated after them keeps free() from trimming the heap's top,
    // so after a GC ~38 MiB are free but resident, until the trim.
    const script = `
      const addon = require(${JSON.stringify(addon)})
      const rss = () => Number(require("fs").readFileSync("/proc/self/status", "utf8").match(/^VmRSS:\\s+(\\d+)/m)[1])
      let chunks = Array.from({ length: 600 }, () => Buffer.allocUnsafeSlow(64 * 1024).fill(1))
      const pin = Buffer.allocUnsafeSlow(1024).fill(2)
      chunks = undefined
      gc(); gc()
      const before = rss()
      addon.mallocTrim()
      console.log(JSON.stringify({ before, after: rss(), pin: pin[0] }))`
    const out = execFileSync(process.execPath, ["--expose-gc", "-e", script], { encoding: "utf8" })
    const { after, before, pin } = JSON.parse(out) as { before: number; after: number; pin: number }
    assert.strictEqual(pin, 2)
    assert.isAtLeast(before - after, 20 * 1024, `RSS ${before} KiB before the trim, ${after} KiB after`)
  })

  it("reduceHeap starts a full GC that gives the old generation's empty pages back", () => {
    // In a fresh node: ~20 MiB of arrays that survive scavenges into old space, then dropped. No
    // full GC runs by itself within the wait; after reduceHeap one does (incrementally, on the event
    // loop) and old space shrinks.
    const script = `
      const addon = require(${JSON.stringify(addon)})
      const { getHeapSpaceStatistics } = require("v8")
      const { constants, PerformanceObserver } = require("perf_hooks")
      const old = () => getHeapSpaceStatistics().find((s) => s.space_name === "old_space").space_size
      let majors = 0
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++
      }).observe({ entryTypes: ["gc"] })
      let keep = []
      for (let i = 0; i < 200; i++) keep.push(Array.from({ length: 10000 }, (_, j) => ({ i, j })))
      setTimeout(() => {
        keep = undefined
        const before = old()
        const majorsBefore = majors
        addon.reduceHeap()
        setTimeout(() => console.log(JSON.stringify({ before, after: old(), majors: majors - majorsBefore })), 1500)
      }, 200)`
    const out = execFileSync(process.execPath, ["-e", script], { encoding: "utf8" })
    const { after, before, majors } = JSON.parse(out) as { before: number; after: number; majors: number }
    assert.isAtLeast(majors, 1)
    assert.isAtLeast(before - after, 10 * 1024 * 1024, `old space ${before} B before, ${after} B after`)
  })
})
