import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as TestServer from "./utils/server.js"

const SCHEDULES = `
[[schedules.alpha.schedules]]
name = "hello"
on_calendar = "*-*-* 10:R:R"
cmds = ["echo hi"]
`

describe("WorkerSession", () => {
  it.scopedLive("hello both ways, then the agent's table", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES, printLogs: true })
      const { hello, table } = yield* TestServer.helloAgent(server, "alpha")
      assert.strictEqual(hello.protocol, 1)
      assert.strictEqual(hello.ackedUpTo, -1)
      assert.match(hello.sessionId, /^[0-9a-f-]{36}$/)
      assert.deepStrictEqual(table.schedules.map((s) => s.name), ["hello"])
    }))
})
