/**
 * Everything barto-cli prints, in four parts: `render/Text` (style, colours, cleaning, tables),
 * `render/Time` (RFC 3339 stamps, parsing, durations), `render/Json` (the `--json` shapes) and
 * `render/Rows` (the text of every response). Commands import this module only.
 */
export * from "./render/Beat.js"
export * from "./render/Json.js"
export * from "./render/Rows.js"
export * from "./render/Text.js"
export * from "./render/Time.js"
