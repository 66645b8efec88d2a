/** Small shared pieces of the console: times, states, the result strip, confirmation, errors. */
import type { ComponentChildren } from "preact"
import { useEffect, useRef, useState } from "preact/hooks"
import { visible } from "./ansi.js"
import type { Heartbeat } from "./api.js"
import { localTime, progressOf, stateClass, stateLabel, utcTime } from "./format.js"

/** A name from the outside world (agent, schedule, command): control characters made visible. */
export const Name = ({ text }: { text: string }) => <>{visible(text)}</>

export const Time = ({ micros }: { micros: number | null | undefined }) =>
  micros === null || micros === undefined
    ? <span class="muted">—</span>
    : <time dateTime={new Date(micros / 1000).toISOString()} title={utcTime(micros)}>{localTime(micros)}</time>

export const State = ({ state }: { state: string }) =>
  <span class={stateClass(state)}>{stateLabel(visible(state))}</span>

/**
 * A running job's last heartbeat (`barto-cli beat` or a line to `BARTO_HEARTBEAT`): progress (a bar
 * when it reads `done/total`), status, message and when it came. The job's own words, kept inert.
 */
export const Beat = ({ beat }: { beat: Heartbeat }) => {
  const p = progressOf(beat.progress)
  return (
    <span class="beat" data-testid="heartbeat">
      {p !== undefined && <progress value={p.value} max={p.max} aria-label={`progress ${p.value} of ${p.max}`} />}
      {beat.progress !== null && <span class="beat-progress">{visible(beat.progress)}</span>}
      {beat.status !== null && <span class="beat-status">{visible(beat.status)}</span>}
      {beat.message !== null && <span class="beat-message">{visible(beat.message)}</span>}
      <span class="muted beat-at">
        beat <Time micros={beat.at} />
      </span>
    </span>
  )
}

/** The recent results of a schedule, newest on the right. */
export const Strip = ({ states }: { states: ReadonlyArray<string> }) => {
  const oldestFirst = [...states].reverse()
  return (
    <span
      class="strip"
      role="img"
      aria-label={`recent results, oldest first: ${oldestFirst.map(stateLabel).join(", ") || "none"}`}
    >
      {oldestFirst.map((s, i) => <span key={i} class={`tick ${stateClass(s)}`} title={stateLabel(s)} />)}
    </span>
  )
}

export const ErrorBox = ({ error }: { error: unknown }) =>
  error === undefined || error === null ?
    null :
    <p class="error" role="alert">{visible(error instanceof Error ? error.message : String(error))}</p>

export const Loading = () => <p class="muted" aria-live="polite">Loading…</p>

/** Data loaded by `load`, reloaded when `deps` change and every `refreshMs` while the tab is visible. */
export function useData<A>(load: () => Promise<A>, deps: ReadonlyArray<unknown>, refreshMs?: number) {
  const [data, setData] = useState<A | undefined>(undefined)
  const [error, setError] = useState<unknown>(undefined)
  const [tick, setTick] = useState(0)
  useEffect(() => {
    let alive = true
    load().then(
      (a) => {
        if (alive) {
          setData(a)
          setError(undefined)
        }
      },
      (e) => alive && setError(e)
    )
    return () => {
      alive = false
    }
  }, [...deps, tick])
  useEffect(() => {
    if (refreshMs === undefined) return
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") setTick((t) => t + 1)
    }, refreshMs)
    return () => clearInterval(timer)
  }, [refreshMs])
  return { data, error, reload: () => setTick((t) => t + 1) }
}

/**
 * A button that asks first (a modal `<dialog>`: focus moves into it, Escape cancels), then runs
 * `action` and reports its error.
 */
export const ConfirmButton = (props: {
  label: string
  question: string
  confirm: string
  action: () => Promise<unknown>
  disabled?: boolean
  danger?: boolean
  children?: ComponentChildren
}) => {
  const dialog = useRef<HTMLDialogElement>(null)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<unknown>(undefined)
  const run = async () => {
    dialog.current?.close()
    setBusy(true)
    setError(undefined)
    try {
      await props.action()
    } catch (e) {
      setError(e)
    } finally {
      setBusy(false)
    }
  }
  return (
    <span class="action">
      <button
        type="button"
        class={props.danger ? "danger" : ""}
        disabled={props.disabled || busy}
        onClick={() => dialog.current?.showModal()}
      >
        {props.label}
      </button>
      <dialog ref={dialog} aria-label={props.question}>
        <p>{props.question}</p>
        {props.children}
        <div class="buttons">
          <button type="button" onClick={() => dialog.current?.close()}>Cancel</button>
          <button type="button" class={props.danger ? "danger" : "primary"} autofocus onClick={run}>
            {props.confirm}
          </button>
        </div>
      </dialog>
      <ErrorBox error={error} />
    </span>
  )
}
