/**
 * Notification channels (issue 14): one attempt to hand a queued notification to a webhook, an
 * SMTP server or a local command. The queue, the retries and their backoff are the delivery
 * worker's (Alerts.ts); here only "did this attempt succeed, and if not, why".
 *
 * Webhook signing (README "Webhooks"): `X-Barto-Timestamp` is Unix seconds at the attempt,
 * `X-Barto-Signature` is `sha256=` + hex HMAC-SHA256 with the channel's secret over
 * `<timestamp>.<body>` (the exact bytes sent), `X-Barto-Event-Id` the event id receivers
 * deduplicate by (delivery is at least once). A receiver rejects a bad signature and a timestamp
 * too far from its clock (replays).
 */
import type * as Config from "@barto/domain/Config"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { spawn } from "node:child_process"
import { createHmac, timingSafeEqual } from "node:crypto"
import nodemailer from "nodemailer"

export class DeliveryFailed extends Data.TaggedError("DeliveryFailed")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

/** `sha256=<hex>` over `<timestamp>.<body>`. */
export const sign = (secret: string, timestamp: number, body: string): string =>
  `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`

/** The check a receiver makes (also the reference for tests): signature, then the timestamp's age. */
export const verify = (options: {
  readonly secret: string
  readonly body: string
  readonly timestamp: string | undefined
  readonly signature: string | undefined
  readonly nowSecs: number
  readonly toleranceSecs?: number
}): boolean => {
  const ts = Number(options.timestamp)
  if (!Number.isSafeInteger(ts) || options.signature === undefined) return false
  if (Math.abs(options.nowSecs - ts) > (options.toleranceSecs ?? 300)) return false
  const expected = Buffer.from(sign(options.secret, ts, options.body))
  const given = Buffer.from(options.signature)
  return expected.length === given.length && timingSafeEqual(expected, given)
}

const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e))

const webhook = (channel: Config.NotifyChannel, eventId: string, body: string) =>
  Effect.gen(function*() {
    const timestamp = Math.floor((yield* Clock.currentTimeMillis) / 1000)
    const response = yield* Effect.tryPromise({
      try: (signal) =>
        fetch(channel.url!, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "user-agent": "bartos",
            "x-barto-event-id": eventId,
            "x-barto-timestamp": String(timestamp),
            "x-barto-signature": sign(Redacted.value(channel.secret!), timestamp, body)
          },
          body,
          signal: AbortSignal.any([signal, AbortSignal.timeout(channel.timeout * 1000)])
        }),
      catch: (e) => new DeliveryFailed({ reason: `POST ${channel.url}: ${describe((e as Error)?.cause ?? e)}` })
    })
    // Drain the body so the connection can be reused; its content is only for the error.
    const text = yield* Effect.promise(() => response.text().catch(() => ""))
    if (!response.ok) {
      return yield* new DeliveryFailed({ reason: `POST ${channel.url}: HTTP ${response.status} ${text.slice(0, 200)}` })
    }
  })

interface Payload {
  readonly kind?: string
  readonly agent?: string
  readonly schedule?: string | null
  readonly run_id?: string | null
  readonly at?: string
  readonly reminder?: number
  readonly incident?: { readonly id: string; readonly state: string; readonly opened_at: string } | null
  readonly detail?: {
    readonly state?: string
    readonly exit_code?: number | null
    readonly signal?: string | null
    readonly reason?: string | null
    readonly output?: ReadonlyArray<string>
    readonly message?: string
  }
}

/** Subject and text body of an alert mail: agent, schedule, state, exit status, the last output lines. */
export const mailOf = (body: string): { readonly subject: string; readonly text: string } => {
  let p: Payload = {}
  try {
    p = JSON.parse(body) as Payload
  } catch {
    // A body we did not write (never happens): send it as it is.
  }
  const what = p.schedule === null || p.schedule === undefined ? p.agent : `${p.agent}/${p.schedule}`
  const d = p.detail ?? {}
  const exit = d.exit_code !== undefined && d.exit_code !== null
    ? `exit ${d.exit_code}`
    : d.signal !== undefined && d.signal !== null
    ? `signal ${d.signal}`
    : "-"
  const lines = [
    `${p.reminder !== undefined ? "Reminder: " : ""}${p.kind ?? "event"} on ${what}`,
    "",
    `agent:     ${p.agent ?? "-"}`,
    `schedule:  ${p.schedule ?? "-"}`,
    `state:     ${d.state ?? p.kind ?? "-"}`,
    `exit:      ${exit}`,
    ...(d.reason ? [`reason:    ${d.reason}`] : []),
    `run:       ${p.run_id ?? "-"}`,
    `at:        ${p.at ?? "-"}`,
    ...(p.incident ? [`incident:  ${p.incident.id} (${p.incident.state}, opened ${p.incident.opened_at})`] : []),
    ...(d.message ? ["", d.message] : []),
    ...(d.output !== undefined && d.output.length > 0
      ? ["", `Last ${d.output.length} output lines:`, ...d.output]
      : []),
    "",
    `event id: ${(p as { readonly id?: string }).id ?? "-"}`
  ]
  return {
    subject: `[barto] ${p.reminder !== undefined ? "reminder: " : ""}${p.kind ?? "event"}: ${what}`,
    text: lines.join("\n") + "\n"
  }
}

const email = (channel: Config.NotifyChannel, eventId: string, body: string) =>
  Effect.gen(function*() {
    const timeoutMs = channel.timeout * 1000
    const transport = nodemailer.createTransport({
      host: channel.smtp_host!,
      port: channel.smtp_port ?? (channel.smtp_security === "tls" ? 465 : 587),
      secure: channel.smtp_security === "tls",
      requireTLS: channel.smtp_security === "starttls",
      ignoreTLS: channel.smtp_security === "none",
      ...(channel.username !== undefined
        ? {
          auth: { user: channel.username, pass: channel.password === undefined ? "" : Redacted.value(channel.password) }
        }
        : {}),
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs
    })
    const mail = mailOf(body)
    yield* Effect.tryPromise({
      try: () =>
        transport.sendMail({
          from: channel.from!,
          to: [...channel.to!],
          subject: mail.subject,
          text: mail.text,
          headers: { "X-Barto-Event-Id": eventId }
        }),
      catch: (e) => new DeliveryFailed({ reason: `SMTP ${channel.smtp_host}: ${describe(e)}` })
    }).pipe(Effect.ensuring(Effect.sync(() => transport.close())))
  })

const command = (channel: Config.NotifyChannel, eventId: string, body: string) =>
  Effect.async<void, DeliveryFailed>((resume) => {
    const [program, ...args] = channel.command!
    const child = spawn(program!, args, {
      stdio: ["pipe", "ignore", "pipe"],
      env: { ...process.env, BARTO_EVENT_ID: eventId }
    })
    let stderr = ""
    let done = false
    const finish = (error: string | undefined) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resume(error === undefined ? Effect.void : Effect.fail(new DeliveryFailed({ reason: error })))
    }
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      finish(`${program}: no exit within ${channel.timeout}s, killed`)
    }, channel.timeout * 1000)
    child.stderr.on("data", (chunk: Buffer) => {
      if (stderr.length < 2000) stderr += chunk.toString("utf8")
    })
    child.on("error", (e) => finish(`${program}: ${e.message}`))
    child.on("close", (code, signal) =>
      finish(
        code === 0 ?
          undefined :
          `${program}: ${signal !== null ? `killed by ${signal}` : `exit ${code}`}${
            stderr.trim() === "" ? "" : `: ${stderr.trim().slice(0, 500)}`
          }`
      ))
    // A program that does not read its stdin gets EPIPE: that is its choice, not a failed delivery.
    child.stdin.on("error", () => {})
    child.stdin.end(body)
    return Effect.sync(() => {
      if (!done) child.kill("SIGKILL")
    })
  })

/** One attempt over the channel. */
export const deliver = (
  channel: Config.NotifyChannel,
  eventId: string,
  body: string
): Effect.Effect<void, DeliveryFailed> => {
  switch (channel.type) {
    case "webhook":
      return webhook(channel, eventId, body)
    case "email":
      return email(channel, eventId, body)
    case "command":
      return command(channel, eventId, body)
  }
}

/** Delay before attempt `attempts + 1`: 1 s doubling, capped at `backoff_max`. */
export const backoffSecs = (channel: Config.NotifyChannel, attempts: number): number =>
  Math.min(channel.backoff_max, 2 ** Math.max(0, attempts - 1))
