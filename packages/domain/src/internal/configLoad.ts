/**
 * Assembling one configuration from its sources (D9): defaults < TOML file < environment < flags,
 * through Effect's `ConfigProvider`.
 *
 * 1. The environment is read from the ambient ConfigProvider (`ConfigProvider.fromEnv()` unless
 *    the caller installed another with `Layer.setConfigProvider` / `Effect.withConfigProvider`):
 *    one `Config.option(Config.string(NAME))` per known scalar key, `NAME` being `PREFIX_A__B_C`
 *    (`__` between tables, `_` inside a key). Values stay strings; arrays and free-keyed tables
 *    (schedules) are never read from the environment.
 * 2. Each source (flags, env, TOML, the loader's computed defaults) becomes a ConfigProvider that
 *    holds, for every key path the source sets, the source's index; they are chained with
 *    `ConfigProvider.orElse` in precedence order and the configuration is read through that
 *    chain key by key. A ConfigProvider only carries strings, so the chain answers *which source
 *    wins a key* and the value is then taken from that source untouched: a TOML `5`, `true` or an
 *    array of schedule tables reaches the Schema as what it is (`api_key = true` is still
 *    reported as "got a boolean", not accepted as the text "true").
 * 3. The assembled object is decoded once by the Schema. Decoding after the chain, not inside
 *    it, keeps a malformed env value from being hidden: `orElse` falls back on *any* error
 *    (style §2.3 pitfall 1), but "who sets this key" cannot fail, so `BARTOS_ACTIX__PORT=abc`
 *    wins over the file's port and is then reported with the source it came from (the file,
 *    `environment BARTOS_ACTIX__PORT`, or `command line`).
 *
 * Env names are case-insensitive as far as the provider lets names be seen: the upper-case name
 * is always asked for, and other spellings are found in the provider's own listing of its names
 * (`flattened.enumerateChildren([])`), which is the names as given for map-like providers
 * (`ConfigProvider.fromMap`, the loader's `env` option). `ConfigProvider.fromEnv` looks names up
 * case-sensitively and lists them upper-cased and split at `_`, so with it only the upper-case
 * spelling is read.
 */
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as path from "node:path"
import { parse as parseToml, TomlError } from "smol-toml"
import type { TableShape } from "./configSchema.js"
import { shapeOf } from "./configSchema.js"

export interface ConfigErrorFields {
  readonly file: string | undefined
  readonly path: string
  readonly reason: string
  readonly line?: number
  readonly column?: number
}

type Obj = Record<string, unknown>
type KeyPath = ReadonlyArray<string>

const isObj = (u: unknown): u is Obj =>
  typeof u === "object" && u !== null && !Array.isArray(u) && !(u instanceof Date)

export const FILE_SUFFIX = "_file"

const fileKey = (key: string) => key + FILE_SUFFIX
const dotted = (p: KeyPath) => p.join(".")

export interface Source {
  /** How errors name this source at a key path: the file, `environment NAME`, `command line`; undefined for defaults. */
  readonly label: (keyPath: string) => string | undefined
  /** For `*_file` paths given relatively. */
  readonly baseDir: string
  /** The source's values, nested, with TOML key names; `undefined` means "not given". */
  readonly tree: Obj
}

export interface LoadInput {
  readonly schema: Schema.Schema<any, any, never>
  readonly envPrefix: string
  readonly defaults: Obj
  /** The TOML file to read, or undefined for none. */
  readonly configFile: string | undefined
  /** A missing file is an error (rather than "no file"). */
  readonly explicitFile: boolean
  readonly flags: Obj | undefined
  /** For `~/` in `*_file` paths. */
  readonly home: string
}

const getIn = (o: Obj, p: KeyPath): unknown => {
  let cur: unknown = o
  for (const k of p) {
    if (!isObj(cur)) return undefined
    cur = cur[k]
  }
  return cur
}

const setIn = (o: Obj, p: KeyPath, v: unknown) => {
  let cur = o
  for (const k of p.slice(0, -1)) {
    if (!isObj(cur[k])) cur[k] = {}
    cur = cur[k] as Obj
  }
  cur[p[p.length - 1]!] = v
}

// ---------------------------------------------------------------------------------------------
// The environment, through the ambient ConfigProvider
// ---------------------------------------------------------------------------------------------

const readVar = (name: string): Effect.Effect<Option.Option<string>, ConfigErrorFields> =>
  Config.option(Config.string(name)).pipe(
    Effect.mapError((e) => ({ file: `environment ${name}`, path: "", reason: `cannot read: ${e}` }))
  )

/** Variables read as named (HOME, XDG_*), through the ambient ConfigProvider. */
export const readVars = <const N extends string>(
  names: ReadonlyArray<N>
): Effect.Effect<Record<N, string | undefined>, ConfigErrorFields> =>
  Effect.forEach(names, (name) => Effect.map(readVar(name), (v) => [name, Option.getOrUndefined(v)] as const))
    .pipe(Effect.map((entries) => Object.fromEntries(entries) as Record<N, string | undefined>))

/** The names the ambient provider lists, sorted (only map-like providers list them as given). */
const listedNames: Effect.Effect<ReadonlyArray<string>> = Effect.configProviderWith((provider) =>
  provider.flattened.enumerateChildren([]).pipe(
    Effect.map((names) => Array.from(names).sort()),
    Effect.orElseSucceed(() => [])
  )
)

/** The value of `name` (upper case) under the first spelling that has one: `name` itself, then listed ones. */
const readEnvName = (
  name: string,
  listed: ReadonlyArray<string>
): Effect.Effect<Option.Option<readonly [spelling: string, value: string]>, ConfigErrorFields> =>
  Effect.gen(function*() {
    for (const spelling of [name, ...listed.filter((n) => n !== name && n.toUpperCase() === name)]) {
      const value = yield* readVar(spelling)
      if (Option.isSome(value)) return Option.some([spelling, value.value] as const)
    }
    return Option.none()
  })

/** Every key the environment may set: the scalar keys, and `k_file` next to each secret `k`. */
const envKeyPaths = (shape: TableShape, prefix: KeyPath = []): Array<KeyPath> =>
  shape.fields.flatMap(([key, s]): Array<KeyPath> =>
    s._tag === "Table"
      ? envKeyPaths(s, [...prefix, key])
      : s._tag === "Leaf"
      ? s.secret ? [[...prefix, key], [...prefix, fileKey(key)]] : [[...prefix, key]]
      : []
  )

/** Environment overrides for the known key paths: `PREFIX_a__b_c` → `a.b_c`. */
const readEnv = (prefix: string, shape: TableShape): Effect.Effect<Source, ConfigErrorFields> =>
  Effect.gen(function*() {
    const listed = yield* listedNames
    const tree: Obj = {}
    const names = new Map<string, string>()
    for (const p of envKeyPaths(shape)) {
      const found = yield* readEnvName(`${prefix}_${p.join("__")}`.toUpperCase(), listed)
      if (Option.isNone(found)) continue
      setIn(tree, p, found.value[1])
      names.set(dotted(p), found.value[0])
    }
    return {
      label: (k) => {
        const exact = names.get(k)
        if (exact !== undefined) return `environment ${exact}`
        // A table the environment introduced: name the variables inside it.
        const below = [...names].filter(([p]) => p.startsWith(`${k}.`)).map(([, name]) => name)
        return `environment ${below.length > 0 ? below.join(", ") : `${prefix}_*`}`
      },
      baseDir: process.cwd(),
      tree
    }
  })

// ---------------------------------------------------------------------------------------------
// The TOML file
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Sources as ConfigProviders, chained by precedence
// ---------------------------------------------------------------------------------------------

/**
 * The key paths a source sets, following the schema's tables. A table given as a table is
 * followed; anything else given at a known key is listed as it is (a scalar where a table
 * belongs is then the Schema's to report). A secret `k` is set when the source gives `k` or
 * `k_file`, which makes the two one setting: a higher source giving either replaces both.
 */
const keysSet = (shape: TableShape, source: Source): Either.Either<Array<string>, ConfigErrorFields> => {
  const keys: Array<string> = []
  const walk = (table: TableShape, tree: Obj, prefix: KeyPath): ConfigErrorFields | undefined => {
    for (const [key, s] of table.fields) {
      const p = [...prefix, key]
      const value = tree[key]
      const file = s._tag === "Leaf" && s.secret ? tree[fileKey(key)] : undefined
      if (value === undefined && file === undefined) continue
      if (value !== undefined && file !== undefined) {
        return { file: source.label(dotted(p)), path: dotted(p), reason: `both ${key} and ${fileKey(key)} are set; use one` }
      }
      keys.push(dotted(p))
      if (s._tag === "Table" && isObj(value)) {
        const error = walk(s, value, p)
        if (error !== undefined) return error
      }
    }
    return undefined
  }
  const error = walk(shape, source.tree, [])
  return error === undefined ? Either.right(keys) : Either.left(error)
}

/** A provider that answers `index` at every key path the source sets. */
const indexProvider = (keys: ReadonlyArray<string>, index: number): ConfigProvider.ConfigProvider =>
  ConfigProvider.fromMap(new Map(keys.map((k) => [k, String(index)])))

/** Which source sets `p`, read through the installed chain; None when no source does. */
const whoSets = (p: KeyPath): Effect.Effect<Option.Option<number>, ConfigErrorFields> =>
  Config.option(
    p.slice(0, -1).reduceRight((config, key) => Config.nested(config, key), Config.integer(p[p.length - 1]!))
  ).pipe(Effect.mapError((e) => ({ file: undefined, path: dotted(p), reason: String(e) })))

const readSecretFile = (
  source: Source,
  p: KeyPath,
  home: string
): Effect.Effect<string, ConfigErrorFields> =>
  Effect.suspend(() => {
    const key = dotted(p)
    const file = source.label(key)
    const given = getIn(source.tree, p)
    if (typeof given !== "string" || given.length === 0) {
      return Effect.fail({ file, path: key, reason: "expected a file path" })
    }
    // `~/` is expanded (no shell does it for us inside TOML); systemd's `%h` is not.
    const expanded = given === "~" || given.startsWith("~/") ? path.join(home, given.slice(1)) : given
    const full = path.resolve(source.baseDir, expanded)
    return Effect.try({
      try: () => fs.readFileSync(full, "utf8"),
      catch: (e) => ({
        file,
        path: key,
        reason: `cannot read secret file ${JSON.stringify(full)} (${(e as NodeJS.ErrnoException).code ?? String(e)})`
      })
    }).pipe(
      // Files written by `echo` or editors end with a newline that is not part of the secret.
      Effect.map((text) => text.replace(/\r?\n$/, "")),
      Effect.filterOrFail(
        (secret) => secret.length > 0,
        () => ({ file, path: key, reason: `secret file ${JSON.stringify(full)} is empty` })
      )
    )
  })

/**
 * Reads the configuration through the installed provider chain, table by table: the object to
 * decode, and the label of the source of every key and table it holds.
 */
const assemble = (
  shape: TableShape,
  sources: ReadonlyArray<Source>,
  home: string
): Effect.Effect<{ readonly value: Obj; readonly origins: Map<string, string> }, ConfigErrorFields> =>
  Effect.gen(function*() {
    const origins = new Map<string, string>()
    const record = (key: string, label: string | undefined) => {
      if (label !== undefined) origins.set(key, label)
    }
    const readTable = (table: TableShape, prefix: KeyPath, into: Obj): Effect.Effect<void, ConfigErrorFields> =>
      Effect.gen(function*() {
        for (const [key, s] of table.fields) {
          const p = [...prefix, key]
          const winner = yield* whoSets(p)
          if (Option.isNone(winner)) continue
          const source = sources[winner.value]!
          const value = getIn(source.tree, p)
          if (value === undefined) {
            // The source set this secret by `k_file`.
            const fileP = [...prefix, fileKey(key)]
            into[key] = yield* readSecretFile(source, fileP, home)
            record(dotted(p), source.label(dotted(fileP)))
          } else if (s._tag === "Table" && isObj(value)) {
            // Problems inside a table (a missing key) are the doing of the source that set it.
            record(dotted(p), source.label(dotted(p)))
            const sub: Obj = {}
            into[key] = sub
            yield* readTable(s, p, sub)
          } else {
            record(dotted(p), source.label(dotted(p)))
            into[key] = value
          }
        }
      })
    const value: Obj = {}
    yield* readTable(shape, [], value)
    return { value, origins }
  })

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

const formatPath = (p: ReadonlyArray<PropertyKey>): string => p.map(String).join(".")

const firstIssue = (error: ParseResult.ParseError): { path: string; reason: string } => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const issue = issues[0]
  if (issue === undefined) return { path: "", reason: "invalid configuration" }
  const reason = issue._tag === "Missing" ? "missing required key" : issue.message
  return { path: formatPath(issue.path), reason }
}

/** The source of the value at `p`, or of the nearest table above it that has one. */
const originOf = (origins: Map<string, string>, p: string, fallback: string | undefined): string | undefined => {
  const parts = p.split(".")
  for (let n = parts.length; n > 0; n--) {
    const label = origins.get(parts.slice(0, n).join("."))
    if (label !== undefined) return label
  }
  return fallback
}

export const load = <A>(input: LoadInput): Effect.Effect<A, ConfigErrorFields> =>
  Effect.gen(function*() {
    const shape = shapeOf(input.schema)
    const env = yield* readEnv(input.envPrefix, shape)
    const toml = input.configFile === undefined ? undefined : yield* readToml(input.configFile, input.explicitFile)
    const file: Source | undefined = toml === undefined || input.configFile === undefined ? undefined : {
      label: () => input.configFile,
      baseDir: path.dirname(path.resolve(input.configFile)),
      tree: toml
    }
    const flags: Source | undefined = input.flags === undefined
      ? undefined
      : { label: () => "command line", baseDir: process.cwd(), tree: input.flags }
    const defaults: Source = { label: () => undefined, baseDir: process.cwd(), tree: input.defaults }

    // Highest precedence first: flags > env > TOML > defaults.
    const sources = [flags, env, file, defaults].filter((s): s is Source => s !== undefined)
    const providers: Array<ConfigProvider.ConfigProvider> = []
    for (const [i, source] of sources.entries()) providers.push(indexProvider(yield* keysSet(shape, source), i))
    const chain = providers.reduce((higher, lower) => ConfigProvider.orElse(higher, () => lower))

    const { origins, value } = yield* Effect.withConfigProvider(assemble(shape, sources, input.home), chain)
    const decoded = Schema.decodeUnknownEither(input.schema)(value, { errors: "first", onExcessProperty: "ignore" })
    if (Either.isRight(decoded)) return decoded.right as A
    const { path: p, reason } = firstIssue(decoded.left)
    return yield* Effect.fail({ file: originOf(origins, p, file?.label(p)), path: p, reason })
  })
