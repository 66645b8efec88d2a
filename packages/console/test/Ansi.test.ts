import { describe, expect, it } from "vitest"
import { parse, plainText, visible } from "../src/ansi.js"

describe("ansi: terminal output as safe text segments", () => {
  it("SGR colours and attributes become classes; reset and defaults end them", () => {
    expect(parse("\u001b[1;31merror\u001b[0m: \u001b[32mok\u001b[39m done")).toEqual([
      { text: "error", classes: "ansi-fg-1 ansi-bold" },
      { text: ": ", classes: "" },
      { text: "ok", classes: "ansi-fg-2" },
      { text: " done", classes: "" }
    ])
    expect(parse("\u001b[94;103mX")).toEqual([{ text: "X", classes: "ansi-fg-12 ansi-bg-11" }])
    expect(parse("\u001b[38;5;9mA\u001b[38;5;200mB\u001b[38;2;1;2;3mC")).toEqual([{
      text: "ABC",
      classes: "ansi-fg-9"
    }])
    expect(parse("\u001b[7mI")).toEqual([{ text: "I", classes: "ansi-fg-bg ansi-bg-fg" }])
  })

  it("other escape sequences and control characters are shown, never acted on", () => {
    expect(plainText("a\u001b[2Jb\u001b[10;5Hc")).toBe("a\u241b[2Jb\u241b[10;5Hc")
    expect(plainText("bell\u0007 cr\r lone\u001b")).toBe("bell\u2407 cr\u240d lone\u241b")
    expect(plainText("\u001b]0;title\u0007x")).toBe("\u241b]0;title\u2407x")
    expect(visible("tab\tkept\u009b")).toBe("tab\tkept\ufffd")
  })

  it("markup is plain text: nothing here can become an element", () => {
    const line = `<script>alert(1)</script><img src=x onerror=alert(2)>`
    expect(parse(line)).toEqual([{ text: line, classes: "" }])
    expect(parse(`\u001b[31m${line}`)).toEqual([{ text: line, classes: "ansi-fg-1" }])
  })

  it("never loses text: stripping the classes gives the input with controls made visible", () => {
    const samples = ["", "plain", "\u001b[", "\u001b[31", "\u001b[31m", "x\u001b[;;mY", "\u001b[999mZ", "\u001b[38;5m!"]
    // eslint-disable-next-line no-control-regex -- SGR sequences are what it removes
    for (const s of samples) expect(plainText(s)).toBe(visible(s.replace(/\u001b\[[\d;]*m/g, "")))
  })
})
