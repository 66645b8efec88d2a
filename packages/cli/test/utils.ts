/**
 * Test helpers: run the whole CLI in-process with captured stdout/stderr and a chosen
 * environment (TTY or not, NO_COLOR, env vars), or as a real process through the bin script.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Cli from "../src/Cli.js"
import { CliEnv } from "../src/internal/root.js"

export interface Captured {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const text = (args: ReadonlyArray<unknown>) => args.map((a) => (typeof a === "string" ? a : String(a))).join(" ")

/** A Console that records `log` (stdout) and `error` (stderr) lines. */
export const captureConsole = () => {
  const out: Array<string> = []
  const err: Array<string> = []
  const noop = () => {}
  const unsafe: Console.UnsafeConsole = {
    assert: noop,
    clear: noop,
    count: noop,
    countReset: noop,
    debug: (...a) => err.push(text(a)),
    dir: noop,
    dirxml: noop,
    error: (...a) => err.push(text(a)),
    group: noop,
    groupCollapsed: noop,
    groupEnd: noop,
    info: (...a) => out.push(text(a)),
    log: (...a) => out.push(text(a)),
    table: noop,
    time: noop,
    timeEnd: noop,
    timeLog: noop,
    trace: (...a) => err.push(text(a)),
    warn: (...a) => err.push(text(a))
  }
  const lift = (f: (...a: Array<any>) => void) => (...a: Array<any>) => Effect.sync(() => f(...a))
  const console: Console.Console = {
    [Console.TypeId]: Console.TypeId,
    assert: lift(noop),
    clear: Effect.void,
    count: lift(noop),
    countReset: lift(noop),
    debug: lift(unsafe.debug),
    dir: lift(noop),
    dirxml: lift(noop),
    error: lift(unsafe.error),
    group: lift(noop),
    groupEnd: Effect.void,
    info: lift(unsafe.info),
    log: lift(unsafe.log),
    table: lift(noop),
    time: lift(noop),
    timeEnd: lift(noop),
    timeLog: lift(noop),
    trace: lift(unsafe.trace),
    warn: lift(unsafe.warn),
    unsafe
  }
  return { console, out, err }
}

/** A scratch directory removed at process exit. */
export const tempDir = (prefix = "barto-cli-test-"): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  process.once("exit", () => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

const isolatedHome = tempDir("barto-cli-home-")

/** An environment with no user config (HOME and XDG dirs point at an empty scratch dir). */
export const baseEnv = (extra: Record<string, string | undefined> = {}): Record<string, string | undefined> => ({
  HOME: isolatedHome,
  XDG_CONFIG_HOME: path.join(isolatedHome, "config"),
  XDG_DATA_HOME: path.join(isolatedHome, "data"),
  ...extra
})

export interface RunOptions {
  readonly env?: Record<string, string | undefined>
  readonly tty?: boolean
  readonly columns?: number
  /** The person at the terminal: answers each question (and the questions are recorded). */
  readonly confirm?: (question: string) => boolean
}

/** Runs `barto-cli <args>` in-process; never fails. */
export const runCli = (args: ReadonlyArray<string>, options: RunOptions = {}): Effect.Effect<Captured> =>
  Effect.suspend(() => {
    const { console, err, out } = captureConsole()
    return Cli.run(["node", "barto-cli", ...args]).pipe(
      Effect.provideService(CliEnv, {
        env: options.env ?? baseEnv(),
        stdoutIsTTY: options.tty ?? false,
        columns: options.columns,
        confirm: options.confirm === undefined ? undefined : (q: string) => Effect.sync(() => options.confirm!(q))
      }),
      Effect.provide(NodeContext.layer),
      Effect.withConsole(console),
      Effect.map((code) => ({
        code,
        stdout: out.map((l) => `${l}\n`).join(""),
        stderr: err.map((l) => `${l}\n`).join("")
      }))
    )
  })

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")
export const binPath = path.join(repoRoot, "packages/cli/bin/barto-cli.mjs")

/** Runs `node packages/cli/bin/barto-cli.mjs <args>` as a real process. */
export const runProcess = (
  args: ReadonlyArray<string>,
  options: { readonly env?: Record<string, string | undefined>; readonly timeoutMs?: number } = {}
): Effect.Effect<Captured> =>
  Effect.async<Captured>((resume) => {
    const env: Record<string, string> = {}
    for (const [k, v] of Object.entries({ PATH: process.env.PATH, ...baseEnv(), ...options.env })) {
      if (v !== undefined) env[k] = v
    }
    const child = spawn(process.execPath, [binPath, ...args], { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d))
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d))
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 25_000)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resume(Effect.succeed({ code: code ?? (signal === null ? -1 : 128), stdout, stderr }))
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })
