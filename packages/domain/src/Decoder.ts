/**
 * Decoding on hot paths: the parser compiled from a Schema's AST (`internal/compiledParser.ts`)
 * where the schema's shape allows, Schema itself otherwise. The result is the same either way
 * (the codec's tests cross-check the two); a value the compiled parser does not accept is decoded
 * by Schema, which names the problem.
 */
import * as Either from "effect/Either"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as CompiledParser from "./internal/compiledParser.js"

/** A decoder of `schema` from an unknown value, compiled once. */
export const make = <A, I>(
  schema: Schema.Schema<A, I>
): (input: unknown) => Either.Either<A, ParseResult.ParseError> => {
  const slow = Schema.decodeUnknownEither(schema)
  const fast = CompiledParser.compile(schema, "decode")
  if (fast === undefined) return slow
  return (input) => {
    const value = fast(input)
    return value === CompiledParser.FAIL ? slow(input) : Either.right(value as A)
  }
}

/** Whether `schema` decodes through the compiled parser (tests pin this for hot-path schemas). */
export const isCompiled = (schema: Schema.Schema<any, any>): boolean =>
  CompiledParser.compile(schema, "decode") !== undefined
