/**
 * A job's heartbeat as `tail` shows it (issue 14). In text a status line on stderr, like the notes
 * `kubectl logs` and `journalctl` print beside a log, so `tail -f > file` keeps only the job's own
 * output; in `--json` a `heartbeat` event of the NDJSON stream (`beatJson`), never a `line`.
 */
import type * as Messages from "@barto/domain/Messages"
import { clean, paint, type Style } from "./Text.js"

/**
 * `-- heartbeat 40/100 degraded: disk slow`; the parts the job did not send are left out. `who`
 * (tails of several schedules): `-- web1/backup heartbeat …`, the line still led by `--`.
 */
export const beatText = (style: Style, beat: Messages.RunHeartbeat, who?: string): string => {
  const head = [beat.progress, beat.status].filter((p): p is string => p !== null && p !== "").map(clean).join(" ")
  const message = beat.message === null || beat.message === "" ? "" : `: ${clean(beat.message)}`
  const text = `heartbeat${head === "" ? "" : ` ${head}`}${message}`
  return `${paint(style, "cyan", "--")} ${who === undefined ? "" : `${who} `}${paint(style, "cyan", text)}`
}
