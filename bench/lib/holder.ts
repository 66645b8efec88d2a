/**
 * Child process for the "agents held" benchmark: opens N simulated agents against bartos, pings
 * each every 5 s (as bartoc does), prints `ready <n>` once all completed the handshake and holds
 * them until stdin closes or it is killed.
 */
import * as M from "@barto/domain/Messages"
import { connectSimAgent, type SimAgent } from "./simagent.js"

const [url, prefix, countText] = process.argv.slice(2)
const count = Number(countText)
const agents: Array<SimAgent> = []
let failed = 0
const batch = 200
for (let i = 0; i < count; i += batch) {
  const settled = await Promise.allSettled(
    Array.from({ length: Math.min(batch, count - i) }, (_, j) => connectSimAgent(url!, `${prefix}-${i + j}`))
  )
  for (const s of settled) s.status === "fulfilled" ? agents.push(s.value) : failed++
}
let id = 0
setInterval(() => {
  for (const a of agents) {
    if (a.ws.readyState === a.ws.OPEN) a.send({ _tag: "Ping", id: id++, sentAt: (Date.now() * 1000) as M.Micros })
  }
}, 5000)
process.stdout.write(`ready ${agents.length} failed ${failed}\n`)
process.stdin.resume()
process.stdin.on("end", () => process.exit(0))
