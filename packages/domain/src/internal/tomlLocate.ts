/**
 * Where each key of a TOML document is written: smol-toml gives values but no positions, and a
 * config error must name `file:line:column` (D9). This scanner walks the document's structure
 * only (table headers, arrays of tables, dotted keys, quoted keys, inline tables, arrays), skips
 * every value it does not need (strings, multi-line strings, numbers, dates), and records the
 * position of the first definition of every key path, including the tables a header or dotted
 * key creates on its way.
 *
 * It runs only on text smol-toml has already accepted, so it is lenient: it never fails, and a
 * construct it does not follow just leaves some paths unlocated.
 */

/** A key path: table keys, and array indexes for elements of arrays (of tables). */
export type KeyPath = ReadonlyArray<string | number>

export interface Position {
  /** 1-based. */
  readonly line: number
  /** 1-based, in UTF-16 code units. */
  readonly column: number
}

const BARE_KEY = /^[A-Za-z0-9_-]+$/

/** `a.b[2].c`; a key that is not bare is quoted as TOML would (`schedules."web.1"`). */
export const formatKeyPath = (path: ReadonlyArray<PropertyKey>): string => {
  let out = ""
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`
    else {
      const key = String(segment)
      out += (out === "" ? "" : ".") + (BARE_KEY.test(key) ? key : JSON.stringify(key))
    }
  }
  return out
}

const id = (path: KeyPath): string => JSON.stringify(path)

class Scanner {
  i = 0
  constructor(readonly text: string) {}

  get done() {
    return this.i >= this.text.length
  }
  peek(offset = 0) {
    return this.text[this.i + offset]
  }
  startsWith(s: string) {
    return this.text.startsWith(s, this.i)
  }
  /** Spaces and tabs. */
  skipBlank() {
    while (this.peek() === " " || this.peek() === "\t") this.i++
  }
  skipComment() {
    if (this.peek() === "#") { while (!this.done && this.peek() !== "\n") this.i++ }
  }
  /** Blanks, comments and newlines (inside arrays). */
  skipSpace() {
    for (;;) {
      this.skipBlank()
      this.skipComment()
      if (this.peek() === "\n" || this.peek() === "\r") this.i++
      else return
    }
  }
  toLineEnd() {
    while (!this.done && this.peek() !== "\n") this.i++
    if (!this.done) this.i++
  }

  /** A string starting at `i` (any of the four kinds); returns its value (escapes kept raw). */
  string(): string {
    const q = this.peek()!
    const triple = this.startsWith(q.repeat(3))
    if (triple) {
      this.i += 3
      const start = this.i
      for (;;) {
        if (this.done) return this.text.slice(start)
        if (q === "\"" && this.peek() === "\\") {
          this.i += 2
          continue
        }
        if (this.startsWith(q.repeat(3))) {
          // Up to two quotes right before the closing delimiter belong to the content.
          let end = this.i + 3
          while (this.text[end] === q && end - this.i < 5) end++
          const value = this.text.slice(start, end - 3)
          this.i = end
          return value
        }
        this.i++
      }
    }
    this.i++
    const start = this.i
    while (!this.done && this.peek() !== q && this.peek() !== "\n") {
      if (q === "\"" && this.peek() === "\\") this.i++
      this.i++
    }
    const raw = this.text.slice(start, this.i)
    this.i++
    return q === "\"" ? unescapeBasic(raw) : raw
  }

  /** A dotted key: its segments and the offset of each. */
  key(): Array<{ readonly key: string; readonly at: number }> {
    const parts: Array<{ key: string; at: number }> = []
    for (;;) {
      this.skipBlank()
      const at = this.i
      const c = this.peek()
      if (c === "\"" || c === "'") parts.push({ key: this.string(), at })
      else {
        while (!this.done && /[A-Za-z0-9_-]/.test(this.peek()!)) this.i++
        if (this.i === at) return parts
        parts.push({ key: this.text.slice(at, this.i), at })
      }
      this.skipBlank()
      if (this.peek() !== ".") return parts
      this.i++
    }
  }
}

const ESCAPES: Record<string, string> = { b: "\b", t: "\t", n: "\n", f: "\f", r: "\r", "\"": "\"", "\\": "\\" }

const unescapeBasic = (raw: string): string =>
  raw.replace(
    /\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)/g,
    (_, e: string) => e.length > 1 ? String.fromCodePoint(parseInt(e.slice(1), 16)) : ESCAPES[e] ?? e
  )

/** Key path → position of its first definition. */
export interface Locations {
  readonly locate: (path: KeyPath) => Position | undefined
  /** The position of `path`, else of the nearest enclosing key that is written (a missing key's table). */
  readonly locateNearest: (path: KeyPath) => Position | undefined
}

export const locateKeys = (text: string): Locations => {
  const s = new Scanner(text)
  const found = new Map<string, number>()
  /** Arrays of tables: resolved path → index of the last element. */
  const arrays = new Map<string, number>()
  const mark = (path: KeyPath, at: number) => {
    if (!found.has(id(path))) found.set(id(path), at)
  }

  const value = (path: KeyPath, at: number) => {
    mark(path, at)
    const c = s.peek()
    if (c === "\"" || c === "'") return void s.string()
    if (c === "{") {
      s.i++
      for (;;) {
        s.skipSpace()
        if (s.done) return
        if (s.peek() === "}") return void s.i++
        if (s.peek() === ",") {
          s.i++
          continue
        }
        keyValue(path)
      }
    }
    if (c === "[") {
      s.i++
      for (let index = 0;; index++) {
        s.skipSpace()
        if (s.done) return
        if (s.peek() === "]") return void s.i++
        value([...path, index], s.i)
        s.skipSpace()
        if (s.peek() === ",") s.i++
      }
    }
    // A number, boolean or date (a local date-time may hold one space).
    while (!s.done && !/[,\]}#\n\r]/.test(s.peek()!)) s.i++
  }

  const keyValue = (table: KeyPath) => {
    const parts = s.key()
    if (parts.length === 0) {
      s.i++ // not a key (cannot happen in a valid document): step over it
      return
    }
    const path: Array<string | number> = [...table]
    for (const part of parts) {
      path.push(part.key)
      mark(path, part.at)
    }
    s.skipBlank()
    if (s.peek() === "=") s.i++
    s.skipBlank()
    value(path, s.i)
  }

  /**
   * A header's keys, entering the last element of every array of tables on the way. The table
   * the header opens is placed at the header's `[`, the tables on its way at their keys.
   */
  const resolve = (
    parts: ReadonlyArray<{ readonly key: string; readonly at: number }>,
    isArray: boolean,
    start: number
  ) => {
    const path: Array<string | number> = []
    parts.forEach((part, n) => {
      path.push(part.key)
      const last = n === parts.length - 1
      const at = last ? start : part.at
      if (last && isArray) {
        const next = (arrays.get(id(path)) ?? -1) + 1
        arrays.set(id(path), next)
        mark(path, at)
        path.push(next)
      } else {
        const index = arrays.get(id(path))
        mark(path, at)
        if (index !== undefined) path.push(index)
      }
      mark(path, at)
    })
    return path
  }

  let table: KeyPath = []
  while (!s.done) {
    s.skipSpace()
    if (s.done) break
    if (s.peek() === "[") {
      const start = s.i
      const isArray = s.startsWith("[[")
      s.i += isArray ? 2 : 1
      table = resolve(s.key(), isArray, start)
      s.toLineEnd()
      continue
    }
    keyValue(table)
    s.skipBlank()
    s.skipComment()
  }

  const lineStarts = [0]
  for (let i = 0; i < text.length; i++) if (text[i] === "\n") lineStarts.push(i + 1)
  const positionOf = (offset: number): Position => {
    let lo = 0
    let hi = lineStarts.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (lineStarts[mid]! <= offset) lo = mid
      else hi = mid - 1
    }
    return { line: lo + 1, column: offset - lineStarts[lo]! + 1 }
  }
  const locate = (path: KeyPath) => {
    const at = found.get(id(path))
    return at === undefined ? undefined : positionOf(at)
  }
  return {
    locate,
    locateNearest: (path) => {
      for (let n = path.length; n > 0; n--) {
        const at = locate(path.slice(0, n))
        if (at !== undefined) return at
      }
      return undefined
    }
  }
}
