/**
 * A budget for one kind of log line that can come in thousands at once (a worker connection per
 * agent in the reconnect storm after a restart: 10,000 lines in a few seconds, each one formatted
 * and written synchronously, were a noticeable part of a hello's CPU, and flood journald).
 *
 * Up to `perPeriod` lines of a period are written as they come; beyond that a line is counted
 * and written only at debug level, and the period's end writes one summary line with the count.
 * A period is whatever lies between two `flush` calls (the session sweep's: at most 1 s).
 */
export class LineBudget {
  private written = 0
  private folded = 0

  constructor(readonly perPeriod: number, private periodStart: number) {}

  /** True: write this line at its own level; false: it is folded into the period's summary. */
  take(): boolean {
    if (this.written < this.perPeriod) {
      this.written++
      return true
    }
    this.folded++
    return false
  }

  /** Ends the period at `now` (ms): the lines it folded (0: no summary to write) and its length. */
  flush(now: number): { readonly folded: number; readonly periodMs: number } {
    const result = { folded: this.folded, periodMs: now - this.periodStart }
    this.written = 0
    this.folded = 0
    this.periodStart = now
    return result
  }
}
