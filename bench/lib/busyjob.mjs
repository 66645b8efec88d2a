/**
 * A job for the dispatch suite's loaded phase: burns one core and prints ~75-byte lines at a
 * steady rate (the "output-heavy job" of issue 17) until its deadline. Plain JavaScript so that
 * bartoc spawns it through `$SHELL -c 'node …'` without a loader.
 *
 * Usage: node busyjob.mjs <until epoch ms> <lines per second> (an ES module: top-level await)
 *
 * It exits at the deadline, and at once when its stdout goes away (bartoc stopped: EPIPE), so
 * that no job outlives the bench even when bartoc is SIGKILLed.
 */
const until = Number(process.argv[2])
const linesPerSec = Number(process.argv[3] ?? 2000)
const perTick = Math.max(1, Math.round(linesPerSec / 100))
process.stdout.on("error", () => process.exit(0))
let seq = 0
let next = Date.now()
let sink = 0
while (Date.now() < until) {
  // Pure CPU until the next 10 ms slot, then one burst of lines. The child's stdout is a socket
  // (libuv's socketpair), whose writes Node completes in the event loop: the loop must turn, and
  // a reader that falls behind (write() → false) holds this job back, not the other way round.
  while (Date.now() < next) sink = (sink * 31 + 7) % 1000003
  next += 10
  let text = ""
  for (let i = 0; i < perTick; i++) {
    text += `busy job ${process.pid} line ${String(seq++).padStart(9, "0")} ${"x".repeat(40)} ${sink % 10}\n`
  }
  if (!process.stdout.write(text)) await new Promise((resolve) => process.stdout.once("drain", resolve))
  else await new Promise((resolve) => setImmediate(resolve))
}
