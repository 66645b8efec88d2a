import * as Config from "@barto/domain/Config"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { forwardedFor, make, xForwardedFor } from "../src/internal/forwarded.js"

describe("client address behind trusted proxies", () => {
  const behind = make(["10.0.0.0/8", "192.168.1.5", "fd00::/8"])

  it("without trusted proxies the headers are ignored and the peer is the client", () => {
    const none = make([])
    assert.strictEqual(none("::ffff:10.0.0.1", { "x-forwarded-for": "1.2.3.4" }), "10.0.0.1")
    assert.strictEqual(none("10.0.0.1", { forwarded: "for=1.2.3.4" }), "10.0.0.1")
  })

  it("an untrusted peer is the client whatever it claims", () => {
    assert.strictEqual(behind("203.0.113.9", { "x-forwarded-for": "1.2.3.4" }), "203.0.113.9")
  })

  it("X-Forwarded-For: the nearest hop that is not a trusted proxy", () => {
    assert.strictEqual(behind("10.0.0.1", { "x-forwarded-for": "198.51.100.7" }), "198.51.100.7")
    // A client-written first hop is never taken past an untrusted one.
    assert.strictEqual(behind("10.0.0.1", { "x-forwarded-for": "6.6.6.6, 198.51.100.7, 10.1.2.3" }), "198.51.100.7")
    // Every hop trusted: the farthest one.
    assert.strictEqual(behind("10.0.0.1", { "x-forwarded-for": "192.168.1.5, 10.9.9.9" }), "192.168.1.5")
    // No header: the proxy itself.
    assert.strictEqual(behind("::ffff:10.0.0.1", {}), "10.0.0.1")
  })

  it("Forwarded (RFC 7239) wins over X-Forwarded-For; quoted IPv6 with port, IPv4 with port", () => {
    assert.deepStrictEqual(
      forwardedFor("for=192.0.2.60;proto=http;by=203.0.113.43, For=\"[2001:db8:cafe::17]:4711\", for=198.51.100.1:80"),
      ["192.0.2.60", "2001:db8:cafe::17", "198.51.100.1"]
    )
    assert.strictEqual(
      behind("fd00::1", { forwarded: "for=\"[2001:db8:cafe::17]:4711\"", "x-forwarded-for": "9.9.9.9" }),
      "2001:db8:cafe::17"
    )
    // `unknown` or an obfuscated identifier ends the walk at the proxy that reported it.
    assert.strictEqual(behind("10.0.0.1", { forwarded: "for=unknown, for=10.2.2.2" }), "10.2.2.2")
    assert.strictEqual(behind("10.0.0.1", { forwarded: "for=_hidden" }), "10.0.0.1")
  })

  it("repeated headers count as one list", () => {
    assert.deepStrictEqual(xForwardedFor(" 1.1.1.1 ,2.2.2.2,, "), ["1.1.1.1", "2.2.2.2"])
    assert.strictEqual(
      behind("10.0.0.1", { "x-forwarded-for": ["6.6.6.6", "198.51.100.7"] as unknown as string }),
      "198.51.100.7"
    )
  })

  it.effect("[actix] trusted_proxies is strict: a bad entry names the key and the reason", () =>
    Effect.gen(function*() {
      const ok = yield* Config.loadBartos({
        noConfigFile: true,
        env: {},
        flags: { actix: { trusted_proxies: ["10.0.0.0/8", "::1", "fd00::/8"] } }
      })
      assert.deepStrictEqual(ok.actix.trusted_proxies, ["10.0.0.0/8", "::1", "fd00::/8"])
      for (const bad of ["10.0.0.0/33", "proxy.internal", "fd00::/129", "10.0.0.0/x"]) {
        const e = yield* Effect.flip(
          Config.loadBartos({ noConfigFile: true, env: {}, flags: { actix: { trusted_proxies: [bad] } } })
        )
        assert.include(e.message, "actix.trusted_proxies[0]")
        assert.include(e.message, "expected an IP address or CIDR block")
      }
    }))
})
