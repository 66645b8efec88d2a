/**
 * V8 flags for bartoc's idle footprint (issue 17), set before any other module of the program is
 * evaluated (bin.ts imports this module first; esbuild keeps that order in the bundle).
 *
 * - `--semi-space-growth-factor=1`: the young generation stays at its initial 1 MiB semi-spaces.
 *   Startup (building the Effect/Schema module graph) otherwise grows them to 4 MiB each, and V8
 *   keeps the 8 MiB new space committed while bartoc idles: ~5 MiB of RSS. The cost is more
 *   (cheap) scavenges while jobs' output is busy.
 * - `--optimize-for-size`: V8's low-memory mode (smaller heap growth steps, less eager feedback
 *   and code): ~2 MiB more.
 *
 * Both can be changed after the isolate exists; flags that only apply at isolate creation
 * (`--max-semi-space-size`, `--lite-mode`, `--single-threaded-gc`) cannot, and the launcher runs
 * bartoc in the same process, so they are not used.
 */
import { setFlagsFromString } from "node:v8"

setFlagsFromString("--semi-space-growth-factor=1")
setFlagsFromString("--optimize-for-size")
