import { assert, describe, it } from "@effect/vitest"
import * as CliSession from "../src/CliSession.js"

describe("CLI roles without an admin_key", () => {
  it("only loopback peers are admin", () => {
    for (const ip of ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"]) assert.isTrue(CliSession.isLoopback(ip), ip)
    for (const ip of ["10.0.0.1", "192.168.1.5", "::ffff:10.0.0.1", "2001:db8::1", "unknown"]) {
      assert.isFalse(CliSession.isLoopback(ip), ip)
    }
  })

  it("compares secrets by value, whatever their lengths", () => {
    assert.isTrue(CliSession.secretEquals("s3cret", "s3cret"))
    assert.isFalse(CliSession.secretEquals("s3cret", "s3cre"))
    assert.isFalse(CliSession.secretEquals("", "s3cret"))
  })
})
