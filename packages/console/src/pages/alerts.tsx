/**
 * Alerts (issue 14): the open incidents, the newest events bartos derived and the newest
 * notification deliveries with their state, from `GET /v1/api/alerts` (what `barto-cli alerts`
 * shows, plus the events). Refreshes itself like the dashboard.
 */
import { visible } from "../ansi.js"
import { type AlertsView, api } from "../api.js"
import { href, shortRunId } from "../format.js"
import { ErrorBox, Loading, Name, Time, useData } from "../ui.js"

/** Rows per list: the API's `limit` applies to events and deliveries alike. */
const LIMIT = 50

/**
 * The kinds that close an incident (the domain's BAD_KINDS is not imported: it pulls effect/Schema
 * into the bundle). Every other kind is a bad one, `test` (notify test) aside; a kind added to
 * bartos later shows as bad until it is listed here, which errs on the side of attention.
 */
const GOOD_KINDS = ["recovered", "agent_up"]

const Kind = ({ kind }: { kind: string }) => (
  <span
    class={`kind ${GOOD_KINDS.includes(kind) ? "kind-good" : kind === "test" ? "" : "kind-bad"}`}
    data-kind={kind}
  >
    {visible(kind).replace(/_/g, " ")}
  </span>
)

/** Agent / schedule, each linked; an agent's own events (agent_down) have no schedule. */
const Subject = ({ agent, schedule }: { agent: string | null; schedule: string | null }) =>
  agent === null ? <span class="muted">—</span> : (
    <>
      <a href={href.agent(agent)}>
        <Name text={agent} />
      </a>
      {schedule === null ? <span class="muted">{" "}(agent)</span> : (
        <>
          {" "}
          /{" "}
          <a href={href.schedule(agent, schedule)}>
            <Name text={schedule} />
          </a>
        </>
      )}
    </>
  )

const IncidentsTable = ({ incidents }: { incidents: AlertsView["incidents"] }) =>
  incidents.length === 0
    ? <p class="muted" data-testid="no-incidents">No open incidents: every schedule and agent is fine.</p>
    : (
      <table>
        <caption class="sr-only">Open incidents</caption>
        <thead>
          <tr>
            <th scope="col">Agent / schedule</th>
            <th scope="col">Kind</th>
            <th scope="col">Since</th>
            <th scope="col">Bad events</th>
            <th scope="col">Last notification</th>
            <th scope="col">Reminders</th>
          </tr>
        </thead>
        <tbody>
          {incidents.map((i) => (
            <tr key={i.incidentId} data-incident={i.incidentId}>
              <td>
                <Subject agent={i.agent} schedule={i.schedule} />
                <span class="badge open">open</span>
              </td>
              <td>
                <Kind kind={i.firstKind} />
              </td>
              <td>
                <Time micros={i.openedAt} />
              </td>
              <td>{i.badEvents}</td>
              <td>
                {i.lastNoticeAt === null
                  ? <span class="muted">not notified</span>
                  : <Time micros={i.lastNoticeAt} />}
              </td>
              <td>{i.reminders}</td>
            </tr>
          ))}
        </tbody>
      </table>
    )

const EventsTable = ({ events }: { events: AlertsView["events"] }) =>
  events.length === 0 ? <p class="muted" data-testid="no-events">No events yet.</p> : (
    <table>
      <caption class="sr-only">Recent events</caption>
      <thead>
        <tr>
          <th scope="col">At</th>
          <th scope="col">Kind</th>
          <th scope="col">Agent / schedule</th>
          <th scope="col">Run</th>
          <th scope="col">Detail</th>
        </tr>
      </thead>
      <tbody>
        {events.map((e) => (
          <tr key={e.eventId} data-event={e.eventId}>
            <td>
              <Time micros={e.at} />
            </td>
            <td>
              <Kind kind={e.kind} />
            </td>
            <td>
              <Subject agent={e.agent} schedule={e.schedule} />
            </td>
            <td>
              {e.runId === null
                ? <span class="muted">—</span>
                : <a href={href.run(e.runId)} class="mono" title={e.runId}>…{shortRunId(e.runId)}</a>}
            </td>
            <td>{e.summary === "" ? <span class="muted">—</span> : <Name text={e.summary} />}</td>
          </tr>
        ))}
      </tbody>
    </table>
  )

const DeliveriesTable = ({ deliveries }: { deliveries: AlertsView["deliveries"] }) =>
  deliveries.length === 0
    ? <p class="muted" data-testid="no-deliveries">No notifications sent yet.</p>
    : (
      <table>
        <caption class="sr-only">Recent deliveries</caption>
        <thead>
          <tr>
            <th scope="col">Queued</th>
            <th scope="col">Channel</th>
            <th scope="col">Event</th>
            <th scope="col">Agent / schedule</th>
            <th scope="col">Status</th>
            <th scope="col">Attempts</th>
            <th scope="col">Last change</th>
            <th scope="col">Error</th>
          </tr>
        </thead>
        <tbody>
          {deliveries.map((d) => (
            <tr key={d.deliveryId} data-delivery={d.deliveryId} data-channel={d.channel}>
              <td>
                <Time micros={d.createdAt} />
              </td>
              <td class="mono">
                <Name text={d.channel} />
              </td>
              <td>
                <Kind kind={d.kind} />
              </td>
              <td>
                <Subject agent={d.agent} schedule={d.schedule} />
              </td>
              <td>
                <span class={`delivery delivery-${d.state}`}>{d.state}</span>
              </td>
              <td>{d.attempts}</td>
              <td>
                <Time micros={d.updatedAt} />
              </td>
              <td class="mono">{d.lastError === null ? <span class="muted">—</span> : <Name text={d.lastError} />}</td>
            </tr>
          ))}
        </tbody>
      </table>
    )

export const AlertsPage = () => {
  const { data, error } = useData(() => api.alerts(LIMIT), [], 3000)
  return (
    <main>
      <h1>Alerts</h1>
      <p class="muted">
        An incident opens on a schedule's (or agent's) first bad event and closes on recovery; it notifies once, plus
        reminders. Configured with <code>alert</code> and <code>[notify.NAME]</code> in bartos.toml.
      </p>
      <ErrorBox error={error} />
      {data === undefined ? <Loading /> : (
        <>
          <section aria-labelledby="incidents-h">
            <h2 id="incidents-h">
              Open incidents <span class="count" data-testid="incident-count">{data.incidents.length}</span>
            </h2>
            <IncidentsTable incidents={data.incidents} />
          </section>
          <section aria-labelledby="events-h">
            <h2 id="events-h">
              Recent events <span class="count">newest {LIMIT}</span>
            </h2>
            <EventsTable events={data.events} />
          </section>
          <section aria-labelledby="deliveries-h">
            <h2 id="deliveries-h">
              Recent notifications <span class="count">newest {LIMIT}</span>
            </h2>
            <DeliveriesTable deliveries={data.deliveries} />
          </section>
        </>
      )}
    </main>
  )
}
