/**
 * The frame codec (D6): one message per binary WebSocket frame. The default encoding is the JSON
 * form of the message Schema, as UTF-8 bytes. Handlers only see `Codec`, so another encoding can
 * be provided as a different Layer without touching them.
 *
 * Decoding never throws: oversized frames, bytes that are not JSON, JSON nested deeper than
 * `MAX_DEPTH`, unknown tags and messages that do not fit the Schema come back as a typed
 * `FrameError` naming the problem in a short message. Nothing of the peer's value is formatted
 * beyond a few dozen characters: a hostile frame can neither make the error text large nor the
 * formatting recurse (Schema's own formatters print the whole value, recursively).
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as CompiledParser from "./internal/compiledParser.js"

export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024

/**
 * Deepest nesting of arrays and objects a frame may have. Our messages need 5 (a CLI answer's
 * rows of lines); a peer's 500,000 nested arrays cost `JSON.parse` 7 times the CPU of a flat
 * frame of the same size, and Schema's error formatting recursed on them until the stack ran out.
 */
export const MAX_DEPTH = 32

export type FrameErrorCode = "frame_too_large" | "undecodable" | "unknown_tag"

export class FrameError extends Data.TaggedError("FrameError")<{
  readonly code: FrameErrorCode
  readonly message: string
  readonly size: number
}> {}

export interface Codec {
  readonly maxFrameBytes: number
  readonly encode: <A, I>(schema: Schema.Schema<A, I>, message: A) => Uint8Array
  readonly decode: <A, I>(schema: Schema.Schema<A, I>, frame: Uint8Array) => Either.Either<A, FrameError>
}

export const Codec = Context.GenericTag<Codec>("@barto/domain/Codec")

const utf8Decoder = new TextDecoder("utf-8", { fatal: true })
const utf8Encoder = new TextEncoder()

/**
 * The members of a tagged union by tag, so that "unknown tag" is told apart from "malformed", and
 * a malformed message is reported against its own member (a short error, not the whole union).
 */
const membersByTag = (schema: Schema.Schema<any, any>): ReadonlyMap<string, Schema.Schema<any, any>> | undefined => {
  const byTag = new Map<string, Schema.Schema<any, any>>()
  // Unions of unions (AgentToServer = AgentMessage | ProtocolError) are flattened.
  const visit = (member: SchemaAST.AST): boolean => {
    if (member._tag === "Union") return member.types.every(visit)
    const m = member._tag === "Transformation" ? member.to : member
    if (m._tag !== "TypeLiteral") return false
    const tag = m.propertySignatures.find((p) => p.name === "_tag")
    if (tag === undefined || tag.type._tag !== "Literal" || typeof tag.type.literal !== "string") return false
    byTag.set(tag.type.literal, Schema.make(member))
    return true
  }
  return visit(schema.ast) ? byTag : undefined
}

const tagCache = new WeakMap<object, ReadonlyMap<string, Schema.Schema<any, any>> | undefined>()
const tagsOf = (schema: Schema.Schema<any, any>) => {
  if (!tagCache.has(schema)) tagCache.set(schema, membersByTag(schema))
  return tagCache.get(schema)
}

/**
 * `Schema.encodeSync` / `Schema.decodeUnknownSync` of a schema (a tagged union goes member by
 * member) through the compiled parser, Schema deciding whatever that does not accept: the same
 * results and the same `ParseError`s, for hot paths that are not frames. bartoc's outbox stores
 * and reads back every record: under output-heavy jobs Schema's generic parser was ~15% of its CPU.
 */
export const fastEncodeSync = <A, I>(schema: Schema.Schema<A, I>): (value: A) => I =>
  fastSync(schema, "encode", Schema.encodeSync(schema))

/** See `fastEncodeSync`. */
export const fastDecodeUnknownSync = <A, I>(schema: Schema.Schema<A, I>): (input: unknown) => A =>
  fastSync(schema, "decode", Schema.decodeUnknownSync(schema))

const fastSync = <In, Out>(
  schema: Schema.Schema<any, any>,
  direction: CompiledParser.Direction,
  slow: (input: In) => Out
) =>
(input: In): Out => {
  const compiled = compiledFor(schema, input, direction)
  const out = compiled === undefined ? CompiledParser.FAIL : compiled(input)
  return out === CompiledParser.FAIL ? slow(input) : out as Out
}

const compiledFor = (schema: Schema.Schema<any, any>, value: unknown, direction: CompiledParser.Direction) => {
  const tags = tagsOf(schema)
  const tag = (value as { readonly _tag?: unknown } | null | undefined)?._tag
  const member = tags !== undefined && typeof tag === "string" ? tags.get(tag) : undefined
  return CompiledParser.compile(member ?? schema, direction)
}

export const makeJson = (options?: { readonly maxFrameBytes?: number }): Codec => {
  const maxFrameBytes = options?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
  return {
    maxFrameBytes,
    encode: (schema, message) => {
      // The message's own member, compiled when its shape allows (Ack, RecordBatch…); anything
      // else, and a message the compiled check does not accept, is encoded by Schema.
      const tags = tagsOf(schema as Schema.Schema<any, any>)
      const tag = (message as { readonly _tag?: unknown })?._tag
      const member = tags !== undefined && typeof tag === "string" ? tags.get(tag) : undefined
      const compiled = CompiledParser.compile(member ?? (schema as Schema.Schema<any, any>), "encode")
      if (compiled !== undefined) {
        const value = compiled(message)
        if (value !== CompiledParser.FAIL) return utf8Encoder.encode(JSON.stringify(value))
      }
      return utf8Encoder.encode(JSON.stringify(Schema.encodeSync(schema)(message)))
    },
    decode: <A, I>(schema: Schema.Schema<A, I>, frame: Uint8Array) => {
      const size = frame.byteLength
      if (size > maxFrameBytes) {
        return Either.left(
          new FrameError({
            code: "frame_too_large",
            message: `frame of ${size} bytes exceeds the limit of ${maxFrameBytes} bytes`,
            size
          })
        )
      }
      let text: string
      let json: unknown
      try {
        text = utf8Decoder.decode(frame)
      } catch {
        return Either.left(
          new FrameError({ code: "undecodable", message: "frame is not UTF-8 JSON: invalid UTF-8", size })
        )
      }
      if (!depthWithin(text, MAX_DEPTH)) {
        return Either.left(
          new FrameError({ code: "undecodable", message: `frame is nested deeper than ${MAX_DEPTH} levels`, size })
        )
      }
      try {
        json = JSON.parse(text)
      } catch (e) {
        return Either.left(
          new FrameError({
            code: "undecodable",
            message: `frame is not UTF-8 JSON: ${clipText(e instanceof Error ? e.message : String(e), 120)}`,
            size
          })
        )
      }
      const tags = tagsOf(schema as Schema.Schema<any, any>)
      let target: Schema.Schema<any, any> = schema as Schema.Schema<any, any>
      if (tags !== undefined) {
        const tag = typeof json === "object" && json !== null ? (json as { _tag?: unknown })._tag : undefined
        const member = typeof tag === "string" ? tags.get(tag) : undefined
        if (member === undefined) {
          return Either.left(
            new FrameError({
              code: "unknown_tag",
              message: typeof tag === "string" ? `unknown message tag '${tag.slice(0, 64)}'` : "message has no _tag",
              size
            })
          )
        }
        target = member
      }
      // The compiled decoder answers for valid messages of the shapes it covers; anything it does
      // not accept goes through Schema, which names the problem (see internal/compiledParser.ts).
      const compiled = CompiledParser.compile(target, "decode")
      if (compiled !== undefined) {
        const value = compiled(json)
        if (value !== CompiledParser.FAIL) return Either.right(value as A)
      }
      return (Schema.decodeUnknownEither(target)(json, { onExcessProperty: "ignore" }) as Either.Either<
        A,
        ParseResult.ParseError
      >).pipe(
        Either.mapLeft((error) =>
          new FrameError({
            code: "undecodable",
            message: describe(tags !== undefined ? (json as { _tag: string })._tag : undefined, error),
            size
          })
        )
      )
    }
  }
}

/**
 * Whether no array or object in `text` is nested deeper than `max`, checked before `JSON.parse`.
 * Only brackets outside strings count; strings are skipped with `indexOf` (a batch is mostly line
 * text), which costs about a quarter of the parse itself. Malformed JSON is left to the parser.
 */
const depthWithin = (text: string, max: number): boolean => {
  let depth = 0
  const n = text.length
  let i = 0
  while (i < n) {
    const c = text.charCodeAt(i)
    if (c === 34 /* " */) {
      let end = i + 1
      for (;;) {
        end = text.indexOf("\"", end)
        if (end < 0) return true
        let backslashes = 0
        while (text.charCodeAt(end - 1 - backslashes) === 92 /* \\ */) backslashes++
        if ((backslashes & 1) === 0) break
        end++
      }
      i = end + 1
      continue
    }
    if (c === 91 /* [ */ || c === 123 /* { */) {
      if (++depth > max) return false
    } else if (c === 93 /* ] */ || c === 125 /* } */) {
      depth--
    }
    i++
  }
  return true
}

const clipText = (s: string, max: number): string => (s.length <= max ? s : `${s.slice(0, max)}…`)

/** A short, non-recursive picture of a peer's value for an error message. */
const describeValue = (u: unknown): string => {
  switch (typeof u) {
    case "string":
      return JSON.stringify(clipText(u, 40))
    case "number":
    case "boolean":
    case "bigint":
      return clipText(String(u), 40)
    case "undefined":
      return "undefined"
    default:
      if (u === null) return "null"
      if (Array.isArray(u)) return `an array of ${u.length}`
      return "an object"
  }
}

/** `Expected <our type>`: from our own schemas, but a union of records prints kilobytes. */
const expected = (ast: SchemaAST.AST): string => {
  let text: string
  if (ast._tag === "Refinement") {
    text = Option.getOrElse(
      Option.orElse(
        SchemaAST.getDescriptionAnnotation(ast),
        () => Option.orElse(SchemaAST.getTitleAnnotation(ast), () => SchemaAST.getIdentifierAnnotation(ast))
      ),
      () => String(ast.from)
    )
  } else {
    text = String(ast)
  }
  return clipText(text, 120)
}

interface Leaf {
  readonly path: ReadonlyArray<PropertyKey>
  readonly message: string
}

/**
 * The first few leaf issues of a parse error with their paths, walked without recursion on the
 * peer's value: the tree itself follows our schemas (the decoder stops at the first mismatch), so
 * it is as deep as they are. Messages of our own filters are used as they are (clipped).
 */
const leaves = (
  issue: ParseResult.ParseIssue,
  limit: number
): { readonly found: Array<Leaf>; readonly more: boolean } => {
  const found: Array<Leaf> = []
  let more = false
  const stack: Array<{ readonly issue: ParseResult.ParseIssue; readonly path: ReadonlyArray<PropertyKey> }> = [{
    issue,
    path: []
  }]
  while (stack.length > 0) {
    const { issue: i, path } = stack.pop()!
    if (found.length >= limit) {
      more = true
      break
    }
    switch (i._tag) {
      case "Type":
        found.push({
          path,
          message: i.message !== undefined
            ? clipText(i.message, 200)
            : `Expected ${expected(i.ast)}, actual ${describeValue(i.actual)}`
        })
        break
      case "Missing":
        found.push({ path, message: "is missing" })
        break
      case "Unexpected":
        found.push({ path, message: "is unexpected" })
        break
      case "Forbidden":
        found.push({ path, message: "is forbidden" })
        break
      case "Pointer":
        stack.push({ issue: i.issue, path: path.concat(i.path) })
        break
      case "Refinement":
      case "Transformation":
        stack.push({ issue: i.issue, path })
        break
      case "Composite": {
        const inner = Array.isArray(i.issues) ? i.issues : [i.issues as ParseResult.ParseIssue]
        for (let k = inner.length - 1; k >= 0; k--) stack.push({ issue: inner[k]!, path })
        break
      }
    }
  }
  return { found, more: more || stack.length > 0 }
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/

/** `records[37].lineSeq` */
const renderPath = (path: ReadonlyArray<PropertyKey>): string => {
  let out = ""
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`
    else if (typeof key === "string" && IDENTIFIER.test(key)) out += out === "" ? key : `.${key}`
    else out += `[${JSON.stringify(clipText(String(key), 40))}]`
  }
  return out
}

/**
 * What is wrong and where, e.g. `RecordBatch: records[37].lineSeq: Expected Int, actual "x"`:
 * Schema's own formatters spell out the whole type first (kilobytes of union for a batch) and
 * print the peer's value in full, recursively; this names at most three places, each briefly.
 */
const describe = (tag: string | undefined, error: ParseResult.ParseError): string => {
  const { found, more } = leaves(error.issue, 3)
  const parts = found.map((leaf) => {
    const where = renderPath(leaf.path)
    return where === "" ? leaf.message : `${where}: ${leaf.message}`
  })
  if (more) parts.push("and more")
  const text = `${tag !== undefined ? `${clipText(tag, 64)}: ` : ""}${parts.join("; ")}`
  return clipText(text, 1000)
}

export const layerJson = (options?: { readonly maxFrameBytes?: number }): Layer.Layer<Codec> =>
  Layer.succeed(Codec, makeJson(options))
