/** The calendar playground: an expression, normalised, with its next occurrences in a chosen zone. */
import { useEffect, useState } from "preact/hooks"
import { api, ApiError, type CalendarPreview } from "../api.js"
import { utcTime, zoneName } from "../format.js"
import { ErrorBox } from "../ui.js"

const zones = (): Array<string> => {
  const intl = Intl as unknown as { supportedValuesOf?: (key: string) => Array<string> }
  return intl.supportedValuesOf?.("timeZone") ?? []
}

/** A wall-clock time in `zone`. */
const inZone = (micros: number, zone: string) => {
  try {
    return new Intl.DateTimeFormat("sv-SE", {
      timeZone: zone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      weekday: "short"
    }).format(new Date(micros / 1000))
  } catch {
    return new Date(micros / 1000).toISOString()
  }
}

export const CalendarPage = () => {
  const [expr, setExpr] = useState("Mon..Fri *-*-* 09:00:00")
  const [zone, setZone] = useState(zoneName())
  const [count, setCount] = useState(10)
  const [result, setResult] = useState<CalendarPreview | undefined>(undefined)
  const [error, setError] = useState<unknown>(undefined)
  useEffect(() => {
    let alive = true
    const timer = setTimeout(() => {
      api.calendar(expr, zone, count).then(
        (r) => {
          if (!alive) return
          setResult(r)
          setError(undefined)
        },
        (e) => {
          if (!alive) return
          setResult(undefined)
          setError(e)
        }
      )
    }, 200)
    return () => {
      alive = false
      clearTimeout(timer)
    }
  }, [expr, zone, count])
  const position = error instanceof ApiError && typeof error.body?.position === "number"
    ? error.body.position
    : undefined
  const text = error instanceof ApiError && typeof error.body?.text === "string" ? error.body.text : ""
  return (
    <main>
      <h1>Calendar playground</h1>
      <form class="calendar" onSubmit={(e) => e.preventDefault()}>
        <label>
          Expression
          <input
            class="mono"
            value={expr}
            spellcheck={false}
            aria-invalid={error !== undefined}
            aria-describedby="calendar-error"
            onInput={(e) => setExpr((e.target as HTMLInputElement).value)}
          />
        </label>
        <label>
          Zone (when the expression names none)
          <input list="zones" value={zone} onInput={(e) => setZone((e.target as HTMLInputElement).value)} />
          <datalist id="zones">{zones().map((z) => <option key={z} value={z} />)}</datalist>
        </label>
        <label>
          Occurrences
          <input
            type="number"
            min={1}
            max={100}
            value={count}
            onInput={(e) => setCount(Math.min(100, Math.max(1, Number((e.target as HTMLInputElement).value) || 1)))}
          />
        </label>
      </form>
      <div id="calendar-error">
        {position !== undefined && (
          <pre
            class="caret mono"
            aria-hidden="true"
          >{expr}{"\n"}{" ".repeat(position)}{"^".repeat(Math.max(1, text.length))}</pre>
        )}
        <ErrorBox error={error} />
      </div>
      {result !== undefined && (
        <>
          <dl class="facts">
            <dt>Normalized</dt>
            <dd class="mono" data-testid="normalized">{result.normalized}</dd>
            <dt>Zone</dt>
            <dd>{result.zone}</dd>
          </dl>
          {result.next.length === 0 ? <p class="muted">It never fires.</p> : (
            <table>
              <caption class="sr-only">Next occurrences</caption>
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">In {result.zone}</th>
                  <th scope="col">UTC</th>
                </tr>
              </thead>
              <tbody>
                {result.next.map((t, i) => (
                  <tr key={t}>
                    <td>{i + 1}</td>
                    <td class="mono">{inZone(t, result.zone)}</td>
                    <td class="mono">{utcTime(t).replace(" (UTC)", "")}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </main>
  )
}
