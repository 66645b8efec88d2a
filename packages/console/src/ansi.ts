/**
 * Terminal output made safe to show: SGR colour sequences (`ESC [ … m`) become class names on
 * text segments, and every other control character (another escape sequence, a carriage return, a
 * bell, C1 controls) is shown as its visible Unicode "control picture" instead of acting. The
 * result is only ever rendered as text nodes, never as HTML.
 */

export interface Segment {
  readonly text: string
  /** Space-separated class names (`ansi-fg-1 ansi-bold`); empty for plain text. */
  readonly classes: string
}

interface Style {
  fg: string | undefined
  bg: string | undefined
  bold: boolean
  dim: boolean
  italic: boolean
  underline: boolean
  inverse: boolean
}

const plain = (): Style => ({
  fg: undefined,
  bg: undefined,
  bold: false,
  dim: false,
  italic: false,
  underline: false,
  inverse: false
})

const classesOf = (s: Style): string => {
  const out: Array<string> = []
  const fg = s.inverse ? s.bg ?? "bg" : s.fg
  const bg = s.inverse ? s.fg ?? "fg" : s.bg
  if (fg !== undefined) out.push(`ansi-fg-${fg}`)
  if (bg !== undefined) out.push(`ansi-bg-${bg}`)
  if (s.bold) out.push("ansi-bold")
  if (s.dim) out.push("ansi-dim")
  if (s.italic) out.push("ansi-italic")
  if (s.underline) out.push("ansi-underline")
  return out.join(" ")
}

/** C0 and C1 controls (tab excepted) as visible characters: ESC → ␛, CR → ␍, DEL → ␡. */
export const visible = (text: string): string =>
  // eslint-disable-next-line no-control-regex
  text.replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g, (c) => {
    const code = c.charCodeAt(0)
    if (code < 0x20) return String.fromCharCode(0x2400 + code)
    if (code === 0x7f) return "\u2421"
    return "\ufffd"
  })

const applySgr = (style: Style, params: Array<number>) => {
  if (params.length === 0) params = [0]
  for (let i = 0; i < params.length; i++) {
    const p = params[i]!
    if (p === 0) Object.assign(style, plain())
    else if (p === 1) style.bold = true
    else if (p === 2) style.dim = true
    else if (p === 3) style.italic = true
    else if (p === 4) style.underline = true
    else if (p === 7) style.inverse = true
    else if (p === 22) style.bold = style.dim = false
    else if (p === 23) style.italic = false
    else if (p === 24) style.underline = false
    else if (p === 27) style.inverse = false
    else if (p >= 30 && p <= 37) style.fg = String(p - 30)
    else if (p === 39) style.fg = undefined
    else if (p >= 40 && p <= 47) style.bg = String(p - 40)
    else if (p === 49) style.bg = undefined
    else if (p >= 90 && p <= 97) style.fg = String(p - 90 + 8)
    else if (p >= 100 && p <= 107) style.bg = String(p - 100 + 8)
    else if (p === 38 || p === 48) {
      // 256-colour (5;n): the 16 basic colours map to classes; others and 24-bit (2;r;g;b) are
      // dropped (colours would need inline styles, which the page's CSP forbids).
      const mode = params[i + 1]
      if (mode === 5) {
        const n = params[i + 2]
        if (n !== undefined && n < 16) {
          if (p === 38) style.fg = String(n)
          else style.bg = String(n)
        }
        i += 2
      } else if (mode === 2) i += 4
    }
  }
}

// CSI: ESC [ parameter bytes (0x30–0x3F) intermediate bytes (0x20–0x2F) final byte (0x40–0x7E).
// eslint-disable-next-line no-control-regex
const CSI = /\u001b\[([0-?]*)([ -/]*)([@-~])/y

/** Splits one output line into styled segments; adjacent text of one style is merged. */
export const parse = (line: string): Array<Segment> => {
  const out: Array<Segment> = []
  const style = plain()
  let text = ""
  const flush = () => {
    if (text === "") return
    const classes = classesOf(style)
    const last = out[out.length - 1]
    if (last !== undefined && last.classes === classes) out[out.length - 1] = { text: last.text + text, classes }
    else out.push({ text, classes })
    text = ""
  }
  let i = 0
  while (i < line.length) {
    const esc = line.indexOf("\u001b[", i)
    if (esc === -1) {
      text += visible(line.slice(i))
      break
    }
    text += visible(line.slice(i, esc))
    CSI.lastIndex = esc
    const m = CSI.exec(line)
    if (m === null) {
      // A lone or unfinished escape is shown, not acted on.
      text += visible(line.slice(esc, esc + 2))
      i = esc + 2
      continue
    }
    if (m[3] === "m" && m[2] === "" && /^[\d;]*$/.test(m[1]!)) {
      flush()
      applySgr(style, m[1] === "" ? [] : m[1]!.split(";").map((n) => (n === "" ? 0 : Number(n))))
    } else {
      text += visible(m[0])
    }
    i = CSI.lastIndex
  }
  flush()
  return out
}

/** The line without any escape sequence or control character (search, download). */
export const plainText = (line: string): string => parse(line).map((s) => s.text).join("")
