/**
 * Maintenance: `cleanup` and `retention` delete old runs with everything under them, chunk by
 * chunk; `setPaused`/`paused` keep the operator's paused schedules.
 */
import type { Micros } from "@barto/domain/Messages"
import * as Effect from "effect/Effect"
import type { StoreShape } from "../../Store.js"
import { changes, chunk, DELETE_CHUNK, inList, type Row, storeError, type StoreSql } from "./common.js"
import * as Fence from "./fence.js"

const MICROS_PER_DAY = 86_400_000_000

export type MaintenanceShape = Pick<StoreShape, "cleanup" | "retention" | "setPaused" | "paused">

export const makeMaintenance = (ctx: StoreSql): Effect.Effect<MaintenanceShape> =>
  Effect.sync(() => {
    const { count, exec, ignoreDup, run, sql } = ctx
    // --- cleanup and retention ---------------------------------------------------------------

    // Never a running run. A lost or missed run has no finished_at: it ages by its scheduled_at,
    // a missed range by its last occurrence.
    const DELETABLE = `r.state <> 'running' AND (r.finished_at < ? OR ` +
      `(r.finished_at IS NULL AND COALESCE(r.scheduled_until, r.scheduled_at) < ?))`

    /** Deletes the runs and everything under them, one transaction per chunk of run ids. */
    const deleteRuns = (runIds: ReadonlyArray<string>) =>
      Effect.reduce(chunk(runIds, DELETE_CHUNK), { runs: 0, commands: 0, lines: 0 }, (acc, part) => {
        const list = inList(part)
        // Fence.check: retention runs on the leader; a stale leader's delete is refused (issue 18).
        return sql.withTransaction(Effect.zipRight(
          Fence.check(sql),
          Effect.all({
            lines: exec(`DELETE FROM output_lines WHERE run_id IN ${list.text}`, list.params),
            commands: exec(`DELETE FROM run_commands WHERE run_id IN ${list.text}`, list.params),
            runs: exec(`DELETE FROM runs WHERE run_id IN ${list.text}`, list.params)
          })
        )).pipe(Effect.map((n) => ({
          runs: acc.runs + n.runs,
          commands: acc.commands + n.commands,
          lines: acc.lines + n.lines
        })))
      })

    const deleteBefore = (before: number) =>
      // Chunk by chunk, so neither database holds one huge transaction (on SQLite that would
      // stall ingest for its whole length), until a chunk finds nothing (more) to delete.
      Effect.iterate({ total: { runs: 0, commands: 0, lines: 0 }, more: true }, {
        while: (state) => state.more,
        body: ({ total }) =>
          Effect.flatMap(
            run(`SELECT r.run_id FROM runs r WHERE ${DELETABLE} LIMIT ${DELETE_CHUNK}`, [before, before]),
            (rows) =>
              rows.length === 0
                ? Effect.succeed({ total, more: false })
                : Effect.map(deleteRuns(rows.map((r) => String(r.run_id))), (n) => ({
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
        : deleteBefore(before)).pipe(Effect.mapError(storeError("cleanup")))

    const retention = (
      opts: { readonly maxAgeDays?: number; readonly maxRunsPerSchedule?: number; readonly now: Micros }
    ) =>
      Effect.gen(function*() {
        let runsDeleted = 0
        let linesDeleted = 0
        if (opts.maxAgeDays !== undefined) {
          const n = yield* deleteBefore(opts.now - opts.maxAgeDays * MICROS_PER_DAY)
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
          const n = yield* deleteRuns(rows.map((r) => String(r.run_id)))
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
