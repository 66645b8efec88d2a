/**
 * Fault injection for the ledger tests (packages/e2e): with `BARTO_TEST_CRASH_AT=<point>[@<n>]`
 * in its environment, bartoc kills itself with SIGKILL right after the n-th time (default the
 * first) a durable step named `<point>` committed. That is a kill -9 at an exact step of a
 * multi-step write, which a test cannot time from outside. Without the variable, `passed` only
 * checks one constant.
 *
 * The points are the outbox's transactions: `arm` (intents of runs about to start), `watermark`
 * (a transaction that moved a schedule's last run: a catch-up plan or a pause range), and, for
 * every kind of record an append committed, `<Tag>` and `<Tag>:<detail>` (`RunStarted:catch_up`,
 * `RunFinished:interrupted`, `RunMissed:agent_restart`…).
 *
 * Not a config key on purpose: no operator should ever set it, and it stays out of bartoc.toml,
 * its environment overrides and its documentation (the job environment drops every BARTO*
 * variable, so jobs never see it either).
 */
const spec = process.env.BARTO_TEST_CRASH_AT

const parse = (text: string | undefined): { readonly point: string; readonly nth: number } | undefined => {
  if (text === undefined || text === "") return undefined
  const at = text.lastIndexOf("@")
  if (at === -1) return { point: text, nth: 1 }
  const nth = Number(text.slice(at + 1))
  return { point: text.slice(0, at), nth: Number.isSafeInteger(nth) && nth > 0 ? nth : 1 }
}

const target = parse(spec)
let seen = 0

/** Called once per committed step with the names it passed; may not return. */
export const passed = (points: ReadonlyArray<string>): void => {
  if (target === undefined || !points.includes(target.point)) return
  seen++
  if (seen === target.nth) process.kill(process.pid, "SIGKILL")
}

export const enabled = target !== undefined
