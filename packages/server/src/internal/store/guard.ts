/**
 * The first line of defence of `barto-cli query` (D7): a pure lexical check that a statement is a
 * single read-only statement. Behind it the database itself: on MariaDB a least-privilege account
 * (SELECT on barto's tables only, no FILE: see SECURITY.md) inside a read-only transaction, on
 * SQLite a read-only connection. So this check aims at clear reasons for the common mistakes and
 * at the known ways to smuggle a write or a side effect past a keyword filter: statements after
 * `;`, `WITH … DELETE`, `SELECT … INTO`, locking reads, MariaDB executable comments, and
 * side-effecting built-ins called by a quoted name (`` `get_lock`() ``).
 *
 * The tokenizer follows the servers' own rules where they differ from a naive word split
 * (MariaDB `sql/sql_lex.cc`, SQLite `tokenize.c`), and where it cannot follow them it splits
 * more, never less: an extra split can only make it refuse a strange but harmless statement,
 * while a missed split hides a keyword. In particular a number ends where the server ends it:
 * `1e0LOCK` is the number `1e0` then `LOCK`, `1.5INTO` is `1.5` then `INTO`.
 */
import * as Either from "effect/Either"

export type GuardDialect = "mysql" | "sqlite"

/**
 * `end`: offset just after the token in the original text. `quoted` is a string or a quoted
 * identifier, with its content upper-cased (a quoted name followed by `(` is a function call).
 */
type Token =
  | { readonly kind: "word"; readonly upper: string; readonly end: number }
  | { readonly kind: "punct"; readonly text: string; readonly end: number }
  | { readonly kind: "quoted"; readonly upper: string; readonly end: number }
  | { readonly kind: "number"; readonly end: number }

const wordChar = /[\p{L}\p{N}_$]/u
const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9"
/** MariaDB starts a `--` comment only before a space or a control character (`my_isspace`/`my_iscntrl`). */
const isSpaceOrControl = (c: string | undefined) => {
  if (c === undefined) return true
  const code = c.charCodeAt(0)
  return code <= 0x20 || code === 0x7f
}

const lex = (text: string, dialect: GuardDialect): Either.Either<Array<Token>, string> => {
  const tokens: Array<Token> = []
  const n = text.length
  let i = 0
  // Quoted text: `close` ends it, a doubled `close` escapes it, and MariaDB also honours
  // backslash escapes inside '…' and "…" (not inside `…`). Returns the content, or undefined
  // when the text ends first.
  const readQuoted = (close: string, backslash: boolean): string | undefined => {
    i++
    let content = ""
    while (i < n) {
      const c = text[i]
      if (backslash && c === "\\") {
        content += text[i + 1] ?? ""
        i += 2
        continue
      }
      if (c === close) {
        if (text[i + 1] === close) {
          content += close
          i += 2
          continue
        }
        i++
        return content
      }
      content += c
      i++
    }
    return undefined
  }
  const quoted = (content: string) => tokens.push({ kind: "quoted", upper: content.trim().toUpperCase(), end: i })
  while (i < n) {
    const c = text[i]
    if (/\s/.test(c)) {
      i++
      continue
    }
    if (c === "-" && text[i + 1] === "-" && (dialect === "sqlite" || isSpaceOrControl(text[i + 2]))) {
      // Otherwise (MariaDB) `--1` is minus minus one.
      while (i < n && text[i] !== "\n") i++
      continue
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
      const content = readQuoted(c, dialect === "mysql")
      if (content === undefined) return Either.left("unterminated string literal")
      quoted(content)
      continue
    }
    if (c === "`") {
      const content = readQuoted("`", false)
      if (content === undefined) return Either.left("unterminated quoted identifier")
      quoted(content)
      continue
    }
    if (c === "[" && dialect === "sqlite") {
      const end = text.indexOf("]", i + 1)
      if (end < 0) return Either.left("unterminated [identifier]")
      const content = text.slice(i + 1, end)
      i = end + 1
      quoted(content)
      continue
    }
    if (isDigit(c) || (c === "." && isDigit(text[i + 1]))) {
      // digits [. digits] [e [+-] digits]; whatever follows starts a new token.
      while (isDigit(text[i])) i++
      if (text[i] === "." && text[i + 1] !== ".") {
        i++
        while (isDigit(text[i])) i++
      }
      if (text[i] === "e" || text[i] === "E") {
        const sign = text[i + 1] === "+" || text[i + 1] === "-" ? 1 : 0
        if (isDigit(text[i + 1 + sign])) {
          i += 1 + sign
          while (isDigit(text[i])) i++
        }
      }
      tokens.push({ kind: "number", end: i })
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
  LOAD_EXTENSION: "LOAD_EXTENSION loads code into the database",
  SYS_EXEC: "SYS_EXEC runs programs on the database host",
  SYS_EVAL: "SYS_EVAL runs programs on the database host",
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
      const next = body[k + 1]
      // A quoted name is never a keyword, but MariaDB resolves `` `load_file`(…) `` to the
      // built-in function all the same.
      const called = t.kind === "quoted" && next !== undefined && isPunct(next, "(")
      if (t.kind !== "word" && !called) continue
      const upper = t.kind === "word" || t.kind === "quoted" ? t.upper : ""
      const reason = forbidden[upper]
      if (reason !== undefined) return Either.left(`not a read-only statement: ${reason}`)
      if (t.kind !== "word") continue
      if (t.upper === "FOR" && next?.kind === "word" && next.upper === "SHARE") {
        return Either.left("not a read-only statement: locking reads (FOR SHARE) are not allowed")
      }
      if (t.upper === "NEXT" && next?.kind === "word" && next.upper === "VALUE") {
        return Either.left("not a read-only statement: NEXT VALUE FOR advances a sequence")
      }
    }
    // What runs is exactly what was checked, minus trailing `;` and comments.
    return Either.right(text.slice(0, body[body.length - 1].end))
  })

const isPunct = (t: Token, text: string) => t.kind === "punct" && t.text === text
