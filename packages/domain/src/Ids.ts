/**
 * Identifiers. Run ids are UUIDv7 (RFC 9562): time-ordered, so runs sort by creation and index
 * locality stays good in the database.
 */
import { randomBytes, randomUUID } from "node:crypto"
import type { RunId } from "./Messages.js"

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")

/** A UUIDv7 for the given instant (epoch ms; defaults to now). */
export const uuidv7 = (epochMs: number = Date.now()): string => {
  const b = randomBytes(16)
  const ms = BigInt(Math.max(0, Math.floor(epochMs)))
  for (let i = 0; i < 6; i++) b[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn)
  b[6] = (b[6]! & 0x0f) | 0x70
  b[8] = (b[8]! & 0x3f) | 0x80
  const h = hex(b)
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

export const newRunId = (epochMs?: number): RunId => uuidv7(epochMs) as RunId

export const uuidv4 = (): string => randomUUID()

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export const isUuid = (s: string): boolean => UUID_RE.test(s)

/**
 * The short form of a run id that tables show: its last 8 hex digits. A UUIDv7 begins with its
 * millisecond time stamp, so the first 8 characters are the same for every run of the same minute
 * or so (the console used to show exactly those); the tail is random and tells runs apart.
 */
export const SHORT_RUN_ID_LENGTH = 8
export const shortRunId = (runId: string): string => runId.slice(-SHORT_RUN_ID_LENGTH)

/** Shortest text accepted where a run id is taken (a prefix, or the short form). */
export const MIN_RUN_ID_INPUT = 6

/** What may stand for a run: hex digits and dashes, 6 to 36 of them (lower case). */
export const isRunIdInput = (text: string): boolean => /^[0-9a-f-]{6,36}$/.test(text)

/** Whether `text` (a run id input) names `runId`: the whole id, a prefix of it, or an ending of it. */
export const matchesRunId = (runId: string, text: string): boolean => runId.startsWith(text) || runId.endsWith(text)
