import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Fiber, Logger, LogLevel, Queue, Redacted } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Logging from "../src/Logging.js"

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "barto-logging-"))

const logEveryLevel = Effect.gen(function*() {
  yield* Effect.logTrace("t")
  yield* Effect.logDebug("d")
  yield* Effect.logInfo("i")
  yield* Effect.logWarning("w")
  yield* Effect.logError("e")
})

const levelsIn = (text: string) => text.trim().split("\n").filter((l) => l !== "").map((l) => l.split(" ")[1])

describe("levelFor", () => {
  it("INFO by default; -v DEBUG, -vv TRACE; -q WARN, -qq ERROR", () => {
    assert.strictEqual(Logging.levelFor(), LogLevel.Info)
    assert.strictEqual(Logging.levelFor(1, 0), LogLevel.Debug)
    assert.strictEqual(Logging.levelFor(2, 0), LogLevel.Trace)
    assert.strictEqual(Logging.levelFor(5, 0), LogLevel.Trace)
    assert.strictEqual(Logging.levelFor(0, 1), LogLevel.Warning)
    assert.strictEqual(Logging.levelFor(0, 2), LogLevel.Error)
    assert.strictEqual(Logging.levelFor(0, 9), LogLevel.Error)
  })
})

describe("layer", () => {
  it.live("appends one line per entry to the log file, creating its directory", () =>
    Effect.gen(function*() {
      const file = path.join(tmp(), "nested", "logs", "bartos.log")
      fs.mkdirSync(path.dirname(file), { recursive: true })
      fs.writeFileSync(file, "previous line\n")
      yield* Effect.logInfo("hello", "world").pipe(
        Effect.annotateLogs({ agent: "demo", note: "two words" }),
        Effect.provide(Logging.layer({ program: "bartos", logFile: file }))
      )
      const lines = fs.readFileSync(file, "utf8").split("\n")
      assert.strictEqual(lines[0], "previous line")
      assert.match(lines[1]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO hello world agent=demo note="two words"$/)
      assert.strictEqual(lines[2], "")
    }))

  it.live("creates missing parent directories", () =>
    Effect.gen(function*() {
      const file = path.join(tmp(), "a", "b", "c.log")
      yield* Effect.log("x").pipe(Effect.provide(Logging.layer({ program: "bartoc", logFile: file })))
      assert.include(fs.readFileSync(file, "utf8"), " INFO x")
    }))

  for (
    const [verbose, quiet, expected] of [
      [0, 0, ["INFO", "WARN", "ERROR"]],
      [1, 0, ["DEBUG", "INFO", "WARN", "ERROR"]],
      [2, 0, ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]],
      [0, 1, ["WARN", "ERROR"]],
      [0, 2, ["ERROR"]]
    ] as const
  ) {
    it.live(`verbose=${verbose} quiet=${quiet} keeps ${expected.join(",")}`, () =>
      Effect.gen(function*() {
        const file = path.join(tmp(), "l.log")
        yield* logEveryLevel.pipe(Effect.provide(Logging.layer({ program: "bartos", logFile: file, verbose, quiet })))
        assert.deepStrictEqual(levelsIn(fs.readFileSync(file, "utf8")), [...expected])
      }))
  }

  it.live("a level control changes the level at once, for fibers already running too (bartoc's SIGHUP)", () =>
    Effect.gen(function*() {
      const file = path.join(tmp(), "l.log")
      const level: Logging.LevelControl = { current: LogLevel.Warning }
      yield* Effect.scoped(
        Effect.gen(function*() {
          const step = yield* Queue.unbounded<void>()
          const done = yield* Queue.unbounded<void>()
          // Forked before the change, logging after it.
          const fiber = yield* Effect.fork(Effect.forever(
            Queue.take(step).pipe(
              Effect.zipRight(logEveryLevel),
              Effect.zipRight(Queue.offer(done, undefined))
            )
          ))
          yield* Queue.offer(step, undefined)
          yield* Queue.take(done)
          level.current = LogLevel.Debug
          yield* Queue.offer(step, undefined)
          yield* Queue.take(done)
          yield* Fiber.interrupt(fiber)
        }).pipe(Effect.provide(Logging.layer({ program: "bartoc", logFile: file, level })))
      )
      assert.deepStrictEqual(levelsIn(fs.readFileSync(file, "utf8")), [
        "WARN",
        "ERROR",
        "DEBUG",
        "INFO",
        "WARN",
        "ERROR"
      ])
    }))

  it.live("stderr only with enableStdOutput; never stdout", () =>
    Effect.gen(function*() {
      const err: Array<string> = []
      const stderr = { write: (s: string) => err.push(s) }
      const originalWrite = process.stdout.write
      const out: Array<string> = []
      process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write
      try {
        yield* Effect.log("quiet").pipe(Effect.provide(Logging.layer({ program: "barto-cli", logFile: false, stderr })))
        assert.deepStrictEqual(err, [])
        yield* Effect.log("loud").pipe(
          Effect.provide(Logging.layer({ program: "barto-cli", logFile: false, stderr, enableStdOutput: true }))
        )
      } finally {
        process.stdout.write = originalWrite
      }
      assert.strictEqual(err.length, 1)
      assert.match(err[0]!, / INFO loud\n$/)
      assert.deepStrictEqual(out, [])
    }))

  it.live("toStderr: those entries reach stderr without -e, once with -e, and the log file always", () =>
    Effect.gen(function*() {
      const file = path.join(tmp(), "b.log")
      const err: Array<string> = []
      const stderr = { write: (s: string) => err.push(s) }
      const program = Effect.logInfo("file only").pipe(
        Effect.zipRight(Effect.logWarning("operator must see this").pipe(Logging.toStderr)),
        Effect.zipRight(Effect.logInfo("file only again"))
      )
      yield* program.pipe(Effect.provide(Logging.layer({ program: "bartos", logFile: file, stderr })))
      assert.strictEqual(err.length, 1)
      assert.match(err[0]!, / WARN operator must see this\n$/)
      assert.deepStrictEqual(levelsIn(fs.readFileSync(file, "utf8")), ["INFO", "WARN", "INFO"])
      err.length = 0
      yield* program.pipe(
        Effect.provide(Logging.layer({ program: "bartos", logFile: false, stderr, enableStdOutput: true }))
      )
      assert.deepStrictEqual(levelsIn(err.join("")), ["INFO", "WARN", "INFO"])
    }))

  it.live("replaces the default and pretty loggers (nothing printed twice)", () =>
    Effect.gen(function*() {
      const err: Array<string> = []
      const file = path.join(tmp(), "l.log")
      const pretty = Logger.replace(Logger.defaultLogger, Logger.prettyLoggerDefault)
      const originalLog = console.log
      const consoleLines: Array<unknown> = []
      console.log = (...args: Array<unknown>) => void consoleLines.push(args)
      let control = 0
      try {
        // Control: without our layer the pretty logger does print to the console.
        yield* Effect.log("control").pipe(Effect.provide(pretty))
        control = consoleLines.length
        consoleLines.length = 0
        yield* Effect.log("once").pipe(
          Effect.provide(
            Logging.layer({
              program: "bartos",
              logFile: file,
              enableStdOutput: true,
              stderr: { write: (s: string) => err.push(s) }
            })
          ),
          Effect.provide(pretty)
        )
      } finally {
        console.log = originalLog
      }
      assert.isAbove(control, 0)
      assert.deepStrictEqual(consoleLines, [])
      assert.strictEqual(err.length, 1)
      assert.strictEqual(fs.readFileSync(file, "utf8").split("\n").length, 2)
    }))

  it.live("multi-line messages and causes stay on one line; secrets print as <redacted>", () =>
    Effect.gen(function*() {
      const file = path.join(tmp(), "l.log")
      yield* Effect.logError("line1\nline2", Redacted.make("hunter2")).pipe(
        Effect.annotateLogs({ key: Redacted.make("hunter2") }),
        Effect.zipRight(Effect.logWarning("failed", new Error("boom\nmore"))),
        Effect.zipRight(
          Effect.fail("bad").pipe(Effect.tapErrorCause((c) => Effect.logError("with cause", c)), Effect.ignore)
        ),
        Effect.provide(Logging.layer({ program: "bartos", logFile: file }))
      )
      const content = fs.readFileSync(file, "utf8")
      assert.notInclude(content, "hunter2")
      const lines = content.trimEnd().split("\n")
      assert.strictEqual(lines.length, 3)
      assert.include(lines[0], "ERROR line1\\nline2 <redacted> key=<redacted>")
      assert.include(lines[2], "with cause")
    }))

  it.live("control characters of untrusted values are escaped in messages, annotations and causes", () =>
    Effect.gen(function*() {
      const file = path.join(tmp(), "l.log")
      const hostile = "evil\r\u001b[2J\u001b]0;title\u0007\u009b31m\u202egnp.exe\u0085x\u007f"
      yield* Effect.logWarning(`refused worker connection '${hostile}' from 10.0.0.1`).pipe(
        Effect.annotateLogs({ agent: hostile }),
        Effect.zipRight(
          Effect.fail(hostile).pipe(Effect.tapErrorCause((c) => Effect.logError("cause", c)), Effect.ignore)
        ),
        Effect.provide(Logging.layer({ program: "bartos", logFile: file }))
      )
      const content = fs.readFileSync(file, "utf8")
      const lines = content.trimEnd().split("\n")
      assert.strictEqual(lines.length, 2)
      // Nothing a terminal acts on is left; what was sent stays readable.
      // eslint-disable-next-line no-control-regex
      assert.notMatch(content.replace(/\n/g, ""), /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/)
      assert.include(
        lines[0],
        "refused worker connection 'evil\\r\\x1b[2J\\x1b]0;title\\x07\\x9b31m\\u202egnp.exe\\x85x\\x7f'"
      )
      assert.include(lines[0], "agent=evil\\r\\x1b")
      assert.include(lines[1], "\\u202egnp")
    }))

  it.effect("an unopenable log file is a typed LogFileError", () =>
    Effect.gen(function*() {
      const dir = tmp()
      const blocker = path.join(dir, "file")
      fs.writeFileSync(blocker, "")
      const result = yield* Effect.either(
        Effect.log("x").pipe(Effect.provide(Logging.layer({ program: "bartos", logFile: path.join(blocker, "x.log") })))
      )
      assert.isTrue(Either.isLeft(result))
      if (Either.isLeft(result)) {
        assert.strictEqual(result.left._tag, "LogFileError")
        assert.include(result.left.message, "cannot open log file")
      }
    }))
})
