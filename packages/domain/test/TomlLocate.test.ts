import { assert, describe, it } from "@effect/vitest"
import { parse } from "smol-toml"
import { formatKeyPath, type KeyPath, locateKeys } from "../src/internal/tomlLocate.js"

/** Line and column of `path` in `text`, as "line:column". */
const at = (text: string, path: KeyPath) => {
  const p = locateKeys(text).locate(path)
  return p === undefined ? undefined : `${p.line}:${p.column}`
}

describe("formatKeyPath", () => {
  it("dots between keys, brackets for indexes, TOML quotes for keys that are not bare", () => {
    assert.strictEqual(
      formatKeyPath(["schedules", "web1", "schedules", 2, "on_calendar"]),
      "schedules.web1.schedules[2].on_calendar"
    )
    assert.strictEqual(formatKeyPath(["schedules", "web.1", "schedules", 0]), "schedules.\"web.1\".schedules[0]")
    assert.strictEqual(formatKeyPath(["a b"]), "\"a b\"")
    assert.strictEqual(formatKeyPath([]), "")
  })
})

describe("locateKeys", () => {
  it("plain keys and tables", () => {
    const text = `name = "x"\n\n[actix]\n  port = 1   # comment\n[actix.tls]\nip = "::1"\n`
    assert.strictEqual(at(text, ["name"]), "1:1")
    assert.strictEqual(at(text, ["actix"]), "3:1")
    assert.strictEqual(at(text, ["actix", "port"]), "4:3")
    assert.strictEqual(at(text, ["actix", "tls"]), "5:1")
    assert.strictEqual(at(text, ["actix", "tls", "ip"]), "6:1")
    assert.strictEqual(at(text, ["nope"]), undefined)
  })

  it("arrays of tables: each element its own index, nested arrays counted per parent element", () => {
    const text = [
      "[[schedules.web1.schedules]]", // 1
      "name = \"a\"",
      "[[schedules.web1.schedules]]", // 3
      "name = \"b\"",
      "timout = \"8s\"", // 5
      "[[schedules.db.schedules]]", // 6
      "name = \"c\"",
      "[[a]]", // 8
      "[[a.b]]",
      "x = 1", // 10
      "[[a]]",
      "[[a.b]]", // 12
      "y = 2",
      "[a.c]", // 14
      "z = 3"
    ].join("\n")
    assert.strictEqual(at(text, ["schedules", "web1", "schedules", 0, "name"]), "2:1")
    assert.strictEqual(at(text, ["schedules", "web1", "schedules", 1]), "3:1")
    assert.strictEqual(at(text, ["schedules", "web1", "schedules", 1, "timout"]), "5:1")
    assert.strictEqual(at(text, ["schedules", "db", "schedules", 0, "name"]), "7:1")
    assert.strictEqual(at(text, ["schedules", "web1"]), "1:13")
    assert.strictEqual(at(text, ["a", 0, "b", 0, "x"]), "10:1")
    assert.strictEqual(at(text, ["a", 1, "b", 0, "y"]), "13:1")
    assert.strictEqual(at(text, ["a", 1, "c", "z"]), "15:1")
    assert.strictEqual(at(text, ["a", 1, "b", 1]), undefined)
  })

  it("dotted keys, with blanks around the dots, create their tables", () => {
    const text = `[actix]\ntls.ip = "::1"\nsite . "x.y" . z = 1\n`
    assert.strictEqual(at(text, ["actix", "tls"]), "2:1")
    assert.strictEqual(at(text, ["actix", "tls", "ip"]), "2:5")
    assert.strictEqual(at(text, ["actix", "site", "x.y", "z"]), "3:16")
  })

  it("quoted keys, in headers and in key/value lines", () => {
    const text =
      `[schedules."web.1"]\n[[schedules.'web.1'.schedules]]\n"on_calendar" = "daily"\n'cmds' = ["true"]\n"tab\\tkey" = 1\n`
    assert.strictEqual(at(text, ["schedules", "web.1"]), "1:1")
    assert.strictEqual(at(text, ["schedules", "web.1", "schedules", 0, "on_calendar"]), "3:1")
    assert.strictEqual(at(text, ["schedules", "web.1", "schedules", 0, "cmds"]), "4:1")
    assert.strictEqual(at(text, ["schedules", "web.1", "tab\tkey"]), undefined)
    assert.strictEqual(at(text, ["schedules", "web.1", "schedules", 0, "tab\tkey"]), "5:1")
  })

  it("inline tables and arrays of inline tables", () => {
    const text = [
      "actix = { ip = \"0.0.0.0\", tls = { port = 1 } }",
      "[schedules.web1]",
      "schedules = [",
      "  { name = \"a\", cmds = [\"x\", \"y\"] },  # first",
      "  # between",
      "  { name = \"b\", timout = 5 },",
      "]"
    ].join("\n")
    assert.strictEqual(at(text, ["actix", "ip"]), "1:11")
    assert.strictEqual(at(text, ["actix", "tls", "port"]), "1:35")
    assert.strictEqual(at(text, ["schedules", "web1", "schedules", 0]), "4:3")
    assert.strictEqual(at(text, ["schedules", "web1", "schedules", 0, "cmds", 1]), "4:30")
    assert.strictEqual(at(text, ["schedules", "web1", "schedules", 1, "timout"]), "6:17")
  })

  it("strings that look like structure are skipped: multi-line, escaped quotes, brackets, hashes", () => {
    const text = [
      "a = \"\"\"",
      "[not.a.table]",
      "b = 1 \\\"\"\" still inside",
      "\"\"\"",
      "c = 'x # not a comment [y]'",
      "d = '''",
      "[[nope]]'''",
      "e = \"q\\\" = [\" # real comment",
      "f = 1979-05-27 07:32:00Z",
      "g = [1, [2, 3], \"]\"]",
      "h = \"\"\"x\"\"\"\"\"",
      "i = true"
    ].join("\n")
    assert.deepStrictEqual(Object.keys(parse(text)), ["a", "c", "d", "e", "f", "g", "h", "i"])
    assert.strictEqual(at(text, ["not"]), undefined)
    assert.strictEqual(at(text, ["b"]), undefined)
    assert.strictEqual(at(text, ["nope"]), undefined)
    assert.strictEqual(at(text, ["c"]), "5:1")
    assert.strictEqual(at(text, ["e"]), "8:1")
    assert.strictEqual(at(text, ["f"]), "9:1")
    assert.strictEqual(at(text, ["g", 1, 1]), "10:13")
    assert.strictEqual(at(text, ["h"]), "11:1")
    assert.strictEqual(at(text, ["i"]), "12:1")
  })

  it("CRLF line ends", () => {
    const text = "[actix]\r\nport = 1\r\n\r\nip = \"x\"\r\n"
    assert.strictEqual(at(text, ["actix", "port"]), "2:1")
    assert.strictEqual(at(text, ["actix", "ip"]), "4:1")
  })
})
