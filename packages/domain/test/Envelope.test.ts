import { assert, describe, it } from "@effect/vitest"
import { Either, FastCheck, Redacted } from "effect"
import { inspect } from "node:util"
import * as Envelope from "../src/Envelope.js"

const hex = (h: string) => new Uint8Array(Buffer.from(h.replace(/\s+/g, ""), "hex"))
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex")
const utf8 = (s: string) => new TextEncoder().encode(s)

const right = <A>(e: Either.Either<A, Envelope.EnvelopeError>): A => {
  if (Either.isLeft(e)) return assert.fail(`expected Right, got ${e.left.reason}: ${e.left.message}`)
  return e.right
}
const reasonOf = <A>(e: Either.Either<A, Envelope.EnvelopeError>): Envelope.EnvelopeErrorReason => {
  if (Either.isRight(e)) return assert.fail("expected an EnvelopeError")
  return e.left.reason
}

// Reference §2.6
const HMAC_KEY = Envelope.hmacKeyFromString("test-shared-secret")
const VECTORS = [
  {
    ts: 1000000n,
    nonce: 0xdeadbeefn,
    payload: hex("65787069726564"),
    envelope:
      "00000000000f424000000000deadbeef8f85cd64b614674daa56bc0494e0d0ba57948bee26673e59b814bdd3d9cbe5cd65787069726564"
  },
  {
    ts: 1760000000n,
    nonce: 1n,
    payload: hex("01"),
    envelope: "0000000068e778000000000000000001fdf35cd7365c12e13ff447c04e0a00dad8a08b9462d85d63b1b5e77dd95f552e01"
  },
  {
    ts: 1760000000n,
    nonce: 0x0123456789abcdefn,
    payload: new Uint8Array(0),
    envelope: "0000000068e778000123456789abcdef95a4dd56ea1e82e5dcb9b01f082c304d8af4892cd47fddb9899f0e610d3d29cd"
  }
] as const

const SEED1 = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
const PUB1 = "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w="
const SEED2 = Buffer.alloc(32, 2).toString("base64")
const PUB2 = "gTl3Dqh9F19Wo1Rmw0x+zMuNipG07jeiXfYPW4/Js5Q="
const SIGNED_HELLO =
  "f8949300fe3981609d19e5defb76d324510a7125ad61f59441e5d798b4ae896d596693e57a684554b2e9c9f6e525298756ab33fbedeb4be8c3d93d7d01cf520268656c6c6f20626172746f73"
const SIGNED_01 =
  "b5f2ec1d267c8e8311e48406329d84c8d8d350ebba78ae0480c457e5b8d97c8901228c982cd600fd46a35456628cdae67064617063ad7b87f899151eab1cb10f01"

const NOW = 1760000000

describe("HMAC envelope (reference §2.6)", () => {
  for (const v of VECTORS) {
    it(`wraps ts=${v.ts} nonce=${v.nonce.toString(16)} payload=${toHex(v.payload) || "(empty)"}`, () => {
      assert.strictEqual(toHex(Envelope.hmacWrap(HMAC_KEY, v.payload, v.ts, v.nonce)), v.envelope)
    })
  }

  it("unwraps the Cleanup vector and the empty-payload vector at their own time", () => {
    const cleanup = right(Envelope.hmacUnwrap(HMAC_KEY, hex(VECTORS[1].envelope), NOW, 60, Envelope.makeNonceCache()))
    assert.strictEqual(toHex(cleanup), "01")
    const empty = right(Envelope.hmacUnwrap(HMAC_KEY, hex(VECTORS[2].envelope), NOW, 60, Envelope.makeNonceCache()))
    assert.strictEqual(empty.byteLength, 0)
  })

  it("the 'expired' vector has a valid MAC but is rejected as expired now", () => {
    const frame = hex(VECTORS[0].envelope)
    assert.strictEqual(reasonOf(Envelope.hmacUnwrap(HMAC_KEY, frame, NOW, 60, Envelope.makeNonceCache())), "expired")
    // At its own time it is fine: the MAC really is valid.
    right(Envelope.hmacUnwrap(HMAC_KEY, frame, 1000000, 60, Envelope.makeNonceCache()))
  })

  it("the window is inclusive on both sides", () => {
    const frame = hex(VECTORS[1].envelope)
    for (const now of [NOW - 60, NOW + 60]) {
      right(Envelope.hmacUnwrap(HMAC_KEY, frame, now, 60, Envelope.makeNonceCache()))
    }
    for (const now of [NOW - 61, NOW + 61]) {
      assert.strictEqual(reasonOf(Envelope.hmacUnwrap(HMAC_KEY, frame, now, 60, Envelope.makeNonceCache())), "expired")
    }
    // Fractional "now" counts in whole seconds like the reference's unix seconds.
    right(Envelope.hmacUnwrap(HMAC_KEY, frame, NOW + 60.9, 60, Envelope.makeNonceCache()))
  })

  it("flipping any single bit of ts, nonce, MAC or payload is rejected", () => {
    const frame = hex(VECTORS[1].envelope)
    for (let i = 0; i < frame.byteLength; i++) {
      for (const bit of [0x01, 0x80]) {
        const bad = new Uint8Array(frame)
        bad[i]! ^= bit
        const reason = reasonOf(Envelope.hmacUnwrap(HMAC_KEY, bad, NOW, 60, Envelope.makeNonceCache()))
        // MAC before time: even a flipped ts byte is a MAC failure, never "expired".
        assert.strictEqual(reason, "bad_mac", `byte ${i} bit ${bit}`)
      }
    }
  })

  it("input shorter than 48 bytes is rejected", () => {
    const frame = hex(VECTORS[2].envelope)
    for (const n of [0, 1, 47]) {
      assert.strictEqual(
        reasonOf(Envelope.hmacUnwrap(HMAC_KEY, frame.subarray(0, n), NOW, 60, Envelope.makeNonceCache())),
        "too_short"
      )
    }
  })

  it("a wrong key is a MAC failure", () => {
    const frame = hex(VECTORS[1].envelope)
    const other = Envelope.hmacKeyFromString("test-shared-secreT")
    assert.strictEqual(reasonOf(Envelope.hmacUnwrap(other, frame, NOW, 60, Envelope.makeNonceCache())), "bad_mac")
  })

  it("the key is the raw UTF-8 of the configured string, Redacted accepted", () => {
    assert.deepStrictEqual(Envelope.hmacKeyFromString(Redacted.make("test-shared-secret")), HMAC_KEY)
    assert.strictEqual(toHex(HMAC_KEY), Buffer.from("test-shared-secret", "utf8").toString("hex"))
  })

  it("a replayed nonce is rejected on the same connection, accepted on a new one", () => {
    const frame = hex(VECTORS[1].envelope)
    const nonces = Envelope.makeNonceCache()
    right(Envelope.hmacUnwrap(HMAC_KEY, frame, NOW, 60, nonces))
    assert.strictEqual(reasonOf(Envelope.hmacUnwrap(HMAC_KEY, frame, NOW, 60, nonces)), "replayed")
    assert.strictEqual(reasonOf(Envelope.hmacUnwrap(HMAC_KEY, frame, NOW + 30, 60, nonces)), "replayed")
    right(Envelope.hmacUnwrap(HMAC_KEY, frame, NOW, 60, Envelope.makeNonceCache()))
  })

  it("rejected frames do not record their nonce", () => {
    const frame = hex(VECTORS[1].envelope)
    const nonces = Envelope.makeNonceCache()
    assert.strictEqual(reasonOf(Envelope.hmacUnwrap(HMAC_KEY, frame, NOW + 61, 60, nonces)), "expired")
    assert.strictEqual(nonces.size, 0)
    right(Envelope.hmacUnwrap(HMAC_KEY, frame, NOW, 60, nonces))
  })

  it("the cache is pruned of entries older than the window", () => {
    const nonces = Envelope.makeNonceCache()
    for (let i = 0n; i < 10n; i++) {
      right(Envelope.hmacUnwrap(HMAC_KEY, Envelope.hmacWrap(HMAC_KEY, utf8("x"), BigInt(NOW), i), NOW, 60, nonces))
    }
    assert.strictEqual(nonces.size, 10)
    const later = NOW + 100
    right(Envelope.hmacUnwrap(HMAC_KEY, Envelope.hmacWrap(HMAC_KEY, utf8("x"), BigInt(later), 99n), later, 60, nonces))
    assert.strictEqual(nonces.size, 1)
    // An old nonce may be reused once it is outside the window (its old frame would be expired).
    right(Envelope.hmacUnwrap(HMAC_KEY, Envelope.hmacWrap(HMAC_KEY, utf8("x"), BigInt(later), 3n), later, 60, nonces))
  })

  it.prop(
    "wrap then unwrap gives the payload back",
    [
      FastCheck.uint8Array({ maxLength: 256 }),
      FastCheck.bigUint({ max: (1n << 64n) - 1n }),
      FastCheck.integer({ min: 0, max: 120 })
    ],
    ([payload, nonce, skew]) => {
      const frame = Envelope.hmacWrap(HMAC_KEY, payload, BigInt(NOW), nonce)
      assert.strictEqual(frame.byteLength, Envelope.HMAC_HEADER_LEN + payload.byteLength)
      const result = Envelope.hmacUnwrap(HMAC_KEY, frame, NOW + skew, 60, Envelope.makeNonceCache())
      if (skew <= 60) assert.deepStrictEqual(right(result), payload)
      else assert.strictEqual(reasonOf(result), "expired")
    }
  )
})

describe("Ed25519 (reference §2.6)", () => {
  it("public keys and fingerprints of seeds 0x01 and 0x02", () => {
    const k1 = right(Envelope.parseSigningKey(SEED1))
    assert.strictEqual(Buffer.from(Envelope.publicKeyOf(k1)).toString("base64"), PUB1)
    assert.strictEqual(Envelope.fingerprint(Envelope.publicKeyOf(k1)), "34750f98bd59fcfc")
    assert.strictEqual(k1.fingerprint, "34750f98bd59fcfc")
    const k2 = right(Envelope.parseSigningKey(SEED2))
    assert.strictEqual(Buffer.from(Envelope.publicKeyOf(k2)).toString("base64"), PUB2)
    assert.strictEqual(Envelope.fingerprint(Envelope.publicKeyOf(k2)), "6a3803d5f059902a")
    assert.strictEqual(right(Envelope.parsePublicKey(PUB2)).fingerprint, "6a3803d5f059902a")
  })

  it("signs 'hello bartos' and 01 exactly like the reference", () => {
    const k1 = right(Envelope.parseSigningKey(SEED1))
    assert.strictEqual(toHex(Envelope.sign(k1, utf8("hello bartos"))), SIGNED_HELLO)
    assert.strictEqual(toHex(Envelope.sign(k1, hex("01"))), SIGNED_01)
  })

  it("verifies the reference frames and strips the signature", () => {
    const pub1 = right(Envelope.parsePublicKey(PUB1))
    assert.strictEqual(new TextDecoder().decode(right(Envelope.verify(pub1, hex(SIGNED_HELLO)))), "hello bartos")
    assert.strictEqual(toHex(right(Envelope.verify(pub1, hex(SIGNED_01)))), "01")
  })

  it("a seed-0x01 signature fails with the seed-0x02 public key", () => {
    const pub2 = right(Envelope.parsePublicKey(PUB2))
    assert.strictEqual(reasonOf(Envelope.verify(pub2, hex(SIGNED_HELLO))), "bad_signature")
  })

  it("frames shorter than 64 bytes fail", () => {
    const pub1 = right(Envelope.parsePublicKey(PUB1))
    for (const n of [0, 1, 63]) {
      assert.strictEqual(reasonOf(Envelope.verify(pub1, hex(SIGNED_01).subarray(0, n))), "too_short")
    }
  })

  it("flipping any byte of signature or payload fails", () => {
    const pub1 = right(Envelope.parsePublicKey(PUB1))
    const frame = hex(SIGNED_HELLO)
    for (let i = 0; i < frame.byteLength; i++) {
      const bad = new Uint8Array(frame)
      bad[i]! ^= 0x01
      assert.strictEqual(reasonOf(Envelope.verify(pub1, bad)), "bad_signature", `byte ${i}`)
    }
  })

  it("invalid keys: not base64, 16 bytes, unpadded, not a curve point", () => {
    assert.strictEqual(reasonOf(Envelope.parseSigningKey("not-valid-base64!!!")), "bad_key")
    assert.strictEqual(reasonOf(Envelope.parsePublicKey("not-valid-base64!!!")), "bad_key")
    const sixteen = Buffer.alloc(16, 7).toString("base64")
    assert.strictEqual(reasonOf(Envelope.parseSigningKey(sixteen)), "bad_key")
    assert.strictEqual(reasonOf(Envelope.parsePublicKey(sixteen)), "bad_key")
    assert.strictEqual(reasonOf(Envelope.parsePublicKey(PUB1.replace(/=$/, ""))), "bad_key")
    assert.strictEqual(reasonOf(Envelope.parsePublicKey("")), "bad_key")
    // y = 2 has no x on the curve: 32 bytes, but not a public key.
    const notAPoint = new Uint8Array(32)
    notAPoint[0] = 2
    assert.strictEqual(reasonOf(Envelope.publicKeyFromBytes(notAPoint)), "bad_key")
  })

  it("keys are accepted as Redacted and with surrounding whitespace", () => {
    const k = right(Envelope.parseSigningKey(Redacted.make(`${SEED1}\n`)))
    assert.strictEqual(k.fingerprint, "34750f98bd59fcfc")
    right(Envelope.parsePublicKey(Redacted.make(PUB1)))
  })

  it("a signing key never prints its seed", () => {
    const k = right(Envelope.parseSigningKey(SEED1))
    const seedHex = "01".repeat(32)
    for (
      const text of [String(k), JSON.stringify(k), JSON.stringify({ k }), inspect(k, { depth: 5, showHidden: false })]
    ) {
      assert.notInclude(text, seedHex)
      assert.notInclude(text, SEED1)
      assert.notInclude(text, "1,1,1,1")
    }
    assert.include(String(k), "34750f98bd59fcfc")
  })
})

describe("seal / open", () => {
  const k1 = right(Envelope.parseSigningKey(SEED1))
  const pub1 = right(Envelope.parsePublicKey(PUB1))
  const payload = utf8("hello bartoc")

  it("signature outside the HMAC envelope: [sig 64][ts 8][nonce 8][mac 32][payload]", () => {
    const frame = Envelope.seal({ hmacKey: HMAC_KEY, signingKey: k1 }, payload, NOW)
    assert.strictEqual(frame.byteLength, 64 + 48 + payload.byteLength)
    const inner = right(Envelope.verify(pub1, frame))
    assert.strictEqual(new DataView(inner.buffer, inner.byteOffset).getBigUint64(0), BigInt(NOW))
    assert.deepStrictEqual(right(Envelope.hmacUnwrap(HMAC_KEY, inner, NOW, 60, Envelope.makeNonceCache())), payload)
    const opened = Envelope.open(
      { hmacKey: HMAC_KEY, publicKey: pub1, windowSecs: 60, nonces: Envelope.makeNonceCache() },
      frame,
      NOW
    )
    assert.deepStrictEqual(right(opened), payload)
  })

  it("every combination round-trips; nothing configured is the identity", () => {
    const combos: ReadonlyArray<[Envelope.SealOptions, Omit<Envelope.OpenOptions, "nonces" | "windowSecs">]> = [
      [{}, {}],
      [{ hmacKey: HMAC_KEY }, { hmacKey: HMAC_KEY }],
      [{ signingKey: k1 }, { publicKey: pub1 }],
      [{ hmacKey: HMAC_KEY, signingKey: k1 }, { hmacKey: HMAC_KEY, publicKey: pub1 }]
    ]
    for (const [s, o] of combos) {
      const frame = Envelope.seal(s, payload, NOW)
      const opened = Envelope.open({ ...o, windowSecs: 60, nonces: Envelope.makeNonceCache() }, frame, NOW + 5)
      assert.deepStrictEqual(right(opened), payload)
    }
    assert.deepStrictEqual(Envelope.seal({}, payload, NOW), payload)
  })

  it("nonces are fresh per seal, so two identical payloads are both accepted", () => {
    const nonces = Envelope.makeNonceCache()
    const opts = { hmacKey: HMAC_KEY, windowSecs: 60, nonces }
    right(Envelope.open(opts, Envelope.seal({ hmacKey: HMAC_KEY }, payload, NOW), NOW))
    right(Envelope.open(opts, Envelope.seal({ hmacKey: HMAC_KEY }, payload, NOW), NOW))
    assert.strictEqual(nonces.size, 2)
  })

  it("the signature is checked first, then the MAC, then time, then the nonce", () => {
    const nonces = Envelope.makeNonceCache()
    const opts = { hmacKey: HMAC_KEY, publicKey: pub1, windowSecs: 60, nonces }
    const frame = Envelope.seal({ hmacKey: HMAC_KEY, signingKey: k1 }, payload, NOW)
    // A flipped MAC byte breaks the signature too: the outer check reports it.
    const flipped = new Uint8Array(frame)
    flipped[64 + 20]! ^= 1
    assert.strictEqual(reasonOf(Envelope.open(opts, flipped, NOW)), "bad_signature")
    // Re-signed with the right key, the bad MAC is then found.
    const resigned = Envelope.sign(k1, flipped.subarray(64))
    assert.strictEqual(reasonOf(Envelope.open(opts, resigned, NOW)), "bad_mac")
    assert.strictEqual(reasonOf(Envelope.open(opts, frame, NOW + 3600)), "expired")
    right(Envelope.open(opts, frame, NOW))
    assert.strictEqual(reasonOf(Envelope.open(opts, frame, NOW)), "replayed")
  })

  it("configuration mismatches are rejected, not misread", () => {
    const nonces = Envelope.makeNonceCache()
    // Receiver wants a signature, sender did not sign (HMAC only): the HMAC header is no signature.
    const hmacOnly = Envelope.seal({ hmacKey: HMAC_KEY }, utf8("a payload long enough for 64 bytes"), NOW)
    assert.strictEqual(
      reasonOf(Envelope.open({ publicKey: pub1, windowSecs: 60, nonces }, hmacOnly, NOW)),
      "bad_signature"
    )
    const shortHmacOnly = Envelope.seal({ hmacKey: HMAC_KEY }, utf8("x"), NOW)
    assert.strictEqual(
      reasonOf(Envelope.open({ publicKey: pub1, windowSecs: 60, nonces }, shortHmacOnly, NOW)),
      "too_short"
    )
    // Receiver wants an HMAC, sender sent the bare payload.
    assert.strictEqual(
      reasonOf(Envelope.open({ hmacKey: HMAC_KEY, windowSecs: 60, nonces }, payload, NOW)),
      "too_short"
    )
    const longPlain = new Uint8Array(100)
    assert.strictEqual(
      reasonOf(Envelope.open({ hmacKey: HMAC_KEY, windowSecs: 60, nonces }, longPlain, NOW)),
      "bad_mac"
    )
  })
})

/**
 * Session binding: the same envelope layout, with the binding context as associated data in the
 * MAC and signature input. Vectors cross-checked with Python's hmac/hashlib and `cryptography`
 * (Ed25519), independently of this implementation.
 */
describe("session binding (associated data; layout unchanged)", () => {
  const agentNonce = Envelope.parseSessionNonce("000102030405060708090a0b0c0d0e0f")!
  const serverNonce = Envelope.parseSessionNonce("101112131415161718191a1b1c1d1e1f")!
  const bind = (sender: "server" | "agent", counter: bigint, agent = "web1"): Envelope.Binding => ({
    sender,
    agent,
    agentNonce,
    serverNonce,
    counter
  })
  const CONTEXT = "626172746f2d62696e642d7631" + "53" + "000102030405060708090a0b0c0d0e0f" +
    "101112131415161718191a1b1c1d1e1f" + "0000000000000003" + "0004" + "77656231"
  const BOUND_HMAC =
    "0000000068e778000000000000000001b818c4e99ce16298afe7220b0001d3bf3ef4a4eb1a51e8df1ff404d71ba7e39a01"
  const BOUND_HMAC_AGENT =
    "0000000068e778000123456789abcdef849155487b1cc4977b3bae87d80fbf6a8fb2c8fd99d0cb0a161ab87fcb5c378d70696e67"
  const BOUND_SIGNED =
    "04a86f4ba863c07c1064afcdf8761325e4550abe13e75d7c72b1f47bea013167ed984a11c59b8bcf06bc52187f6029b743f35e25075b4fa855ad6bb40274860568656c6c6f20626172746f73"

  it("the context: label, sender, both nonces, counter, length-prefixed name", () => {
    assert.strictEqual(toHex(Envelope.bindingContext(bind("server", 3n))), CONTEXT)
  })

  it("HMAC vectors: server frame #3 for 'web1', agent frame #0 for a non-ASCII name", () => {
    const context = Envelope.bindingContext(bind("server", 3n))
    assert.strictEqual(toHex(Envelope.hmacWrap(HMAC_KEY, hex("01"), 1760000000n, 1n, context)), BOUND_HMAC)
    const agentContext = Envelope.bindingContext(bind("agent", 0n, "wëb-1"))
    assert.strictEqual(
      toHex(Envelope.hmacWrap(HMAC_KEY, utf8("ping"), 1760000000n, 0x0123456789abcdefn, agentContext)),
      BOUND_HMAC_AGENT
    )
    assert.strictEqual(
      toHex(right(Envelope.hmacUnwrap(HMAC_KEY, hex(BOUND_HMAC), NOW, 60, Envelope.makeNonceCache(), context))),
      "01"
    )
    // Same bytes as the reference layout: only the MAC differs from the unbound vector.
    assert.strictEqual(BOUND_HMAC.slice(0, 32), VECTORS[1].envelope.slice(0, 32))
    assert.notStrictEqual(BOUND_HMAC.slice(32, 96), VECTORS[1].envelope.slice(32, 96))
  })

  it("Ed25519 vector: the signature covers context || payload", () => {
    const key = right(Envelope.parseSigningKey(SEED1))
    const context = Envelope.bindingContext(bind("server", 3n))
    assert.strictEqual(toHex(Envelope.sign(key, utf8("hello bartos"), context)), BOUND_SIGNED)
    const pub = right(Envelope.parsePublicKey(PUB1))
    assert.strictEqual(toHex(right(Envelope.verify(pub, hex(BOUND_SIGNED), context))), toHex(utf8("hello bartos")))
    assert.strictEqual(reasonOf(Envelope.verify(pub, hex(BOUND_SIGNED))), "bad_signature")
  })

  it("a frame opens only under its own binding: every field of it matters", () => {
    const key = right(Envelope.parseSigningKey(SEED1))
    const pub = right(Envelope.parsePublicKey(PUB1))
    const b = bind("server", 3n)
    const frame = Envelope.seal({ hmacKey: HMAC_KEY, signingKey: key }, utf8("table"), NOW, b)
    const opens = (
      binding: Envelope.Binding | undefined,
      opts: { hmac?: boolean; sig?: boolean } = { hmac: true, sig: true }
    ) =>
      Either.isRight(Envelope.open(
        {
          hmacKey: opts.hmac === false ? undefined : HMAC_KEY,
          publicKey: opts.sig === false ? undefined : pub,
          windowSecs: 60,
          nonces: Envelope.makeNonceCache()
        },
        opts.sig === false ? frame.subarray(Envelope.SIGNATURE_LEN) : frame,
        NOW,
        binding
      ))
    assert.isTrue(opens(b))
    const other = Envelope.makeSessionNonce()
    for (
      const [what, wrong] of [
        ["sender", { ...b, sender: "agent" }],
        ["agent", { ...b, agent: "web2" }],
        ["agent nonce", { ...b, agentNonce: other }],
        ["server nonce", { ...b, serverNonce: other }],
        ["counter", { ...b, counter: 4n }],
        ["no binding", undefined]
      ] as const
    ) {
      assert.isFalse(opens(wrong as Envelope.Binding | undefined), what)
      assert.isFalse(opens(wrong as Envelope.Binding | undefined, { hmac: false }), `${what} (signature alone)`)
      assert.isFalse(opens(wrong as Envelope.Binding | undefined, { sig: false }), `${what} (HMAC alone)`)
    }
  })

  it("nonces: 16 random bytes, exchanged as 32 hex digits; anything else is refused", () => {
    const n = Envelope.makeSessionNonce()
    assert.strictEqual(n.byteLength, Envelope.SESSION_NONCE_LEN)
    assert.deepStrictEqual(Envelope.parseSessionNonce(Envelope.formatSessionNonce(n)), n)
    assert.notDeepEqual(Envelope.makeSessionNonce(), n)
    for (const bad of [undefined, "", "00", "0".repeat(31), "0".repeat(33), "g".repeat(32), ["0".repeat(32)]]) {
      assert.isUndefined(Envelope.parseSessionNonce(bad as string | undefined), String(bad))
    }
  })

  it("nonces cut from the pool are each their own copy and never repeat, across refills", () => {
    const seen = new Set<string>()
    const nonces: Array<Envelope.SessionNonce> = []
    for (let i = 0; i < 1000; i++) {
      const n = Envelope.makeSessionNonce()
      assert.strictEqual(n.byteLength, Envelope.SESSION_NONCE_LEN)
      assert.strictEqual(n.byteOffset, 0)
      assert.strictEqual(n.buffer.byteLength, Envelope.SESSION_NONCE_LEN, "not a view into the pool")
      seen.add(Envelope.formatSessionNonce(n))
      nonces.push(n)
    }
    assert.strictEqual(seen.size, 1000)
    const first = Envelope.formatSessionNonce(nonces[0]!)
    nonces[1]!.fill(0)
    assert.strictEqual(Envelope.formatSessionNonce(nonces[0]!), first)
  })

  it("without keys, seal and open leave the payload as it is", () => {
    const payload = utf8("plain")
    assert.strictEqual(Envelope.seal({}, payload, NOW, bind("server", 0n)), payload)
    assert.strictEqual(
      right(Envelope.open({ windowSecs: 60, nonces: Envelope.makeNonceCache() }, payload, NOW, bind("server", 0n))),
      payload
    )
  })
})
