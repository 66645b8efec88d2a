/**
 * Stable 32-bit hash for `R` fields (D2). FNV-1a over the UTF-16 code units followed by the
 * murmur3 finaliser so that small inputs differing in one character still spread over the whole
 * range. The exact function is part of the contract: changing it moves every `R` job.
 */
export const stableHash32 = (text: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** A value in [min, max] derived from (agent, schedule, field); same inputs, same value. */
export const stableValue = (agent: string, schedule: string, field: string, min: number, max: number): number =>
  min + (stableHash32(`${agent}\u0000${schedule}\u0000${field}`) % (max - min + 1))
