import { describe, expect, it } from "vitest"
import { progressOf } from "../src/format.js"

describe("format: a heartbeat's progress", () => {
  it("DONE/TOTAL becomes a bar's value and max; anything else is shown as written only", () => {
    expect(progressOf("40/100")).toEqual({ value: 40, max: 100 })
    expect(progressOf(" 3 / 10 ")).toEqual({ value: 3, max: 10 })
    expect(progressOf("0/0")).toBeUndefined()
    expect(progressOf("11/10")).toBeUndefined()
    expect(progressOf("40%")).toBeUndefined()
    expect(progressOf(null)).toBeUndefined()
  })
})
