/**
 * The codec's compiled decoder (internal/compiledParser.ts) must agree with Schema: whatever it
 * accepts, Schema accepts with a deeply equal value; whatever else comes through the codec is
 * decoded (and explained) by Schema itself.
 */
import { assert, describe, it } from "@effect/vitest"
import { assertRight } from "@effect/vitest/utils"
import { Arbitrary, Either, FastCheck, Schema } from "effect"
import * as Codec from "../src/Codec.js"
import * as CompiledParser from "../src/internal/compiledParser.js"
import * as Messages from "../src/Messages.js"
import { type AnySchema, membersOf } from "./utils/members.js"

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

const LINKS: Record<string, AnySchema> = {
  AgentToServer: Messages.AgentToServer,
  ServerMessage: Messages.ServerMessage,
  CliToServer: Messages.CliToServer,
  ServerToCli: Messages.ServerToCli
}
const MEMBERS = Object.values(LINKS).flatMap(membersOf)
const COMPILED = MEMBERS.filter((m) =>
  CompiledParser.compile(m.schema, "decode") !== undefined && CompiledParser.compile(m.schema, "encode") !== undefined
)

const schemaDecode = (schema: AnySchema, u: unknown) =>
  Schema.decodeUnknownEither(schema)(u, { onExcessProperty: "ignore" })

/** Checks the one promise of a compiled decoder on input `u`. */
const agrees = (schema: AnySchema, u: unknown) => {
  const compiled = CompiledParser.compile(schema)!
  const fast = compiled(u)
  if (fast === CompiledParser.FAIL) return
  const slow = schemaDecode(schema, u)
  if (Either.isLeft(slow)) return assert.fail(`compiled accepted what Schema rejects: ${JSON.stringify(u)}`)
  assert.deepStrictEqual(fast, slow.right)
}

/** The JSON form of a valid message, as a peer would send it. */
const encoded = (schema: AnySchema) =>
  Arbitrary.make(schema).map((m) => JSON.parse(JSON.stringify(Schema.encodeSync(schema)(m))) as unknown)

/** Replaces, deletes or adds one value somewhere in a JSON tree (a copy). */
const mutate = (value: unknown, choice: number, replacement: unknown, extraKey: string): unknown => {
  const nodes: Array<{ parent: any; key: string | number }> = []
  const walk = (v: unknown, parent: any, key: string | number) => {
    nodes.push({ parent, key })
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, v, i))
    else if (typeof v === "object" && v !== null) { for (const [k, x] of Object.entries(v)) walk(x, v, k) }
  }
  const root = { value: structuredClone(value) }
  walk(root.value, root, "value")
  const { key, parent } = nodes[choice % nodes.length]
  switch (choice % 3) {
    case 0:
      parent[key] = replacement
      break
    case 1:
      if (Array.isArray(parent)) parent.splice(key as number, 1)
      else delete parent[key]
      break
    default: {
      const target = parent[key]
      if (typeof target === "object" && target !== null && !Array.isArray(target)) target[extraKey] = replacement
      else parent[key] = replacement
    }
  }
  return root.value
}

describe("compiled decoding agrees with Schema", () => {
  it("covers the hot messages", () => {
    const compiledTags = new Set(COMPILED.map((m) => m.tag))
    for (const tag of ["RecordBatch", "Ack", "Ping", "Pong", "AgentHello", "RunNow", "CancelRun", "ProtocolError"]) {
      assert.isTrue(compiledTags.has(tag), `${tag} is compiled`)
    }
    for (const member of membersOf(Messages.AgentRecord)) {
      assert.isDefined(CompiledParser.compile(member.schema), `${member.tag} is compiled`)
    }
    // Classes are transformations: left to Schema.
    assert.isUndefined(CompiledParser.compile(Messages.AgentInfo))
    assert.isUndefined(CompiledParser.compile(Messages.ScheduleTable))
  })

  for (const member of COMPILED) {
    it.prop(
      `${member.tag}: valid messages decode to Schema's value`,
      [encoded(member.schema)],
      ([u]) => {
        const fast = CompiledParser.compile(member.schema)!(u)
        assert.notStrictEqual(
          fast,
          CompiledParser.FAIL,
          `compiled rejected a valid ${member.tag}: ${JSON.stringify(u)}`
        )
        agrees(member.schema, u)
      },
      { fastCheck: { numRuns: 30 } }
    )

    it.prop(
      `${member.tag}: encoding gives Schema's encoded value, in the same key order`,
      [Arbitrary.make(member.schema)],
      ([m]) => {
        const fast = CompiledParser.compile(member.schema, "encode")!(m)
        assert.notStrictEqual(fast, CompiledParser.FAIL, `compiled rejected a valid ${member.tag}`)
        assert.strictEqual(JSON.stringify(fast), JSON.stringify(Schema.encodeSync(member.schema)(m)))
      },
      { fastCheck: { numRuns: 30 } }
    )

    it.prop(
      `${member.tag}: damaged messages are rejected or decoded as Schema does`,
      [
        encoded(member.schema),
        FastCheck.nat(),
        FastCheck.jsonValue({ maxDepth: 2 }),
        FastCheck.constantFrom("_tag", "seq", "extra", "__proto__", "records")
      ],
      ([u, choice, replacement, key]) => agrees(member.schema, mutate(u, choice, replacement, key)),
      { fastCheck: { numRuns: 60 } }
    )
  }

  it("edge values of the refinements and literals", () => {
    const line = {
      _tag: "OutputLine",
      seq: 0,
      runId: "r",
      cmdUuid: "c",
      lineSeq: -1,
      stream: "stderr",
      ts: 0,
      data: "",
      continuation: true
    }
    const batch = (records: Array<unknown>) => ({ _tag: "RecordBatch", records })
    const cases: Array<unknown> = [
      batch([]),
      batch([line]),
      batch([{ ...line, seq: -1 }]),
      batch([{ ...line, seq: 1.5 }]),
      batch([{ ...line, seq: 2 ** 53 }]),
      batch([{ ...line, seq: "1" }]),
      batch([{ ...line, ts: null }]),
      batch([{ ...line, stream: "stdin" }]),
      batch([{ ...line, continuation: 0 }]),
      batch([{ ...line, _tag: "RunStarted" }]),
      batch([{ ...line, _tag: "toString" }]),
      batch([{ ...line, extra: { deep: [1] } }]),
      batch([[line]]),
      batch([null]),
      { _tag: "RecordBatch", records: { 0: line, length: 1 } },
      { _tag: "RecordBatch" },
      {
        _tag: "RecordBatch",
        records: [{
          _tag: "CommandExited",
          seq: 1,
          runId: "r",
          cmdUuid: "c",
          exitCode: null,
          signal: "SIGKILL",
          finishedAt: 5
        }]
      },
      {
        _tag: "RecordBatch",
        records: [{
          _tag: "CommandExited",
          seq: 1,
          runId: "r",
          cmdUuid: "c",
          exitCode: 1.5,
          signal: null,
          finishedAt: 5
        }]
      },
      {
        _tag: "RecordBatch",
        records: [{ _tag: "CommandExited", seq: 1, runId: "r", cmdUuid: "c", signal: null, finishedAt: 5 }]
      }
    ]
    let accepted = 0
    for (const u of cases) {
      agrees(Messages.RecordBatch, u)
      if (CompiledParser.compile(Messages.RecordBatch)!(u) !== CompiledParser.FAIL) accepted++
    }
    // The empty batch, the plain line, the line with an excess key, the signalled exit.
    assert.strictEqual(accepted, 4)
  })

  it("the decoded value has only the declared keys and no shared structure with the input", () => {
    const input = { _tag: "Ack", upTo: 3, newField: { x: 1 } }
    const out = CompiledParser.compile(Messages.Ack)!(input)
    assert.deepStrictEqual(out, { _tag: "Ack", upTo: 3 })
    const batchInput = { _tag: "RecordBatch", records: [] as Array<unknown> }
    const batch = CompiledParser.compile(Messages.RecordBatch)!(batchInput) as { records: Array<unknown> }
    assert.notStrictEqual(batch.records, batchInput.records)
  })
})

describe("Codec with the compiled decoder", () => {
  const codec = Codec.makeJson()
  const utf8 = (v: unknown) => new TextEncoder().encode(JSON.stringify(v))
  const line = (seq: number) => ({
    _tag: "OutputLine",
    seq,
    runId: "r",
    cmdUuid: "c",
    lineSeq: seq,
    stream: "stdout",
    ts: 1,
    data: `line ${seq}`,
    continuation: false
  })

  it("a bad line deep in a batch is still named by Schema's message", () => {
    const records = Array.from({ length: 50 }, (_, i) => line(i))
    records[37] = { ...line(37), lineSeq: "x" as unknown as number }
    const decoded = codec.decode(Messages.AgentToServer, utf8({ _tag: "RecordBatch", records }))
    if (Either.isRight(decoded)) return assert.fail("a bad line was accepted")
    assert.strictEqual(decoded.left.code, "undecodable")
    assert.include(decoded.left.message, "RecordBatch: records[37].lineSeq: Expected")
    assert.include(decoded.left.message, `actual "x"`)
  })

  it("a good batch decodes to the records sent, without excess keys", () => {
    const records = Array.from({ length: 3 }, (_, i) => ({ ...line(i), debug: "x" }))
    const decoded = codec.decode(Messages.AgentToServer, utf8({ _tag: "RecordBatch", records }))
    if (Either.isLeft(decoded)) return assert.fail(decoded.left.message)
    assert.deepStrictEqual(
      decoded.right,
      { _tag: "RecordBatch", records: records.map(({ debug: _, ...r }) => r) } as unknown
    )
  })

  it("encoding a value that does not fit the Schema still throws Schema's error", () => {
    assert.throws(() => codec.encode(Messages.ServerMessage, { _tag: "Ack", upTo: 1.5 }), /upTo/)
    assert.throws(
      () => codec.encode(Messages.AgentToServer, { _tag: "RecordBatch", records: [{ ...line(0), seq: -1 }] } as any),
      /seq/
    )
  })

  it("messages that are not compiled still decode through Schema", () => {
    const info = {
      _tag: "AgentInfo",
      info: { osName: "Linux", hostname: "h", osVersion: "1", kernel: "6", agentVersion: "0.1" }
    }
    const decoded = codec.decode(Messages.AgentToServer, utf8(info))
    if (Either.isLeft(decoded)) return assert.fail(decoded.left.message)
    assert.strictEqual(decoded.right._tag, "AgentInfo")
    assert.instanceOf((decoded.right as typeof Messages.AgentInfo.Type).info, Messages.ClientInfo)
  })
})

describe("RecordBatch on the wire: runs of lines as OutputLines", () => {
  const codec = Codec.makeJson({ maxFrameBytes: 64 * 1024 * 1024 })
  const run = "0190a8f0-0000-7000-8000-000000000001" as Messages.RunId
  const out = (
    seq: number,
    lineSeq: number,
    extra: Partial<typeof Messages.OutputLine.Type> = {}
  ): Messages.AgentRecord => ({
    _tag: "OutputLine",
    seq,
    runId: run,
    cmdUuid: "c1",
    lineSeq,
    stream: "stdout",
    ts: (1_700_000_000_000_000 + seq) as Messages.Micros,
    data: `line ${lineSeq}`,
    continuation: false,
    ...extra
  })
  const wire = (records: ReadonlyArray<Messages.AgentRecord>) =>
    JSON.parse(new TextDecoder().decode(codec.encode(Messages.AgentToServer, { _tag: "RecordBatch", records }))) as {
      records: Array<{ _tag: string; seq: number; data?: Array<string>; flags?: string; ts?: Array<number> }>
    }
  const roundTrip = (records: ReadonlyArray<Messages.AgentRecord>) => {
    const decoded = codec.decode(
      Messages.AgentToServer,
      codec.encode(Messages.AgentToServer, { _tag: "RecordBatch", records })
    )
    if (Either.isLeft(decoded)) return assert.fail(decoded.left.message)
    assert.deepStrictEqual(decoded.right, { _tag: "RecordBatch", records } as unknown)
  }

  it("groups consecutive lines of a command, and splits where seq, lineSeq, command or kind break", () => {
    const started: Messages.AgentRecord = {
      _tag: "RunStarted",
      seq: 0,
      runId: run,
      schedule: "s",
      trigger: "manual",
      scheduledAt: 1 as Messages.Micros,
      startedAt: 1 as Messages.Micros
    }
    const records: Array<Messages.AgentRecord> = [
      started,
      out(1, 0),
      out(2, 1, { stream: "stderr" }),
      out(3, 2, { continuation: true }),
      out(4, 3, { stream: "stderr", continuation: true, ts: 5 as Messages.Micros }),
      out(6, 4), // seq gap
      out(7, 6), // lineSeq gap
      out(8, 7, { cmdUuid: "c2" }),
      { _tag: "RunFinished", seq: 9, runId: run, state: "succeeded", finishedAt: 2 as Messages.Micros },
      out(10, 8)
    ]
    const w = wire(records)
    assert.deepStrictEqual(w.records.map((r) => [r._tag, r.seq, r.data?.length ?? 1]), [
      ["RunStarted", 0, 1],
      ["OutputLines", 1, 4],
      ["OutputLines", 6, 1],
      ["OutputLines", 7, 1],
      ["OutputLines", 8, 1],
      ["RunFinished", 9, 1],
      ["OutputLines", 10, 1]
    ])
    assert.strictEqual(w.records[1].flags, "0123")
    // ts as differences: 1e15+2 - (1e15+1) = 1, then 1, then 5 - (1e15+3).
    assert.deepStrictEqual(w.records[1].ts, [1_700_000_000_000_001, 1, 1, 5 - 1_700_000_000_000_003])
    roundTrip(records)
  })

  it("a batch of 500 lines is under a third of the row form's bytes", () => {
    const records = Array.from(
      { length: 500 },
      (_, i) => out(i, i, { data: `line ${i}: the quick brown fox jumps over the lazy dog` })
    )
    const columnar = codec.encode(Messages.AgentToServer, { _tag: "RecordBatch", records }).byteLength
    const rows = new TextEncoder().encode(JSON.stringify({ _tag: "RecordBatch", records })).byteLength
    assert.isBelow(columnar * 3, rows)
    roundTrip(records)
  })

  it("the row form of earlier agents still decodes, mixed with OutputLines", () => {
    const rows = { _tag: "RecordBatch", records: [out(1, 0), out(2, 1)] }
    const decoded = codec.decode(Messages.AgentToServer, new TextEncoder().encode(JSON.stringify(rows)))
    assertRight(decoded as Either.Either<unknown, unknown>, rows)
    const mixed = { _tag: "RecordBatch", records: [out(1, 0), ...wire([out(2, 1), out(3, 2)]).records] }
    const both = codec.decode(Messages.AgentToServer, new TextEncoder().encode(JSON.stringify(mixed)))
    assertRight(both as Either.Either<unknown, unknown>, {
      _tag: "RecordBatch",
      records: [out(1, 0), out(2, 1), out(3, 2)]
    })
  })

  it("inconsistent OutputLines are undecodable, with a reason", () => {
    const group = wire([out(1, 0), out(2, 1)]).records[0]
    const bad = (patch: Record<string, unknown>) => {
      const frame = new TextEncoder().encode(JSON.stringify({ _tag: "RecordBatch", records: [{ ...group, ...patch }] }))
      const decoded = codec.decode(Messages.AgentToServer, frame)
      if (Either.isRight(decoded)) return assert.fail(`accepted ${JSON.stringify(patch)}`)
      assert.strictEqual(decoded.left.code, "undecodable")
      return decoded.left.message
    }
    assert.include(bad({ flags: "0" }), "2 lines need as many ts and flags")
    assert.include(bad({ flags: "04" }), "flags")
    assert.include(bad({ ts: [1] }), "2 lines need as many ts and flags")
    assert.include(bad({ data: [], ts: [], flags: "" }), "0 lines")
    assert.include(bad({ data: ["a", 1] }), "data[1]")
    // seq + 1 past the largest safe integer: the expanded line is not a valid OutputLine.
    assert.include(bad({ seq: Number.MAX_SAFE_INTEGER }), "seq")
    assert.include(bad({ ts: [Number.MAX_SAFE_INTEGER, 1] }), "ts")
  })

  it.prop(
    "random batches round-trip exactly through the codec",
    [
      FastCheck.array(
        FastCheck.oneof(
          { arbitrary: Arbitrary.make(Messages.OutputLine) as FastCheck.Arbitrary<Messages.AgentRecord>, weight: 4 },
          { arbitrary: Arbitrary.make(Messages.AgentRecord), weight: 1 }
        ),
        { maxLength: 30 }
      ),
      FastCheck.array(FastCheck.boolean(), { maxLength: 30 })
    ],
    ([records, runs]) => {
      // Turn some neighbours into runs of lines (same command, next seq and lineSeq) so that
      // groups of all sizes appear; the rest stay as generated.
      const shaped: Array<Messages.AgentRecord> = []
      records.forEach((r, i) => {
        const prev = shaped[i - 1]
        shaped.push(
          runs[i] === true && prev?._tag === "OutputLine" && r._tag === "OutputLine" && prev.seq < 2 ** 52 &&
            prev.lineSeq < 2 ** 30
            ? { ...r, runId: prev.runId, cmdUuid: prev.cmdUuid, seq: prev.seq + 1, lineSeq: prev.lineSeq + 1 }
            : r
        )
      })
      // TextEncoder turns lone surrogates into U+FFFD: outside the round trip's domain.
      const safe = shaped.filter((r) => !Object.values(r).some((v) => typeof v === "string" && LONE_SURROGATE.test(v)))
      roundTrip(safe)
    },
    { fastCheck: { numRuns: 100 } }
  )
})

describe("fastEncodeSync / fastDecodeUnknownSync (bartoc's outbox rows)", () => {
  const encodeFast = Codec.fastEncodeSync(Messages.AgentRecord)
  const decodeFast = Codec.fastDecodeUnknownSync(Messages.AgentRecord)
  const encodeSlow = Schema.encodeSync(Messages.AgentRecord)
  const decodeSlow = Schema.decodeUnknownSync(Messages.AgentRecord)

  it.prop("agree with Schema on every record, through JSON as the outbox stores it", [
    Arbitrary.make(Messages.AgentRecord)
  ], ([record]) => {
    const encoded = encodeFast(record)
    assert.deepStrictEqual(encoded, encodeSlow(record))
    const stored = JSON.parse(JSON.stringify(encoded)) as unknown
    assert.deepStrictEqual(decodeFast(stored), decodeSlow(stored))
  }, { fastCheck: { numRuns: 300 } })

  it("what Schema rejects throws Schema's own ParseError", () => {
    for (const bad of [null, 7, {}, { _tag: "Nope" }, { _tag: "OutputLine", seq: -1 }]) {
      let slow: unknown
      try {
        decodeSlow(bad)
      } catch (e) {
        slow = e
      }
      assert.throws(() => decodeFast(bad), String((slow as Error).message))
    }
  })
})
