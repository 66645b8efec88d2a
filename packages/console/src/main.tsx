/**
 * bartos' web console. Preact (about 4 KiB gzipped, the React model without its weight) renders
 * everything as text nodes, so a job's output or an agent's name can never become markup; uPlot
 * (about 50 KiB, canvas) draws the duration chart. Both are bundled by scripts/build.mjs into
 * hashed files served by bartos itself: no CDN, works offline, and the page's CSP allows no
 * inline script or style.
 *
 * Pages are hash routes (`#/runs/<id>`), so bartos serves one HTML file and no route table.
 */
import "uplot/dist/uPlot.min.css"
import "./style.css"
import { render } from "preact"
import { useEffect, useState } from "preact/hooks"
import { api, onUnauthorized, type Session, setCsrf } from "./api.js"
import { href } from "./format.js"
import { AlertsPage } from "./pages/alerts.js"
import { CalendarPage } from "./pages/calendar.js"
import { LoginPage } from "./pages/login.js"
import { AgentPage, DashboardPage, FailuresPage } from "./pages/overview.js"
import { RunPage } from "./pages/run.js"
import { SchedulePage } from "./pages/schedule.js"
import { ErrorBox, Loading } from "./ui.js"

type Route =
  | { page: "dashboard" }
  | { page: "agent"; name: string }
  | { page: "schedule"; agent: string; name: string }
  | { page: "run"; id: string }
  | { page: "failures" }
  | { page: "alerts" }
  | { page: "calendar" }
  | { page: "login" }

const route = (hash: string): Route => {
  const parts = hash.replace(/^#\/?/, "").split("/").map((p) => {
    try {
      return decodeURIComponent(p)
    } catch {
      return p
    }
  })
  switch (parts[0]) {
    case "agents":
      if (parts[1] !== undefined) return { page: "agent", name: parts[1] }
      break
    case "schedules":
      if (parts[1] !== undefined && parts[2] !== undefined) return { page: "schedule", agent: parts[1], name: parts[2] }
      break
    case "runs":
      if (parts[1] !== undefined) return { page: "run", id: parts[1] }
      break
    case "failures":
      return { page: "failures" }
    case "alerts":
      return { page: "alerts" }
    case "calendar":
      return { page: "calendar" }
    case "login":
      return { page: "login" }
  }
  return { page: "dashboard" }
}

const useHash = () => {
  const [hash, setHash] = useState(location.hash)
  useEffect(() => {
    const on = () => setHash(location.hash)
    window.addEventListener("hashchange", on)
    return () => window.removeEventListener("hashchange", on)
  }, [])
  return hash
}

const App = () => {
  const hash = useHash()
  const [session, setSession] = useState<Session | undefined>(undefined)
  const [error, setError] = useState<unknown>(undefined)
  const [needLogin, setNeedLogin] = useState(false)

  const adopt = (s: Session) => {
    setCsrf(s.csrfToken)
    setSession(s)
    setNeedLogin(s.role === "none")
  }

  useEffect(() => {
    const off = onUnauthorized(() => setNeedLogin(true))
    api.session().then(async (s) => {
      // Open access (no api key): take a session anyway, so actions carry a CSRF token.
      if (s.via === "open") {
        try {
          return adopt(await api.login(undefined))
        } catch {
          return adopt(s)
        }
      }
      adopt(s)
    }, setError)
    return () => {
      off()
    }
  }, [])

  const r = route(hash)
  const logout = async () => {
    try {
      adopt(await api.logout())
      setNeedLogin(true)
    } catch (e) {
      setError(e)
    }
  }

  let page
  if (session === undefined) {
    page = error === undefined
      ? (
        <main>
          <Loading />
        </main>
      )
      : (
        <main>
          <ErrorBox error={error} />
        </main>
      )
  } else if (needLogin || r.page === "login") {
    page = (
      <LoginPage
        session={session}
        onLogin={(s) => {
          adopt(s)
          if (r.page === "login") location.hash = href.dashboard
        }}
      />
    )
  } else {
    switch (r.page) {
      case "dashboard":
        page = <DashboardPage />
        break
      case "agent":
        page = <AgentPage name={r.name} />
        break
      case "schedule":
        page = <SchedulePage agent={r.agent} name={r.name} />
        break
      case "run":
        page = <RunPage id={r.id} />
        break
      case "failures":
        page = <FailuresPage />
        break
      case "alerts":
        page = <AlertsPage />
        break
      case "calendar":
        page = <CalendarPage />
        break
    }
  }
  const current = (p: Route["page"]) => (r.page === p ? "page" : undefined)
  return (
    <>
      <a
        class="skip"
        href="#main"
        onClick={(e) => {
          e.preventDefault()
          document.getElementById("main")?.focus()
        }}
      >
        Skip to content
      </a>
      <header>
        <a class="brand" href={href.dashboard}>barto</a>
        <nav aria-label="Main">
          <a href={href.dashboard} aria-current={current("dashboard")}>Dashboard</a>
          <a href={href.failures} aria-current={current("failures")}>Failures</a>
          <a href={href.alerts} aria-current={current("alerts")}>Alerts</a>
          <a href={href.calendar} aria-current={current("calendar")}>Calendar</a>
        </nav>
        <div class="who">
          {session !== undefined && session.role !== "none" && (
            <span data-testid="role">{session.role === "admin" ? "admin" : "read-only"}</span>
          )}
          {session?.via === "cookie" && session.keys.api || session?.via === "cookie" && session.keys.admin
            ? <button type="button" onClick={logout}>Log out</button>
            : session !== undefined && session.role !== "admin" && (session.keys.api || session.keys.admin) &&
                !needLogin
            ? <a href="#/login">Log in</a>
            : null}
        </div>
      </header>
      {session !== undefined && !session.keys.admin && <p class="notice" role="note">{session.note}</p>}
      <div id="main" tabIndex={-1}>{page}</div>
    </>
  )
}

render(<App />, document.getElementById("app")!)
