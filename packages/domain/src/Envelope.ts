/**
 * Security envelopes of the worker link (D7, reference §2.5/§2.6), byte-compatible with the
 * reference:
 *
 *   HMAC:    [ts u64 BE][nonce u64 BE][HMAC-SHA256(key, ts || nonce || payload) 32][payload]
 *   Ed25519: [signature 64 over everything after it][…]
 *
 * With both, the signature is outside: `sig || ts || nonce || mac || payload`. Verification goes
 * outermost first; the MAC is checked (in constant time) before the timestamp, the timestamp
 * before the nonce, so an attacker without the key learns nothing from which check failed.
 *
 * Session binding (barto's addition; the frame layout above is unchanged). Every frame of the
 * worker link is bound to the connection it was sealed for, by associated data that the MAC and
 * the signature cover but that is never sent (`bindingContext`):
 *
 *   "barto-bind-v1" (13 bytes ASCII) || sender (1 byte: "S" bartos, "A" bartoc)
 *   || agent nonce (16) || server nonce (16) || counter (u64 BE) || name length (u16 BE) || name (UTF-8)
 *
 *   HMAC:    HMAC-SHA256(key, context || ts || nonce || payload)
 *   Ed25519: signature over context || (HMAC envelope or payload)
 *
 * Each side contributes a fresh random nonce per connection (sent in the WebSocket upgrade, see
 * `NONCE_HEADER`), so a frame sealed for one connection never opens on another: not for another
 * agent, not for a later connection of the same agent, not within the HMAC window. The counter
 * is the number of frames the sender sealed on this connection before this one; the receiver
 * expects exactly its count of frames opened, so a frame replayed on its own connection fails too,
 * and signature-only frames (no timestamp) cannot be replayed either. The direction byte keeps a
 * frame from being reflected back to its sender. With an empty context (no binding) everything
 * is byte-for-byte the reference.
 *
 * Everything here is pure and synchronous and never throws: failures are `EnvelopeError` values.
 */
import * as ed from "@noble/ed25519"
import { sha512 } from "@noble/hashes/sha2.js"
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import * as crypto from "node:crypto"

// @noble/ed25519 v3 ships without a synchronous SHA-512; the sync API needs one wired in.
ed.hashes.sha512 = sha512

export const HMAC_HEADER_LEN = 48
export const SIGNATURE_LEN = 64

export type EnvelopeErrorReason = "too_short" | "bad_mac" | "expired" | "replayed" | "bad_signature" | "bad_key"

export class EnvelopeError extends Data.TaggedError("EnvelopeError")<{
  readonly reason: EnvelopeErrorReason
  readonly message: string
}> {}

const fail = (reason: EnvelopeErrorReason, message: string) => Either.left(new EnvelopeError({ reason, message }))

// ---------------------------------------------------------------------------------------------
// HMAC envelope
// ---------------------------------------------------------------------------------------------

/** The reference uses the raw UTF-8 bytes of the configured string as the key (not base64). */
export const hmacKeyFromString = (key: string | Redacted.Redacted<string>): Uint8Array =>
  new TextEncoder().encode(Redacted.isRedacted(key) ? Redacted.value(key) : key)

const U64_MAX = (1n << 64n) - 1n

const NO_CONTEXT = new Uint8Array(0)

const mac = (key: Uint8Array, context: Uint8Array, header: Uint8Array, payload: Uint8Array): Uint8Array =>
  crypto.createHmac("sha256", key).update(context).update(header).update(payload).digest()

// ---------------------------------------------------------------------------------------------
// Session binding (see the header comment)
// ---------------------------------------------------------------------------------------------

export const SESSION_NONCE_LEN = 16
/** The upgrade header carrying each side's session nonce (request: bartoc's, response: bartos'), hex. */
export const NONCE_HEADER = "x-barto-nonce"

const BIND_LABEL = new TextEncoder().encode("barto-bind-v1")

/** 16 random bytes; only `makeSessionNonce` and `parseSessionNonce` make one, so the length is right. */
export type SessionNonce = Uint8Array & { readonly SessionNonce: unique symbol }

export interface Binding {
  /** Who sealed the frame. */
  readonly sender: "server" | "agent"
  /** The agent's name on this connection (its `?name=`). */
  readonly agent: string
  readonly agentNonce: SessionNonce
  readonly serverNonce: SessionNonce
  /** Frames this sender sealed on this connection before this one. */
  readonly counter: bigint
}

// Nonces are cut from a pool filled by one CSPRNG call per 256 of them: bartos makes one per
// worker upgrade, and in the reconnect storm after a restart (issue 18) one `randomBytes` call
// each was ~1.5% of its CPU. Each nonce is its own copy; none is handed out twice.
const noncePool = new Uint8Array(SESSION_NONCE_LEN * 256)
let noncePoolUsed = noncePool.length

export const makeSessionNonce = (): SessionNonce => {
  if (noncePoolUsed === noncePool.length) {
    crypto.randomFillSync(noncePool)
    noncePoolUsed = 0
  }
  const nonce = noncePool.slice(noncePoolUsed, noncePoolUsed + SESSION_NONCE_LEN)
  noncePoolUsed += SESSION_NONCE_LEN
  return nonce as SessionNonce
}

/** A nonce from its header value: exactly 32 hex digits, else undefined. */
export const parseSessionNonce = (text: string | ReadonlyArray<string> | undefined): SessionNonce | undefined =>
  typeof text === "string" && /^[0-9a-fA-F]{32}$/.test(text)
    ? new Uint8Array(Buffer.from(text, "hex")) as SessionNonce
    : undefined

/** Hex of the nonce's own bytes (a view, not the copy `Buffer.from(nonce)` makes: once per upgrade). */
export const formatSessionNonce = (nonce: SessionNonce): string =>
  Buffer.from(nonce.buffer, nonce.byteOffset, nonce.byteLength).toString("hex")

/** The associated data of a bound frame (never sent; the MAC and the signature cover it). */
export const bindingContext = (b: Binding): Uint8Array => {
  const name = new TextEncoder().encode(b.agent)
  const out = new Uint8Array(BIND_LABEL.byteLength + 1 + 2 * SESSION_NONCE_LEN + 8 + 2 + name.byteLength)
  const view = new DataView(out.buffer)
  let at = 0
  out.set(BIND_LABEL, at)
  at += BIND_LABEL.byteLength
  out[at++] = b.sender === "server" ? 0x53 : 0x41
  out.set(b.agentNonce, at)
  at += SESSION_NONCE_LEN
  out.set(b.serverNonce, at)
  at += SESSION_NONCE_LEN
  view.setBigUint64(at, BigInt.asUintN(64, b.counter))
  at += 8
  view.setUint16(at, name.byteLength)
  at += 2
  out.set(name, at)
  return out
}

const contextOf = (binding: Binding | undefined) => (binding === undefined ? NO_CONTEXT : bindingContext(binding))

export const hmacWrap = (
  key: Uint8Array,
  payload: Uint8Array,
  ts: bigint,
  nonce: bigint,
  context: Uint8Array = NO_CONTEXT
): Uint8Array => {
  const frame = new Uint8Array(HMAC_HEADER_LEN + payload.byteLength)
  const view = new DataView(frame.buffer)
  view.setBigUint64(0, BigInt.asUintN(64, ts))
  view.setBigUint64(8, BigInt.asUintN(64, nonce))
  frame.set(mac(key, context, frame.subarray(0, 16), payload), 16)
  frame.set(payload, HMAC_HEADER_LEN)
  return frame
}

/**
 * Nonces seen on one connection, with the timestamp they came with. Create one per connection
 * (the reference resets it on every reconnect).
 */
export interface NonceCache {
  readonly size: number
}

class NonceCacheImpl implements NonceCache {
  readonly seen = new Map<bigint, bigint>()
  lastPrune = -1n
  get size() {
    return this.seen.size
  }
}

export const makeNonceCache = (): NonceCache => new NonceCacheImpl()

const outside = (now: bigint, ts: bigint, window: bigint) => (now > ts ? now - ts : ts - now) > window

const prune = (cache: NonceCacheImpl, now: bigint, window: bigint) => {
  // A full sweep at most once per second keeps a busy link O(1) per frame on average; lookups
  // re-check the found entry, so a late sweep never turns a fresh nonce into a "replay".
  if (cache.lastPrune === now) return
  cache.lastPrune = now
  for (const [nonce, ts] of cache.seen) {
    if (outside(now, ts, window)) cache.seen.delete(nonce)
  }
}

export const hmacUnwrap = (
  key: Uint8Array,
  frame: Uint8Array,
  nowSecs: number,
  windowSecs: number,
  nonces: NonceCache,
  context: Uint8Array = NO_CONTEXT
): Either.Either<Uint8Array, EnvelopeError> => {
  if (frame.byteLength < HMAC_HEADER_LEN) {
    return fail("too_short", `HMAC envelope needs ${HMAC_HEADER_LEN} bytes, got ${frame.byteLength}`)
  }
  const payload = frame.subarray(HMAC_HEADER_LEN)
  const expected = mac(key, context, frame.subarray(0, 16), payload)
  if (!crypto.timingSafeEqual(expected, frame.subarray(16, HMAC_HEADER_LEN))) {
    return fail("bad_mac", "HMAC invalid")
  }
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
  const ts = view.getBigUint64(0)
  const nonce = view.getBigUint64(8)
  const now = BigInt(Math.floor(nowSecs))
  const window = BigInt(Math.max(0, Math.floor(windowSecs)))
  if (outside(now, ts, window)) {
    return fail("expired", `timestamp ${ts} is more than ${window}s away from now (${now})`)
  }
  const cache = nonces as NonceCacheImpl
  prune(cache, now, window)
  const previous = cache.seen.get(nonce)
  if (previous !== undefined && !outside(now, previous, window)) {
    return fail("replayed", `replayed nonce ${nonce.toString(16)}`)
  }
  cache.seen.set(nonce, ts)
  return Either.right(payload)
}

// ---------------------------------------------------------------------------------------------
// Ed25519
// ---------------------------------------------------------------------------------------------

const SeedId: unique symbol = Symbol("@barto/domain/Envelope/seed")

/**
 * A parsed signing key (only `parseSigningKey`/`signingKeyFromSeed` make one). Prints as its
 * fingerprint only; the seed sits in a private, non-enumerable slot, inside node's `KeyObject`.
 *
 * Signing and verifying go through node:crypto (OpenSSL): Ed25519 signatures are deterministic,
 * so they are the same bytes @noble/ed25519 made (the vectors pin it), at ~38 µs per signature
 * instead of ~350 (and ~1.2 ms per verification in noble). bartos signs the ServerHello and the
 * table of every hello: in the reconnect storm of 10,000 agents (issue 18) that was ~0.7 ms of
 * CPU per hello, more than all the rest of the hello. noble stays for deriving the public key
 * and checking that a configured public key is a curve point (once, at load).
 */
export interface SigningKey {
  readonly _tag: "SigningKey"
  readonly publicKey: Uint8Array
  readonly fingerprint: string
  readonly [SeedId]: crypto.KeyObject
}

export interface PublicKey {
  readonly _tag: "PublicKey"
  readonly bytes: Uint8Array
  readonly fingerprint: string
}

const inspectSymbol = Symbol.for("nodejs.util.inspect.custom")

/** DER of a PKCS #8 Ed25519 private key up to its 32-byte seed (RFC 8410). */
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex")
/** DER of an SPKI Ed25519 public key up to its 32 bytes (RFC 8410). */
const SPKI_ED25519_PREFIX = Buffer.from("302a300506032b6570032100", "hex")

/** node's form of each public key, made on its first verification. */
const publicKeyObjects = new WeakMap<PublicKey, crypto.KeyObject>()
const publicKeyObject = (key: PublicKey): crypto.KeyObject => {
  let object = publicKeyObjects.get(key)
  if (object === undefined) {
    object = crypto.createPublicKey({
      key: Buffer.concat([SPKI_ED25519_PREFIX, key.bytes]),
      format: "der",
      type: "spki"
    })
    publicKeyObjects.set(key, object)
  }
  return object
}

const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** Standard alphabet, padded, exactly 32 bytes. */
const decodeKey32 = (what: string, text: string): Either.Either<Uint8Array, EnvelopeError> => {
  const s = text.trim()
  if (!STRICT_BASE64.test(s)) return fail("bad_key", `${what} is not valid base64`)
  const bytes = new Uint8Array(Buffer.from(s, "base64"))
  if (bytes.byteLength !== 32) return fail("bad_key", `${what} must be 32 bytes, got ${bytes.byteLength}`)
  return Either.right(bytes)
}

const reveal = (s: string | Redacted.Redacted<string>) => (Redacted.isRedacted(s) ? Redacted.value(s) : s)

export const fingerprint = (publicKey: Uint8Array): string =>
  crypto.createHash("sha256").update(publicKey).digest().subarray(0, 8).toString("hex")

export const signingKeyFromSeed = (seed: Uint8Array): Either.Either<SigningKey, EnvelopeError> => {
  if (seed.byteLength !== 32) return fail("bad_key", `signing key seed must be 32 bytes, got ${seed.byteLength}`)
  const copy = new Uint8Array(seed)
  const publicKey = ed.getPublicKey(copy)
  const der = Buffer.concat([PKCS8_ED25519_PREFIX, copy])
  const privateKey = crypto.createPrivateKey({ key: der, format: "der", type: "pkcs8" })
  der.fill(0)
  copy.fill(0)
  const fp = fingerprint(publicKey)
  const text = `SigningKey(${fp})`
  const key = { _tag: "SigningKey", publicKey, fingerprint: fp }
  Object.defineProperties(key, {
    [SeedId]: { value: privateKey, enumerable: false },
    toString: { value: () => text, enumerable: false },
    toJSON: { value: () => text, enumerable: false },
    [inspectSymbol]: { value: () => text, enumerable: false }
  })
  return Either.right(key as SigningKey)
}

/** `signing_key`: base64 (standard, padded) of the 32-byte Ed25519 seed. */
export const parseSigningKey = (
  base64Seed: string | Redacted.Redacted<string>
): Either.Either<SigningKey, EnvelopeError> =>
  Either.flatMap(decodeKey32("signing key", reveal(base64Seed)), signingKeyFromSeed)

export const publicKeyFromBytes = (bytes: Uint8Array): Either.Either<PublicKey, EnvelopeError> => {
  if (bytes.byteLength !== 32) return fail("bad_key", `public key must be 32 bytes, got ${bytes.byteLength}`)
  try {
    ed.Point.fromBytes(bytes)
  } catch {
    return fail("bad_key", "public key is not a valid Ed25519 point")
  }
  return Either.right({ _tag: "PublicKey", bytes: new Uint8Array(bytes), fingerprint: fingerprint(bytes) })
}

/** `server_public_key`: base64 (standard, padded) of the 32-byte Ed25519 public key. */
export const parsePublicKey = (base64: string | Redacted.Redacted<string>): Either.Either<PublicKey, EnvelopeError> =>
  Either.flatMap(decodeKey32("public key", reveal(base64)), publicKeyFromBytes)

export const publicKeyOf = (key: SigningKey): Uint8Array => key.publicKey

const withContext = (context: Uint8Array, payload: Uint8Array): Uint8Array => {
  if (context.byteLength === 0) return payload
  const message = new Uint8Array(context.byteLength + payload.byteLength)
  message.set(context, 0)
  message.set(payload, context.byteLength)
  return message
}

/** `signature || payload`, the signature (64 bytes) over `context || payload` (reference: no context). */
export const sign = (key: SigningKey, payload: Uint8Array, context: Uint8Array = NO_CONTEXT): Uint8Array => {
  const sig = crypto.sign(null, withContext(context, payload), key[SeedId])
  const frame = new Uint8Array(SIGNATURE_LEN + payload.byteLength)
  frame.set(sig, 0)
  frame.set(payload, SIGNATURE_LEN)
  return frame
}

export const verify = (
  key: PublicKey,
  frame: Uint8Array,
  context: Uint8Array = NO_CONTEXT
): Either.Either<Uint8Array, EnvelopeError> => {
  if (frame.byteLength < SIGNATURE_LEN) {
    return fail("too_short", `signed frame needs ${SIGNATURE_LEN} bytes, got ${frame.byteLength}`)
  }
  const payload = frame.subarray(SIGNATURE_LEN)
  let ok: boolean
  try {
    ok = crypto.verify(null, withContext(context, payload), publicKeyObject(key), frame.subarray(0, SIGNATURE_LEN))
  } catch {
    ok = false
  }
  return ok ? Either.right(payload) : fail("bad_signature", "Ed25519 signature invalid")
}

// ---------------------------------------------------------------------------------------------
// Whole links
// ---------------------------------------------------------------------------------------------

export interface SealOptions {
  readonly hmacKey?: Uint8Array | undefined
  readonly signingKey?: SigningKey | undefined
}

const randomNonce = (): bigint => crypto.randomBytes(8).readBigUInt64BE(0)

/**
 * HMAC envelope inside (when a key is set), signature outside (when a signing key is set), both
 * over the `binding`'s context when one is given.
 */
export const seal = (opts: SealOptions, payload: Uint8Array, nowSecs: number, binding?: Binding): Uint8Array => {
  if (opts.hmacKey === undefined && opts.signingKey === undefined) return payload
  const context = contextOf(binding)
  const inner = opts.hmacKey === undefined
    ? payload
    : hmacWrap(opts.hmacKey, payload, BigInt(Math.floor(nowSecs)) & U64_MAX, randomNonce(), context)
  return opts.signingKey === undefined ? inner : sign(opts.signingKey, inner, context)
}

export interface OpenOptions {
  readonly hmacKey?: Uint8Array | undefined
  readonly publicKey?: PublicKey | undefined
  readonly windowSecs: number
  readonly nonces: NonceCache
}

/** The inverse of `seal`: signature first, then the HMAC envelope, over the same binding. */
export const open = (
  opts: OpenOptions,
  frame: Uint8Array,
  nowSecs: number,
  binding?: Binding
): Either.Either<Uint8Array, EnvelopeError> => {
  if (opts.hmacKey === undefined && opts.publicKey === undefined) return Either.right(frame)
  const context = contextOf(binding)
  const inner = opts.publicKey === undefined ? Either.right(frame) : verify(opts.publicKey, frame, context)
  return opts.hmacKey === undefined
    ? inner
    : Either.flatMap(inner, (e) => hmacUnwrap(opts.hmacKey!, e, nowSecs, opts.windowSecs, opts.nonces, context))
}
