/** Dashboard, agent and failures pages: tables over the API's server-side pages. */
import { useState } from "preact/hooks"
import { type AgentView, api, type Run, type ScheduleView } from "../api.js"
import { duration, href, runDuration, shortRunId } from "../format.js"
import { Beat, ErrorBox, Loading, Name, State, Strip, Time, useData } from "../ui.js"

const nowMicros = () => Date.now() * 1000

export const AgentsTable = ({ agents }: { agents: ReadonlyArray<AgentView> }) =>
  agents.length === 0 ? <p class="muted">No agents yet.</p> : (
    <table>
      <caption class="sr-only">Agents</caption>
      <thead>
        <tr>
          <th scope="col">Agent</th>
          <th scope="col">Status</th>
          <th scope="col">Since / last seen</th>
          <th scope="col">Address</th>
          <th scope="col">Version</th>
          <th scope="col">Schedules</th>
        </tr>
      </thead>
      <tbody>
        {agents.map((a) => (
          <tr key={a.name} data-agent={a.name}>
            <td>
              <a href={href.agent(a.name)}>
                <Name text={a.name} />
              </a>
            </td>
            <td>{a.online ? <span class="badge online">online</span> : <span class="badge offline">offline</span>}</td>
            <td>
              <Time micros={a.online ? a.connectedAt : a.lastSeenAt} />
            </td>
            <td>{a.ip === null ? "—" : <Name text={a.ip} />}</td>
            <td>{a.info === null ? "—" : <Name text={a.info.agentVersion} />}</td>
            <td>{a.schedules}</td>
          </tr>
        ))}
      </tbody>
    </table>
  )

export const RunsTable = (
  { runs, caption, showSchedule = true }: { runs: ReadonlyArray<Run>; caption: string; showSchedule?: boolean }
) =>
  runs.length === 0 ? <p class="muted">None.</p> : (
    <table>
      <caption class="sr-only">{caption}</caption>
      <thead>
        <tr>
          <th scope="col">Run</th>
          {showSchedule && <th scope="col">Agent / schedule</th>}
          <th scope="col">State</th>
          <th scope="col">Trigger</th>
          <th scope="col">Scheduled</th>
          <th scope="col">Duration</th>
          <th scope="col">Exit</th>
        </tr>
      </thead>
      <tbody>
        {runs.map((r) => (
          <tr key={r.runId} data-run={r.runId}>
            <td>
              <a href={href.run(r.runId)} class="mono" title={r.runId}>…{shortRunId(r.runId)}</a>
            </td>
            {showSchedule && (
              <td>
                <a href={href.agent(r.agent)}>
                  <Name text={r.agent} />
                </a>{" "}
                /{" "}
                <a href={href.schedule(r.agent, r.schedule)}>
                  <Name text={r.schedule} />
                </a>
              </td>
            )}
            <td>
              <State state={r.state} />
              {r.state === "running" && r.heartbeat !== undefined && (
                <>
                  {" "}
                  <Beat beat={r.heartbeat} />
                </>
              )}
            </td>
            <td>{r.trigger.replace("_", " ")}</td>
            <td>
              <Time micros={r.scheduledAt} />
            </td>
            <td>{duration(runDuration(r, nowMicros()))}</td>
            <td>{r.exitCode ?? (r.signal === null ? "—" : <Name text={r.signal} />)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  )

export const SchedulesTable = (
  { items, showAgent = true }: { items: ReadonlyArray<ScheduleView>; showAgent?: boolean }
) =>
  items.length === 0 ? <p class="muted">No schedules.</p> : (
    <table>
      <caption class="sr-only">Schedules</caption>
      <thead>
        <tr>
          {showAgent && <th scope="col">Agent</th>}
          <th scope="col">Schedule</th>
          <th scope="col">Calendar</th>
          <th scope="col">Next</th>
          <th scope="col">Last run</th>
          <th scope="col">Recent</th>
        </tr>
      </thead>
      <tbody>
        {items.map((s) => (
          <tr key={`${s.agent}/${s.name}`} data-schedule={`${s.agent}/${s.name}`}>
            {showAgent && (
              <td>
                <a href={href.agent(s.agent)}>
                  <Name text={s.agent} />
                </a>
              </td>
            )}
            <td>
              <a href={href.schedule(s.agent, s.name)}>
                <Name text={s.name} />
              </a>
              {s.paused && <span class="badge paused">paused</span>}
            </td>
            <td class="mono" title={`as written: ${s.onCalendar}`}>
              <Name text={s.calendar} />
            </td>
            <td>
              <Time micros={s.nextAt} />
            </td>
            <td>
              {s.lastRun === null ? <span class="muted">never</span> : (
                <a href={href.run(s.lastRun.runId)}>
                  <State state={s.lastRun.state} /> <Time micros={s.lastRun.scheduledAt} />
                </a>
              )}
            </td>
            <td>
              <Strip states={s.recent} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  )

const PAGE = 50

export const DashboardPage = () => {
  const [search, setSearch] = useState("")
  const [offset, setOffset] = useState(0)
  const dash = useData(() => api.dashboard(search, PAGE), [search], 3000)
  const more = useData(
    () => (offset === 0 ? Promise.resolve(undefined) : api.schedules(search, offset, PAGE)),
    [search, offset],
    offset === 0 ? undefined : 3000
  )
  const d = dash.data
  const page = offset === 0 ? d?.schedules : more.data
  return (
    <main>
      <h1>Dashboard</h1>
      <ErrorBox error={dash.error} />
      {d === undefined ? <Loading /> : (
        <>
          <section aria-labelledby="agents-h">
            <h2 id="agents-h">
              Agents <span class="count">{d.agents.filter((a) => a.online).length} of {d.agents.length} online</span>
            </h2>
            <AgentsTable agents={d.agents} />
          </section>
          <section aria-labelledby="running-h">
            <h2 id="running-h">
              Running now <span class="count">{d.running.length}</span>
            </h2>
            <RunsTable runs={d.running} caption="Running now" />
          </section>
          <section aria-labelledby="failures-h">
            <h2 id="failures-h">
              Failures in the last 24 h <span class="count" data-testid="failure-count">{d.failures.count}</span>
            </h2>
            <RunsTable runs={d.failures.recent} caption="Recent failures" />
            {d.failures.count > d.failures.recent.length && (
              <p>
                <a href={href.failures}>All failures…</a>
              </p>
            )}
          </section>
          <section aria-labelledby="schedules-h">
            <h2 id="schedules-h">
              Schedules <span class="count">{d.schedules.total}</span>
            </h2>
            <label class="search">
              Filter by agent or schedule name{" "}
              <input
                type="search"
                value={search}
                onInput={(e) => {
                  setSearch((e.target as HTMLInputElement).value)
                  setOffset(0)
                }}
              />
            </label>
            <ErrorBox error={more.error} />
            {page === undefined ? <Loading /> : <SchedulesTable items={page.items} />}
            {page !== undefined && (
              <nav class="pager" aria-label="Schedule pages">
                <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
                  Previous
                </button>
                <span>{page.total === 0 ? 0 : offset + 1}–{Math.min(offset + PAGE, page.total)} of {page.total}</span>
                <button type="button" disabled={offset + PAGE >= page.total} onClick={() => setOffset(offset + PAGE)}>
                  Next
                </button>
              </nav>
            )}
          </section>
        </>
      )}
    </main>
  )
}

export const AgentPage = ({ name }: { name: string }) => {
  const { data, error } = useData(() => api.agent(name), [name], 5000)
  return (
    <main>
      <h1>
        Agent <Name text={name} />
      </h1>
      <ErrorBox error={error} />
      {data === undefined ? <Loading /> : (
        <>
          <dl class="facts">
            <dt>Status</dt>
            <dd>
              {data.agent.online
                ? <span class="badge online">online</span>
                : <span class="badge offline">offline</span>}
            </dd>
            <dt>{data.agent.online ? "Connected" : "Last seen"}</dt>
            <dd>
              <Time micros={data.agent.online ? data.agent.connectedAt : data.agent.lastSeenAt} />
            </dd>
            <dt>First seen</dt>
            <dd>
              <Time micros={data.agent.firstSeenAt} />
            </dd>
            <dt>Address</dt>
            <dd>{data.agent.ip === null ? "—" : <Name text={data.agent.ip} />}</dd>
            {data.agent.info !== null && (
              <>
                <dt>Host</dt>
                <dd>
                  <Name text={data.agent.info.hostname} />
                </dd>
                <dt>System</dt>
                <dd>
                  <Name
                    text={`${data.agent.info.osName} ${data.agent.info.osVersion}, kernel ${data.agent.info.kernel}`}
                  />
                </dd>
                <dt>bartoc</dt>
                <dd>
                  <Name text={data.agent.info.agentVersion} />
                </dd>
              </>
            )}
          </dl>
          <section aria-labelledby="agent-schedules-h">
            <h2 id="agent-schedules-h">Schedules</h2>
            <SchedulesTable items={data.schedules} showAgent={false} />
          </section>
          <section aria-labelledby="agent-runs-h">
            <h2 id="agent-runs-h">Recent runs</h2>
            <RunsTable runs={data.runs} caption="Recent runs" />
          </section>
        </>
      )}
    </main>
  )
}

export const FailuresPage = () => {
  const [cursors, setCursors] = useState<Array<string | undefined>>([undefined])
  const cursor = cursors[cursors.length - 1]
  const { data, error } = useData(() => api.failures(cursor), [cursor])
  return (
    <main>
      <h1>Failures</h1>
      <p class="muted">Runs that failed, timed out or were lost in the last 24 h, newest first.</p>
      <ErrorBox error={error} />
      {data === undefined ? <Loading /> : <RunsTable runs={data.runs} caption="Failures" />}
      <nav class="pager" aria-label="Failure pages">
        <button type="button" disabled={cursors.length === 1} onClick={() => setCursors(cursors.slice(0, -1))}>
          Newer
        </button>
        <button
          type="button"
          disabled={data?.nextCursor == null}
          onClick={() => data?.nextCursor != null && setCursors([...cursors, data.nextCursor])}
        >
          Older
        </button>
      </nav>
    </main>
  )
}
