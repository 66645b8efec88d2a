import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Cli from "../src/Cli.js"
import { baseEnv, runCli, tempDir } from "./utils.js"

const norm = (...args: Array<string>) => Cli.normalizeArgv(["node", "barto-cli", ...args])

describe("argv normalisation", () => {
  it("counts repeated and clustered -v/-q before the subcommand and passes each once", () => {
    assert.deepStrictEqual(norm("-v", "-v", "--verbose", "runs"), {
      argv: ["node", "barto-cli", "-v", "runs"],
      verbose: 3,
      quiet: 0,
      tracingPath: undefined
    })
    assert.deepStrictEqual(norm("-vvq", "-e", "info").argv, ["node", "barto-cli", "-v", "-q", "-e", "info"])
    assert.strictEqual(norm("-vvv", "info").verbose, 3)
    assert.deepStrictEqual(norm("-qq", "info").quiet, 2)
    assert.deepStrictEqual(norm("-vej", "info").argv, ["node", "barto-cli", "-v", "-e", "-j", "info"])
  })

  it("leaves values of global options and everything after the subcommand alone", () => {
    assert.deepStrictEqual(norm("-c", "-vv", "-t", "/tmp/x.log", "list", "-n", "h", "-c", "backup"), {
      argv: ["node", "barto-cli", "-c", "-vv", "-t", "/tmp/x.log", "list", "-n", "h", "-c", "backup"],
      verbose: 0,
      quiet: 0,
      tracingPath: "/tmp/x.log"
    })
    // query's own -q is not a global quiet; a global -v after the subcommand still counts.
    const q = norm("query", "-q", "select 1", "-v")
    assert.deepStrictEqual(q.argv, ["node", "barto-cli", "query", "-q", "select 1", "-v"])
    assert.strictEqual(q.quiet, 0)
    assert.strictEqual(q.verbose, 1)
  })

  it("-V means --version (the reference's spelling)", () => {
    assert.deepStrictEqual(norm("-V").argv, ["node", "barto-cli", "--version"])
  })

  it("knows every subcommand", () => {
    assert.sameMembers([...Cli.SUBCOMMAND_NAMES], [
      "calendar",
      "info",
      "clients",
      "list",
      "failed",
      "cmd",
      "updates",
      "query",
      "cleanup",
      "schedules",
      "status",
      "runs",
      "tail",
      "run",
      "cancel",
      "pause",
      "resume",
      "beat",
      "alerts",
      "notify"
    ])
  })
})

describe("logging", () => {
  it.live("logs go to stderr and the log file, never stdout; -t names the file", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const log = path.join(dir, "cli.log")
      const r = yield* runCli(["-vv", "-t", log, "info", "--json"], {
        env: baseEnv({ BARTO_CLI_BARTOS__PORT: "1" })
      })
      assert.strictEqual(r.code, 1)
      assert.strictEqual(r.stdout, "")
      assert.match(r.stderr, /DEBUG connecting to ws:\/\/127\.0\.0\.1:1\/v1\/ws\/cli\?name=barto-cli/)
      assert.match(r.stderr, /barto-cli: cannot connect/)
      assert.include(fs.readFileSync(log, "utf8"), "DEBUG connecting to")
    }))

  it.live("an explicit log file that cannot be opened is an error; the default one is skipped", () =>
    Effect.gen(function*() {
      // A regular file where a directory should be (mkdir says EEXIST). (Not /proc: a recursive mkdir
      // there never returns on Linux.)
      const file = path.join(tempDir(), "not-a-dir")
      fs.writeFileSync(file, "")
      const bad = yield* runCli(["-t", path.join(file, "cli.log"), "calendar", "daily"])
      assert.strictEqual(bad.code, 1)
      assert.strictEqual(bad.stderr, `barto-cli: cannot open log file ${path.join(file, "cli.log")}: EEXIST\n`)
      const ok = yield* runCli(["calendar", "daily", "-n", "1"], { env: baseEnv({ XDG_DATA_HOME: file }) })
      assert.strictEqual(ok.code, 0, ok.stderr)
    }))
})

/** Each argv is a usage error (exit 2) printing exactly its line on stderr and nothing on stdout. */
const usageErrors = (cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]>) =>
  Effect.forEach(cases, ([args, stderr]) =>
    Effect.map(runCli(args), (r) => {
      assert.strictEqual(r.code, 2, args.join(" "))
      assert.strictEqual(r.stderr, stderr)
      assert.strictEqual(r.stdout, "")
    }), { discard: true })

describe("usage errors", () => {
  it.live("an unknown subcommand is exit 2 with or without --help, with did-you-mean; nothing on stdout", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [
          ["tial"],
          "barto-cli: unknown command 'tial' (did you mean 'tail'?); see 'barto-cli --help' for the commands\n"
        ],
        [["NOSUCH", "--help"], "barto-cli: unknown command 'NOSUCH'; see 'barto-cli --help' for the commands\n"],
        [
          ["-c", "/nowhere.toml", "stauts"],
          "barto-cli: unknown command 'stauts' (did you mean 'status'?); see 'barto-cli --help' for the commands\n"
        ],
        [
          ["schedule"],
          "barto-cli: unknown command 'schedule' (did you mean 'schedules'?); see 'barto-cli --help' for the commands\n"
        ]
      ]
      yield* usageErrors(cases)
      const help = yield* runCli(["tail", "--help"])
      assert.strictEqual(help.code, 0)
      assert.include(help.stdout, "--once")
      // Purpose, option descriptions, examples and exit codes; not @effect/cli's boilerplate.
      assert.include(help.stdout, "EXAMPLES")
      assert.include(help.stdout, "$ barto-cli tail -f --agent web1 --schedule backup")
      assert.include(help.stdout, "EXIT STATUS")
      assert.include(help.stdout, "130  interrupted (Ctrl-C) while following")
      assert.include(help.stdout, "The agent (bartoc name) whose runs to show.")
      assert.notInclude(help.stdout, "This setting is optional.")
      assert.notInclude(help.stdout, "A true or false value.")
      assert.notInclude(help.stdout, "\u001b[")
    }))

  it.live("one style for every usage error: program, command, option, value, reason; did-you-mean for choices", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [["runs", "--limit", "abc"], "barto-cli: runs: --limit: 'abc' is not an integer\n"],
        [["runs", "--limit=abc"], "barto-cli: runs: --limit: 'abc' is not an integer\n"],
        [
          ["runs", "--state", "faild"],
          "barto-cli: runs: --state: 'faild' is not one of running, succeeded, failed, timed_out, cancelled, interrupted, missed, lost (did you mean 'failed'?)\n"
        ],
        [["calendar", "daily", "--count", "x"], "barto-cli: calendar: --count: 'x' is not an integer\n"],
        [["runs", "--limit", "0"], "barto-cli: runs: --limit: '0' is not 1 or more\n"],
        [
          ["runs", "--since", "someday"],
          "barto-cli: runs: --since: 'someday' is not a time (RFC 3339 or YYYY-MM-DD)\n"
        ],
        [["alerts", "--limit", "0"], "barto-cli: alerts: --limit: '0' is not between 1 and 1000\n"],
        [
          ["calendar", "daily", "--tz", "Mars/Olympus"],
          "barto-cli: calendar: --tz: 'Mars/Olympus' is not a time zone (an IANA name, e.g. Europe/Berlin)\n"
        ],
        [["beat", "--progress", "abc"], "barto-cli: beat: --progress: 'abc' is not DONE or DONE/TOTAL (e.g. 40/100)\n"],
        [["beat", "--status", "a b"], "barto-cli: beat: --status: 'a b' is not one word (letters, digits, _ . -)\n"],
        // Checked before connecting to bartos.
        [
          ["tail", "zzzzzz"],
          "barto-cli: tail: RUN: 'zzzzzz' is not a run id (a whole id, a unique prefix of 6 or more characters, " +
          "or the 8-character short form that tables show)\n"
        ],
        [["--completions", "pwsh"], "barto-cli: --completions: 'pwsh' is not one of bash, fish, sh, zsh\n"],
        [
          ["--completions", "zhs"],
          "barto-cli: --completions: 'zhs' is not one of bash, fish, sh, zsh (did you mean 'zsh'?)\n"
        ]
      ]
      yield* usageErrors(cases)
    }))

  it.live("unknown options and arguments: named, in the same style, with did-you-mean for the root's", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [["--bogus"], "barto-cli: unknown option '--bogus'\n"],
        [["--jsno", "runs"], "barto-cli: unknown option '--jsno' (did you mean '--json'?)\n"],
        [["-c", "x.toml", "--loacl", "info"], "barto-cli: unknown option '--loacl' (did you mean '--local'?)\n"],
        [["runs", "--bogus"], "barto-cli: runs: unknown option '--bogus'\n"],
        [["cancel", "0194b1c2", "extra"], "barto-cli: cancel: unknown argument 'extra'\n"]
      ]
      yield* usageErrors(cases)
    }))

  it.live("no --wizard or --log-level (@effect/cli's, not offered): not in any help or completion, refused", () =>
    Effect.gen(function*() {
      for (const args of [["--help"], ["runs", "--help"], ["notify", "test", "--help"], ["calendar", "-h"]]) {
        const help = yield* runCli(args)
        assert.strictEqual(help.code, 0, args.join(" "))
        assert.include(help.stdout, "--completions")
        assert.notMatch(help.stdout, /--wizard|--log-level|wizard mode|minimum log level/, args.join(" "))
      }
      for (const shell of ["bash", "sh", "zsh", "fish"]) {
        const script = yield* runCli(["--completions", shell])
        assert.strictEqual(script.code, 0, shell)
        assert.include(script.stdout, "schedules")
        assert.notMatch(script.stdout, /wizard|log-level/, shell)
      }
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [["--wizard"], "barto-cli: unknown option '--wizard'\n"],
        [["runs", "--log-level", "debug"], "barto-cli: runs: unknown option '--log-level'\n"],
        [["--log-level=debug", "info"], "barto-cli: info: unknown option '--log-level'\n"]
      ]
      yield* usageErrors(cases)
    }))

  it.live("the root help gives every command its purpose; each command's help has examples and exit statuses", () =>
    Effect.gen(function*() {
      const help = yield* runCli(["--help"])
      const commands = help.stdout.slice(help.stdout.indexOf("\nCOMMANDS\n")).split("\n").filter((l) =>
        l.startsWith("  - ")
      )
      assert.sameMembers(commands.map((l) => l.split(" ")[3]!), [...Cli.SUBCOMMAND_NAMES, "notify"])
      // Usage, then at least two spaces, then the purpose.
      for (const l of commands) assert.match(l, /^ {2}- \S.* {2,}[A-Z]\S* /, l)
      assert.match(commands.find((l) => l.startsWith("  - schedules "))!, / {2}List the schedules .*missed_tick/)
      // Every command's own help: its purpose, 2 to 4 examples, its exit statuses.
      const all = [...Cli.SUBCOMMAND_NAMES.filter((n) => n !== "notify").map((n) => [n]), ["notify", "test"]]
      for (const command of all) {
        const own = yield* runCli([...command, "--help"])
        assert.strictEqual(own.code, 0, command.join(" "))
        const examples = own.stdout.split("\n").filter((l) => l.startsWith(`  $ barto-cli ${command.join(" ")}`))
        assert.isAtLeast(examples.length, 2, command.join(" "))
        assert.isAtMost(examples.length, 4, command.join(" "))
        assert.match(own.stdout, /\nEXIT STATUS\n\n {2}0 {2}\S[\s\S]*\n {2}2 {2}usage error/, command.join(" "))
      }
    }))

  it("did-you-mean: typos, swaps and prefixes; nothing for far-off words", () => {
    assert.deepStrictEqual(Cli.unknownCommand(["node", "barto-cli", "-v", "tial", "x"]), "tial")
    assert.isUndefined(Cli.unknownCommand(["node", "barto-cli", "-c", "tial", "info"]))
    assert.isUndefined(Cli.unknownCommand(["node", "barto-cli", "--help"]))
  })
})
