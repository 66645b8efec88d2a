import { assert, describe, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Printable from "../src/Printable.js"

// eslint-disable-next-line no-control-regex
const TERMINAL_CONTROLS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/

describe("Printable", () => {
  it("escapeControls makes every control visible and keeps the text on one line", () => {
    assert.strictEqual(
      Printable.escapeControls("a\r\nb\tc\u001b[31md\u009b2Je\u009d0;x\u0007\u202eabc\u2066\u007f"),
      "a\\r\\nb\\tc\\x1b[31md\\x9b2Je\\x9d0;x\\x07\\u202eabc\\u2066\\x7f"
    )
    assert.strictEqual(Printable.escapeControls("plain ü 🎉"), "plain ü 🎉")
  })

  it("escapeControlsKeepLines keeps tab and newline only", () => {
    assert.strictEqual(Printable.escapeControlsKeepLines("a\n\tb\r\u001b"), "a\n\tb\\r\\x1b")
  })

  it("stripControls removes them", () => {
    assert.strictEqual(Printable.stripControls("a\u001b[2Jb\u202ec\u0085"), "a[2Jbc")
  })

  it.prop(
    "escapeJson keeps the JSON value and leaves no terminal control",
    [FastCheck.string({ unit: "binary" })],
    ([s]) => {
      const json = Printable.escapeJson(JSON.stringify({ s }))
      assert.notMatch(json, TERMINAL_CONTROLS)
      assert.strictEqual((JSON.parse(json) as { s: string }).s, s)
    }
  )

  it.prop("escapeControls leaves no terminal control", [FastCheck.string({ unit: "binary" })], ([s]) => {
    assert.notMatch(Printable.escapeControls(s), TERMINAL_CONTROLS)
    assert.notMatch(Printable.escapeControlsKeepLines(s).replace(/[\t\n]/g, ""), TERMINAL_CONTROLS)
  })
})
