/**
 * Multi-row statements whose row count follows the data get their sizes from a small fixed set
 * (`steppedChunks`), so a line insert has a few statement texts to prepare and keep, not one per
 * batch size.
 */
import { describe, expect, it } from "@effect/vitest"
import { steppedChunks } from "../src/internal/store/common.js"

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

describe("steppedChunks", () => {
  it("keeps every item once, in order, at most max per part", () => {
    for (const n of [0, 1, 2, 31, 32, 33, 63, 500, 937, 999, 1000, 1001, 1999, 2000, 2531]) {
      const parts = steppedChunks(range(n), 1000, 32)
      expect(parts.flat()).toEqual(range(n))
      for (const p of parts) {
        expect(p.length).toBeGreaterThan(0)
        expect(p.length).toBeLessThanOrEqual(1000)
      }
    }
  })

  it("cuts 937 into 928, 8, 1 and 2,531 into 1,000, 1,000, 512, 16, 2, 1", () => {
    expect(steppedChunks(range(937), 1000, 32).map((p) => p.length)).toEqual([928, 8, 1])
    expect(steppedChunks(range(2531), 1000, 32).map((p) => p.length)).toEqual([1000, 1000, 512, 16, 2, 1])
  })

  it("uses at most max/step + log2(step) + 1 sizes over every batch size, and at most log2(step) + 1 parts below max", () => {
    for (const [max, step] of [[1000, 32], [500, 32]] as const) {
      const sizes = new Set<number>()
      for (let n = 1; n <= 3 * max; n++) {
        const parts = steppedChunks(range(n), max, step)
        for (const p of parts) sizes.add(p.length)
        if (n < max) expect(parts.length).toBeLessThanOrEqual(Math.log2(step) + 1)
      }
      expect(sizes.size).toBeLessThanOrEqual(Math.floor(max / step) + Math.log2(step) + 1)
      for (const s of sizes) expect(s === max || s % step === 0 || (s < step && (s & (s - 1)) === 0)).toBe(true)
    }
  })
})
