/**
 * The HTTP API through real sockets on a real bartos (in-process, port 0) over a real Store on
 * SQLite and MariaDB: the auth matrix per endpoint (no key, api key, admin key, session cookie
 * with and without its CSRF token), every read, the actions reaching a connected agent, output
 * followed as Server-Sent Events, the OpenAPI document, bad input, the login rate limit, and the
 * console's static files with their security and cache headers.
 */
import * as Messages from "@barto/domain/Messages"
import type { AgentRecord, RunId } from "@barto/domain/Messages"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { AlertsView } from "../src/Api.js"
import { Store, type StoreError } from "../src/Store.js"
import { databases } from "./utils/databases.js"
import * as TestServer from "./utils/server.js"

const API_KEY = "api-key-1234"
const ADMIN_KEY = "admin-key-5678"
const KEYS_TOML = `api_key = "${API_KEY}"\nadmin_key = "${ADMIN_KEY}"\n`
const SCHEDULES = `
[[schedules.a.schedules]]
name = "s"
on_calendar = "*-*-* 03:00:00"
cmds = ["echo s"]

[[schedules.a.schedules]]
name = "t"
on_calendar = "Mon *-*-* 04:00:00 Europe/Berlin"
cmds = ["echo t"]
`

interface Reply {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
  readonly json: any
}

const request = (
  base: string,
  method: string,
  target: string,
  options: { readonly headers?: Record<string, string>; readonly body?: string } = {}
) =>
  Effect.async<Reply, Error>((resume) => {
    const req = http.request(`${base}${target}`, { method, headers: options.headers ?? {} }, (res) => {
      let body = ""
      res.on("data", (c: Buffer) => (body += c.toString("utf8")))
      res.on("end", () => {
        let json: unknown
        try {
          json = body === "" ? undefined : JSON.parse(body)
        } catch {
          json = undefined
        }
        resume(Effect.succeed({ status: res.statusCode ?? 0, headers: res.headers, body, json }))
      })
    })
    req.on("error", (e) => resume(Effect.fail(e)))
    req.end(options.body)
  })

const baseOf = (server: TestServer.TestServer) => `http://127.0.0.1:${server.port}`

const micros = (ms: number) => Messages.Micros.make(ms * 1000)
const T0 = Date.UTC(2026, 10, 1, 12, 0, 0)

/** A finished or running run of `a`/`schedule` with `lines` of output (seq assigned by the store). */
const runRecords = (
  runId: string,
  schedule: string,
  atMs: number,
  state: "succeeded" | "failed" | "running",
  lines: ReadonlyArray<string> = []
): Array<AgentRecord> => {
  const id = runId as RunId
  const cmdUuid = `cmd-${runId}`
  const out: Array<AgentRecord> = [
    {
      _tag: "RunStarted",
      seq: 0,
      runId: id,
      schedule,
      trigger: "schedule",
      scheduledAt: micros(atMs),
      startedAt: micros(atMs + 1)
    },
    {
      _tag: "CommandStarted",
      seq: 0,
      runId: id,
      cmdUuid,
      cmdIndex: 0,
      command: `echo ${schedule}`,
      startedAt: micros(atMs + 2)
    }
  ]
  lines.forEach((data, i) =>
    out.push({
      _tag: "OutputLine",
      seq: 0,
      runId: id,
      cmdUuid,
      lineSeq: i,
      stream: data.startsWith("err") ? "stderr" : "stdout",
      ts: micros(atMs + 3 + i),
      data,
      continuation: false
    })
  )
  if (state !== "running") {
    out.push(
      {
        _tag: "CommandExited",
        seq: 0,
        runId: id,
        cmdUuid,
        exitCode: state === "failed" ? 2 : 0,
        signal: null,
        finishedAt: micros(atMs + 900)
      },
      { _tag: "RunFinished", seq: 0, runId: id, state, finishedAt: micros(atMs + 1000) }
    )
  }
  return out
}

let outboxSeq = 0
/** Stores records as an agent's batch would (sequence numbers in a fresh outbox). */
const seed = (server: TestServer.TestServer, records: ReadonlyArray<AgentRecord>) =>
  Effect.gen(function*() {
    const store = Context.get(server.context as Context.Context<Store>, Store)
    yield* store.ingest("a", `outbox-${++outboxSeq}`, records.map((r, seq) => ({ ...r, seq })))
  })

const login = (base: string, key: string | undefined) =>
  Effect.gen(function*() {
    const r = yield* request(base, "POST", "/v1/api/session", {
      headers: { "content-type": "application/json" },
      body: JSON.stringify(key === undefined ? {} : { key })
    })
    assert.strictEqual(r.status, 200, r.body)
    const cookie = String(r.headers["set-cookie"]?.[0] ?? "")
    return {
      cookie: cookie.split(";")[0]!,
      setCookie: cookie,
      csrf: r.json.csrfToken as string,
      role: r.json.role as string
    }
  })

const storeLayer = (db: (typeof databases)[number]) => db.layer() as unknown as Layer.Layer<Store, StoreError>

for (const db of databases) {
  describe(`HTTP API on ${db.name}`, () => {
    it.scopedLive(
      "auth matrix: every endpoint, with no key, the api key, the admin key, and a session with and without its CSRF token",
      () =>
        Effect.gen(function*() {
          const server = yield* TestServer.make({ toml: KEYS_TOML + SCHEDULES, store: storeLayer(db) })
          const base = baseOf(server)
          yield* seed(server, [
            ...runRecords("r-done", "s", T0, "succeeded", ["hello"]),
            ...runRecords("r-live", "s", T0 + 60_000, "running")
          ])
          const reads = [
            "/v1/api/info",
            "/v1/api/dashboard",
            "/v1/api/agents",
            "/v1/api/agents/a",
            "/v1/api/schedules",
            "/v1/api/schedules/a/s",
            "/v1/api/runs",
            "/v1/api/runs/r-done",
            "/v1/api/runs/r-done/output",
            "/v1/api/failures",
            "/v1/api/calendar?expr=daily",
            "/v1/api/metrics",
            "/v1/api/alerts"
          ]
          // Each action with the status it has once authorised (a is not connected: run now is a 409).
          const actions: Array<readonly [string, number, string?]> = [
            ["/v1/api/schedules/a/s/run", 409],
            ["/v1/api/schedules/a/s/pause", 200],
            ["/v1/api/schedules/a/s/resume", 200],
            ["/v1/api/runs/r-live/cancel", 200],
            ["/v1/api/cleanup", 200, JSON.stringify({ dryRun: true })]
          ]
          const admin = yield* login(base, ADMIN_KEY)
          const reader = yield* login(base, API_KEY)
          assert.strictEqual(admin.role, "admin")
          assert.strictEqual(reader.role, "read")
          assert.match(admin.setCookie, /HttpOnly/)
          assert.match(admin.setCookie, /SameSite=Strict/)
          assert.notMatch(admin.setCookie, /Secure/) // plain listener; the TLS one sets it (Hub.test.ts)
          const credentials: Array<readonly [string, Record<string, string>, number, number]> = [
            // name, headers, read status, action status (undefined: the action's own status)
            ["no key", {}, 401, 401],
            ["wrong bearer", { authorization: "Bearer nope" }, 401, 401],
            ["other scheme", { authorization: `Basic ${ADMIN_KEY}` }, 401, 401],
            ["api key", { authorization: `Bearer ${API_KEY}` }, 200, 403],
            ["admin key", { authorization: `Bearer ${ADMIN_KEY}` }, 200, 0],
            ["admin session without CSRF token", { cookie: admin.cookie }, 200, 403],
            ["admin session, wrong CSRF token", { cookie: admin.cookie, "x-csrf-token": reader.csrf }, 200, 403],
            ["admin session with CSRF token", { cookie: admin.cookie, "x-csrf-token": admin.csrf }, 200, 0],
            ["read session with CSRF token", { cookie: reader.cookie, "x-csrf-token": reader.csrf }, 200, 403],
            ["unknown session", { cookie: "barto_session=forged", "x-csrf-token": "x" }, 401, 401]
          ]
          for (const [name, headers, readStatus, actionStatus] of credentials) {
            for (const target of reads) {
              const r = yield* request(base, "GET", target, { headers })
              assert.strictEqual(r.status, readStatus, `${name}: GET ${target}: ${r.body}`)
            }
            for (const [target, okStatus, body] of actions) {
              const r = yield* request(base, "POST", target, {
                headers: { ...headers, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
                ...(body !== undefined ? { body } : {})
              })
              const expected = actionStatus === 0 ? okStatus : actionStatus
              // The cancel of r-live succeeds once; afterwards the run is no longer running.
              if (target.endsWith("/cancel") && expected === 200) assert.include([200], r.status, `${name}: ${target}`)
              else assert.strictEqual(r.status, expected, `${name}: POST ${target}: ${r.body}`)
              if (r.status === 401 || r.status === 403) assert.match(r.json._tag, /Unauthorized|Forbidden/)
            }
          }
          // The session endpoint itself never needs a credential and says who the caller is.
          const anon = yield* request(base, "GET", "/v1/api/session")
          assert.deepStrictEqual([anon.status, anon.json.role, anon.json.via], [200, "none", "none"])
          const asAdmin = yield* request(base, "GET", "/v1/api/session", { headers: { cookie: admin.cookie } })
          assert.deepStrictEqual([asAdmin.json.role, asAdmin.json.csrfToken], ["admin", admin.csrf])
          // Logging out needs the token too, then the cookie no longer works.
          const noToken = yield* request(base, "DELETE", "/v1/api/session", { headers: { cookie: admin.cookie } })
          assert.deepStrictEqual([noToken.status, noToken.json._tag], [403, "Forbidden"])
          const out = yield* request(base, "DELETE", "/v1/api/session", {
            headers: { cookie: admin.cookie, "x-csrf-token": admin.csrf }
          })
          assert.strictEqual(out.json.role, "none")
          assert.strictEqual(
            (yield* request(base, "GET", "/v1/api/info", { headers: { cookie: admin.cookie } })).status,
            401
          )
          // The alerts page's data: its three lists, decodable as the API declares them.
          const alerts = yield* request(base, "GET", "/v1/api/alerts?limit=5", {
            headers: { authorization: `Bearer ${API_KEY}` }
          })
          assert.strictEqual(alerts.status, 200)
          const view = Schema.decodeUnknownSync(AlertsView)(alerts.json)
          assert.deepStrictEqual(view.incidents, [])
          assert.deepStrictEqual(view.deliveries, [])
          assert.isAtMost(view.events.length, 5)
          assert.strictEqual(
            (yield* request(base, "GET", "/v1/api/alerts?limit=0", { headers: { authorization: `Bearer ${API_KEY}` } }))
              .status,
            400
          )
        }),
      { timeout: 60_000 }
    )

    it.scopedLive(
      "reads: dashboard, schedules, runs with cursor pages and filters, a run with its commands, output pages, failures",
      () =>
        Effect.gen(function*() {
          const server = yield* TestServer.make({ toml: SCHEDULES, store: storeLayer(db) })
          const base = baseOf(server)
          const now = Date.now()
          const records: Array<AgentRecord> = []
          for (let i = 0; i < 30; i++) {
            records.push(
              ...runRecords(
                `r-${String(i).padStart(2, "0")}`,
                "s",
                now - (30 - i) * 60_000,
                i % 10 === 9 ? "failed" : "succeeded",
                [`line of ${i}`]
              )
            )
          }
          records.push(
            ...runRecords(
              "r-out",
              "t",
              now - 5_000,
              "running",
              Array.from({ length: 25 }, (_, i) => (i === 3 ? "err boom" : `out ${i}`))
            )
          )
          yield* seed(server, records)

          const dash = yield* request(base, "GET", "/v1/api/dashboard")
          assert.strictEqual(dash.status, 200)
          assert.deepStrictEqual(dash.json.agents.map((a: any) => [a.name, a.online, a.schedules]), [["a", false, 2]])
          assert.deepStrictEqual(dash.json.running.map((r: any) => r.runId), ["r-out"])
          assert.strictEqual(dash.json.failures.count, 3)
          assert.deepStrictEqual(dash.json.failures.recent.map((r: any) => r.runId), ["r-29", "r-19", "r-09"])
          const s = dash.json.schedules.items.find((x: any) => x.name === "s")
          assert.strictEqual(dash.json.schedules.total, 2)
          assert.strictEqual(s.lastRun.runId, "r-29")
          assert.deepStrictEqual(s.recent.slice(0, 3), ["failed", "succeeded", "succeeded"])
          assert.strictEqual(s.recent.length, 12)
          const t = dash.json.schedules.items.find((x: any) => x.name === "t")
          assert.strictEqual(t.zone, "Europe/Berlin")
          assert.isAbove(t.nextAt, now * 1000)

          // search and paging of schedules happen on the server
          const filtered = yield* request(base, "GET", "/v1/api/schedules?q=T&limit=1")
          assert.deepStrictEqual([filtered.json.total, filtered.json.items.map((x: any) => x.name)], [1, ["t"]])
          const second = yield* request(base, "GET", "/v1/api/schedules?offset=1&limit=1")
          assert.deepStrictEqual(second.json.items.map((x: any) => x.name), ["t"])

          // cursor pages: 31 runs of a, 12 per page, newest first, nothing twice, nothing missed
          const seen: Array<string> = []
          let cursor: string | null = null
          do {
            const page: Reply = yield* request(
              base,
              "GET",
              `/v1/api/runs?agent=a&limit=12${cursor === null ? "" : `&cursor=${cursor}`}`
            )
            assert.strictEqual(page.status, 200, page.body)
            seen.push(...page.json.runs.map((r: any) => r.runId))
            cursor = page.json.nextCursor
          } while (cursor !== null)
          assert.strictEqual(seen.length, 31)
          assert.strictEqual(new Set(seen).size, 31)
          assert.strictEqual(seen[0], "r-out")
          assert.strictEqual(seen[30], "r-00")
          const failed = yield* request(base, "GET", "/v1/api/runs?state=failed,lost&schedule=s")
          assert.deepStrictEqual(failed.json.runs.map((r: any) => r.runId), ["r-29", "r-19", "r-09"])
          const failures = yield* request(base, "GET", "/v1/api/failures?limit=2")
          assert.deepStrictEqual(failures.json.runs.map((r: any) => r.runId), ["r-29", "r-19"])
          assert.isString(failures.json.nextCursor)

          const run = yield* request(base, "GET", "/v1/api/runs/r-09")
          assert.deepStrictEqual([run.json.run.state, run.json.run.exitCode], ["failed", 2])
          assert.deepStrictEqual(run.json.commands.map((c: any) => [c.index, c.command, c.exitCode]), [[
            0,
            "echo s",
            2
          ]])

          const p1 = yield* request(base, "GET", "/v1/api/runs/r-out/output?limit=10")
          assert.deepStrictEqual([p1.json.lines.length, p1.json.nextAfter, p1.json.more], [10, 9, true])
          assert.strictEqual(p1.json.lines[3].stream, "stderr")
          const p3 = yield* request(base, "GET", "/v1/api/runs/r-out/output?after=19&limit=10")
          assert.deepStrictEqual([p3.json.lines.map((l: any) => l.lineSeq), p3.json.more], [
            [20, 21, 22, 23, 24],
            false
          ])

          const agent = yield* request(base, "GET", "/v1/api/agents/a")
          assert.deepStrictEqual(agent.json.schedules.map((x: any) => x.name), ["s", "t"])
          assert.strictEqual(agent.json.runs.length, 31)
          const detail = yield* request(base, "GET", "/v1/api/schedules/a/t")
          assert.strictEqual(detail.json.upcoming.length, 10)
          assert.deepStrictEqual(detail.json.history.map((r: any) => r.runId), ["r-out"])

          for (
            const missing of [
              "/v1/api/runs/nope",
              "/v1/api/runs/nope/output",
              "/v1/api/agents/zz",
              "/v1/api/schedules/a/zz"
            ]
          ) {
            const r = yield* request(base, "GET", missing)
            assert.deepStrictEqual([r.status, r.json._tag], [404, "NotFound"], missing)
          }
        }),
      { timeout: 60_000 }
    )

    it.scopedLive(
      "follow=1: stored lines, then live lines as Server-Sent Events, then the final state; Last-Event-ID resumes",
      () =>
        Effect.gen(function*() {
          const server = yield* TestServer.make({ toml: SCHEDULES, store: storeLayer(db) })
          const base = baseOf(server)
          const { client } = yield* TestServer.helloAgent(server, "a")
          const all = runRecords("r-live", "s", Date.now(), "succeeded", ["one", "two", "<script>three</script>"])
          const [started, cmd, l0, l1, l2, exited, finished] = all.map((r, seq) => ({ ...r, seq })) as Array<
            AgentRecord
          >
          yield* client.send({ _tag: "RecordBatch", records: [started!, cmd!, l0!] })
          yield* client.nextTagged("Ack")
          const events = yield* sse(`${base}/v1/api/runs/r-live/output?follow=1`)
          const first = yield* events.next
          assert.deepStrictEqual([first.event, first.id, first.data.lines.map((l: any) => l.data)], ["lines", "0", [
            "one"
          ]])
          assert.strictEqual(first.data.run.state, "running")
          yield* client.send({ _tag: "RecordBatch", records: [l1!, l2!] })
          const live = yield* events.next
          assert.deepStrictEqual([live.id, live.data.lines.map((l: any) => l.data)], ["2", [
            "two",
            "<script>three</script>"
          ]])
          yield* client.send({ _tag: "RecordBatch", records: [exited!, finished!] })
          const done = yield* events.next
          assert.deepStrictEqual([done.event, done.data.run.state], ["done", "succeeded"])
          yield* events.ended
          // a reconnect after line 1 gets only what followed it
          const again = yield* sse(`${base}/v1/api/runs/r-live/output?follow=1`, { "last-event-id": "1" })
          const rest = yield* again.next
          assert.deepStrictEqual(rest.data.lines.map((l: any) => l.lineSeq), [2])
          assert.strictEqual((yield* again.next).event, "done")
        }),
      { timeout: 60_000 }
    )

    it.scopedLive(
      "actions reach the agent: run now sends RunNow with the returned run id, cancel sends CancelRun; cleanup dry-run counts, real deletes",
      () =>
        Effect.gen(function*() {
          const server = yield* TestServer.make({ toml: KEYS_TOML + SCHEDULES, store: storeLayer(db) })
          const base = baseOf(server)
          const auth = { authorization: `Bearer ${ADMIN_KEY}` }
          const { client } = yield* TestServer.helloAgent(server, "a", {
            headers: { Authorization: `Bearer ${API_KEY}` }
          })
          const now = yield* request(base, "POST", "/v1/api/schedules/a/s/run", { headers: auth })
          assert.strictEqual(now.status, 200, now.body)
          const sent = yield* client.nextTagged("RunNow")
          assert.deepStrictEqual([sent.runId, sent.schedule], [now.json.runId, "s"])
          const unknown = yield* request(base, "POST", "/v1/api/schedules/a/nope/run", { headers: auth })
          assert.strictEqual(unknown.status, 404)

          yield* seed(server, [
            ...runRecords("r-old", "s", T0, "succeeded", ["x", "y"]),
            ...runRecords("r-run", "s", Date.now(), "running")
          ])
          const cancel = yield* request(base, "POST", "/v1/api/runs/r-run/cancel", { headers: auth })
          assert.deepStrictEqual([cancel.status, cancel.json.delivered], [200, true])
          assert.strictEqual((yield* client.nextTagged("CancelRun")).runId, "r-run")
          const again = yield* request(base, "POST", "/v1/api/runs/r-old/cancel", { headers: auth })
          assert.deepStrictEqual([again.status, again.json._tag], [400, "BadRequest"])

          const pause = yield* request(base, "POST", "/v1/api/schedules/a/t/pause", { headers: auth })
          assert.deepStrictEqual(pause.json, { agent: "a", schedule: "t", paused: true })
          const table = yield* client.nextTagged("ScheduleTable")
          assert.isTrue(table.schedules.find((x) => x.name === "t")!.paused)
          const listed = yield* request(base, "GET", "/v1/api/schedules/a/t", { headers: auth })
          assert.isTrue(listed.json.schedule.paused)
          yield* request(base, "POST", "/v1/api/schedules/a/t/resume", { headers: auth })
          assert.isFalse((yield* client.nextTagged("ScheduleTable")).schedules.find((x) => x.name === "t")!.paused)

          const before = micros(T0 + 10_000)
          const dry = yield* request(base, "POST", "/v1/api/cleanup", {
            headers: { ...auth, "content-type": "application/json" },
            body: JSON.stringify({ before, dryRun: true })
          })
          assert.deepStrictEqual([dry.json.runs, dry.json.lines, dry.json.dryRun], [1, 2, true])
          assert.strictEqual((yield* request(base, "GET", "/v1/api/runs/r-old", { headers: auth })).status, 200)
          const real = yield* request(base, "POST", "/v1/api/cleanup", {
            headers: { ...auth, "content-type": "application/json" },
            body: JSON.stringify({ before, dryRun: false })
          })
          assert.deepStrictEqual([real.json.runs, real.json.agentsSignalled], [1, 1])
          assert.strictEqual((yield* client.nextTagged("AgentCleanup")).before, before)
          assert.strictEqual((yield* request(base, "GET", "/v1/api/runs/r-old", { headers: auth })).status, 404)
        }),
      { timeout: 60_000 }
    )
  })
}

describe("HTTP API without keys, bad input, OpenAPI, console files", () => {
  it.scopedLive("no keys: reads are open, actions need a session (CSRF) and admin needs a loopback host", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES, store: "sqlite" })
      const base = baseOf(server)
      assert.strictEqual((yield* request(base, "GET", "/v1/api/schedules")).status, 200)
      const open = yield* request(base, "GET", "/v1/api/session")
      assert.deepStrictEqual([open.json.role, open.json.via], ["admin", "open"])
      assert.match(open.json.note, /loopback only/)
      // a cross-site form post carries no token and no bearer: refused even from loopback
      const form = yield* request(base, "POST", "/v1/api/schedules/a/s/pause", {
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "x=1"
      })
      assert.strictEqual(form.status, 401)
      const session = yield* login(base, undefined)
      assert.strictEqual(session.role, "admin")
      const ok = yield* request(base, "POST", "/v1/api/schedules/a/s/pause", {
        headers: { cookie: session.cookie, "x-csrf-token": session.csrf }
      })
      assert.strictEqual(ok.status, 200)
      // DNS rebinding: loopback address but a foreign Host name is not admin
      const rebound = yield* request(base, "POST", "/v1/api/session", {
        headers: { "content-type": "application/json", host: "evil.example:80" },
        body: "{}"
      })
      assert.strictEqual(rebound.json.role, "read")
      const readOnly = rebound.headers["set-cookie"]![0]!.split(";")[0]!
      const refused = yield* request(base, "POST", "/v1/api/schedules/a/s/resume", {
        headers: { cookie: readOnly, "x-csrf-token": rebound.json.csrfToken, host: "evil.example:80" }
      })
      assert.strictEqual(refused.status, 403)
    }))

  it.scopedLive("bad input is a 400 naming the problem, never a crash; unknown paths 404", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: SCHEDULES, store: "sqlite" })
      const base = baseOf(server)
      const cases: Array<readonly [string, string, number, string?]> = [
        ["GET", "/v1/api/runs?state=bogus", 400, "unknown state 'bogus'"],
        ["GET", "/v1/api/runs?limit=0", 400],
        ["GET", "/v1/api/runs?limit=abc", 400],
        ["GET", "/v1/api/runs?cursor=%%%", 400],
        ["GET", "/v1/api/runs?cursor=bm9wZQ", 400, "invalid cursor"],
        ["GET", "/v1/api/calendar", 400],
        ["GET", "/v1/api/calendar?expr=daily&zone=Mars/Olympus", 400, "unknown time zone"],
        ["GET", "/v1/api/runs/x/output?after=-5", 400],
        ["GET", "/v1/api/nothing-here", 404]
      ]
      for (const [method, target, status, text] of cases) {
        const r = yield* request(base, method, target)
        assert.strictEqual(r.status, status, `${target}: ${r.body}`)
        if (text !== undefined) assert.include(r.body, text)
      }
      const calendar = yield* request(base, "GET", `/v1/api/calendar?expr=${encodeURIComponent("Mon *-*-* 25:00:00")}`)
      assert.deepStrictEqual(
        [calendar.status, calendar.json._tag, calendar.json.field, calendar.json.text, calendar.json.position],
        [400, "CalendarError", "hour", "25", 10]
      )
      const badJson = yield* request(base, "POST", "/v1/api/session", {
        headers: { "content-type": "application/json" },
        body: "{nope"
      })
      assert.strictEqual(badJson.status, 400)
      const huge = yield* request(base, "POST", "/v1/api/session", {
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ key: "k".repeat(200_000) })
      })
      assert.deepStrictEqual([huge.status, huge.json._tag], [413, "BadRequest"])
      // still serving
      assert.strictEqual((yield* request(base, "GET", "/v1/api/info")).status, 200)
      assert.strictEqual((yield* request(base, "GET", "/healthz")).status, 200)
    }))

  it.scopedLive("login is rate-limited per address after 10 failures, and the right key is refused too until the minute ends", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: KEYS_TOML })
      const base = baseOf(server)
      const attempt = (key: string) =>
        request(base, "POST", "/v1/api/session", {
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ key })
        })
      for (let i = 0; i < 10; i++) assert.strictEqual((yield* attempt(`guess-${i}`)).status, 401)
      const blocked = yield* attempt(ADMIN_KEY)
      assert.deepStrictEqual([blocked.status, blocked.json._tag], [429, "TooManyRequests"])
      assert.isAbove(blocked.json.retryAfterSecs, 0)
    }))

  it.scopedLive("the OpenAPI document lists every endpoint with its parameters, errors and the two credentials", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: KEYS_TOML })
      const doc = yield* request(baseOf(server), "GET", "/v1/api/openapi.json")
      assert.strictEqual(doc.status, 200)
      const paths = doc.json.paths as Record<string, Record<string, any>>
      const operations = Object.entries(paths).flatMap(([p, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)
      )
      for (
        const op of [
          "GET /v1/api/session",
          "POST /v1/api/session",
          "DELETE /v1/api/session",
          "GET /v1/api/info",
          "GET /v1/api/dashboard",
          "GET /v1/api/agents",
          "GET /v1/api/agents/{agent}",
          "GET /v1/api/schedules",
          "GET /v1/api/schedules/{agent}/{schedule}",
          "GET /v1/api/runs",
          "GET /v1/api/runs/{runId}",
          "GET /v1/api/runs/{runId}/output",
          "GET /v1/api/failures",
          "GET /v1/api/calendar",
          "GET /v1/api/metrics",
          "POST /v1/api/schedules/{agent}/{schedule}/run",
          "POST /v1/api/schedules/{agent}/{schedule}/pause",
          "POST /v1/api/schedules/{agent}/{schedule}/resume",
          "POST /v1/api/runs/{runId}/cancel",
          "POST /v1/api/cleanup"
        ]
      ) assert.include(operations, op)
      assert.deepStrictEqual(Object.keys(doc.json.components.securitySchemes).sort(), ["bearer", "session"])
      const runs = paths["/v1/api/runs"]!.get
      assert.includeMembers(runs.parameters.map((p: any) => p.name), [
        "agent",
        "schedule",
        "state",
        "since",
        "limit",
        "cursor"
      ])
      assert.property(paths["/v1/api/schedules/{agent}/{schedule}/run"]!.post.responses, "403")
    }))

  it.scopedLive("console files: the page with a strict CSP and no caching, hashed assets immutable, ETag revalidation", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "barto-console-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      fs.mkdirSync(path.join(dir, "assets"))
      fs.writeFileSync(path.join(dir, "index.html"), "<!doctype html><title>barto</title>")
      fs.writeFileSync(path.join(dir, "assets", "main-ABC123.js"), "console.log(1)")
      const server = yield* TestServer.make({
        hub: (o) => ({ ...o, web: { consoleEnabled: true, sessionTtlSecs: 60, consoleDir: dir } })
      })
      const base = baseOf(server)
      const page = yield* request(base, "GET", "/")
      assert.strictEqual(page.status, 200)
      assert.strictEqual(page.headers["content-type"], "text/html; charset=utf-8")
      const csp = String(page.headers["content-security-policy"])
      assert.include(csp, "script-src 'self'")
      assert.include(csp, "default-src 'none'")
      assert.notInclude(csp, "unsafe-inline")
      assert.strictEqual(page.headers["cache-control"], "no-cache")
      assert.strictEqual(page.headers["x-content-type-options"], "nosniff")
      const again = yield* request(base, "GET", "/", { headers: { "if-none-match": String(page.headers.etag) } })
      assert.strictEqual(again.status, 304)
      const js = yield* request(base, "GET", "/assets/main-ABC123.js")
      assert.deepStrictEqual([js.status, js.body], [200, "console.log(1)"])
      assert.strictEqual(js.headers["cache-control"], "public, max-age=31536000, immutable")
      assert.strictEqual((yield* request(base, "GET", "/assets/other.js")).status, 404)
      assert.strictEqual((yield* request(base, "GET", "/../package.json")).status, 404)
      const api = yield* request(base, "GET", "/v1/api/info")
      assert.strictEqual(api.headers["cache-control"], "no-store")
    }))
})

// ---------------------------------------------------------------------------------------------

interface SseEvent {
  readonly event: string
  readonly id: string | undefined
  readonly data: any
}

/** Reads an event stream; `next` waits for the next event (5 s at most), `ended` for the end. */
const sse = (url: string, headers: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const queue: Array<SseEvent> = []
    const waiters: Array<() => void> = []
    let finished = false
    const wake = () => waiters.splice(0).forEach((w) => w())
    const req = http.get(url, { headers: { accept: "text/event-stream", ...headers } })
    yield* Effect.addFinalizer(() => Effect.sync(() => req.destroy()))
    const res = yield* Effect.async<http.IncomingMessage, Error>((resume) => {
      req.on("response", (r) => resume(Effect.succeed(r)))
      req.on("error", (e) => resume(Effect.fail(e)))
    })
    assert.strictEqual(res.statusCode, 200)
    assert.match(String(res.headers["content-type"]), /^text\/event-stream/)
    let buffer = ""
    res.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("utf8")
      let end
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        const fields = new Map<string, string>()
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue
          const colon = line.indexOf(":")
          fields.set(line.slice(0, colon), line.slice(colon + 1).trimStart())
        }
        if (!fields.has("data")) continue
        queue.push({
          event: fields.get("event") ?? "message",
          id: fields.get("id"),
          data: JSON.parse(fields.get("data")!)
        })
      }
      wake()
    })
    res.on("end", () => {
      finished = true
      wake()
    })
    const until = <A>(check: () => A | undefined, what: string) =>
      Effect.async<A, Error>((resume) => {
        const poll = () => {
          const a = check()
          if (a !== undefined) resume(Effect.succeed(a))
          else waiters.push(poll)
        }
        poll()
      }).pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error(`no ${what} within 5 s`) }))
    return {
      next: until(() => queue.shift(), "event"),
      ended: until(() => (finished ? true : undefined), "end of the stream")
    }
  })
