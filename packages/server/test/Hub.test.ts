import * as Messages from "@barto/domain/Messages"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import * as os from "node:os"
import * as path from "node:path"
import { Metrics } from "../src/Metrics.js"
import { Registry } from "../src/Registry.js"
import * as TestServer from "./utils/server.js"

const service = <I, S>(server: TestServer.TestServer, tag: Context.Tag<I, S>) =>
  Context.get(server.context as Context.Context<I>, tag)

const get = (url: string, options: https.RequestOptions = {}) =>
  Effect.async<{ status: number; body: string; type: string }, Error>((resume) => {
    const req = (url.startsWith("https") ? https : http).get(url, options, (res) => {
      let body = ""
      res.on("data", (c: Buffer) => (body += c.toString("utf8")))
      res.on(
        "end",
        () => resume(Effect.succeed({ status: res.statusCode ?? 0, body, type: String(res.headers["content-type"]) }))
      )
    })
    req.on("error", (e) => resume(Effect.fail(e)))
  })

const cliHello = (adminKey?: string): Messages.CliToServer => ({
  _tag: "CliHello",
  protocol: Messages.PROTOCOL_VERSION,
  cliVersion: "0.0.0-test",
  ...(adminKey !== undefined ? { adminKey } : {})
})

describe("Hub: bearer", () => {
  const TOML = `api_key = "s3cret-token"\n`

  it.scopedLive("missing header, other scheme, empty or wrong token: 401 unauthorized before the upgrade", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: TOML })
      for (const link of ["worker", "cli"] as const) {
        const url = server.url(link, "alpha")
        for (
          const headers of [
            {},
            { Authorization: "Basic s3cret-token" },
            { Authorization: "bearer s3cret-token" },
            { Authorization: "Bearer  s3cret-token" },
            { Authorization: "Bearer " },
            { Authorization: "Bearer s3cret-tokem" },
            { Authorization: "Bearer s3cret-token-longer" }
          ]
        ) {
          const result = yield* TestServer.attempt(url, { headers })
          assert.deepStrictEqual(
            result,
            { _tag: "Refused", status: 401, body: "unauthorized" },
            JSON.stringify(headers)
          )
        }
      }
      const ok = yield* TestServer.helloAgent(server, "alpha", { headers: { Authorization: "Bearer s3cret-token" } })
      assert.strictEqual(ok.hello.protocol, 1)
      assert.isTrue(Option.isSome(yield* service(server, Registry).get("alpha")))
    }))

  it.scopedLive("without api_key every upgrade is accepted, whatever the header says", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({})
      const a = yield* TestServer.helloAgent(server, "alpha")
      const b = yield* TestServer.helloAgent(server, "beta", { headers: { Authorization: "Bearer whatever" } })
      assert.strictEqual(a.hello.protocol, 1)
      assert.strictEqual(b.hello.protocol, 1)
    }))
})

describe("Hub: routes", () => {
  it.scopedLive("other paths are 404, plain GETs of the ws paths 426, /healthz ok, /metrics counters", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: `api_key = "k"\n` })
      const base = `ws://127.0.0.1:${server.port}`
      for (const p of ["/ws/worker?name=a", "/v1/ws/other", "/v1/ws/worker/extra", "/", "/v2/ws/cli"]) {
        const r = yield* TestServer.attempt(`${base}${p}`, { headers: { Authorization: "Bearer k" } })
        assert.deepStrictEqual(r, { _tag: "Refused", status: 404, body: "not found" }, p)
      }
      const httpBase = `http://127.0.0.1:${server.port}`
      assert.deepInclude(yield* get(`${httpBase}/nope`), { status: 404, body: "not found" })
      assert.deepInclude(yield* get(`${httpBase}/v1/ws/worker?name=a`), { status: 426 })
      assert.deepInclude(yield* get(`${httpBase}/healthz`), { status: 200, body: "ok" })

      const { client } = yield* TestServer.helloAgent(server, "alpha", { headers: { Authorization: "Bearer k" } })
      yield* client.send({ _tag: "RecordBatch", records: [] })
      yield* client.nextTagged("Ack")
      const metrics = yield* get(`${httpBase}/metrics`)
      assert.strictEqual(metrics.status, 200)
      assert.include(metrics.type, "text/plain")
      assert.include(metrics.body, "# TYPE bartos_connections_total counter")
      assert.include(metrics.body, `bartos_connections_total{link="worker"} 1`)
      assert.include(metrics.body, `bartos_connections_open{link="worker"} 1`)
      assert.include(metrics.body, `bartos_http_rejected_total{status="404"} 6`)
      assert.include(metrics.body, "bartos_acks_total 1")
      assert.match(metrics.body, /bartos_frames_in_total\{link="worker"\} 2/)
    }))

  it.scopedLive("a missing name is 'Unknown'; names are URL-decoded", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({})
      const base = `ws://127.0.0.1:${server.port}/v1/ws/worker`
      const anon = yield* TestServer.connectAgent(base)
      yield* anon.send(TestServer.agentHello())
      yield* anon.nextTagged("ScheduleTable")
      const named = yield* TestServer.connectAgent(`${base}?name=host%20one%2Fa`)
      yield* named.send(TestServer.agentHello())
      yield* named.nextTagged("ScheduleTable")
      const names = (yield* service(server, Registry).list).map((c) => c.name)
      assert.deepStrictEqual(names, ["Unknown", "host one/a"])
    }))
})

describe("Hub: CLI link", () => {
  it.scopedLive("hello with admin rights: none configured, right key, wrong key, no key", () =>
    Effect.gen(function*() {
      const open = yield* TestServer.make({})
      const c0 = yield* TestServer.connectCli(open.url("cli", "barto-cli"))
      yield* c0.send(cliHello())
      assert.deepStrictEqual(yield* c0.next(), {
        _tag: "ServerHelloCli",
        protocol: 1,
        serverVersion: "0.0.0-test",
        admin: true,
        statementTimeoutMs: 5000
      })

      const server = yield* TestServer.make({ toml: `admin_key = "adm1n"\n` })
      for (const [key, admin] of [["adm1n", true], ["adm1m", false], ["adm1n-", false], [undefined, false]] as const) {
        const c = yield* TestServer.connectCli(server.url("cli"))
        yield* c.send(cliHello(key))
        const hello = yield* c.nextTagged("ServerHelloCli")
        assert.strictEqual(hello.admin, admin, String(key))
      }
    }))

  it.scopedLive("requests are answered by id, pings ponged, bad frames answered and survived", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({})
      yield* TestServer.helloAgent(server, "alpha")
      const cli = yield* TestServer.connectCli(server.url("cli", "barto-cli"))
      yield* cli.send(cliHello())
      yield* cli.nextTagged("ServerHelloCli")
      yield* cli.sendRaw(new TextEncoder().encode("]]"))
      assert.strictEqual((yield* cli.nextTagged("ProtocolError")).code, "undecodable")
      yield* cli.sendRaw(new TextEncoder().encode(JSON.stringify({ _tag: "DropTables", id: 1 })))
      assert.strictEqual((yield* cli.nextTagged("ProtocolError")).code, "unknown_tag")
      yield* cli.send({ _tag: "Ping", id: 5, sentAt: TestServer.micros(5) })
      assert.strictEqual((yield* cli.nextTagged("Pong")).id, 5)
      yield* cli.send({ _tag: "InfoRequest", id: 42 })
      const info = yield* cli.nextTagged("InfoResponse")
      assert.strictEqual(info.id, 42)
      assert.strictEqual(info.connectedAgents, 1)
      assert.deepStrictEqual(info.listeners, [`ws://127.0.0.1:${server.port}`])
      yield* cli.send({ _tag: "ClientsRequest", id: 43 })
      const clients = yield* cli.nextTagged("ClientsResponse")
      assert.deepStrictEqual(clients.clients.map((c) => c.name), ["alpha"])
    }))

  it.scopedLive("behind a trusted proxy the agent's address is the forwarded one; an untrusted peer's header is ignored", () =>
    Effect.gen(function*() {
      const forwarded = { "x-forwarded-for": "6.6.6.6, 198.51.100.7" }
      const trusting = yield* TestServer.make({ toml: `[actix]\ntrusted_proxies = ["127.0.0.0/8"]\n` })
      yield* TestServer.helloAgent(trusting, "proxied", { headers: forwarded })
      const seen = yield* service(trusting, Registry).list
      assert.deepStrictEqual(seen.map((c) => [c.name, c.ip]), [["proxied", "198.51.100.7"]])
      const plain = yield* TestServer.make({})
      yield* TestServer.helloAgent(plain, "direct", { headers: forwarded })
      const direct = yield* service(plain, Registry).list
      assert.deepStrictEqual(direct.map((c) => [c.name, c.ip]), [["direct", "127.0.0.1"]])
    }))

  it.scopedLive("a CLI protocol mismatch is closed with 4002", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({})
      const cli = yield* TestServer.connectCli(server.url("cli"))
      yield* cli.send({ _tag: "CliHello", protocol: 2, cliVersion: "x" })
      assert.strictEqual((yield* cli.nextTagged("ProtocolError")).code, "protocol_version")
      assert.deepStrictEqual(yield* cli.closed(), { code: 4002, reason: "protocol version mismatch: server 1, cli 2" })
    }))
})

describe("Hub: CLI link refusals are counted", () => {
  it.scopedLive("a second CliHello and a first frame that is not CliHello are answered and counted", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({})
      const metrics = service(server, Metrics)
      const cli = yield* TestServer.connectCli(server.url("cli"))
      yield* cli.send(cliHello())
      yield* cli.nextTagged("ServerHelloCli")
      yield* cli.send(cliHello())
      const error = yield* cli.nextTagged("ProtocolError")
      assert.strictEqual(error.code, "unexpected")
      assert.match(error.message, /CliHello was already received/)
      yield* cli.send({ _tag: "Ping", id: 9, sentAt: TestServer.micros(9) })
      assert.strictEqual((yield* cli.nextTagged("Pong")).id, 9)
      assert.strictEqual(yield* metrics.value("bartos_frames_rejected_total", { reason: "unexpected" }), 1)

      const early = yield* TestServer.connectCli(server.url("cli"))
      yield* early.send({ _tag: "InfoRequest", id: 1 })
      assert.strictEqual((yield* early.nextTagged("ProtocolError")).code, "unexpected")
      assert.deepStrictEqual(yield* early.closed(), { code: 1008, reason: "first frame must be CliHello" })
      assert.strictEqual(yield* metrics.value("bartos_frames_rejected_total", { reason: "unexpected" }), 2)
    }))
})

describe("Hub: lifecycle", () => {
  it.scopedLive("shutdown closes every socket with 1001 and a reason", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({})
      const { client } = yield* TestServer.helloAgent(server, "alpha")
      const cli = yield* TestServer.connectCli(server.url("cli"))
      yield* cli.send(cliHello())
      yield* cli.nextTagged("ServerHelloCli")
      yield* server.teardown
      assert.deepStrictEqual(yield* client.closed(), { code: 1001, reason: "server shutting down" })
      assert.deepStrictEqual(yield* cli.closed(), { code: 1001, reason: "server shutting down" })
      const again = yield* TestServer.attempt(server.url("worker", "alpha"))
      assert.strictEqual(again._tag, "Failed")
    }))

  it.scopedLive("shutdown lets an ingest transaction in flight finish before the socket closes", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({})
      const held = yield* TestServer.holdIngest(server.memory!)
      const { client } = yield* TestServer.helloAgent(server, "alpha")
      yield* client.send({
        _tag: "RecordBatch",
        records: [{
          _tag: "RunMissed",
          seq: 0,
          runId: "r-1" as Messages.RunId,
          schedule: "s",
          scheduledAt: TestServer.micros(1),
          reason: "stall"
        }]
      })
      yield* held.started
      const shutdown = yield* Effect.fork(server.teardown)
      yield* Effect.yieldNow()
      assert.isUndefined(server.memory!.records.get("alpha"), "still held open")
      yield* held.release
      yield* Fiber.join(shutdown)
      assert.deepStrictEqual(server.memory!.records.get("alpha")!.map((r) => r.seq), [0])
      assert.strictEqual((yield* client.closed()).code, 1001)
    }))

  it.scopedLive("a CLI peer that stops answering protocol pings is dropped", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ hub: (o) => ({ ...o, cliKeepaliveMs: 100 }) })
      const mute = yield* TestServer.connectCli(server.url("cli"), { autoPong: false })
      yield* mute.send(cliHello())
      yield* mute.nextTagged("ServerHelloCli")
      const healthy = yield* TestServer.connectCli(server.url("cli"))
      yield* healthy.send(cliHello())
      yield* healthy.nextTagged("ServerHelloCli")
      assert.strictEqual((yield* mute.closed()).code, 1006)
      yield* healthy.send({ _tag: "Ping", id: 1, sentAt: TestServer.micros(1) })
      assert.strictEqual((yield* healthy.nextTagged("Pong")).id, 1)
    }))

  it.scopedLive("an invalid signing key stops the start (fail-closed)", () =>
    Effect.gen(function*() {
      const result = yield* TestServer.make({ toml: `signing_key = "not-a-key"\n` }).pipe(Effect.flip)
      assert.match(String((result as Error).message), /signing_key/)
    }))
})

// ---------------------------------------------------------------------------------------------
// TLS and mTLS, with a throwaway CA made by openssl
// ---------------------------------------------------------------------------------------------

const pki = (() => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bartos-pki-"))
  const run = (...args: Array<string>) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" })
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
  run("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=barto test CA")
  const issue = (name: string, subject: string, san: string) => {
    fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\n`)
    run("req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subject)
    run(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`
    )
    return {
      cert: fs.readFileSync(path.join(dir, `${name}.pem`), "utf8"),
      key: fs.readFileSync(path.join(dir, `${name}.key`), "utf8")
    }
  }
  const server = issue("server", "/CN=localhost", "DNS:localhost,IP:127.0.0.1")
  const alpha = issue("alpha", "/CN=alpha", "DNS:alpha.example")
  const gamma = issue("gamma", "/CN=someone-else", "DNS:gamma,DNS:gamma.example")
  // barto-cli's role is the OU; its CN names the operator (and could be an agent's name).
  const operator = issue("operator", "/CN=alpha/OU=barto-cli", "DNS:alice.example")
  return { dir, ca: fs.readFileSync(path.join(dir, "ca.pem"), "utf8"), server, alpha, gamma, operator }
})()
afterAll(() => fs.rmSync(pki.dir, { recursive: true, force: true }))

const tlsToml = (extra: string, mtls: boolean) =>
  `${extra}
[actix.tls]
cert_file_path = "${path.join(pki.dir, "server.pem")}"
key_file_path = "${path.join(pki.dir, "server.key")}"
${mtls ? `client_ca_cert = "${path.join(pki.dir, "ca.pem")}"` : ""}
`

describe("Hub: TLS", () => {
  it.scopedLive("with TLS the plain listener is off unless allow_plaintext", () =>
    Effect.gen(function*() {
      const tlsOnly = yield* TestServer.make({ toml: tlsToml("", false) })
      assert.deepStrictEqual(tlsOnly.listeners.map((l) => l.scheme), ["wss"])
      const { hello } = yield* TestServer.helloAgent(tlsOnly, "alpha", { ca: pki.ca })
      assert.strictEqual(hello.protocol, 1)
      assert.deepInclude(yield* get(`https://127.0.0.1:${tlsOnly.port}/healthz`, { ca: pki.ca }), { status: 200 })

      const both = yield* TestServer.make({ toml: tlsToml("allow_plaintext = true", false) })
      assert.deepStrictEqual(both.listeners.map((l) => l.scheme), ["ws", "wss"])
      const plain = yield* TestServer.helloAgent(both, "alpha")
      assert.strictEqual(plain.hello.protocol, 1)
    }))

  it.scopedLive("the HTTP API is on the TLS listener with the same mTLS, and its session cookie is Secure there", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: tlsToml(`admin_key = "adm1n-key"`, true) })
      const base = `https://127.0.0.1:${server.port}`
      const info = yield* get(`${base}/v1/api/info`, { ca: pki.ca, ...pki.alpha })
      assert.strictEqual(info.status, 200)
      assert.deepInclude(JSON.parse(info.body), { listeners: [`wss://127.0.0.1:${server.port}`] })
      const noCert = yield* Effect.either(get(`${base}/v1/api/info`, { ca: pki.ca }))
      assert.isTrue(noCert._tag === "Left", "a client without a certificate never gets an answer")
      const login = yield* Effect.async<{ status: number; cookie: string }, Error>((resume) => {
        const req = https.request(`${base}/v1/api/session`, {
          method: "POST",
          ca: pki.ca,
          ...pki.alpha,
          headers: { "content-type": "application/json" }
        }, (res) => {
          res.resume()
          res.on(
            "end",
            () =>
              resume(Effect.succeed({ status: res.statusCode ?? 0, cookie: String(res.headers["set-cookie"]?.[0]) }))
          )
        })
        req.on("error", (e) => resume(Effect.fail(e)))
        req.end(JSON.stringify({ key: "adm1n-key" }))
      })
      assert.strictEqual(login.status, 200)
      assert.match(login.cookie, /; Secure/)
      assert.match(login.cookie, /; HttpOnly/)
    }))

  it.scopedLive("mTLS: the certificate's CN or a DNS SAN must equal the name", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: tlsToml("", true) })
      const url = (name: string) => server.url("worker", name)

      const byCn = yield* TestServer.helloAgent(server, "alpha", { ca: pki.ca, ...pki.alpha })
      assert.strictEqual(byCn.hello.protocol, 1)
      const bySan = yield* TestServer.helloAgent(server, "gamma.example", { ca: pki.ca, ...pki.gamma })
      assert.strictEqual(bySan.hello.protocol, 1)

      const wrong = yield* TestServer.attempt(url("beta"), { ca: pki.ca, ...pki.alpha })
      assert.strictEqual(wrong._tag, "Refused")
      assert.strictEqual((wrong as { status: number }).status, 403)
      const noCert = yield* TestServer.attempt(url("alpha"), { ca: pki.ca })
      assert.strictEqual(noCert._tag, "Failed")

      // The CLI link needs a barto-cli certificate (OU=barto-cli), whatever its name.
      const cli = yield* TestServer.connectCli(server.url("cli", "barto-cli"), { ca: pki.ca, ...pki.operator })
      yield* cli.send(cliHello())
      assert.strictEqual((yield* cli.nextTagged("ServerHelloCli")).admin, true)
    }))

  it.scopedLive("mTLS: an agent's certificate does not open the CLI link, a barto-cli certificate is no agent", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: tlsToml("", true) })
      for (const cert of [pki.alpha, pki.gamma]) {
        const asCli = yield* TestServer.attempt(server.url("cli", "barto-cli"), { ca: pki.ca, ...cert })
        assert.deepStrictEqual(asCli, {
          _tag: "Refused",
          status: 403,
          body: "forbidden: the CLI link takes only barto-cli certificates (OU=barto-cli)"
        })
      }
      // Its CN is "alpha", an agent's name: the role still forbids posing as that agent.
      const asAgent = yield* TestServer.attempt(server.url("worker", "alpha"), { ca: pki.ca, ...pki.operator })
      assert.deepStrictEqual(asAgent, {
        _tag: "Refused",
        status: 403,
        body: "forbidden: a barto-cli certificate (OU=barto-cli) cannot connect as an agent"
      })
      yield* server.waitForLog("refused cli connection 'barto-cli'")
    }))

  it.scopedLive("allow_plaintext with mTLS warns at start that the plain listener binds nothing", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ toml: tlsToml("allow_plaintext = true", true) })
      assert.deepStrictEqual(server.listeners.map((l) => l.scheme), ["ws", "wss"])
      const warning = server.logs.find((l) => l.includes("allow_plaintext = true with mTLS"))
      assert.isDefined(warning)
      assert.match(warning!, /^WARN SECURITY: .*no client certificate.*any agent or as barto-cli/)
      const quiet = yield* TestServer.make({ toml: tlsToml("", true) })
      assert.isUndefined(quiet.logs.find((l) => l.includes("allow_plaintext")))
    }))
})
