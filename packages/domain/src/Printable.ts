/**
 * Text that came from a peer (agent names, job output, run ids, error messages, query cells) is
 * untrusted: written raw to a terminal or a log it could move the cursor, rewrite earlier lines,
 * set the window title, forge log lines (CR, LF) or reorder what a reader sees (bidi overrides,
 * the "Trojan Source" trick). Every program prints such text through the functions below.
 *
 * Unsafe: C0 controls, DEL, C1 controls (U+0080–U+009F; U+009B is a one-character CSI and U+009D
 * an OSC on terminals that honour 8-bit controls), the bidi embedding, override and isolate
 * controls (U+202A–U+202E, U+2066–U+2069) and the invisible direction marks (U+200E, U+200F,
 * U+061C), and the Unicode line and paragraph separators (U+2028, U+2029).
 */

// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
const UNSAFE_EXCEPT_TAB_LF =
  // eslint-disable-next-line no-control-regex
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
/** What `JSON.stringify` leaves raw although a terminal would act on it (it escapes C0 itself). */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

const SHORT: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" }

const visible = (c: string): string => {
  const short = SHORT[c]
  if (short !== undefined) return short
  const code = c.charCodeAt(0)
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`
}

/**
 * Every unsafe character written as a visible escape (`\x1b`, `\u202e`, `\n`), so that the text
 * stays on one line and shows what was sent. For log lines and one-line messages.
 */
export const escapeControls = (text: string): string => text.replace(UNSAFE, visible)

/** As `escapeControls`, but tabs and newlines stay (multi-line messages printed to a terminal). */
export const escapeControlsKeepLines = (text: string): string => text.replace(UNSAFE_EXCEPT_TAB_LF, visible)

/** Every unsafe character removed (a data value shown in a table, where an escape would mislead). */
export const stripControls = (text: string): string => text.replace(UNSAFE, "")

/**
 * JSON text made safe for a terminal: DEL, C1, bidi controls and U+2028/U+2029 as `\uXXXX`
 * escapes. The result is the same JSON value (JSON allows any character to be escaped).
 */
export const escapeJson = (json: string): string =>
  json.replace(UNSAFE_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)
