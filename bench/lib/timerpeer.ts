/**
 * Child process for the dispatch suite: the physical floor of "start a job at a wall-clock
 * instant", measured NOW, on the same machine and under the same load as bartoc (perf-baselines
 * §4/§5 were measured on a quiet machine). It fires at the half seconds (x.500) so it never
 * competes with bartoc's whole-second work, and for each firing records, in ms after the target:
 *
 *   wake    the timer callback (setTimeout armed from Date.now(), as perf-baselines §5)
 *   durable1/2 after one / two 512 B appends + fdatasync (bartoc stores the last run, then
 *           appends RunStarted, durably, before it spawns: D3/D5)
 *   exited  after `$SHELL -c true` was spawned and has exited with both pipes closed
 *
 * Usage: holder-style, `node --import tsx timerpeer.ts <firings> <scratch file>`; prints one JSON
 * line `{"wake":[…],"durable1":[…],"durable2":[…],"exited":[…]}` at the end.
 */
import { spawn } from "node:child_process"
import { closeSync, fdatasyncSync, openSync, unlinkSync, writeSync } from "node:fs"

const [countText, scratch] = process.argv.slice(2)
const count = Number(countText)
const shell = process.env.SHELL !== undefined && process.env.SHELL !== "" ? process.env.SHELL : "/bin/sh"
const now = () => performance.timeOrigin + performance.now()
const fd = openSync(scratch!, "w")
const block = Buffer.alloc(512, 0x61)

const wake: Array<number> = []
const durable1: Array<number> = []
const durable2: Array<number> = []
const exited: Array<number> = []

const spawnTrue = () =>
  new Promise<void>((resolve) => {
    const child = spawn(shell, ["-c", "true"], { stdio: ["ignore", "pipe", "pipe"], detached: true })
    child.stdout.resume()
    child.stderr.resume()
    child.once("close", () => resolve())
    child.once("error", () => resolve())
  })

for (let i = 0; i < count; i++) {
  const target = Math.floor((Date.now() - 500) / 1000) * 1000 + 1500
  await new Promise<void>((resolve) => setTimeout(resolve, target - Date.now()))
  // Woken early (perf-baselines §5): wait the remainder, as bartoc does.
  while (now() < target) await new Promise<void>((resolve) => setTimeout(resolve, 1))
  wake.push(now() - target)
  writeSync(fd, block)
  fdatasyncSync(fd)
  durable1.push(now() - target)
  writeSync(fd, block)
  fdatasyncSync(fd)
  durable2.push(now() - target)
  await spawnTrue()
  exited.push(now() - target)
}
closeSync(fd)
unlinkSync(scratch!)
process.stdout.write(JSON.stringify({ wake, durable1, durable2, exited }) + "\n")
