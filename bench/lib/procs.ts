/**
 * Real processes for the benchmarks: bartos / bartoc / holder children started with a raised fd
 * limit, watched line by line, waited on with bounded condition polls, and always cleaned up
 * (every child and temp dir is registered and removed on normal exit, on SIGINT/SIGTERM, and by
 * each suite's own `finally`). Small pieces copied from packages/e2e/test/utils/procs.ts.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..")

export const binPath = (program: "bartos" | "bartoc") =>
  join(repoRoot, "packages", program === "bartos" ? "server" : "agent", "bin", `${program}.mjs`)

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Polls `check` until it returns something other than undefined/false, or throws after `timeoutMs`. */
export const waitFor = async <A>(
  what: string,
  check: () => A | undefined | false | Promise<A | undefined | false>,
  options: { readonly timeoutMs?: number; readonly intervalMs?: number } = {}
): Promise<A> => {
  const timeoutMs = options.timeoutMs ?? 30_000
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined && value !== false) return value
    } catch (e) {
      lastError = e
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`)
    }
    await sleep(options.intervalMs ?? 100)
  }
}

// --- cleanup registry ------------------------------------------------------------------------

const liveProcs = new Set<Proc>()
const liveDirs = new Set<string>()

export const tempDir = (prefix: string): string => {
  const dir = mkdtempSync(join(tmpdir(), `barto-bench-${prefix}-`))
  liveDirs.add(dir)
  return dir
}

export const removeDir = (dir: string) => {
  rmSync(dir, { recursive: true, force: true })
  liveDirs.delete(dir)
}

/** Synchronous last resort: SIGKILL every child still registered and remove every temp dir. */
export const killEverythingNow = () => {
  for (const p of liveProcs) {
    if (p.alive()) {
      try {
        p.child.kill("SIGKILL")
      } catch {
        // already gone
      }
    }
  }
  liveProcs.clear()
  for (const d of liveDirs) rmSync(d, { recursive: true, force: true })
  liveDirs.clear()
}

process.once("exit", killEverythingNow)
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench: ${signal}, stopping children\n`)
    killEverythingNow()
    process.exit(130)
  })
}

// --- processes -------------------------------------------------------------------------------

export interface Proc {
  readonly name: string
  readonly child: ChildProcess
  /** The pid of the node process itself (the bash wrapper `exec`s into it). */
  readonly pid: number
  readonly lines: Array<string>
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  readonly alive: () => boolean
  readonly waitForLine: (re: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>
  readonly write: (text: string) => void
  /** SIGTERM, then SIGKILL after `graceMs`. */
  readonly stop: (graceMs?: number) => Promise<void>
  readonly tail: (n?: number) => string
}

export interface StartOptions {
  readonly name: string
  /** Raise the soft fd limit first (`bash -c 'ulimit -n N && exec node …'`). */
  readonly nofile?: number
  /** Extra node flags (before the script). */
  readonly nodeArgs?: ReadonlyArray<string>
  readonly stdin?: "pipe" | "ignore"
  readonly env?: Record<string, string | undefined>
  /** Keep at most this many output lines (a chatty child must not grow the bench's memory). */
  readonly keepLines?: number
}

/** Starts `node <nodeArgs> <script> <args>`; with `nofile`, through bash so the limit applies to node. */
export const startNode = (script: string, args: ReadonlyArray<string>, options: StartOptions): Proc => {
  const nodeArgv = [process.execPath, ...(options.nodeArgs ?? []), script, ...args]
  const [file, argv] = options.nofile !== undefined
    ? ["bash", ["-c", `ulimit -n ${options.nofile} && exec "$@"`, "bash", ...nodeArgv]] as const
    : [nodeArgv[0]!, nodeArgv.slice(1)] as const
  const child = spawn(file, argv, {
    cwd: repoRoot,
    env: { ...process.env, NO_COLOR: "1", ...options.env },
    stdio: [options.stdin ?? "ignore", "pipe", "pipe"]
  })
  const keep = options.keepLines ?? 2000
  const lines: Array<string> = []
  const waiters = new Set<{ re: RegExp; resolve: (m: RegExpMatchArray) => void }>()
  const feed = () => {
    let rest = ""
    return (chunk: Buffer) => {
      const parts = (rest + chunk.toString("utf8")).split("\n")
      rest = parts.pop() ?? ""
      for (const line of parts) {
        lines.push(line)
        if (lines.length > keep) lines.shift()
        for (const w of waiters) {
          const m = line.match(w.re)
          if (m) {
            waiters.delete(w)
            w.resolve(m)
          }
        }
      }
    }
  }
  child.stdout!.on("data", feed())
  child.stderr!.on("data", feed())
  let done = false
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.once("exit", (code, signal) => {
      done = true
      resolveExit({ code, signal })
    })
  })
  const tail = (n = 30) => `--- ${options.name} (last ${n} lines) ---\n${lines.slice(-n).join("\n")}`
  const proc: Proc = {
    name: options.name,
    child,
    pid: child.pid!,
    lines,
    exited,
    alive: () => !done,
    tail,
    write: (text) => {
      child.stdin?.write(text)
    },
    waitForLine: (re, timeoutMs = 60_000) => {
      for (const line of lines) {
        const m = line.match(re)
        if (m) return Promise.resolve(m)
      }
      return new Promise((resolveLine, reject) => {
        const w = { re, resolve: resolveLine }
        waiters.add(w)
        const timer = setTimeout(() => {
          waiters.delete(w)
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re} from ${options.name}\n${tail()}`))
        }, timeoutMs)
        w.resolve = (m) => {
          clearTimeout(timer)
          resolveLine(m)
        }
        void exited.then((e) =>
          setTimeout(() => {
            if (waiters.delete(w)) {
              clearTimeout(timer)
              reject(new Error(`${options.name} exited (${e.signal ?? e.code}) while waiting for ${re}\n${tail()}`))
            }
          }, 50)
        )
      })
    },
    stop: async (graceMs = 10_000) => {
      if (!done) child.kill("SIGTERM")
      const timer = setTimeout(() => {
        if (!done) child.kill("SIGKILL")
      }, graceMs)
      await exited
      clearTimeout(timer)
      liveProcs.delete(proc)
    }
  }
  liveProcs.add(proc)
  void exited.then(() => liveProcs.delete(proc))
  return proc
}

/** A port that was free a moment ago on 127.0.0.1 (bartos' config requires a port ≥ 1). */
export const freePort = (): Promise<number> =>
  new Promise((resolvePort, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolvePort(port))
    })
  })

/** Resident set size of a process in bytes (`VmRSS` of /proc/<pid>/status); undefined if gone. */
export const rssBytes = (pid: number): number | undefined => {
  try {
    const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+)\s+kB/m)
    return m ? Number(m[1]) * 1024 : undefined
  } catch {
    return undefined
  }
}

/** Direct children of a process (from /proc/<pid>/task/<pid>/children). */
export const childPids = (pid: number): Array<number> => {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

/** Waits until `path` contains a line matching `re` (log files written by -t). */
export const waitForFileLine = (path: string, re: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> =>
  waitFor(`${re} in ${path}`, () => {
    let text: string
    try {
      text = readFileSync(path, "utf8")
    } catch {
      return undefined
    }
    return text.match(re) ?? undefined
  }, { timeoutMs, intervalMs: 100 })

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat; undefined if gone. */
export const cpuSeconds = (pid: number): number | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // Fields after the parenthesised command name (which may contain spaces): utime is the 14th
    // field overall, i.e. the 12th after ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return undefined
  }
}

/** The pid of a running program by exact name (e.g. `mariadbd`), from /proc; undefined if none. */
export const pidOf = (comm: string): number | undefined => {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === comm) return Number(entry)
    } catch {
      // raced with an exit
    }
  }
  return undefined
}
