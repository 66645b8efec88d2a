/**
 * The frame codec (D6): one message per binary WebSocket frame. The default encoding is the JSON
 * form of the message Schema, as UTF-8 bytes. Handlers only see `Codec`, so another encoding can
 * be provided as a different Layer without touching them.
 *
 * Decoding never throws: oversized frames, bytes that are not JSON, unknown tags and messages that
 * do not fit the Schema come back as a typed `FrameError` naming the problem.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as SchemaAST from "effect/SchemaAST"
import * as CompiledParser from "./internal/compiledParser.js"

export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024

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
      let json: unknown
      try {
        json = JSON.parse(utf8Decoder.decode(frame))
      } catch (e) {
        return Either.left(
          new FrameError({ code: "undecodable", message: `frame is not UTF-8 JSON: ${String(e)}`, size })
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
      return (Schema.decodeUnknownEither(target)(json, { onExcessProperty: "ignore" }) as Either.Either<A, ParseResult.ParseError>).pipe(
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

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/

/** `records[37].lineSeq` */
const renderPath = (path: ReadonlyArray<PropertyKey>): string => {
  let out = ""
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`
    else if (typeof key === "string" && IDENTIFIER.test(key)) out += out === "" ? key : `.${key}`
    else out += `[${JSON.stringify(String(key))}]`
  }
  return out
}

/**
 * What is wrong and where, e.g. `RecordBatch: records[37].lineSeq: Expected Int, actual "x"`:
 * Schema's tree form spells out the whole type first, which for a batch is kilobytes of union
 * before the path to the bad field.
 */
const describe = (tag: string | undefined, error: ParseResult.ParseError): string => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  if (issues.length === 0) return ParseResult.TreeFormatter.formatErrorSync(error).slice(0, 2000)
  const parts = issues.slice(0, 3).map((issue) => {
    const where = renderPath(issue.path)
    const what = issue.message.length > 400 ? `${issue.message.slice(0, 400)}…` : issue.message
    return where === "" ? what : `${where}: ${what}`
  })
  if (issues.length > 3) parts.push(`and ${issues.length - 3} more`)
  const text = `${tag !== undefined ? `${tag.slice(0, 64)}: ` : ""}${parts.join("; ")}`
  return text.slice(0, 2000)
}

export const layerJson = (options?: { readonly maxFrameBytes?: number }): Layer.Layer<Codec> =>
  Layer.succeed(Codec, makeJson(options))
