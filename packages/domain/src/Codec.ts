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
    encode: (schema, message) => utf8Encoder.encode(JSON.stringify(Schema.encodeSync(schema)(message))),
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
      return (Schema.decodeUnknownEither(target)(json, { onExcessProperty: "ignore" }) as Either.Either<A, ParseResult.ParseError>).pipe(
        Either.mapLeft((error) =>
          new FrameError({
            code: "undecodable",
            message: ParseResult.TreeFormatter.formatErrorSync(error).slice(0, 2000),
            size
          })
        )
      )
    }
  }
}

export const layerJson = (options?: { readonly maxFrameBytes?: number }): Layer.Layer<Codec> =>
  Layer.succeed(Codec, makeJson(options))
