/**
 * bartoc's memory addon (native/malloc_trim.cc, compiled by scripts/build.mjs into
 * dist/malloc_trim.node). Loading it limits glibc to one malloc arena (`M_ARENA_MAX`); `trim` hands
 * the free pages inside the malloc heap back to the kernel (freed memory otherwise stays resident
 * while any live chunk sits above it); `reduceHeap` asks V8 for the memory-reducing full GC its
 * memory reducer would start ~8 s after startup. No addon (not built, no C++ compiler, not loadable):
 * both do nothing and say so.
 */
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"

interface Native {
  readonly mallocTrim: () => number
  readonly reduceHeap: () => void
}

/** Next to the bundle (dist/bartoc.mjs), or in dist/ when bartoc runs from src/internal through tsx. */
const CANDIDATES = ["./malloc_trim.node", "../../dist/malloc_trim.node"]

const load = (): Native | undefined => {
  const require = createRequire(import.meta.url)
  for (const candidate of CANDIDATES) {
    try {
      return require(fileURLToPath(new URL(candidate, import.meta.url))) as Native
    } catch {
      // not there, or not loadable on this system: the next candidate, else no trimming
    }
  }
  return undefined
}

const native = load()

/** Whether the addon is loaded (trimming does something). */
export const available: boolean = native !== undefined

/** Trims the malloc heap; `false` when there is no addon. ~0.02 ms with nothing to give back, ~3 ms for 38 MiB. */
export const trim = (): boolean => {
  if (native === undefined) return false
  native.mallocTrim()
  return true
}

/**
 * V8's moderate memory-pressure notification: starts an incremental full GC that compacts and
 * releases empty pages (none when one is already marking); `false` when there is no addon. Its
 * steps and final pause are those of V8's memory reducer (for bartoc's ~14 MiB heap at startup,
 * load 5–6: steps of at most ~20 ms, final pause 2–12 ms).
 */
export const reduceHeap = (): boolean => {
  if (native === undefined) return false
  native.reduceHeap()
  return true
}
