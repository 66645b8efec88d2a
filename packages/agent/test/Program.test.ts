/**
 * The real `bartoc` program (bin/bartoc.mjs through tsx) against the fake bartos: start line,
 * hello, clean SIGTERM shutdown, configuration errors, and giving up with exit 1.
 */
import { AGENT_VERSION } from "@barto/agent/SystemInfo"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as FakeBartos from "./utils/FakeBartos.js"

/** tsx start-up alone takes seconds on a loaded 2-core machine. */
const PROCESS_TEST_TIMEOUT = 60_000

const BIN = fileURLToPath(new URL("../bin/bartoc.mjs", import.meta.url))

interface Proc {
  readonly child: ChildProcess
  stdout: string
  stderr: string
  exit: { readonly code: number | null; readonly signal: string | null } | undefined
  readonly waitOutput: (pred: (p: Proc) => boolean, what: string) => Effect.Effect<void>
  readonly waitExit: Effect.Effect<{ readonly code: number | null; readonly signal: string | null }>
}

const tempDir = (): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "bartoc-program-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

/** Spawns bartoc with a clean environment (no BARTOC_* leaking in, XDG dirs under `home`). */
const bartoc = (
  home: string,
  args: ReadonlyArray<string>,
  extraEnv: Record<string, string> = {}
): Effect.Effect<Proc, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, [BIN, ...args], {
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: home,
          XDG_CONFIG_HOME: path.join(home, "config"),
          XDG_DATA_HOME: path.join(home, "data"),
          SHELL: "/bin/sh",
          ...extraEnv
        },
        stdio: ["ignore", "pipe", "pipe"]
      })
      const listeners = new Set<() => void>()
      const notify = () => {
        for (const l of [...listeners]) l()
      }
      const until = (check: () => boolean) =>
        Effect.async<void>((resume) => {
          if (check()) return resume(Effect.void)
          const l = () => {
            if (check()) {
              listeners.delete(l)
              resume(Effect.void)
            }
          }
          listeners.add(l)
          return Effect.sync(() => listeners.delete(l))
        })
      const proc: Proc = {
        child,
        stdout: "",
        stderr: "",
        exit: undefined,
        waitOutput: (pred, what) =>
          until(() => pred(proc)).pipe(
            FakeBartos.within(
              45_000,
              `${what} (stdout: ${JSON.stringify(proc.stdout)}, stderr: ${JSON.stringify(proc.stderr)})`
            )
          ),
        waitExit: Effect.suspend(() =>
          until(() => proc.exit !== undefined).pipe(
            Effect.map(() => proc.exit!),
            FakeBartos.within(45_000, `bartoc to exit (stderr: ${JSON.stringify(proc.stderr)})`)
          )
        )
      }
      child.stdout!.on("data", (chunk: Buffer) => {
        proc.stdout += chunk.toString("utf8")
        notify()
      })
      child.stderr!.on("data", (chunk: Buffer) => {
        proc.stderr += chunk.toString("utf8")
        notify()
      })
      child.on("exit", (code, signal) => {
        proc.exit = { code, signal }
        notify()
      })
      return proc
    }),
    (proc) => Effect.sync(() => proc.exit === undefined && proc.child.kill("SIGKILL"))
  )

const writeConfig = (dir: string, text: string) => {
  const file = path.join(dir, "bartoc.toml")
  fs.writeFileSync(file, text)
  return file
}

describe("bartoc program", () => {
  it.scopedLive(
    "starts, says hello to bartos, and exits 0 on SIGTERM closing the socket with 1000",
    () =>
      Effect.gen(function*() {
        const server = yield* FakeBartos.make()
        const dir = yield* tempDir()
        const config = writeConfig(dir, `name = "prog-agent"\n[bartos]\nhost = "127.0.0.1"\nport = ${server.port}\n`)
        const state = path.join(dir, "state", "bartoc.db")
        const proc = yield* bartoc(dir, ["-c", config, "-r", state])
        yield* proc.waitOutput((p) => p.stdout.includes("starting"), "the start line")
        assert.include(
          proc.stdout,
          `bartoc ${AGENT_VERSION} starting (agent 'prog-agent', server ws://127.0.0.1:${server.port}, state ${state})`
        )
        const c1 = yield* server.connection(1)
        const hello = yield* c1.waitFor(FakeBartos.isTag("AgentHello"))
        assert.strictEqual(hello.lastSeq, -1)
        assert.strictEqual(c1.request.url, "/v1/ws/worker?name=prog-agent")
        yield* c1.waitFor(FakeBartos.isTag("AgentInfo"))
        assert.isTrue(fs.existsSync(state))

        proc.child.kill("SIGTERM")
        const exit = yield* proc.waitExit
        assert.deepStrictEqual(exit, { code: 0, signal: null })
        const closed = yield* c1.waitClosed
        assert.strictEqual(closed.code, 1000)
        assert.include(closed.reason, "shutting down")
      }),
    PROCESS_TEST_TIMEOUT
  )

  it.scopedLive("a bad configuration exits 1 naming the file and the key", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const config = writeConfig(dir, `name = "prog-agent"\n[bartos]\nport = 99999\n`)
      const proc = yield* bartoc(dir, ["-c", config])
      const exit = yield* proc.waitExit
      assert.strictEqual(exit.code, 1)
      assert.match(
        proc.stderr,
        new RegExp(`^bartoc: ${config.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:3:1: bartos\\.port: `, "m")
      )
      assert.notInclude(proc.stdout, "starting")
    }), PROCESS_TEST_TIMEOUT)

  it.scopedLive(
    "a BARTOC_* variable that sets no key: a warning on stderr naming it, and bartoc starts",
    () =>
      Effect.gen(function*() {
        const server = yield* FakeBartos.make()
        const dir = yield* tempDir()
        const config = writeConfig(dir, `name = "prog-agent"\n[bartos]\nhost = "127.0.0.1"\nport = ${server.port}\n`)
        const proc = yield* bartoc(dir, ["-c", config, "-r", path.join(dir, "s.db")], {
          BARTOC_BARTOS_PORT: "1",
          BARTOC_CATCH_UP_LIMIT: "3"
        })
        yield* proc.waitOutput((p) => p.stdout.includes("starting"), "the start line")
        yield* proc.waitOutput((p) => / WARN environment BARTOC_BARTOS_PORT: /.test(p.stderr), "the warning")
        assert.include(proc.stderr, "sets no configuration key, ignored (did you mean BARTOC_BARTOS__PORT?)")
        assert.notInclude(proc.stderr, "CATCH_UP_LIMIT")
        yield* (yield* server.connection(1)).waitFor(FakeBartos.isTag("AgentHello"))
        proc.child.kill("SIGTERM")
        assert.strictEqual((yield* proc.waitExit).code, 0)
      }),
    PROCESS_TEST_TIMEOUT
  )

  it.scopedLive("an unreachable bartos with retry_count = 2 exits 1 after two attempts", () =>
    Effect.gen(function*() {
      const server = yield* FakeBartos.make()
      const port = server.port
      yield* server.stop
      const dir = yield* tempDir()
      const config = writeConfig(
        dir,
        `name = "prog-agent"\nretry_count = 2\n[bartos]\nhost = "127.0.0.1"\nport = ${port}\n`
      )
      const proc = yield* bartoc(dir, ["-c", config, "-r", path.join(dir, "s.db")])
      const exit = yield* proc.waitExit
      assert.strictEqual(exit.code, 1)
      assert.include(proc.stderr, "giving up after 2 attempt(s)")
    }), PROCESS_TEST_TIMEOUT)
})
