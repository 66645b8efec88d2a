/**
 * The first line of defence of `barto-cli query` (D7): a pure lexical check that a statement is a
 * single read-only statement. The second line is the database itself (a read-only transaction on
 * MariaDB, a read-only connection on SQLite), so this check aims at clear reasons for the common
 * mistakes and at the known ways to smuggle a write past a keyword filter: statements after `;`,
 * `WITH … DELETE`, `SELECT … INTO OUTFILE`, locking reads, MariaDB executable comments.
 */
import * as Either from "effect/Either"

export type GuardDialect = "mysql" | "sqlite"

/** `end`: offset just after the token in the original text. */
type Token =
  | { readonly kind: "word"; readonly upper: string; readonly end: number }
  | { readonly kind: "punct"; readonly text: string; readonly end: number }
  | { readonly kind: "literal"; readonly end: number }

const wordChar = /[\p{L}\p{N}_$]/u

const lex = (text: string, dialect: GuardDialect): Either.Either<Array<Token>, string> => {
  const tokens: Array<Token> = []
  const n = text.length
  let i = 0
  // Quoted text: `close` ends it, a doubled `close` escapes it, and MariaDB also honours
  // backslash escapes inside '…' and "…" (not inside `…`).
  const skipQuoted = (close: string, backslash: boolean): boolean => {
    i++
    while (i < n) {
      const c = text[i]
      if (backslash && c === "\\") {
        i += 2
        continue
      }
      if (c === close) {
        if (text[i + 1] === close) {
          i += 2
          continue
        }
        i++
        return true
      }
      i++
    }
    return false
  }
  while (i < n) {
    const c = text[i]
    if (/\s/.test(c)) {
      i++
      continue
    }
    if (c === "-" && text[i + 1] === "-") {
      // MariaDB wants whitespace (or the end) after `--`; otherwise `--1` is minus minus one.
      const after = text[i + 2]
      if (dialect === "sqlite" || after === undefined || /\s/.test(after)) {
        while (i < n && text[i] !== "\n") i++
        continue
      }
    }
    if (c === "#" && dialect === "mysql") {
      while (i < n && text[i] !== "\n") i++
      continue
    }
    if (c === "/" && text[i + 1] === "*") {
      if (dialect === "mysql" && (text[i + 2] === "!" || text.startsWith("M!", i + 2))) {
        return Either.left("executable comments (/*! … */) are not allowed")
      }
      const end = text.indexOf("*/", i + 2)
      if (end < 0) return Either.left("unterminated /* comment")
      i = end + 2
      continue
    }
    if (c === "'" || c === "\"") {
      if (!skipQuoted(c, dialect === "mysql")) return Either.left("unterminated string literal")
      tokens.push({ kind: "literal", end: i })
      continue
    }
    if (c === "`") {
      if (!skipQuoted("`", false)) return Either.left("unterminated quoted identifier")
      tokens.push({ kind: "literal", end: i })
      continue
    }
    if (c === "[" && dialect === "sqlite") {
      const end = text.indexOf("]", i + 1)
      if (end < 0) return Either.left("unterminated [identifier]")
      i = end + 1
      tokens.push({ kind: "literal", end: i })
      continue
    }
    if (wordChar.test(c)) {
      const start = i
      while (i < n && wordChar.test(text[i])) i++
      tokens.push({ kind: "word", upper: text.slice(start, i).toUpperCase(), end: i })
      continue
    }
    i++
    tokens.push({ kind: "punct", text: c, end: i })
  }
  return Either.right(tokens)
}

const allowedFirst = new Set(["SELECT", "WITH", "SHOW", "EXPLAIN"])

/** Words that have no business in a read-only statement, with the reason given back. */
const forbidden: Record<string, string> = {
  INSERT: "INSERT writes data",
  UPDATE: "UPDATE writes data (locking reads with FOR UPDATE are not allowed either)",
  DELETE: "DELETE writes data",
  MERGE: "MERGE writes data",
  UPSERT: "UPSERT writes data",
  INTO: "SELECT … INTO (OUTFILE, DUMPFILE, variables) and INSERT/REPLACE INTO are not allowed",
  OUTFILE: "INTO OUTFILE writes files",
  DUMPFILE: "INTO DUMPFILE writes files",
  CREATE: "CREATE changes the schema",
  DROP: "DROP changes the schema",
  ALTER: "ALTER changes the schema",
  TRUNCATE: "TRUNCATE deletes data",
  RENAME: "RENAME changes the schema",
  GRANT: "GRANT changes privileges",
  REVOKE: "REVOKE changes privileges",
  LOCK: "locking reads and LOCK TABLES are not allowed",
  UNLOCK: "UNLOCK is not allowed",
  CALL: "CALL may run writes inside a procedure",
  HANDLER: "HANDLER is not allowed",
  LOAD: "LOAD reads files into tables",
  LOAD_FILE: "LOAD_FILE reads server files",
  ANALYZE: "ANALYZE executes the statement or writes statistics",
  OPTIMIZE: "OPTIMIZE rewrites tables",
  PROCEDURE: "SELECT … PROCEDURE is not allowed",
  ATTACH: "ATTACH opens another database",
  DETACH: "DETACH is not allowed",
  PRAGMA: "PRAGMA statements may change settings",
  VACUUM: "VACUUM rewrites the database",
  REINDEX: "REINDEX rewrites indexes",
  GET_LOCK: "GET_LOCK takes a server-wide lock",
  RELEASE_LOCK: "RELEASE_LOCK is not allowed",
  RELEASE_ALL_LOCKS: "RELEASE_ALL_LOCKS is not allowed",
  NEXTVAL: "NEXTVAL advances a sequence",
  SETVAL: "SETVAL changes a sequence"
}

/**
 * `Right(text)` when `text` is one read-only statement (a trailing `;` is allowed; the text is
 * returned without it), `Left(reason)` otherwise.
 */
export const checkReadOnly = (text: string, dialect: GuardDialect): Either.Either<string, string> =>
  Either.flatMap(lex(text, dialect), (tokens): Either.Either<string, string> => {
    let end = tokens.length
    while (end > 0 && isPunct(tokens[end - 1], ";")) end--
    const body = tokens.slice(0, end)
    if (body.length === 0) return Either.left("empty statement")
    if (body.some((t) => isPunct(t, ";"))) {
      return Either.left("only one statement is allowed (found text after ';')")
    }
    const first = body.find((t) => !isPunct(t, "("))
    if (first === undefined || first.kind !== "word" || !allowedFirst.has(first.upper)) {
      const shown = first?.kind === "word" ? first.upper : "this statement"
      return Either.left(`${shown} is not allowed: query runs only SELECT, WITH, SHOW or EXPLAIN statements`)
    }
    if (first.upper === "SHOW" && dialect === "sqlite") {
      return Either.left("SHOW is MariaDB syntax; on SQLite select from sqlite_schema or pragma_table_info('runs')")
    }
    for (let k = 0; k < body.length; k++) {
      const t = body[k]
      if (t.kind !== "word") continue
      const reason = forbidden[t.upper]
      if (reason !== undefined) return Either.left(`not a read-only statement: ${reason}`)
      if (t.upper === "FOR") {
        const next = body[k + 1]
        if (next?.kind === "word" && next.upper === "SHARE") {
          return Either.left("not a read-only statement: locking reads (FOR SHARE) are not allowed")
        }
      }
    }
    // What runs is exactly what was checked, minus trailing `;` and comments.
    return Either.right(text.slice(0, body[body.length - 1].end))
  })

const isPunct = (t: Token, text: string) => t.kind === "punct" && t.text === text
