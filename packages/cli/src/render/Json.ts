/**
 * The `--json` forms of every response (documented in packages/cli/README.md; keep them stable).
 *
 * Each shape is derived from the response's Schema, not written by hand: the fields in Schema
 * order, every `Micros` instant as an RFC 3339 string in the output zone, an absent optional field
 * as `null`, and the envelope (`_tag`, `id`, `more`) left out. A field added to a row Schema thus
 * appears in `--json` without touching this file.
 */
import * as Messages from "@barto/domain/Messages"
import * as Printable from "@barto/domain/Printable"
import type * as Schema from "effect/Schema"
import * as AST from "effect/SchemaAST"
import { formatMicros } from "./Time.js"

// JSON.stringify escapes C0 but leaves DEL, C1 and bidi controls raw: `Printable.escapeJson`.
export const json = (value: unknown): string => Printable.escapeJson(JSON.stringify(value, null, 2))
/** One line of NDJSON (streams: `tail`, `run --wait`). */
export const jsonLine = (value: unknown): string => Printable.escapeJson(JSON.stringify(value))

// ---------------------------------------------------------------------------------------------
// Projection from a Schema
// ---------------------------------------------------------------------------------------------

/** The JSON form of a decoded value: instants become strings, arrays and objects are plain. */
export type Projected<T> = T extends Messages.Micros ? string
  : T extends string | number | boolean | null ? T
  : T extends undefined ? null
  : T extends ReadonlyArray<infer U> ? Array<Projected<U>>
  : T extends object ? { -readonly [K in keyof T]-?: Projected<T[K]> }
  : T

/** Fields of the wire envelope, never part of a JSON shape. */
const ENVELOPE = new Set(["_tag", "id", "more"])

/** The member of a union that describes `value` (a tagged member by its `_tag`, an instant by being one). */
const memberFor = (types: ReadonlyArray<AST.AST>, value: unknown): AST.AST | undefined => {
  if (typeof value === "number") return types.find((t) => t === Messages.Micros.ast)
  if (typeof value !== "object" || value === null) return undefined
  const tag = (value as { readonly _tag?: unknown })._tag
  const objects = types.filter((t) => AST.getPropertySignatures(t).length > 0)
  return objects.find((t) =>
    AST.getPropertySignatures(t).some((p) => p.name === "_tag" && AST.isLiteral(p.type) && p.type.literal === tag)
  ) ?? objects[0]
}

const projectAst = (ast: AST.AST, value: unknown, zone: string, top: boolean): unknown => {
  if (value === undefined || value === null) return null
  if (ast === Messages.Micros.ast) return formatMicros(value as number, zone)
  switch (ast._tag) {
    // A Schema.Class: its `from` side is the struct of its fields.
    case "Transformation":
      return projectAst(ast.from, value, zone, top)
    case "Refinement":
      return projectAst(ast.from, value, zone, top)
    case "Suspend":
      return projectAst(ast.f(), value, zone, top)
    case "Union": {
      const member = memberFor(ast.types, value)
      return member === undefined ? value : projectAst(member, value, zone, top)
    }
    case "TupleType": {
      const element = ast.rest[0]?.type
      return (value as ReadonlyArray<unknown>).map((v, i) =>
        projectAst(ast.elements[i]?.type ?? element ?? AST.unknownKeyword, v, zone, false)
      )
    }
    case "TypeLiteral": {
      const out: Record<string, unknown> = {}
      for (const p of ast.propertySignatures) {
        if (typeof p.name !== "string" || (top && ENVELOPE.has(p.name))) continue
        out[p.name] = projectAst(p.type, (value as Record<string, unknown>)[p.name], zone, false)
      }
      return out
    }
    default:
      return value
  }
}

/** The JSON projection of `schema`'s values, instants in `zone`. */
const projection = <A, I, R>(schema: Schema.Schema<A, I, R>) => (value: A, zone: string): Projected<A> =>
  projectAst(schema.ast, value, zone, false) as Projected<A>

/** Like `projection`, for a response: the envelope (`_tag`, `id`, `more`) is left out. */
const responseProjection = <A, I, R>(schema: Schema.Schema<A, I, R>) => (value: A, zone: string) =>
  projectAst(schema.ast, value, zone, true) as Projected<Omit<A, "_tag" | "id" | "more">>

// ---------------------------------------------------------------------------------------------
// The shapes
// ---------------------------------------------------------------------------------------------

const clientRow = projection(Messages.ClientRow)
/** `refused` is spelled `refusedDuplicates` in JSON (other instances refused under this name). */
export const clientJson = (c: Messages.ClientRow, zone: string) => {
  const { refused, ...rest } = clientRow(c, zone)
  return { ...rest, refusedDuplicates: refused }
}

export const lineJson = projection(Messages.LineRow)
export const runJson = projection(Messages.RunRow)
/** `tail --json`'s `heartbeat` event (issue 14). */
export const beatJson = projection(Messages.TailBeat)
export const failedJson = projection(Messages.FailedRow)
export const scheduleJson = projection(Messages.ScheduleRow)
export const infoJson = responseProjection(Messages.InfoResponse)
export const cleanupJson = responseProjection(Messages.CleanupResponse)
export const statusJson = responseProjection(Messages.StatusResponse)
const queryResponse = responseProjection(Messages.QueryResponse)
export const queryJson = (q: typeof Messages.QueryResponse.Type) => queryResponse(q, "UTC")
const cmdGroups = projection(Messages.CmdResponse.fields.byAgent)
export const cmdJson = (byAgent: typeof Messages.CmdResponse.Type["byAgent"], zone: string) => cmdGroups(byAgent, zone)

const updatesResult = projection(Messages.UpdatesResult)
/** The result's `_tag` becomes `kind`, lower case (`apt`, `pacman`…). */
export const updatesJson = (r: Messages.UpdatesResult) => {
  const { _tag, ...rest } = updatesResult(r, "UTC")
  return { kind: _tag.toLowerCase() as Lowercase<typeof _tag>, ...rest }
}
