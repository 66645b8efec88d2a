import { assert, describe, it } from "@effect/vitest"
import { normalizeGlobalFlags } from "../src/Argv.js"

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
