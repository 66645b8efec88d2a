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
    assert.includeMembers(tags(Messages.AgentToServer), ["AgentHello", "AgentInfo", "Ping", "Pong", "RecordBatch", "CommandRejected", "ProtocolError"])
    assert.includeMembers(tags(Messages.ServerMessage), ["ServerHello", "ScheduleTable", "Ack", "RunNow", "CancelRun", "AgentCleanup", "ProtocolError"])
    assert.includeMembers(tags(Messages.CliToServer), ["CliHello", "InfoRequest", "TailRequest", "Ping"])
    assert.includeMembers(tags(Messages.ServerToCli), ["ServerHelloCli", "InfoResponse", "CliError", "TailChunk", "Pong"])
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
    [FastCheck.constantFrom(...membersOf(Messages.ServerMessage).map((m) => m.tag)), FastCheck.dictionary(FastCheck.string(), FastCheck.jsonValue(), { maxKeys: 4 })],
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
      assert.strictEqual(codeOf(codec.decode(Messages.ServerMessage, good.subarray(0, n))), "undecodable", `length ${n}`)
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
    assert.strictEqual(codeOf(codec.decode(Messages.ServerMessage, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]))), "undecodable")
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
