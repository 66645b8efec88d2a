/**
 * One command as a child process, with Node's `child_process` wrapped directly (style.md §3.5
 * lists why not @effect/platform Command: the empty read when exitCode is awaited first, a group
 * kill that waits, and signal exits that fail).
 *
 * The child runs `<shell> -c <command>` in its own process group (`detached`), stdin on
 * /dev/null. stdout and stderr are read in flowing mode as raw bytes and handed to `onChunk` in
 * the order Node reads them, so the pipes are always drained and the child never waits on us.
 * `result` completes only after the process exited AND both streams ended.
 *
 * fd 3 is the job's heartbeat pipe (`BARTO_HEARTBEAT=fd:3`, domain Heartbeat.ts): its bytes go to
 * `onChunk` as `"beat"`. Nothing waits for it to end (a background process may keep it open), and
 * it is closed on our side once the result is reached.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import type * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

export type StreamName = "stdout" | "stderr"
/** Where a chunk was read: an output stream, or the heartbeat pipe. */
export type ChunkSource = StreamName | "beat"

export interface Result {
  readonly exitCode: number | null
  readonly signal: string | null
  /** Set when the process could not be started at all (missing shell, EACCES…). */
  readonly spawnError?: string
}

export interface Child {
  readonly pid: number | undefined
  /** Exit status, once the process exited and both streams were drained. */
  readonly result: Effect.Effect<Result>
  /** Sends a signal to the whole process group; a group already gone is not an error. */
  readonly signalGroup: (signal: NodeJS.Signals) => Effect.Effect<void>
  /**
   * Stops waiting for the streams: for a process that exited but left a descendant outside
   * its group holding the pipes open. What was read so far is kept.
   */
  readonly abandonStreams: Effect.Effect<void>
}

export interface SpawnOptions {
  readonly shell: string
  readonly command: string
  readonly env: Record<string, string>
  /**
   * Run the command this many niceness steps below bartoc (capped at 19 by the kernel); 0 or
   * absent = bartoc's own priority. Through `niceBin` when given (race-free), else by
   * `os.setPriority` right after the fork.
   */
  readonly nice?: number
  /** The `nice` program (`findNice`). */
  readonly niceBin?: string | undefined
  /** bartoc's own scheduler autogroup (`findAutogroup`); undefined where the kernel has none. */
  readonly autogroup?: Autogroup | undefined
  readonly onChunk: (stream: ChunkSource, chunk: Uint8Array) => void
  readonly onEnd: (stream: StreamName) => void
}

/** The `nice` program on `PATH` (looked up once, at start-up, not at a due instant). */
export const findNice = (path: string | undefined): string | undefined => {
  for (const dir of (path ?? "/usr/bin:/bin").split(":")) {
    if (dir === "") continue
    const file = Path.join(dir, "nice")
    try {
      Fs.accessSync(file, Fs.constants.X_OK)
      return file
    } catch {
      // not here
    }
  }
  return undefined
}

/** bartoc's own scheduler autogroup: its name and its nice value (`/proc/self/autogroup`). */
export interface Autogroup {
  readonly name: string
  readonly nice: number
}

const AUTOGROUP = /^(\S+) nice (-?\d+)$/

/** Parses a `/proc/<pid>/autogroup` line: `/autogroup-85 nice 0`. */
export const parseAutogroup = (text: string): Autogroup | undefined => {
  const m = AUTOGROUP.exec(text.trim())
  return m === null ? undefined : { name: m[1]!, nice: Number(m[2]) }
}

/**
 * bartoc's own autogroup, read once at start-up; undefined when the kernel has no autogroups
 * (no `/proc/self/autogroup`) or they are switched off (`kernel.sched_autogroup_enabled = 0`).
 */
export const findAutogroup = (): Autogroup | undefined => {
  try {
    if (Fs.readFileSync("/proc/sys/kernel/sched_autogroup_enabled", "latin1").trim() === "0") return undefined
    return parseAutogroup(Fs.readFileSync("/proc/self/autogroup", "latin1"))
  } catch {
    return undefined
  }
}

/**
 * With autogroups (Linux's default `CONFIG_SCHED_AUTOGROUP`), the CPU is shared fairly between
 * sessions first and by niceness only inside a session. A job is `detached`, so it starts its own
 * session and autogroup, and its niceness alone would change nothing against bartoc: three busy
 * jobs got three autogroups of full weight and left bartoc's session a quarter of the CPU (the
 * bench's loaded dispatch row: p99 25 ms). So the job's autogroup gets the same `nice` steps
 * below bartoc's (`/proc/<pid>/autogroup`, our own child: no privilege needed). It is set right
 * after the spawn, for the whole session, including what the job forked meanwhile. Checked first:
 * the child must be in an autogroup of its own (spawn returns after its setsid), never bartoc's.
 * Best effort: a failed write leaves the job at its niceness only.
 */
const niceAutogroup = (pid: number, own: Autogroup, nice: number): boolean => {
  try {
    const group = parseAutogroup(Fs.readFileSync(`/proc/${pid}/autogroup`, "latin1"))
    if (group === undefined || group.name === own.name) return false
    Fs.writeFileSync(`/proc/${pid}/autogroup`, String(Math.min(19, own.nice + nice)))
    return true
  } catch {
    return false
  }
}

const describe = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

const killGroup = (pid: number | undefined, signal: NodeJS.Signals) => {
  if (pid === undefined) return
  try {
    process.kill(-pid, signal)
  } catch {
    // ESRCH: the group is gone already. EPERM cannot happen for our own children.
  }
}

/** What `launch` spawns with; the output goes where `adopt` says (kept in order until then). */
export type LaunchOptions = Omit<SpawnOptions, "onChunk" | "onEnd">

/** A command spawned by `launch`, not yet owned by a scope. */
export interface Launched {
  readonly child: ChildProcess.ChildProcess | undefined
  readonly handle: ReturnType<typeof makeHandle>
  /** Routes output to these from now on, after replaying what came before. */
  readonly attach: (onChunk: SpawnOptions["onChunk"], onEnd: SpawnOptions["onEnd"]) => void
}

/**
 * Spawns the command right now, synchronously, with no Effect in the way (a run's first command
 * at its due instant). Output arriving before `attach` is kept, in order, and replayed then.
 * Nothing kills it yet: hand it to `adopt` at once.
 */
export const launch = (options: LaunchOptions): Launched => {
  const done = Deferred.unsafeMake<Result>(FiberId.none)
  const complete = (result: Result) => Deferred.unsafeDone(done, Effect.succeed(result))

  const early: Array<readonly [ChunkSource, Uint8Array | undefined]> = []
  let onChunk: SpawnOptions["onChunk"] = (stream, chunk) => early.push([stream, chunk])
  let onEnd: SpawnOptions["onEnd"] = (stream) => early.push([stream, undefined])
  const attach = (chunkTo: SpawnOptions["onChunk"], endTo: SpawnOptions["onEnd"]) => {
    onChunk = chunkTo
    onEnd = endTo
    for (const [stream, chunk] of early.splice(0)) {
      if (chunk === undefined) endTo(stream as StreamName)
      else chunkTo(stream, chunk)
    }
  }

  const nice = options.nice ?? 0
  // `nice -n N <shell> -c <command>` sets the niceness before the shell exists and then execs it
  // (same pid, same process group), so nothing the job forks can escape it; renicing the shell
  // after the fork could lose that race when bartoc is descheduled right after the fork, which is
  // exactly when the machine is busy (seen in tests).
  const [file, args] = nice > 0 && options.niceBin !== undefined
    ? [options.niceBin, ["-n", String(nice), options.shell, "-c", options.command]]
    : [options.shell, ["-c", options.command]]
  let child: ChildProcess.ChildProcess
  try {
    child = ChildProcess.spawn(file, args, {
      detached: true,
      stdio: ["ignore", "pipe", "pipe", "pipe"],
      env: options.env,
      cwd: process.cwd(),
      windowsHide: true
    })
  } catch (e) {
    // Synchronous failures (bad arguments, EAGAIN from fork) are a failed command, not a crash.
    complete({ exitCode: 127, signal: null, spawnError: `cannot start ${options.shell}: ${describe(e)}` })
    return { child: undefined, handle: makeHandle(undefined, done, () => {}), attach }
  }

  // No `nice` program: renice the shell right after the fork (what it forks later inherits it).
  // Raising our own child's niceness needs no privilege; a child already gone (ESRCH) only
  // leaves the job at bartoc's priority.
  if (nice > 0 && options.niceBin === undefined && child.pid !== undefined) {
    try {
      Os.setPriority(child.pid, Math.min(19, Os.getPriority() + nice))
    } catch {
      // see above
    }
  }

  if (nice > 0 && options.autogroup !== undefined && child.pid !== undefined) {
    niceAutogroup(child.pid, options.autogroup, nice)
  }

  let spawned = false
  let exited: { code: number | null; signal: string | null } | undefined
  const open = new Set<StreamName>(["stdout", "stderr"])
  const beat = child.stdio[3] as NodeJS.ReadableStream & { destroy: () => void } | null | undefined
  const finishIfDone = () => {
    if (exited !== undefined && open.size === 0) {
      beat?.destroy()
      complete({ exitCode: exited.code, signal: exited.signal })
    }
  }
  beat?.on("data", (chunk: Buffer) => onChunk("beat", chunk))
  beat?.on("error", () => {})
  const endStream = (name: StreamName) => {
    if (!open.has(name)) return
    open.delete(name)
    onEnd(name)
    finishIfDone()
  }
  for (const name of ["stdout", "stderr"] as const) {
    const stream = child[name]!
    stream.on("data", (chunk: Buffer) => {
      if (open.has(name)) onChunk(name, chunk)
    })
    stream.on("end", () => endStream(name))
    // A read error ends that stream; 'close' covers a destroyed stream that never ended.
    stream.on("error", () => endStream(name))
    stream.on("close", () => endStream(name))
  }
  child.on("spawn", () => {
    spawned = true
  })
  child.on("error", (e) => {
    if (!spawned) {
      complete({ exitCode: 127, signal: null, spawnError: `cannot start ${options.shell}: ${describe(e)}` })
    }
  })
  child.on("exit", (code, signal) => {
    exited = { code, signal }
    finishIfDone()
  })

  const abandon = () => {
    for (const name of ["stdout", "stderr"] as const) {
      child[name]?.destroy()
      endStream(name)
    }
  }
  return { child, handle: makeHandle(child.pid, done, abandon), attach }
}

/** Kills a launched command that never reached its result (its run was interrupted). */
export const release = ({ child, handle }: Launched): Effect.Effect<void> =>
  Effect.gen(function*() {
    if (child === undefined) return
    const finished = yield* handle.finished
    if (!finished) {
      killGroup(child.pid, "SIGKILL")
      child.stdout?.destroy()
      child.stderr?.destroy()
    }
  })

/**
 * Gives a launched command to the current scope, whose finalizer SIGKILLs the group if the
 * result was not reached (the run was interrupted), and routes its output.
 */
export const adopt = (
  launched: Launched,
  onChunk: SpawnOptions["onChunk"],
  onEnd: SpawnOptions["onEnd"]
): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      launched.attach(onChunk, onEnd)
      return launched
    }),
    release
  ).pipe(Effect.map(({ handle }) => handle.child))

/**
 * Spawns the command. The scope's finalizer SIGKILLs the group if the result was not reached
 * (the run was interrupted), so no child outlives an interrupted run.
 */
export const spawn = (options: SpawnOptions): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const launched = launch(options)
      launched.attach(options.onChunk, options.onEnd)
      return launched
    }),
    release
  ).pipe(Effect.map(({ handle }) => handle.child))

const makeHandle = (pid: number | undefined, done: Deferred.Deferred<Result>, abandon: () => void) => ({
  finished: Deferred.isDone(done),
  child: {
    pid,
    result: Deferred.await(done),
    signalGroup: (signal: NodeJS.Signals) => Effect.sync(() => killGroup(pid, signal)),
    abandonStreams: Effect.sync(abandon)
  } satisfies Child
})
