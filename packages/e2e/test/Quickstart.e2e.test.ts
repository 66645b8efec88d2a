/**
 * `npm start` (scripts/quickstart.mjs) with the real programs: closing the terminal (SIGHUP) or
 * Ctrl-C stops both children and frees the port (bartos used to survive as an orphan holding
 * it), and a port already taken is explained with the variable that picks another.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { createServer, type Server } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { repoRoot, waitFor } from "./utils/procs.js"

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = createServer()
    s.once("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })

const listenOn = (port: number) =>
  new Promise<Server>((resolve, reject) => {
    const s = createServer()
    s.once("error", reject)
    s.listen(port, "127.0.0.1", () => resolve(s))
  })

/** Pids whose parent is `pid` (from /proc). */
const childrenOf = (pid: number): Array<number> =>
  readdirSync("/proc").filter((d) => /^\d+$/.test(d)).flatMap((d) => {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      return ppid === pid ? [Number(d)] : []
    } catch {
      return []
    }
  })

const gone = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.startsWith("Z")
  } catch {
    return true
  }
}

interface Quick {
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: Promise<{ code: number | null; signal: string | null }>
}

const quickstart = (dir: string, port: number): Quick => {
  const child = spawn(process.execPath, [join(repoRoot, "scripts", "quickstart.mjs")], {
    cwd: repoRoot,
    env: { ...process.env, BARTO_QUICKSTART_DIR: dir, BARTO_QUICKSTART_PORT: String(port), NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()))
  child.stderr!.on("data", (c: Buffer) => (out += c.toString()))
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal }))
  )
  return { child, output: () => out, exited }
}

describe("npm start (the quick start)", () => {
  const dirs: Array<string> = []
  const started: Array<Quick> = []
  afterEach(() => {
    for (const q of started.splice(0)) if (q.child.exitCode === null) q.child.kill("SIGKILL")
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  })
  const tempDir = () => {
    const d = mkdtempSync(join(tmpdir(), "barto-quickstart-"))
    dirs.push(d)
    return d
  }

  for (const signal of ["SIGHUP", "SIGINT"] as const) {
    it(
      `${signal} (${
        signal === "SIGHUP" ? "the terminal closed" : "Ctrl-C"
      }) stops bartos and bartoc and frees the port`,
      async () => {
        const port = await freePort()
        const q = quickstart(tempDir(), port)
        started.push(q)
        await waitFor("the quick start to be running", () => q.output().includes("barto is running") || undefined, {
          timeoutMs: 60_000
        })
        const kids = await waitFor("bartos and bartoc", () => {
          const k = childrenOf(q.child.pid!)
          return k.length === 2 ? k : undefined
        }, { timeoutMs: 30_000 })
        q.child.kill(signal)
        const exit = await q.exited
        expect(exit.code, q.output()).toBe(0)
        expect(kids.filter((pid) => !gone(pid))).toEqual([])
        // The port is free again: the next npm start can listen.
        const s = await listenOn(port)
        await new Promise((r) => s.close(r))
      },
      120_000
    )
  }

  it("a port already in use: both stop, and the message names the variable that picks another", async () => {
    const port = await freePort()
    const taken = await listenOn(port)
    try {
      const q = quickstart(tempDir(), port)
      started.push(q)
      const exit = await q.exited
      expect(exit.code).toBe(1)
      expect(q.output()).toContain(`port ${port} is already in use`)
      expect(q.output()).toContain(`BARTO_QUICKSTART_PORT=${port + 1} npm start`)
      expect(childrenOf(q.child.pid!)).toEqual([])
    } finally {
      await new Promise((r) => taken.close(r))
    }
  }, 120_000)
})
