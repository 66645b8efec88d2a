/** bartoc's flags through the shared normaliser (repeatable -v/-q, -V = --version). */
import { type GlobalFlags, normalizeGlobalFlags } from "@barto/domain/Argv"

const VALUE_OPTIONS = new Set([
  "-c",
  "--config-absolute-path",
  "-t",
  "--tracing-absolute-path",
  "-r",
  "--redb-absolute-path"
])

/** `argv` is the full process argv (node, script, args…). */
export const normalize = (argv: ReadonlyArray<string>): GlobalFlags =>
  normalizeGlobalFlags(argv, { valueOptions: VALUE_OPTIONS, clusterLetters: "e" })
