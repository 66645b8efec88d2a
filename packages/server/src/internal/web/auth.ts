/**
 * Who may call the HTTP API (D7 applied to the console): the keys of the WebSocket links, a
 * browser session bought with one of them, and the loopback rule of the CLI when no key is set.
 *
 * - `Authorization: Bearer <admin_key>` is admin, `Bearer <api_key>` reads. A bearer that matches
 *   neither is refused (401) unless no api key is configured, where reads are open anyway (as on
 *   the WebSocket links, which then accept any bearer).
 * - `POST /v1/api/session` with a key (or, without an api key, with none) sets `barto_session`:
 *   HttpOnly, SameSite=Strict, Secure on the TLS listener, expiring after `sessionTtlSecs`. Each
 *   session has its own CSRF token, required as `X-CSRF-Token` on every action made with it.
 * - Without an admin key, admin is granted to loopback callers only, as for the CLI; for the
 *   browser the `Host` must be a loopback name too, so a DNS-rebinding page cannot borrow it.
 * - Actions (any method but GET/HEAD) never ride on "open" access: they need a bearer or the
 *   session cookie with its CSRF token, so a cross-site form cannot run a job.
 *
 * Sessions live in memory (a restart logs everyone out); their number is bounded.
 */
import * as Redacted from "effect/Redacted"
import { randomBytes } from "node:crypto"
import { isLoopback, secretEquals } from "../../CliSession.js"

export type Role = "read" | "admin"

export interface Session {
  readonly id: string
  readonly role: Role
  readonly csrf: string
  readonly expiresAtMs: number
}

export interface Keys {
  readonly apiKey: Redacted.Redacted<string> | undefined
  readonly adminKey: Redacted.Redacted<string> | undefined
}

/** Sessions kept at most; the oldest go first when a login would exceed it. */
export const MAX_SESSIONS = 10_000
/** Failed logins per client address and minute; more are refused (429) until the minute is over. */
export const LOGIN_FAILURES_PER_MINUTE = 10

const token = () => randomBytes(32).toString("base64url")

/** The role a key grants, if any (the admin key also reads). */
export const roleOfKey = (keys: Keys, key: string): Role | undefined => {
  if (keys.adminKey !== undefined && secretEquals(key, Redacted.value(keys.adminKey))) return "admin"
  if (keys.apiKey !== undefined && secretEquals(key, Redacted.value(keys.apiKey))) return "read"
  return undefined
}

/** `localhost`, `127.x.y.z`, `[::1]` with or without a port. */
export const isLoopbackHost = (host: string | undefined): boolean => {
  if (host === undefined) return false
  const name = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : host.replace(/:\d+$/, "")
  return name === "localhost" || name === "::1" || /^127\.\d+\.\d+\.\d+$/.test(name)
}

/** Role without any credential: none when an api key is required, else read, admin from loopback. */
export const openRole = (keys: Keys, ip: string, host: string | undefined): Role | undefined => {
  if (keys.apiKey !== undefined) return undefined
  return keys.adminKey === undefined && isLoopback(ip) && isLoopbackHost(host) ? "admin" : "read"
}

/** The sentence the console shows about access. */
export const accessNote = (keys: Keys): string =>
  keys.apiKey === undefined && keys.adminKey === undefined
    ? "No keys are configured: anyone who reaches bartos can read; actions are allowed from loopback only."
    : keys.adminKey === undefined
    ? "No admin key is configured: actions are allowed from loopback only."
    : keys.apiKey === undefined
    ? "No api key is configured: anyone who reaches bartos can read; actions need the admin key."
    : "Reading needs the api key; actions need the admin key."

export interface Sessions {
  readonly create: (role: Role, nowMs: number, ttlMs: number) => Session
  readonly get: (id: string, nowMs: number) => Session | undefined
  readonly remove: (id: string) => void
  readonly size: () => number
}

export const makeSessions = (max = MAX_SESSIONS): Sessions => {
  // Insertion order = creation order, so the first entries are the oldest.
  const byId = new Map<string, Session>()
  const prune = (nowMs: number) => {
    for (const [id, s] of byId) if (s.expiresAtMs <= nowMs) byId.delete(id)
    while (byId.size >= max) byId.delete(byId.keys().next().value!)
  }
  return {
    create: (role, nowMs, ttlMs) => {
      prune(nowMs)
      const session: Session = { id: token(), role, csrf: token(), expiresAtMs: nowMs + ttlMs }
      byId.set(session.id, session)
      return session
    },
    get: (id, nowMs) => {
      const s = byId.get(id)
      if (s === undefined) return undefined
      if (s.expiresAtMs <= nowMs) {
        byId.delete(id)
        return undefined
      }
      return s
    },
    remove: (id) => void byId.delete(id),
    size: () => byId.size
  }
}

export interface RateLimiter {
  /** undefined: a login may be tried; else seconds until the next one may. */
  readonly blocked: (key: string, nowMs: number) => number | undefined
  /** Counts a failed login. */
  readonly failed: (key: string, nowMs: number) => void
}

/** Fixed one-minute windows of failed logins per key; the table forgets finished windows as it grows. */
export const makeRateLimiter = (perMinute = LOGIN_FAILURES_PER_MINUTE, maxKeys = 10_000): RateLimiter => {
  const windows = new Map<string, { start: number; count: number }>()
  return {
    blocked: (key, nowMs) => {
      const w = windows.get(key)
      if (w === undefined || nowMs - w.start >= 60_000 || w.count < perMinute) return undefined
      return Math.max(1, Math.ceil((w.start + 60_000 - nowMs) / 1000))
    },
    failed: (key, nowMs) => {
      if (windows.size >= maxKeys) {
        for (const [k, w] of windows) if (nowMs - w.start >= 60_000) windows.delete(k)
        if (windows.size >= maxKeys) windows.delete(windows.keys().next().value!)
      }
      const w = windows.get(key)
      if (w === undefined || nowMs - w.start >= 60_000) windows.set(key, { start: nowMs, count: 1 })
      else w.count++
    }
  }
}
