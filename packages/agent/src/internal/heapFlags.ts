/**
 * bartoc's idle footprint (issue 17): V8 flags set before any other module of the program is
 * evaluated (bin.ts imports this module first; esbuild keeps that order in the bundle), undone after
 * `STARTUP_MS`, and glibc's `malloc_trim` once startup's memory is free. Idle RSS, bench `bartoc`
 * (10 s idle, load 10–15): 79–80 MiB before, ~62 MiB with all three; ~61 MiB after 30 s idle.
 *
 * `--semi-space-growth-factor=1` while bartoc starts: the young generation stays at its initial
 * 1 MiB semi-spaces. Startup (building the Effect/Schema module graph, the handshake, the schedule
 * table) otherwise grows them to 4 MiB each, and V8 keeps that 8 MiB new space committed while
 * bartoc idles: ~5–7 MiB of RSS. After `STARTUP_MS` the default growth (2) is back, so an agent whose
 * jobs print a lot gets the larger young generation again: measured with the factor kept at 1,
 * dispatch lateness under busy jobs (bench `dispatch`, loaded phase) went from p50 2 ms to 11–114 ms.
 *
 * `--no-opt --no-sparkplug` while bartoc starts: startup code runs once, yet its loops got hot
 * enough for Sparkplug and TurboFan, whose output and whose own machine code (pages of the node
 * binary) then stayed resident: ~6 MiB at idle (file-backed −4, anonymous −2). Both tiers are back
 * after `STARTUP_MS`, so busy jobs get optimized code (kept off for good, `--no-opt` slowed the busy
 * path); TurboFan then still optimizes something while idle and ~3 MiB of its pages come back.
 *
 * `malloc_trim` (internal/mallocTrim.ts): V8 parses the whole bundle as one module in an ~11 MiB
 * zone (`--trace-zone-stats`: "unoptimized-compile-parse-zone"); glibc gets it back with `free` but
 * keeps the pages, since live chunks sit above them, so they stayed resident for the agent's life:
 * trimming gave −10.5 MiB idle RSS. Trimmed at `TRIM_AT_MS` (a loaded machine starts slower), then
 * every `TRIM_EVERY_MS` for what bursts of job output leave behind; each trim takes well under 1 ms.
 *
 * Flags that only apply at isolate creation (`--max-semi-space-size`, `--lite-mode`) cannot be set
 * here, and the launcher runs bartoc in the same process. `--optimize-for-size` (~2 MiB less) was
 * measured too and slowed the busy path. `MALLOC_ARENA_MAX`/`MALLOC_TRIM_THRESHOLD_` would have to
 * be in the environment before Node starts (Node 20 cannot re-exec in place); measured without the
 * trim they changed nothing beyond noise.
 */
import { setFlagsFromString } from "node:v8"
import * as MallocTrim from "./mallocTrim.js"

export const STARTUP_MS = 15_000

/** Startup's flags, and the defaults they give way to after `STARTUP_MS`. */
const STARTUP_FLAGS = ["--semi-space-growth-factor=1", "--no-opt", "--no-sparkplug"]
const LATER_FLAGS = ["--semi-space-growth-factor=2", "--opt", "--sparkplug"]

for (const flag of STARTUP_FLAGS) setFlagsFromString(flag)
setTimeout(() => {
  for (const flag of LATER_FLAGS) setFlagsFromString(flag)
}, STARTUP_MS).unref()

export const TRIM_AT_MS: ReadonlyArray<number> = [3_000, 8_000, STARTUP_MS + 1_000]
export const TRIM_EVERY_MS = 5 * 60_000

if (MallocTrim.available) {
  for (const ms of TRIM_AT_MS) setTimeout(MallocTrim.trim, ms).unref()
  setInterval(MallocTrim.trim, TRIM_EVERY_MS).unref()
}
