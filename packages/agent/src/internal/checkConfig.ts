/**
 * `bartoc --check-config`: the configuration bartoc would run with, checked as far as it can be
 * without running (no connection, no state file opened or created, no log file). Like `nginx -t`.
 */
import * as Config from "@barto/domain/Config"
import * as Envelope from "@barto/domain/Envelope"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Redacted from "effect/Redacted"
import * as fs from "node:fs"
import { fromConfig, serverUrls } from "../Connection.js"
import { AGENT_VERSION } from "../SystemInfo.js"

export interface CheckResult {
  /** The summary, for stdout (empty when invalid). */
  readonly summary: ReadonlyArray<string>
  /** Problems (exit 1 when there is any), each a line for stderr. */
  readonly errors: ReadonlyArray<string>
  /** Worth knowing, not fatal (unknown BARTOC_* variables). */
  readonly warnings: ReadonlyArray<string>
}

const unreadable = (file: string): string | undefined => {
  try {
    fs.accessSync(file, fs.constants.R_OK)
    return undefined
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e)
  }
}

export const check = (options: {
  readonly loadOptions: Config.LoadOptions
  readonly configFile: string
  readonly logFile: string
}): Effect.Effect<CheckResult> =>
  Effect.gen(function*() {
    const warnings = yield* Config.unknownEnvironment("bartoc", options.loadOptions)
    const loaded = yield* Effect.either(Config.loadBartoc(options.loadOptions))
    if (Either.isLeft(loaded)) return { summary: [], errors: loaded.left.problems.map(Config.formatProblem), warnings }
    const config = loaded.right
    const errors: Array<string> = []
    // What the start would find only when it first connects: files it cannot read, a key that
    // cannot verify anything.
    const files = {
      ca_cert: config.bartos.ca_cert,
      client_cert: config.bartos.client_cert,
      client_key: config.bartos.client_key
    }
    for (const [key, file] of Object.entries(files)) {
      const code = file === undefined ? undefined : unreadable(file)
      if (code !== undefined) errors.push(`bartos.${key}: cannot read ${JSON.stringify(file)} (${code})`)
    }
    const publicKey = config.server_public_key === undefined
      ? undefined
      : Envelope.parsePublicKey(config.server_public_key)
    if (publicKey !== undefined && Either.isLeft(publicKey)) errors.push(`server_public_key: ${publicKey.left.message}`)
    if (errors.length > 0) return { summary: [], errors, warnings }

    const c = config.connection
    const set = (keys: Record<string, Redacted.Redacted | undefined>) =>
      Object.entries(keys).map(([k, v]) => `${k} ${v === undefined ? "not set" : "set"}`).join(", ")
    const fingerprint = publicKey === undefined || Either.isLeft(publicKey)
      ? ""
      : ` (server key fingerprint ${publicKey.right.fingerprint})`
    const tls = [
      config.bartos.ca_cert === undefined ? undefined : `CA ${config.bartos.ca_cert}`,
      config.bartos.client_cert === undefined ? undefined : `client certificate ${config.bartos.client_cert}`
    ].filter((s) => s !== undefined)
    const file = fs.existsSync(options.configFile)
      ? options.configFile
      : `no file at ${options.configFile}: defaults and environment`
    return {
      summary: [
        `bartoc ${AGENT_VERSION}: configuration is valid (${file})`,
        `name:          ${config.name}`,
        `bartos:        ${serverUrls(fromConfig(config)).join(", ")}${tls.length === 0 ? "" : ` (${tls.join(", ")})`}`,
        `state:         ${config.state_path} (${
          fs.existsSync(config.state_path) ? "exists, not opened" : "created at start"
        })`,
        `log file:      ${options.logFile}`,
        `missed ticks:  ${config.missed_tick}, catch-up limit ${config.catch_up_limit}`,
        `outbox:        up to ${config.outbox_max_mb} MiB`,
        `reconnect:     ${config.retry_count === undefined ? "forever" : `${config.retry_count} retries`}, ` +
        `backoff ${c.reconnect_base_secs}..${c.reconnect_max_secs} s; ping every ${c.ping_interval_secs} s, ` +
        `server silent for ${c.server_silence_secs} s = dead link`,
        `keys:          ${
          set({
            api_key: config.bartos.api_key,
            hmac_key: config.hmac_key,
            server_public_key: config.server_public_key
          })
        }${fingerprint}`
      ],
      errors: [],
      warnings
    }
  })
