/**
 * Real processes for end-to-end tests: start bartos / bartoc / barto-cli from their bin shims,
 * watch their output line by line, wait on conditions (never fixed sleeps), stop or kill -9.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..")

export const binPath = (program: "bartos" | "bartoc" | "barto-cli") => {
  const pkg = program === "bartos" ? "server" : program === "bartoc" ? "agent" : "cli"
  return join(repoRoot, "packages", pkg, "bin", `${program}.mjs`)
}

/** Polls `check` until it returns a non-undefined value or the timeout passes. */
export const waitFor = async <A>(
  what: string,
  check: () => A | undefined | Promise<A | undefined>,
  options: { timeoutMs?: number; intervalMs?: number } = {}
): Promise<A> => {
  const timeoutMs = options.timeoutMs ?? 20_000
  const intervalMs = options.intervalMs ?? 50
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined && value !== false) return value as A
    } catch (e) {
      lastError = e
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`)
    }
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

export interface Proc {
  readonly name: string
  readonly child: ChildProcess
  readonly stdout: Array<string>
  readonly stderr: Array<string>
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Resolves with the first stdout/stderr line matching `re` (already seen lines count). */
  readonly waitForLine: (re: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>
  readonly stop: (signal?: NodeJS.Signals) => Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  readonly kill9: () => Promise<void>
  readonly output: () => string
}

const live = new Set<Proc>()

export const startProcess = (
  program: "bartos" | "bartoc" | "barto-cli",
  args: ReadonlyArray<string>,
  options: { env?: Record<string, string | undefined>; name?: string } = {}
): Proc => {
  const child = spawn(process.execPath, [binPath(program), ...args], {
    cwd: repoRoot,
    env: { ...process.env, NO_COLOR: "1", ...options.env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const stdout: Array<string> = []
  const stderr: Array<string> = []
  const waiters = new Set<{ re: RegExp; resolve: (m: RegExpMatchArray) => void }>()
  const feed = (stream: NodeJS.ReadableStream, sink: Array<string>) => {
    let rest = ""
    const push = (line: string) => {
      sink.push(line)
      for (const w of waiters) {
        const m = line.match(w.re)
        if (m) {
          waiters.delete(w)
          w.resolve(m)
        }
      }
    }
    stream.on("data", (chunk: Buffer) => {
      const parts = (rest + chunk.toString("utf8")).split("\n")
      rest = parts.pop() ?? ""
      for (const line of parts) push(line)
    })
    // a last line without a newline still counts
    stream.on("end", () => {
      if (rest !== "") push(rest)
      rest = ""
    })
  }
  feed(child.stdout!, stdout)
  feed(child.stderr!, stderr)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.once("exit", (code, signal) => resolveExit({ code, signal }))
  })
  const name = options.name ?? program
  const proc: Proc = {
    name,
    child,
    stdout,
    stderr,
    exited,
    output: () => `--- ${name} stdout ---\n${stdout.join("\n")}\n--- ${name} stderr ---\n${stderr.join("\n")}`,
    waitForLine: (re, timeoutMs = 20_000) => {
      for (const line of [...stdout, ...stderr]) {
        const m = line.match(re)
        if (m) return Promise.resolve(m)
      }
      return new Promise((resolveLine, reject) => {
        const w = { re, resolve: resolveLine }
        waiters.add(w)
        const timer = setTimeout(() => {
          waiters.delete(w)
          reject(new Error(`timed out waiting for ${re} from ${name}\n${proc.output()}`))
        }, timeoutMs)
        exited.then(() => {
          setTimeout(() => {
            if (waiters.delete(w)) {
              clearTimeout(timer)
              reject(new Error(`${name} exited while waiting for ${re}\n${proc.output()}`))
            }
          }, 50)
        })
      })
    },
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000)
      const result = await exited
      clearTimeout(timer)
      live.delete(proc)
      return result
    },
    kill9: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      await exited
      live.delete(proc)
    }
  }
  live.add(proc)
  exited.then(() => live.delete(proc))
  return proc
}

/** Kills every process a test left behind (afterEach / afterAll). */
export const killAll = async () => {
  await Promise.all([...live].map((p) => p.kill9()))
}

export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * Runs a program to completion (barto-cli, or bartos/bartoc expected to exit, e.g. on a config
 * error). Killed with SIGKILL after `timeoutMs`; the result then has `code: null`.
 */
export const runProgram = async (
  program: "bartos" | "bartoc" | "barto-cli",
  args: ReadonlyArray<string>,
  options: { env?: Record<string, string | undefined>; timeoutMs?: number; name?: string } = {}
): Promise<CliResult> => {
  const proc = startProcess(program, args, options)
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), options.timeoutMs ?? 90_000)
  await proc.exited
  clearTimeout(timer)
  // The exit event can come before the pipes' last data events: wait for both streams to close.
  await Promise.all(
    [proc.child.stdout, proc.child.stderr].map((s) =>
      s === null || s.closed ? undefined : new Promise<void>((r) => s.once("close", () => r()))
    )
  )
  const { code } = await proc.exited
  return { code, stdout: proc.stdout.join("\n"), stderr: proc.stderr.join("\n") }
}

/** Runs barto-cli to completion. */
export const runCli = (
  args: ReadonlyArray<string>,
  options: { env?: Record<string, string | undefined>; timeoutMs?: number } = {}
): Promise<CliResult> => runProgram("barto-cli", args, options)
