/**
 * TLS and mTLS with the real programs and a PKI made by `openssl` in the test's directory:
 * bartos with `[actix.tls]` (the plain listener off), agents and barto-cli over `wss` pinning the
 * CA; under mTLS (`client_ca_cert`) an agent's certificate must name the agent, and only a
 * barto-cli certificate (OU=barto-cli) opens the CLI link.
 */
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { cliCert, clientCert, makeCa, serverCert } from "./utils/certs.js"
import { type Cluster, dbKinds, makeCluster, type Schedule, waitFor } from "./utils/cluster.js"
import { killAll } from "./utils/procs.js"

const every = (name: string): Schedule => ({ name: "job", on_calendar: "*-*-* *:*:*", cmds: [`echo job of ${name}`] })

const succeededRun = (c: Cluster, agent: string) =>
  waitFor(`a succeeded run of ${agent}`, async () => {
    const [row] = await c.db.all<{ run_id: string }>(
      `SELECT run_id FROM runs WHERE agent = ? AND state = 'succeeded' ORDER BY scheduled_at LIMIT 1`,
      [agent]
    )
    return row
  }, { timeoutMs: 40_000 })

const outputOf = async (c: Cluster, runId: string) =>
  (await c.db.all<{ data: string }>(`SELECT data FROM output_lines WHERE run_id = ? ORDER BY line_seq`, [runId])).map((
    l
  ) => l.data)

/** Nothing of `agent` reached the database: no run, no session, no agent row. */
const nothingFrom = async (c: Cluster, agent: string) => {
  expect(await c.db.all(`SELECT run_id FROM runs WHERE agent = ?`, [agent])).toEqual([])
  expect(await c.db.all(`SELECT session_id FROM agent_sessions WHERE agent = ?`, [agent])).toEqual([])
  expect(await c.db.all(`SELECT name FROM agents WHERE name = ?`, [agent])).toEqual([])
}

for (const kind of dbKinds()) {
  describe(`TLS and mTLS on ${kind}`, { timeout: 120_000 }, () => {
    let tls: Cluster
    let mtls: Cluster
    let pki: string
    let ca: ReturnType<typeof makeCa>
    let otherCa: ReturnType<typeof makeCa>
    const current: Array<Cluster> = []

    beforeAll(async () => {
      tls = await makeCluster(kind, { schedules: { t: [every("t")], wrongca: [every("wrongca")] } })
      pki = join(tls.dir, "pki")
      mkdirSync(pki)
      ca = makeCa(pki, "ca")
      otherCa = makeCa(pki, "other-ca")
      const server = serverCert(ca)
      tls.writeServerConfig({
        extra: { actix: { tls: { port: 0, cert_file_path: server.cert, key_file_path: server.key } } }
      })
      mtls = await makeCluster(kind, {
        schedules: { good: [every("good")], mallory: [every("mallory")], nocert: [every("nocert")] },
        server: {
          actix: {
            tls: { port: 0, cert_file_path: server.cert, key_file_path: server.key, client_ca_cert: ca.cert }
          }
        }
      })
      await Promise.all([tls.startServer(), mtls.startServer()])
    })

    beforeEach(({ onTestFailed }) => {
      onTestFailed(() => {
        for (const c of current) console.log(c.diagnostics())
      })
    })

    afterAll(async () => {
      await Promise.all([tls?.stop(), mtls?.stop()])
      await killAll()
    })

    it("TLS only: the plain listener is off, a pinned agent runs, one pinning another CA cannot connect", async () => {
      current.splice(0, current.length, tls)
      const listening = tls.server!.stdout.filter((l) => /listening on/.test(l))
      expect(listening).toEqual([expect.stringMatching(new RegExp(`listening on wss://127\\.0\\.0\\.1:${tls.port} `))])

      await Promise.all([
        tls.startAgent("t", { bartos: { prefix: "wss", ca_cert: ca.cert } }),
        tls.startAgent("wrongca", { bartos: { prefix: "wss", ca_cert: otherCa.cert } })
      ])
      const run = await succeededRun(tls, "t")
      expect(await outputOf(tls, run.run_id)).toEqual(["job of t"])

      const refused = await tls.waitForLog("wrongca", /connection to bartos ended \(attempt \d+\): (.*)/, 30_000)
      expect(refused[1]).toMatch(
        /cannot connect to wss:\/\/127\.0\.0\.1:\d+.*(certificate|self.signed|unable to verify)/i
      )
      expect(tls.log("wrongca")).not.toMatch(/accepted agent/)

      // barto-cli over wss, pinned to our CA
      const pinned = await tls.cliJson<Array<{ name: string }>>(["clients"], {
        bartos: { prefix: "wss", ca_cert: ca.cert }
      })
      expect(pinned.map((x) => x.name)).toEqual(["t"])
      await nothingFrom(tls, "wrongca")
    })

    it("mTLS: the certificate must name the agent; no certificate, no connection", async () => {
      current.splice(0, current.length, mtls)
      const good = clientCert(ca, "good")
      const cli = cliCert(ca, "e2e")
      const link = (cert?: { cert: string; key: string }) => ({
        bartos: { prefix: "wss", ca_cert: ca.cert, ...(cert ? { client_cert: cert.cert, client_key: cert.key } : {}) }
      })
      await Promise.all([
        mtls.startAgent("good", link(good)),
        // a valid certificate of our CA, but issued to "good"
        mtls.startAgent("mallory", link(good)),
        mtls.startAgent("nocert", link())
      ])
      const run = await succeededRun(mtls, "good")
      expect(await outputOf(mtls, run.run_id)).toEqual(["job of good"])

      // mallory: refused at the upgrade, and bartos says why
      const malloryEnded = await mtls.waitForLog("mallory", /connection to bartos ended \(attempt \d+\): (.*)/, 30_000)
      expect(malloryEnded[1]).toMatch(/HTTP 403/)
      const serverSide = await mtls.waitForLog("bartos", /refused .*mallory.*/, 30_000)
      expect(serverSide[0]).toMatch(/not issued to 'mallory'/)
      // nocert: the TLS handshake itself fails
      const nocertEnded = await mtls.waitForLog("nocert", /connection to bartos ended \(attempt \d+\): (.*)/, 30_000)
      expect(nocertEnded[1]).toMatch(/cannot connect to wss:/)
      expect(nocertEnded[1]).not.toMatch(/HTTP 403/)
      await mtls.waitForLog("bartos", /TLS handshake .*refused|refused .*TLS/i, 30_000)

      // barto-cli with its own certificate of our CA
      const clients = await mtls.cliJson<Array<{ name: string }>>(["clients"], link(cli))
      expect(clients.map((x) => x.name)).toEqual(["good"])
      // An agent's certificate (every agent host has one) does not open the CLI link...
      const withAgentCert = await mtls.cli(["clients"], link(good))
      expect(withAgentCert.code).toBe(1)
      expect(withAgentCert.stderr).toMatch(/HTTP 403/)
      await mtls.waitForLog("bartos", /refused cli connection .*barto-cli certificates/, 30_000)
      // ...and barto-cli's certificate does not connect as an agent, even one its CN names.
      const e2eAgent = await mtls.startAgent("e2e", link(cli))
      const e2eEnded = await mtls.waitForLog("e2e", /connection to bartos ended \(attempt \d+\): (.*)/, 30_000)
      expect(e2eEnded[1]).toMatch(/HTTP 403/)
      await mtls.waitForLog("bartos", /refused worker connection 'e2e'.*cannot connect as an agent/, 30_000)
      await e2eAgent.stop()
      await nothingFrom(mtls, "e2e")
      await nothingFrom(mtls, "mallory")
      await nothingFrom(mtls, "nocert")
    })
  })
}
