/**
 * bartoc's idle footprint (issue 17): two V8 flags set before any other module of the program is
 * evaluated (bin.ts imports this module first; esbuild keeps that order in the bundle) and undone
 * after `STARTUP_MS`, one malloc arena (the addon's `M_ARENA_MAX`, set when this module loads it),
 * memory-reducing GCs right after startup that also drop startup's bytecode, and glibc's
 * `malloc_trim` once startup's memory is free.
 *
 * `--semi-space-growth-factor=1` while bartoc starts: the young generation stays at its initial
 * 1 MiB semi-spaces. Startup (building the Effect/Schema module graph, the handshake, the schedule
 * table) otherwise grows them to 4 MiB each, and V8 keeps that 8 MiB new space committed while
 * bartoc idles: ~5–7 MiB of RSS. After `STARTUP_MS` the default growth (2) is back, so an agent whose
 * jobs print a lot gets the larger young generation again: measured with the factor kept at 1,
 * dispatch lateness under busy jobs (bench `dispatch`, loaded phase) went from p50 2 ms to 11–114 ms.
 *
 * `malloc_trim` (internal/mallocTrim.ts): V8 parses the whole bundle as one module in an ~11 MiB
 * zone (`--trace-zone-stats`: "unoptimized-compile-parse-zone"); glibc gets it back with `free` but
 * keeps the pages, since live chunks sit above them, so they stayed resident for the agent's life
 * (trimming an idle bartoc from outside with gdb: −10.5 MiB). Trimmed at `TRIM_AT_MS`, then after
 * V8's full GCs (at most every `TRIM_GAP_MS`), which free more malloc memory: startup's leftovers
 * a few seconds into idling, what bursts of job output leave behind later. A trim takes ~0.02 ms
 * with nothing to give back and ~3 ms for 38 MiB (measured in a test process), so one that lands
 * right before a run's instant can delay it by about that much.
 *
 * `--bytecode-old-age=1` from the first reducing GC to the trim: V8 drops a function's bytecode once
 * it has gone unrun through `BYTECODE_OLD_AGE` (5) full GCs, which an idle agent takes hours to
 * see; between the two startup GCs, bytecode that did not run since the first goes (module bodies,
 * configuration, the handshake: old space 8.1–8.3 → 7.5 MiB used, ~0.5 MiB of RSS). What runs again
 * later is compiled again, lazily, as V8 does after its own flushing; what runs every second
 * (a schedule's path) keeps its code. `--stress-flush-code` (drops all of it) saved no more.
 *
 * `--no-sparkplug` while bartoc starts: startup's code runs once, and its baseline (Sparkplug)
 * machine code, ~0.5 MiB of code space that idle never frees, and the pages of the node binary that
 * Sparkplug itself touches were ~0.7 MiB of idle RSS (bench `bartoc`). TurboFan stays on, and after
 * `STARTUP_MS` Sparkplug is back for what runs often (job output).
 *
 * `reduceHeap` at `REDUCE_AT_MS` (internal/mallocTrim.ts): startup promotes ~5 MiB of short-lived
 * objects into the old generation and no full GC runs until V8's memory reducer, ~8 s after startup
 * (three GCs ~0.6 s apart; the second gives the pages back). Until then old space holds ~12.5 MiB
 * instead of ~8.7, and on a loaded machine the reducer's incremental steps come late: the bench row
 * at 10 s read either ~60 or ~65 MiB, run to run. Two memory-reducing GCs at 2 and 3 s (the first
 * frees, its sweeping ends, the second releases the empty pages: old space 15.4 → 14.4 → 10.7 MiB
 * committed) make the small figure the rule. They are incremental, as the reducer's are (load 5–6:
 * steps of at most ~20 ms, final pauses 2–12 ms); asked for at the critical level, V8 does them in
 * one pause each, 18–93 ms. A plain full GC (`gc()` through `--expose-gc`) does not do it: it frees
 * but keeps the pages, and then the memory reducer does not run either (66 MiB, every run).
 *
 * Measured and not used: `--no-opt --no-sparkplug` for the startup window only (set in the bin
 * shim, both tiers back after `STARTUP_MS`): ~4 MiB less idle RSS (TurboFan's and Sparkplug's pages
 * of the node binary and their code), but dispatch lateness under busy jobs (bench `dispatch
 * --quick`, load 12–13) went to p50 299 / p99 713 ms against 16 / 170 ms without, so optimized
 * code for the busy path wins. `--optimize-for-size` (~2 MiB less) and `--no-opt` for good (~5 MiB
 * less) slowed the busy path too. Flags that only apply at isolate creation (`--max-semi-space-size`,
 * `--lite-mode`) cannot be set here, and the launcher runs bartoc in the same process.
 * `MALLOC_ARENA_MAX` / `MALLOC_TRIM_THRESHOLD_` would have to be in the environment before Node
 * starts (Node 20 cannot re-exec in place); measured without the trim they changed nothing beyond
 * run-to-run noise. With the trim, one arena (the addon's `mallopt`, no environment needed) is
 * ~1 MiB less: the threads' own arenas (0.3–0.7 MiB each, three of them) stay resident around their
 * few live chunks, which the trim cannot give back.
 */
import { constants, performance, PerformanceObserver } from "node:perf_hooks"
import { setFlagsFromString } from "node:v8"
import * as MallocTrim from "./mallocTrim.js"

export const STARTUP_MS = 15_000

setFlagsFromString("--semi-space-growth-factor=1 --no-sparkplug")
setTimeout(() => setFlagsFromString("--semi-space-growth-factor=2 --sparkplug"), STARTUP_MS).unref()

/** Two memory-reducing GCs once startup is over, then the trim. */
export const REDUCE_AT_MS: ReadonlyArray<number> = [2_000, 3_000]
export const TRIM_AT_MS = 4_000
/** At most one trim per this long after V8's full GCs. */
export const TRIM_GAP_MS = 5_000
/** Full GCs a function's bytecode survives unrun before V8 drops it: V8's default, and the startup GCs'. */
export const BYTECODE_OLD_AGE = 5
export const STARTUP_BYTECODE_OLD_AGE = 1

if (MallocTrim.available) {
  setTimeout(() => {
    setFlagsFromString(`--bytecode-old-age=${STARTUP_BYTECODE_OLD_AGE}`)
    MallocTrim.reduceHeap()
  }, REDUCE_AT_MS[0]).unref()
  for (const at of REDUCE_AT_MS.slice(1)) setTimeout(MallocTrim.reduceHeap, at).unref()
  setTimeout(() => {
    setFlagsFromString(`--bytecode-old-age=${BYTECODE_OLD_AGE}`)
    MallocTrim.trim()
  }, TRIM_AT_MS).unref()
  // What a full GC frees (buffers, V8's own malloc'd memory) is free pages of the malloc heap only
  // after it: trim then. V8's memory reducer runs such GCs a few seconds into idling.
  let last = 0
  new PerformanceObserver((list) => {
    const now = performance.now()
    if (now - last < TRIM_GAP_MS) return
    if (
      !list.getEntries().some((e) =>
        (e as unknown as { readonly detail?: { readonly kind?: number } }).detail?.kind ===
          constants.NODE_PERFORMANCE_GC_MAJOR
      )
    ) return
    last = now
    MallocTrim.trim()
  }).observe({ entryTypes: ["gc"] })
}
