import * as Config from "@barto/domain/Config"
import * as Logging from "@barto/domain/Logging"
import type * as Messages from "@barto/domain/Messages"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as os from "node:os"
import { AgentSessions } from "../src/internal/agentSessions.js"
import * as ScheduleTable from "../src/internal/scheduleTable.js"
import { Metrics } from "../src/Metrics.js"
import * as MetricsModule from "../src/Metrics.js"
import * as Registry from "../src/Registry.js"
import * as Schedules from "../src/Schedules.js"
import * as TestServer from "./utils/server.js"

const entry = (name: string, onCalendar: string, extra: Partial<ScheduleTable.ScheduleEntryConfig> = {}) => ({
  name,
  on_calendar: onCalendar,
  cmds: ["echo " + name],
  overlap: "allow" as const,
  on_failure: "continue" as const,
  ...extra
})

const toml = (agents: Record<string, ReadonlyArray<readonly [string, string]>>) =>
  Object.entries(agents).map(([agent, list]) =>
    list.map(([name, cal]) =>
      `[[schedules.${agent}.schedules]]\nname = "${name}"\non_calendar = "${cal}"\ncmds = ["echo ${name}"]\n`
    ).join("\n")
  ).join("\n")

describe("schedule table (pure)", () => {
  it("an invalid expression rejects the whole table, naming file, key path and position", () => {
    const result = ScheduleTable.build("/etc/bartos.toml", {
      alpha: { schedules: [entry("ok", "daily"), entry("bad", "*-*-* 25:00:00")] },
      beta: { schedules: [entry("fine", "hourly")] }
    })
    assert.isTrue(Either.isLeft(result))
    const error = (result as Either.Left<Schedules.ScheduleLoadError, unknown>).left
    assert.strictEqual(error.file, "/etc/bartos.toml")
    assert.strictEqual(error.path, "schedules.alpha.schedules[1].on_calendar")
    assert.match(error.reason, /position 6/)
    assert.match(error.message, /^\/etc\/bartos\.toml: schedules\.alpha\.schedules\[1\]\.on_calendar: .*'25'/)
  })

  it("duplicate schedule names for one agent are an error; across agents they are fine", () => {
    const dup = ScheduleTable.build(undefined, { alpha: { schedules: [entry("x", "daily"), entry("x", "hourly")] } })
    assert.isTrue(Either.isLeft(dup))
    assert.strictEqual(
      (dup as Either.Left<Schedules.ScheduleLoadError, unknown>).left.path,
      "schedules.alpha.schedules[1].name"
    )
    const ok = ScheduleTable.build(undefined, {
      alpha: { schedules: [entry("x", "daily")] },
      beta: { schedules: [entry("x", "daily")] }
    })
    assert.isTrue(Either.isRight(ok))
  })

  it("R is resolved stably per (agent, schedule); the schedule's timezone is the default zone", () => {
    const config = {
      alpha: { schedules: [entry("a", "*-*-* 10:R:R"), entry("tz", "*-*-* 09:00:00", { timezone: "Europe/Berlin" })] }
    }
    const one = Either.getOrThrow(ScheduleTable.build(undefined, config))
    const two = Either.getOrThrow(ScheduleTable.build(undefined, config))
    const [a, tz] = one.get("alpha")!
    assert.notInclude(a!.calendar, "R")
    assert.strictEqual(a!.calendar, two.get("alpha")![0]!.calendar)
    assert.include(tz!.calendar, "Europe/Berlin")
    assert.strictEqual(ScheduleTable.version(one.get("alpha")!), ScheduleTable.version(two.get("alpha")!))
  })

  it.prop(
    "versions depend on content only; pausing changes the version, unpausing restores it",
    [FastCheck.array(FastCheck.string({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 5 })],
    ([cmds]) => {
      const config = { alpha: { schedules: [entry("a", "hourly", { cmds })] } }
      const table = Either.getOrThrow(ScheduleTable.build(undefined, config))
      const again = Either.getOrThrow(ScheduleTable.build("/elsewhere.toml", config))
      assert.isTrue(ScheduleTable.equals(table, again))
      const paused = ScheduleTable.applyPaused(table, new Set([ScheduleTable.pausedKey("alpha", "a")]))
      assert.notStrictEqual(ScheduleTable.version(paused.get("alpha")!), ScheduleTable.version(table.get("alpha")!))
      assert.deepStrictEqual(ScheduleTable.changedAgents(table, paused), ["alpha"])
      const resumed = ScheduleTable.applyPaused(paused, new Set())
      assert.strictEqual(ScheduleTable.version(resumed.get("alpha")!), ScheduleTable.version(table.get("alpha")!))
    }
  )
})

describe("Schedules: reload pushes to connected agents", () => {
  const V1 = toml({ alpha: [["a", "hourly"]], beta: [["b", "daily"]] })
  const V2 = toml({ alpha: [["a", "hourly"], ["a2", "*:0/5"]], beta: [["b", "daily"]] })

  /** After a Ping, the next frame is the Pong iff nothing else was pushed in between. */
  const nothingPushed = (client: TestServer.AgentClient) =>
    Effect.gen(function*() {
      yield* client.send({ _tag: "Ping", id: 99, sentAt: TestServer.micros(1) })
      const next = yield* client.next()
      assert.strictEqual(next._tag, "Pong", `expected nothing pushed, got ${next._tag}`)
    })

  it.scopedLive("valid change: pushed to the agent whose table changed, not to the others", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: V1 })
      const schedules = Context.get(server.context, Schedules.Schedules)
      const alpha = yield* TestServer.helloAgent(server, "alpha")
      const beta = yield* TestServer.helloAgent(server, "beta")
      yield* server.writeConfig(V2)
      assert.strictEqual(yield* schedules.reload, "applied")
      const table = yield* alpha.client.nextTagged("ScheduleTable")
      assert.deepStrictEqual(table.schedules.map((s) => s.name), ["a", "a2"])
      assert.notStrictEqual(table.version, alpha.table.version)
      yield* nothingPushed(beta.client)
      // A new connection gets the current table.
      const late = yield* TestServer.helloAgent(server, "alpha")
      assert.strictEqual(late.table.version, table.version)
    }))

  it.scopedLive("unchanged: logged, nothing pushed", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: V1 })
      const schedules = Context.get(server.context, Schedules.Schedules)
      const alpha = yield* TestServer.helloAgent(server, "alpha")
      yield* server.writeConfig(`# a comment only\n${V1}`)
      assert.strictEqual(yield* schedules.reload, "unchanged")
      yield* server.waitForLog("schedules unchanged")
      yield* nothingPushed(alpha.client)
    }))

  it.scopedLive("invalid: rejected whole, old table kept, nothing pushed", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: V1 })
      const schedules = Context.get(server.context, Schedules.Schedules)
      const alpha = yield* TestServer.helloAgent(server, "alpha")
      const broken = toml({ alpha: [["a", "minutely"], ["z", "Mon..Fri 99:00"]], beta: [["b", "daily"]] })
      yield* server.writeConfig(broken)
      const error = yield* Effect.flip(schedules.reload)
      assert.strictEqual(error.path, "schedules.alpha.schedules[1].on_calendar")
      assert.strictEqual(error.file, server.configFile)
      assert.match(error.reason, /position/)
      yield* server.waitForLog("schedule reload rejected, keeping the current table")
      assert.deepStrictEqual((yield* schedules.forAgent("alpha")).map((s) => s.onCalendar), ["hourly"])
      yield* nothingPushed(alpha.client)

      // A config that does not even parse is rejected the same way.
      yield* server.writeConfig("[[schedules.alpha.schedules]\nname=")
      const syntax = yield* Effect.flip(schedules.reload)
      assert.include(syntax.file ?? "", server.configFile)
      yield* nothingPushed(alpha.client)
    }))

  it.scopedLive("a file change is picked up (debounced, bursts collapsed into one reload)", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: V1, hotReload: true })
      const alpha = yield* TestServer.helloAgent(server, "alpha")
      // Three writes in a burst: one reload, with the last content.
      yield* server.writeConfig(toml({ alpha: [["x", "hourly"]] }))
      yield* server.writeConfig(toml({ alpha: [["y", "hourly"]] }))
      yield* server.writeConfig(V2)
      const table = yield* alpha.client.nextTagged("ScheduleTable")
      assert.deepStrictEqual(table.schedules.map((s) => s.name), ["a", "a2"])
      yield* nothingPushed(alpha.client)
      const metrics = Context.get(server.context, Metrics)
      assert.strictEqual(yield* metrics.value("bartos_schedule_reloads_total", { result: "applied" }), 1)
      // A sibling file in the same directory is not our business.
      fs.writeFileSync(`${server.dir}/other.toml`, "x = 1")
      yield* nothingPushed(alpha.client)
    }))
})

describe("Schedules: SIGHUP and pause", () => {
  const setup = (options: {
    readonly paused?: ReadonlyArray<string>
    readonly current: { config: ScheduleTable.SchedulesConfig }
  }) =>
    Effect.gen(function*() {
      const memory = TestServer.memoryStore()
      for (const p of options.paused ?? []) memory.control.paused.add(p)
      const layer = Schedules.layer({
        initial: { file: "/test.toml", schedules: options.current.config },
        load: Effect.sync(() => ({ file: "/test.toml", schedules: options.current.config })),
        sighup: true,
        debounceMs: 50
      }).pipe(Layer.provideMerge(Layer.mergeAll(Registry.layer, MetricsModule.layer, memory.layer)))
      const context = yield* Layer.build(layer)
      const syncs: Array<string> = []
      const synced = yield* Deferred.make<void>()
      // A fake session: records every "your table may have changed".
      const sessions = Context.get(context, AgentSessions)
      yield* sessions.register({
        connection: {
          agent: "alpha",
          sessionId: "s1",
          ip: "x",
          connectedAt: TestServer.micros(0),
          info: null,
          outboxId: "o1"
        },
        send: () => Effect.succeed(true),
        close: () => Effect.void,
        syncTable: Effect.sync(() => syncs.push("alpha")).pipe(Effect.zipRight(Deferred.succeed(synced, undefined)))
      })
      return { schedules: Context.get(context, Schedules.Schedules), memory, syncs, synced }
    })

  it.scopedLive("SIGHUP reloads", () =>
    Effect.gen(function*() {
      const current = { config: { alpha: { schedules: [entry("a", "hourly")] } } as ScheduleTable.SchedulesConfig }
      const { schedules, synced, syncs } = yield* setup({ current })
      current.config = { alpha: { schedules: [entry("a", "daily")] } }
      process.emit("SIGHUP" as never)
      yield* Deferred.await(synced)
      assert.deepStrictEqual(syncs, ["alpha"])
      assert.strictEqual((yield* schedules.forAgent("alpha"))[0]!.onCalendar, "daily")
    }))

  it.scopedLive("pause persists, pushes, survives reloads; unknown schedules are refused; paused at start", () =>
    Effect.gen(function*() {
      const current = {
        config: { alpha: { schedules: [entry("a", "hourly"), entry("b", "daily")] } } as ScheduleTable.SchedulesConfig
      }
      const { memory, schedules, syncs } = yield* setup({ current, paused: ["alpha/b"] })
      const names = (specs: ReadonlyArray<Messages.ScheduleSpec>) => specs.map((s) => `${s.name}:${s.paused}`)
      assert.deepStrictEqual(names(yield* schedules.forAgent("alpha")), ["a:false", "b:true"])

      assert.isTrue(yield* schedules.setPaused("alpha", "a", true))
      assert.isTrue(memory.control.paused.has("alpha/a"))
      assert.deepStrictEqual(syncs, ["alpha"])
      assert.deepStrictEqual(names(yield* schedules.forAgent("alpha")), ["a:true", "b:true"])
      assert.isFalse(yield* schedules.setPaused("alpha", "nope", true))
      assert.isFalse(yield* schedules.setPaused("ghost", "a", true))

      current.config = { alpha: { schedules: [entry("a", "minutely"), entry("b", "daily")] } }
      assert.strictEqual(yield* schedules.reload, "applied")
      assert.deepStrictEqual(names(yield* schedules.forAgent("alpha")), ["a:true", "b:true"])
      assert.isTrue(yield* schedules.setPaused("alpha", "b", false))
      assert.isFalse(memory.control.paused.has("alpha/b"))
      assert.deepStrictEqual(names(yield* schedules.forAgent("alpha")), ["a:true", "b:false"])
      const all = yield* schedules.all
      assert.deepStrictEqual([...all.keys()], ["alpha"])
    }))
})

describe("schedule table errors: every problem, each at its own key", () => {
  it("a bad timezone names timezone, not on_calendar; all problems are reported, in order", () => {
    const result = ScheduleTable.build("/etc/bartos.toml", {
      alpha: {
        schedules: [
          entry("zone", "daily", { timezone: "Europe/Berln" }),
          entry("ok", "hourly", { timezone: "Europe/Berlin" }),
          entry("cal", "*-*-* 25:00:00")
        ]
      },
      "web.1": { schedules: [entry("cal2", "Mon..Fri 99:00")] }
    })
    assert.isTrue(Either.isLeft(result))
    const error = (result as Either.Left<Schedules.ScheduleLoadError, unknown>).left
    assert.deepStrictEqual(error.problems.map((p) => [p.path, p.reason.split(":")[0]]), [
      ["schedules.alpha.schedules[0].timezone", "unknown IANA time zone 'Europe/Berln'"],
      ["schedules.alpha.schedules[2].on_calendar", "invalid calendar expression '*-*-* 25"],
      ["schedules.\"web.1\".schedules[0].on_calendar", "invalid calendar expression 'Mon..Fri 99"]
    ])
    assert.strictEqual(error.path, "schedules.alpha.schedules[0].timezone")
    assert.strictEqual(error.message.split("\n").length, 3)
    assert.match(error.message, /^\/etc\/bartos\.toml: schedules\.alpha\.schedules\[0\]\.timezone: unknown IANA/)
  })

  it("with a locator into the file, each problem names its line and column", () => {
    const dir = fs.mkdtempSync(`${os.tmpdir()}/barto-schedules-`)
    const file = `${dir}/bartos.toml`
    fs.writeFileSync(
      file,
      [
        "[[schedules.alpha.schedules]]",
        "name = \"a\"",
        "cmds = [\"true\"]",
        "  on_calendar = \"*-*-* 25:00:00\"",
        "[schedules.beta]",
        "schedules = [{ name = \"b\", cmds = [\"true\"], on_calendar = \"daily\", timezone = \"Nowhere/City\" }]"
      ].join("\n")
    )
    const result = ScheduleTable.build(file, {
      alpha: { schedules: [entry("a", "*-*-* 25:00:00")] },
      beta: { schedules: [entry("b", "daily", { timezone: "Nowhere/City" })] }
    }, Config.keyLocator(file))
    const error = (result as Either.Left<Schedules.ScheduleLoadError, unknown>).left
    assert.deepStrictEqual(error.problems.map((p) => `${p.line}:${p.column} ${p.path}`), [
      "4:3 schedules.alpha.schedules[0].on_calendar",
      "6:68 schedules.beta.schedules[0].timezone"
    ])
    assert.match(error.message.split("\n")[0]!, new RegExp(`^${file}:4:3: schedules\\.alpha`))
  })
})

describe("Schedules: the last reload is kept and exported", () => {
  it.scopedLive("start = loaded and successful; a rejected reload keeps the last success; a good one moves it", () =>
    Effect.gen(function*() {
      const current = { config: { alpha: { schedules: [entry("a", "hourly")] } } as ScheduleTable.SchedulesConfig }
      const memory = TestServer.memoryStore()
      const err: Array<string> = []
      const logging = Logging.layer({
        program: "bartos",
        logFile: false,
        stderr: { write: (s: string) => err.push(s) }
      })
      const context = yield* Layer.build(
        Schedules.layer({
          initial: { file: "/test.toml", schedules: current.config },
          load: Effect.sync(() => ({ file: "/test.toml", schedules: current.config })),
          sighup: false
        }).pipe(Layer.provideMerge(Layer.mergeAll(Registry.layer, MetricsModule.layer, memory.layer)))
      )
      const schedules = Context.get(context, Schedules.Schedules)
      const metrics = Context.get(context, Metrics)
      const gauges = Effect.all([
        metrics.value("bartos_config_last_reload_successful"),
        metrics.value("bartos_config_last_reload_success_timestamp_seconds")
      ])
      const start = yield* schedules.lastReload
      assert.strictEqual(start.result, "loaded")
      assert.strictEqual(start.lastSuccessAt, start.at)
      assert.deepStrictEqual(yield* gauges, [1, Math.floor(start.at / 1_000_000)])

      current.config = { alpha: { schedules: [entry("a", "*-*-* 25:00:00")] } }
      const e = yield* Effect.flip(schedules.reload.pipe(Effect.provide(logging)))
      const rejected = yield* schedules.lastReload
      assert.strictEqual(rejected.result, "rejected")
      assert.strictEqual(rejected.error, e.message)
      assert.strictEqual(rejected.lastSuccessAt, start.lastSuccessAt)
      assert.isAtLeast(rejected.at, start.at)
      assert.deepStrictEqual(yield* gauges, [0, Math.floor(start.at / 1_000_000)])
      // On stderr although -e is off, at WARN.
      assert.strictEqual(err.length, 1)
      assert.match(
        err[0]!,
        / WARN schedule reload rejected, keeping the current table: \/test\.toml: schedules\.alpha\.schedules\[0\]\.on_calendar: /
      )

      current.config = { alpha: { schedules: [entry("a", "daily")] } }
      assert.strictEqual(yield* schedules.reload, "applied")
      const applied = yield* schedules.lastReload
      assert.strictEqual(applied.result, "applied")
      assert.strictEqual(applied.error, undefined)
      assert.strictEqual(applied.lastSuccessAt, applied.at)
      assert.deepStrictEqual(yield* gauges, [1, Math.floor(applied.at / 1_000_000)])
      assert.strictEqual(yield* schedules.reload, "unchanged")
      assert.strictEqual((yield* schedules.lastReload).result, "unchanged")
      assert.strictEqual((yield* gauges)[0], 1)
    }))
})

describe("schedule table names", () => {
  it("rejects agent and schedule names that could not be stored, naming the key", () => {
    const entry = (name: string) => ({
      name,
      on_calendar: "hourly",
      cmds: ["true"],
      overlap: "allow" as const,
      on_failure: "continue" as const
    })
    const long = "x".repeat(129)
    const badSchedule = ScheduleTable.build("f.toml", { a: { schedules: [entry(long)] } })
    assert.isTrue(Either.isLeft(badSchedule) && badSchedule.left.path === "schedules.a.schedules[0].name")
    const badAgent = ScheduleTable.build("f.toml", { [long]: { schedules: [entry("ok")] } })
    assert.isTrue(Either.isLeft(badAgent))
    assert.isTrue(Either.isRight(ScheduleTable.build("f.toml", { a: { schedules: [entry("x".repeat(128))] } })))
    assert.isFalse(ScheduleTable.validName("tab\there"))
  })
})
