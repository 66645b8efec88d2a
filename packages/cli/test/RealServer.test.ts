/**
 * Every barto-cli command against the real bartos process, on SQLite and on a fresh MariaDB
 * database. The store is seeded by a tiny fake agent over the worker endpoint (AgentHello,
 * AgentInfo, one RecordBatch, acked), which stays connected so that `clients` lists it and
 * `run --wait` / `cancel` reach it; it answers RunNow by reporting a short successful run.
 */
import * as Codec from "@barto/domain/Codec"
import * as Messages from "@barto/domain/Messages"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import mysql from "mysql2/promise"
import { type ChildProcess, spawn } from "node:child_process"
import { writeFileSync } from "node:fs"
import * as path from "node:path"
import { stringify } from "smol-toml"
import { afterAll, beforeAll } from "vitest"
import WebSocket from "ws"
import { baseEnv, binPath, repoRoot, runCli, runProcess, tempDir } from "./utils.js"

const API_KEY = "api-key-for-tests"
const ADMIN_KEY = "admin-key-for-tests"
const codec = Codec.makeJson()
const now = Date.now()
const T = (offsetSecs: number) => Messages.Micros.make((Math.floor(now / 1000) - 3600 + offsetSecs) * 1_000_000)
const RUN_OK = Messages.RunId.make("0194b1c2-0000-7000-8000-0000000000a1")
const RUN_FAIL = Messages.RunId.make("0194b1c2-0000-7000-8000-0000000000a2")
const RUN_UPD = Messages.RunId.make("0194b1c2-0000-7000-8000-0000000000a3")

/** Polls until `check` holds (no fixed sleeps). */
const waitFor = async (what: string, check: () => boolean, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** barto-cli as a long-running process (tail -f): its output so far, and Ctrl-C. */
const follower = (args: ReadonlyArray<string>, env: Record<string, string | undefined>) => {
  const vars: Record<string, string> = {}
  for (const [k, v] of Object.entries({ PATH: process.env.PATH, ...env })) if (v !== undefined) vars[k] = v
  const child = spawn(process.execPath, [binPath, ...args], {
    cwd: repoRoot,
    env: vars,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  let err = ""
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d))
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d))
  return {
    output: () => out,
    waitFor: (pattern: RegExp, stream: "stdout" | "stderr" = "stdout") =>
      waitFor(`barto-cli ${args.join(" ")} to print ${pattern} (stdout: ${out}, stderr: ${err})`, () => {
        if (child.exitCode !== null) throw new Error(`barto-cli ${args.join(" ")} exited ${child.exitCode}: ${err}`)
        return pattern.test(stream === "stdout" ? out : err)
      }, 30_000),
    interrupt: () =>
      new Promise<number | null>((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode)
        child.once("exit", (code, signal) => resolve(code ?? (signal === null ? null : 128)))
        child.kill("SIGINT")
      })
  }
}

interface Bartos {
  readonly port: number
  readonly child: ChildProcess
  readonly output: () => string
}

const startBartos = async (dir: string, database: Record<string, unknown>): Promise<Bartos> => {
  const toml = path.join(dir, "bartos.toml")
  writeFileSync(
    toml,
    stringify({
      api_key: API_KEY,
      admin_key: ADMIN_KEY,
      // Any free port; the real one is read from bartos' `listening on` line.
      actix: { ip: "127.0.0.1", port: 0 },
      // Short, so that the statement-limit test is quick; far above what the other queries take.
      limits: { query_timeout_ms: 2500 },
      ...database,
      schedules: {
        host: {
          schedules: [
            { name: "backup", on_calendar: "*-*-* 10:R:R", cmds: ["restic backup /home", "restic check"] },
            { name: "update", on_calendar: "daily", cmds: ["checkupdates"] }
          ]
        }
      }
    })
  )
  const child = spawn(process.execPath, [
    path.join(repoRoot, "packages/server/bin/bartos.mjs"),
    "-c",
    toml,
    "-t",
    path.join(dir, "bartos.log")
  ], {
    cwd: repoRoot,
    env: { ...process.env, ...baseEnv(), NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d))
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d))
  let exited = false
  child.on("exit", () => (exited = true))
  await waitFor("bartos to listen", () => /listening on ws:\/\/127\.0\.0\.1:\d+/.test(out) || exited, 60_000)
  const m = /listening on ws:\/\/127\.0\.0\.1:(\d+)/.exec(out)
  if (m === null) throw new Error(`bartos did not start:\n${out}`)
  return { port: Number(m[1]), child, output: () => out }
}

const stopBartos = async (b: Bartos | undefined) => {
  if (b === undefined || b.child.exitCode !== null) return
  const done = new Promise((r) => b.child.once("exit", r))
  b.child.kill("SIGTERM")
  await Promise.race([done, new Promise((r) => setTimeout(r, 10_000))])
  if (b.child.exitCode === null) b.child.kill("SIGKILL")
}

const line = (
  seq: number,
  runId: Messages.RunId,
  cmd: string,
  lineSeq: number,
  data: string,
  at: number,
  stream: Messages.Stream = "stdout"
) => ({ _tag: "OutputLine", seq, runId, cmdUuid: cmd, lineSeq, stream, ts: T(at), data, continuation: false }) as const

/** The seed: a succeeded backup, a failed backup, a succeeded update with garuda and apt output. */
const seedRecords = (): ReadonlyArray<Messages.AgentRecord> => {
  const c1 = "c0ffee00-0000-4000-8000-0000000000c1"
  const c2 = "c0ffee00-0000-4000-8000-0000000000c2"
  const c3 = "c0ffee00-0000-4000-8000-0000000000c3"
  return [
    {
      _tag: "RunStarted",
      seq: 0,
      runId: RUN_OK,
      schedule: "backup",
      trigger: "schedule",
      scheduledAt: T(0),
      startedAt: T(0)
    },
    {
      _tag: "CommandStarted",
      seq: 1,
      runId: RUN_OK,
      cmdUuid: c1,
      cmdIndex: 0,
      command: "restic backup /home",
      startedAt: T(0)
    },
    line(2, RUN_OK, c1, 0, "snapshot 1a2b saved", 1),
    line(3, RUN_OK, c1, 1, "warning:\tslow disk", 1, "stderr"),
    { _tag: "CommandExited", seq: 4, runId: RUN_OK, cmdUuid: c1, exitCode: 0, signal: null, finishedAt: T(2) },
    { _tag: "RunFinished", seq: 5, runId: RUN_OK, state: "succeeded", finishedAt: T(2) },
    {
      _tag: "RunStarted",
      seq: 6,
      runId: RUN_FAIL,
      schedule: "backup",
      trigger: "manual",
      scheduledAt: T(100),
      startedAt: T(100)
    },
    {
      _tag: "CommandStarted",
      seq: 7,
      runId: RUN_FAIL,
      cmdUuid: c2,
      cmdIndex: 1,
      command: "restic check",
      startedAt: T(100)
    },
    line(8, RUN_FAIL, c2, 0, "Fatal: repository is locked", 101, "stderr"),
    { _tag: "CommandExited", seq: 9, runId: RUN_FAIL, cmdUuid: c2, exitCode: 3, signal: null, finishedAt: T(102) },
    { _tag: "RunFinished", seq: 10, runId: RUN_FAIL, state: "failed", finishedAt: T(102) },
    {
      _tag: "RunStarted",
      seq: 11,
      runId: RUN_UPD,
      schedule: "update",
      trigger: "schedule",
      scheduledAt: T(200),
      startedAt: T(200)
    },
    {
      _tag: "CommandStarted",
      seq: 12,
      runId: RUN_UPD,
      cmdUuid: c3,
      cmdIndex: 0,
      command: "checkupdates",
      startedAt: T(200)
    },
    line(13, RUN_UPD, c3, 0, "extra/kio    6.19.0-1     6.19.0-2       0.00 MiB       3.59 MiB", 201),
    line(14, RUN_UPD, c3, 1, "bash/jammy-updates 5.1-6ubuntu1.1 amd64 [upgradable from: 5.1-6ubuntu1]", 201),
    { _tag: "CommandExited", seq: 15, runId: RUN_UPD, cmdUuid: c3, exitCode: 0, signal: null, finishedAt: T(202) },
    { _tag: "RunFinished", seq: 16, runId: RUN_UPD, state: "succeeded", finishedAt: T(202) }
  ]
}

interface FakeAgent {
  readonly close: () => Promise<void>
  readonly cancels: Array<string>
}

/** Connects as agent `host`, seeds the store, and answers RunNow with a successful run. */
const startAgent = async (port: number): Promise<FakeAgent> => {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws/worker?name=host`, {
    headers: { authorization: `Bearer ${API_KEY}` }
  })
  let seq = 17
  let acked = -1
  let ready = false
  const cancels: Array<string> = []
  const send = (m: Messages.AgentToServer) => ws.send(codec.encode(Messages.AgentToServer, m), { binary: true })
  ws.on("message", (data) => {
    const decoded = codec.decode(Messages.ServerMessage, new Uint8Array(data as Buffer))
    if (Either.isLeft(decoded)) return
    const m = decoded.right
    switch (m._tag) {
      case "ServerHello":
        send({
          _tag: "AgentInfo",
          info: new Messages.ClientInfo({
            osName: "Arch Linux",
            hostname: "host",
            osVersion: "rolling",
            kernel: "6.12.1",
            agentVersion: "9.9.9"
          })
        })
        send({ _tag: "RecordBatch", records: seedRecords() })
        break
      case "Ack":
        acked = m.upTo
        ready = acked >= 16
        break
      case "RunNow": {
        const t = Messages.Micros.make(Date.now() * 1000)
        const base = seq
        // A command id of its own per run (ids are unique in the store).
        const cmd = `c0ffee00-0000-4000-8000-${String(base).padStart(12, "0")}`
        seq += 6
        send({
          _tag: "RecordBatch",
          records: [
            {
              _tag: "RunStarted",
              seq: base,
              runId: m.runId,
              schedule: m.schedule,
              trigger: "manual",
              scheduledAt: t,
              startedAt: t
            },
            {
              _tag: "CommandStarted",
              seq: base + 1,
              runId: m.runId,
              cmdUuid: cmd,
              cmdIndex: 0,
              command: "restic backup /home",
              startedAt: t
            },
            {
              _tag: "OutputLine",
              seq: base + 2,
              runId: m.runId,
              cmdUuid: cmd,
              lineSeq: 0,
              stream: "stdout",
              ts: t,
              data: "manual run output",
              continuation: false
            },
            {
              _tag: "CommandExited",
              seq: base + 3,
              runId: m.runId,
              cmdUuid: cmd,
              exitCode: 0,
              signal: null,
              finishedAt: t
            },
            { _tag: "RunFinished", seq: base + 4, runId: m.runId, state: "succeeded", finishedAt: t }
          ]
        })
        break
      }
      case "CancelRun":
        cancels.push(m.runId)
        break
    }
  })
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve())
    ws.once("error", reject)
  })
  send({
    _tag: "AgentHello",
    protocol: Messages.PROTOCOL_VERSION,
    agentVersion: "9.9.9",
    capabilities: [],
    outboxId: "outbox-cli-test",
    lastSeq: -1,
    missedTick: "Burst",
    catchUpLimit: 3
  })
  const pinger = setInterval(
    () => send({ _tag: "Ping", id: seq, sentAt: Messages.Micros.make(Date.now() * 1000) }),
    2000
  )
  await waitFor("the seed to be acked", () => ready)
  return {
    cancels,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(pinger)
        if (ws.readyState === WebSocket.CLOSED) return resolve()
        ws.once("close", () => resolve())
        ws.close(1000)
      })
  }
}

/** MariaDB as the other suites find it: BARTO_TEST_MARIADB_URL, else root@127.0.0.1:3306. */
const mariadb = (() => {
  const url = new URL(process.env.BARTO_TEST_MARIADB_URL ?? "mysql://root@127.0.0.1:3306")
  return {
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username || "root"),
    password: decodeURIComponent(url.password || "")
  }
})()

const mariadbUnreachable = await mysql.createConnection({ ...mariadb, connectTimeout: 2000 }).then(
  async (c) => {
    await c.end()
    return undefined
  },
  (e: unknown) => (e instanceof Error ? e.message : String(e))
)

const suite = (kind: "sqlite" | "mariadb") =>
  describe(`barto-cli against the real bartos (${kind})`, () => {
    const dir = tempDir(`barto-cli-real-${kind}-`)
    let bartos: Bartos | undefined
    let agent: FakeAgent | undefined
    let dropDatabase: (() => Promise<void>) | undefined
    const env = (admin = true) =>
      baseEnv({
        BARTO_CLI_BARTOS__PORT: String(bartos!.port),
        BARTO_CLI_BARTOS__API_KEY: API_KEY,
        ...(admin ? { BARTO_CLI_BARTOS__ADMIN_KEY: ADMIN_KEY } : {}),
        BARTO_CLI_NAME: "cli-test"
      })
    const cli = (args: ReadonlyArray<string>, admin = true) => runCli(args, { env: env(admin) })
    const json = <T = any>(args: ReadonlyArray<string>) =>
      Effect.map(cli([...args, "--json"]), (r) => {
        assert.strictEqual(r.code, 0, `${args.join(" ")}: ${r.stderr}`)
        return JSON.parse(r.stdout) as T
      })

    beforeAll(async () => {
      let database: Record<string, unknown>
      if (kind === "sqlite") {
        database = { sqlite: { path: path.join(dir, "bartos.db") } }
      } else {
        const name = `barto_cli_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
        // `query` runs as an account of its own, with SELECT on this database only (SECURITY.md).
        const queryUser = `bq_cli_${process.pid}_${Math.random().toString(36).slice(2, 6)}`
        const queryPassword = Math.random().toString(36).slice(2)
        const admin = await mysql.createConnection(mariadb)
        await admin.query(`CREATE DATABASE \`${name}\``)
        await admin.query(`CREATE USER '${queryUser}'@'%' IDENTIFIED BY '${queryPassword}'`)
        await admin.query(`GRANT SELECT ON \`${name}\`.* TO '${queryUser}'@'%'`)
        await admin.end()
        dropDatabase = async () => {
          const c = await mysql.createConnection(mariadb)
          await c.query(`DROP DATABASE IF EXISTS \`${name}\``)
          await c.query(`DROP USER IF EXISTS '${queryUser}'@'%'`)
          await c.end()
        }
        database = {
          mariadb: {
            host: mariadb.host,
            port: mariadb.port,
            username: mariadb.user,
            database: name,
            ...(mariadb.password !== "" ? { password: mariadb.password } : {}),
            query_username: queryUser,
            query_password: queryPassword
          }
        }
      }
      bartos = await startBartos(dir, database)
      agent = await startAgent(bartos.port)
    }, 90_000)

    afterAll(async () => {
      await agent?.close()
      await stopBartos(bartos)
      await dropDatabase?.()
    }, 30_000)

    it.live("info, clients, clients --versions", () =>
      Effect.gen(function*() {
        const info = yield* json(["info"])
        assert.strictEqual(info.database, kind)
        assert.strictEqual(info.connectedAgents, 1)
        assert.match(info.startedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$/)
        const text = yield* cli(["info"])
        assert.include(text.stdout, `database: ${kind}`)
        const clients = yield* json(["clients"])
        assert.strictEqual(clients.length, 1)
        assert.strictEqual(clients[0].name, "host")
        assert.strictEqual(clients[0].info.agentVersion, "9.9.9")
        assert.deepStrictEqual(yield* json(["clients", "--versions"]), [{ name: "host", version: "9.9.9" }])
        const t = yield* cli(["clients"])
        assert.match(t.stdout, /^NAME +IP +OS/)
        assert.include(t.stdout, "Total clients: 1")
      }))

    it.live("list, list -c, cmd, failed, updates", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* json(["list", "-n", "host"]), ["backup", "update"])
        const lines = yield* json(["list", "-n", "host", "-c", "backup"])
        assert.deepStrictEqual(lines.map((l: any) => l.data), [
          "snapshot 1a2b saved",
          "warning:\tslow disk",
          "Fatal: repository is locked"
        ])
        const text = yield* cli(["list", "-n", "host", "-c", "backup"])
        assert.include(text.stdout, "Total outputs: 3")
        assert.include(text.stdout, "! warning:   slow disk")
        const cmd = yield* json(["cmd", "backup"])
        assert.strictEqual(cmd[0].agent, "host")
        assert.strictEqual(cmd[0].lines.length, 3)
        const failed = yield* json(["failed"])
        assert.isTrue(
          failed.some((f: any) =>
            f.runId === RUN_FAIL && f.exitCode === 3 && f.lines.includes("Fatal: repository is locked")
          )
        )
        const updates = yield* json(["updates", "-n", "host", "-u", "Garuda"])
        assert.deepStrictEqual(updates, {
          kind: "garuda",
          updates: [{
            channel: "extra",
            package: "kio",
            oldVersion: "6.19.0-1",
            newVersion: "6.19.0-2",
            sizeChange: "0.00 MiB",
            downloadSize: "3.59 MiB"
          }]
        })
        // `apt list --upgradable` output (the garuda row above is not apt's).
        const apt = yield* json(["updates", "-n", "host", "-u", "apt"])
        assert.deepStrictEqual(apt, { kind: "apt", packages: ["bash"] })
        const help = yield* cli(["updates", "--help"])
        assert.include(help.stdout, "apt list --upgradable")
      }))

    it.live("list -c, cmd, failed: --limit, --since/--until, a recent window by default in text, everything piped as --json", () =>
      Effect.gen(function*() {
        const newest = yield* json(["list", "-n", "host", "-c", "backup", "--limit", "1"])
        assert.deepStrictEqual(newest.map((l: any) => l.data), ["Fatal: repository is locked"])
        const until = new Date(Number(T(50)) / 1000).toISOString()
        const early = yield* json(["list", "-n", "host", "-c", "backup", "--until", until])
        assert.deepStrictEqual(early.map((l: any) => l.data), ["snapshot 1a2b saved", "warning:\tslow disk"])
        const late = yield* json(["list", "-n", "host", "-c", "backup", "--since", until])
        assert.deepStrictEqual(late.map((l: any) => l.data), ["Fatal: repository is locked"])
        assert.deepStrictEqual(yield* json(["list", "-n", "host", "-c", "backup", "--since", "2100-01-01"]), [])
        const text = yield* cli(["list", "-n", "host", "-c", "backup"])
        assert.include(
          text.stdout,
          "Total outputs: 3 (the last 24 h, at most 1000 lines; --since/--until/--limit to choose, --all for everything)"
        )
        assert.include((yield* cli(["list", "-n", "host", "-c", "backup", "--all"])).stdout, "Total outputs: 3\n")
        const cmd = yield* json(["cmd", "backup", "--limit", "2"])
        assert.deepStrictEqual(cmd[0].lines.map((l: any) => l.data), [
          "warning:\tslow disk",
          "Fatal: repository is locked"
        ])
        assert.strictEqual((yield* json(["failed", "--limit", "1"])).length, 1)
        assert.deepStrictEqual(yield* json(["failed", "--since", "2100-01-01"]), [])
        assert.include((yield* cli(["failed"])).stdout, "(the last 24 h, at most 50 failed commands;")
        const bad = yield* cli(["failed", "--limit", "0"])
        assert.strictEqual(bad.code, 2)
      }))

    it.live("schedules: last run, result, next, effective settings; status: agents, running, failures in 24 h, reload; 80 columns fit", () =>
      Effect.gen(function*() {
        const schedules = yield* json(["schedules", "host"])
        const backup = schedules.find((s: any) => s.name === "backup")
        assert.strictEqual(backup.lastRun.state, "failed")
        assert.strictEqual(backup.lastRun.exitCode, 3)
        // --once: the latest run of the schedule, and its status as the exit status.
        const once = yield* cli(["tail", "--once", "--agent", "host", "--schedule", "backup"])
        assert.strictEqual(once.code, 1, once.stderr)
        assert.include(once.stdout, `run ${RUN_FAIL} failed (exit 3)`)
        assert.include(once.stdout, "Fatal: repository is locked")
        assert.include(backup, {
          timeoutSecs: null,
          overlap: "allow",
          onFailure: "continue",
          missedTick: "Burst",
          catchUpLimit: 3
        })
        assert.isString(backup.timezone)
        const text = yield* cli(["schedules", "host"])
        assert.match(
          text.stdout,
          /^AGENT +SCHEDULE +LAST +RESULT +DURATION +NEXT +LEFT +TIMEOUT +OVERLAP +ON FAILURE +MISSED TICK +ZONE +CALENDAR\n/
        )
        assert.match(
          text.stdout,
          /\nhost +backup +\d+ [a-z]+( \d+ [a-z]+)? ago +failed \(3\) +2\.000s +\S+ +in \d+ [a-z]+( \d+ [a-z]+)? +none +allow +continue +Burst \(3\) +/,
          text.stdout
        )
        // A terminal of 80 columns: the settings columns give way, nothing is cut.
        const narrow = yield* runCli(["schedules", "host"], { env: env(), tty: true, columns: 80 })
        // eslint-disable-next-line no-control-regex -- strips the colour codes the TTY run printed
        const plain = narrow.stdout.replace(/\u001b\[[0-9;]*m/g, "")
        for (const l of plain.trimEnd().split("\n")) assert.isAtMost(l.length, 80, l)
        assert.match(plain, /^AGENT +SCHEDULE +LAST +RESULT/)
        assert.notInclude(plain, "OVERLAP")
        assert.notInclude(plain, "MISSED TICK")

        const status = yield* json(["status"])
        assert.deepInclude(status.agents.find((a: any) => a.name === "host"), {
          online: true,
          schedules: 2,
          agentVersion: "9.9.9"
        })
        assert.isAtLeast(status.failures24h, 1)
        assert.isTrue(status.recentFailures.some((r: any) => r.runId === RUN_FAIL))
        assert.deepStrictEqual(status.running, [])
        assert.strictEqual(status.configReload.result, "loaded")
        const st = yield* cli(["status"])
        assert.match(st.stdout, /^Agents: 1 online, 0 offline\n/)
        assert.include(st.stdout, "Running now: 0")
        assert.match(st.stdout, /Failures in the last 24 h: \d+\n/)
        assert.include(st.stdout, `${RUN_FAIL.slice(-8)}  host/backup  failed (3)`)
        assert.match(st.stdout, /Last reload: none \(config loaded at start/)
        assert.include(status.schedules.find((x: any) => x.name === "backup"), { missedTick: "Burst", catchUpLimit: 3 })
        assert.match(st.stdout, /\n {2}host +backup .* Burst \(3\) /)
        // Its indented tables fit an 80-column terminal too.
        const narrowStatus = yield* runCli(["status"], { env: env(), tty: true, columns: 80 })
        // eslint-disable-next-line no-control-regex -- strips the colour codes the TTY run printed
        for (const l of narrowStatus.stdout.replace(/\u001b\[[0-9;]*m/g, "").trimEnd().split("\n")) {
          assert.isAtMost(l.length, 80, l)
        }
        const clients = yield* json(["clients"])
        assert.include(clients[0], { name: "host", missedTick: "Burst", catchUpLimit: 3 })
      }))

    it.live("query (read-only; a write is refused with the server's reason)", () =>
      Effect.gen(function*() {
        const q = yield* json(["query", "-q", "SELECT 1 AS one"])
        assert.deepStrictEqual(q.columns, ["one"])
        assert.deepStrictEqual(q.rows, [["1"]])
        // The views: readable UTC times under the same column names, so the natural query works.
        const started = new Date(Number(T(0)) / 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, ".000000")
        const view = yield* json([
          "query",
          "-q",
          `SELECT run_id, started_at, duration_secs FROM runs_view WHERE run_id = '${RUN_OK}' AND started_at > '2020-01-01'`
        ])
        assert.deepStrictEqual(view.rows, [[RUN_OK, started, view.rows[0]?.[2] ?? "missing"]])
        assert.strictEqual(Number(view.rows[0][2]), 2)
        const none = yield* json(["query", "-q", "SELECT COUNT(*) AS n FROM runs_view WHERE started_at > '2100-01-01'"])
        assert.deepStrictEqual(none.rows, [["0"]])
        const lines = yield* json([
          "query",
          "-q",
          `SELECT ts, data FROM output_lines_view WHERE run_id = '${RUN_OK}' ORDER BY line_seq`
        ])
        assert.deepStrictEqual(lines.rows.map((r: any) => r[1]), ["snapshot 1a2b saved", "warning:\tslow disk"])
        assert.match(lines.rows[0][0], /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/)
        const cmds = yield* json([
          "query",
          "-q",
          `SELECT finished_at FROM run_commands_view WHERE run_id = '${RUN_OK}'`
        ])
        assert.strictEqual(cmds.rows.length, 1)
        const refused = yield* cli(["query", "-q", "DELETE FROM runs"])
        assert.strictEqual(refused.code, 1)
        assert.match(refused.stderr, /^barto-cli: refused: /)
      }))

    it.live("a statement over bartos' time limit: the user sees bartos' reason, even with a shorter --timeout", () =>
      Effect.gen(function*() {
        const slow = kind === "mariadb"
          ? "SELECT SLEEP(20)"
          : "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"
        // The hello announces the limit (2.5 s); the CLI outwaits it instead of giving up at 1 s.
        const r = yield* cli(["--timeout", "1", "query", "-q", slow])
        assert.strictEqual(r.code, 1, r.stderr)
        assert.strictEqual(r.stderr, "barto-cli: refused: the statement exceeded the time limit of 2500 ms\n")
      }))

    it.live("schedules (with next fire time), runs with filters, tail RUN", () =>
      Effect.gen(function*() {
        const schedules = yield* json(["schedules", "host"])
        assert.deepStrictEqual(schedules.map((s: any) => s.name), ["backup", "update"])
        assert.isTrue(
          schedules.every((s: any) => s.connected && typeof s.nextAt === "string" && Date.parse(s.nextAt) > Date.now())
        )
        assert.notInclude(schedules[0].calendar, "R")
        const runs = yield* json(["runs", "--agent", "host"])
        assert.includeMembers(runs.map((r: any) => r.runId), [RUN_OK, RUN_FAIL, RUN_UPD])
        const failedRuns = yield* json(["runs", "--state", "failed"])
        assert.deepStrictEqual(failedRuns.map((r: any) => r.runId), [RUN_FAIL])
        const limited = yield* json(["runs", "--limit", "1", "--schedule", "backup"])
        assert.strictEqual(limited.length, 1)
        const table = yield* cli(["runs"])
        assert.match(table.stdout, /^RUN +AGENT +SCHEDULE +TRIGGER +STATE/)
        const tail = yield* cli(["tail", RUN_OK])
        assert.strictEqual(tail.code, 0, tail.stderr)
        assert.include(tail.stdout, "snapshot 1a2b saved")
        assert.include(tail.stdout, `run ${RUN_OK} succeeded (exit 0)`)
        const events = (yield* cli(["tail", RUN_FAIL, "--json"])).stdout.trim().split("\n").map((l) => JSON.parse(l))
        assert.strictEqual(events[events.length - 1].event, "end")
        assert.strictEqual(events[events.length - 1].state, "failed")
        const unknown = yield* cli(["tail", "0194b1c2-0000-7000-8000-0000000000ff"])
        assert.strictEqual(unknown.code, 1)
        assert.match(unknown.stderr, /^barto-cli: not_found: /)
      }))

    it.live("run --wait follows the run to success; tail -f of a finished schedule ends", () =>
      Effect.gen(function*() {
        const r = yield* cli(["run", "host", "backup", "--wait"])
        assert.strictEqual(r.code, 0, r.stderr)
        const [runId] = r.stdout.split("\n")
        assert.match(runId!, /^[0-9a-f-]{36}$/)
        assert.include(r.stdout, "manual run output")
        assert.include(r.stdout, `run ${runId} succeeded (exit 0)`)
        const f = yield* cli(["tail", "-f", "--once", "--agent", "host", "--schedule", "backup"])
        assert.strictEqual(f.code, 0, f.stderr)
        assert.include(f.stdout, `run ${runId} succeeded`)
      }))

    it.live("run ids: a unique prefix, the short form, an ambiguous prefix lists the candidates; tables show the short form", () =>
      Effect.gen(function*() {
        const started = (yield* cli(["run", "host", "update", "--wait"])).stdout.split("\n")[0]!
        const prefix = yield* cli(["tail", started.slice(0, 24)])
        assert.strictEqual(prefix.code, 0, prefix.stderr)
        assert.include(prefix.stdout, `run ${started} succeeded (exit 0)`, prefix.stdout)
        // The seeded ids share their first 35 characters (like UUIDv7s of one moment): the tail tells them apart.
        const short = yield* cli(["tail", RUN_FAIL.slice(-8)])
        assert.strictEqual(short.code, 0, short.stderr)
        assert.include(short.stdout, "Fatal: repository is locked")
        const ambiguous = yield* cli(["tail", RUN_OK.slice(0, 8)])
        assert.strictEqual(ambiguous.code, 1)
        assert.match(
          ambiguous.stderr,
          new RegExp(`^barto-cli: run id '${RUN_OK.slice(0, 8)}' is ambiguous; it matches \\d+ runs:`)
        )
        assert.include(ambiguous.stderr, `  ${RUN_OK}  host/backup  succeeded`)
        assert.include(ambiguous.stderr, `  ${RUN_FAIL}  host/backup  failed`)
        const none = yield* cli(["tail", "ffffff"])
        assert.strictEqual(none.code, 1)
        assert.strictEqual(none.stderr, "barto-cli: no run id starts or ends with 'ffffff'\n")
        const bad = yield* cli(["cancel", "abc"])
        assert.strictEqual(bad.code, 2)
        assert.match(bad.stderr, /^barto-cli: cancel: RUN: 'abc' is not a run id/)
        const cancel = yield* cli(["cancel", RUN_OK.slice(-8)])
        assert.match(cancel.stderr, new RegExp(`run ${RUN_OK} already succeeded`))
        const table = yield* cli(["runs", "--schedule", "backup"])
        assert.include(table.stdout, `\n${RUN_FAIL.slice(-8)}  host`)
        assert.notInclude(table.stdout, RUN_FAIL)
      }))

    it.live("tail -f follows run after run until interrupted, waiting in between; unknown agent or schedule: exit 1 at once", () =>
      Effect.gen(function*() {
        const unknownSchedule = yield* cli(["tail", "-f", "--agent", "host", "--schedule", "nope"])
        assert.strictEqual(unknownSchedule.code, 1)
        assert.strictEqual(unknownSchedule.stderr, "barto-cli: not_found: unknown schedule 'nope' on agent 'host'\n")
        const unknownAgent = yield* cli(["tail", "-f", "--agent", "nobody"])
        assert.strictEqual(unknownAgent.code, 1)
        assert.match(unknownAgent.stderr, /^barto-cli: not_found: unknown agent 'nobody'/)
        yield* Effect.promise(async () => {
          const one = follower(["tail", "-f", "--agent", "host", "--schedule", "backup"], env())
          const fleet = follower(["-v", "tail", "-f", "--json"], env())
          // Every schedule of one agent, in text: each line led by agent/schedule.
          const agent = follower(["-v", "tail", "-f", "--agent", "host"], env())
          try {
            await agent.waitFor(/bartos follows the runs/, "stderr")
            // The last backup ended before: not replayed; the next fire time is announced.
            await one.waitFor(/waiting for the next run of host\/backup at \S+ \(in [^)]+\)/)
            // -v: the debug line says bartos listens (a fleet tail shows only what happens from then on).
            await fleet.waitFor(/bartos follows the runs/, "stderr")
            const first = await Effect.runPromise(cli(["run", "host", "backup"]))
            const firstId = first.stdout.trim()
            await one.waitFor(new RegExp(`run ${firstId} succeeded`))
            const second = await Effect.runPromise(cli(["run", "host", "update"]))
            const secondId = second.stdout.trim()
            const third = await Effect.runPromise(cli(["run", "host", "backup"]))
            const thirdId = third.stdout.trim()
            await one.waitFor(new RegExp(`run ${thirdId} succeeded[\\s\\S]*waiting for the next run`))
            assert.notInclude(one.output(), secondId)
            assert.strictEqual((one.output().match(/manual run output/g) ?? []).length, 2)
            await fleet.waitFor(new RegExp(`"event":"end".*"runId":"${thirdId}"`))
            const events = fleet.output().trim().split("\n").map((l) => JSON.parse(l))
            const ended = events.filter((e) => e.event === "end").map((e) => e.runId)
            assert.deepStrictEqual(ended, [firstId, secondId, thirdId])
            assert.isTrue(events.some((e) => e.event === "line" && e.runId === secondId && e.schedule === "update"))
            await agent.waitFor(new RegExp(`^host/backup run ${thirdId} succeeded`, "m"))
            assert.match(agent.output(), new RegExp(`^host/backup run ${firstId} succeeded`, "m"))
            assert.match(agent.output(), /^host\/backup \S+ +manual run output$/m)
            assert.match(agent.output(), /^host\/update \S+ +manual run output$/m)
            assert.match(agent.output(), new RegExp(`^host/update run ${secondId} succeeded`, "m"))
          } finally {
            const codes = await Promise.all([one.interrupt(), fleet.interrupt(), agent.interrupt()])
            assert.deepStrictEqual(codes, [130, 130, 130])
          }
        })
      }))

    it.live("admin commands: refused without the admin key; pause/resume, cancel, cleanup --dry-run, cleanup", () =>
      Effect.gen(function*() {
        const forbidden = yield* cli(["pause", "host", "backup"], false)
        assert.strictEqual(forbidden.code, 1)
        assert.strictEqual(forbidden.stderr, "barto-cli: forbidden: pause requires the admin key\n")
        assert.deepStrictEqual(yield* json(["pause", "host", "backup"]), {
          agent: "host",
          schedule: "backup",
          paused: true
        })
        const paused = yield* json(["schedules", "host"])
        assert.isTrue(paused[0].paused)
        assert.strictEqual((yield* cli(["resume", "host", "backup"])).stdout, "host backup: active\n")
        const unknownSchedule = yield* cli(["pause", "host", "nope"])
        assert.strictEqual(unknownSchedule.code, 1)
        assert.match(unknownSchedule.stderr, /^barto-cli: not_found: /)
        const cancel = yield* cli(["cancel", RUN_OK])
        assert.strictEqual(cancel.code, 1)
        assert.match(cancel.stderr, /already succeeded/)
        const dry = yield* json(["cleanup", "--before", "2100-01-01", "--dry-run"])
        assert.isTrue(dry.dryRun)
        assert.isAtLeast(dry.runs, 3)
        assert.isAtLeast((yield* json(["runs"])).length, 3)
        const before = new Date(Date.now() + 60_000).toISOString()
        const counts = yield* json(["cleanup", "--before", before, "--dry-run"])
        // On a terminal without --yes: the dry run, then a question; "no" deletes nothing.
        const questions: Array<string> = []
        const declined = yield* runCli(["cleanup", "--before", before], {
          env: env(),
          confirm: (q) => (questions.push(q), false)
        })
        assert.strictEqual(declined.code, 1)
        assert.strictEqual(declined.stdout, "")
        assert.include(declined.stderr, `would delete ${counts.runs} runs`)
        assert.match(declined.stderr, /\nbarto-cli: cleanup: not confirmed; nothing deleted\n$/)
        assert.deepStrictEqual(questions, [
          `Delete these ${counts.runs} runs, ${counts.commands} command results and ${counts.lines} lines?`
        ])
        assert.isAtLeast((yield* json(["runs"])).length, 3)
        const confirmed = yield* runCli(["cleanup", "--before", before, "--json"], { env: env(), confirm: () => true })
        assert.strictEqual(confirmed.code, 0, confirmed.stderr)
        const done = JSON.parse(confirmed.stdout)
        // The dry run and the real one count the same rows.
        assert.deepStrictEqual(
          { runs: done.runs, commands: done.commands, lines: done.lines },
          { runs: counts.runs, commands: counts.commands, lines: counts.lines }
        )
        assert.isAtLeast(done.runs, 3)
        assert.strictEqual(done.agentsSignalled, 1)
        assert.deepStrictEqual(yield* json(["runs"]), [])
      }))

    it.live("as a real process: a wrong api key is unauthorized; --json works", () =>
      Effect.gen(function*() {
        const [bad, ok] = yield* Effect.all([
          runProcess(["info"], { env: { ...env(), BARTO_CLI_BARTOS__API_KEY: "wrong" } }),
          runProcess(["schedules", "--json"], { env: env() })
        ], { concurrency: 2 })
        assert.strictEqual(bad.code, 1)
        assert.strictEqual(bad.stderr, "barto-cli: unauthorized (check api_key)\n")
        assert.strictEqual(ok.code, 0, ok.stderr)
        assert.strictEqual(JSON.parse(ok.stdout).length, 2)
      }))
  })

suite("sqlite")
if (mariadbUnreachable === undefined || process.env.BARTO_REQUIRE_MARIADB === "1") {
  // Required (CI) but unreachable: the suite runs and fails loudly in its beforeAll.
  suite("mariadb")
} else {
  console.warn(
    `\n${"#".repeat(100)}\n#  MariaDB not reachable at ${mariadb.host}:${mariadb.port} (${mariadbUnreachable}):\n` +
      `#  barto-cli against bartos on MariaDB did NOT run. Set BARTO_TEST_MARIADB_URL, or start MariaDB.\n${
        "#".repeat(100)
      }\n`
  )
}
