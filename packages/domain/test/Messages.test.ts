import { assert, describe, it } from "@effect/vitest"
import { assertRight } from "@effect/vitest/utils"
import { Arbitrary, Either, FastCheck, Schema } from "effect"
import * as Codec from "../src/Codec.js"
import * as Messages from "../src/Messages.js"
import { type AnySchema, membersOf } from "./utils/members.js"

const codec = Codec.makeJson()

const LINKS = {
  AgentToServer: Messages.AgentToServer,
  ServerMessage: Messages.ServerMessage,
  CliToServer: Messages.CliToServer,
  ServerToCli: Messages.ServerToCli,
  AgentRecord: Messages.AgentRecord
} as const

/**
 * JSON carries neither NaN/±Infinity (they become null) nor lone surrogates (TextEncoder turns
 * them into U+FFFD). The protocol never produces either, so generated values with them are out
 * of the round-trip property's domain.
 */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
const jsonSafe = (u: unknown): boolean => {
  if (typeof u === "number") return Number.isFinite(u)
  if (typeof u === "string") return !LONE_SURROGATE.test(u)
  if (Array.isArray(u)) return u.every(jsonSafe)
  if (typeof u === "object" && u !== null) return Object.values(u).every(jsonSafe)
  return true
}

const utf8 = (s: string) => new TextEncoder().encode(s)

const codeOf = <A>(e: Either.Either<A, Codec.FrameError>): Codec.FrameErrorCode => {
  if (Either.isRight(e)) return assert.fail(`expected a FrameError, decoded ${JSON.stringify(e.right)}`)
  assert.strictEqual(e.left._tag, "FrameError")
  return e.left.code
}

describe("every message round-trips through the JSON codec", () => {
  for (const [link, linkSchema] of Object.entries(LINKS)) {
    const union = linkSchema as AnySchema
    for (const member of membersOf(union)) {
      it.prop(
        `${link}.${member.tag}`,
        [Arbitrary.make(member.schema).filter((m) => jsonSafe(Schema.encodeSync(member.schema)(m)))],
        ([message]) => {
          const frame = codec.encode(union, message)
          const decoded = codec.decode(union, frame)
          if (Either.isLeft(decoded)) return assert.fail(decoded.left.message)
          assert.strictEqual(decoded.right._tag, member.tag)
          // Compare the JSON of the encoded forms: class instances (ClientInfo, ScheduleSpec…)
          // compare by content, and an optional field given as `undefined` equals an absent one.
          const json = (m: unknown) => JSON.parse(JSON.stringify(Schema.encodeSync(union)(m)))
          assert.deepStrictEqual(json(decoded.right), json(message))
          assert.deepStrictEqual(codec.encode(union, decoded.right), frame)
        },
        { fastCheck: { numRuns: 25 } }
      )
    }
  }

  it("covers the tags we expect on each link", () => {
    const tags = (s: AnySchema) => membersOf(s).map((m) => m.tag).sort()
    assert.includeMembers(tags(Messages.AgentToServer), [
      "AgentHello",
      "AgentInfo",
      "Ping",
      "Pong",
      "RecordBatch",
      "CommandRejected",
      "ProtocolError"
    ])
    assert.includeMembers(tags(Messages.ServerMessage), [
      "ServerHello",
      "ScheduleTable",
      "Ack",
      "RunNow",
      "CancelRun",
      "AgentCleanup",
      "ProtocolError"
    ])
    assert.includeMembers(tags(Messages.CliToServer), ["CliHello", "InfoRequest", "TailRequest", "Ping"])
    assert.includeMembers(tags(Messages.ServerToCli), [
      "ServerHelloCli",
      "InfoResponse",
      "CliError",
      "TailChunk",
      "Pong"
    ])
    for (const link of Object.values(LINKS)) {
      const all = tags(link)
      assert.strictEqual(new Set(all).size, all.length, "tags are unique within a link")
    }
  })

  it("a hand-written message decodes to the expected value", () => {
    const frame = utf8(JSON.stringify({ _tag: "Ack", upTo: 41 }))
    assertRight(codec.decode(Messages.ServerMessage, frame), { _tag: "Ack" as const, upTo: 41 })
  })
})

describe("bad frames are typed FrameErrors, never exceptions", () => {
  const good = codec.encode(Messages.ServerMessage, { _tag: "Ack", upTo: 12345 })

  it.prop("random bytes", [FastCheck.uint8Array({ maxLength: 512 })], ([bytes]) => {
    for (const link of Object.values(LINKS)) {
      const code = codeOf(codec.decode(link as AnySchema, bytes))
      assert.oneOf(code, ["undecodable", "unknown_tag"])
    }
  })

  it.prop("random JSON values", [FastCheck.json({ maxDepth: 3 })], ([text]) => {
    for (const link of Object.values(LINKS)) {
      const code = codeOf(codec.decode(link as AnySchema, utf8(text)))
      assert.oneOf(code, ["undecodable", "unknown_tag"])
    }
  }, { fastCheck: { numRuns: 50 } })

  it.prop(
    "random objects carrying a real tag",
    [
      FastCheck.constantFrom(...membersOf(Messages.ServerMessage).map((m) => m.tag)),
      FastCheck.dictionary(FastCheck.string(), FastCheck.jsonValue(), { maxKeys: 4 })
    ],
    ([tag, fields]) => {
      const result = codec.decode(Messages.ServerMessage, utf8(JSON.stringify({ ...fields, _tag: tag })))
      // Either a valid message (the fields happened to fit) or a typed error: never a throw.
      if (Either.isLeft(result)) assert.strictEqual(result.left.code, "undecodable")
      else assert.strictEqual(result.right._tag, tag)
    },
    { fastCheck: { numRuns: 50 } }
  )

  it("every truncation of a valid frame", () => {
    for (let n = 0; n < good.byteLength; n++) {
      assert.strictEqual(
        codeOf(codec.decode(Messages.ServerMessage, good.subarray(0, n))),
        "undecodable",
        `length ${n}`
      )
    }
  })

  it("oversized frames, with the limit inclusive", () => {
    const small = Codec.makeJson({ maxFrameBytes: good.byteLength })
    assert.isTrue(Either.isRight(small.decode(Messages.ServerMessage, good)))
    const bigger = new Uint8Array(good.byteLength + 1)
    bigger.set(good)
    bigger[good.byteLength] = 0x20 // trailing space: still valid JSON, just one byte too many
    const e = small.decode(Messages.ServerMessage, bigger)
    assert.strictEqual(codeOf(e), "frame_too_large")
    if (Either.isLeft(e)) assert.strictEqual(e.left.size, good.byteLength + 1)
    assert.strictEqual(Codec.DEFAULT_MAX_FRAME_BYTES, 1024 * 1024)
    const huge = new Uint8Array(Codec.DEFAULT_MAX_FRAME_BYTES + 1).fill(0x20)
    assert.strictEqual(codeOf(codec.decode(Messages.ServerMessage, huge)), "frame_too_large")
  })

  it("unknown, missing and non-string tags", () => {
    const decode = (v: unknown) => codec.decode(Messages.ServerMessage, utf8(JSON.stringify(v)))
    const unknown = decode({ _tag: "LaunchMissiles" })
    assert.strictEqual(codeOf(unknown), "unknown_tag")
    if (Either.isLeft(unknown)) assert.include(unknown.left.message, "LaunchMissiles")
    assert.strictEqual(codeOf(decode({ upTo: 1 })), "unknown_tag")
    assert.strictEqual(codeOf(decode({ _tag: 7 })), "unknown_tag")
    assert.strictEqual(codeOf(decode([{ _tag: "Ack", upTo: 1 }])), "unknown_tag")
    assert.strictEqual(codeOf(decode(null)), "unknown_tag")
    const long = decode({ _tag: "x".repeat(10_000) })
    if (Either.isLeft(long)) assert.isBelow(long.left.message.length, 200)
  })

  it("a message of another link is an unknown tag here", () => {
    const hello = codec.encode(Messages.AgentToServer, {
      _tag: "AgentHello",
      protocol: Messages.PROTOCOL_VERSION,
      agentVersion: "1",
      capabilities: [],
      outboxId: "o",
      lastSeq: -1
    })
    assert.strictEqual(codeOf(codec.decode(Messages.ServerMessage, hello)), "unknown_tag")
  })

  it("a known tag with bad fields names the field", () => {
    const e = codec.decode(Messages.ServerMessage, utf8(JSON.stringify({ _tag: "Ack", upTo: "many" })))
    assert.strictEqual(codeOf(e), "undecodable")
    if (Either.isLeft(e)) assert.include(e.left.message, "upTo")
    const missing = codec.decode(Messages.ServerMessage, utf8(JSON.stringify({ _tag: "Ack" })))
    assert.strictEqual(codeOf(missing), "undecodable")
  })

  it("invalid UTF-8 is undecodable", () => {
    assert.strictEqual(
      codeOf(codec.decode(Messages.ServerMessage, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]))),
      "undecodable"
    )
  })

  it("extra fields from a newer peer are ignored", () => {
    const frame = utf8(JSON.stringify({ _tag: "Ack", upTo: 3, newField: true }))
    assertRight(codec.decode(Messages.ServerMessage, frame), { _tag: "Ack" as const, upTo: 3 })
  })
})

describe("Codec on unions of unions", () => {
  it("tells an unknown tag apart from a malformed member on AgentToServer and CliToServer", () => {
    const codec = Codec.makeJson()
    const bytes = (v: unknown) => new TextEncoder().encode(JSON.stringify(v))
    for (const schema of [Messages.AgentToServer, Messages.CliToServer]) {
      const unknown = codec.decode(schema as Schema.Schema<any, any>, bytes({ _tag: "Nope" }))
      assert.isTrue(Either.isLeft(unknown) && unknown.left.code === "unknown_tag")
      const malformed = codec.decode(schema as Schema.Schema<any, any>, bytes({ _tag: "Ping", id: "x", sentAt: 1 }))
      assert.isTrue(Either.isLeft(malformed) && malformed.left.code === "undecodable")
      assert.isTrue(Either.isLeft(malformed) && malformed.left.message.includes("Ping"))
    }
    const ok = codec.decode(Messages.AgentToServer, bytes({ _tag: "ProtocolError", code: "unexpected", message: "m" }))
    assert.isTrue(Either.isRight(ok))
  })
})

/**
 * The worst values a peer can put in any field (issue 11): deep nesting, numbers beyond any
 * column, huge strings, invalid UTF-8. Each must come back as a short typed error (or, where the
 * field is free-form text, a value), quickly, and never as an exception.
 */
describe("hostile values in every field of every message", () => {
  const PLACEHOLDER = "\u0000hostile\u0000"
  const HOSTILE: ReadonlyArray<{ readonly name: string; readonly json: string }> = [
    { name: "5,000 nested arrays", json: "[".repeat(5000) + "]".repeat(5000) },
    { name: "5,000 nested objects", json: "{\"a\":".repeat(5000) + "1" + "}".repeat(5000) },
    { name: "33 nested arrays", json: "[".repeat(33) + "]".repeat(33) },
    { name: "a 400-digit number", json: "9".repeat(400) },
    { name: "2^53 + 1", json: "9007199254740993" },
    { name: "2^31", json: "2147483648" },
    { name: "a 300 KB string", json: JSON.stringify("x".repeat(300_000)) },
    { name: "an array of 100,000 items", json: `[${Array.from({ length: 100_000 }, () => "1").join(",")}]` }
  ]

  /** One valid sample per member, as its encoded JSON object. */
  const samples = (link: AnySchema) =>
    membersOf(link).map((m) => {
      const value = FastCheck.sample(
        Arbitrary.make(m.schema).filter((v) => jsonSafe(Schema.encodeSync(m.schema)(v))),
        1
      )[0]
      return {
        tag: m.tag,
        encoded: JSON.parse(JSON.stringify(Schema.encodeSync(m.schema)(value))) as Record<string, unknown>
      }
    })

  /** Every path to a field of `value` (records inside a batch included), as property lists. */
  const fieldPaths = (value: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> => {
    if (typeof value !== "object" || value === null) return [prefix]
    const out: Array<Array<string | number>> = prefix.length > 0 ? [prefix] : []
    if (Array.isArray(value)) {
      if (value.length > 0) out.push(...fieldPaths(value[0], [...prefix, 0]))
      return out
    }
    for (const [k, v] of Object.entries(value)) if (k !== "_tag") out.push(...fieldPaths(v, [...prefix, k]))
    return out
  }

  const withHostile = (encoded: unknown, path: ReadonlyArray<string | number>, json: string): Uint8Array => {
    const copy = structuredClone(encoded) as Record<string | number, unknown>
    let at: Record<string | number, unknown> = copy
    for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>
    at[path[path.length - 1]!] = PLACEHOLDER
    return utf8(JSON.stringify(copy).replace(JSON.stringify(PLACEHOLDER), json))
  }

  for (const [name, link] of Object.entries(LINKS)) {
    it(`${name}: every field of every member`, () => {
      let frames = 0
      for (const { encoded, tag } of samples(link as AnySchema)) {
        // A batch carries one record of each kind, so every record field is reached.
        const base = tag === "RecordBatch"
          ? { ...encoded, records: samples(Messages.AgentRecord).map((s) => s.encoded) }
          : encoded
        const paths = tag === "RecordBatch"
          ? (base.records as Array<unknown>).flatMap((r, i) => fieldPaths(r, ["records", i]))
          : fieldPaths(base)
        for (const path of paths) {
          for (const hostile of HOSTILE) {
            const started = performance.now()
            const result = codec.decode(link as AnySchema, withHostile(base, path, hostile.json))
            const ms = performance.now() - started
            frames++
            assert.isBelow(ms, 500, `${tag}.${path.join(".")} = ${hostile.name} took ${ms} ms`)
            if (Either.isLeft(result)) {
              assert.oneOf(result.left.code, ["undecodable", "unknown_tag"])
              assert.isAtMost(result.left.message.length, 1000, `${tag}.${path.join(".")} = ${hostile.name}`)
            }
          }
        }
      }
      assert.isAbove(frames, 0)
    })
  }

  it("nesting beyond MAX_DEPTH is refused before parsing, and names the limit", () => {
    const deep = utf8(`{"_tag":"Ping","id":${"[".repeat(500_000)}${"]".repeat(500_000)},"sentAt":1}`)
    const started = performance.now()
    const e = codec.decode(Messages.AgentToServer, deep)
    assert.isBelow(performance.now() - started, 50, "rejected without parsing the frame")
    assert.strictEqual(codeOf(e), "undecodable")
    if (Either.isLeft(e)) assert.strictEqual(e.left.message, `frame is nested deeper than ${Codec.MAX_DEPTH} levels`)
    // Brackets inside strings (escaped quotes included) are text, not nesting.
    const text = codec.decode(
      Messages.AgentToServer,
      utf8(JSON.stringify({ _tag: "CommandRejected", requestId: "r\\\"", reason: "[".repeat(100) + "\"{" }))
    )
    assert.isTrue(Either.isRight(text))
  })

  it("invalid UTF-8 inside a string field is undecodable, with a short message", () => {
    const valid = utf8(JSON.stringify({ _tag: "CommandRejected", requestId: "r", reason: "ab" }))
    const at = valid.indexOf(0x61)
    const broken = valid.slice()
    broken[at] = 0xc3
    broken[at + 1] = 0x28
    const e = codec.decode(Messages.AgentToServer, broken)
    assert.strictEqual(codeOf(e), "undecodable")
    if (Either.isLeft(e)) assert.strictEqual(e.left.message, "frame is not UTF-8 JSON: invalid UTF-8")
  })
})

describe("records the database cannot hold are refused at decode", () => {
  const runId = "0190aaaa-0000-7000-8000-000000000000"
  const line = {
    _tag: "OutputLine",
    seq: 1,
    runId,
    cmdUuid: "c",
    lineSeq: 0,
    stream: "stdout",
    ts: 1,
    data: "x",
    continuation: false
  }
  const batch = (record: Record<string, unknown>) =>
    codec.decode(Messages.AgentToServer, utf8(JSON.stringify({ _tag: "RecordBatch", records: [record] })))
  const started = {
    _tag: "RunStarted",
    seq: 0,
    runId,
    schedule: "s",
    trigger: "schedule",
    scheduledAt: 1,
    startedAt: 1
  }
  const command = { _tag: "CommandStarted", seq: 0, runId, cmdUuid: "c", cmdIndex: 0, command: "true", startedAt: 1 }
  const exited = { _tag: "CommandExited", seq: 0, runId, cmdUuid: "c", exitCode: 0, signal: null, finishedAt: 1 }
  const missed = { _tag: "RunMissed", seq: 0, runId, schedule: "s", scheduledAt: 1, reason: "stall" }

  it("ids over 64 characters, names over 255, INT columns beyond 32 bits", () => {
    const refused: ReadonlyArray<readonly [string, Record<string, unknown>]> = [
      ["records[0].runId", { ...line, runId: "r".repeat(65) }],
      ["records[0].cmdUuid", { ...line, cmdUuid: "c".repeat(65) }],
      ["records[0].lineSeq", { ...line, lineSeq: 2 ** 31 }],
      ["records[0].lineSeq", { ...line, lineSeq: -(2 ** 31) - 1 }],
      ["records[0].schedule", { ...started, schedule: "s".repeat(256) }],
      ["records[0].cmdIndex", { ...command, cmdIndex: 2 ** 31 }],
      ["records[0].exitCode", { ...exited, exitCode: 2 ** 31 }],
      ["records[0].signal", { ...exited, exitCode: null, signal: "S".repeat(65) }],
      ["records[0].reason", { ...missed, reason: "r".repeat(256) }]
    ]
    for (const [path, record] of refused) {
      const e = batch(record)
      assert.strictEqual(codeOf(e), "undecodable", path)
      if (Either.isLeft(e)) assert.include(e.left.message, path)
    }
    const hello = {
      _tag: "AgentHello",
      protocol: 1,
      agentVersion: "1",
      capabilities: [],
      outboxId: "o".repeat(65),
      lastSeq: -1
    }
    assert.strictEqual(codeOf(codec.decode(Messages.AgentToServer, utf8(JSON.stringify(hello)))), "undecodable")
  })

  it("the limits themselves are accepted", () => {
    const accepted = [
      { ...line, runId: "r".repeat(64), cmdUuid: "c".repeat(64), lineSeq: 2 ** 31 - 1 },
      { ...started, schedule: "s".repeat(255) },
      { ...command, cmdIndex: 2 ** 31 - 1 },
      { ...exited, exitCode: -(2 ** 31) },
      { ...missed, reason: "r".repeat(255) }
    ]
    for (const record of accepted) assert.isTrue(Either.isRight(batch(record)), JSON.stringify(record).slice(0, 80))
  })

  it("lines of an OutputLines group are checked once expanded (lineSeq + i must fit)", () => {
    const group = {
      _tag: "OutputLines",
      seq: 1,
      runId,
      cmdUuid: "c",
      lineSeq: 2 ** 31 - 1,
      ts: [1, 1],
      flags: "00",
      data: ["a", "b"]
    }
    const e = batch(group)
    assert.strictEqual(codeOf(e), "undecodable")
    if (Either.isLeft(e)) assert.include(e.left.message, "lineSeq")
  })
})
