/**
 * Every remote command against a fake bartos (real codec, real sockets): the request it sends,
 * how it prints the answer (text and --json), and every failure path with its exit status.
 */
import * as Messages from "@barto/domain/Messages"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { envFor, type FakeBartos, fakeBartos, type FakeOptions } from "./fakeBartos.js"
import { clientRow, failedRow, lineRow, M, RUN_A, RUN_B, runRow, scheduleRow, T0 } from "./fixtures.js"
import { baseEnv, runCli, runProcess } from "./utils.js"

const canned = (req: Messages.CliRequest): ReadonlyArray<Messages.CliResponse> | void => {
  const id = req.id
  switch (req._tag) {
    case "InfoRequest":
      return [{
        _tag: "InfoResponse",
        id,
        version: "0.1.0",
        protocol: 1,
        startedAt: M(T0),
        uptimeSecs: 3723,
        database: "sqlite",
        databaseLocation: "/var/lib/bartos/bartos.db",
        listeners: ["ws://127.0.0.1:20000"],
        connectedAgents: 2,
        node: "v20.20.2",
        platform: "linux x64",
        configReload: {
          at: M(T0 + 3_600_000_000),
          result: "rejected",
          error:
            "/etc/bartos.toml:41:1: schedules.web1.schedules[2]: unknown key 'timout' (did you mean 'timeout'?)\n" +
            "/etc/bartos.toml:50:1: schedules.db.schedules[0].timezone: unknown IANA time zone 'Mars/Olympus'",
          lastSuccessAt: M(T0)
        }
      }]
    case "ClientsRequest":
      return [{ _tag: "ClientsResponse", id, clients: [clientRow("zeta", null), clientRow("host", "1.2.3")] }]
    case "ListCommandsRequest":
      return [{ _tag: "ListCommandsResponse", id, commands: ["backup", "update"] }]
    case "ListRequest":
      return [{
        _tag: "LinesResponse",
        id,
        lines: [lineRow(RUN_A, 0, "hello"), lineRow(RUN_A, 1, "oops", "stderr")]
      }]
    case "FailedRequest":
      return [{ _tag: "FailedResponse", id, failed: [failedRow()] }]
    case "CmdRequest":
      return [{ _tag: "CmdResponse", id, byAgent: [{ agent: "host", lines: [lineRow(RUN_A, 0, "done")] }] }]
    case "UpdatesRequest":
      return [{
        _tag: "UpdatesResponse",
        id,
        result: {
          _tag: "Garuda",
          updates: [{
            channel: "extra",
            package: "kio",
            oldVersion: "6.19.0-1",
            newVersion: "6.19.0-2",
            sizeChange: "0.00 MiB",
            downloadSize: "3.59 MiB"
          }]
        }
      }]
    case "QueryRequest":
      return req.sql.toLowerCase().startsWith("select")
        ? [{ _tag: "QueryResponse", id, columns: ["n", "name"], rows: [["1", "a"], ["2", null]], truncated: false }]
        : [{
          _tag: "CliError",
          id,
          code: "refused",
          message: "only read-only statements are allowed (SELECT, WITH, SHOW, EXPLAIN)"
        }]
    case "CleanupRequest":
      return [{
        _tag: "CleanupResponse",
        id,
        before: req.before ?? M(T0),
        dryRun: req.dryRun,
        runs: 3,
        commands: 4,
        lines: 50,
        agentsSignalled: req.dryRun ? 0 : 2
      }]
    case "RunsRequest":
      return [{
        _tag: "RunsResponse",
        id,
        runs: [runRow(RUN_A, "succeeded"), runRow(RUN_B, "failed", { exitCode: 3 })]
      }]
    case "SchedulesRequest":
      return [{
        _tag: "SchedulesResponse",
        id,
        schedules: [scheduleRow("host", "backup", T0 + 3_600_000_000), scheduleRow("other", "sync", null, true)]
      }]
    case "TailRequest":
      return [
        { _tag: "TailChunk", id, run: runRow(RUN_A, "succeeded"), lines: [lineRow(RUN_A, 0, "one")], done: false },
        { _tag: "TailChunk", id, run: null, lines: [lineRow(RUN_A, 1, "two", "stderr")], done: false },
        { _tag: "TailChunk", id, run: runRow(RUN_A, "succeeded"), lines: [], done: true }
      ]
    case "RunNowRequest":
      return [{ _tag: "RunNowResponse", id, runId: RUN_A, agent: req.agent, schedule: req.schedule }]
    case "CancelRequest":
      return [{ _tag: "CancelResponse", id, runId: req.runId, delivered: true }]
    case "PauseRequest":
    case "ResumeRequest":
      return [{
        _tag: "PauseResponse",
        id,
        agent: req.agent,
        schedule: req.schedule,
        paused: req._tag === "PauseRequest"
      }]
  }
}

/** Runs `barto-cli <args>` against a fresh fake; returns the result and the fake's records. */
const against = (args: ReadonlyArray<string>, options: FakeOptions = {}, env: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const fake = yield* fakeBartos({ answer: canned, ...options })
    const result = yield* runCli(args, { env: baseEnv(envFor(fake, env)) })
    return { ...result, fake }
  })

/** The request without its id. */
const sent = (fake: FakeBartos) => {
  assert.strictEqual(fake.requests.length, 1, "exactly one request")
  const { id: _id, ...rest } = fake.requests[0]!
  return rest
}

describe("the CLI link", () => {
  it.scopedLive("hello carries protocol and version; the name is in the URL; the socket closes cleanly", () =>
    Effect.gen(function*() {
      const r = yield* against(["info"], {}, { BARTO_CLI_NAME: "ops laptop/1" })
      assert.strictEqual(r.code, 0, r.stderr)
      assert.strictEqual(r.fake.upgrades[0]!.url, "/v1/ws/cli?name=ops%20laptop%2F1")
      assert.strictEqual(r.fake.upgrades[0]!.authorization, undefined)
      assert.deepStrictEqual(r.fake.hellos, [{
        _tag: "CliHello",
        protocol: Messages.PROTOCOL_VERSION,
        cliVersion: "0.1.0"
      }])
      yield* Effect.promise(() => r.fake.closed(1))
      assert.deepStrictEqual(r.fake.closes, [1000])
    }))

  it.scopedLive("api_key goes as a Bearer header, admin_key in the hello", () =>
    Effect.gen(function*() {
      const r = yield* against(["info"], { apiKey: "s3cret" }, {
        BARTO_CLI_BARTOS__API_KEY: "s3cret",
        BARTO_CLI_BARTOS__ADMIN_KEY: "00123"
      })
      assert.strictEqual(r.code, 0, r.stderr)
      assert.strictEqual(r.fake.upgrades[0]!.authorization, "Bearer s3cret")
      assert.strictEqual(r.fake.hellos[0]!.adminKey, "00123")
    }))

  it.scopedLive("HTTP 401 → exit 1, 'unauthorized (check api_key)'", () =>
    Effect.gen(function*() {
      const r = yield* against(["info"], { apiKey: "right" }, { BARTO_CLI_BARTOS__API_KEY: "wrong" })
      assert.strictEqual(r.code, 1)
      assert.strictEqual(r.stderr, "barto-cli: unauthorized (check api_key)\n")
      assert.strictEqual(r.stdout, "")
    }))

  it.scopedLive("connection refused → exit 1 naming the endpoint and ECONNREFUSED", () =>
    Effect.gen(function*() {
      const port = yield* Effect.scoped(Effect.map(fakeBartos(), (f) => f.port))
      const r = yield* runCli(["runs"], { env: baseEnv({ BARTO_CLI_BARTOS__PORT: String(port) }) })
      assert.strictEqual(r.code, 1)
      assert.strictEqual(r.stderr, `barto-cli: cannot connect to ws://127.0.0.1:${port}/v1/ws/cli: ECONNREFUSED\n`)
    }))

  it.scopedLive("no hello within --timeout → exit 1 'no reply from bartos within 1s'", () =>
    Effect.gen(function*() {
      const started = Date.now()
      const r = yield* against(["info", "--timeout", "1"], { hello: "silent" })
      assert.strictEqual(r.code, 1)
      assert.strictEqual(r.stderr, "barto-cli: no reply from bartos within 1s\n")
      assert.isBelow(Date.now() - started, 5000)
    }))

  it.scopedLive("a request never answered → timeout error (global --timeout before the command)", () =>
    Effect.gen(function*() {
      const r = yield* against(["--timeout", "1", "runs"], { answer: () => undefined })
      assert.strictEqual(r.code, 1)
      assert.strictEqual(r.stderr, "barto-cli: no reply from bartos within 1s\n")
      assert.strictEqual(r.fake.requests.length, 1)
    }))

  it.scopedLive("timeout_secs from the environment/config is the default", () =>
    Effect.gen(function*() {
      const r = yield* against(["failed"], { answer: () => undefined }, { BARTO_CLI_TIMEOUT_SECS: "0.5" })
      assert.strictEqual(r.code, 1)
      assert.strictEqual(r.stderr, "barto-cli: no reply from bartos within 0.5s\n")
    }))

  it.scopedLive("CliError → 'barto-cli: <code>: <message>' on stderr, exit 1", () =>
    Effect.gen(function*() {
      const r = yield* against(["cleanup"], {
        answer: (
          req
        ) => [{ _tag: "CliError", id: req.id, code: "forbidden", message: "cleanup requires the admin key" }]
      })
      assert.strictEqual(r.code, 1)
      assert.strictEqual(r.stderr, "barto-cli: forbidden: cleanup requires the admin key\n")
      assert.strictEqual(r.stdout, "")
    }))

  it.scopedLive("a bad config file → exit 1 naming the file", () =>
    Effect.gen(function*() {
      const r = yield* runCli(["-c", "/nonexistent/barto-cli.toml", "info"])
      assert.strictEqual(r.code, 1)
      assert.match(r.stderr, /^barto-cli: config: .*\/nonexistent\/barto-cli\.toml/)
    }))
})

describe("commands: request shape and rendering", () => {
  it.scopedLive("info", () =>
    Effect.gen(function*() {
      const r = yield* against(["info"])
      assert.deepStrictEqual(sent(r.fake), { _tag: "InfoRequest" })
      assert.strictEqual(
        r.stdout,
        [
          "         version: 0.1.0",
          "        protocol: 1",
          "      started at: 2026-01-01T00:00:00Z",
          "          uptime: 1h02m03s",
          "        database: sqlite (/var/lib/bartos/bartos.db)",
          "       listeners: ws://127.0.0.1:20000",
          "connected agents: 2",
          "            node: v20.20.2",
          "        platform: linux x64",
          "     last reload: REJECTED at 2026-01-01T01:00:00Z; still using the config loaded at 2026-01-01T00:00:00Z",
          "    reload error: /etc/bartos.toml:41:1: schedules.web1.schedules[2]: unknown key 'timout' (did you mean 'timeout'?)",
          "    reload error: /etc/bartos.toml:50:1: schedules.db.schedules[0].timezone: unknown IANA time zone 'Mars/Olympus'",
          ""
        ].join("\n")
      )
      const j = yield* against(["info", "-j"])
      assert.deepStrictEqual(JSON.parse(j.stdout), {
        version: "0.1.0",
        protocol: 1,
        startedAt: "2026-01-01T00:00:00Z",
        uptimeSecs: 3723,
        database: "sqlite",
        databaseLocation: "/var/lib/bartos/bartos.db",
        listeners: ["ws://127.0.0.1:20000"],
        connectedAgents: 2,
        node: "v20.20.2",
        platform: "linux x64",
        configReload: {
          at: "2026-01-01T01:00:00Z",
          result: "rejected",
          error:
            "/etc/bartos.toml:41:1: schedules.web1.schedules[2]: unknown key 'timout' (did you mean 'timeout'?)\n" +
            "/etc/bartos.toml:50:1: schedules.db.schedules[0].timezone: unknown IANA time zone 'Mars/Olympus'",
          lastSuccessAt: "2026-01-01T00:00:00Z"
        }
      })
    }))

  it.scopedLive("clients, clients --versions (sorted by name)", () =>
    Effect.gen(function*() {
      const r = yield* against(["clients"])
      assert.deepStrictEqual(sent(r.fake), { _tag: "ClientsRequest" })
      assert.strictEqual(
        r.stdout,
        [
          "NAME  IP        OS          OS VERSION  KERNEL          VERSION  CONNECTED",
          "host  10.0.0.7  Arch Linux  rolling     6.12.1-arch1-1  1.2.3    2026-01-01T00:00:00Z",
          "zeta  10.0.0.7                                          unknown  2026-01-01T00:00:00Z",
          "",
          "Total clients: 2",
          ""
        ].join("\n")
      )
      const v = yield* against(["clients", "--versions"])
      assert.strictEqual(v.stdout, "NAME  VERSION\nhost  1.2.3\nzeta  unknown\n\nTotal clients: 2\n")
      const vj = yield* against(["clients", "--versions", "--json"])
      assert.deepStrictEqual(JSON.parse(vj.stdout), [{ name: "host", version: "1.2.3" }, {
        name: "zeta",
        version: "unknown"
      }])
      const j = yield* against(["clients", "--json"])
      const parsed = JSON.parse(j.stdout)
      assert.strictEqual(parsed[0].name, "host")
      assert.strictEqual(parsed[0].connectedAt, "2026-01-01T00:00:00Z")
      assert.strictEqual(parsed[0].info.agentVersion, "1.2.3")
      assert.strictEqual(parsed[1].info, null)
    }))

  it.scopedLive("clients shows refused duplicate connections (count, last address), in text and --json", () =>
    Effect.gen(function*() {
      const withRefused = (req: Messages.CliRequest): ReadonlyArray<Messages.CliResponse> | void =>
        req._tag === "ClientsRequest"
          ? [{
            _tag: "ClientsResponse",
            id: req.id,
            clients: [
              clientRow("zeta", null),
              new Messages.ClientRow({
                ...clientRow("host", "1.2.3"),
                refused: { count: 3, lastIp: "10.0.0.5", lastAt: M(T0 + 61_000_000) }
              })
            ]
          }]
          : canned(req)
      const r = yield* against(["clients"], { answer: withRefused })
      assert.deepStrictEqual(r.stdout.split("\n").slice(-5), [
        "Total clients: 2",
        "",
        "Refused duplicate connections (another instance used a name that was live):",
        "  host: 3 attempt(s), last from 10.0.0.5 at 2026-01-01T00:01:01Z",
        ""
      ])
      const j = JSON.parse((yield* against(["clients", "--json"], { answer: withRefused })).stdout)
      assert.deepStrictEqual(j[0].refusedDuplicates, { count: 3, lastIp: "10.0.0.5", lastAt: "2026-01-01T00:01:01Z" })
      assert.strictEqual(j[1].refusedDuplicates, null)
    }))

  it.scopedLive("list -n NAME (commands) and list -n NAME -c CMD (lines, grouped by run)", () =>
    Effect.gen(function*() {
      const cmds = yield* against(["list", "-n", "host"])
      assert.deepStrictEqual(sent(cmds.fake), { _tag: "ListCommandsRequest", agent: "host" })
      assert.strictEqual(cmds.stdout, "Total commands: 2\n\nbackup\nupdate\n")
      // Global -c (config) before the subcommand, -c (command) after it, as the reference.
      const lines = yield* against(["list", "--name", "host", "-c", "backup"])
      // Text without --since/--until/--limit/--all: the recent window (24 h, 1000 lines).
      const { since: listSince, ...listRest } = sent(lines.fake) as { since?: number }
      assert.deepStrictEqual(listRest, { _tag: "ListRequest", agent: "host", cmd: "backup", limit: 1000 })
      assert.approximately(listSince!, Date.now() * 1000 - 24 * 3600e6, 60e6)
      assert.strictEqual(
        lines.stdout,
        [
          "Total outputs: 2 (the last 24 h, at most 1000 lines; --since/--until/--limit to choose, --all for everything)",
          "",
          `run ${RUN_A} succeeded (exit 0)  host backup`,
          "  2026-01-01T00:00:01Z          hello",
          "  2026-01-01T00:00:01.250000Z ! oops",
          ""
        ].join("\n")
      )
      const j = yield* against(["list", "-n", "host", "-c", "backup", "--json"])
      assert.deepStrictEqual(JSON.parse(j.stdout)[1], {
        runId: RUN_A,
        agent: "host",
        schedule: "backup",
        cmdUuid: "c0ffee00-0000-4000-8000-000000000001",
        lineSeq: 1,
        stream: "stderr",
        ts: "2026-01-01T00:00:01.250000Z",
        data: "oops",
        continuation: false,
        exitCode: 0,
        runState: "succeeded"
      })
      const jc = yield* against(["list", "-n", "host", "--json"])
      assert.deepStrictEqual(JSON.parse(jc.stdout), ["backup", "update"])
    }))

  it.scopedLive("failed: data cleaned (ANSI removed, tab expanded)", () =>
    Effect.gen(function*() {
      const r = yield* against(["failed"])
      const { since: failedSince, ...failedRest } = sent(r.fake) as { since?: number }
      assert.deepStrictEqual(failedRest, { _tag: "FailedRequest", limit: 50 })
      assert.isNumber(failedSince)
      assert.strictEqual(
        r.stdout,
        [
          "Total failed outputs: 1 (the last 24 h, at most 50 failed commands; --since/--until/--limit to choose, --all for everything)",
          "",
          "host backup failed (exit 3) at 2026-01-01T00:00:05Z",
          `  run ${RUN_B}  command: restic check`,
          "  | Fatal: repository locked",
          "  | red   tabbed",
          ""
        ].join("\n")
      )
      const j = yield* against(["failed", "--json"])
      assert.deepStrictEqual(JSON.parse(j.stdout)[0].lines, [
        "Fatal: repository locked",
        "\u001b[31mred\u001b[0m\ttabbed"
      ])
    }))

  it.scopedLive("cmd CMD_NAME", () =>
    Effect.gen(function*() {
      const r = yield* against(["cmd", "backup"])
      const { since: cmdSince, ...cmdRest } = sent(r.fake) as { since?: number }
      assert.deepStrictEqual(cmdRest, { _tag: "CmdRequest", cmd: "backup", limit: 1000 })
      assert.isNumber(cmdSince)
      assert.match(r.stdout, /^== host ==\nTotal outputs: 1 \(the last 24 h, at most 1000 lines;/)
      const all = yield* against(["cmd", "backup", "--all"])
      assert.deepStrictEqual(sent(all.fake), { _tag: "CmdRequest", cmd: "backup" })
      const j = yield* against(["cmd", "backup", "--json"])
      assert.strictEqual(JSON.parse(j.stdout)[0].agent, "host")
      assert.strictEqual(JSON.parse(j.stdout)[0].lines[0].data, "done")
    }))

  it.scopedLive("updates: kind case-insensitive; an unknown kind is a usage error before connecting", () =>
    Effect.gen(function*() {
      const r = yield* against(["updates", "-n", "host", "-u", "GARUDA"])
      assert.deepStrictEqual(sent(r.fake), { _tag: "UpdatesRequest", agent: "host", kind: "garuda" })
      assert.strictEqual(
        r.stdout,
        "PACKAGE  CHANNEL  OLD           NEW       SIZE CHANGE  DOWNLOAD\nkio      (extra)  6.19.0-1  ->  6.19.0-2     0.00 MiB  3.59 MiB\n"
      )
      const j = yield* against(["updates", "-n", "host", "-u", "garuda", "--json"])
      assert.deepStrictEqual(JSON.parse(j.stdout), {
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
      const bad = yield* against(["updates", "-n", "host", "-u", "yum"])
      assert.strictEqual(bad.code, 2)
      assert.strictEqual(bad.stderr.split("invalid update kind: 'yum'").length - 1, 1, bad.stderr)
      assert.strictEqual(bad.fake.upgrades.length, 0)
    }))

  it.scopedLive("query: table with NULL; a refused statement prints the server's reason, exit 1", () =>
    Effect.gen(function*() {
      const r = yield* against(["query", "-q", "select n, name from t"])
      assert.deepStrictEqual(sent(r.fake), { _tag: "QueryRequest", sql: "select n, name from t" })
      assert.strictEqual(r.stdout, "N  NAME\n1  a\n2  NULL\n\nTotal rows: 2\n".replace("N  NAME", "n  name"))
      const j = yield* against(["query", "--query", "select 1", "--json"])
      assert.deepStrictEqual(JSON.parse(j.stdout), {
        columns: ["n", "name"],
        rows: [["1", "a"], ["2", null]],
        truncated: false
      })
      const refused = yield* against(["query", "-q", "delete from runs"])
      assert.strictEqual(refused.code, 1)
      assert.strictEqual(
        refused.stderr,
        "barto-cli: refused: only read-only statements are allowed (SELECT, WITH, SHOW, EXPLAIN)\n"
      )
    }))

  it.scopedLive("cleanup: default (bartos' midnight), --before DATE (local midnight), --dry-run", () =>
    Effect.gen(function*() {
      const r = yield* against(["cleanup"])
      assert.deepStrictEqual(sent(r.fake), { _tag: "CleanupRequest", dryRun: false })
      assert.strictEqual(
        r.stdout,
        "everything before 2026-01-01T00:00:00Z\ndeleted 3 runs\ndeleted 4 command results\ndeleted 50 output lines\nsignalled 2 connected agents\n"
      )
      const tz = process.env.TZ
      process.env.TZ = "Asia/Tokyo"
      try {
        const d = yield* against(["cleanup", "--before", "2026-03-01", "--dry-run", "--json"])
        const midnightTokyo = Date.parse("2026-02-28T15:00:00Z") * 1000
        assert.deepStrictEqual(sent(d.fake), { _tag: "CleanupRequest", dryRun: true, before: M(midnightTokyo) })
        assert.deepStrictEqual(JSON.parse(d.stdout), {
          before: "2026-02-28T15:00:00Z",
          dryRun: true,
          runs: 3,
          commands: 4,
          lines: 50,
          agentsSignalled: 0
        })
        const exact = yield* against(["cleanup", "--before", "2026-03-01T00:00:00Z"])
        assert.strictEqual((sent(exact.fake) as { before?: number }).before, Date.parse("2026-03-01T00:00:00Z") * 1000)
      } finally {
        if (tz === undefined) delete process.env.TZ
        else process.env.TZ = tz
      }
      const bad = yield* against(["cleanup", "--before", "last tuesday"])
      assert.strictEqual(bad.code, 2)
      assert.include(bad.stderr, "barto-cli: cleanup: --before: 'last tuesday' is not a time (RFC 3339 or YYYY-MM-DD)")
    }))

  it.scopedLive("schedules [AGENT] with next fire time", () =>
    Effect.gen(function*() {
      const all = yield* against(["schedules"])
      assert.deepStrictEqual(sent(all.fake), { _tag: "SchedulesRequest" })
      // An older bartos sends no last run nor settings: '-' and '?' instead of guesses.
      const [header, host, other, end] = all.stdout.split("\n")
      assert.match(
        header!,
        /^AGENT +SCHEDULE +LAST +RESULT +DURATION +NEXT +LEFT +TIMEOUT +OVERLAP +ON FAILURE +MISSED TICK +ZONE +CALENDAR$/
      )
      assert.match(
        host!,
        /^host +backup +- +- +- +2026-01-01T01:00:00Z +\d+ d( \d+ h)? ago +\? +\? +\? +\? +\? +\*-\*-\* 10:17:42$/
      )
      assert.match(other!, /^other \(offline\) +sync +- +- +- +- +paused +\? +\? +\? +\? +\? +\*-\*-\* 10:17:42$/)
      assert.strictEqual(end, "")
      const one = yield* against(["schedules", "host", "--json"])
      assert.deepStrictEqual(sent(one.fake), { _tag: "SchedulesRequest", agent: "host" })
      assert.deepStrictEqual(JSON.parse(one.stdout)[0], {
        agent: "host",
        name: "backup",
        onCalendar: "*-*-* 10:R:R",
        calendar: "*-*-* 10:17:42",
        cmds: ["restic backup /home"],
        paused: false,
        connected: true,
        nextAt: "2026-01-01T01:00:00Z",
        // Fields an older bartos does not send are null in JSON.
        timeoutSecs: null,
        overlap: null,
        onFailure: null,
        timezone: null,
        missedTick: null,
        catchUpLimit: null,
        lastRun: null
      })
      assert.strictEqual(JSON.parse(one.stdout)[1].nextAt, null)
    }))

  it.scopedLive("runs: filters go into the request; table and JSON", () =>
    Effect.gen(function*() {
      const r = yield* against([
        "runs",
        "--agent",
        "host",
        "--schedule",
        "backup",
        "--state",
        "failed",
        "--since",
        "2026-01-01T00:00:00Z",
        "--limit",
        "5"
      ])
      assert.deepStrictEqual(sent(r.fake), {
        _tag: "RunsRequest",
        agent: "host",
        schedule: "backup",
        state: "failed",
        since: M(T0),
        limit: 5
      })
      assert.strictEqual(
        r.stdout,
        [
          "RUN       AGENT  SCHEDULE  TRIGGER   STATE      SCHEDULED             DURATION  EXIT",
          `${RUN_A.slice(-8)}  host   backup    schedule  succeeded  2026-01-01T00:00:00Z    2.500s     0`,
          `${RUN_B.slice(-8)}  host   backup    schedule  failed     2026-01-01T00:00:00Z    2.500s     3`,
          ""
        ].join("\n")
      )
      const d = yield* against(["runs"])
      assert.deepStrictEqual(sent(d.fake), { _tag: "RunsRequest", limit: 50 })
      const j = yield* against(["runs", "--json"])
      assert.deepStrictEqual(JSON.parse(j.stdout)[0], {
        runId: RUN_A,
        agent: "host",
        schedule: "backup",
        trigger: "schedule",
        state: "succeeded",
        scheduledAt: "2026-01-01T00:00:00Z",
        startedAt: "2026-01-01T00:00:00.123456Z",
        finishedAt: "2026-01-01T00:00:02.623456Z",
        exitCode: 0,
        signal: null,
        reason: null,
        scheduledUntil: null,
        occurrences: 1,
        heartbeat: null
      })
      const bad = yield* against(["runs", "--state", "exploded"])
      assert.strictEqual(bad.code, 2)
      assert.strictEqual(bad.fake.upgrades.length, 0)
    }))

  it.scopedLive("--local prints time stamps in the local zone (text and JSON)", () =>
    Effect.gen(function*() {
      const tz = process.env.TZ
      process.env.TZ = "Europe/Berlin"
      try {
        const r = yield* against(["runs", "--json", "--local"])
        assert.strictEqual(JSON.parse(r.stdout)[0].scheduledAt, "2026-01-01T01:00:00+01:00")
        assert.strictEqual(JSON.parse(r.stdout)[0].startedAt, "2026-01-01T01:00:00.123456+01:00")
        const t = yield* against(["--local", "info"])
        assert.include(t.stdout, "started at: 2026-01-01T01:00:00+01:00")
      } finally {
        if (tz === undefined) delete process.env.TZ
        else process.env.TZ = tz
      }
    }))

  it.scopedLive("tail RUN: header, lines (stderr marked), end line; NDJSON with --json", () =>
    Effect.gen(function*() {
      const r = yield* against(["tail", RUN_A])
      assert.deepStrictEqual(sent(r.fake), { _tag: "TailRequest", runId: RUN_A, follow: false })
      assert.strictEqual(
        r.stdout,
        [
          `run ${RUN_A} host backup succeeded`,
          "2026-01-01T00:00:01Z          one",
          "2026-01-01T00:00:01.250000Z ! two",
          `run ${RUN_A} succeeded (exit 0) in 2.500s`,
          ""
        ].join("\n")
      )
      const j = yield* against(["tail", RUN_A, "--json"])
      const events = j.stdout.trim().split("\n").map((l) => JSON.parse(l))
      assert.deepStrictEqual(events.map((e) => e.event), ["run", "line", "line", "end"])
      assert.strictEqual(events[2].stream, "stderr")
      assert.strictEqual(events[3].state, "succeeded")
    }))

  it.scopedLive("tail -f --agent --schedule streams chunks as they come; waiting is kept alive by pongs", () =>
    Effect.gen(function*() {
      let stream: ((m: Messages.ServerToCli) => void) | undefined
      let id = 0
      const fake = yield* fakeBartos({
        answer: (req, send) => {
          id = req.id
          stream = send
        }
      })
      // Nothing comes for 1.5 s (longer than --timeout 1): the pong to the ping behind the request
      // is the first answer, so the follow does not time out.
      const running = runRow(RUN_A, "running")
      const feed = Effect.gen(function*() {
        yield* Effect.sleep("1500 millis")
        stream!({ _tag: "TailChunk", id, run: running, lines: [], done: false })
        yield* Effect.sleep("50 millis")
        stream!({
          _tag: "TailChunk",
          id,
          run: null,
          lines: [lineRow(RUN_A, 0, "live", "stdout", "running")],
          done: false
        })
        yield* Effect.sleep("50 millis")
        stream!({ _tag: "TailChunk", id, run: runRow(RUN_A, "failed", { exitCode: 2 }), lines: [], done: true })
      })
      const [r] = yield* Effect.all([
        runCli(["tail", "-f", "--agent", "host", "--schedule", "backup", "--timeout", "1"], {
          env: baseEnv(envFor(fake))
        }),
        feed
      ], { concurrency: 2 })
      assert.strictEqual(r.code, 0, r.stderr)
      assert.deepStrictEqual(sent(fake), {
        _tag: "TailRequest",
        agent: "host",
        schedule: "backup",
        follow: true,
        continuous: true
      })
      assert.strictEqual(
        r.stdout,
        `run ${RUN_A} host backup running\n2026-01-01T00:00:01Z          live\nrun ${RUN_A} failed (exit 2) in 2.500s\n`
      )
      assert.isAtLeast(fake.pings.length, 1)
    }))

  it.scopedLive("tail without RUN or --agent/--schedule is a usage error (exit 2)", () =>
    Effect.gen(function*() {
      const r = yield* against(["tail", "--agent", "host"])
      assert.strictEqual(r.code, 2)
      assert.strictEqual(
        r.stderr,
        "barto-cli: tail: needs a RUN id, or --agent and --schedule (or -f to follow an agent or the fleet)\n"
      )
      assert.strictEqual(r.fake.upgrades.length, 0)
    }))

  it.scopedLive("run AGENT SCHEDULE prints the run id; --wait follows and exits by the run's state", () =>
    Effect.gen(function*() {
      const r = yield* against(["run", "host", "backup"])
      assert.deepStrictEqual(sent(r.fake), { _tag: "RunNowRequest", agent: "host", schedule: "backup" })
      assert.strictEqual(r.stdout, `${RUN_A}\n`)
      const j = yield* against(["run", "host", "backup", "--json"])
      assert.deepStrictEqual(JSON.parse(j.stdout), { runId: RUN_A, agent: "host", schedule: "backup" })

      const ok = yield* against(["run", "host", "backup", "--wait"])
      assert.strictEqual(ok.code, 0, ok.stderr)
      assert.deepStrictEqual(ok.fake.requests.map((q) => q._tag), ["RunNowRequest", "TailRequest"])
      assert.deepStrictEqual(
        (({ id: _id, ...rest }) => rest)(ok.fake.requests[1]!),
        { _tag: "TailRequest", runId: RUN_A, follow: true }
      )
      assert.match(ok.stdout, new RegExp(`^${RUN_A}\\nrun ${RUN_A} host backup succeeded\\n`))
      assert.match(ok.stdout, /succeeded \(exit 0\) in 2\.500s\n$/)

      const failing = (req: Messages.CliRequest): ReadonlyArray<Messages.CliResponse> | void =>
        req._tag === "TailRequest"
          ? [{ _tag: "TailChunk", id: req.id, run: runRow(RUN_A, "failed"), lines: [], done: true }]
          : canned(req)
      const bad = yield* against(["run", "host", "backup", "-w", "--json"], { answer: failing })
      assert.strictEqual(bad.code, 1)
      const events = bad.stdout.trim().split("\n").map((l) => JSON.parse(l))
      assert.deepStrictEqual(events.map((e) => e.event), ["started", "end"])
      assert.strictEqual(events[1].state, "failed")
    }))

  it.scopedLive("cancel, pause, resume", () =>
    Effect.gen(function*() {
      const c = yield* against(["cancel", RUN_B])
      assert.deepStrictEqual(sent(c.fake), { _tag: "CancelRequest", runId: RUN_B })
      assert.strictEqual(c.stdout, `cancel of run ${RUN_B} sent to its agent\n`)
      const cj = yield* against(["cancel", RUN_B, "--json"])
      assert.deepStrictEqual(JSON.parse(cj.stdout), { runId: RUN_B, delivered: true })
      const p = yield* against(["pause", "host", "backup"])
      assert.deepStrictEqual(sent(p.fake), { _tag: "PauseRequest", agent: "host", schedule: "backup" })
      assert.strictEqual(p.stdout, "host backup: paused\n")
      const rs = yield* against(["resume", "host", "backup", "--json"])
      assert.deepStrictEqual(sent(rs.fake), { _tag: "ResumeRequest", agent: "host", schedule: "backup" })
      assert.deepStrictEqual(JSON.parse(rs.stdout), { agent: "host", schedule: "backup", paused: false })
    }))
})

describe("answers in parts", () => {
  const lines = Array.from({ length: 6 }, (_, i) => lineRow(i < 3 ? RUN_A : RUN_B, i, `line ${i}`))
  const other = (l: Messages.LineRow) => new Messages.LineRow({ ...l, agent: "zeta" })
  const failedWith = (ls: ReadonlyArray<string>) => new Messages.FailedRow({ ...failedRow(), lines: ls })
  const runs = [runRow(RUN_A, "succeeded"), runRow(RUN_B, "failed", { exitCode: 3 })]
  const whole = (req: Messages.CliRequest): ReadonlyArray<Messages.CliResponse> | void => {
    const id = req.id
    switch (req._tag) {
      case "ListRequest":
        return [{ _tag: "LinesResponse", id, lines }]
      case "CmdRequest":
        return [{
          _tag: "CmdResponse",
          id,
          byAgent: [{ agent: "host", lines }, { agent: "zeta", lines: lines.map(other) }]
        }]
      case "FailedRequest":
        return [{ _tag: "FailedResponse", id, failed: [failedWith(["a", "b", "c", "d"])] }]
      case "RunsRequest":
        return [{ _tag: "RunsResponse", id, runs }]
      case "QueryRequest":
        return [{ _tag: "QueryResponse", id, columns: ["n"], rows: [["1"], ["2"], ["3"]], truncated: false }]
      default:
        return canned(req)
    }
  }
  // The same answers cut at awkward places: inside a run, inside an agent's group, inside a
  // failed command's lines; empty parts too.
  const parts = (truncated: boolean) => (req: Messages.CliRequest): ReadonlyArray<Messages.CliResponse> | void => {
    const id = req.id
    const last = truncated ? { truncated: true } : {}
    switch (req._tag) {
      case "ListRequest":
        return [
          { _tag: "LinesResponse", id, lines: lines.slice(0, 2), more: true },
          { _tag: "LinesResponse", id, lines: [], more: true },
          { _tag: "LinesResponse", id, lines: lines.slice(2), ...last }
        ]
      case "CmdRequest":
        return [
          { _tag: "CmdResponse", id, byAgent: [{ agent: "host", lines: lines.slice(0, 4) }], more: true },
          {
            _tag: "CmdResponse",
            id,
            byAgent: [{ agent: "host", lines: lines.slice(4) }, { agent: "zeta", lines: lines.slice(0, 1).map(other) }],
            more: true
          },
          { _tag: "CmdResponse", id, byAgent: [{ agent: "zeta", lines: lines.slice(1).map(other) }], ...last }
        ]
      case "FailedRequest":
        return [
          { _tag: "FailedResponse", id, failed: [failedWith(["a"])], more: true },
          { _tag: "FailedResponse", id, failed: [failedWith(["b", "c"])], more: true },
          { _tag: "FailedResponse", id, failed: [failedWith(["d"])], ...last }
        ]
      case "RunsRequest":
        return [
          { _tag: "RunsResponse", id, runs: runs.slice(0, 1), more: true },
          { _tag: "RunsResponse", id, runs: runs.slice(1) }
        ]
      case "QueryRequest":
        return [
          { _tag: "QueryResponse", id, columns: ["n"], rows: [["1"]], truncated: false, more: true },
          { _tag: "QueryResponse", id, columns: ["n"], rows: [["2"], ["3"]], truncated: false }
        ]
      default:
        return canned(req)
    }
  }
  const commands = [
    ["list", "-n", "host", "-c", "backup"],
    ["cmd", "backup"],
    ["failed"],
    ["runs"],
    ["query", "-q", "select n"]
  ]

  it.scopedLive("barto-cli reassembles them: text and --json exactly as from one frame", () =>
    Effect.gen(function*() {
      for (const args of commands) {
        for (const json of [false, true]) {
          const argv = json ? [...args, "--json"] : args
          const one = yield* against(argv, { answer: whole })
          const many = yield* against(argv, { answer: parts(false) })
          assert.strictEqual(one.code, 0, one.stderr)
          assert.strictEqual(many.code, 0, many.stderr)
          assert.strictEqual(many.stdout, one.stdout, argv.join(" "))
          assert.strictEqual(many.stderr, "")
        }
      }
    }))

  it.scopedLive("an answer bartos cut says so on stderr; stdout keeps its shape", () =>
    Effect.gen(function*() {
      for (const args of commands.slice(0, 3)) {
        const one = yield* against(args, { answer: whole })
        const cut = yield* against(args, { answer: parts(true) })
        assert.strictEqual(cut.code, 0, cut.stderr)
        assert.strictEqual(cut.stdout, one.stdout)
        assert.match(cut.stderr, /cut this answer at its size limit/)
      }
    }))
})

describe("a hostile server cannot drive the terminal", () => {
  // C0 (ESC, CR, BEL, backspace), DEL, 8-bit CSI/OSC (U+009B, U+009D), a bidi override.
  const EVIL = "\u001b[2J\u001b]0;pwned\u0007\r\b\u007f\u009b31m\u009d0;x\u202egnp.exe"
  // eslint-disable-next-line no-control-regex
  const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/
  const hostile = (req: Messages.CliRequest): ReadonlyArray<Messages.CliResponse> | void => {
    const id = req.id
    const evilRun = Messages.RunId.make(`run${EVIL}`)
    switch (req._tag) {
      case "RunsRequest":
        return [{
          _tag: "RunsResponse",
          id,
          runs: [
            new Messages.RunRow({ ...runRow(RUN_A, "failed"), runId: evilRun, agent: `a${EVIL}`, signal: `SIG${EVIL}` })
          ]
        }]
      case "ListRequest":
        return [{
          _tag: "LinesResponse",
          id,
          lines: [new Messages.LineRow({ ...lineRow(RUN_A, 0, `out${EVIL}`), runId: evilRun })]
        }]
      case "QueryRequest":
        return [{ _tag: "QueryResponse", id, columns: [`c${EVIL}`], rows: [[`v${EVIL}`]], truncated: false }]
      case "CancelRequest":
        return [{ _tag: "CliError", id, code: "not_found", message: `unknown run${EVIL}\nsecond line` }]
      case "RunNowRequest":
        return [{ _tag: "RunNowResponse", id, runId: evilRun, agent: req.agent, schedule: req.schedule }]
      default:
        return canned(req)
    }
  }

  it.scopedLive("text output, --json and error messages carry no control character", () =>
    Effect.gen(function*() {
      for (
        const args of [["runs"], ["list", "-n", "host", "-c", "backup"], ["query", "-q", "select 1"], [
          "run",
          "host",
          "backup"
        ]]
      ) {
        for (const json of [false, true]) {
          const r = yield* against(json ? [...args, "--json"] : args, { answer: hostile, admin: true })
          assert.strictEqual(r.code, 0, r.stderr)
          assert.notMatch(r.stdout, CONTROLS, `${args.join(" ")}${json ? " --json" : ""}: ${JSON.stringify(r.stdout)}`)
          if (json) {
            // Still the same JSON values, the controls only escaped.
            const text = JSON.stringify(JSON.parse(r.stdout))
            assert.include(text, "\\u001b[2J")
          }
        }
      }
      const failedCancel = yield* against(["cancel", "0194b1c2-0000-7000-8000-0000000000ff"], { answer: hostile })
      assert.strictEqual(failedCancel.code, 1)
      assert.notMatch(failedCancel.stderr, CONTROLS)
      // What was sent stays visible, escaped; a newline of the message stays a newline.
      assert.include(
        failedCancel.stderr,
        "unknown run\\x1b[2J\\x1b]0;pwned\\x07\\r\\x08\\x7f\\x9b31m\\x9d0;x\\u202egnp.exe\nsecond line"
      )
    }))

  it.scopedLive("our own colours survive on a terminal, the server's escape sequences do not", () =>
    Effect.gen(function*() {
      const fake = yield* fakeBartos({ answer: hostile })
      const r = yield* runCli(["runs"], { env: baseEnv(envFor(fake)), tty: true, columns: 400 })
      assert.strictEqual(r.code, 0, r.stderr)
      assert.include(r.stdout, "\u001b[31mfailed\u001b[0m")
      assert.notInclude(r.stdout, "\u001b[2J")
      // eslint-disable-next-line no-control-regex -- SGR sequences are what it removes
      assert.notMatch(r.stdout.replace(/\u001b\[(?:[0-2]|3[1-6])m/g, ""), CONTROLS)
    }))
})

describe("usage errors (exit 2, printed once, no connection)", () => {
  it.scopedLive("missing option, unknown subcommand, unknown argument, no command", () =>
    Effect.gen(function*() {
      for (
        const [args, needle] of [
          [["list"], "--name"],
          [["bogus"], "unknown command 'bogus'"],
          [["info", "extra"], "extra"],
          [[], "missing command"],
          [["run", "host"], "SCHEDULE"],
          [["info", "--timeout", "0"], "barto-cli: info: --timeout: '0' is not a number of seconds greater than 0"]
        ] as const
      ) {
        const r = yield* against(args)
        assert.strictEqual(r.code, 2, `${args.join(" ")}: ${r.stderr}`)
        assert.include(r.stderr, needle)
        assert.strictEqual(r.stderr.split(needle).length - 1, 1, `printed once: ${r.stderr}`)
        assert.strictEqual(r.stdout, "")
        assert.strictEqual(r.fake.upgrades.length, 0)
      }
    }))

  it.scopedLive("--help and --version print on stdout and exit 0", () =>
    Effect.gen(function*() {
      const help = yield* runCli(["--help"])
      assert.strictEqual(help.code, 0)
      assert.include(help.stdout, "COMMANDS")
      assert.notInclude(help.stdout, "\u001b[")
      const version = yield* runCli(["-V"])
      assert.strictEqual(version.stdout, "0.1.0\n")
      const completions = yield* runCli(["--completions", "bash"])
      assert.strictEqual(completions.code, 0)
      assert.include(completions.stdout, "barto-cli")
    }))
})

describe("as a real process", () => {
  it.scopedLive("connection refused and a CliError both exit 1 with one stderr line; ok exits 0", () =>
    Effect.gen(function*() {
      const fake = yield* fakeBartos({
        answer: (req) =>
          req._tag === "CancelRequest"
            ? [{ _tag: "CliError", id: req.id, code: "not_found", message: `unknown run ${req.runId}` }]
            : canned(req)
      })
      const [refused, error, ok] = yield* Effect.all([
        runProcess(["info"], { env: { BARTO_CLI_BARTOS__PORT: "1" } }),
        runProcess(["cancel", "0194b1c2-0000-7000-8000-0000000000ff"], { env: envFor(fake) }),
        runProcess(["runs", "--json"], { env: envFor(fake) })
      ], { concurrency: 3 })
      assert.strictEqual(refused.code, 1)
      assert.strictEqual(refused.stderr, "barto-cli: cannot connect to ws://127.0.0.1:1/v1/ws/cli: ECONNREFUSED\n")
      assert.strictEqual(error.code, 1)
      assert.strictEqual(error.stderr, "barto-cli: not_found: unknown run 0194b1c2-0000-7000-8000-0000000000ff\n")
      assert.strictEqual(ok.code, 0, ok.stderr)
      assert.strictEqual(JSON.parse(ok.stdout).length, 2)
      assert.strictEqual(ok.stderr, "")
    }))
})
