/**
 * Assembling one configuration from its sources (D9): defaults < TOML file < environment < flags.
 *
 * The sources are overlaid onto one plain object, walking the known key paths of the schema (so
 * we know which environment names exist), and the result is decoded once by the schema. Doing
 * the overlay ourselves, rather than chaining `ConfigProvider.orElse`, keeps a malformed env
 * value from being silently replaced by the file's value, and lets every error name the source
 * the bad value came from (the file, `environment BARTOS_ACTIX__PORT`, or `command line`).
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parse as parseToml, TomlError } from "smol-toml"
import type { KeyPath } from "./configSchema.js"
import { keyPaths } from "./configSchema.js"

export interface ConfigErrorFields {
  readonly file: string | undefined
  readonly path: string
  readonly reason: string
  readonly line?: number
  readonly column?: number
}

type Obj = Record<string, unknown>

const isObj = (u: unknown): u is Obj =>
  typeof u === "object" && u !== null && !Array.isArray(u) && !(u instanceof Date)

export const FILE_SUFFIX = "_file"

export interface Source {
  /** How errors name this source: a file path, `environment NAME`, `command line`. */
  readonly label: (keyPath: string) => string
  /** For `*_file` paths given relatively. */
  readonly baseDir: string
  readonly value: Obj
}

export interface LoadInput {
  readonly schema: Schema.Schema<any, any, never>
  readonly envPrefix: string
  readonly defaults: Obj
  readonly configFile: string
  readonly explicitFile: boolean
  readonly skipFile: boolean
  readonly env: Record<string, string | undefined>
  readonly flags: Obj | undefined
}

const getIn = (o: Obj, p: ReadonlyArray<string>): unknown => {
  let cur: unknown = o
  for (const k of p) {
    if (!isObj(cur)) return undefined
    cur = cur[k]
  }
  return cur
}

const parentOf = (o: Obj, p: ReadonlyArray<string>, create: boolean): Obj | undefined => {
  let cur = o
  for (const k of p.slice(0, -1)) {
    const next = cur[k]
    if (isObj(next)) cur = next
    else if (create) {
      const fresh: Obj = {}
      cur[k] = fresh
      cur = fresh
    } else return undefined
  }
  return cur
}

const setIn = (o: Obj, p: ReadonlyArray<string>, v: unknown) => {
  parentOf(o, p, true)![p[p.length - 1]!] = v
}

const deleteIn = (o: Obj, p: ReadonlyArray<string>) => {
  const parent = parentOf(o, p, false)
  if (parent !== undefined) delete parent[p[p.length - 1]!]
}

const cloneDeep = (u: unknown): unknown =>
  Array.isArray(u) ? u.map(cloneDeep) : isObj(u) ? Object.fromEntries(Object.entries(u).map(([k, v]) => [k, cloneDeep(v)])) : u

/**
 * Overlays `src` onto `dst` (tables merge key by key, everything else replaces) and records the
 * source of every value it sets. `undefined` in a source means "not given".
 */
const overlay = (dst: Obj, src: Obj, prefix: ReadonlyArray<string>, origins: Map<string, Source>, source: Source) => {
  for (const [k, v] of Object.entries(src)) {
    if (v === undefined) continue
    const p = [...prefix, k]
    if (isObj(v)) {
      if (!isObj(dst[k])) {
        // A table this source introduces: problems inside it (a missing key) are its doing.
        dst[k] = {}
        origins.set(p.join("."), source)
      }
      overlay(dst[k] as Obj, v, p, origins, source)
    } else {
      dst[k] = cloneDeep(v)
      origins.set(p.join("."), source)
    }
  }
}

/** `k` and `k_file` are one setting: a source that gives one of them replaces the other. */
const applySecretPrecedence = (
  acc: Obj,
  src: Obj,
  secrets: ReadonlyArray<KeyPath>,
  source: Source
): Either.Either<void, ConfigErrorFields> => {
  for (const { path: p } of secrets) {
    const filePath = [...p.slice(0, -1), p[p.length - 1]! + FILE_SUFFIX]
    const hasValue = getIn(src, p) !== undefined
    const hasFile = getIn(src, filePath) !== undefined
    if (hasValue && hasFile) {
      return Either.left({
        file: source.label(p.join(".")),
        path: p.join("."),
        reason: `both ${p[p.length - 1]} and ${filePath[filePath.length - 1]} are set; use one`
      })
    }
    if (hasValue) deleteIn(acc, filePath)
    if (hasFile) deleteIn(acc, p)
  }
  return Either.right(undefined)
}

const readSecretFiles = (
  acc: Obj,
  secrets: ReadonlyArray<KeyPath>,
  origins: Map<string, Source>,
  home: string
): Either.Either<void, ConfigErrorFields> => {
  for (const { path: p } of secrets) {
    const filePath = [...p.slice(0, -1), p[p.length - 1]! + FILE_SUFFIX]
    const key = filePath.join(".")
    const given = getIn(acc, filePath)
    if (given === undefined) continue
    const source = origins.get(key)
    const label = source?.label(key)
    if (typeof given !== "string" || given.length === 0) {
      return Either.left({ file: label, path: key, reason: "expected a file path" })
    }
    // `~/` is expanded (no shell does it for us inside TOML); systemd's `%h` is not.
    const expanded = given === "~" || given.startsWith("~/") ? path.join(home, given.slice(1)) : given
    const full = path.resolve(source?.baseDir ?? process.cwd(), expanded)
    let text: string
    try {
      text = fs.readFileSync(full, "utf8")
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? String(e)
      return Either.left({ file: label, path: key, reason: `cannot read secret file ${JSON.stringify(full)} (${code})` })
    }
    // Files written by `echo` or editors end with a newline that is not part of the secret.
    const secret = text.replace(/\r?\n$/, "")
    if (secret.length === 0) {
      return Either.left({ file: label, path: key, reason: `secret file ${JSON.stringify(full)} is empty` })
    }
    deleteIn(acc, filePath)
    setIn(acc, p, secret)
    if (source !== undefined) origins.set(p.join("."), source)
  }
  return Either.right(undefined)
}

const readToml = (
  file: string,
  explicit: boolean
): Either.Either<Obj | undefined, ConfigErrorFields> => {
  let text: string
  try {
    text = fs.readFileSync(file, "utf8")
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === "ENOENT" && !explicit) return Either.right(undefined)
    return Either.left({
      file,
      path: "",
      reason: code === "ENOENT" ? "config file not found" : `cannot read config file (${code ?? String(e)})`
    })
  }
  try {
    return Either.right(parseToml(text) as Obj)
  } catch (e) {
    if (e instanceof TomlError) {
      const first = e.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "")
      return Either.left({ file, path: "", reason: `invalid TOML: ${first}`, line: e.line, column: e.column })
    }
    return Either.left({ file, path: "", reason: `invalid TOML: ${String(e)}` })
  }
}

/** Environment overrides for the known key paths: `PREFIX_a__b_c` → `a.b_c`, case-insensitive. */
const envLayer = (
  prefix: string,
  env: Record<string, string | undefined>,
  paths: ReadonlyArray<KeyPath>
): { value: Obj; names: Map<string, string> } => {
  const byLower = new Map<string, string>()
  for (const name of Object.keys(env).sort()) {
    if (env[name] === undefined) continue
    const lower = name.toLowerCase()
    // Prefer the canonical upper-case spelling when two names differ only in case.
    if (!byLower.has(lower) || name === name.toUpperCase()) byLower.set(lower, name)
  }
  const value: Obj = {}
  const names = new Map<string, string>()
  const candidates: Array<ReadonlyArray<string>> = []
  for (const { path: p, secret } of paths) {
    candidates.push(p)
    if (secret) candidates.push([...p.slice(0, -1), p[p.length - 1]! + FILE_SUFFIX])
  }
  for (const p of candidates) {
    const envName = `${prefix}_${p.join("__")}`.toLowerCase()
    const actual = byLower.get(envName)
    if (actual === undefined) continue
    setIn(value, p, env[actual])
    names.set(p.join("."), actual)
  }
  return { value, names }
}

const formatPath = (p: ReadonlyArray<PropertyKey>): string => p.map(String).join(".")

const firstIssue = (error: ParseResult.ParseError): { path: string; reason: string } => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const issue = issues[0]
  if (issue === undefined) return { path: "", reason: "invalid configuration" }
  const reason = issue._tag === "Missing" ? "missing required key" : issue.message
  return { path: formatPath(issue.path), reason }
}

/** The source of the value at `p`, or of the nearest table above it that has one. */
const originOf = (origins: Map<string, Source>, p: string, fallback: Source | undefined): string | undefined => {
  const parts = p.split(".")
  for (let n = parts.length; n > 0; n--) {
    const key = parts.slice(0, n).join(".")
    const s = origins.get(key)
    if (s !== undefined) return s.label(key)
  }
  return fallback?.label(p)
}

export const load = <A>(input: LoadInput): Either.Either<A, ConfigErrorFields> => {
  const paths = keyPaths(input.schema)
  const secrets = paths.filter((k) => k.secret)
  const origins = new Map<string, Source>()
  const acc = cloneDeep(input.defaults) as Obj

  const tomlE = input.skipFile ? Either.right(undefined) : readToml(input.configFile, input.explicitFile)
  if (Either.isLeft(tomlE)) return Either.left(tomlE.left)
  const toml = tomlE.right
  const fileSource: Source | undefined = toml === undefined
    ? undefined
    : { label: () => input.configFile, baseDir: path.dirname(path.resolve(input.configFile)), value: toml }

  const env = envLayer(input.envPrefix, input.env, paths)
  const envSource: Source = {
    label: (k) => {
      const exact = env.names.get(k)
      if (exact !== undefined) return `environment ${exact}`
      const below = [...env.names].filter(([p]) => p.startsWith(`${k}.`)).map(([, name]) => name)
      return `environment ${below.length > 0 ? below.join(", ") : `${input.envPrefix}_*`}`
    },
    baseDir: process.cwd(),
    value: env.value
  }
  const flagSource: Source | undefined = input.flags === undefined
    ? undefined
    : { label: () => "command line", baseDir: process.cwd(), value: input.flags }

  for (const source of [fileSource, envSource, flagSource]) {
    if (source === undefined) continue
    const pre = applySecretPrecedence(acc, source.value, secrets, source)
    if (Either.isLeft(pre)) return Either.left(pre.left)
    overlay(acc, source.value, [], origins, source)
  }

  const home = input.env.HOME !== undefined && input.env.HOME !== "" ? input.env.HOME : os.homedir()
  const files = readSecretFiles(acc, secrets, origins, home)
  if (Either.isLeft(files)) return Either.left(files.left)

  const decoded = Schema.decodeUnknownEither(input.schema)(acc, { errors: "first", onExcessProperty: "ignore" })
  if (Either.isRight(decoded)) return Either.right(decoded.right as A)
  const { path: p, reason } = firstIssue(decoded.left)
  return Either.left({ file: originOf(origins, p, fileSource), path: p, reason })
}
