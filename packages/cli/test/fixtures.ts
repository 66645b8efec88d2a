/** Canned rows and responses for the CLI tests. */
import * as Messages from "@barto/domain/Messages"

export const M = (n: number) => Messages.Micros.make(n)
export const T0 = Date.parse("2026-01-01T00:00:00Z") * 1000
export const RUN_A = Messages.RunId.make("0194b1c2-0000-7000-8000-00000000000a")
export const RUN_B = Messages.RunId.make("0194b1c2-0000-7000-8000-00000000000b")

export const clientRow = (name: string, version: string | null) =>
  new Messages.ClientRow({
    name,
    ip: "10.0.0.7",
    sessionId: `session-${name}`,
    connectedAt: M(T0),
    info: version === null
      ? null
      : new Messages.ClientInfo({
        osName: "Arch Linux",
        hostname: name,
        osVersion: "rolling",
        kernel: "6.12.1-arch1-1",
        agentVersion: version
      })
  })

export const runRow = (
  runId: Messages.RunId,
  state: Messages.RunState,
  extra: Partial<{ exitCode: number | null; signal: string | null; finishedAt: number | null }> = {}
) =>
  new Messages.RunRow({
    runId,
    agent: "host",
    schedule: "backup",
    trigger: "schedule",
    state,
    scheduledAt: M(T0),
    startedAt: M(T0 + 123_456),
    finishedAt: extra.finishedAt === undefined
      ? (state === "running" ? null : M(T0 + 2_623_456))
      : extra.finishedAt === null
      ? null
      : M(extra.finishedAt),
    exitCode: extra.exitCode === undefined
      ? (state === "succeeded" ? 0 : state === "running" ? null : 1)
      : extra.exitCode,
    signal: extra.signal ?? null,
    reason: null,
    scheduledUntil: null,
    occurrences: 1
  })

export const lineRow = (
  runId: Messages.RunId,
  lineSeq: number,
  data: string,
  stream: Messages.Stream = "stdout",
  runState: Messages.RunState = "succeeded"
) =>
  new Messages.LineRow({
    runId,
    agent: "host",
    schedule: "backup",
    cmdUuid: "c0ffee00-0000-4000-8000-000000000001",
    lineSeq,
    stream,
    ts: M(T0 + 1_000_000 + lineSeq * 250_000),
    data,
    continuation: false,
    exitCode: runState === "running" ? null : 0,
    runState
  })

export const scheduleRow = (agent: string, name: string, nextAt: number | null, paused = false) =>
  new Messages.ScheduleRow({
    agent,
    name,
    onCalendar: "*-*-* 10:R:R",
    calendar: "*-*-* 10:17:42",
    cmds: ["restic backup /home"],
    paused,
    connected: agent === "host",
    nextAt: nextAt === null ? null : M(nextAt)
  })

export const failedRow = () =>
  new Messages.FailedRow({
    runId: RUN_B,
    agent: "host",
    schedule: "backup",
    cmdUuid: "c0ffee00-0000-4000-8000-000000000002",
    command: "restic check",
    state: "failed",
    exitCode: 3,
    signal: null,
    finishedAt: M(T0 + 5_000_000),
    lines: ["Fatal: repository locked", "\u001b[31mred\u001b[0m\ttabbed"]
  })
