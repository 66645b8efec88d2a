/**
 * Building blocks for the configuration schemas (D9).
 *
 * Every leaf decodes from `unknown` because the same key can arrive as a TOML value (typed) or as
 * an environment string (always a string, converted here by the key's own schema, so a secret
 * `00123` stays `00123`). Each leaf fails with a short operator-facing reason ("expected a port
 * number 1..65535, got "abc"") instead of Effect's generic AST dump.
 *
 * Tables carry a marker annotation so the loader can walk the schema (`shapeOf`) and learn every
 * key path that an environment variable may override, and which of them are secrets (`*_file`
 * variants).
 */
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as AST from "effect/SchemaAST"
import { isIP } from "node:net"

export const TableId: unique symbol = Symbol.for("@barto/domain/Config/Table")
export const SecretId: unique symbol = Symbol.for("@barto/domain/Config/Secret")
/** On a `table(...)`: pairs of keys that are one setting spelled two ways (`host` / `servers`). */
export const ExclusiveId: unique symbol = Symbol.for("@barto/domain/Config/Exclusive")

const describe = (u: unknown): string => {
  if (u === null || u === undefined) return "nothing"
  if (typeof u === "string") return JSON.stringify(u.length > 80 ? `${u.slice(0, 80)}…` : u)
  if (typeof u === "number" || typeof u === "boolean" || typeof u === "bigint") return String(u)
  if (Array.isArray(u)) return "an array"
  if (u instanceof Date) return "a date"
  return "a table"
}

/** Secrets are never echoed in errors: only their kind. */
const describeKind = (u: unknown): string => {
  if (typeof u === "string") return "a string"
  if (typeof u === "number" || typeof u === "bigint") return "a number"
  if (typeof u === "boolean") return "a boolean"
  return describe(u)
}

const leaf = <A>(
  to: Schema.Schema<A>,
  expected: string,
  parse: (u: unknown) => A | undefined,
  show: (u: unknown) => string = describe
): Schema.Schema<A, unknown> =>
  Schema.transformOrFail(Schema.Unknown, to, {
    strict: true,
    decode: (u, _, ast) => {
      const a = parse(u)
      return a === undefined
        ? ParseResult.fail(new ParseResult.Type(ast, u, `expected ${expected}, got ${show(u)}`))
        : ParseResult.succeed(a)
    },
    encode: (a) => ParseResult.succeed(a)
  })

const INT = /^[+-]?\d+$/
const NUM = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/

const toNumber = (u: unknown, integer: boolean): number | undefined => {
  let n: number
  if (typeof u === "number") n = u
  else if (typeof u === "bigint") n = Number(u)
  else if (typeof u === "string") {
    const s = u.trim()
    if (!(integer ? INT : NUM).test(s)) return undefined
    n = Number(s)
  } else return undefined
  if (!Number.isFinite(n)) return undefined
  if (integer && !Number.isSafeInteger(n)) return undefined
  return n
}

const toText = (u: unknown): string | undefined =>
  typeof u === "string" ? u : typeof u === "number" || typeof u === "bigint" ? String(u) : undefined

export const Int = (min: number, max: number, expected: string) =>
  leaf(Schema.Number, expected, (u) => {
    const n = toNumber(u, true)
    return n !== undefined && n >= min && n <= max ? n : undefined
  })

export const Port = Int(1, 65535, "a port number 1..65535")
/** A port to listen on: 0 asks the OS for a free one (tests, side-by-side instances). */
export const ListenPort = Int(0, 65535, "a port number 0..65535 (0 = any free port)")
export const U8 = Int(0, 255, "an integer 0..255")
export const NonNegativeInt = Int(0, Number.MAX_SAFE_INTEGER, "an integer >= 0")
export const PositiveInt = Int(1, Number.MAX_SAFE_INTEGER, "an integer > 0")

export const PositiveNumber = leaf(Schema.Number, "a number > 0", (u) => {
  const n = toNumber(u, false)
  return n !== undefined && n > 0 ? n : undefined
})

export const Bool = leaf(Schema.Boolean, "true or false", (u) => {
  if (typeof u === "boolean") return u
  if (typeof u === "string") {
    const s = u.trim().toLowerCase()
    if (s === "true") return true
    if (s === "false") return false
  }
  return undefined
})

/** Any text; TOML numbers are accepted as their text (reference coercion). */
export const Text = leaf(Schema.String, "a string", toText)

export const NonEmptyText = leaf(Schema.String, "a non-empty string", (u) => {
  const s = toText(u)
  return s !== undefined && s.trim().length > 0 ? s : undefined
})

export const IpAddress = leaf(Schema.String, "an IP address", (u) => {
  const s = toText(u)?.trim()
  return s !== undefined && isIP(s) !== 0 ? s : undefined
})

/** An IP address or a CIDR block (`10.0.0.0/8`, `fd00::/8`): the prefix fits the family. */
export const parseCidr = (u: unknown): string | undefined => {
  const s = toText(u)?.trim()
  if (s === undefined) return undefined
  const slash = s.indexOf("/")
  const address = slash < 0 ? s : s.slice(0, slash)
  const family = isIP(address)
  if (family === 0) return undefined
  if (slash < 0) return s
  const prefix = s.slice(slash + 1)
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > (family === 4 ? 32 : 128)) return undefined
  return `${address}/${Number(prefix)}`
}

export const CidrList = Schema.Array(
  leaf(Schema.String, "an IP address or CIDR block (10.0.0.0/8, fd00::/8)", parseCidr)
).annotations({ message: () => "expected an array of IP addresses or CIDR blocks" })

export const Enum = <const L extends ReadonlyArray<string>>(...values: L) =>
  leaf(
    Schema.Literal(...values) as unknown as Schema.Schema<L[number]>,
    `one of ${values.map((v) => JSON.stringify(v)).join(", ")}`,
    (u) => (typeof u === "string" && (values as ReadonlyArray<string>).includes(u) ? (u as L[number]) : undefined)
  )

const UNIT_SECS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy

/** Seconds from a number or from text like "90", "90s", "5m", "1h", "1h30m", "250ms". */
export const parseDurationSecs = (u: unknown): number | undefined => {
  const plain = toNumber(u, false)
  if (plain !== undefined) return plain > 0 ? plain : undefined
  if (typeof u !== "string") return undefined
  const s = u.trim().toLowerCase()
  if (s.length === 0) return undefined
  DURATION_PART.lastIndex = 0
  let total = 0
  let end = 0
  for (let m = DURATION_PART.exec(s); m !== null; m = DURATION_PART.exec(s)) {
    total += Number(m[1]) * UNIT_SECS[m[2]!]!
    end = DURATION_PART.lastIndex
  }
  return end === s.length && total > 0 ? total : undefined
}

export const DurationSecs = leaf(
  Schema.Number,
  "a duration > 0 (seconds, or text like \"90s\", \"5m\", \"1h\")",
  parseDurationSecs
)

/** A secret string. Decoded as `Redacted` so it cannot be printed by accident. */
export const Secret = Schema.Redacted(
  leaf(Schema.String, "a non-empty string", (u) => {
    const s = toText(u)
    return s !== undefined && s.length > 0 ? s : undefined
  }, describeKind)
).annotations({ [SecretId]: true })

export const StringArray = Schema.Array(Text).annotations({ message: () => "expected an array of strings" })

/** One `host` or `host:port` entry of a server list; `[v6]:port` or a bare IPv6 address. */
export interface ServerAddress {
  readonly host: string
  /** Absent: the table's `port`. */
  readonly port?: number
}

const parseServer = (entry: string): ServerAddress | undefined => {
  const s = entry.trim()
  if (s.length === 0 || /\s/.test(s)) return undefined
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(s)
  const [host, portText] = bracketed !== null
    ? [bracketed[1]!, bracketed[2]]
    : s.indexOf(":") !== s.lastIndexOf(":")
    ? [s, undefined] // a bare IPv6 address; with a port it must be bracketed
    : (s.split(":") as [string, string | undefined])
  if (host.length === 0 || host.includes("/")) return undefined
  if (portText === undefined) return { host }
  const port = toNumber(portText, true)
  return port !== undefined && port >= 1 && port <= 65535 ? { host, port } : undefined
}

/**
 * A non-empty list of servers: a TOML array of `"host"` / `"host:port"` strings, or the same
 * comma-separated in one string (how the environment gives it).
 */
export const ServerList = leaf(
  Schema.Array(Schema.Struct({ host: Schema.String, port: Schema.optionalWith(Schema.Number, { exact: true }) })),
  "a non-empty list of \"host\" or \"host:port\" strings (an IPv6 address with a port as \"[addr]:port\")",
  (u) => {
    const entries = typeof u === "string" ? u.split(",") : Array.isArray(u) ? u : undefined
    if (entries === undefined || entries.length === 0) return undefined
    const parsed: Array<ServerAddress> = []
    for (const entry of entries) {
      const server = typeof entry === "string" ? parseServer(entry) : undefined
      if (server === undefined) return undefined
      parsed.push(server)
    }
    return parsed
  }
)

const TableCheck = leaf(
  Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  "a table",
  (u) =>
    typeof u === "object" && u !== null && !Array.isArray(u) && !(u instanceof Date)
      ? (u as Record<string, unknown>)
      : undefined
).annotations({ [TableId]: true })

/** A TOML table: must be a table, then its fields are decoded. */
export const table = <F extends Schema.Struct.Fields>(fields: F) =>
  Schema.compose(TableCheck, Schema.Struct(fields), { strict: false })

/**
 * A table in which each pair of keys is one setting spelled two ways: one source giving both is
 * an error naming both, and a higher source giving either replaces both from lower sources (as
 * `k` / `k_file` for secrets).
 */
export const tableWithExclusive = <F extends Schema.Struct.Fields>(
  fields: F,
  exclusive: ReadonlyArray<readonly [keyof F & string, keyof F & string]>
) => Schema.compose(TableCheck.annotations({ [ExclusiveId]: exclusive }), Schema.Struct(fields), { strict: false })

/** A TOML table whose keys are free (e.g. agent names). */
export const tableOf = <V extends Schema.Schema.Any>(value: V) =>
  Schema.compose(TableCheck, Schema.Record({ key: Schema.String, value }), { strict: false })

/** A table that defaults to its own defaults when absent. */
export const defaultTable = <F extends Schema.Struct.Fields>(fields: F) => {
  // Generic F keeps TS from seeing that a table of fields is a Schema of their Struct type.
  const t = table(fields) as unknown as Schema.Schema<Schema.Struct.Type<F>, unknown, never>
  return withDefault(t, () => Schema.decodeUnknownSync(t)({}))
}

export const opt = <S extends Schema.Schema.Any>(s: S) => Schema.optionalWith(s, { exact: true })
export const withDefault = <S extends Schema.Schema.All>(s: S, value: () => Schema.Schema.Type<S>) =>
  Schema.optionalWith(s as Schema.Schema<Schema.Schema.Type<S>, Schema.Schema.Encoded<S>, never>, {
    default: value,
    exact: true
  })

// ---------------------------------------------------------------------------------------------
// Walking the schema for its shape
// ---------------------------------------------------------------------------------------------

/**
 * What the loader needs to know about a config schema: which keys are tables (followed into),
 * which are scalars (the environment may override them; `secret` ones also accept `k_file`),
 * and which are taken whole from one source: free-keyed tables such as `schedules` (`Record`)
 * and arrays (`List`). The element shapes of the last two let the loader find unknown keys
 * inside them (`[[schedules.web1.schedules]]`); the environment never reaches into them.
 */
export type Shape = TableShape | LeafShape | RecordShape | ListShape

export interface TableShape {
  readonly _tag: "Table"
  readonly fields: ReadonlyArray<readonly [key: string, shape: Shape]>
  /** Pairs of keys that are one setting (see `tableWithExclusive`). */
  readonly exclusive?: ReadonlyArray<readonly [string, string]>
}

export interface LeafShape {
  readonly _tag: "Leaf"
  readonly secret: boolean
}

export interface RecordShape {
  readonly _tag: "Record"
  readonly value: Shape
}

export interface ListShape {
  readonly _tag: "List"
  readonly element: Shape
}

const unwrapOptional = (ast: AST.AST): AST.AST => {
  if (AST.isUnion(ast)) {
    const members = ast.types.filter((t) => !AST.isUndefinedKeyword(t))
    if (members.length === 1) return members[0]!
  }
  return ast
}

/** The struct inside a `table(...)`, or undefined when `ast` is not a table. */
const tableStruct = (ast: AST.AST): AST.TypeLiteral | undefined => {
  if (!AST.isTransformation(ast) || ast.from.annotations[TableId] !== true) return undefined
  let to = ast.to
  while (AST.isTransformation(to) || AST.isRefinement(to)) to = to.from
  return AST.isTypeLiteral(to) && to.indexSignatures.length === 0 ? to : undefined
}

const exclusiveOf = (ast: AST.AST): ReadonlyArray<readonly [string, string]> | undefined =>
  AST.isTransformation(ast)
    ? ast.from.annotations[ExclusiveId] as ReadonlyArray<readonly [string, string]> | undefined
    : undefined

const structShape = (
  struct: AST.TypeLiteral,
  exclusive?: ReadonlyArray<readonly [string, string]>
): TableShape => ({
  _tag: "Table",
  ...(exclusive === undefined ? {} : { exclusive }),
  fields: struct.propertySignatures.flatMap((ps) =>
    typeof ps.name === "string" ? [[ps.name, fieldShape(ps.type)] as const] : []
  )
})

const fieldShape = (ast: AST.AST): Shape => {
  let t = unwrapOptional(ast)
  while (AST.isRefinement(t)) t = t.from
  const struct = tableStruct(t)
  if (struct !== undefined) return structShape(struct, exclusiveOf(t))
  if (AST.isTransformation(t) && t.from.annotations[TableId] === true) {
    // A free-keyed table: `tableOf(value)`.
    let to = t.to
    while (AST.isTransformation(to) || AST.isRefinement(to)) to = to.from
    const value = AST.isTypeLiteral(to) ? to.indexSignatures[0]?.type : undefined
    return { _tag: "Record", value: value === undefined ? { _tag: "Leaf", secret: false } : fieldShape(value) }
  }
  if (AST.isTupleType(t)) {
    const element = t.rest[0]?.type
    return { _tag: "List", element: element === undefined ? { _tag: "Leaf", secret: false } : fieldShape(element) }
  }
  return { _tag: "Leaf", secret: t.annotations[SecretId] === true }
}

/** The shape of a config schema (a struct, or a `table(...)` of one). */
export const shapeOf = (schema: Schema.Schema.Any): TableShape => {
  let root = schema.ast
  const struct = tableStruct(root)
  if (struct !== undefined) return structShape(struct, exclusiveOf(root))
  while (AST.isTransformation(root) || AST.isRefinement(root)) root = root.from
  return AST.isTypeLiteral(root) ? structShape(root) : { _tag: "Table", fields: [] }
}
