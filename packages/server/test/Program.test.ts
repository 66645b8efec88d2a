/**
 * The real `bartos` binary (bin/bartos.mjs through tsx), as an operator starts it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as TestServer from "./utils/server.js"

const BIN = fileURLToPath(new URL("../bin/bartos.mjs", import.meta.url))

/** A port nobody listens on right now (the config schema has no "port 0"). */
const freePort = Effect.async<number>((resume) => {
  const probe = net.createServer()
  probe.listen(0, "127.0.0.1", () => {
    const port = (probe.address() as net.AddressInfo).port
    probe.close(() => resume(Effect.succeed(port)))
  })
})

interface Running {
  readonly child: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  /** Resolves with the first match of `re` in stdout. */
  readonly line: (re: RegExp, timeoutMs?: number) => Effect.Effect<RegExpMatchArray, Error>
  /** Resolves with the first match of `re` in stderr (logs, with `-e`). */
  readonly log: (re: RegExp, timeoutMs?: number) => Effect.Effect<RegExpMatchArray, Error>
  readonly exited: (timeoutMs?: number) => Effect.Effect<{ code: number | null; signal: string | null }, Error>
}

const bartos = (args: ReadonlyArray<string>, extraEnv: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "bartos-home-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(home, { recursive: true, force: true })))
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      HOME: home,
      XDG_CONFIG_HOME: path.join(home, ".config"),
      XDG_DATA_HOME: path.join(home, "data")
    }
    for (const k of Object.keys(env)) if (k.startsWith("BARTOS_")) delete env[k]
    Object.assign(env, extraEnv)
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    let err = ""
    const exit = yield* Deferred.make<{ code: number | null; signal: string | null }>()
    const watchers = new Set<() => void>()
    child.stdout!.on("data", (c: Buffer) => {
      out += c.toString("utf8")
      for (const w of watchers) w()
    })
    child.stderr!.on("data", (c: Buffer) => {
      err += c.toString("utf8")
      for (const w of watchers) w()
    })
    child.on("exit", (code, signal) => Deferred.unsafeDone(exit, Exit.succeed({ code, signal })))
    yield* Effect.addFinalizer(() => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL")))
    const timeout = (ms: number | undefined, what: string) =>
      Effect.timeoutFail({
        duration: Duration.millis(ms ?? 20_000),
        onTimeout: () => new Error(`timed out waiting for ${what}; stdout:\n${out}\nstderr:\n${err}`)
      })
    const waitFor = (text: () => string, re: RegExp, timeoutMs: number | undefined) =>
      Effect.async<RegExpMatchArray>((resume) => {
        const check = () => {
          const m = text().match(re)
          if (m !== null) {
            watchers.delete(check)
            resume(Effect.succeed(m))
          }
        }
        watchers.add(check)
        check()
        return Effect.sync(() => watchers.delete(check))
      }).pipe(timeout(timeoutMs, `${re}`))
    const running: Running = {
      child,
      stdout: () => out,
      stderr: () => err,
      line: (re, timeoutMs) => waitFor(() => out, re, timeoutMs),
      log: (re, timeoutMs) => waitFor(() => err, re, timeoutMs),
      exited: (timeoutMs) => Deferred.await(exit).pipe(timeout(timeoutMs, "exit"))
    }
    return running
  })

const tempConfig = (contents: string | ((dir: string) => string)) =>
  Effect.gen(function*() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bartos-prog-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
    const file = path.join(dir, "bartos.toml")
    fs.writeFileSync(file, typeof contents === "string" ? contents : contents(dir))
    return { dir, file }
  })

describe("bartos program", () => {
  it.scopedLive("starts, prints the listening line, serves agents, and shuts down cleanly on SIGTERM", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const { dir, file } = yield* tempConfig((dir) => `
[actix]
port = ${port}
[sqlite]
path = "${dir}/data/bartos.db"
[[schedules.alpha.schedules]]
name = "hello"
on_calendar = "minutely"
cmds = ["echo hi"]
`)
      const proc = yield* bartos(["-c", file])
      const m = yield* proc.line(/^bartos (\S+) listening on (ws:\/\/127\.0\.0\.1:(\d+)) \(sqlite: (.+)\)$/m)
      assert.strictEqual(Number(m[3]), port)
      assert.strictEqual(m[4], `${dir}/data/bartos.db`)

      const client = yield* TestServer.connectAgent(`${m[2]}/v1/ws/worker?name=alpha`)
      yield* client.send(TestServer.agentHello())
      yield* client.nextTagged("ServerHello")
      const table = yield* client.nextTagged("ScheduleTable")
      assert.deepStrictEqual(table.schedules.map((s) => s.name), ["hello"])
      yield* client.send({ _tag: "RecordBatch", records: [] })
      yield* client.nextTagged("Ack")

      proc.child.kill("SIGTERM")
      assert.deepStrictEqual(yield* client.closed(), { code: 1001, reason: "server shutting down" })
      const exit = yield* proc.exited()
      assert.strictEqual(exit.code, 0, proc.stderr())
      assert.isTrue(fs.existsSync(`${dir}/data/bartos.db`))
      // stdout holds the listening line(s) only: logs go elsewhere.
      assert.match(proc.stdout(), /^(bartos \S+ listening on \S+ \(sqlite: .+\)\n)+$/)
    }))

  it.scopedLive("hot reload through the binary: SIGHUP reloads, an edited file is pushed to the agent", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const schedules = (cal: string) => `
[[schedules.alpha.schedules]]
name = "hello"
on_calendar = "${cal}"
cmds = ["echo hi"]
`
      const { file } = yield* tempConfig((dir) =>
        `[actix]\nport = ${port}\n[sqlite]\npath = "${dir}/b.db"\n${schedules("hourly")}`
      )
      const proc = yield* bartos(["-c", file, "-e"])
      const m = yield* proc.line(/listening on (\S+) /)
      const client = yield* TestServer.connectAgent(`${m[1]}/v1/ws/worker?name=alpha`)
      yield* client.send(TestServer.agentHello())
      const first = yield* client.nextTagged("ScheduleTable")
      assert.strictEqual(first.schedules[0]!.onCalendar, "hourly")

      proc.child.kill("SIGHUP")
      yield* proc.log(/schedules unchanged/)

      fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("hourly", "daily"))
      const second = yield* client.nextTagged("ScheduleTable")
      assert.strictEqual(second.schedules[0]!.onCalendar, "daily")
      proc.child.kill("SIGINT")
      assert.strictEqual((yield* proc.exited()).code, 0)
    }))

  it.scopedLive("a config error: exit 1 with file, key and reason on stderr", () =>
    Effect.gen(function*() {
      const { file } = yield* tempConfig(`[actix]\nport = "not-a-port"\n`)
      const proc = yield* bartos(["-c", file])
      const exit = yield* proc.exited()
      assert.strictEqual(exit.code, 1)
      assert.match(
        proc.stderr(),
        new RegExp(`^bartos: ${file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}:2:1: actix\\.port: `)
      )
      assert.strictEqual(proc.stdout(), "")
    }))

  it.scopedLive("an invalid calendar expression stops the start, naming key path and position", () =>
    Effect.gen(function*() {
      const { file } = yield* tempConfig(`
[[schedules.alpha.schedules]]
name = "ok"
on_calendar = "daily"
cmds = ["true"]
[[schedules.alpha.schedules]]
name = "typo"
on_calendar = "Mon *-*-* 10:61:00"
cmds = ["true"]
`)
      const proc = yield* bartos(["-c", file])
      const exit = yield* proc.exited()
      assert.strictEqual(exit.code, 1)
      const stderr = proc.stderr()
      assert.include(stderr, `bartos: ${file}:8:1: schedules.alpha.schedules[1].on_calendar: `)
      assert.match(stderr, /'61'/)
      assert.match(stderr, /position 13/)
    }))

  it.scopedLive("a BARTOS_* variable that sets no key: a warning on stderr naming it, and bartos starts", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const { dir, file } = yield* tempConfig((dir) => `[actix]\nport = ${port}\n[sqlite]\npath = "${dir}/b.db"\n`)
      const proc = yield* bartos(["-c", file, "-t", `${dir}/bartos.log`], {
        BARTOS_ACTIX_PROT: "9",
        BARTOS_LIMITS__LIVENESS_SECS: "20"
      })
      yield* proc.line(/listening on /)
      const warning = yield* proc.log(/ WARN environment BARTOS_ACTIX_PROT: .*$/m)
      assert.include(warning[0], "sets no configuration key, ignored (did you mean BARTOS_ACTIX__PORT?)")
      // Only the stray one: a variable that sets a key is not reported.
      assert.notInclude(proc.stderr(), "LIVENESS")
      assert.include(fs.readFileSync(`${dir}/bartos.log`, "utf8"), "WARN environment BARTOS_ACTIX_PROT")
      proc.child.kill("SIGTERM")
      assert.strictEqual((yield* proc.exited()).code, 0)
    }))

  it.scopedLive("an explicit config file that does not exist is an error", () =>
    Effect.gen(function*() {
      const proc = yield* bartos(["-c", "/nonexistent/bartos.toml"])
      assert.strictEqual((yield* proc.exited()).code, 1)
      assert.include(proc.stderr(), "/nonexistent/bartos.toml")
    }))

  it.scopedLive("--version prints the version; an unknown flag is a usage error (2)", () =>
    Effect.gen(function*() {
      const [version, bad] = yield* Effect.all([bartos(["--version"]), bartos(["--bogus"])])
      const [v, b] = yield* Effect.all([version.exited(), bad.exited()], { concurrency: "unbounded" })
      assert.strictEqual(v.code, 0)
      assert.match(version.stdout(), /^\d+\.\d+\.\d+/)
      assert.strictEqual(b.code, 2)
      assert.include(bad.stderr() + bad.stdout(), "--bogus")
    }))
})
