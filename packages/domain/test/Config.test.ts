import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Layer, Redacted } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { inspect } from "node:util"
import * as Config from "../src/Config.js"

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "barto-config-"))

const writeFile = (dir: string, name: string, text: string) => {
  const file = path.join(dir, name)
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, text)
  return file
}

/** An environment with a HOME of its own so the default config file never exists. */
const isolatedEnv = (extra: Record<string, string> = {}) => ({ HOME: tmp(), ...extra })

/** A ConfigProvider holding `vars`, like a process environment would, with a HOME of its own. */
const providerOf = (vars: Record<string, string> = {}) =>
  ConfigProvider.fromMap(new Map(Object.entries({ HOME: tmp(), ...vars })))

const failure = <A>(effect: Effect.Effect<A, Config.ConfigError>) =>
  Effect.gen(function*() {
    const result = yield* Effect.either(effect)
    if (Either.isRight(result)) return assert.fail(`expected a ConfigError, got ${inspect(result.right)}`)
    return result.left
  })

describe("defaultPaths", () => {
  it("follows XDG with ~/.config and ~/.local/share fallbacks", () => {
    const p = Config.defaultPaths("bartos", { HOME: "/home/u" })
    assert.deepStrictEqual(p, {
      configFile: "/home/u/.config/bartos/bartos.toml",
      dataDir: "/home/u/.local/share/bartos",
      logFile: "/home/u/.local/share/bartos/logs/bartos.log",
      dbFile: "/home/u/.local/share/bartos/bartos.db"
    })
    const c = Config.defaultPaths("bartoc", { HOME: "/home/u", XDG_CONFIG_HOME: "/cfg", XDG_DATA_HOME: "/data" })
    assert.strictEqual(c.configFile, "/cfg/bartoc/bartoc.toml")
    assert.strictEqual(c.logFile, "/data/bartoc/logs/bartoc.log")
    assert.strictEqual(c.dbFile, "/data/bartoc/db/bartoc.db")
    const cli = Config.defaultPaths("barto-cli", { HOME: "/home/u", XDG_CONFIG_HOME: "relative/is/ignored" })
    assert.strictEqual(cli.configFile, "/home/u/.config/barto-cli/barto-cli.toml")
  })
})

describe("defaults", () => {
  it.effect("bartos starts with zero configuration", () =>
    Effect.gen(function*() {
      const env = isolatedEnv()
      const c = yield* Config.loadBartos({ env })
      assert.strictEqual(c.actix.ip, "127.0.0.1")
      assert.strictEqual(c.actix.port, 20000)
      assert.strictEqual(c.allow_plaintext, false)
      assert.strictEqual(c.sqlite.path, path.join(env.HOME, ".local/share/bartos/bartos.db"))
      assert.deepStrictEqual(c.retention, { interval_secs: 3600 })
      assert.deepStrictEqual(c.limits, {
        max_frame_bytes: 1048576,
        query_row_cap: 1000,
        query_max_bytes: 8388608,
        query_timeout_ms: 5000,
        query_concurrency: 2,
        max_answer_bytes: 67108864,
        liveness_secs: 15,
        metrics_max_schedules: 1000
      })
      assert.deepStrictEqual(c.alerts, { agent_down_after: 60, check_interval: 0.25, catch_up: 86400 })
      assert.deepStrictEqual(c.notify, {})
      assert.strictEqual(c.metrics_token, undefined)
      assert.deepStrictEqual(c.schedules, {})
      assert.strictEqual(c.mariadb, undefined)
      assert.strictEqual(c.tracing, undefined)
      assert.strictEqual(c.api_key, undefined)
    }))

  it.effect("bartoc and barto-cli defaults", () =>
    Effect.gen(function*() {
      const env = isolatedEnv()
      const c = yield* Config.loadBartoc({ env })
      assert.strictEqual(c.name, os.hostname())
      assert.strictEqual(c.retry_count, undefined)
      assert.strictEqual(c.client_timeout, 10)
      assert.strictEqual(c.missed_tick, "Burst")
      assert.strictEqual(c.catch_up_limit, 10)
      assert.strictEqual(c.outbox_max_mb, 256)
      assert.strictEqual(c.replay_window_secs, 60)
      assert.strictEqual(c.state_path, path.join(env.HOME, ".local/share/bartoc/db/bartoc.db"))
      assert.deepStrictEqual(c.bartos, { prefix: "ws", host: "127.0.0.1", port: 20000 })
      const cli = yield* Config.loadCli({ env })
      assert.strictEqual(cli.name, "barto-cli")
      assert.strictEqual(cli.timeout_secs, 5)
      assert.deepStrictEqual(cli.bartos, { prefix: "ws", host: "127.0.0.1", port: 20000 })
    }))

  it.effect("the default config file is read when present", () =>
    Effect.gen(function*() {
      const home = tmp()
      writeFile(home, ".config/bartoc/bartoc.toml", `name = "from-default-file"\n`)
      const c = yield* Config.loadBartoc({ env: { HOME: home } })
      assert.strictEqual(c.name, "from-default-file")
    }))

  it.effect("noConfigFile skips the default file", () =>
    Effect.gen(function*() {
      const home = tmp()
      writeFile(home, ".config/bartoc/bartoc.toml", `name = "from-default-file"\n`)
      const c = yield* Config.loadBartoc({ env: { HOME: home }, noConfigFile: true })
      assert.strictEqual(c.name, os.hostname())
    }))

  it.effect("[tracing] keys are all optional", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "c.toml", `[tracing.stdout]\nwith_target = true\n`)
      const c = yield* Config.loadCli({ configPath: file, env: isolatedEnv() })
      assert.strictEqual(c.tracing?.stdout.with_target, true)
      assert.strictEqual(c.tracing?.stdout.with_level, true)
      assert.strictEqual(c.tracing?.file.verbose, 0)
      assert.strictEqual(c.tracing?.file.layer.with_thread_ids, false)
    }))
})

describe("TOML", () => {
  it.effect("reads every reference key of bartos.toml", () =>
    Effect.gen(function*() {
      const file = writeFile(
        tmp(),
        "bartos.toml",
        `
signing_key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
hmac_key = "test-shared-secret"
api_key = "api"
admin_key = "admin"
allow_plaintext = true

[actix]
workers = 4
ip = "0.0.0.0"
port = 21000

[actix.tls]
ip = "::1"
port = 21443
cert_file_path = "/etc/barto/cert.pem"
key_file_path = "/etc/barto/key.pem"
client_ca_cert = "/etc/barto/ca.pem"

[mariadb]
host = "db"
username = "barto"
password = "pw"
database = "barto"
options = "ssl=true"

[retention]
max_age_days = 30
max_runs_per_schedule = 100

[limits]
max_frame_bytes = 65536

[[schedules.host1.schedules]]
name = "backup"
on_calendar = "daily"
cmds = ["echo a", "echo b"]
timezone = "Europe/Paris"
timeout = "5m"
overlap = "forbid"
on_failure = "stop"
nice = 0

[[schedules.host1.schedules]]
name = "quick"
on_calendar = "*-*-* *:*:0/5"
cmds = ["true"]
timeout = 90

[schedules.host2]
`
      )
      const c = yield* Config.loadBartos({ configPath: file, env: isolatedEnv() })
      assert.strictEqual(Redacted.value(c.signing_key!), "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=")
      assert.strictEqual(Redacted.value(c.hmac_key!), "test-shared-secret")
      assert.strictEqual(Redacted.value(c.api_key!), "api")
      assert.strictEqual(Redacted.value(c.admin_key!), "admin")
      assert.strictEqual(c.allow_plaintext, true)
      assert.deepStrictEqual(c.actix.workers, 4)
      assert.deepStrictEqual(c.actix.tls, {
        ip: "::1",
        port: 21443,
        cert_file_path: "/etc/barto/cert.pem",
        key_file_path: "/etc/barto/key.pem",
        client_ca_cert: "/etc/barto/ca.pem"
      })
      assert.strictEqual(c.mariadb?.port, 3306)
      assert.strictEqual(Redacted.value(c.mariadb!.password!), "pw")
      assert.strictEqual(c.mariadb?.options, "ssl=true")
      assert.deepStrictEqual(c.retention, { max_age_days: 30, max_runs_per_schedule: 100, interval_secs: 3600 })
      assert.strictEqual(c.limits.max_frame_bytes, 65536)
      assert.strictEqual(c.limits.query_row_cap, 1000)
      assert.deepStrictEqual(c.schedules.host1!.schedules, [
        {
          name: "backup",
          on_calendar: "daily",
          cmds: ["echo a", "echo b"],
          timezone: "Europe/Paris",
          timeout: 300,
          overlap: "forbid",
          on_failure: "stop",
          nice: 0
        },
        {
          name: "quick",
          on_calendar: "*-*-* *:*:0/5",
          cmds: ["true"],
          timeout: 90,
          overlap: "allow",
          on_failure: "continue",
          nice: 10
        }
      ])
      assert.deepStrictEqual(c.schedules.host2, { schedules: [] })
    }))

  it.effect("scalars are coerced like the reference (string port, number name)", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartoc.toml", `name = 42\nretry_count = "10"\n[bartos]\nport = "20001"\n`)
      const c = yield* Config.loadBartoc({ configPath: file, env: isolatedEnv() })
      assert.strictEqual(c.name, "42")
      assert.strictEqual(c.retry_count, 10)
      assert.strictEqual(c.bartos.port, 20001)
    }))

  it("timeouts accept seconds or unit text", () => {
    assert.strictEqual(Config.parseDurationSecs(90), 90)
    assert.strictEqual(Config.parseDurationSecs("90"), 90)
    assert.strictEqual(Config.parseDurationSecs("90s"), 90)
    assert.strictEqual(Config.parseDurationSecs("5m"), 300)
    assert.strictEqual(Config.parseDurationSecs("1h"), 3600)
    assert.strictEqual(Config.parseDurationSecs("1h30m"), 5400)
    assert.strictEqual(Config.parseDurationSecs("250ms"), 0.25)
    assert.strictEqual(Config.parseDurationSecs("0"), undefined)
    assert.strictEqual(Config.parseDurationSecs("-5"), undefined)
    assert.strictEqual(Config.parseDurationSecs("5 minutes"), undefined)
    assert.strictEqual(Config.parseDurationSecs(""), undefined)
  })
})

describe("precedence: flags > env > TOML > defaults", () => {
  // For one key: which source wins given which sources are set.
  const matrix: ReadonlyArray<{ toml: boolean; env: boolean; flag: boolean; expected: number }> = [
    { toml: false, env: false, flag: false, expected: 20000 },
    { toml: true, env: false, flag: false, expected: 1 },
    { toml: false, env: true, flag: false, expected: 2 },
    { toml: true, env: true, flag: false, expected: 2 },
    { toml: false, env: false, flag: true, expected: 3 },
    { toml: true, env: false, flag: true, expected: 3 },
    { toml: false, env: true, flag: true, expected: 3 },
    { toml: true, env: true, flag: true, expected: 3 }
  ]
  for (const row of matrix) {
    it.effect(`actix.port with toml=${row.toml} env=${row.env} flag=${row.flag} → ${row.expected}`, () =>
      Effect.gen(function*() {
        const file = writeFile(tmp(), "bartos.toml", row.toml ? `[actix]\nport = 1\nip = "10.0.0.1"\n` : "")
        const env = isolatedEnv(row.env ? { BARTOS_ACTIX__PORT: "2" } : {})
        const c = yield* Config.loadBartos({
          configPath: file,
          env,
          flags: row.flag ? { actix: { port: 3 } } : {}
        })
        assert.strictEqual(c.actix.port, row.expected)
        // A neighbouring key in the same table is untouched by the override.
        assert.strictEqual(c.actix.ip, row.toml ? "10.0.0.1" : "127.0.0.1")
      }))
  }

  it.effect("each key takes its own highest source", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartoc.toml", `name = "toml"\nclient_timeout = 11\ncatch_up_limit = 12\n`)
      const c = yield* Config.loadBartoc({
        configPath: file,
        env: isolatedEnv({ BARTOC_CLIENT_TIMEOUT: "21", BARTOC_OUTBOX_MAX_MB: "22" }),
        flags: { verbose: 2, catch_up_limit: 31, name: undefined }
      })
      assert.strictEqual(c.name, "toml")
      assert.strictEqual(c.client_timeout, 21)
      assert.strictEqual(c.outbox_max_mb, 22)
      assert.strictEqual(c.catch_up_limit, 31)
      assert.strictEqual(c.verbose, 2)
      assert.strictEqual(c.replay_window_secs, 60)
    }))

  it.effect("flags set state_path over TOML (-r)", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartoc.toml", `state_path = "/toml/state.db"\n`)
      const c = yield* Config.loadBartoc({ configPath: file, env: isolatedEnv(), flags: { state_path: "/flag.db" } })
      assert.strictEqual(c.state_path, "/flag.db")
    }))
})

describe("the environment comes through Effect's ConfigProvider", () => {
  it.effect("env values are read from an injected ConfigProvider", () =>
    Effect.gen(function*() {
      // The map has no HOME: noConfigFile keeps the real ~/.config/bartos/bartos.toml out of it.
      const c = yield* Config.loadBartos({ noConfigFile: true }).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["BARTOS_ACTIX__PORT", "9999"]])))
      )
      assert.strictEqual(c.actix.port, 9999)
      assert.strictEqual(c.actix.ip, "127.0.0.1")
    }))

  it.effect("Layer.setConfigProvider works the same, and HOME/XDG come through the provider", () =>
    Effect.gen(function*() {
      const configHome = tmp()
      const dataHome = tmp()
      writeFile(configHome, "bartoc/bartoc.toml", `name = "from-xdg"\ncatch_up_limit = 3\n`)
      const c = yield* Config.loadBartoc().pipe(
        Effect.provide(Layer.setConfigProvider(providerOf({
          XDG_CONFIG_HOME: configHome,
          XDG_DATA_HOME: dataHome,
          BARTOC_CATCH_UP_LIMIT: "4"
        })))
      )
      assert.strictEqual(c.name, "from-xdg")
      assert.strictEqual(c.catch_up_limit, 4)
      assert.strictEqual(c.state_path, path.join(dataHome, "bartoc/db/bartoc.db"))
    }))

  it.effect("the default provider reads the process environment", () =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        process.env.BARTO_CLI_TIMEOUT_SECS = "42"
      }),
      () =>
        Effect.gen(function*() {
          const c = yield* Config.loadCli({ noConfigFile: true })
          assert.strictEqual(c.timeout_secs, 42)
        }),
      () =>
        Effect.sync(() => {
          delete process.env.BARTO_CLI_TIMEOUT_SECS
        })
    ))

  it.effect("the env option is used instead of the installed provider for that call", () =>
    Effect.gen(function*() {
      const c = yield* Config.loadCli({ env: isolatedEnv({ BARTO_CLI_NAME: "option" }) }).pipe(
        Effect.withConfigProvider(providerOf({ BARTO_CLI_NAME: "provider" }))
      )
      assert.strictEqual(c.name, "option")
    }))

  it.effect("names are case-insensitive in a provider that lists them; upper case wins a tie", () =>
    Effect.gen(function*() {
      const c = yield* Config.loadBartoc().pipe(
        Effect.withConfigProvider(providerOf({
          bartoc_bartos__host: "lower",
          BaRtOc_MiSsEd_TiCk: "Delay",
          bartoc_name: "lower-name",
          BARTOC_NAME: "upper-name"
        }))
      )
      assert.strictEqual(c.bartos.host, "lower")
      assert.strictEqual(c.missed_tick, "Delay")
      assert.strictEqual(c.name, "upper-name")
    }))

  const rows = [
    { toml: false, flag: false, expected: 2 },
    { toml: true, flag: false, expected: 2 },
    { toml: true, flag: true, expected: 3 }
  ]
  for (const row of rows) {
    it.effect(`precedence with env from a provider: toml=${row.toml} flag=${row.flag} → ${row.expected}`, () =>
      Effect.gen(function*() {
        const file = writeFile(tmp(), "bartos.toml", row.toml ? `[actix]\nport = 1\nip = "10.0.0.1"\n` : "")
        const c = yield* Config.loadBartos({ configPath: file, flags: row.flag ? { actix: { port: 3 } } : {} }).pipe(
          Effect.withConfigProvider(providerOf({ BARTOS_ACTIX__PORT: "2" }))
        )
        assert.strictEqual(c.actix.port, row.expected)
        assert.strictEqual(c.actix.ip, row.toml ? "10.0.0.1" : "127.0.0.1")
      }))
  }

  it.effect("a bad env value is reported, not replaced by the file's value (orElse pitfall)", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartos.toml", `[actix]\nport = 20000\n[limits]\nquery_row_cap = 10\n`)
      const e = yield* failure(
        Config.loadBartos({ configPath: file }).pipe(
          Effect.withConfigProvider(providerOf({ BARTOS_LIMITS__QUERY_ROW_CAP: "many" }))
        )
      )
      assert.strictEqual(
        e.message,
        `environment BARTOS_LIMITS__QUERY_ROW_CAP: limits.query_row_cap: expected an integer > 0, got "many"`
      )
      const e2 = yield* failure(
        Config.loadBartos({ configPath: file }).pipe(
          Effect.withConfigProvider(providerOf({ bartos_actix__port: "65536" }))
        )
      )
      assert.strictEqual(
        e2.message,
        `environment bartos_actix__port: actix.port: expected a port number 0..65535 (0 = any free port), got "65536"`
      )
    }))
})

describe("environment names", () => {
  it.effect("__ nests, a single _ stays in the key", () =>
    Effect.gen(function*() {
      const c = yield* Config.loadBartos({
        env: isolatedEnv({
          BARTOS_ACTIX__TLS__PORT: "30443",
          BARTOS_ACTIX__TLS__CERT_FILE_PATH: "/c.pem",
          BARTOS_ACTIX__TLS__KEY_FILE_PATH: "/k.pem",
          BARTOS_MARIADB__HOST: "db",
          BARTOS_MARIADB__USERNAME: "u",
          BARTOS_MARIADB__DATABASE: "d",
          BARTOS_MARIADB__PASSWORD: "p@ss:w/rd",
          BARTOS_RETENTION__MAX_AGE_DAYS: "7",
          BARTOS_ALLOW_PLAINTEXT: "TRUE",
          // Wrong nesting (single underscore) maps to a flat key that does not exist: ignored.
          BARTOS_ACTIX_PORT: "1"
        })
      })
      assert.strictEqual(c.actix.tls?.port, 30443)
      assert.strictEqual(c.actix.port, 20000)
      assert.strictEqual(c.mariadb?.host, "db")
      assert.strictEqual(Redacted.value(c.mariadb!.password!), "p@ss:w/rd")
      assert.strictEqual(c.retention.max_age_days, 7)
      assert.strictEqual(c.allow_plaintext, true)
    }))

  it.effect("names are case-insensitive", () =>
    Effect.gen(function*() {
      const c = yield* Config.loadBartoc({
        env: isolatedEnv({ bartoc_bartos__host: "lower", BaRtOc_MiSsEd_TiCk: "Skip" })
      })
      assert.strictEqual(c.bartos.host, "lower")
      assert.strictEqual(c.missed_tick, "Skip")
    }))

  it.effect("values stay strings: a secret 00123 stays 00123, 1e3 stays 1e3", () =>
    Effect.gen(function*() {
      const c = yield* Config.loadBartoc({
        env: isolatedEnv({ BARTOC_BARTOS__API_KEY: "00123", BARTOC_HMAC_KEY: "1e3", BARTOC_NAME: "007" })
      })
      assert.strictEqual(Redacted.value(c.bartos.api_key!), "00123")
      assert.strictEqual(Redacted.value(c.hmac_key!), "1e3")
      assert.strictEqual(c.name, "007")
    }))

  it.effect("each program reads its own prefix", () =>
    Effect.gen(function*() {
      const env = isolatedEnv({
        BARTOS_API_KEY: "s",
        BARTOC_BARTOS__API_KEY: "c",
        BARTO_CLI_BARTOS__API_KEY: "cli",
        BARTO_CLI_BARTOS__ADMIN_KEY: "adm",
        BARTO_CLI_TIMEOUT_SECS: "9"
      })
      const s = yield* Config.loadBartos({ env })
      const c = yield* Config.loadBartoc({ env })
      const cli = yield* Config.loadCli({ env })
      assert.strictEqual(Redacted.value(s.api_key!), "s")
      assert.strictEqual(Redacted.value(c.bartos.api_key!), "c")
      assert.strictEqual(Redacted.value(cli.bartos.api_key!), "cli")
      assert.strictEqual(Redacted.value(cli.bartos.admin_key!), "adm")
      assert.strictEqual(cli.timeout_secs, 9)
    }))
})

describe("*_file secrets", () => {
  it.effect("every secret key accepts a _file; trailing newline trimmed", () =>
    Effect.gen(function*() {
      const dir = tmp()
      const secret = (name: string) => writeFile(dir, name, `${name}-value\n`)
      const bartosFile = writeFile(
        dir,
        "bartos.toml",
        `signing_key_file = "${secret("signing")}"
hmac_key_file = "${secret("hmac")}"
api_key_file = "${secret("api")}"
admin_key_file = "${secret("admin")}"
[mariadb]
host = "h"
username = "u"
database = "d"
password_file = "${secret("mariadb")}"
`
      )
      const s = yield* Config.loadBartos({ configPath: bartosFile, env: isolatedEnv() })
      assert.strictEqual(Redacted.value(s.signing_key!), "signing-value")
      assert.strictEqual(Redacted.value(s.hmac_key!), "hmac-value")
      assert.strictEqual(Redacted.value(s.api_key!), "api-value")
      assert.strictEqual(Redacted.value(s.admin_key!), "admin-value")
      assert.strictEqual(Redacted.value(s.mariadb!.password!), "mariadb-value")
      assert.isFalse("api_key_file" in s)

      const c = yield* Config.loadBartoc({
        env: isolatedEnv({
          BARTOC_SERVER_PUBLIC_KEY_FILE: secret("pub"),
          BARTOC_HMAC_KEY_FILE: secret("chmac"),
          BARTOC_BARTOS__API_KEY_FILE: secret("capi")
        })
      })
      assert.strictEqual(Redacted.value(c.server_public_key!), "pub-value")
      assert.strictEqual(Redacted.value(c.hmac_key!), "chmac-value")
      assert.strictEqual(Redacted.value(c.bartos.api_key!), "capi-value")

      const cli = yield* Config.loadCli({
        env: isolatedEnv(),
        flags: { bartos: { api_key_file: secret("cliapi"), admin_key_file: secret("cliadmin") } }
      })
      assert.strictEqual(Redacted.value(cli.bartos.api_key!), "cliapi-value")
      assert.strictEqual(Redacted.value(cli.bartos.admin_key!), "cliadmin-value")
    }))

  it.effect("only one trailing newline is trimmed; CRLF too; inner whitespace kept", () =>
    Effect.gen(function*() {
      const dir = tmp()
      writeFile(dir, "k", "  two words \r\n")
      const file = writeFile(dir, "bartos.toml", `hmac_key_file = "k"\n`) // relative to the TOML file
      const c = yield* Config.loadBartos({ configPath: file, env: isolatedEnv() })
      assert.strictEqual(Redacted.value(c.hmac_key!), "  two words ")
    }))

  it.effect("~/ in a _file path is the home directory", () =>
    Effect.gen(function*() {
      const home = tmp()
      writeFile(home, ".config/bartoc/hmac_key", "from-home\n")
      const file = writeFile(tmp(), "bartoc.toml", `hmac_key_file = "~/.config/bartoc/hmac_key"\n`)
      const c = yield* Config.loadBartoc({ configPath: file, env: { HOME: home } })
      assert.strictEqual(Redacted.value(c.hmac_key!), "from-home")
    }))

  it.effect("a higher source's k replaces a lower source's k_file, and vice versa", () =>
    Effect.gen(function*() {
      const dir = tmp()
      const keyFile = writeFile(dir, "k", "from-file\n")
      const file = writeFile(dir, "bartos.toml", `api_key_file = "${keyFile}"\nhmac_key = "toml"\n`)
      const c = yield* Config.loadBartos({
        configPath: file,
        env: isolatedEnv({ BARTOS_API_KEY: "from-env", BARTOS_HMAC_KEY_FILE: keyFile })
      })
      assert.strictEqual(Redacted.value(c.api_key!), "from-env")
      assert.strictEqual(Redacted.value(c.hmac_key!), "from-file")
    }))
})

describe("errors name the source, the key and the reason", () => {
  it.effect("TOML syntax error: file, line and column", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartos.toml", `[actix]\nport = 20000\nip = "unterminated\n`)
      const e = yield* failure(Config.loadBartos({ configPath: file, env: isolatedEnv() }))
      assert.strictEqual(e._tag, "ConfigError")
      assert.strictEqual(e.file, file)
      assert.strictEqual(e.line, 3)
      assert.isNumber(e.column)
      assert.match(e.message, new RegExp(`^${file}:3:\\d+: invalid TOML: `))
    }))

  it.effect("wrong type", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartos.toml", `allow_plaintext = "maybe"\n`)
      const e = yield* failure(Config.loadBartos({ configPath: file, env: isolatedEnv() }))
      assert.strictEqual(e.message, `${file}:1:1: allow_plaintext: expected true or false, got "maybe"`)
    }))

  it.effect("a table given as a scalar", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartos.toml", `actix = 5\n`)
      const e = yield* failure(Config.loadBartos({ configPath: file, env: isolatedEnv() }))
      assert.strictEqual(e.message, `${file}:1:1: actix: expected a table, got 5`)
    }))

  it.effect("port out of range", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartos.toml", `[actix]\nport = 70000\n`)
      const e = yield* failure(Config.loadBartos({ configPath: file, env: isolatedEnv() }))
      assert.strictEqual(e.file, file)
      assert.strictEqual(e.path, "actix.port")
      assert.strictEqual(e.line, 2)
      assert.strictEqual(e.column, 1)
      assert.strictEqual(
        e.message,
        `${file}:2:1: actix.port: expected a port number 0..65535 (0 = any free port), got 70000`
      )
    }))

  it.effect("bad enum (missed_tick is case-sensitive; prefix ws|wss)", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartoc.toml", `missed_tick = "burst"\n`)
      const e = yield* failure(Config.loadBartoc({ configPath: file, env: isolatedEnv() }))
      assert.strictEqual(e.message, `${file}:1:1: missed_tick: expected one of "Burst", "Delay", "Skip", got "burst"`)
      const e2 = yield* failure(Config.loadCli({ env: isolatedEnv(), flags: { bartos: { prefix: "http" } } }))
      assert.strictEqual(e2.message, `command line: bartos.prefix: expected one of "ws", "wss", got "http"`)
    }))

  it.effect("bad schedule fields name the array index", () =>
    Effect.gen(function*() {
      const file = writeFile(
        tmp(),
        "bartos.toml",
        `[[schedules.a.schedules]]\nname = "x"\non_calendar = "daily"\ncmds = ["true"]\noverlap = "never"\n`
      )
      const e = yield* failure(Config.loadBartos({ configPath: file, env: isolatedEnv() }))
      assert.strictEqual(
        e.message,
        `${file}:5:1: schedules.a.schedules[0].overlap: expected one of "allow", "forbid", "queue", got "never"`
      )
      const dup = writeFile(
        tmp(),
        "bartos.toml",
        `[[schedules.a.schedules]]\nname = "x"\non_calendar = "daily"\ncmds = ["true"]\n` +
          `[[schedules.a.schedules]]\nname = "x"\non_calendar = "hourly"\ncmds = ["true"]\ntimeout = "soon"\n`
      )
      const e2 = yield* failure(Config.loadBartos({ configPath: dup, env: isolatedEnv() }))
      assert.strictEqual(e2.path, "schedules.a.schedules[1].timeout")
      const dup2 = writeFile(
        tmp(),
        "bartos.toml",
        `[[schedules.a.schedules]]\nname = "x"\non_calendar = "daily"\ncmds = ["true"]\n` +
          `[[schedules.a.schedules]]\nname = "x"\non_calendar = "hourly"\ncmds = ["true"]\n`
      )
      const e3 = yield* failure(Config.loadBartos({ configPath: dup2, env: isolatedEnv() }))
      assert.strictEqual(e3.message, `${dup2}:6:1: schedules.a.schedules[1].name: duplicate schedule name "x"`)
      const noCmds = writeFile(tmp(), "bartos.toml", `[[schedules.a.schedules]]\nname = "x"\non_calendar = "daily"\n`)
      const e4 = yield* failure(Config.loadBartos({ configPath: noCmds, env: isolatedEnv() }))
      // A missing key is placed where its table starts.
      assert.strictEqual(e4.message, `${noCmds}:1:1: schedules.a.schedules[0].cmds: missing required key`)
    }))

  it.effect("nice is an integer 0..19, reported at its key", () =>
    Effect.gen(function*() {
      for (const bad of ["-5", "20", "2.5", `"high"`]) {
        const file = writeFile(
          tmp(),
          "bartos.toml",
          `[[schedules.a.schedules]]\nname = "x"\non_calendar = "daily"\ncmds = ["true"]\nnice = ${bad}\n`
        )
        const e = yield* failure(Config.loadBartos({ configPath: file, env: isolatedEnv() }))
        assert.match(
          e.message,
          new RegExp(`^${file}:5:1: schedules\\.a\\.schedules\\[0\\]\\.nice: expected an integer 0\\.\\.19`)
        )
      }
      const ok = writeFile(
        tmp(),
        "bartos.toml",
        `[[schedules.a.schedules]]\nname = "x"\non_calendar = "daily"\ncmds = ["true"]\nnice = 19\n`
      )
      const c = yield* Config.loadBartos({ configPath: ok, env: isolatedEnv() })
      assert.strictEqual(c.schedules.a!.schedules[0]!.nice, 19)
    }))

  it.effect("missing required mariadb key", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartos.toml", `[mariadb]\nhost = "db"\ndatabase = "barto"\n`)
      const e = yield* failure(Config.loadBartos({ configPath: file, env: isolatedEnv() }))
      assert.strictEqual(e.message, `${file}:1:1: mariadb.username: missing required key`)
    }))

  it.effect("TLS table requires cert and key paths", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartos.toml", `[actix.tls]\ncert_file_path = "/c.pem"\n`)
      const e = yield* failure(Config.loadBartos({ configPath: file, env: isolatedEnv() }))
      assert.strictEqual(e.message, `${file}:1:1: actix.tls.key_file_path: missing required key`)
      const bad = writeFile(
        tmp(),
        "bartos.toml",
        `[actix.tls]\nip = "example.org"\ncert_file_path = "c"\nkey_file_path = "k"\n`
      )
      const e2 = yield* failure(Config.loadBartos({ configPath: bad, env: isolatedEnv() }))
      assert.strictEqual(e2.message, `${bad}:2:1: actix.tls.ip: expected an IP address, got "example.org"`)
    }))

  it.effect("client_cert without client_key", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartoc.toml", `[bartos]\nclient_cert = "/c.pem"\n`)
      const e = yield* failure(Config.loadBartoc({ configPath: file, env: isolatedEnv() }))
      assert.strictEqual(e.message, `${file}:1:1: bartos.client_key: client_cert and client_key must be given together`)
    }))

  it.effect("positive numbers", () =>
    Effect.gen(function*() {
      const e = yield* failure(Config.loadBartos({ env: isolatedEnv(), flags: { limits: { max_frame_bytes: 0 } } }))
      assert.strictEqual(e.message, `command line: limits.max_frame_bytes: expected an integer > 0, got 0`)
      const e2 = yield* failure(Config.loadBartoc({ env: isolatedEnv({ BARTOC_OUTBOX_MAX_MB: "-1" }) }))
      assert.strictEqual(e2.message, `environment BARTOC_OUTBOX_MAX_MB: outbox_max_mb: expected a number > 0, got "-1"`)
    }))

  it.effect("both k and k_file in one source", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartos.toml", `api_key = "a"\napi_key_file = "/run/secrets/api"\n`)
      const e = yield* failure(Config.loadBartos({ configPath: file, env: isolatedEnv() }))
      assert.strictEqual(e.message, `${file}:1:1: api_key: both api_key and api_key_file are set; use one`)
      const e2 = yield* failure(
        Config.loadBartoc({ env: isolatedEnv({ BARTOC_BARTOS__API_KEY: "a", BARTOC_BARTOS__API_KEY_FILE: "/x" }) })
      )
      assert.strictEqual(e2.path, "bartos.api_key")
      assert.match(e2.message, /^environment BARTOC_BARTOS__API_KEY: bartos\.api_key: both api_key and api_key_file/)
    }))

  it.effect("unreadable or empty secret file", () =>
    Effect.gen(function*() {
      const dir = tmp()
      const e = yield* failure(
        Config.loadBartos({ env: isolatedEnv({ BARTOS_HMAC_KEY_FILE: path.join(dir, "nope") }) })
      )
      assert.strictEqual(e.file, "environment BARTOS_HMAC_KEY_FILE")
      assert.strictEqual(e.path, "hmac_key_file")
      assert.include(e.reason, "ENOENT")
      const empty = writeFile(dir, "empty", "\n")
      const e2 = yield* failure(Config.loadBartos({ env: isolatedEnv({ BARTOS_HMAC_KEY_FILE: empty }) }))
      assert.strictEqual(e2.reason, `secret file ${JSON.stringify(empty)} is empty`)
    }))

  it.effect("missing explicit config file", () =>
    Effect.gen(function*() {
      const missing = path.join(tmp(), "nope.toml")
      const e = yield* failure(Config.loadBartoc({ configPath: missing, env: isolatedEnv() }))
      assert.strictEqual(e.message, `${missing}: config file not found`)
    }))

  it.effect("a bad env value names the variable, not the file", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartos.toml", `[actix]\nport = 20000\n`)
      const e = yield* failure(
        Config.loadBartos({ configPath: file, env: isolatedEnv({ BARTOS_ACTIX__PORT: "abc" }) })
      )
      assert.strictEqual(e.file, "environment BARTOS_ACTIX__PORT")
      assert.strictEqual(
        e.message,
        `environment BARTOS_ACTIX__PORT: actix.port: expected a port number 0..65535 (0 = any free port), got "abc"`
      )
    }))

  it.effect("secret values never appear in errors", () =>
    Effect.gen(function*() {
      const e = yield* failure(Config.loadBartos({ env: isolatedEnv(), flags: { api_key: true } }))
      assert.strictEqual(e.message, "command line: api_key: expected a non-empty string, got a boolean")
      const e2 = yield* failure(Config.loadBartos({ env: isolatedEnv({ BARTOS_API_KEY: "" }) }))
      assert.strictEqual(e2.message, "environment BARTOS_API_KEY: api_key: expected a non-empty string, got a string")
    }))
})

describe("secrets never leak", () => {
  it.effect("String(), JSON.stringify and util.inspect print <redacted>", () =>
    Effect.gen(function*() {
      const c = yield* Config.loadBartoc({
        env: isolatedEnv({ BARTOC_HMAC_KEY: "super-secret-hmac", BARTOC_BARTOS__API_KEY: "super-secret-api" })
      })
      for (const text of [String(c.hmac_key), JSON.stringify(c), inspect(c, { depth: 10 }), `${c.bartos.api_key}`]) {
        assert.notInclude(text, "super-secret")
      }
      assert.include(JSON.stringify(c), "<redacted>")
    }))
})

describe("example configs", () => {
  const example = (rel: string) => new URL(`../../${rel}`, import.meta.url).pathname

  it.effect("packages/server/examples/bartos.toml", () =>
    Effect.gen(function*() {
      const c = yield* Config.loadBartos({ configPath: example("server/examples/bartos.toml"), env: isolatedEnv() })
      assert.strictEqual(c.actix.port, 20000)
      assert.strictEqual(c.mariadb, undefined)
      assert.deepStrictEqual(c.schedules.demo!.schedules, [
        {
          name: "hello",
          on_calendar: "*-*-* *:*:0/5",
          cmds: ["echo hello from barto", "date -u"],
          timeout: 30,
          overlap: "forbid",
          on_failure: "continue",
          nice: 10
        }
      ])
    }))

  it.effect("packages/agent/examples/bartoc.toml", () =>
    Effect.gen(function*() {
      const c = yield* Config.loadBartoc({ configPath: example("agent/examples/bartoc.toml"), env: isolatedEnv() })
      assert.strictEqual(c.name, "demo")
      assert.deepStrictEqual(c.bartos, { prefix: "ws", host: "127.0.0.1", port: 20000 })
      assert.deepStrictEqual(c.runner, { shutdown: "wait", shutdown_grace_secs: 60 })
    }))

  it.effect("dist/bartoc.service gives bartoc its default shutdown grace plus the kill sequence and delivery", () =>
    Effect.gen(function*() {
      const unit = fs.readFileSync(new URL("../../../dist/bartoc.service", import.meta.url), "utf8")
      const stop = Number(unit.match(/^TimeoutStopSec=(\d+)s$/m)?.[1])
      const c = yield* Config.loadBartoc({ env: isolatedEnv() })
      // 5 s SIGTERM -> SIGKILL, 2 s for the pipes, 5 s for bartos' acks, and a margin.
      assert.strictEqual(stop, c.runner.shutdown_grace_secs + 15)
      assert.match(unit, /^KillMode=mixed$/m)
    }))

  it.effect("packages/cli/examples/barto-cli.toml", () =>
    Effect.gen(function*() {
      const c = yield* Config.loadCli({ configPath: example("cli/examples/barto-cli.toml"), env: isolatedEnv() })
      assert.strictEqual(c.name, "barto-cli")
      assert.strictEqual(c.timeout_secs, 5)
    }))
})

describe("every config file in the repository loads under the strict loader", () => {
  const root = new URL("../../../", import.meta.url).pathname
  const SKIP = new Set(["node_modules", ".git", ".barto"])
  const tomlFiles = (dir: string): Array<string> =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
      SKIP.has(entry.name)
        ? []
        : entry.isDirectory()
        ? tomlFiles(path.join(dir, entry.name))
        : entry.name.endsWith(".toml")
        ? [path.join(dir, entry.name)]
        : []
    )
  const programOf = (file: string): Config.Program | undefined => {
    const base = path.basename(file)
    return base.startsWith("barto-cli")
      ? "barto-cli"
      : base.startsWith("bartoc")
      ? "bartoc"
      : base.startsWith("bartos")
      ? "bartos"
      : undefined
  }
  const loaders: Record<Config.Program, (o: Config.LoadOptions) => Effect.Effect<unknown, Config.ConfigError>> = {
    bartos: Config.loadBartos,
    bartoc: Config.loadBartoc,
    "barto-cli": Config.loadCli
  }
  const prefixes = { bartos: "BARTOS", bartoc: "BARTOC", "barto-cli": "BARTO_CLI" } as const
  /**
   * Secrets given as `k_file` point at production paths (/etc/…) that do not exist here: the
   * environment gives each such `k` instead, which replaces the file's `k_file` (higher source).
   */
  const secretsFromEnv = (program: Config.Program, text: string) => {
    const env: Record<string, string> = {}
    let table: Array<string> = []
    for (const line of text.split("\n")) {
      const header = /^\s*\[\[?([^\]]+)\]\]?/.exec(line)
      if (header !== null) table = header[1]!.split(".").map((k) => k.trim())
      const file = /^\s*([a-z_]+)_file\s*=/.exec(line)
      if (file !== null) env[`${prefixes[program]}_${[...table, file[1]!].join("__").toUpperCase()}`] = "from-env"
    }
    return env
  }
  const files = tomlFiles(root).filter((f) => programOf(f) !== undefined)

  it("finds the example and production configs of all three programs", () => {
    const rel = files.map((f) => path.relative(root, f)).sort()
    for (
      const expected of [
        "dist/bartoc.production.toml",
        "dist/bartos.production.toml",
        "packages/agent/examples/bartoc.toml",
        "packages/cli/examples/barto-cli.toml",
        "packages/server/examples/bartos.toml"
      ]
    ) {
      assert.include(rel, expected)
    }
  })

  for (const file of files) {
    const program = programOf(file)!
    it.effect(`${path.relative(root, file)} loads as ${program}`, () =>
      Effect.gen(function*() {
        const text = fs.readFileSync(file, "utf8")
        const env = isolatedEnv(secretsFromEnv(program, text))
        const result = yield* Effect.either(loaders[program]({ configPath: file, env }))
        if (Either.isLeft(result)) assert.fail(result.left.message)
        assert.deepStrictEqual(yield* Config.unknownEnvironment(program, { env }), [])
      }))

    it.effect(`${path.relative(root, file)}: every commented-out key is a real key`, () =>
      Effect.gen(function*() {
        // `# port = 3306` and `# [mariadb]` are there to be uncommented: they must not be typos.
        const uncommented = fs.readFileSync(file, "utf8").split("\n").map((line) =>
          /^#\s?(\[\[?[A-Za-z0-9_.]+\]\]?|[a-z_]+ += .*)$/.test(line) ? line.replace(/^#\s?/, "") : line
        ).join("\n")
        const copy = writeFile(tmp(), path.basename(file), uncommented)
        const result = yield* Effect.either(loaders[program]({ configPath: copy, env: isolatedEnv() }))
        const unknown = Either.isLeft(result)
          ? result.left.problems.filter((p) => p.reason.startsWith("unknown key"))
          : []
        assert.deepStrictEqual(unknown.map(Config.formatProblem), [])
      }))
  }
})

describe("unknown keys are errors, with file:line:column, the key path and the closest known key", () => {
  it.effect("bartos.toml: the issue's examples (timout in the third schedule, [actix] prot)", () =>
    Effect.gen(function*() {
      const file = writeFile(
        tmp(),
        "bartos.toml",
        `[actix]\nprot = 21000\n\n` +
          `[[schedules.web1.schedules]]\nname = "a"\non_calendar = "daily"\ncmds = ["true"]\n` +
          `[[schedules.web1.schedules]]\nname = "b"\non_calendar = "daily"\ncmds = ["true"]\n` +
          `[[schedules.web1.schedules]]\nname = "c"\non_calendar = "daily"\ncmds = ["true"]\ntimout = "8s"\n`
      )
      const e = yield* failure(Config.loadBartos({ configPath: file, env: isolatedEnv() }))
      assert.deepStrictEqual(e.problems.map(Config.formatProblem), [
        `${file}:2:1: actix: unknown key 'prot' (did you mean 'port'?)`,
        `${file}:16:1: schedules.web1.schedules[2]: unknown key 'timout' (did you mean 'timeout'?)`
      ])
      assert.strictEqual(e.message, e.problems.map(Config.formatProblem).join("\n"))
      assert.strictEqual(e.path, "actix")
      assert.strictEqual(e.line, 2)
    }))

  it.effect("bartoc.toml and barto-cli.toml: top level and nested tables", () =>
    Effect.gen(function*() {
      const bartoc = writeFile(
        tmp(),
        "bartoc.toml",
        `nmae = "web1"\n[bartos]\nhots = "x"\n[connection]\nping_interval = 5\n`
      )
      const e = yield* failure(Config.loadBartoc({ configPath: bartoc, env: isolatedEnv() }))
      assert.deepStrictEqual(e.problems.map(Config.formatProblem), [
        `${bartoc}:1:1: unknown key 'nmae' (did you mean 'name'?)`,
        `${bartoc}:3:1: bartos: unknown key 'hots' (did you mean 'host'?)`,
        `${bartoc}:5:1: connection: unknown key 'ping_interval' (did you mean 'ping_interval_secs'?)`
      ])
      const cli = writeFile(tmp(), "barto-cli.toml", `timeout = 5\n[bartos]\nadmin_key_fiel = "/k"\n`)
      const e2 = yield* failure(Config.loadCli({ configPath: cli, env: isolatedEnv() }))
      assert.deepStrictEqual(e2.problems.map(Config.formatProblem), [
        `${cli}:1:1: unknown key 'timeout' (did you mean 'timeout_secs'?)`,
        `${cli}:3:1: bartos: unknown key 'admin_key_fiel' (did you mean 'admin_key_file'?)`
      ])
    }))

  it.effect("a word that is no typo gets no suggestion; a k_file of a key that is not a secret is unknown", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartoc.toml", `completely_different = 1\nname_file = "/etc/name"\n`)
      const e = yield* failure(Config.loadBartoc({ configPath: file, env: isolatedEnv() }))
      assert.deepStrictEqual(e.problems.map((p) => p.reason), [
        "unknown key 'completely_different'",
        "unknown key 'name_file' (did you mean 'name'?)"
      ])
    }))

  it.effect("deeper tables, dotted keys, inline tables and inline arrays of tables", () =>
    Effect.gen(function*() {
      const file = writeFile(
        tmp(),
        "bartos.toml",
        [
          `actix.tls = { cert_file_path = "c", key_file_path = "k", client_ca = "x" }`,
          `[tracing.file.layer]`,
          `with_lvl = true`,
          `[schedules."web.1"]`,
          `schedules = [ { name = "a", on_calendar = "daily", cmds = ["true"], overlapp = "queue" } ]`,
          `[schedules.db]`,
          `schedule = []`
        ].join("\n")
      )
      const e = yield* failure(Config.loadBartos({ configPath: file, env: isolatedEnv() }))
      assert.deepStrictEqual(e.problems.map(Config.formatProblem), [
        `${file}:1:58: actix.tls: unknown key 'client_ca' (did you mean 'client_ca_cert'?)`,
        `${file}:3:1: tracing.file.layer: unknown key 'with_lvl' (did you mean 'with_level'?)`,
        `${file}:5:69: schedules."web.1".schedules[0]: unknown key 'overlapp' (did you mean 'overlap'?)`,
        `${file}:7:1: schedules.db: unknown key 'schedule' (did you mean 'schedules'?)`
      ])
    }))

  it.effect("unknown keys and bad values are all reported together, in file order", () =>
    Effect.gen(function*() {
      const file = writeFile(
        tmp(),
        "bartos.toml",
        `allow_plaintext = "maybe"\n[actix]\nport = 70000\nprot = 1\n` +
          `[[schedules.a.schedules]]\nnmae = "x"\non_calendar = "daily"\ncmds = []\n`
      )
      const e = yield* failure(Config.loadBartos({ configPath: file, env: isolatedEnv() }))
      assert.deepStrictEqual(e.problems.map(Config.formatProblem), [
        `${file}:1:1: allow_plaintext: expected true or false, got "maybe"`,
        `${file}:3:1: actix.port: expected a port number 0..65535 (0 = any free port), got 70000`,
        `${file}:4:1: actix: unknown key 'prot' (did you mean 'port'?)`,
        `${file}:5:1: schedules.a.schedules[0].name: missing required key`,
        `${file}:6:1: schedules.a.schedules[0]: unknown key 'nmae' (did you mean 'name'?)`,
        `${file}:8:1: schedules.a.schedules[0].cmds: expected at least one command, got an empty array`
      ])
    }))

  it.effect("an unknown key next to a source that cannot be read is still reported", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartos.toml", `hmac_key_file = "/nonexistent/key"\nadmin_kee = "x"\n`)
      const e = yield* failure(Config.loadBartos({ configPath: file, env: isolatedEnv() }))
      assert.deepStrictEqual(e.problems.map((p) => `${p.line}:${p.path}`), ["1:hmac_key_file", "2:"])
      assert.include(e.problems[0]!.reason, "ENOENT")
      assert.strictEqual(e.problems[1]!.reason, "unknown key 'admin_kee' (did you mean 'admin_key'?)")
    }))
})

describe("environment variables that set no key are reported as warnings", () => {
  it.effect("each program checks its own prefix; a close name is suggested; known names are quiet", () =>
    Effect.gen(function*() {
      const env = isolatedEnv({
        BARTOS_ACTIX_PORT: "1",
        BARTOS_ACTIX__PORT: "2",
        BARTOS_NOPE: "x",
        bartos_api_kye: "lower case is matched too",
        BARTOC_NAME: "web1",
        BARTOC_BARTOS__HOTS: "h",
        BARTO_CLI_TIMEOUT: "5",
        BARTO_RUN_ID: "not ours",
        BARTOSX: "not ours either"
      })
      assert.deepStrictEqual(yield* Config.unknownEnvironment("bartos", { env }), [
        "environment BARTOS_ACTIX_PORT: sets no configuration key, ignored (did you mean BARTOS_ACTIX__PORT?)",
        "environment BARTOS_NOPE: sets no configuration key, ignored",
        "environment bartos_api_kye: sets no configuration key, ignored (did you mean BARTOS_API_KEY?)"
      ])
      assert.deepStrictEqual(yield* Config.unknownEnvironment("bartoc", { env }), [
        "environment BARTOC_BARTOS__HOTS: sets no configuration key, ignored (did you mean BARTOC_BARTOS__HOST?)"
      ])
      assert.deepStrictEqual(yield* Config.unknownEnvironment("barto-cli", { env }), [
        "environment BARTO_CLI_TIMEOUT: sets no configuration key, ignored (did you mean BARTO_CLI_TIMEOUT_SECS?)"
      ])
      // A warning, not an error: the configuration still loads, without the stray variable.
      const c = yield* Config.loadBartos({ env })
      assert.strictEqual(c.actix.port, 2)
    }))

  it.effect("secret k_file variables are known; the ambient provider is read when no env is given", () =>
    Effect.gen(function*() {
      const found = yield* Config.unknownEnvironment("bartoc").pipe(
        Effect.withConfigProvider(
          providerOf({ BARTOC_HMAC_KEY_FILE: "/k", BARTOC_BARTOS__API_KEY_FILE: "/a", BARTOC_STATE: "/s" })
        )
      )
      assert.deepStrictEqual(found, [
        "environment BARTOC_STATE: sets no configuration key, ignored (did you mean BARTOC_STATE_PATH?)"
      ])
    }))
})

describe("listen ports", () => {
  it.effect("port = 0 is accepted for listeners (any free port) but not for the server a client dials", () =>
    Effect.gen(function*() {
      const dir = tmp()
      const server = yield* Config.loadBartos({ configPath: writeFile(dir, "bartos.toml", `[actix]\nport = 0\n`) })
      assert.strictEqual(server.actix.port, 0)
      const e = yield* failure(Config.loadBartoc({ configPath: writeFile(dir, "bartoc.toml", `[bartos]\nport = 0\n`) }))
      assert.strictEqual(e.path, "bartos.port")
    }))
})

describe("bartoc [runner] shutdown", () => {
  it.effect("defaults to wait with a 60 s grace; the environment and the file set it; bad values name the key", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual((yield* Config.loadBartoc({ env: isolatedEnv() })).runner, {
        shutdown: "wait",
        shutdown_grace_secs: 60
      })
      const dir = tmp()
      const file = writeFile(dir, "bartoc.toml", `[runner]\nshutdown = "terminate"\nshutdown_grace_secs = 0\n`)
      assert.deepStrictEqual((yield* Config.loadBartoc({ configPath: file, env: isolatedEnv() })).runner, {
        shutdown: "terminate",
        shutdown_grace_secs: 0
      })
      const env = yield* Config.loadBartoc({ env: isolatedEnv({ BARTOC_RUNNER__SHUTDOWN_GRACE_SECS: "7200" }) })
      assert.strictEqual(env.runner.shutdown_grace_secs, 7200)
      const bad = yield* failure(
        Config.loadBartoc({ configPath: writeFile(dir, "bad.toml", `[runner]\nshutdown = "later"\n`) })
      )
      assert.strictEqual(bad.path, "runner.shutdown")
      const negative = yield* failure(
        Config.loadBartoc({ configPath: writeFile(dir, "neg.toml", `[runner]\nshutdown_grace_secs = -1\n`) })
      )
      assert.strictEqual(negative.path, "runner.shutdown_grace_secs")
    }))
})

describe("bartoc [connection] timings", () => {
  it.effect("default to the protocol's: ping 5 s, silence 15 s, backoff 1 s to 30 s", () =>
    Effect.gen(function*() {
      const c = yield* Config.loadBartoc({ env: isolatedEnv() })
      assert.deepStrictEqual(c.connection, {
        ping_interval_secs: 5,
        server_silence_secs: 15,
        reconnect_base_secs: 1,
        reconnect_max_secs: 30
      })
    }))

  it.effect("flags > env > TOML > defaults, key by key", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartoc.toml", `[connection]\nping_interval_secs = 2\nserver_silence_secs = 20\n`)
      const c = yield* Config.loadBartoc({
        configPath: file,
        env: isolatedEnv({
          BARTOC_CONNECTION__SERVER_SILENCE_SECS: "30",
          BARTOC_CONNECTION__RECONNECT_BASE_SECS: "0.5"
        }),
        flags: { connection: { reconnect_max_secs: 10 } }
      })
      assert.deepStrictEqual(c.connection, {
        ping_interval_secs: 2,
        server_silence_secs: 30,
        reconnect_base_secs: 0.5,
        reconnect_max_secs: 10
      })
    }))

  it.effect("each timing must be a number > 0", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartoc.toml", `[connection]\nping_interval_secs = 0\n`)
      const e = yield* failure(Config.loadBartoc({ configPath: file, env: isolatedEnv() }))
      assert.strictEqual(e.file, file)
      assert.strictEqual(e.path, "connection.ping_interval_secs")
      assert.strictEqual(e.message, `${file}:2:1: connection.ping_interval_secs: expected a number > 0, got 0`)
      const e2 = yield* failure(
        Config.loadBartoc({ env: isolatedEnv({ BARTOC_CONNECTION__RECONNECT_MAX_SECS: "soon" }) })
      )
      assert.strictEqual(
        e2.message,
        `environment BARTOC_CONNECTION__RECONNECT_MAX_SECS: connection.reconnect_max_secs: expected a number > 0, got "soon"`
      )
      const e3 = yield* failure(
        Config.loadBartoc({ env: isolatedEnv(), flags: { connection: { reconnect_base_secs: -1 } } })
      )
      assert.strictEqual(e3.message, `command line: connection.reconnect_base_secs: expected a number > 0, got -1`)
      const notTable = writeFile(tmp(), "bartoc.toml", `connection = 5\n`)
      const e4 = yield* failure(Config.loadBartoc({ configPath: notTable, env: isolatedEnv() }))
      assert.strictEqual(e4.message, `${notTable}:1:1: connection: expected a table, got 5`)
    }))

  it.effect("server_silence_secs must exceed ping_interval_secs", () =>
    Effect.gen(function*() {
      // Only the interval is given: the default silence (15) is what no longer fits.
      const file = writeFile(tmp(), "bartoc.toml", `[connection]\nping_interval_secs = 20\n`)
      const e = yield* failure(Config.loadBartoc({ configPath: file, env: isolatedEnv() }))
      assert.strictEqual(e.file, file)
      assert.strictEqual(e.path, "connection.server_silence_secs")
      assert.strictEqual(e.reason, "must be greater than ping_interval_secs (20), got 15")
      const e2 = yield* failure(
        Config.loadBartoc({ env: isolatedEnv({ BARTOC_CONNECTION__SERVER_SILENCE_SECS: "5" }) })
      )
      assert.strictEqual(
        e2.message,
        `environment BARTOC_CONNECTION__SERVER_SILENCE_SECS: connection.server_silence_secs: ` +
          `must be greater than ping_interval_secs (5), got 5`
      )
    }))

  it.effect("reconnect_max_secs must be at least reconnect_base_secs (equal is fine)", () =>
    Effect.gen(function*() {
      const e = yield* failure(
        Config.loadBartoc({ env: isolatedEnv(), flags: { connection: { reconnect_base_secs: 60 } } })
      )
      assert.strictEqual(
        e.message,
        `command line: connection.reconnect_max_secs: must be at least reconnect_base_secs (60), got 30`
      )
      const c = yield* Config.loadBartoc({
        env: isolatedEnv({ BARTOC_CONNECTION__RECONNECT_BASE_SECS: "7", BARTOC_CONNECTION__RECONNECT_MAX_SECS: "7" })
      })
      assert.strictEqual(c.connection.reconnect_base_secs, 7)
      assert.strictEqual(c.connection.reconnect_max_secs, 7)
    }))
})

describe("bartoc [bartos] servers (failover)", () => {
  it.effect("a list of host or host:port; an entry without a port takes `port`", () =>
    Effect.gen(function*() {
      const file = writeFile(
        tmp(),
        "bartoc.toml",
        `[bartos]\nport = 21000\nservers = ["b1.example:20001", "b2.example", "[::1]:20003", "::1"]\n`
      )
      const c = yield* Config.loadBartoc({ configPath: file, env: isolatedEnv() })
      assert.deepStrictEqual(c.bartos.servers, [
        { host: "b1.example", port: 20001 },
        { host: "b2.example" },
        { host: "::1", port: 20003 },
        { host: "::1" }
      ])
      assert.strictEqual(c.bartos.port, 21000)
      // `host` alone keeps working, and no list appears.
      const plain = yield* Config.loadBartoc({ env: isolatedEnv({ BARTOC_BARTOS__HOST: "one.example" }) })
      assert.strictEqual(plain.bartos.host, "one.example")
      assert.isUndefined(plain.bartos.servers)
    }))

  it.effect("servers and host in one source is an error naming both keys, with file:line", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartoc.toml", `[bartos]\nhost = "a"\nservers = ["b", "c"]\n`)
      const e = yield* failure(Config.loadBartoc({ configPath: file, env: isolatedEnv() }))
      assert.strictEqual(e.message, `${file}:3:1: bartos.servers: both host and servers are set; use one`)
      const e2 = yield* failure(
        Config.loadBartoc({ env: isolatedEnv({ BARTOC_BARTOS__HOST: "a", BARTOC_BARTOS__SERVERS: "b,c" }) })
      )
      assert.include(e2.message, "bartos.servers: both host and servers are set; use one")
      assert.include(e2.message, "environment BARTOC_BARTOS__SERVERS")
    }))

  it.effect("a higher source giving either key replaces both from lower sources", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartoc.toml", `[bartos]\nservers = ["b1:1", "b2:2"]\n`)
      const byHost = yield* Config.loadBartoc({ configPath: file, env: isolatedEnv({ BARTOC_BARTOS__HOST: "only" }) })
      assert.strictEqual(byHost.bartos.host, "only")
      assert.isUndefined(byHost.bartos.servers)
      const hostFile = writeFile(tmp(), "bartoc.toml", `[bartos]\nhost = "a"\n`)
      const byList = yield* Config.loadBartoc({
        configPath: hostFile,
        env: isolatedEnv({ BARTOC_BARTOS__SERVERS: "b1:20001, b2" })
      })
      assert.deepStrictEqual(byList.bartos.servers, [{ host: "b1", port: 20001 }, { host: "b2" }])
      assert.strictEqual(byList.bartos.host, "127.0.0.1") // the schema default, unused with a list
    }))

  it.effect("bad entries are reported with the source and the expected form", () =>
    Effect.gen(function*() {
      for (const bad of [`[]`, `["a:0"]`, `["a:x"]`, `[""]`, `[1]`, `"a b"`]) {
        const file = writeFile(tmp(), "bartoc.toml", `[bartos]\nservers = ${bad}\n`)
        const e = yield* failure(Config.loadBartoc({ configPath: file, env: isolatedEnv() }))
        assert.strictEqual(e.path, "bartos.servers", bad)
        assert.include(e.message, `${file}:2:1: bartos.servers: expected a non-empty list of "host" or "host:port"`)
      }
      const e = yield* failure(Config.loadBartoc({ env: isolatedEnv({ BARTOC_BARTOS__SERVERS: "a:99999" }) }))
      assert.include(e.message, "environment BARTOC_BARTOS__SERVERS: bartos.servers: expected a non-empty list")
    }))
})

describe("alerts and [notify] channels (issue 14)", () => {
  const alertsToml = (secretLine: string) =>
    `[alerts]
alert = { on = ["failed", "recovered"], to = ["ops-hook"] }
late_after = "5m"
reminder_interval = "4h"

[notify.ops-hook]
type = "webhook"
url = "http://127.0.0.1:9/hook"
${secretLine}

[notify.oncall-mail]
type = "email"
smtp_host = "127.0.0.1"
smtp_port = 2525
from = "barto@example.org"
to = ["oncall@example.org"]

[notify.pager]
type = "command"
command = ["/usr/local/bin/page", "--json"]

[schedules.web1]
stall_after = "2m"
alert = { to = ["pager"], after_failures = 2 }

[[schedules.web1.schedules]]
name = "backup"
on_calendar = "daily"
cmds = ["true"]
expected_duration = "1h"
alert = { to = ["ops-hook", "oncall-mail"] }
`

  it.effect("per schedule, per agent and global settings, three channel types, secret_file", () =>
    Effect.gen(function*() {
      const dir = tmp()
      const secret = writeFile(dir, "hook.secret", "s3cret\n")
      const file = writeFile(dir, "bartos.toml", alertsToml(`secret_file = "hook.secret"`))
      const c = yield* Config.loadBartos({ configPath: file, env: isolatedEnv() })
      assert.deepStrictEqual(c.alerts.alert, { on: ["failed", "recovered"], to: ["ops-hook"] })
      assert.strictEqual(c.alerts.late_after, 300)
      assert.strictEqual(c.alerts.reminder_interval, 4 * 3600)
      assert.strictEqual(c.alerts.agent_down_after, 60)
      const hook = c.notify["ops-hook"]!
      assert.strictEqual(hook.type, "webhook")
      assert.strictEqual(Redacted.value(hook.secret!), "s3cret")
      assert.isFalse("secret_file" in hook)
      assert.strictEqual(c.notify["oncall-mail"]!.smtp_security, "starttls")
      assert.deepStrictEqual(c.notify.pager!.command, ["/usr/local/bin/page", "--json"])
      assert.strictEqual(c.schedules.web1!.stall_after, 120)
      assert.deepStrictEqual(c.schedules.web1!.alert, { to: ["pager"], after_failures: 2 })
      assert.strictEqual(c.schedules.web1!.schedules[0]!.expected_duration, 3600)
      assert.isTrue(fs.existsSync(secret))
    }))

  it.effect("unknown keys, missing keys per type, unknown channels and both secret forms are errors at file:line", () =>
    Effect.gen(function*() {
      const dir = tmp()
      writeFile(dir, "hook.secret", "s3cret\n")
      const text = alertsToml(`secret = "x"\nsecret_file = "hook.secret"`)
      const both = yield* failure(Config.loadBartos({ configPath: writeFile(dir, "a.toml", text), env: isolatedEnv() }))
      assert.match(both.message, /notify\.ops-hook\.secret: both secret and secret_file are set; use one/)

      const bad = text
        .replace(`secret = "x"\nsecret_file = "hook.secret"`, `secert = "x"`)
        .replace(`late_after = "5m"`, `lat_after = "5m"`)
      const file = writeFile(dir, "b.toml", bad)
      const e = yield* failure(Config.loadBartos({ configPath: file, env: isolatedEnv() }))
      const lines = e.problems.map(Config.formatProblem)
      assert.include(lines, `${file}:3:1: alerts: unknown key 'lat_after' (did you mean 'late_after'?)`)
      assert.isTrue(
        lines.some((l) => /b\.toml:9:1: notify\.ops-hook: unknown key 'secert' \(did you mean 'secret'\?\)/.test(l)),
        lines.join("\n")
      )
      assert.isTrue(
        lines.some((l) =>
          /b\.toml:\d+:\d+: notify\.ops-hook\.secret: missing required key for type = "webhook"/.test(l)
        ),
        lines.join("\n")
      )

      // Names are checked once every table decodes (the check needs the whole config).
      const unknownTarget = writeFile(
        dir,
        "c.toml",
        text.replace(`secret_file = "hook.secret"\n`, "").replace(`to = ["pager"]`, `to = ["pagr"]`)
      )
      const t = yield* failure(Config.loadBartos({ configPath: unknownTarget, env: isolatedEnv() }))
      assert.deepStrictEqual(t.problems.map(Config.formatProblem), [
        `${unknownTarget}:24:17: schedules.web1.alert.to[0]: no [notify.pagr] channel (known: ops-hook, oncall-mail, pager)`
      ])
    }))

  it.effect("event kinds are checked", () =>
    Effect.gen(function*() {
      const file = writeFile(tmp(), "bartos.toml", `[alerts]\nalert = { on = ["failed", "exploded"] }\n`)
      const e = yield* failure(Config.loadBartos({ configPath: file, env: isolatedEnv() }))
      assert.match(e.message, /alerts\.alert\.on\[1\]: expected one of "failed", "timed_out"/)
    }))
})
