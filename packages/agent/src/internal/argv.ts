/**
 * What @effect/cli cannot express for bartoc's flags (reference §4.8): `-v`/`-q` are repeatable
 * and may be clustered (`-vvv`), and `-V` means `--version`. Counts are taken here and the flag is
 * passed on once, so the parser still validates and documents it.
 */

/** Flags that take a value: their value is never read as a flag. */
const VALUE_OPTIONS = new Set([
  "-c",
  "--config-absolute-path",
  "-t",
  "--tracing-absolute-path",
  "-r",
  "--redb-absolute-path"
])
const CLUSTER = /^-[vqeV]{2,}$/

export interface Normalized {
  readonly argv: Array<string>
  readonly verbose: number
  readonly quiet: number
}

/** `argv` is the full process argv (node, script, args…). */
export const normalize = (argv: ReadonlyArray<string>): Normalized => {
  const out: Array<string> = []
  let verbose = 0
  let quiet = 0
  for (let i = 2; i < argv.length; i++) {
    const token = argv[i]!
    if (token === "--") {
      out.push(...argv.slice(i))
      break
    }
    if (VALUE_OPTIONS.has(token)) {
      out.push(token)
      if (i + 1 < argv.length) out.push(argv[++i]!)
    } else if (token === "-v" || token === "--verbose") {
      verbose++
    } else if (token === "-q" || token === "--quiet") {
      quiet++
    } else if (token === "-V") {
      out.push("--version")
    } else if (CLUSTER.test(token)) {
      for (const c of token.slice(1)) {
        if (c === "v") verbose++
        else if (c === "q") quiet++
        else if (c === "V") out.push("--version")
        else out.push(`-${c}`)
      }
    } else {
      out.push(token)
    }
  }
  const flags = [...(verbose > 0 ? ["-v"] : []), ...(quiet > 0 ? ["-q"] : [])]
  return { argv: [...argv.slice(0, 2), ...flags, ...out], verbose, quiet }
}
