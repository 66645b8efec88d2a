/**
 * The console's client of bartos' HTTP API (packages/server/src/Api.ts, whose types it imports).
 * Same origin only; the session cookie travels by itself (HttpOnly, SameSite=Strict) and every
 * action carries the session's CSRF token.
 */
import type * as Api from "@barto/server/Api"

export type Encoded<S extends { readonly Encoded: unknown }> = S["Encoded"]
export type Session = Encoded<typeof Api.SessionView>
export type Dashboard = Encoded<typeof Api.Dashboard>
export type AgentView = Encoded<typeof Api.AgentView>
export type AgentDetail = Encoded<typeof Api.AgentDetail>
export type ScheduleView = Encoded<typeof Api.ScheduleView>
export type SchedulesPage = Encoded<typeof Api.SchedulesPage>
export type ScheduleDetail = Encoded<typeof Api.ScheduleDetail>
export type RunsPage = Encoded<typeof Api.RunsPage>
export type RunDetail = Encoded<typeof Api.RunDetail>
export type OutputPage = Encoded<typeof Api.OutputPage>
export type CalendarPreview = Encoded<typeof Api.CalendarPreview>
export type AlertsView = Encoded<typeof Api.AlertsView>
export type Run = RunsPage["runs"][number]
export type Heartbeat = NonNullable<Run["heartbeat"]>
export type Line = OutputPage["lines"][number]

/** An answer other than 2xx, with the server's message when it sent one. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly body: Record<string, unknown> | undefined) {
    super(message)
  }
}

let csrfToken: string | null = null
const listeners = new Set<() => void>()

/** Called on 401: the console then shows the login page. */
export const onUnauthorized = (f: () => void) => {
  listeners.add(f)
  return () => listeners.delete(f)
}

export const setCsrf = (token: string | null) => {
  csrfToken = token
}

const request = async <A>(method: string, path: string, body?: unknown): Promise<A> => {
  const headers: Record<string, string> = { accept: "application/json" }
  if (method !== "GET") {
    headers["content-type"] = "application/json"
    if (csrfToken !== null) headers["x-csrf-token"] = csrfToken
  }
  const res = await fetch(`/v1/api${path}`, {
    method,
    headers,
    credentials: "same-origin",
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  const text = await res.text()
  let json: Record<string, unknown> | undefined
  try {
    json = text === "" ? undefined : JSON.parse(text)
  } catch {
    json = undefined
  }
  if (!res.ok) {
    if (res.status === 401 && !path.startsWith("/session")) { for (const f of listeners) f() }
    const message = typeof json?.message === "string" ? json.message : `${res.status} ${res.statusText}`
    throw new ApiError(res.status, message, json)
  }
  return json as A
}

const q = (params: Record<string, string | number | undefined>) => {
  const s = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") s.set(k, String(v))
  const text = s.toString()
  return text === "" ? "" : `?${text}`
}
const seg = encodeURIComponent

export const api = {
  session: () => request<Session>("GET", "/session"),
  login: (key: string | undefined) => request<Session>("POST", "/session", key === undefined ? {} : { key }),
  logout: () => request<Session>("DELETE", "/session"),
  dashboard: (search: string, limit: number) => request<Dashboard>("GET", `/dashboard${q({ q: search, limit })}`),
  schedules: (search: string, offset: number, limit: number) =>
    request<SchedulesPage>("GET", `/schedules${q({ q: search, offset, limit })}`),
  agent: (name: string) => request<AgentDetail>("GET", `/agents/${seg(name)}`),
  schedule: (agent: string, name: string) => request<ScheduleDetail>("GET", `/schedules/${seg(agent)}/${seg(name)}`),
  runs: (params: Record<string, string | number | undefined>) => request<RunsPage>("GET", `/runs${q(params)}`),
  failures: (cursor?: string) => request<RunsPage>("GET", `/failures${q({ cursor, limit: 50 })}`),
  run: (id: string) => request<RunDetail>("GET", `/runs/${seg(id)}`),
  output: (id: string, after: number) =>
    request<OutputPage>("GET", `/runs/${seg(id)}/output${q({ after, limit: 5000 })}`),
  followUrl: (id: string, after: number) => `/v1/api/runs/${seg(id)}/output${q({ after, follow: "1" })}`,
  alerts: (limit: number) => request<AlertsView>("GET", `/alerts${q({ limit })}`),
  calendar: (expr: string, zone: string, count: number) =>
    request<CalendarPreview>("GET", `/calendar${q({ expr, zone, count })}`),
  runNow: (agent: string, name: string) =>
    request<{ runId: string }>("POST", `/schedules/${seg(agent)}/${seg(name)}/run`),
  pause: (agent: string, name: string, paused: boolean) =>
    request<{ paused: boolean }>("POST", `/schedules/${seg(agent)}/${seg(name)}/${paused ? "pause" : "resume"}`),
  cancel: (id: string) => request<{ delivered: boolean }>("POST", `/runs/${seg(id)}/cancel`)
}
