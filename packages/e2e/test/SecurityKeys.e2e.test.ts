/**
 * Keys with the real programs: bartos signing its frames (Ed25519) and sealing both directions
 * with an HMAC envelope, a Bearer `api_key` on every upgrade and an `admin_key` for the CLI's
 * admin commands. Agents with the matching keys run their jobs; agents with a wrong key run
 * nothing, and each side says so in its log.
 */
import * as http from "node:http"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { ed25519 } from "./utils/certs.js"
import { type Cluster, dbKinds, makeCluster, type Schedule, waitFor } from "./utils/cluster.js"
import { killAll } from "./utils/procs.js"

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/

const job = (agent: string): Schedule => ({
  name: "job",
  on_calendar: "*-*-* *:*:*",
  cmds: [`echo signed job of ${agent}`]
})

for (const kind of dbKinds()) {
  describe(`signatures, HMAC, api_key and admin_key on ${kind}`, { timeout: 120_000 }, () => {
    let c: Cluster
    const keys = ed25519()
    const stranger = ed25519()
    const hmac = "shared hmac secret 00123"
    const apiKey = "api-key-7f1c"
    const adminKey = "admin-key-93d0"

    const agentExtra = (o: { publicKey?: string; hmacKey?: string; apiKey?: string | null }) => ({
      server_public_key: o.publicKey ?? keys.publicKey,
      hmac_key: o.hmacKey ?? hmac,
      bartos: o.apiKey === null ? {} : { api_key: o.apiKey ?? apiKey }
    })
    const runsOf = (agent: string) =>
      c.db.all<{ run_id: string; state: string }>(
        `SELECT run_id, state FROM runs WHERE agent = ? ORDER BY scheduled_at`,
        [
          agent
        ]
      )

    beforeAll(async () => {
      c = await makeCluster(kind, {
        schedules: {
          ok: [job("ok"), { name: "quick", on_calendar: "2099-01-01 00:00:00", cmds: ["echo quick"] }, {
            name: "p",
            on_calendar: "2099-01-01 00:00:00",
            cmds: ["true"]
          }],
          badpub: [job("badpub")],
          badhmac: [job("badhmac")],
          nokey: [job("nokey")]
        },
        server: { signing_key: keys.signingKey, hmac_key: hmac, api_key: apiKey, admin_key: adminKey }
      })
      await c.startServer()
    })

    beforeEach(({ onTestFailed }) => {
      onTestFailed(() => console.log(c.diagnostics()))
    })

    afterAll(async () => {
      await c?.stop()
      await killAll()
    })

    it("agents with the right keys run; a wrong public key, HMAC key or api_key runs nothing", async () => {
      await Promise.all([
        c.startAgent("ok", agentExtra({})),
        c.startAgent("badpub", agentExtra({ publicKey: stranger.publicKey })),
        c.startAgent("badhmac", agentExtra({ hmacKey: "not the shared secret" })),
        c.startAgent("nokey", agentExtra({ apiKey: null }))
      ])
      const run = await waitFor(
        "a succeeded run of ok",
        async () => (await runsOf("ok")).find((r) => r.state === "succeeded"),
        { timeoutMs: 40_000 }
      )
      const out = await c.db.all<{ data: string }>(`SELECT data FROM output_lines WHERE run_id = ?`, [run.run_id])
      expect(out.map((l) => l.data)).toEqual(["signed job of ok"])

      // badpub: every frame of bartos fails the signature check and is dropped; bartos hears why
      await c.waitForLog("badpub", /dropping a frame from bartos: bad_signature/, 30_000)
      await c.waitForLog("bartos", /agent reports a protocol error \(bad_envelope\).*agent=badpub/, 30_000)
      expect(c.log("badpub")).not.toMatch(/accepted agent|schedule table/)

      // badhmac: bartos rejects its unauthenticated frames, and it drops bartos' frames
      await c.waitForLog("bartos", /rejected frame \(bad_envelope\): bad_mac.*agent=badhmac/, 30_000)
      await c.waitForLog("badhmac", /dropping a frame from bartos: bad_mac/, 30_000)
      expect(c.log("badhmac")).not.toMatch(/accepted agent|schedule table/)

      // nokey: 401 at the upgrade, logged on both sides
      await c.waitForLog("nokey", /connection to bartos ended \(attempt \d+\): .*HTTP 401/, 30_000)
      await c.waitForLog("bartos", /refused worker connection 'nokey' from 127\.0\.0\.1: HTTP 401/, 30_000)

      // after all that, still not a single run of the three
      for (const agent of ["badpub", "badhmac", "nokey"]) expect(await runsOf(agent)).toEqual([])
      expect(await c.db.all(`SELECT name FROM agents WHERE name IN ('badhmac', 'nokey')`)).toEqual([])
      expect(c.agents.get("ok")!.child.exitCode).toBeNull()
    })

    it("barto-cli: no api_key is 401; admin commands need the admin key", async () => {
      const read = { bartos: { api_key: apiKey } }
      const admin = { bartos: { api_key: apiKey, admin_key: adminKey } }
      const [noKey, cleanupNo, runNo, pauseNo, cleanupYes, runYes, pauseYes] = await Promise.all([
        c.cli(["clients"]),
        c.cli(["cleanup", "--dry-run"], read),
        c.cli(["run", "ok", "quick"], read),
        c.cli(["pause", "ok", "p"], read),
        c.cliJson<{ dryRun: boolean; runs: number }>(["cleanup", "--dry-run"], admin),
        c.cli(["run", "ok", "quick"], admin),
        c.cli(["pause", "ok", "p"], admin)
      ])
      expect(noKey.code).toBe(1)
      expect(noKey.stderr).toContain("unauthorized")
      expect(noKey.stdout).toBe("")
      // with the api_key (every call below has it) bartos answers: forbidden, or done for the admin

      for (const r of [cleanupNo, runNo, pauseNo]) {
        expect(r.code, r.stderr).toBe(1)
        expect(r.stderr).toMatch(/forbidden/)
      }
      expect(cleanupYes).toMatchObject({ dryRun: true })
      expect(runYes.code, runYes.stderr).toBe(0)
      const runId = runYes.stdout.match(UUID)?.[0]
      expect(runId).toBeDefined()
      await waitFor("the manual run to succeed", async () => {
        const [r] = await c.db.all<{ state: string; run_trigger: string }>(
          `SELECT state, run_trigger FROM runs WHERE run_id = ?`,
          [runId]
        )
        return r?.state === "succeeded" ? r : undefined
      })
      // the refused run started nothing: the one manual run is the admin's
      expect(await c.db.all(`SELECT run_id FROM runs WHERE schedule = 'quick'`)).toEqual([{ run_id: runId }])
      expect(pauseYes.code, pauseYes.stderr).toBe(0)
      expect(pauseYes.stdout).toContain("ok p: paused")
      expect(await c.db.all(`SELECT agent, schedule FROM paused_schedules`)).toEqual([{ agent: "ok", schedule: "p" }])
    })

    it("query needs the admin key (query_requires_admin is on with an admin key)", async () => {
      const [readOnly, admin] = await Promise.all([
        c.cli(["query", "-q", "SELECT 1 AS one"], { bartos: { api_key: apiKey } }),
        c.cliJson<{ rows: Array<Array<string>> }>(["query", "-q", "SELECT 1 AS one"], {
          bartos: { api_key: apiKey, admin_key: adminKey }
        })
      ])
      expect(readOnly.code).toBe(1)
      expect(readOnly.stderr.trim()).toBe("barto-cli: forbidden: query requires the admin key")
      expect(admin.rows).toEqual([["1"]])
    })

    it("a refused peer's name cannot forge log lines or drive a terminal: bartos' log escapes it", async () => {
      const name = "evil\r\n2026-01-01T00:00:00.000Z INFO forged\u001b[2J\u009b31m\u202e"
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.get(
          `http://127.0.0.1:${c.port}/v1/ws/worker?name=${encodeURIComponent(name)}`,
          {
            headers: {
              Connection: "Upgrade",
              Upgrade: "websocket",
              "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="
            }
          }
        )
        req.on("response", (res) => resolve(res.statusCode ?? 0))
        req.on("upgrade", (res) => resolve(res.statusCode ?? 0))
        req.on("error", reject)
      })
      expect(status).toBe(401)
      const [line] = await c.waitForLog("bartos", /refused worker connection 'evil.*/)
      expect(line).toContain("'evil\\r\\n2026-01-01T00:00:00.000Z INFO forged\\x1b[2J\\x9b31m\\u202e'")
      const log = c.log("bartos")
      expect(log).not.toMatch(/^2026-01-01T00:00:00\.000Z INFO forged/m)
      // eslint-disable-next-line no-control-regex
      expect(log.replace(/\n/g, "")).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e]/)
    })
  })
}
