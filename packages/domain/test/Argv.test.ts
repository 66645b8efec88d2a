import { assert, describe, it } from "@effect/vitest"
import { hiddenBuiltIn, normalizeGlobalFlags, tidyHelp } from "../src/Argv.js"

const base = ["node", "prog"]
const opts = { valueOptions: new Set(["-c", "-t"]) }

describe("normalizeGlobalFlags", () => {
  it("counts repeated and clustered -v/-q and passes each on once", () => {
    const r = normalizeGlobalFlags([...base, "-v", "-vv", "--verbose", "-q"], opts)
    assert.strictEqual(r.verbose, 4)
    assert.strictEqual(r.quiet, 1)
    assert.deepStrictEqual(r.argv, [...base, "-v", "-q"])
  })

  it("never reads an option's value as a flag; -V means --version; -- ends the flags", () => {
    const r = normalizeGlobalFlags([...base, "-c", "-vv", "-V", "--", "-v"], opts)
    assert.strictEqual(r.verbose, 0)
    assert.deepStrictEqual(r.argv, [...base, "-c", "-vv", "--version", "--", "-v"])
  })

  it("keeps other cluster letters and stops at a subcommand", () => {
    const r = normalizeGlobalFlags([...base, "-vej", "list", "-q", "SQL"], {
      ...opts,
      clusterLetters: "ej",
      stopAt: new Set(["list"])
    })
    assert.strictEqual(r.verbose, 1)
    assert.strictEqual(r.quiet, 0)
    assert.strictEqual(r.restIndex, 3)
    assert.deepStrictEqual(r.argv, [...base, "-v", "-e", "-j", "list", "-q", "SQL"])
  })
})

describe("@effect/cli's --wizard and --log-level", () => {
  it("are found anywhere before --, with or without =value", () => {
    assert.strictEqual(hiddenBuiltIn([...base, "runs", "--wizard"]), "--wizard")
    assert.strictEqual(hiddenBuiltIn([...base, "--log-level=debug", "info"]), "--log-level")
    assert.isUndefined(hiddenBuiltIn([...base, "beat", "--", "--wizard"]))
    assert.isUndefined(hiddenBuiltIn([...base, "--wizardry"]))
  })

  it("leave a help, coloured or not, with the other options and without the boilerplate", () => {
    const help = [
      "USAGE\n\n$ prog [--json]\n\nOPTIONS\n\n--json\n\n  A true or false value.\n\n  Print JSON.",
      "\n\n  This setting is optional.\n\n\u001b[1m--log-level all | none\u001b[0m\n\n  Sets the minimum log level for a command.",
      "\n\n--wizard\n\n  Start wizard mode for a command.\n\n--version\n\n  Show the version of the application."
    ].join("")
    assert.strictEqual(
      tidyHelp(help),
      "USAGE\n\n$ prog [--json]\n\nOPTIONS\n\n--json\n\n  Print JSON.\n\n--version\n\n  Show the version of the application."
    )
    // Not a help nor a completion script: untouched.
    assert.strictEqual(
      tidyHelp("--wizard\n\n  Start wizard mode for a command."),
      "--wizard\n\n  Start wizard mode for a command."
    )
  })
})
