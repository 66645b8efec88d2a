import * as Messages from "@barto/domain/Messages"
import { assert, describe, it } from "@effect/vitest"
import { FastCheck } from "effect"
import * as Render from "../src/Render.js"
import { clientRow, failedRow, lineRow, M, RUN_A, RUN_B, runRow, T0 } from "./fixtures.js"

const tty = (columns: number, env: Record<string, string | undefined> = {}) =>
  Render.makeStyle({ tty: true, columns, env, local: false })
const pipe = Render.makeStyle({ tty: false, columns: undefined, env: {}, local: false })

const wide = "x".repeat(150) + " end"

describe("tables", () => {
  it("not a TTY: wide values are never cut, columns stay aligned, no colour, no trailing spaces", () => {
    const lines = Render.table(pipe, [{ header: "A" }, { header: "DATA" }], [["1", wide], ["22", "short"]])
    assert.deepStrictEqual(lines, ["A   DATA", `1   ${wide}`, "22  short"])
    assert.isFalse(lines.some((l) => l.includes("\u001b")))
  })

  it("a TTY: a too-wide last column wraps under itself; the whole value is kept", () => {
    const style = tty(60, {})
    const lines = Render.table({ ...style, color: false }, [{ header: "AGENT" }, { header: "DATA" }], [["host", wide]])
    assert.strictEqual(lines[0], "AGENT  DATA")
    const body = lines.slice(1)
    assert.isAbove(body.length, 1)
    for (const l of body) assert.isAtMost(Render.displayWidth(l), 60)
    assert.isTrue(body[0]!.startsWith("host   "))
    for (const l of body.slice(1)) assert.isTrue(l.startsWith(" ".repeat(7)))
    assert.strictEqual(body.map((l, i) => (i === 0 ? l.slice(7) : l.slice(7))).join(""), wide)
  })

  it("a TTY with little room left shows the value whole instead of cutting it", () => {
    const lines = Render.table({ ...tty(30), color: false }, [{ header: "A".repeat(20) }, { header: "B" }], [[
      "a",
      wide
    ]])
    assert.strictEqual(lines.length, 2)
    assert.isTrue(lines[1]!.endsWith(wide))
  })

  it("right-aligned columns", () => {
    assert.deepStrictEqual(
      Render.table(pipe, [{ header: "N", align: "right" }, { header: "X" }], [["1", "a"], ["100", "b"]]),
      ["  N  X", "  1  a", "100  b"]
    )
  })

  it("wrapping never splits a character: CJK, combining marks, emoji sequences", () => {
    const text = "日本語のテキスト" + "e\u0301".repeat(5) + "👨‍👩‍👧".repeat(4) + "ok"
    for (const width of [1, 2, 3, 5, 7]) {
      const pieces = Render.wrap(text, width)
      assert.strictEqual(pieces.join(""), text)
      const all = Render.graphemes(text)
      let i = 0
      for (const piece of pieces) {
        for (const g of Render.graphemes(piece)) assert.strictEqual(g, all[i++])
        // a single grapheme wider than the width is allowed to stand alone
        assert.isTrue(Render.displayWidth(piece) <= Math.max(width, 2))
      }
    }
  })

  it.prop("wrap keeps every grapheme, in order", [
    FastCheck.string({ unit: "grapheme", maxLength: 60 }),
    FastCheck.integer({ min: 1, max: 30 })
  ], ([text, width]) => {
    assert.strictEqual(Render.wrap(text, width).join(""), text)
  })
})

describe("colours", () => {
  it("only on a TTY, never with NO_COLOR (even empty)", () => {
    assert.isTrue(tty(80).color)
    assert.isFalse(tty(80, { NO_COLOR: "1" }).color)
    assert.isFalse(tty(80, { NO_COLOR: "" }).color)
    assert.isFalse(pipe.color)
    assert.strictEqual(Render.paint(tty(80), "green", "ok"), "\u001b[32mok\u001b[0m")
    assert.strictEqual(Render.paint(tty(80, { NO_COLOR: "1" }), "green", "ok"), "ok")
    assert.strictEqual(Render.paint(pipe, "green", "ok"), "ok")
  })

  it("coloured cells do not disturb alignment", () => {
    const style = tty(200)
    const lines = Render.runsText(style, [runRow(RUN_A, "succeeded"), runRow(RUN_A, "failed")])
    // eslint-disable-next-line no-control-regex -- SGR sequences are what it removes
    const plain = lines.map((l) => l.replace(/\u001b\[[0-9;]*m/g, ""))
    assert.deepStrictEqual(
      plain,
      Render.runsText({ ...style, color: false }, [runRow(RUN_A, "succeeded"), runRow(RUN_A, "failed")])
    )
    assert.isTrue(lines[1]!.includes("\u001b[32msucceeded\u001b[0m"))
  })
})

describe("heartbeats", () => {
  it("a running run shows its last progress and status; --json carries the whole beat", () => {
    const beating = new Messages.RunRow({
      ...runRow(RUN_A, "running"),
      finishedAt: null,
      exitCode: null,
      heartbeat: { at: M(T0 + 1_000_000), progress: "40/100", status: "degraded", message: "slow mirror" }
    })
    const lines = Render.runsText(pipe, [beating])
    assert.match(lines[1]!, /running 40\/100 degraded/)
    assert.deepStrictEqual(Render.runJson(beating, "UTC").heartbeat, {
      at: "2026-01-01T00:00:01Z",
      progress: "40/100",
      status: "degraded",
      message: "slow mirror"
    })
    // Once the run ended, its state stands alone.
    assert.notMatch(Render.runsText(pipe, [new Messages.RunRow({ ...beating, state: "succeeded" })])[1]!, /40\/100/)
  })
})

describe("the run ledger in text", () => {
  it("a reason column when a row has one; a missed range shows its count, its end and the total occurrences", () => {
    const interrupted = new Messages.RunRow({ ...runRow(RUN_A, "interrupted"), reason: "shutdown" })
    const range = new Messages.RunRow({
      ...runRow(RUN_B, "missed"),
      startedAt: null,
      finishedAt: null,
      exitCode: null,
      reason: "catch_up_limit",
      scheduledUntil: M(T0 + 7_149_000_000),
      occurrences: 7150
    })
    assert.deepStrictEqual(Render.runsText(pipe, [interrupted, range]), [
      "RUN       AGENT  SCHEDULE  TRIGGER   STATE         SCHEDULED             DURATION  EXIT  REASON",
      `${RUN_A.slice(-8)}  host   backup    schedule  interrupted   2026-01-01T00:00:00Z    2.500s     1  shutdown`,
      `${
        RUN_B.slice(-8)
      }  host   backup    schedule  missed ×7150  2026-01-01T00:00:00Z         -     -  catch_up_limit, until 2026-01-01T01:59:09Z`,
      "",
      "Total: 2 rows, 7151 occurrences"
    ])
    assert.strictEqual(Render.runEndText(pipe, interrupted), `run ${RUN_A} interrupted (shutdown) (exit 1) in 2.500s`)
    assert.deepInclude(Render.runJson(range, "UTC"), {
      state: "missed",
      reason: "catch_up_limit",
      scheduledUntil: "2026-01-01T01:59:09Z",
      occurrences: 7150
    })
  })
})

describe("cleaning data for display", () => {
  it("tabs → 3 spaces, CR/LF → space, ANSI escapes and other controls removed", () => {
    assert.strictEqual(Render.clean("a\tb"), "a   b")
    assert.strictEqual(Render.clean("a\r\nb\nc\rd"), "a b c d")
    assert.strictEqual(
      Render.clean("\u001b[1;31mred\u001b[0m \u001b]0;title\u0007x \u001b]8;;http://e\u001b\\link"),
      "red x link"
    )
    assert.strictEqual(Render.clean("bell\u0007 back\bspace \u009b31m"), "bell backspace ")
    assert.strictEqual(Render.clean("ünïcödé 日本 👍"), "ünïcödé 日本 👍")
  })

  it.prop("clean output has no control characters", [FastCheck.string({ unit: "binary", maxLength: 80 })], ([s]) => {
    // eslint-disable-next-line no-control-regex
    assert.notMatch(Render.clean(s), /[\u0000-\u001f\u007f-\u009f]/)
  })

  it("display width: wide CJK counts 2, combining marks 0", () => {
    assert.strictEqual(Render.displayWidth("abc"), 3)
    assert.strictEqual(Render.displayWidth("日本"), 4)
    assert.strictEqual(Render.displayWidth("e\u0301"), 1)
    assert.strictEqual(Render.displayWidth("\u001b[31mab\u001b[0m"), 2)
  })

  it("rendered rows carry cleaned data", () => {
    const lines = Render.failedText(pipe, [failedRow()])
    assert.include(lines, "  | red   tabbed")
    const out = Render.outputLine(pipe, lineRow(RUN_A, 0, "a\tb\r\nc\u001b[2J"))
    assert.strictEqual(out, "2026-01-01T00:00:01Z          a   b c")
  })
})

describe("time stamps", () => {
  it("RFC 3339 UTC; microseconds only when not a whole second", () => {
    const t = Date.parse("2026-01-01T00:00:00Z") * 1000
    assert.strictEqual(Render.formatMicros(t), "2026-01-01T00:00:00Z")
    assert.strictEqual(Render.formatMicros(t + 123_456), "2026-01-01T00:00:00.123456Z")
    assert.strictEqual(Render.formatMicros(t + 1), "2026-01-01T00:00:00.000001Z")
    assert.strictEqual(Render.formatMicros(-1), "1969-12-31T23:59:59.999999Z")
  })

  it("local / zone form carries the offset of that instant (DST aware)", () => {
    const winter = Date.parse("2026-01-15T12:00:00Z") * 1000
    const summer = Date.parse("2026-07-15T12:00:00Z") * 1000
    assert.strictEqual(Render.formatMicros(winter, "Europe/Berlin"), "2026-01-15T13:00:00+01:00")
    assert.strictEqual(Render.formatMicros(summer + 5, "Europe/Berlin"), "2026-07-15T14:00:00.000005+02:00")
    assert.strictEqual(Render.formatMicros(winter, "Asia/Kolkata"), "2026-01-15T17:30:00+05:30")
    assert.strictEqual(Render.formatMicros(winter, "America/St_Johns"), "2026-01-15T08:30:00-03:30")
  })

  it("--local uses the process zone", () => {
    const tz = process.env.TZ
    process.env.TZ = "Asia/Tokyo"
    try {
      const style = Render.makeStyle({ tty: false, env: {}, local: true })
      assert.strictEqual(style.zone, "Asia/Tokyo")
      assert.strictEqual(Render.formatMicros(0, style.zone), "1970-01-01T09:00:00+09:00")
    } finally {
      if (tz === undefined) delete process.env.TZ
      else process.env.TZ = tz
    }
  })

  it("parseInstant: offsets, Z, fractions, date-only and wall times in a zone; rejects garbage", () => {
    assert.strictEqual(Render.parseInstant("2026-01-01T00:00:00Z", "UTC"), Date.parse("2026-01-01T00:00:00Z") * 1000)
    assert.strictEqual(
      Render.parseInstant("2026-01-01T01:00:00+01:00", "UTC"),
      Date.parse("2026-01-01T00:00:00Z") * 1000
    )
    assert.strictEqual(
      Render.parseInstant("2026-01-01 00:00:00.5Z", "UTC"),
      Date.parse("2026-01-01T00:00:00Z") * 1000 + 500_000
    )
    assert.strictEqual(Render.parseInstant("2026-03-01", "Asia/Tokyo"), Date.parse("2026-02-28T15:00:00Z") * 1000)
    assert.strictEqual(
      Render.parseInstant("2026-07-01T12:30", "Europe/Berlin"),
      Date.parse("2026-07-01T10:30:00Z") * 1000
    )
    for (const bad of ["", "yesterday", "2026-02-30", "2026-13-01", "2026-01-01T24:00:00Z", "2026-01-01T00:00:00+5"]) {
      assert.strictEqual(Render.parseInstant(bad, "UTC"), undefined, bad)
    }
  })

  it("parseInstant in a DST gap takes the later side; in an overlap, the first", () => {
    // Berlin 2026-03-29 02:30 does not exist; 2026-10-25 02:30 happens twice.
    assert.strictEqual(
      Render.parseInstant("2026-03-29T02:30:00", "Europe/Berlin"),
      Date.parse("2026-03-29T01:30:00Z") * 1000
    )
    assert.strictEqual(
      Render.parseInstant("2026-10-25T02:30:00", "Europe/Berlin"),
      Date.parse("2026-10-25T00:30:00Z") * 1000
    )
  })

  it.prop(
    "parseInstant(formatMicros(t, zone), zone) = t",
    [
      FastCheck.integer({ min: 0, max: 4_102_444_800_000_000 }),
      FastCheck.constantFrom("UTC", "Europe/Berlin", "Asia/Kolkata", "America/St_Johns", "Australia/Lord_Howe")
    ],
    ([t, zone]) => {
      assert.strictEqual(Render.parseInstant(Render.formatMicros(t, zone), zone), t)
    }
  )

  it("durations", () => {
    assert.strictEqual(Render.formatDuration(2_500_000), "2.500s")
    assert.strictEqual(Render.formatDuration(42_000_000), "42.0s")
    assert.strictEqual(Render.formatDuration(123_000_000), "2m03s")
    assert.strictEqual(Render.formatDuration(3_723_000_000), "1h02m03s")
    assert.strictEqual(Render.formatDuration(90_000_000_000), "1d01h")
  })
})

describe("JSON shapes", () => {
  it("runs: RFC 3339 strings, nulls kept", () => {
    assert.deepStrictEqual(Render.runJson(runRow(RUN_A, "running"), "UTC"), {
      runId: RUN_A,
      agent: "host",
      schedule: "backup",
      trigger: "schedule",
      state: "running",
      scheduledAt: "2026-01-01T00:00:00Z",
      startedAt: "2026-01-01T00:00:00.123456Z",
      finishedAt: null,
      exitCode: null,
      signal: null,
      reason: null,
      scheduledUntil: null,
      occurrences: 1,
      heartbeat: null
    })
  })

  it("derived from the Schemas: clients (refused spelled refusedDuplicates, null when absent), info, cleanup, cmd", () => {
    const c = clientRow("host", "1.0")
    assert.deepStrictEqual(Render.clientJson(c, "UTC"), {
      name: c.name,
      ip: c.ip,
      sessionId: c.sessionId,
      connectedAt: Render.formatMicros(c.connectedAt),
      info: {
        osName: c.info!.osName,
        hostname: c.info!.hostname,
        osVersion: c.info!.osVersion,
        kernel: c.info!.kernel,
        agentVersion: "1.0"
      },
      missedTick: null,
      catchUpLimit: null,
      refusedDuplicates: null
    })
    const refused = new Messages.ClientRow({
      ...c,
      info: null,
      missedTick: "Delay",
      catchUpLimit: 10,
      refused: { count: 2, lastIp: "10.0.0.9", lastAt: M(T0) }
    })
    assert.include(Render.clientJson(refused, "UTC"), { missedTick: "Delay", catchUpLimit: 10 })
    assert.deepStrictEqual(Render.clientJson(refused, "UTC").refusedDuplicates, {
      count: 2,
      lastIp: "10.0.0.9",
      lastAt: "2026-01-01T00:00:00Z"
    })
    assert.isNull(Render.clientJson(refused, "UTC").info)
    const cleanup = {
      _tag: "CleanupResponse",
      id: 3,
      before: M(T0),
      dryRun: true,
      runs: 1,
      commands: 2,
      lines: 3,
      agentsSignalled: 0
    } as const
    assert.deepStrictEqual(Render.cleanupJson(cleanup, "Europe/Paris"), {
      before: "2026-01-01T01:00:00+01:00",
      dryRun: true,
      runs: 1,
      commands: 2,
      lines: 3,
      agentsSignalled: 0
    })
    const reload = { at: M(T0), result: "rejected", error: "bad", lastSuccessAt: M(T0 - 1) } as const
    const info = Render.infoJson({
      _tag: "InfoResponse",
      id: 1,
      version: "1.0",
      protocol: 3,
      startedAt: M(T0),
      uptimeSecs: 5,
      database: "sqlite",
      databaseLocation: "/x.db",
      listeners: ["ws://127.0.0.1:1"],
      connectedAgents: 0,
      node: "v20",
      platform: "linux x64",
      configReload: reload
    }, "UTC")
    assert.deepStrictEqual(Object.keys(info), [
      "version",
      "protocol",
      "startedAt",
      "uptimeSecs",
      "database",
      "databaseLocation",
      "listeners",
      "connectedAgents",
      "node",
      "platform",
      "configReload"
    ])
    assert.deepStrictEqual(info.configReload, {
      at: "2026-01-01T00:00:00Z",
      result: "rejected",
      error: "bad",
      lastSuccessAt: "2025-12-31T23:59:59.999999Z"
    })
    const line = lineRow(RUN_A, 0, "hello")
    assert.deepStrictEqual(Render.cmdJson([{ agent: "host", lines: [line] }], "UTC"), [
      { agent: "host", lines: [Render.lineJson(line, "UTC")] }
    ])
    assert.strictEqual(Render.lineJson(line, "UTC").ts, Render.formatMicros(line.ts))
  })

  it("updates: a kind tag and the fields", () => {
    assert.deepStrictEqual(Render.updatesJson({ _tag: "Apt", packages: ["a", "b"] }), {
      kind: "apt",
      packages: ["a", "b"]
    })
    assert.deepStrictEqual(
      Render.updatesJson({
        _tag: "Cachyos",
        summary: { updateCount: 1, packages: ["x"], installSize: 1, netSize: -0.5, downloadSize: 2 }
      }),
      { kind: "cachyos", summary: { updateCount: 1, packages: ["x"], installSize: 1, netSize: -0.5, downloadSize: 2 } }
    )
  })

  it("pacman text matches the reference layout", () => {
    assert.deepStrictEqual(
      Render.updatesText(pipe, {
        _tag: "Pacman",
        summary: { updateCount: 2, packages: ["foo", "bar"], installSize: 2, netSize: 0.5, downloadSize: 1.5 }
      }),
      [
        "Packages (2) foo, bar",
        "",
        "Total Download Size:   1.50 MiB",
        "Total Installed Size:  2.00 MiB",
        "Net Upgrade Size:      0.50 MiB"
      ]
    )
  })
})
