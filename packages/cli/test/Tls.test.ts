/**
 * The CLI link over TLS: a pinned `ca_cert`, mTLS with `client_cert`/`client_key`, and what the
 * user sees when the server's certificate is not trusted or a client certificate is missing.
 * The PKI is made with the real `openssl` (EC P-256, fast).
 */
import { clientCert, makeCa, serverCert } from "@barto/e2e/certs"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { envFor, fakeBartos } from "./fakeBartos.js"
import { baseEnv, runCli, tempDir } from "./utils.js"

const dir = tempDir("barto-cli-tls-")
const caCert = makeCa(dir, "ca")
makeCa(dir, "other-ca")
const server = serverCert(caCert)
const client = clientCert(caCert, "barto-cli")
const read = (p: string) => fs.readFileSync(p)
const tls = { cert: read(server.cert), key: read(server.key), clientCa: read(path.join(dir, "ca.crt")) }

describe("the CLI link over TLS", () => {
  it.scopedLive("wss with a pinned ca_cert and an mTLS client certificate", () =>
    Effect.gen(function*() {
      const peerNames: Array<string> = []
      const fake = yield* fakeBartos({
        tls,
        peerNames,
        answer: (req) => [{ _tag: "PauseResponse", id: req.id, agent: "a", schedule: "s", paused: true }]
      })
      const r = yield* runCli(["pause", "a", "s"], {
        env: baseEnv(envFor(fake, {
          BARTO_CLI_BARTOS__PREFIX: "wss",
          BARTO_CLI_BARTOS__CA_CERT: path.join(dir, "ca.crt"),
          BARTO_CLI_BARTOS__CLIENT_CERT: client.cert,
          BARTO_CLI_BARTOS__CLIENT_KEY: client.key
        }))
      })
      assert.strictEqual(r.code, 0, r.stderr)
      assert.strictEqual(r.stdout, "a s: paused\n")
      assert.deepStrictEqual(peerNames, ["barto-cli"])
    }))

  it.scopedLive("a server certificate from another CA → exit 1, cannot connect (certificate error)", () =>
    Effect.gen(function*() {
      const fake = yield* fakeBartos({ tls: { cert: tls.cert, key: tls.key } })
      const r = yield* runCli(["info"], {
        env: baseEnv(envFor(fake, {
          BARTO_CLI_BARTOS__PREFIX: "wss",
          BARTO_CLI_BARTOS__CA_CERT: path.join(dir, "other-ca.crt")
        }))
      })
      assert.strictEqual(r.code, 1)
      assert.match(
        r.stderr,
        new RegExp(`^barto-cli: cannot connect to wss://127\\.0\\.0\\.1:${fake.port}/v1/ws/cli: [A-Z_]+`)
      )
      assert.strictEqual(fake.upgrades.length, 0)
    }))

  it.scopedLive("mTLS required but no client certificate → exit 1; an unreadable ca_cert → exit 1", () =>
    Effect.gen(function*() {
      const fake = yield* fakeBartos({ tls })
      const r = yield* runCli(["info", "--timeout", "3"], {
        env: baseEnv(
          envFor(fake, { BARTO_CLI_BARTOS__PREFIX: "wss", BARTO_CLI_BARTOS__CA_CERT: path.join(dir, "ca.crt") })
        )
      })
      assert.strictEqual(r.code, 1)
      assert.match(r.stderr, /^barto-cli: (cannot connect to wss:|connection closed by bartos)/)
      assert.strictEqual(r.stderr.trim().split("\n").length, 1, r.stderr)
      const missing = yield* runCli(["info"], {
        env: baseEnv(
          envFor(fake, { BARTO_CLI_BARTOS__PREFIX: "wss", BARTO_CLI_BARTOS__CA_CERT: path.join(dir, "nope.crt") })
        )
      })
      assert.strictEqual(missing.code, 1)
      assert.match(missing.stderr, /^barto-cli: cannot read ca_cert .*nope\.crt/)
    }))
})
