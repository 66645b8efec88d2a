/**
 * What the one sweep over every worker session decides for one session, as a pure function of
 * its state and the time: nothing, a liveness Ping, or a close (no hello in time, silent too
 * long). `WorkerSession.ts` runs it for each live session on a fixed schedule and performs the
 * outcome; a resting session needs no fiber or timer of its own for it.
 */

export interface SweepOptions {
  /** An agent silent this long is dropped (close 4000); at half of it, it is probed with a Ping. */
  readonly livenessMs: number
  readonly helloTimeoutMs: number
}

/** A session's phase: before its hello is handled, serving, ended. */
export const HELLO = 0 as const
export const READY = 1 as const
export const ENDED = 2 as const
export type Phase = typeof HELLO | typeof READY | typeof ENDED

/** The state the sweep reads; `probed` is the `lastSeen` a probe was last sent for. */
export interface SweepState {
  readonly phase: Phase
  /** Set once the session is closing (its end is queued behind the frame in hand). */
  readonly closing: object | undefined
  readonly helloSeen: boolean
  readonly openedAt: number
  readonly lastSeen: number
  readonly probed: number
}

export type SweepAction =
  | { readonly _tag: "Close"; readonly code: number; readonly reason: string; readonly warning?: string }
  | { readonly _tag: "Ping" }

export const CLOSE_POLICY = 1008
export const CLOSE_LIVENESS = 4000

export const decide = (s: SweepState, now: number, options: SweepOptions): SweepAction | undefined => {
  if (s.closing !== undefined) return undefined
  if (s.phase === HELLO) {
    return !s.helloSeen && now - s.openedAt >= options.helloTimeoutMs
      ? { _tag: "Close", code: CLOSE_POLICY, reason: `no AgentHello within ${options.helloTimeoutMs / 1000} s` }
      : undefined
  }
  if (s.phase !== READY) return undefined
  const idle = now - s.lastSeen
  if (idle >= options.livenessMs) {
    return {
      _tag: "Close",
      code: CLOSE_LIVENESS,
      reason: "liveness timeout",
      warning: `no frame for ${options.livenessMs / 1000} s, dropping the agent`
    }
  }
  // bartoc pings on its own interval (`connection.ping_interval_secs`, 5 s by default), which
  // bartos does not know: with a short `liveness_secs` this probe keeps a healthy quiet agent; at
  // the defaults (15 s vs 5 s) it never fires. One probe per silence (`probed`).
  if (idle >= options.livenessMs / 2 && s.probed !== s.lastSeen) return { _tag: "Ping" }
  return undefined
}

/** How often the sweep runs: fine enough for both deadlines, at most once a second, at least every 10 ms. */
export const interval = (options: SweepOptions): number =>
  Math.max(10, Math.min(1000, options.livenessMs / 6, options.helloTimeoutMs / 4))
