/**
 * Splits a byte stream into output lines (D4), pure and incremental.
 *
 * - Lines end at LF; a CR right before the LF is trimmed (CR elsewhere is data, as in the
 *   reference, whose reader strips `\n` and then one `\r`).
 * - Empty lines are kept; an unterminated last line is emitted by `end()`.
 * - Each completed line (or part) is decoded on its own with a non-fatal UTF-8 decoder, so invalid
 *   bytes become U+FFFD and never stop the capture (the reference stopped reading the stream).
 * - A line longer than `maxLineBytes` (64 KiB) is cut into parts of at most that many bytes; a
 *   cut never falls inside a well-formed multibyte character; parts after the first are marked
 *   `continuation`.
 *
 * Where the cuts fall depends only on the bytes, never on how they were chunked: a part is cut
 * only once more than `maxLineBytes` bytes of the line are known to be content (a trailing CR may
 * still turn out to be a line ending, so it does not count until the next byte arrives).
 */

export const MAX_LINE_BYTES = 65_536

export interface Line {
  readonly data: string
  /** True when this part continues the previous line. */
  readonly continuation: boolean
}

export interface LineSplitter {
  /** Feeds the next chunk; returns the lines it completed. */
  readonly push: (chunk: Uint8Array) => Array<Line>
  /** End of stream: returns the unterminated last line, if any. Further pushes start afresh. */
  readonly end: () => Array<Line>
}

const LF = 0x0a
const CR = 0x0d

const isContinuationByte = (b: number) => (b & 0xc0) === 0x80

/** Length of the sequence a lead byte announces; 0 when `b` cannot start a multibyte character. */
const sequenceLength = (b: number): number =>
  b >= 0xc0 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf7 ? 4 : 0

/**
 * Where to cut `bytes` so the part holds at most `max` bytes: `max`, or earlier when that would
 * split a multibyte character that starts before `max` and continues after it. Cutting right
 * before a lead byte never changes how either side decodes, so parts decode exactly like the
 * whole line would.
 */
export const cutPoint = (bytes: Uint8Array, max: number): number => {
  if (bytes.length <= max || !isContinuationByte(bytes[max]!)) return max
  for (let q = max - 1; q >= Math.max(0, max - 3); q--) {
    const b = bytes[q]!
    if (isContinuationByte(b)) continue
    const len = sequenceLength(b)
    return len > 0 && q + len > max && q > 0 ? q : max
  }
  return max
}

export const make = (options?: { readonly maxLineBytes?: number }): LineSplitter => {
  const max = Math.max(4, options?.maxLineBytes ?? MAX_LINE_BYTES)
  // ignoreBOM: keep a BOM as data instead of silently eating it at the start of each line.
  const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true })

  // Bytes of the current line not yet emitted, as a list of slices (no copy until needed).
  let pending: Array<Uint8Array> = []
  let pendingLength = 0
  // Whether a part of the current line has already been emitted.
  let continuing = false

  const concatPending = (): Uint8Array => {
    if (pending.length === 1) return pending[0]!
    const out = new Uint8Array(pendingLength)
    let offset = 0
    for (const p of pending) {
      out.set(p, offset)
      offset += p.length
    }
    pending = [out]
    return out
  }

  const emit = (out: Array<Line>, bytes: Uint8Array) => {
    out.push({ data: decoder.decode(bytes), continuation: continuing })
    continuing = true
  }

  /** Emits parts while more than `max` bytes are surely content (`reserve` bytes may be a CR). */
  const cutParts = (out: Array<Line>, reserve: number) => {
    if (pendingLength - reserve <= max) return
    let bytes = concatPending()
    while (bytes.length - reserve > max) {
      const cut = cutPoint(bytes, max)
      emit(out, bytes.subarray(0, cut))
      bytes = bytes.subarray(cut)
    }
    pending = [bytes]
    pendingLength = bytes.length
  }

  /** Completes the current line: everything pending, the line ending already removed. */
  const finishLine = (out: Array<Line>) => {
    cutParts(out, 0)
    emit(out, pendingLength === 0 ? new Uint8Array(0) : concatPending())
    pending = []
    pendingLength = 0
    continuing = false
  }

  const push = (chunk: Uint8Array): Array<Line> => {
    const out: Array<Line> = []
    let start = 0
    while (start < chunk.length) {
      const lf = chunk.indexOf(LF, start)
      if (lf === -1) {
        const rest = chunk.subarray(start)
        pending.push(rest)
        pendingLength += rest.length
        cutParts(out, rest[rest.length - 1] === CR ? 1 : 0)
        break
      }
      let segmentEnd = lf
      if (lf > start && chunk[lf - 1] === CR) {
        segmentEnd = lf - 1
      } else if (lf === start && pendingLength > 0) {
        // The CR may sit at the end of the previous chunk.
        const last = pending[pending.length - 1]!
        if (last[last.length - 1] === CR) {
          pending[pending.length - 1] = last.subarray(0, last.length - 1)
          pendingLength--
        }
      }
      if (segmentEnd > start) {
        pending.push(chunk.subarray(start, segmentEnd))
        pendingLength += segmentEnd - start
      }
      finishLine(out)
      start = lf + 1
    }
    return out
  }

  const end = (): Array<Line> => {
    const out: Array<Line> = []
    if (pendingLength > 0) finishLine(out)
    pending = []
    pendingLength = 0
    continuing = false
    return out
  }

  return { push, end }
}

/** Splits a whole input given as chunks; convenience for tests and small outputs. */
export const splitAll = (
  chunks: Iterable<Uint8Array>,
  options?: { readonly maxLineBytes?: number }
): Array<Line> => {
  const splitter = make(options)
  const out: Array<Line> = []
  for (const chunk of chunks) out.push(...splitter.push(chunk))
  out.push(...splitter.end())
  return out
}
