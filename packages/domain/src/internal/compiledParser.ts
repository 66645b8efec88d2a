/**
 * A parser compiled from a Schema's AST for the codec's hot path. A `RecordBatch` of 500 output
 * lines costs several µs per line through the generic `ParseResult` interpreter (and as much
 * again in garbage); the code generated here checks and copies a line in a fraction of that.
 *
 * The Schema stays the source of truth: the code is generated from the same AST, calls the same
 * refinement filters (`Int`, `nonNegative`, …) and builds the same output (a fresh object with
 * only the declared keys, in the declared order, as `onExcessProperty: "ignore"` does). It covers
 * the shapes our messages use: literals, string/number/boolean/undefined keywords, refinements,
 * arrays, structs, tagged unions, and `Schema.transform`s between them (run as ParseResult does:
 * parse one side, call the transformation's own function, parse the other side). Anything else
 * (classes, effectful transformations, index signatures, tuples, symbols…) is not compiled, and
 * the codec uses Schema for that message.
 *
 * Without transformations the encoded and the decoded form are the same value and both
 * directions run the same checks; a transformation is compiled per direction.
 *
 * A compiled parser only ever says "valid, and here is the value" or "no opinion" (`FAIL`): what
 * it does not accept goes through Schema again, which names the problem (or, should the two ever
 * disagree, produces the value). So it must never accept what Schema rejects, nor return a
 * different value; the codec's tests check exactly that against Schema.
 *
 * The generated source contains nothing from the input: only property names and literals of our
 * own schemas, each written with `JSON.stringify`.
 */
import type * as Schema from "effect/Schema"
import type * as SchemaAST from "effect/SchemaAST"

/** "Not accepted here": decode with Schema instead. */
export const FAIL: unique symbol = Symbol.for("@barto/domain/compiledParser/FAIL")

export type Compiled = (input: unknown) => unknown

const OPTIONS: SchemaAST.ParseOptions = { onExcessProperty: "ignore" }

export type Direction = "decode" | "encode"

/** What generated code refers to: filters and transformations (`F`) with their ASTs (`A`), nested parsers (`D`). */
interface Env {
  readonly direction: Direction
  readonly fns: Array<(...args: Array<any>) => any>
  readonly asts: Array<SchemaAST.AST>
  readonly decoders: Array<Compiled>
}

const addFn = (env: Env, fn: (...args: Array<any>) => any, ast: SchemaAST.AST): number => {
  env.fns.push(fn)
  env.asts.push(ast)
  return env.fns.length - 1
}

const addDecoder = (env: Env, decoder: Compiled): number => {
  env.decoders.push(decoder)
  return env.decoders.length - 1
}

/** Whether decoding and encoding `ast` may differ (then a refinement over it is not compiled). */
const hasTransformation = (ast: SchemaAST.AST): boolean => {
  switch (ast._tag) {
    case "Transformation":
    case "Declaration":
    case "Suspend":
      return true
    case "Refinement":
      return hasTransformation(ast.from)
    case "Union":
      return ast.types.some(hasTransformation)
    case "TypeLiteral":
      return ast.propertySignatures.some((p) => hasTransformation(p.type))
    case "TupleType":
      return ast.elements.some((e) => hasTransformation(e.type)) || ast.rest.some((r) => hasTransformation(r.type))
    default:
      return false
  }
}

const literalSource = (literal: SchemaAST.LiteralValue): string | undefined => {
  if (literal === null) return "null"
  switch (typeof literal) {
    case "string":
    case "boolean":
      return JSON.stringify(literal)
    case "number":
      return Number.isFinite(literal) ? String(literal) : undefined
    default:
      return undefined // bigint literals cannot come out of JSON.parse
  }
}

/**
 * A JS boolean expression that checks `x` (a plain identifier) against an AST whose decoded value
 * is the input itself (no object or array is built); undefined for any other AST.
 */
const condition = (ast: SchemaAST.AST, x: string, env: Env): string | undefined => {
  switch (ast._tag) {
    case "Literal": {
      const source = literalSource(ast.literal)
      return source === undefined ? undefined : `${x} === ${source}`
    }
    case "StringKeyword":
      return `typeof ${x} === "string"`
    case "NumberKeyword":
      return `typeof ${x} === "number"`
    case "BooleanKeyword":
      return `typeof ${x} === "boolean"`
    case "UndefinedKeyword":
      return `${x} === undefined`
    case "UnknownKeyword":
      // Accepts anything, as Schema.Unknown does (the value is passed on unchanged).
      return "true"
    case "Refinement": {
      const from = condition(ast.from, x, env)
      if (from === undefined) return undefined
      const k = addFn(env, ast.filter, ast)
      // As ParseResult: the filter sees the value decoded by `from` (here the input itself).
      return `(${from}) && F[${k}](${x}, O, A[${k}])._tag === "None"`
    }
    case "Union": {
      const parts: Array<string> = []
      for (const member of ast.types) {
        const part = condition(member, x, env)
        if (part === undefined) return undefined
        parts.push(`(${part})`)
      }
      return parts.length === 0 ? undefined : parts.join(" || ")
    }
    default:
      return undefined
  }
}

/**
 * Statements that decode `input` (an expression without side effects) into the fresh variable
 * `out`, or `return FAIL`. Undefined when the AST is not covered.
 */
const decodeInto = (ast: SchemaAST.AST, input: string, out: string, env: Env): string | undefined => {
  const cond = condition(ast, out, env)
  if (cond !== undefined) return `const ${out} = ${input}; if (!(${cond})) return FAIL;`
  const decoder = compileAst(ast, env)
  if (decoder === undefined) return undefined
  return `const ${out} = D[${addDecoder(env, decoder)}](${input}); if (${out} === FAIL) return FAIL;`
}

const build = (body: string, env: Env): Compiled =>
  // Generated from our own schemas only (see the header): nothing of the input is in the source.
  new Function("FAIL", "F", "A", "D", "O", "hasOwn", `"use strict"; return function (u) { ${body} }`)(
    FAIL,
    env.fns,
    env.asts,
    env.decoders,
    OPTIONS,
    Object.prototype.hasOwnProperty
  ) as Compiled

/** The string literal `_tag` of a struct, if it has one. */
const tagOf = (ast: SchemaAST.AST): string | undefined => {
  if (ast._tag === "Refinement") return tagOf(ast.from)
  if (ast._tag !== "TypeLiteral") return undefined
  const tag = ast.propertySignatures.find((p) => p.name === "_tag")
  if (tag === undefined || tag.isOptional || tag.type._tag !== "Literal") return undefined
  return typeof tag.type.literal === "string" ? tag.type.literal : undefined
}

const compileAst = (ast: SchemaAST.AST, env: Env): Compiled | undefined => {
  switch (ast._tag) {
    case "TypeLiteral": {
      if (ast.indexSignatures.length !== 0 || ast.propertySignatures.length === 0) return undefined
      const checks: Array<string> = [`if (typeof u !== "object" || u === null || Array.isArray(u)) return FAIL;`]
      // Output in the declared order: an object literal up to the first optional key, then
      // assignments (an absent optional key stays absent, as ParseResult does).
      const literal: Array<string> = []
      const assignments: Array<string> = []
      for (let i = 0; i < ast.propertySignatures.length; i++) {
        const ps = ast.propertySignatures[i]
        if (typeof ps.name !== "string" || ps.name === "__proto__") return undefined
        const key = JSON.stringify(ps.name)
        const decode = decodeInto(ps.type, `u[${key}]`, `v${i}`, env)
        if (decode === undefined) return undefined
        if (ps.isOptional) {
          checks.unshift(`let o${i};`)
          checks.push(`const h${i} = hasOwn.call(u, ${key}); if (h${i}) { ${decode} o${i} = v${i}; }`)
          assignments.push(`if (h${i}) out[${key}] = o${i};`)
        } else {
          // An absent required key is checked as `u[key]` (undefined), as ParseResult does.
          checks.push(decode)
          if (assignments.length === 0) literal.push(`${key}: v${i}`)
          else assignments.push(`out[${key}] = v${i};`)
        }
      }
      return build([...checks, `const out = { ${literal.join(", ")} };`, ...assignments, "return out;"].join("\n"), env)
    }
    case "TupleType": {
      // Only `Schema.Array(item)`.
      if (ast.elements.length !== 0 || ast.rest.length !== 1) return undefined
      const decode = decodeInto(ast.rest[0].type, "u[i]", "v", env)
      if (decode === undefined) return undefined
      return build(
        `if (!Array.isArray(u)) return FAIL;
        const n = u.length;
        const out = new Array(n);
        for (let i = 0; i < n; i++) { ${decode} out[i] = v; }
        return out;`,
        env
      )
    }
    case "Union": {
      const cond = condition(ast, "u", env)
      if (cond !== undefined) return build(`return (${cond}) ? u : FAIL;`, env)
      // Structs: only a union told apart by distinct literal tags, so at most one member applies.
      const cases: Array<string> = []
      const seen = new Set<string>()
      for (const member of ast.types) {
        const tag = tagOf(member)
        if (tag === undefined || seen.has(tag)) return undefined
        seen.add(tag)
        const decoder = compileAst(member, env)
        if (decoder === undefined) return undefined
        cases.push(`case ${JSON.stringify(tag)}: return D[${addDecoder(env, decoder)}](u);`)
      }
      return build(
        `if (typeof u !== "object" || u === null) return FAIL;
        switch (u._tag) { ${cases.join(" ")} default: return FAIL; }`,
        env
      )
    }
    case "Refinement": {
      const cond = condition(ast, "u", env)
      if (cond !== undefined) return build(`return (${cond}) ? u : FAIL;`, env)
      // A filter over a struct or array: it sees the parsed value, which is the same both ways
      // only without transformations below it.
      if (hasTransformation(ast.from)) return undefined
      const from = compileAst(ast.from, env)
      if (from === undefined) return undefined
      const d = addDecoder(env, from)
      const k = addFn(env, ast.filter, ast)
      return build(
        `const v = D[${d}](u); if (v === FAIL) return FAIL; return F[${k}](v, O, A[${k}])._tag === "None" ? v : FAIL;`,
        env
      )
    }
    case "Transformation": {
      // As ParseResult: decoding parses `from`, transforms, parses `to`; encoding the reverse.
      if (ast.transformation._tag !== "FinalTransformation") return undefined
      const decoding = env.direction === "decode"
      const first = compileAst(decoding ? ast.from : ast.to, env)
      const second = compileAst(decoding ? ast.to : ast.from, env)
      if (first === undefined || second === undefined) return undefined
      const f = addDecoder(env, first)
      const s = addDecoder(env, second)
      const t = addFn(env, decoding ? ast.transformation.decode : ast.transformation.encode, ast)
      // A synchronous transformation answers with an Either; anything else is left to Schema.
      return build(
        `const a = D[${f}](u); if (a === FAIL) return FAIL;
        const r = F[${t}](a, O, A[${t}], u);
        if (r === null || typeof r !== "object" || r._tag !== "Right") return FAIL;
        return D[${s}](r.right);`,
        env
      )
    }
    default: {
      const cond = condition(ast, "u", env)
      return cond === undefined ? undefined : build(`return (${cond}) ? u : FAIL;`, env)
    }
  }
}

const caches: Record<Direction, WeakMap<SchemaAST.AST, Compiled | null>> = {
  decode: new WeakMap(),
  encode: new WeakMap()
}

/**
 * The compiled parser of a schema for one direction (cached per AST), or undefined when its shape
 * is not covered. It returns the decoded (or encoded) value, or `FAIL` when Schema must decide.
 */
export const compile = (schema: Schema.Schema<any, any>, direction: Direction = "decode"): Compiled | undefined => {
  const cache = caches[direction]
  const cached = cache.get(schema.ast)
  if (cached !== undefined) return cached ?? undefined
  let compiled: Compiled | null
  try {
    compiled = compileAst(schema.ast, { direction, fns: [], asts: [], decoders: [] }) ?? null
  } catch {
    // A runtime that forbids generating code: Schema decodes everything.
    compiled = null
  }
  cache.set(schema.ast, compiled)
  return compiled ?? undefined
}
