/**
 * Strict configuration through the real programs: `--check-config` of bartos and bartoc (exit
 * codes, summary, every problem, and nothing started: no port bound, no database or state file,
 * no log file), and a rejected hot reload made loud: bartos' stderr at WARN, `barto-cli info`,
 * and `/metrics`, until a fixed file is accepted.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { type Cluster, dbKinds, makeCluster, type Schedule, waitFor } from "./utils/cluster.js"
import { metrics } from "./utils/faults.js"
import { killAll, runProgram } from "./utils/procs.js"

/** Holds a loopback port for the duration of a test: a program that tried to listen on it would fail. */
const holdPort = () =>
  new Promise<{ port: number; release: () => Promise<void> }>((resolve) => {
    const server = net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port
      resolve({ port, release: () => new Promise((r) => server.close(() => r())) })
    })
  })

describe("--check-config", { timeout: 120_000 }, () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "barto-e2e-check-"))
  })
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true })
    await killAll()
  })
  const file = (name: string, text: string) => {
    const path = join(dir, name)
    writeFileSync(path, text)
    return path
  }
  // A HOME of its own: no default config or data directory of the machine is read or written.
  const env = () => ({ HOME: mkdtempSync(join(dir, "home-")), XDG_CONFIG_HOME: "", XDG_DATA_HOME: "" })

  it("bartos: a valid file exits 0 with a summary, binding no port and creating no database or log file", async () => {
    const held = await holdPort()
    try {
      const db = join(dir, "data", "bartos.db")
      const log = join(dir, "logs", "bartos.log")
      const config = file(
        "bartos.toml",
        [
          `admin_key = "admin"`,
          `[actix]`,
          `port = ${held.port}`,
          `[sqlite]`,
          `path = "${db}"`,
          `[[schedules.web1.schedules]]`,
          `name = "backup"`,
          `on_calendar = "*-*-* 02:30:00"`,
          `timezone = "Europe/Berlin"`,
          `cmds = ["true"]`,
          `[[schedules.web1.schedules]]`,
          `name = "often"`,
          `on_calendar = "minutely"`,
          `cmds = ["true"]`,
          `[[schedules.db1.schedules]]`,
          `name = "past"`,
          `on_calendar = "2020-01-01 00:00:00"`,
          `cmds = ["true"]`
        ].join("\n")
      )
      const r = await runProgram("bartos", ["--check-config", "-c", config, "-t", log], { env: env() })
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toBe("")
      const lines = r.stdout.split("\n")
      expect(lines[0]).toMatch(/^bartos \S+: configuration is valid \(/)
      expect(lines[0]).toContain(`(${config})`)
      expect(r.stdout).toContain(`listeners:  ws://127.0.0.1:${held.port}`)
      expect(r.stdout).toContain(`database:   sqlite: ${db} (not opened)`)
      expect(r.stdout).toContain("secrets:    admin_key set; api_key, signing_key, hmac_key not set")
      expect(r.stdout).toContain("agents:     2 (3 schedules)")
      expect(r.stdout).toContain("notify:     none (alerts are recorded, nobody is notified)")
      expect(r.stdout).toMatch(/^web1 +backup +\*-\*-\* 02:30:00 Europe\/Berlin +\d{4}-\d\d-\d\dT02:30:00\+0[12]:00$/m)
      expect(r.stdout).toMatch(/^web1 +often +\*-\*-\* \*:\*:00 +\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$/m)
      expect(r.stdout).toMatch(/^db1 +past +2020-01-01 00:00:00 +never$/m)
      expect(existsSync(db)).toBe(false)
      expect(existsSync(join(dir, "data"))).toBe(false)
      expect(existsSync(log)).toBe(false)
    } finally {
      await held.release()
    }
  })

  it("bartos: MariaDB is not even dialed (an unreachable server still checks valid)", async () => {
    const config = file(
      "bartos-mariadb.toml",
      [
        `[actix]`,
        `port = 0`,
        `[mariadb]`,
        `host = "127.0.0.1"`,
        `port = 1`,
        `username = "nobody"`,
        `database = "nothing"`
      ].join("\n")
    )
    const r = await runProgram("bartos", ["--check-config", "-c", config], { env: env() })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain("database:   mariadb: 127.0.0.1:1/nothing (not opened)")
    expect(r.stderr).toContain("bartos: warning: no admin_key configured")
  })

  it("bartos: an invalid file exits 1 with every problem on stderr, nothing on stdout", async () => {
    const config = file(
      "bartos-bad.toml",
      [
        `[actix]`,
        `prot = 20000`, // 2
        `[[schedules.web1.schedules]]`,
        `name = "a"`,
        `on_calendar = "daily"`,
        `cmds = []`, // 6
        `[[schedules.web1.schedules]]`,
        `name = "b"`,
        `on_calendar = "daily"`,
        `cmds = ["true"]`,
        `timout = "8s"` // 11
      ].join("\n")
    )
    const r = await runProgram("bartos", ["--check-config", "-c", config], {
      env: { ...env(), BARTOS_ACTIX_PORT: "1" }
    })
    expect(r.code).toBe(1)
    expect(r.stdout).toBe("")
    expect(r.stderr.split("\n")).toEqual([
      "bartos: warning: environment BARTOS_ACTIX_PORT: sets no configuration key, ignored (did you mean BARTOS_ACTIX__PORT?)",
      `bartos: ${config}:2:1: actix: unknown key 'prot' (did you mean 'port'?)`,
      `bartos: ${config}:6:1: schedules.web1.schedules[0].cmds: expected at least one command, got an empty array`,
      `bartos: ${config}:11:1: schedules.web1.schedules[1]: unknown key 'timout' (did you mean 'timeout'?)`
    ])
  })

  it("bartos: every bad schedule is reported at its own key (timezone, calendars)", async () => {
    const config = file(
      "bartos-schedules.toml",
      [
        `admin_key = "admin"`,
        `[[schedules.web1.schedules]]`,
        `name = "a"`,
        `on_calendar = "daily"`,
        `timezone = "Europe/Berln"`, // 5
        `cmds = ["true"]`,
        `[[schedules.web1.schedules]]`,
        `name = "b"`,
        `on_calendar = "*-*-* 25:00:00"`, // 9
        `cmds = ["true"]`,
        `[[schedules.db1.schedules]]`,
        `name = "c"`,
        `on_calendar = "Mon..Fri 99:00"`, // 13
        `cmds = ["true"]`
      ].join("\n")
    )
    const r = await runProgram("bartos", ["--check-config", "-c", config], { env: env() })
    expect(r.code).toBe(1)
    expect(r.stdout).toBe("")
    expect(r.stderr.split("\n")).toEqual([
      `bartos: ${config}:5:1: schedules.web1.schedules[0].timezone: unknown IANA time zone 'Europe/Berln'`,
      `bartos: ${config}:9:1: schedules.web1.schedules[1].on_calendar: invalid calendar expression '*-*-* 25:00:00': ` +
      `value out of range 0..23 (hour '25' at position 6)`,
      `bartos: ${config}:13:1: schedules.db1.schedules[0].on_calendar: invalid calendar expression 'Mon..Fri 99:00': ` +
      `value out of range 0..23 (hour '99' at position 9)`
    ])
  })

  it("bartoc: a valid file exits 0 with name, URL, state path; no state file or log file created", async () => {
    const state = join(dir, "agent", "bartoc.db")
    const log = join(dir, "agent-logs", "bartoc.log")
    const config = file(
      "bartoc.toml",
      [
        `name = "web1"`,
        `state_path = "${state}"`,
        `[bartos]`,
        `host = "127.0.0.1"`,
        `port = 1`
      ].join("\n")
    )
    const r = await runProgram("bartoc", ["--check-config", "-c", config, "-t", log], { env: env() })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toBe("")
    expect(r.stdout).toMatch(
      new RegExp(`^bartoc \\S+: configuration is valid \\(${config.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}\\)$`, "m")
    )
    expect(r.stdout).toContain("name:          web1")
    expect(r.stdout).toContain("bartos:        ws://127.0.0.1:1/v1/ws/worker?name=web1")
    expect(r.stdout).toContain(`state:         ${state} (created at start)`)
    expect(r.stdout).toContain(`log file:      ${log}`)
    expect(existsSync(join(dir, "agent"))).toBe(false)
    expect(existsSync(join(dir, "agent-logs"))).toBe(false)
  })

  it("bartoc: an invalid file exits 1 with every problem; an unreadable CA file is one", async () => {
    const bad = file("bartoc-bad.toml", `nmae = "web1"\nmissed_tick = "burst"\n[bartos]\nhots = "x"\n`)
    const r = await runProgram("bartoc", ["--check-config", "-c", bad], { env: { ...env(), BARTOC_NAEM: "x" } })
    expect(r.code).toBe(1)
    expect(r.stdout).toBe("")
    expect(r.stderr.split("\n")).toEqual([
      "bartoc: warning: environment BARTOC_NAEM: sets no configuration key, ignored (did you mean BARTOC_NAME?)",
      `bartoc: ${bad}:1:1: unknown key 'nmae' (did you mean 'name'?)`,
      `bartoc: ${bad}:2:1: missed_tick: expected one of "Burst", "Delay", "Skip", got "burst"`,
      `bartoc: ${bad}:4:1: bartos: unknown key 'hots' (did you mean 'host'?)`
    ])
    const noCa = file(
      "bartoc-ca.toml",
      `name = "web1"\n[bartos]\nprefix = "wss"\nca_cert = "${join(dir, "missing-ca.crt")}"\n`
    )
    const r2 = await runProgram("bartoc", ["--check-config", "-c", noCa], { env: env() })
    expect(r2.code).toBe(1)
    expect(r2.stderr).toBe(`bartoc: bartos.ca_cert: cannot read "${join(dir, "missing-ca.crt")}" (ENOENT)`)
  })

  it("--help of both programs documents --check-config", async () => {
    const [s, a] = await Promise.all([runProgram("bartos", ["--help"]), runProgram("bartoc", ["--help"])])
    expect(s.stdout).toContain("--check-config")
    expect(s.stdout).toMatch(/no port bound, no database opened/)
    expect(a.stdout).toContain("--check-config")
    expect(a.stdout).toMatch(/no connection, no state file opened or created/)
    // Piped: no colour codes (@effect/cli writes them whatever the output is).
    expect(s.stdout).not.toContain("\u001b[")
    expect(a.stdout).not.toContain("\u001b[")
    // Neither @effect/cli's --wizard and --log-level (not offered) nor its per-option boilerplate.
    for (const help of [s.stdout, a.stdout]) {
      expect(help).not.toMatch(/--wizard|--log-level|This setting is optional\.|A true or false value\./)
      expect(help).toContain("--completions")
    }
  })

  it("bartos and bartoc refuse --wizard and --log-level as unknown options (exit 2), and complete neither", async () => {
    const [s, a] = await Promise.all([
      runProgram("bartos", ["--wizard"]),
      runProgram("bartoc", ["--log-level", "debug"])
    ])
    expect([s.code, s.stdout, s.stderr]).toEqual([2, "", "bartos: unknown option '--wizard' (see 'bartos --help')"])
    expect([a.code, a.stdout, a.stderr]).toEqual([
      2,
      "",
      "bartoc: unknown option '--log-level' (see 'bartoc --help')"
    ])
    for (const shell of ["bash", "zsh", "fish"]) {
      const script = await runProgram("bartoc", ["--completions", shell])
      expect(script.code).toBe(0)
      expect(script.stdout).toContain("check-config")
      expect(script.stdout).not.toMatch(/wizard|log-level/)
    }
  })
})

for (const kind of dbKinds()) {
  describe(`a rejected hot reload is loud (${kind})`, { timeout: 120_000 }, () => {
    let c: Cluster
    const tick: Schedule = { name: "tick", on_calendar: "*-*-* *:*:0/2", cmds: ["echo tick"] }

    beforeAll(async () => {
      c = await makeCluster(kind, { schedules: { a: [tick] }, server: { admin_key: "admin" } })
      // A port chosen up front: the cluster then does not rewrite the file after the start to pin
      // it, which bartos would see as a reload of its own and "loaded" would not be the start state.
      const free = await holdPort()
      await free.release()
      c.port = free.port
      await c.startServer()
    })
    beforeEach(({ onTestFailed }) => {
      onTestFailed(() => console.log(c.diagnostics()))
    })
    afterAll(async () => {
      await c?.stop()
      await killAll()
    })

    interface InfoJson {
      readonly configReload: {
        readonly at: string
        readonly result: string
        readonly error: string | null
        readonly lastSuccessAt: string
      }
    }
    const reloadGauges = async () => {
      const m = await metrics(c.port)
      return {
        successful: m.get("bartos_config_last_reload_successful"),
        at: m.get("bartos_config_last_reload_success_timestamp_seconds")
      }
    }

    it("a typo: WARN on stderr, info shows the rejection, /metrics 0; a fixed file: info and /metrics say so", async () => {
      const startInfo = await c.cliJson<InfoJson>(["info"])
      expect(startInfo.configReload).toMatchObject({ result: "loaded", error: null })
      const start = await reloadGauges()
      expect(start.successful).toBe(1)
      expect(start.at).toBe(Math.floor(Date.parse(startInfo.configReload.lastSuccessAt) / 1000))

      c.writeServerConfig({ schedules: { a: [tick, { ...tick, name: "t2", timout: "8s" } as Schedule] } })
      const warn = await c.server!.waitForLine(/ WARN schedule reload rejected, keeping the current table: /)
      expect(warn.input).toContain(`${c.serverToml()}:`)
      expect(warn.input).toMatch(/: schedules\.a\.schedules\[1\]: unknown key 'timout' \(did you mean 'timeout'\?\)/)

      const rejected = await c.cliJson<InfoJson>(["info"])
      expect(rejected.configReload.result).toBe("rejected")
      expect(rejected.configReload.lastSuccessAt).toBe(startInfo.configReload.lastSuccessAt)
      expect(rejected.configReload.error).toMatch(/schedules\.a\.schedules\[1\]: unknown key 'timout'/)
      const text = await c.cli(["info"])
      expect(text.code, text.stderr).toBe(0)
      expect(text.stdout).toMatch(/last reload: REJECTED at \S+; still using the config loaded at \S+/)
      expect(text.stdout).toMatch(/reload error: \S+:\d+:\d+: schedules\.a\.schedules\[1\]: unknown key 'timout'/)
      expect(await reloadGauges()).toEqual({ successful: 0, at: start.at })

      c.writeServerConfig({ schedules: { a: [tick, { ...tick, name: "t2", timeout: "8s" }] } })
      const applied = await waitFor("the fixed file to be applied", async () => {
        const info = await c.cliJson<InfoJson>(["info"])
        return info.configReload.result === "applied" ? info : undefined
      })
      expect(applied.configReload.error).toBeNull()
      const after = await reloadGauges()
      expect(after.successful).toBe(1)
      expect(after.at).toBe(Math.floor(Date.parse(applied.configReload.lastSuccessAt) / 1000))
      expect(after.at).toBeGreaterThanOrEqual(start.at!)
      expect((await c.cli(["info"])).stdout).toMatch(/last reload: applied at \S+/)
      expect(c.server!.child.exitCode).toBeNull()
    })
  })
}
