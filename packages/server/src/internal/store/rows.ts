/**
 * Rows read back from the store's tables, as the domain's row classes.
 */
import type { Micros, RunId, RunState, Trigger } from "@barto/domain/Messages"
import { LineRow, RunRow } from "@barto/domain/Messages"
import { num, numOrNull, type Row, strOrNull } from "./common.js"

export const RUN_COLUMNS = "r.run_id, r.agent, r.schedule, r.run_trigger, r.state, r.scheduled_at, r.started_at, r.finished_at, " +
  "r.exit_code, r.exit_signal, r.reason, r.scheduled_until, r.occurrences"

// A line carries its run's state and exit code (what `list`/`cmd` head each run with), not the
// exit code of the command that printed it: a run whose printing command exited 0 and whose
// silent last command exited 3 is "failed (exit 3)", as `runs` says.
export const LINE_SELECT = `SELECT ol.run_id, r.agent, r.schedule, ol.cmd_uuid, ol.line_seq, ol.stream, ol.ts, ol.data,
  ol.continuation, r.exit_code, r.state
FROM output_lines ol
JOIN runs r ON r.run_id = ol.run_id`

export const toRunRow = (r: Row): RunRow =>
  new RunRow({
    runId: String(r.run_id) as RunId,
    agent: String(r.agent),
    schedule: String(r.schedule),
    trigger: String(r.run_trigger) as Trigger,
    state: String(r.state) as RunState,
    scheduledAt: num(r.scheduled_at) as Micros,
    startedAt: numOrNull(r.started_at) as Micros | null,
    finishedAt: numOrNull(r.finished_at) as Micros | null,
    exitCode: numOrNull(r.exit_code),
    signal: strOrNull(r.exit_signal),
    reason: strOrNull(r.reason),
    scheduledUntil: numOrNull(r.scheduled_until) as Micros | null,
    occurrences: numOrNull(r.occurrences) ?? 1
  }, true)

export const toLineRow = (r: Row): LineRow =>
  new LineRow({
    runId: String(r.run_id) as RunId,
    agent: String(r.agent),
    schedule: String(r.schedule),
    cmdUuid: String(r.cmd_uuid),
    lineSeq: num(r.line_seq),
    stream: String(r.stream) === "stderr" ? "stderr" : "stdout",
    ts: num(r.ts) as Micros,
    data: String(r.data),
    continuation: num(r.continuation) !== 0,
    exitCode: numOrNull(r.exit_code),
    runState: String(r.state) as RunState
  }, true)
