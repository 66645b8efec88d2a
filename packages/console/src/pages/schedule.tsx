/** One schedule: actions, its calendar's next occurrences and its history with durations charted. */
import { useEffect, useRef, useState } from "preact/hooks"
import uPlot from "uplot"
import { visible } from "../ansi.js"
import { api, type Run } from "../api.js"
import { duration, href, localTime, runDuration, stateLabel } from "../format.js"
import { ConfirmButton, ErrorBox, Loading, Name, State, Strip, Time, useData } from "../ui.js"
import { RunsTable } from "./overview.js"

/** Durations (seconds) of finished runs against their start, oldest first; uPlot draws it in a canvas. */
const DurationChart = ({ runs }: { runs: ReadonlyArray<Run> }) => {
  const box = useRef<HTMLDivElement>(null)
  const points = runs
    .filter((r) => r.startedAt !== null && r.finishedAt !== null)
    .map((r) => [r.startedAt! / 1e6, (r.finishedAt! - r.startedAt!) / 1e6] as const)
    .sort((a, b) => a[0] - b[0])
  const key = points.map((p) => `${p[0]}:${p[1]}`).join(",")
  useEffect(() => {
    const el = box.current
    if (el === null || points.length === 0) return
    const style = getComputedStyle(document.documentElement)
    const accent = style.getPropertyValue("--accent").trim() || "#2563eb"
    const text = style.getPropertyValue("--fg").trim() || "#111"
    const plot = new uPlot(
      {
        width: Math.max(300, el.clientWidth),
        height: 220,
        series: [
          { value: (_u, v) => (v === null ? "—" : localTime(v * 1e6)) },
          {
            label: "duration",
            stroke: accent,
            width: 2,
            points: { show: true, size: 5 },
            value: (_u, v) => (v === null ? "—" : duration(v * 1e6))
          }
        ],
        axes: [
          { stroke: text, grid: { stroke: "rgba(128,128,128,0.2)" } },
          {
            stroke: text,
            grid: { stroke: "rgba(128,128,128,0.2)" },
            values: (_u, vals) => vals.map((v) => duration(v * 1e6))
          }
        ],
        scales: { x: { time: true } }
      },
      [points.map((p) => p[0]), points.map((p) => p[1])],
      el
    )
    const onResize = () => plot.setSize({ width: Math.max(300, el.clientWidth), height: 220 })
    window.addEventListener("resize", onResize)
    return () => {
      window.removeEventListener("resize", onResize)
      plot.destroy()
    }
  }, [key])
  if (points.length === 0) return <p class="muted">No finished runs to chart yet.</p>
  const longest = Math.max(...points.map((p) => p[1]))
  return (
    <figure>
      <div
        ref={box}
        class="chart"
        role="img"
        aria-label={`Durations of the last ${points.length} finished runs; longest ${duration(longest * 1e6)}`}
      />
      <figcaption class="muted">Run durations, oldest left ({points.length} runs)</figcaption>
    </figure>
  )
}

export const SchedulePage = ({ agent, name }: { agent: string; name: string }) => {
  const { data, error, reload } = useData(() => api.schedule(agent, name), [agent, name], 3000)
  const [cursors, setCursors] = useState<Array<string | undefined>>([undefined])
  const cursor = cursors[cursors.length - 1]
  const page = useData(() => api.runs({ agent, schedule: name, cursor, limit: 50 }), [agent, name, cursor], 3000)
  const s = data?.schedule
  const history = data?.history ?? []
  return (
    <main>
      <h1>
        Schedule <Name text={name} /> <span class="muted">on</span>{" "}
        <a href={href.agent(agent)}>
          <Name text={agent} />
        </a>
      </h1>
      <ErrorBox error={error} />
      {s === undefined ? <Loading /> : (
        <>
          <div class="toolbar">
            <ConfirmButton
              label="Run now"
              question={`Run ${visible(agent)} / ${visible(name)} now?`}
              confirm="Run now"
              disabled={!s.connected}
              action={async () => {
                const r = await api.runNow(agent, name)
                location.hash = href.run(r.runId)
              }}
            />
            <ConfirmButton
              label={s.paused ? "Resume" : "Pause"}
              question={s.paused
                ? "Resume this schedule? Its next occurrences run again."
                : "Pause this schedule? The agent skips its occurrences until resumed."}
              confirm={s.paused ? "Resume" : "Pause"}
              action={async () => {
                await api.pause(agent, name, !s.paused)
                reload()
              }}
            />
            {s.paused && <span class="badge paused">paused</span>}
            {!s.connected && <span class="muted">agent offline: run now is unavailable</span>}
          </div>
          <dl class="facts">
            <dt>Calendar</dt>
            <dd class="mono">
              <Name text={s.calendar} />
            </dd>
            <dt>As written</dt>
            <dd class="mono">
              <Name text={s.onCalendar} />
            </dd>
            <dt>Zone</dt>
            <dd>{s.zone}</dd>
            <dt>Commands</dt>
            <dd>
              <ol class="cmds">
                {s.cmds.map((c, i) => (
                  <li key={i} class="mono">
                    <Name text={c} />
                  </li>
                ))}
              </ol>
            </dd>
            <dt>Last run</dt>
            <dd>
              {s.lastRun === null ? "never" : (
                <a href={href.run(s.lastRun.runId)}>
                  <State state={s.lastRun.state} /> <Time micros={s.lastRun.scheduledAt} />
                </a>
              )}
            </dd>
            <dt>Recent</dt>
            <dd>
              <Strip states={s.recent} />
            </dd>
          </dl>
          <section aria-labelledby="upcoming-h">
            <h2 id="upcoming-h">Next occurrences</h2>
            {data!.upcoming.length === 0 ?
              <p class="muted">It never fires again.</p> :
              (
                <ol class="upcoming">
                  {data!.upcoming.map((t) => (
                    <li key={t}>
                      <Time micros={t} />
                    </li>
                  ))}
                </ol>
              )}
          </section>
          <section aria-labelledby="history-h">
            <h2 id="history-h">History</h2>
            <DurationChart runs={history} />
            <ErrorBox error={page.error} />
            <RunsTable runs={page.data?.runs ?? []} caption="History" showSchedule={false} />
            <nav class="pager" aria-label="History pages">
              <button type="button" disabled={cursors.length === 1} onClick={() => setCursors(cursors.slice(0, -1))}>
                Newer
              </button>
              <button
                type="button"
                disabled={page.data?.nextCursor == null}
                onClick={() => page.data?.nextCursor != null && setCursors([...cursors, page.data.nextCursor])}
              >
                Older
              </button>
            </nav>
            <p class="muted">
              {history.filter((r) => r.state !== "succeeded").length} of {history.length} recent runs did not succeed;
              {" "}
              longest {duration(Math.max(0, ...history.map((r) => runDuration(r, Date.now() * 1000) ?? 0)))}. States:
              {" "}
              {[...new Set(history.map((r) => stateLabel(r.state)))].join(", ") || "none"}.
            </p>
          </section>
        </>
      )}
    </main>
  )
}
