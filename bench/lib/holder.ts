/**
 * Child process for the "agents held" and "reconnect" benchmarks: opens N simulated agents against
 * bartos (200 handshakes in flight, a new one as soon as one is done), pings each every 5 s (as
 * bartoc does) and holds them until stdin closes or it is killed. Reports on stdout:
 *   `ready <held> failed <failed> ms <connect time> [error <first error>]` once every handshake is done,
 *   `closed <n> codes <code>:<count>,…` whenever held connections were closed by the other side
 *   (at most once a second).
 */
import type * as M from "@barto/domain/Messages"
import { connectSimAgent, type SimAgent } from "./simagent.js"

const [url, prefix, countText] = process.argv.slice(2)
const count = Number(countText)
const agents: Array<SimAgent> = []
let failed = 0
let firstError: string | undefined
let closed = 0
const codes = new Map<number, number>()
let reported = 0
const inFlight = 200
// Ping from the start, as bartoc does from its connect: bartos drops an agent silent for 15 s,
// and a big step takes longer than that to connect (each agent's first ping comes ≤ 5 s after
// its handshake).
let id = 0
setInterval(() => {
  for (const a of agents) {
    if (a.ws.readyState === a.ws.OPEN) a.send({ _tag: "Ping", id: id++, sentAt: (Date.now() * 1000) as M.Micros })
  }
}, 5000)
const t0 = performance.now()
// A window of `inFlight` handshakes: each one done starts the next, as independent agents would
// (not rounds of 200 that each wait for their slowest).
let next = 0
const worker = async () => {
  while (next < count) {
    const name = `${prefix}-${next++}`
    try {
      const a = await connectSimAgent(url!, name)
      agents.push(a)
      a.ws.once("close", (code) => {
        closed++
        codes.set(code, (codes.get(code) ?? 0) + 1)
      })
    } catch (e) {
      failed++
      firstError ??= e instanceof Error ? e.message : String(e)
    }
  }
}
await Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker))
const ms = performance.now() - t0
setInterval(() => {
  if (closed !== reported) {
    reported = closed
    process.stdout.write(`closed ${closed} codes ${[...codes].map(([c, n]) => `${c}:${n}`).join(",")}\n`)
  }
}, 1000)
process.stdout.write(
  `ready ${agents.length} failed ${failed} ms ${ms.toFixed(0)}${
    firstError !== undefined ? ` error ${firstError.replace(/\s+/g, " ")}` : ""
  }\n`
)
process.stdin.resume()
process.stdin.on("end", () => process.exit(0))
