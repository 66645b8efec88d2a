/** One run: its facts and commands, and its output, live while it runs (Server-Sent Events). */
import { useEffect, useMemo, useRef, useState } from "preact/hooks"
import { parse, plainText } from "../ansi.js"
import { api, ApiError, type Heartbeat, type Line, type RunDetail } from "../api.js"
import { duration, href, runDuration } from "../format.js"
import { Beat, ConfirmButton, ErrorBox, Loading, Name, State, Time } from "../ui.js"

/** Lines kept on the page; older ones are dropped from view (the download still has them all). */
const MAX_SHOWN = 20_000

const OutputLine = ({ line }: { line: Line }) => (
  <div class={`line ${line.stream}`} data-seq={line.lineSeq}>
    <span class="seq" aria-hidden="true">{line.lineSeq + 1}</span>
    <span class="stream-mark" title={line.stream}>{line.stream === "stderr" ? "err" : ""}</span>
    <span class="text">
      {line.stream === "stderr" && <span class="sr-only">stderr:</span>}
      {parse(line.data).map((s, i) => (s.classes === "" ? s.text : <span key={i} class={s.classes}>{s.text}</span>))}
      {line.continuation && <span class="muted" title="continues the previous part of a long line">↩</span>}
    </span>
  </div>
)

/** Every stored line, page by page, as one text file (raw, escapes included). */
const download = async (runId: string) => {
  const parts: Array<string> = []
  let after = -1
  for (;;) {
    const page = await api.output(runId, after)
    for (const l of page.lines) parts.push(l.continuation ? l.data : `${parts.length === 0 ? "" : "\n"}${l.data}`)
    if (!page.more) break
    after = page.nextAfter
  }
  const url = URL.createObjectURL(new Blob([parts.join(""), "\n"], { type: "text/plain;charset=utf-8" }))
  const a = document.createElement("a")
  a.href = url
  a.download = `barto-run-${runId}.txt`
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 10_000)
}

export const RunPage = ({ id }: { id: string }) => {
  const [detail, setDetail] = useState<RunDetail | undefined>(undefined)
  const [error, setError] = useState<unknown>(undefined)
  const [waiting, setWaiting] = useState(false)
  const [lines, setLines] = useState<Array<Line>>([])
  const [live, setLive] = useState<"connecting" | "live" | "ended" | "reconnecting">("connecting")
  const [search, setSearch] = useState("")
  const [follow, setFollow] = useState(true)
  /** The newest heartbeat from the live stream (the run row has the one of when it was read). */
  const [liveBeat, setLiveBeat] = useState<Heartbeat | undefined>(undefined)
  const bottom = useRef<HTMLDivElement>(null)

  // The run may not exist yet (just started with "run now"): wait for the agent to report it.
  useEffect(() => {
    let alive = true
    let timer: ReturnType<typeof setTimeout> | undefined
    const load = async () => {
      try {
        const d = await api.run(id)
        if (!alive) return
        setDetail(d)
        setWaiting(false)
      } catch (e) {
        if (!alive) return
        if (e instanceof ApiError && e.status === 404) {
          setWaiting(true)
          timer = setTimeout(load, 500)
        } else setError(e)
      }
    }
    setDetail(undefined)
    setLines([])
    setLiveBeat(undefined)
    load()
    return () => {
      alive = false
      if (timer !== undefined) clearTimeout(timer)
    }
  }, [id])

  const known = detail !== undefined
  useEffect(() => {
    if (!known) return
    const source = new EventSource(api.followUrl(id, -1))
    source.addEventListener("open", () => setLive("live"))
    source.addEventListener("lines", (e) => {
      const data = JSON.parse((e as MessageEvent<string>).data) as { lines: Array<Line> }
      if (data.lines.length === 0) return
      setLines((old) => {
        const last = old.length > 0 ? old[old.length - 1]!.lineSeq : -1
        const fresh = data.lines.filter((l) => l.lineSeq > last)
        const all = old.concat(fresh)
        return all.length > MAX_SHOWN ? all.slice(all.length - MAX_SHOWN) : all
      })
    })
    source.addEventListener("heartbeat", (e) => {
      setLiveBeat(JSON.parse((e as MessageEvent<string>).data) as Heartbeat)
    })
    source.addEventListener("done", () => {
      source.close()
      setLive("ended")
      api.run(id).then(setDetail, setError)
    })
    source.addEventListener("error", () => {
      // EventSource reconnects by itself and resumes after the last event id it saw.
      if (source.readyState !== EventSource.CLOSED) setLive("reconnecting")
    })
    return () => source.close()
  }, [id, known])

  useEffect(() => {
    if (follow && live === "live") bottom.current?.scrollIntoView({ block: "end" })
  }, [lines.length, follow, live])

  const needle = search.trim().toLowerCase()
  const shown = useMemo(
    () => (needle === "" ? lines : lines.filter((l) => plainText(l.data).toLowerCase().includes(needle))),
    [lines, needle]
  )

  if (error !== undefined) {
    return (
      <main>
        <h1>Run</h1>
        <ErrorBox error={error} />
      </main>
    )
  }
  if (detail === undefined) {
    return (
      <main>
        <h1>
          Run <span class="mono">{id}</span>
        </h1>
        {waiting ? <p aria-live="polite">Waiting for the agent to start this run…</p> : <Loading />}
      </main>
    )
  }
  const run = detail.run
  const beat = liveBeat !== undefined && (run.heartbeat === undefined || liveBeat.at > run.heartbeat.at)
    ? liveBeat
    : run.heartbeat
  return (
    <main>
      <h1>
        Run of{" "}
        <a href={href.schedule(run.agent, run.schedule)}>
          <Name text={run.schedule} />
        </a>{" "}
        on{" "}
        <a href={href.agent(run.agent)}>
          <Name text={run.agent} />
        </a>
      </h1>
      <div class="toolbar">
        <State state={run.state} />
        {run.state === "running" && (
          <ConfirmButton
            label="Cancel run"
            question="Cancel this run? The agent terminates its process group."
            confirm="Cancel run"
            danger
            action={() => api.cancel(run.runId)}
          />
        )}
        <button type="button" onClick={() => download(run.runId).catch(setError)}>Download output</button>
        <span class="muted" aria-live="polite" data-testid="live-state">
          {live === "live"
            ? "live"
            : live === "ended"
            ? "complete"
            : live === "reconnecting"
            ? "reconnecting…"
            : "connecting…"}
        </span>
      </div>
      <dl class="facts">
        <dt>Run id</dt>
        <dd class="mono">{run.runId}</dd>
        <dt>Trigger</dt>
        <dd>{run.trigger.replace("_", " ")}</dd>
        <dt>Scheduled</dt>
        <dd>
          <Time micros={run.scheduledAt} />
        </dd>
        <dt>Started</dt>
        <dd>
          <Time micros={run.startedAt} />
        </dd>
        <dt>Finished</dt>
        <dd>
          <Time micros={run.finishedAt} />
        </dd>
        <dt>Duration</dt>
        <dd>{duration(runDuration(run, Date.now() * 1000))}</dd>
        <dt>Exit</dt>
        <dd>{run.exitCode ?? (run.signal === null ? "—" : <Name text={run.signal} />)}</dd>
        {beat !== undefined && (
          <>
            <dt>{run.state === "running" ? "Heartbeat" : "Last heartbeat"}</dt>
            <dd>
              <Beat beat={beat} />
            </dd>
          </>
        )}
      </dl>
      {detail.commands.length > 0 && (
        <section aria-labelledby="cmds-h">
          <h2 id="cmds-h">Commands</h2>
          <table>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Command</th>
                <th scope="col">Exit</th>
                <th scope="col">Duration</th>
              </tr>
            </thead>
            <tbody>
              {detail.commands.map((c) => (
                <tr key={c.cmdUuid}>
                  <td>{c.index + 1}</td>
                  <td class="mono">
                    <Name text={c.command} />
                  </td>
                  <td>{c.exitCode ?? (c.signal === null ? "—" : <Name text={c.signal} />)}</td>
                  <td>{duration(c.startedAt === null ? null : (c.finishedAt ?? Date.now() * 1000) - c.startedAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
      <section aria-labelledby="output-h">
        <h2 id="output-h">
          Output <span class="count">{lines.length} lines</span>
        </h2>
        <div class="toolbar">
          <label class="search">
            Search in output{" "}
            <input type="search" value={search} onInput={(e) => setSearch((e.target as HTMLInputElement).value)} />
          </label>
          {needle !== "" && <span aria-live="polite">{shown.length} matching lines</span>}
          <label>
            <input
              type="checkbox"
              checked={follow}
              onChange={(e) => setFollow((e.target as HTMLInputElement).checked)}
            />{" "}
            Follow
          </label>
        </div>
        <div class="output" role="log" aria-label="Run output" tabIndex={0}>
          {shown.map((l) => <OutputLine key={l.lineSeq} line={l} />)}
          <div ref={bottom} />
        </div>
      </section>
    </main>
  )
}
