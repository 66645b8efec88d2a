/**
 * Deterministic generators of hostile frames for the fuzz tests: random bytes, truncated and
 * bit-flipped valid frames, oversized frames, JSON with unknown tags or wrong field types, and
 * (when keys are given) envelopes with wrong MACs, wrong signatures, expired timestamps and
 * replayed nonces.
 */
import { createHmac } from "node:crypto"

/** mulberry32: small, fast, seeded. */
export const prng = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export type FrameKind =
  | "random_bytes"
  | "truncated"
  | "bit_flip"
  | "oversized"
  | "unknown_tag"
  | "wrong_types"
  | "not_json"
  | "empty"
  | "text_garbage"

const enc = new TextEncoder()

export const hostileFrame = (
  rand: () => number,
  valid: ReadonlyArray<Uint8Array>,
  maxFrameBytes: number
): { kind: FrameKind; bytes: Uint8Array } => {
  const pick = <A>(xs: ReadonlyArray<A>) => xs[Math.floor(rand() * xs.length)]!
  const kinds: Array<FrameKind> = [
    "random_bytes",
    "truncated",
    "bit_flip",
    "unknown_tag",
    "wrong_types",
    "not_json",
    "empty",
    "text_garbage"
  ]
  // oversized frames are costly; keep them rare
  const kind: FrameKind = rand() < 0.01 ? "oversized" : pick(kinds)
  switch (kind) {
    case "random_bytes": {
      const n = 1 + Math.floor(rand() * 512)
      const b = new Uint8Array(n)
      for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256)
      return { kind, bytes: b }
    }
    case "truncated": {
      const v = pick(valid)
      return { kind, bytes: v.slice(0, Math.max(1, Math.floor(rand() * (v.length - 1)))) }
    }
    case "bit_flip": {
      const v = pick(valid).slice()
      const flips = 1 + Math.floor(rand() * 4)
      for (let i = 0; i < flips; i++) {
        const at = Math.floor(rand() * v.length)
        v[at] = v[at]! ^ (1 << Math.floor(rand() * 8))
      }
      return { kind, bytes: v }
    }
    case "oversized":
      return {
        kind,
        bytes: enc.encode(JSON.stringify({ _tag: "Ping", id: 1, sentAt: 1, pad: "x".repeat(maxFrameBytes) }))
      }
    case "unknown_tag":
      return { kind, bytes: enc.encode(JSON.stringify({ _tag: `Evil${Math.floor(rand() * 1e6)}`, id: 1 })) }
    case "wrong_types":
      return {
        kind,
        bytes: enc.encode(
          JSON.stringify(
            pick([
              { _tag: "Ping", id: "one", sentAt: null },
              { _tag: "RecordBatch", records: [{ _tag: "OutputLine", seq: -5 }] },
              { _tag: "RecordBatch", records: "nope" },
              { _tag: "AgentInfo", info: 42 },
              { _tag: "InfoRequest" },
              { _tag: "QueryRequest", id: 1, sql: 7 }
            ])
          )
        )
      }
    case "not_json":
      return { kind, bytes: enc.encode(pick(["{", "}{", "[1,2", "null", "42", "\"str\"", "{\"_tag\":"])) }
    case "empty":
      return { kind, bytes: new Uint8Array(0) }
    case "text_garbage":
      return { kind, bytes: enc.encode("\u0000\uffff\ud800".repeat(1 + Math.floor(rand() * 20))) }
  }
}

/**
 * An HMAC envelope as reference §2.5 lays it out, with a caller-chosen (possibly wrong) key; the
 * MAC also covers `context`, the session binding's associated data (empty: the reference).
 */
export const hmacEnvelope = (
  key: string,
  payload: Uint8Array,
  tsSecs: number,
  nonce: bigint,
  context: Uint8Array = new Uint8Array(0)
): Uint8Array => {
  const head = Buffer.alloc(16)
  head.writeBigUInt64BE(BigInt(tsSecs), 0)
  head.writeBigUInt64BE(nonce, 8)
  const mac = createHmac("sha256", Buffer.from(key, "utf8")).update(context).update(head).update(payload).digest()
  return new Uint8Array(Buffer.concat([head, mac, Buffer.from(payload)]))
}

// ---------------------------------------------------------------------------------------------
// The worst values, in every field (issue 11: one frame used to kill bartos)
// ---------------------------------------------------------------------------------------------

/** What a hostile peer puts in a field, as raw JSON text (or raw bytes: invalid UTF-8). */
export const WORST_VALUES: ReadonlyArray<
  { readonly kind: string; readonly json: string } | { readonly kind: string; readonly bytes: Uint8Array }
> = [
  { kind: "worst_nested_arrays", json: "[".repeat(5000) + "]".repeat(5000) },
  { kind: "worst_nested_objects", json: "{\"a\":".repeat(5000) + "1" + "}".repeat(5000) },
  { kind: "worst_huge_number", json: "9".repeat(400) },
  { kind: "worst_unsafe_integer", json: "9007199254740993" },
  { kind: "worst_int32_overflow", json: "2147483648" },
  { kind: "worst_huge_string", json: JSON.stringify("x".repeat(300_000)) },
  { kind: "worst_long_array", json: `[${Array.from({ length: 100_000 }, () => "1").join(",")}]` },
  // A string with a byte sequence that is not UTF-8 (0xC3 must be followed by a continuation byte).
  { kind: "worst_invalid_utf8", bytes: new Uint8Array([0x22, 0x61, 0xc3, 0x28, 0x62, 0x22]) }
]

/**
 * Every path to a field of `value`, `_tag` excepted: into every element of an array of objects
 * (a batch's records are of different kinds), into the first of an array of anything else.
 */
export const fieldPaths = (value: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> => {
  if (typeof value !== "object" || value === null) return [prefix]
  const out: Array<Array<string | number>> = prefix.length > 0 ? [prefix] : []
  if (Array.isArray(value)) {
    const objects = value.every((v) => typeof v === "object" && v !== null && !Array.isArray(v))
    value.slice(0, objects ? value.length : 1).forEach((v, i) => out.push(...fieldPaths(v, [...prefix, i])))
    return out
  }
  for (const [k, v] of Object.entries(value)) if (k !== "_tag") out.push(...fieldPaths(v, [...prefix, k]))
  return out
}

const PLACEHOLDER = "\u0000worst\u0000"

/** `message` (its JSON form) with the value at `path` replaced by one of `WORST_VALUES`. */
export const withWorst = (
  message: unknown,
  path: ReadonlyArray<string | number>,
  worst: (typeof WORST_VALUES)[number]
): Uint8Array => {
  const copy = structuredClone(message) as Record<string | number, unknown>
  let at: Record<string | number, unknown> = copy
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>
  at[path[path.length - 1]!] = PLACEHOLDER
  const [before, after] = JSON.stringify(copy).split(JSON.stringify(PLACEHOLDER)) as [string, string]
  const middle = "json" in worst ? enc.encode(worst.json) : worst.bytes
  const head = enc.encode(before)
  const tail = enc.encode(after)
  const out = new Uint8Array(head.byteLength + middle.byteLength + tail.byteLength)
  out.set(head, 0)
  out.set(middle, head.byteLength)
  out.set(tail, head.byteLength + middle.byteLength)
  return out
}

/** Every worst value in every field of every one of `messages` (JSON forms), in a fixed order. */
export const worstFrames = (
  messages: ReadonlyArray<unknown>
): Array<{ readonly kind: string; readonly bytes: Uint8Array }> =>
  messages.flatMap((m) =>
    fieldPaths(m).flatMap((path) =>
      WORST_VALUES.map((worst) => ({ kind: worst.kind, bytes: withWorst(m, path, worst) }))
    )
  )
