/**
 * A V8 flag for bartoc's idle footprint (issue 17), set before any other module of the program is
 * evaluated (bin.ts imports this module first; esbuild keeps that order in the bundle).
 *
 * `--semi-space-growth-factor=1` while bartoc starts: the young generation stays at its initial
 * 1 MiB semi-spaces. Startup (building the Effect/Schema module graph, the handshake, the schedule
 * table) otherwise grows them to 4 MiB each, and V8 keeps that 8 MiB new space committed while
 * bartoc idles: ~5–7 MiB of RSS. After `STARTUP_MS` the default growth (2) is back, so an agent whose
 * jobs print a lot gets the larger young generation again: measured with the factor kept at 1,
 * dispatch lateness under busy jobs (bench `dispatch`, loaded phase) went from p50 2 ms to 11–114 ms.
 *
 * Flags that only apply at isolate creation (`--max-semi-space-size`, `--lite-mode`) cannot be set
 * here, and the launcher runs bartoc in the same process. `--optimize-for-size` (~2 MiB less) and
 * `--no-opt` (~5 MiB less) were measured too and slow the busy path, so they are not used.
 */
import { setFlagsFromString } from "node:v8"

export const STARTUP_MS = 15_000

setFlagsFromString("--semi-space-growth-factor=1")
setTimeout(() => setFlagsFromString("--semi-space-growth-factor=2"), STARTUP_MS).unref()
