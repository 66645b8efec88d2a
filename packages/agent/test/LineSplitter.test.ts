import * as LineSplitter from "@barto/agent/LineSplitter"
import { assert, describe, it } from "@effect/vitest"
import { FastCheck } from "effect"

const enc = new TextEncoder()
const bytes = (s: string) => enc.encode(s)
const data = (lines: ReadonlyArray<LineSplitter.Line>) => lines.map((l) => l.data)

/** Cuts `input` at the given (sorted, deduplicated) offsets. */
const chunkAt = (input: Uint8Array, cuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b)
  const out: Array<Uint8Array> = []
  let prev = 0
  for (const p of points) {
    out.push(input.subarray(prev, p))
    prev = p
  }
  out.push(input.subarray(prev))
  return out
}

/** The reference answer: split the whole input on LF, trim one CR, decode each line whole. */
const expectedLines = (input: Uint8Array): Array<string> => {
  const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true })
  const out: Array<string> = []
  let start = 0
  for (let i = 0; i < input.length; i++) {
    if (input[i] === 0x0a) {
      const end = i > start && input[i - 1] === 0x0d ? i - 1 : i
      out.push(decoder.decode(input.subarray(start, end)))
      start = i + 1
    }
  }
  if (start < input.length) out.push(decoder.decode(input.subarray(start)))
  return out
}

/** Glues continuation parts back onto their line. */
const joinParts = (lines: ReadonlyArray<LineSplitter.Line>): Array<string> => {
  const out: Array<string> = []
  for (const l of lines) {
    if (l.continuation) out[out.length - 1] += l.data
    else out.push(l.data)
  }
  return out
}

// Bytes biased towards the interesting ones: LF, CR, multibyte leads/continuations, invalid bytes.
const interestingByte = FastCheck.oneof(
  { weight: 4, arbitrary: FastCheck.integer({ min: 0x20, max: 0x7e }) },
  { weight: 2, arbitrary: FastCheck.constantFrom(0x0a, 0x0d) },
  { weight: 2, arbitrary: FastCheck.constantFrom(0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80) },
  { weight: 1, arbitrary: FastCheck.integer({ min: 0x80, max: 0xff }) }
)
const textWithEmoji = FastCheck.array(
  FastCheck.oneof(
    FastCheck.constantFrom("a", "b", "\n", "\r\n", "\r", "é", "€", "😀", "𝄞", ""),
    FastCheck.string({ maxLength: 5 })
  ),
  { maxLength: 60 }
).map((parts) => parts.join(""))
const input = FastCheck.oneof(
  FastCheck.uint8Array({ maxLength: 200 }),
  FastCheck.array(interestingByte, { maxLength: 200 }).map((a) => Uint8Array.from(a)),
  textWithEmoji.map(bytes)
)
const cuts = FastCheck.array(FastCheck.nat(), { maxLength: 12 })
const smallMax = FastCheck.integer({ min: 4, max: 12 })

describe("LineSplitter", () => {
  it.prop("any chunking of the same input yields the same lines", [input, cuts, smallMax], ([inp, cs, max]) => {
    const whole = LineSplitter.splitAll([inp], { maxLineBytes: max })
    const chunked = LineSplitter.splitAll(chunkAt(inp, cs), { maxLineBytes: max })
    assert.deepStrictEqual(chunked, whole)
    // and byte by byte, the most hostile chunking
    const single = LineSplitter.splitAll(Array.from(inp, (b) => Uint8Array.of(b)), { maxLineBytes: max })
    assert.deepStrictEqual(single, whole)
  })

  it.prop(
    "rejoining parts reproduces the input modulo CR trimming and U+FFFD",
    [input, cuts, smallMax],
    ([inp, cs, max]) => {
      const lines = LineSplitter.splitAll(chunkAt(inp, cs), { maxLineBytes: max })
      assert.deepStrictEqual(joinParts(lines), expectedLines(inp))
      // every part of valid text stays within the byte budget
      if (!data(lines).some((d) => d.includes("\uFFFD"))) {
        for (const l of lines) assert.isAtMost(Buffer.byteLength(l.data), max)
      }
    }
  )

  it.prop("no empty continuation parts", [input, smallMax], ([inp, max]) => {
    for (const l of LineSplitter.splitAll([inp], { maxLineBytes: max })) {
      if (l.continuation) assert.isAbove(l.data.length, 0)
    }
  })

  it("trims CR only before LF, also when the CR ends a chunk", () => {
    assert.deepStrictEqual(data(LineSplitter.splitAll([bytes("a\r\nb\r\n")])), ["a", "b"])
    assert.deepStrictEqual(data(LineSplitter.splitAll([bytes("a\r"), bytes("\nb")])), ["a", "b"])
    assert.deepStrictEqual(data(LineSplitter.splitAll([bytes("a\rb\n")])), ["a\rb"])
    // an unterminated last line keeps its CR, like the reference's reader
    assert.deepStrictEqual(data(LineSplitter.splitAll([bytes("a\r")])), ["a\r"])
    assert.deepStrictEqual(data(LineSplitter.splitAll([bytes("\r\n")])), [""])
  })

  it("keeps empty lines and the last partial line", () => {
    assert.deepStrictEqual(data(LineSplitter.splitAll([bytes("\n\na\n\nb")])), ["", "", "a", "", "b"])
    assert.deepStrictEqual(data(LineSplitter.splitAll([bytes("a\n")])), ["a"])
    assert.deepStrictEqual(data(LineSplitter.splitAll([])), [])
    assert.deepStrictEqual(data(LineSplitter.splitAll([new Uint8Array(0)])), [])
  })

  it("emits completed lines as soon as they are pushed", () => {
    const s = LineSplitter.make()
    assert.deepStrictEqual(data(s.push(bytes("one\ntw"))), ["one"])
    assert.deepStrictEqual(data(s.push(bytes("o\nthr"))), ["two"])
    assert.deepStrictEqual(data(s.end()), ["thr"])
    assert.deepStrictEqual(data(s.end()), [])
  })

  it("replaces invalid UTF-8 with U+FFFD and keeps going", () => {
    const inp = Uint8Array.from([0x61, 0xff, 0x62, 0x0a, 0xc3, 0x0a, 0xe2, 0x82, 0x0a, 0x63])
    assert.deepStrictEqual(data(LineSplitter.splitAll([inp])), ["a\uFFFDb", "\uFFFD", "\uFFFD", "c"])
  })

  it("keeps multibyte characters split across chunks intact", () => {
    const euro = bytes("€\n")
    const lines = LineSplitter.splitAll([euro.subarray(0, 1), euro.subarray(1, 2), euro.subarray(2)])
    assert.deepStrictEqual(data(lines), ["€"])
  })

  it("splits a 200 KiB line into 4 parts with continuation flags", () => {
    const line = "x".repeat(200 * 1024)
    const lines = LineSplitter.splitAll(chunkAt(bytes(line + "\nnext\n"), [1000, 70_000, 150_000]))
    assert.deepStrictEqual(lines.map((l) => [l.data.length, l.continuation]), [
      [65_536, false],
      [65_536, true],
      [65_536, true],
      [200 * 1024 - 3 * 65_536, true],
      [4, false]
    ])
    assert.strictEqual(lines.slice(0, 4).map((l) => l.data).join(""), line)
  })

  it("a line of exactly 64 KiB is one part; one byte more is two", () => {
    assert.deepStrictEqual(
      LineSplitter.splitAll([bytes("y".repeat(65_536) + "\r\n")]).map((l) => l.data.length),
      [65_536]
    )
    const two = LineSplitter.splitAll([bytes("y".repeat(65_537))])
    assert.deepStrictEqual(two.map((l) => [l.data.length, l.continuation]), [[65_536, false], [1, true]])
  })

  it("never cuts a multibyte character at the 64 KiB boundary", () => {
    // 65,535 ASCII bytes then a 4-byte emoji that straddles the boundary.
    const line = "z".repeat(65_535) + "😀" + "tail"
    const lines = LineSplitter.splitAll([bytes(line)])
    assert.deepStrictEqual(lines.map((l) => l.continuation), [false, true])
    assert.strictEqual(lines[0]!.data, "z".repeat(65_535))
    assert.strictEqual(lines[1]!.data, "😀tail")
    assert.notInclude(lines.map((l) => l.data).join(""), "\uFFFD")
    // a 3-byte character exactly ending at the boundary stays in the first part
    const exact = "z".repeat(65_533) + "€" + "more"
    const parts = LineSplitter.splitAll([bytes(exact)])
    assert.deepStrictEqual(parts.map((l) => l.data), ["z".repeat(65_533) + "€", "more"])
  })

  it("cutPoint only moves back for a well-formed lead byte", () => {
    // stray continuation bytes: cut at max
    assert.strictEqual(LineSplitter.cutPoint(Uint8Array.from([0x61, 0x80, 0x80, 0x80, 0x80, 0x80]), 4), 4)
    // 2-byte char at [3,4] straddles a cut at 4
    assert.strictEqual(LineSplitter.cutPoint(Uint8Array.from([0x61, 0x61, 0x61, 0xc3, 0xa9, 0x61]), 4), 3)
    // char ends before the cut
    assert.strictEqual(LineSplitter.cutPoint(Uint8Array.from([0x61, 0x61, 0xc3, 0xa9, 0x80, 0x61]), 4), 4)
  })
})
