/**
 * Maintenance: `cleanup` and `retention` delete old runs with everything under them, chunk by
 * chunk; `setPaused`/`paused` keep the operator's paused schedules.
 */
import type { Micros } from "@barto/domain/Messages"
import type { SqlError } from "@effect/sql/SqlError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { StoreShape } from "../../Store.js"
import {
  breathe,
  changes,
  chunk,
  DELETE_CHUNK,
  DELETE_LINES,
  inList,
  isTransient,
  type Row,
  storeError,
  type StoreSql
} from "./common.js"
import type { StoreError } from "./errors.js"
import * as Fence from "./fence.js"

const MICROS_PER_DAY = 86_400_000_000
/**
 * Retention rests this many times as long as each delete step took (see `yielding`): while
 * agents' records are arriving, per dialect; while none arrived since the last step, REST_IDLE.
 */
const REST_BUSY = { sqlite: 8, mysql: 3 }
const REST_IDLE = 1

export type MaintenanceShape = Pick<StoreShape, "cleanup" | "retention" | "setPaused" | "paused">

export const makeMaintenance = (ctx: StoreSql): Effect.Effect<MaintenanceShape> =>
  Effect.sync(() => {
    const { count, exec, ignoreDup, ingestActivity, mysql, run, sql } = ctx
    // --- cleanup and retention ---------------------------------------------------------------

    // Never a running run. A lost or missed run has no finished_at: it ages by its scheduled_at,
    // a missed range by its last occurrence.
    const DELETABLE = `r.state <> 'running' AND (r.finished_at < ? OR ` +
      `(r.finished_at IS NULL AND COALESCE(r.scheduled_until, r.scheduled_at) < ?))`

    /**
     * How a delete step gives way after it ran. `cleanup` (an operator waiting for it) only lets
     * the event loop turn. Retention, in the background, also rests a multiple of the time the
     * step took, chosen by whether ingest ran since the previous step (`ingestActivity`):
     * - ingest busy: REST_BUSY. On SQLite ingest shares the one writer and the event loop with
     *   retention, so retention busy ~1/(1 + rest) of the time leaves ingest about that share of
     *   its rate, a little less (the step's pages leave the cache, its WAL frames are
     *   checkpointed): the history bench (1,000,000 lines, load ~5.5) measured 75% at 5×, 82%
     *   at 8×; 92% at 20,000,000 lines. On MariaDB they share the disk and the CPU only: 82% at
     *   2× (1,000,000 lines), 89% at 3× (20,000,000).
     * - ingest idle: REST_IDLE, so a backlog is deleted several times faster when nothing else
     *   writes; a batch that arrives meanwhile waits for one step at most (a few ms), and the
     *   rest after that step is the busy one.
     */
    type Pace = <A, E, R>(step: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
    const eager: Pace = (step) => Effect.zipLeft(step, breathe)
    const restBusy = mysql ? REST_BUSY.mysql : REST_BUSY.sqlite
    /** A pace for one retention pass (it remembers how many batches ingest had done at its last step). */
    const yielding = (): Pace => {
      let seen = ingestActivity.batches
      return (step) =>
        Effect.flatMap(Effect.timed(step), ([took, a]) => {
          const busy = ingestActivity.batches !== seen
          seen = ingestActivity.batches
          const rest = Duration.times(took, busy ? restBusy : REST_IDLE)
          return Effect.as(Duration.toMillis(rest) > 0 ? Effect.sleep(rest) : breathe, a)
        })
    }

    /**
     * A delete transaction again when MariaDB chose it as a deadlock victim (or its lock wait
     * timed out): its range locks meet ingest's inserts into the same index gaps (seen in the
     * history bench). It rolled back, so running it again is safe; ingest retries the same way.
     */
    const transient = <A, R>(transaction: Effect.Effect<A, SqlError | StoreError, R>) =>
      Effect.retry(transaction, {
        times: 5,
        while: (e) => e._tag === "SqlError" && isTransient(e)
      })

    /**
     * The lines of `list`'s runs, at most DELETE_LINES per transaction, yielding to the event
     * loop between transactions: a run's lines are unbounded (a chatty job writes millions), and
     * on SQLite one writer is shared with ingest, so neither the lock nor the event loop is held
     * for more than one bounded batch (issue 18: ingest keeps ≥ 80% of its rate meanwhile). A
     * reader may see a run being deleted with part of its lines; it is going away anyway.
     */
    const deleteLines = (list: { readonly text: string; readonly params: ReadonlyArray<string> }, pace: Pace) => {
      const text = mysql
        ? `DELETE FROM output_lines WHERE run_id IN ${list.text} LIMIT ${DELETE_LINES}`
        : `DELETE FROM output_lines WHERE rowid IN
             (SELECT rowid FROM output_lines WHERE run_id IN ${list.text} LIMIT ${DELETE_LINES})`
      return Effect.iterate({ lines: 0, more: true }, {
        while: (state) => state.more,
        body: ({ lines }) =>
          pace(transient(sql.withTransaction(Effect.zipRight(Fence.check(sql), exec(text, list.params))))).pipe(
            Effect.map((n) => ({ lines: lines + n, more: n >= DELETE_LINES }))
          )
      }).pipe(Effect.map((state) => state.lines))
    }

    /** Deletes the runs and everything under them, chunk by chunk of run ids (lines in bounded batches first). */
    const deleteRuns = (runIds: ReadonlyArray<string>, pace: Pace) =>
      Effect.reduce(chunk(runIds, DELETE_CHUNK), { runs: 0, commands: 0, lines: 0 }, (acc, part) => {
        const list = inList(part)
        // Fence.check: retention runs on the leader; a stale leader's delete is refused (issue 18).
        return Effect.flatMap(deleteLines(list, pace), (lines) =>
          pace(transient(sql.withTransaction(Effect.zipRight(
            Fence.check(sql),
            Effect.all({
              // Lines a run received after its batches above (a late record) go with it.
              lines: exec(`DELETE FROM output_lines WHERE run_id IN ${list.text}`, list.params),
              commands: exec(`DELETE FROM run_commands WHERE run_id IN ${list.text}`, list.params),
              runs: exec(`DELETE FROM runs WHERE run_id IN ${list.text}`, list.params)
            })
          )))).pipe(
            Effect.map((n) => ({
              runs: acc.runs + n.runs,
              commands: acc.commands + n.commands,
              lines: acc.lines + lines + n.lines
            }))
          ))
      })

    // The runs DELETABLE selects, each branch along its own index (one OR over both would scan
    // `runs`): finished ones by finished_at, the rest (missed, lost: no finished_at) by
    // scheduled_at, which is never after their COALESCE(scheduled_until, scheduled_at).
    const deletableChunk = (before: number) =>
      run(
        `SELECT * FROM (SELECT r.run_id FROM runs r WHERE r.finished_at < ? AND r.state <> 'running' LIMIT ${DELETE_CHUNK}) a
         UNION ALL
         SELECT * FROM (SELECT r.run_id FROM runs r WHERE r.scheduled_at < ? AND r.finished_at IS NULL
           AND r.state <> 'running' AND COALESCE(r.scheduled_until, r.scheduled_at) < ? LIMIT ${DELETE_CHUNK}) b`,
        [before, before, before]
      )

    const deleteBefore = (before: number, pace: Pace) =>
      // Chunk by chunk, so neither database holds one huge transaction (on SQLite that would
      // stall ingest for its whole length), until a chunk finds nothing (more) to delete.
      Effect.iterate({ total: { runs: 0, commands: 0, lines: 0 }, more: true }, {
        while: (state) => state.more,
        body: ({ total }) =>
          Effect.flatMap(
            pace(deletableChunk(before)),
            (rows) =>
              rows.length === 0
                ? Effect.succeed({ total, more: false })
                : Effect.map(deleteRuns(rows.map((r) => String(r.run_id)), pace), (n) => ({
                  total: {
                    runs: total.runs + n.runs,
                    commands: total.commands + n.commands,
                    lines: total.lines + n.lines
                  },
                  more: n.runs > 0
                }))
          )
      }).pipe(Effect.map((state) => state.total))

    const cleanup = (before: Micros, dryRun: boolean) =>
      (dryRun
        ? Effect.all({
          runs: count(`SELECT COUNT(*) AS n FROM runs r WHERE ${DELETABLE}`, [before, before]),
          commands: count(
            `SELECT COUNT(*) AS n FROM run_commands WHERE run_id IN (SELECT r.run_id FROM runs r WHERE ${DELETABLE})`,
            [before, before]
          ),
          lines: count(
            `SELECT COUNT(*) AS n FROM output_lines WHERE run_id IN (SELECT r.run_id FROM runs r WHERE ${DELETABLE})`,
            [before, before]
          )
        })
        : deleteBefore(before, eager)).pipe(Effect.mapError(storeError("cleanup")))

    const retention = (
      opts: { readonly maxAgeDays?: number; readonly maxRunsPerSchedule?: number; readonly now: Micros }
    ) =>
      Effect.gen(function*() {
        const pace = yielding()
        let runsDeleted = 0
        let linesDeleted = 0
        if (opts.maxAgeDays !== undefined) {
          const n = yield* deleteBefore(opts.now - opts.maxAgeDays * MICROS_PER_DAY, pace)
          runsDeleted += n.runs
          linesDeleted += n.lines
        }
        if (opts.maxRunsPerSchedule !== undefined) {
          const keep = Math.max(0, Math.floor(opts.maxRunsPerSchedule))
          const rows = yield* run(
            `SELECT run_id FROM (
               SELECT run_id, state,
                 ROW_NUMBER() OVER (PARTITION BY agent, schedule ORDER BY scheduled_at DESC, run_id DESC) AS rn
               FROM runs
             ) ranked
             WHERE ranked.rn > ? AND ranked.state <> 'running'`,
            [keep]
          )
          const n = yield* deleteRuns(rows.map((r) => String(r.run_id)), pace)
          runsDeleted += n.runs
          linesDeleted += n.lines
        }
        return { runs: runsDeleted, lines: linesDeleted }
      }).pipe(Effect.mapError(storeError("retention")))

    // --- pause -----------------------------------------------------------------------------------

    const setPaused = (agent: string, schedule: string, paused: boolean) =>
      (paused
        ? changes(
          sql`INSERT INTO paused_schedules (agent, schedule) VALUES (${agent}, ${schedule})
            ${sql.literal(ignoreDup("schedule", "agent, schedule"))}`
        )
        : changes(sql`DELETE FROM paused_schedules WHERE agent = ${agent} AND schedule = ${schedule}`)).pipe(
          Effect.asVoid,
          Effect.mapError(storeError("setPaused"))
        )

    const paused = () =>
      sql<Row>`SELECT agent, schedule FROM paused_schedules ORDER BY agent, schedule`.pipe(
        Effect.map((rows) => rows.map((r) => ({ agent: String(r.agent), schedule: String(r.schedule) }))),
        Effect.mapError(storeError("paused"))
      )

    return { cleanup, retention, setPaused, paused } satisfies MaintenanceShape
  })
