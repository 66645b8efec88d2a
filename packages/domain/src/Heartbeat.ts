/**
 * The heartbeat line protocol (issue 14, README "Heartbeats"): bartoc gives every job
 * `BARTO_HEARTBEAT=fd:3`, the write end of a pipe it reads; a job beats by writing one line to it:
 *
 *     [progress=DONE/TOTAL] [status=WORD] [MESSAGE…]
 *
 * `echo "progress=40/100 status=ok copying tables" >&3` from a shell, or
 * `barto-cli beat --progress 40/100 --status ok copying tables`. Each field is optional; an empty
 * line is a plain "alive". Lines longer than 4 KiB are cut.
 */

export interface Beat {
  readonly progress?: string
  readonly status?: string
  readonly message?: string
}

export const ENV_NAME = "BARTO_HEARTBEAT"
/** The job's end of the pipe. */
export const FD = 3
export const ENV_VALUE = `fd:${FD}`

const PROGRESS = /^\d+(\.\d+)?(\/\d+(\.\d+)?)?$/
const STATUS = /^[A-Za-z0-9_.-]{1,64}$/

/** Why a `--progress` or `--status` cannot be sent, or undefined when it can. */
export const invalid = (beat: Beat): string | undefined =>
  beat.progress !== undefined && !PROGRESS.test(beat.progress)
    ? `--progress: '${beat.progress}' is not DONE or DONE/TOTAL (e.g. 40/100)`
    : beat.status !== undefined && !STATUS.test(beat.status)
    ? `--status: '${beat.status}' is not one word (letters, digits, _ . -)`
    : undefined

/** The line a beat is written as (with its newline). */
export const format = (beat: Beat): string =>
  [
    ...(beat.progress !== undefined ? [`progress=${beat.progress}`] : []),
    ...(beat.status !== undefined ? [`status=${beat.status}`] : []),
    ...(beat.message !== undefined && beat.message !== "" ? [beat.message.replace(/[\r\n]+/g, " ")] : [])
  ].join(" ") + "\n"

/** A line read from the pipe (without its newline): the leading `key=value` fields, then the message. */
export const parse = (line: string): Beat => {
  const words = line.trim().split(/\s+/).filter((w) => w !== "")
  let progress: string | undefined
  let status: string | undefined
  let i = 0
  for (; i < words.length; i++) {
    const w = words[i]!
    if (progress === undefined && w.startsWith("progress=") && PROGRESS.test(w.slice(9))) progress = w.slice(9)
    else if (status === undefined && w.startsWith("status=") && STATUS.test(w.slice(7))) status = w.slice(7)
    else break
  }
  const message = words.slice(i).join(" ").slice(0, 255)
  return {
    ...(progress !== undefined ? { progress } : {}),
    ...(status !== undefined ? { status } : {}),
    ...(message !== "" ? { message } : {})
  }
}
