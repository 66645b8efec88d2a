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
import type { Shape, TableShape } from "./configSchema.js"
import { shapeOf } from "./configSchema.js"
import { formatKeyPath, type KeyPath as LocatedPath, locateKeys, type Locations } from "./tomlLocate.js"

/** One problem (`Config.ConfigProblem`, documented there). */
export interface ConfigErrorFields {
  readonly file: string | undefined
  readonly path: string
  readonly reason: string
  readonly line?: number
  readonly column?: number
}

type Obj = Record<string, unknown>
type KeyPath = ReadonlyArray<string>

const isObj = (u: unknown): u is Obj => typeof u === "object" && u !== null && !Array.isArray(u) && !(u instanceof Date)

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

const envName = (prefix: string, p: KeyPath) => `${prefix}_${p.join("__")}`.toUpperCase()

/** Environment overrides for the known key paths: `PREFIX_a__b_c` → `a.b_c`. */
const readEnv = (prefix: string, shape: TableShape): Effect.Effect<Source, ConfigErrorFields> =>
  Effect.gen(function*() {
    const listed = yield* listedNames
    const tree: Obj = {}
    const names = new Map<string, string>()
    for (const p of envKeyPaths(shape)) {
      const found = yield* readEnvName(envName(prefix, p), listed)
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

/**
 * Variables with the program's prefix that set no key (`BARTOS_ACTIX_PORT` for
 * `BARTOS_ACTIX__PORT`): warnings, not errors, since the environment is shared with other
 * software and a stale variable should not stop a service.
 */
export const unknownEnv = (prefix: string, shape: TableShape): Effect.Effect<ReadonlyArray<string>> =>
  Effect.gen(function*() {
    const known = envKeyPaths(shape).map((p) => envName(prefix, p))
    const knownSet = new Set(known)
    const listed = yield* listedNames
    const lead = `${prefix}_`
    return listed
      .filter((name) => name.toUpperCase().startsWith(lead) && !knownSet.has(name.toUpperCase()))
      .map((name) => {
        // Compared without the prefix, which every candidate shares.
        const hint = closest(name.toUpperCase().slice(lead.length), known.map((k) => k.slice(lead.length)))
          ?.replace(/^/, lead)
        return `environment ${name}: sets no configuration key, ignored${
          hint === undefined ? "" : ` (did you mean ${hint}?)`
        }`
      })
  })

// ---------------------------------------------------------------------------------------------
// Unknown keys
// ---------------------------------------------------------------------------------------------

/** Optimal string alignment distance: edits, where swapping two neighbours is one (`prot`). */
const distance = (a: string, b: string): number => {
  const d: Array<Array<number>> = []
  for (let i = 0; i <= a.length; i++) d.push([i])
  for (let j = 1; j <= b.length; j++) d[0]![j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1)
      d[i]![j] = v
    }
  }
  return d[a.length]![b.length]!
}

/**
 * The known name closest to `name`, when it looks like a typo of it: up to a third of the name
 * wrong (at least one edit, at most three: `timout`, `prot`, `nmae`), else a name that one is a
 * prefix of the other's (`timeout` for `timeout_secs`, `client_ca` for `client_ca_cert`). An
 * unrelated word is not dressed up as a typo.
 */
const closest = (name: string, known: ReadonlyArray<string>): string | undefined => {
  const lower = name.toLowerCase()
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of known) {
    const dist = distance(lower, candidate.toLowerCase())
    if (dist < bestDistance) {
      best = candidate
      bestDistance = dist
    }
  }
  if (bestDistance <= Math.min(3, Math.max(1, Math.floor(name.length / 3)))) return best
  const prefixed = known
    .filter((candidate) => {
      const c = candidate.toLowerCase()
      return Math.min(c.length, lower.length) >= 4 && (c.startsWith(lower) || lower.startsWith(c))
    })
    .sort((a, b) => Math.abs(a.length - name.length) - Math.abs(b.length - name.length))
  return prefixed[0]
}

interface UnknownKey {
  /** The table that holds the key. */
  readonly table: LocatedPath
  readonly key: string
  /** The closest known key of that table, when the unknown one looks like a typo of it. */
  readonly hint: string | undefined
}

/** Keys the schema does not know, anywhere in a TOML tree (inside arrays of tables too). */
const unknownKeys = (shape: TableShape, tree: Obj): Array<UnknownKey> => {
  const found: Array<UnknownKey> = []
  const walk = (s: Shape, value: unknown, at: LocatedPath) => {
    if (s._tag === "Table") {
      if (!isObj(value)) return
      const known = s.fields.flatMap(([k, f]) => (f._tag === "Leaf" && f.secret ? [k, fileKey(k)] : [k]))
      const knownSet = new Set(known)
      const fields = new Map<string, Shape>(s.fields)
      for (const [key, v] of Object.entries(value)) {
        const field = fields.get(key)
        if (field !== undefined) walk(field, v, [...at, key])
        else if (!knownSet.has(key)) found.push({ table: at, key, hint: closest(key, known) })
      }
    } else if (s._tag === "Record") {
      if (isObj(value)) { for (const [key, v] of Object.entries(value)) walk(s.value, v, [...at, key]) }
    } else if (s._tag === "List") {
      if (Array.isArray(value)) value.forEach((v, i) => walk(s.element, v, [...at, i]))
    }
  }
  walk(shape, tree, [])
  return found
}

// ---------------------------------------------------------------------------------------------
// The TOML file
// ---------------------------------------------------------------------------------------------

const readToml = (
  file: string,
  explicit: boolean
): Either.Either<{ readonly tree: Obj; readonly text: string } | undefined, ConfigErrorFields> => {
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
    return Either.right({ tree: parseToml(text) as Obj, text })
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
    for (const [a, b] of table.exclusive ?? []) {
      if (tree[a] !== undefined && tree[b] !== undefined) {
        const p = dotted([...prefix, b])
        return { file: source.label(p), path: p, reason: `both ${a} and ${b} are set; use one` }
      }
    }
    for (const [key, s] of table.fields) {
      const p = [...prefix, key]
      const value = tree[key]
      const file = s._tag === "Leaf" && s.secret ? tree[fileKey(key)] : undefined
      if (value === undefined && file === undefined) continue
      if (value !== undefined && file !== undefined) {
        return {
          file: source.label(dotted(p)),
          path: dotted(p),
          reason: `both ${key} and ${fileKey(key)} are set; use one`
        }
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
 * A free-keyed table (`[notify.NAME]`) is taken whole from one source, so the provider chain never
 * reads the `k_file` form of the secrets inside it: this does, with the same rules (one of `k` and
 * `k_file`, paths relative to the file, `~/`).
 */
const readNestedSecrets = (
  shape: Shape,
  value: unknown,
  at: KeyPath,
  source: Source,
  home: string
): Effect.Effect<unknown, ConfigErrorFields> =>
  Effect.gen(function*() {
    if (shape._tag === "Record" && isObj(value)) {
      const out: Obj = {}
      for (const [k, v] of Object.entries(value)) {
        out[k] = yield* readNestedSecrets(shape.value, v, [...at, k], source, home)
      }
      return out
    }
    if (shape._tag !== "Table" || !isObj(value)) {
      return value
    }
    const out: Obj = { ...value }
    for (const [k, field] of shape.fields) {
      if (field._tag === "Leaf" && field.secret && value[fileKey(k)] !== undefined) {
        const p = [...at, k]
        if (value[k] !== undefined) {
          return yield* Effect.fail({
            file: source.label(dotted(p)),
            path: dotted(p),
            reason: `both ${k} and ${fileKey(k)} are set; use one`
          })
        }
        out[k] = yield* readSecretFile(source, [...at, fileKey(k)], home)
        delete out[fileKey(k)]
      } else if (field._tag !== "Leaf" && value[k] !== undefined) {
        out[k] = yield* readNestedSecrets(field, value[k], [...at, k], source, home)
      }
    }
    return out
  })

/** For each key path read (dotted), the source that set it and the key it was given under (`k` or `k_file`). */
type Origins = Map<string, { readonly source: Source; readonly from: KeyPath }>

/**
 * Reads the configuration through the installed provider chain, table by table: the object to
 * decode, and the label of the source of every key and table it holds.
 */
const assemble = (
  shape: TableShape,
  sources: ReadonlyArray<Source>,
  home: string
): Effect.Effect<{ readonly value: Obj; readonly origins: Origins }, ConfigErrorFields> =>
  Effect.gen(function*() {
    const origins: Origins = new Map()
    const record = (key: string, source: Source, from: KeyPath) => origins.set(key, { source, from })
    const readTable = (table: TableShape, prefix: KeyPath, into: Obj): Effect.Effect<void, ConfigErrorFields> =>
      Effect.gen(function*() {
        const winners = new Map<string, number>()
        for (const [key, s] of table.fields) {
          const p = [...prefix, key]
          const winner = yield* whoSets(p)
          if (Option.isNone(winner)) continue
          winners.set(key, winner.value)
          const source = sources[winner.value]!
          const value = getIn(source.tree, p)
          if (value === undefined) {
            // The source set this secret by `k_file`.
            const fileP = [...prefix, fileKey(key)]
            into[key] = yield* readSecretFile(source, fileP, home)
            record(dotted(p), source, fileP)
          } else if (s._tag === "Table" && isObj(value)) {
            // Problems inside a table (a missing key) are the doing of the source that set it.
            record(dotted(p), source, p)
            const sub: Obj = {}
            into[key] = sub
            yield* readTable(s, p, sub)
          } else {
            record(dotted(p), source, p)
            into[key] = s._tag === "Record" ? yield* readNestedSecrets(s, value, p, source, home) : value
          }
        }
        // One setting spelled two ways, given by two sources: the higher source's spelling wins whole.
        for (const [a, b] of table.exclusive ?? []) {
          const wa = winners.get(a)
          const wb = winners.get(b)
          if (wa === undefined || wb === undefined) continue
          const loser = wa < wb ? b : a
          delete into[loser]
          origins.delete(dotted([...prefix, loser]))
        }
      })
    const value: Obj = {}
    yield* readTable(shape, [], value)
    return { value, origins }
  })

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/** The source of the value at `p`, or of the nearest table above it that has one. */
const originOf = (origins: Origins, p: ReadonlyArray<PropertyKey>) => {
  for (let n = p.length; n > 0; n--) {
    const origin = origins.get(p.slice(0, n).map(String).join("."))
    if (origin !== undefined) return { ...origin, below: p.slice(origin.from.length) }
  }
  return undefined
}

/** Every issue of a failed decode, each with the source of its value and, in the file, its position. */
const decodeProblems = (
  error: ParseResult.ParseError,
  origins: Origins,
  file: (Source & { readonly locations: Locations }) | undefined
): Array<ConfigErrorFields> =>
  ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => {
    const reason = issue._tag === "Missing" ? "missing required key" : issue.message
    const origin = originOf(origins, issue.path)
    const path = formatKeyPath(issue.path)
    if (origin === undefined) return { file: file?.label(path), path, reason }
    const label = origin.source.label(dotted(origin.from))
    if (origin.source !== file) return { file: label, path, reason }
    // A missing key is reported where its table is written.
    return {
      file: label,
      path,
      reason,
      ...file.locations.locateNearest([...origin.from, ...origin.below] as LocatedPath)
    }
  })

const byPosition = (a: ConfigErrorFields, b: ConfigErrorFields) =>
  (a.line ?? Infinity) - (b.line ?? Infinity) || (a.column ?? 0) - (b.column ?? 0)

/**
 * Loads and decodes; fails with every problem found where they can be told apart: each unknown
 * key of the file, and each bad value (all Schema issues). A source that cannot be read at all
 * (bad TOML, unreadable secret file) stops there.
 */
export const load = <A>(input: LoadInput): Effect.Effect<A, ReadonlyArray<ConfigErrorFields>> =>
  Effect.gen(function*() {
    const shape = shapeOf(input.schema)
    const env = yield* readEnv(input.envPrefix, shape)
    const toml = input.configFile === undefined ? undefined : yield* readToml(input.configFile, input.explicitFile)
    let located: Locations | undefined
    const file = toml === undefined || input.configFile === undefined ? undefined : {
      label: () => input.configFile,
      baseDir: path.dirname(path.resolve(input.configFile)),
      tree: toml.tree,
      // Only a problem needs positions: the scan runs at the first lookup.
      get locations() {
        return (located ??= locateKeys(toml.text))
      }
    }
    const flags: Source | undefined = input.flags === undefined
      ? undefined
      : { label: () => "command line", baseDir: process.cwd(), tree: input.flags }
    const defaults: Source = { label: () => undefined, baseDir: process.cwd(), tree: input.defaults }

    const unknown: Array<ConfigErrorFields> = file === undefined ? [] : unknownKeys(shape, file.tree).map((u) => ({
      file: file.label(),
      path: formatKeyPath(u.table),
      reason: `unknown key '${u.key}'${u.hint === undefined ? "" : ` (did you mean '${u.hint}'?)`}`,
      ...file.locations.locate([...u.table, u.key])
    }))
    const withUnknown = (problem: ConfigErrorFields) => [...unknown, locateProblem(problem, file)].sort(byPosition)

    // Highest precedence first: flags > env > TOML > defaults.
    const sources = [flags, env, file, defaults].filter((s): s is Source => s !== undefined)
    const providers: Array<ConfigProvider.ConfigProvider> = []
    for (const [i, source] of sources.entries()) {
      providers.push(indexProvider(yield* keysSet(shape, source).pipe(Either.mapLeft(withUnknown)), i))
    }
    const chain = providers.reduce((higher, lower) => ConfigProvider.orElse(higher, () => lower))

    const { origins, value } = yield* Effect.withConfigProvider(assemble(shape, sources, input.home), chain).pipe(
      Effect.mapError(withUnknown)
    )
    const decoded = Schema.decodeUnknownEither(input.schema)(value, { errors: "all", onExcessProperty: "ignore" })
    const problems = [...unknown, ...(Either.isLeft(decoded) ? decodeProblems(decoded.left, origins, file) : [])]
    if (problems.length === 0 && Either.isRight(decoded)) return decoded.right as A
    return yield* Effect.fail(problems.sort(byPosition))
  }).pipe(Effect.mapError((e) => (Array.isArray(e) ? e : [e as ConfigErrorFields])))

/** A single problem of the file's, placed at its key. */
const locateProblem = (problem: ConfigErrorFields, file: (Source & { readonly locations: Locations }) | undefined) =>
  file === undefined || problem.line !== undefined || problem.file !== file.label("") || problem.path === ""
    ? problem
    : { ...problem, ...file.locations.locateNearest(problem.path.split(".")) }
