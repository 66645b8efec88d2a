/**
 * bartoc's hand-written argv parser against what @effect/cli 0.77 did for the same command. The
 * files in fixtures/effect-cli are the outputs of the last bartoc built with @effect/cli (commit
 * a68e280): `--help` piped and on a terminal, `--completions bash|zsh|fish`, each without the
 * final newline that console.log adds. The parse cases below are among the 141 runs (131 argument
 * lists piped, 5 on a terminal with and without NO_COLOR) whose stdout, stderr and exit status were
 * compared between that bundle and this one.
 */
import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as Argv from "../src/internal/argv.js"
import { AGENT_VERSION } from "../src/SystemInfo.js"

const fixture = (name: string) =>
  readFileSync(join(import.meta.dirname, "fixtures", "effect-cli", name), "utf8").replace(/\n$/, "")
const parse = (...args: Array<string>) => Argv.parse(["node", "bartoc", ...args])
const usage = (token: string): Argv.Parsed => ({
  _tag: "UsageError",
  message: `Received unknown argument: '${token}'\n`
})
const flags = (overrides: Partial<Argv.Flags>): Argv.Parsed => ({
  _tag: "Run",
  flags: {
    verbose: 0,
    quiet: 0,
    enableStdOutput: false,
    configPath: undefined,
    tracingPath: undefined,
    statePath: undefined,
    checkConfig: false,
    ...overrides
  }
})

describe("bartoc argv", () => {
  it("prints the help and completion scripts @effect/cli printed, byte for byte", () => {
    assert.strictEqual(AGENT_VERSION, "0.1.0", "the fixtures name version 0.1.0")
    assert.strictEqual(Argv.helpText(AGENT_VERSION, false), fixture("help.txt"))
    assert.strictEqual(Argv.helpText(AGENT_VERSION, true), fixture("help-color.txt"))
    assert.strictEqual(Argv.completionScript("bash"), fixture("completions-bash.txt"))
    assert.strictEqual(Argv.completionScript("sh"), fixture("completions-bash.txt"))
    assert.strictEqual(Argv.completionScript("zsh"), fixture("completions-zsh.txt"))
    assert.strictEqual(Argv.completionScript("fish"), fixture("completions-fish.txt"))
  })

  it("reads every option in its long, short, clustered and --long=value forms", () => {
    assert.deepStrictEqual(
      parse("-v", "-q", "-e", "-c", "a.toml", "-t", "b.log", "-r", "c.db", "--check-config"),
      flags({
        verbose: 1,
        quiet: 1,
        enableStdOutput: true,
        configPath: "a.toml",
        tracingPath: "b.log",
        statePath: "c.db",
        checkConfig: true
      })
    )
    assert.deepStrictEqual(
      parse(
        "--verbose",
        "--quiet",
        "--enable-std-output",
        "--config-absolute-path=a.toml",
        "--tracing-absolute-path",
        "b"
      ),
      flags({ verbose: 1, quiet: 1, enableStdOutput: true, configPath: "a.toml", tracingPath: "b" })
    )
    assert.deepStrictEqual(
      parse("-vvqe", "-q", "--redb-absolute-path=x"),
      flags({ verbose: 2, quiet: 2, enableStdOutput: true, statePath: "x" })
    )
    // a value is taken whatever it looks like
    assert.deepStrictEqual(parse("-c", "--check-config"), flags({ configPath: "--check-config" }))
    assert.deepStrictEqual(
      parse("-vv", "-c", "-v.toml", "-q", "--verbose", "-e"),
      flags({ verbose: 3, quiet: 1, enableStdOutput: true, configPath: "-v.toml" })
    )
  })

  it("takes an optional true/false word after a boolean flag", () => {
    assert.deepStrictEqual(parse("--check-config", "yes"), flags({ checkConfig: true }))
    assert.deepStrictEqual(parse("--check-config=false"), flags({}))
    assert.deepStrictEqual(parse("-e", "off", "--check-config", "1"), flags({ checkConfig: true }))
    assert.deepStrictEqual(parse("--check-config=maybe"), usage("maybe"))
  })

  it("built-ins: when first, completions over help over version; -V is --version", () => {
    assert.deepStrictEqual(parse("--help"), { _tag: "Help" })
    assert.deepStrictEqual(parse("-h", "--bogus"), { _tag: "Help" })
    assert.deepStrictEqual(parse("stray", "--help"), { _tag: "Help" })
    assert.deepStrictEqual(parse("--version", "--help"), { _tag: "Help" })
    assert.deepStrictEqual(parse("-V"), { _tag: "Version" })
    assert.deepStrictEqual(parse("--version=1"), { _tag: "Version" })
    assert.deepStrictEqual(parse("--help", "--completions", "zsh"), { _tag: "Completions", shell: "zsh" })
    assert.deepStrictEqual(parse("--completions=fish"), { _tag: "Completions", shell: "fish" })
    // after another option they are unknown arguments, as a --completions without a valid shell
    assert.deepStrictEqual(parse("-v", "--help"), usage("--help"))
    assert.deepStrictEqual(parse("--check-config", "-V"), usage("--version"))
    assert.deepStrictEqual(parse("--completions", "pwsh"), usage("--completions"))
    assert.deepStrictEqual(parse("--completions"), usage("--completions"))
    assert.deepStrictEqual(parse("--completions=pwsh"), usage("--completions=pwsh"))
    // after a word, a built-in is looked for further on; the first of a kind counts
    assert.deepStrictEqual(parse("stray", "--bogus", "--help"), { _tag: "Help" })
    assert.deepStrictEqual(parse("--completions", "zsh", "--completions", "bash"), {
      _tag: "Completions",
      shell: "zsh"
    })
    // a --completions without a value after a built-in ends the search; an explicit false is no help
    assert.deepStrictEqual(parse("--help", "pwsh", "--completions"), { _tag: "Help" })
    assert.deepStrictEqual(parse("--help=false"), usage("--help=false"))
    assert.deepStrictEqual(parse("--help=false", "--version"), { _tag: "Version" })
  })

  it("refuses unknown options, positional arguments, repeats and missing values (exit 2 in bin.ts)", () => {
    assert.deepStrictEqual(parse("--bogus"), usage("--bogus"))
    assert.deepStrictEqual(parse("--verbos"), usage("--verbos"))
    assert.deepStrictEqual(parse("-c=a.toml"), usage("-c=a.toml"))
    assert.deepStrictEqual(parse("-ec", "a.toml"), usage("-ec"))
    assert.deepStrictEqual(parse("-c", "a.toml", "extra"), usage("extra"))
    assert.deepStrictEqual(parse("-c", "a.toml", "-c", "b.toml"), usage("-c"))
    assert.deepStrictEqual(parse("-e", "-e"), usage("-e"))
    assert.deepStrictEqual(parse("-c"), usage("-c"))
    assert.deepStrictEqual(parse("--tracing-absolute-path"), usage("--tracing-absolute-path"))
    assert.deepStrictEqual(parse("-"), usage("-"))
    assert.deepStrictEqual(parse("--check-config", "--", "-c", "a.toml"), usage("-c"))
    assert.deepStrictEqual(parse("--check-config", "--"), flags({ checkConfig: true }))
  })

  it("refuses @effect/cli's --wizard and --log-level in their own words", () => {
    for (const args of [["--wizard"], ["--log-level", "debug"], ["-c", "a.toml", "--log-level=info"]]) {
      const hidden = args.find((a) => a.startsWith("--"))!.replace(/=.*/, "")
      assert.deepStrictEqual(parse(...args), {
        _tag: "UsageError",
        message: `bartoc: unknown option '${hidden}' (see 'bartoc --help')`
      })
    }
    assert.deepStrictEqual(parse("--", "--wizard"), usage("--wizard"))
  })
})
