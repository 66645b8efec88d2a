/**
 * Rendering of `query` cells as text (D7): numbers in decimal, NULL as null, bytes as hex,
 * instants as RFC 3339 UTC. Shared by both dialects' query runners.
 */

export const renderCell = (value: unknown): string | null => {
  if (value === null || value === undefined) return null
  if (typeof value === "string") return value
  if (typeof value === "number") return Number.isFinite(value) ? numberToDecimal(value) : String(value)
  if (typeof value === "bigint") return value.toString()
  if (typeof value === "boolean") return value ? "1" : "0"
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex")
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString()
  return JSON.stringify(value)
}

/** `String(1e21)` is "1e+21": print every finite number without an exponent. */
const numberToDecimal = (n: number): string => {
  const s = String(n)
  if (!/e/i.test(s)) return s
  if (Number.isInteger(n)) return BigInt(n).toString()
  return n.toFixed(20).replace(/0+$/, "").replace(/\.$/, "")
}

/**
 * MariaDB date-time text ("2025-10-20 08:34:56.123456", read with `dateStrings` in a UTC session)
 * as RFC 3339 UTC; zero dates and other oddities are returned unchanged.
 */
export const mysqlDateTimeToRfc3339 = (text: string): string => {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?)$/.exec(text)
  return m === null || m[1] === "0000-00-00" ? text : `${m[1]}T${m[2]}Z`
}

/**
 * What a row of rendered cells costs in the answer (UTF-8 bytes plus JSON punctuation), for the
 * byte cap of `query`. The SQLite runner's child program counts the same way.
 */
export const rowBytes = (row: ReadonlyArray<string | null>): number => {
  let n = 2
  for (const cell of row) n += cell === null ? 5 : Buffer.byteLength(cell, "utf8") + 3
  return n
}
