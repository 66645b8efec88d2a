/**
 * One command as a child process, with Node's `child_process` wrapped directly (style.md §3.5
 * lists why not @effect/platform Command: the empty read when exitCode is awaited first, a group
 * kill that waits, and signal exits that fail).
 *
 * The child runs `<shell> -c <command>` in its own process group (`detached`), stdin on
 * /dev/null. stdout and stderr are read in flowing mode as raw bytes and handed to `onChunk` in
 * the order Node reads them, so the pipes are always drained and the child never waits on us.
 * `result` completes only after the process exited AND both streams ended.
 */
import * as ChildProcess from "node:child_process"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

export type StreamName = "stdout" | "stderr"

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
  readonly onChunk: (stream: StreamName, chunk: Uint8Array) => void
  readonly onEnd: (stream: StreamName) => void
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

/**
 * Spawns the command. The scope's finalizer SIGKILLs the group if the result was not reached
 * (the run was interrupted), so no child outlives an interrupted run.
 */
export const spawn = (options: SpawnOptions): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const done = yield* Deferred.make<Result>()
      const complete = (result: Result) => Deferred.unsafeDone(done, Effect.succeed(result))

      let child: ChildProcess.ChildProcess
      try {
        child = ChildProcess.spawn(options.shell, ["-c", options.command], {
          detached: true,
          stdio: ["ignore", "pipe", "pipe"],
          env: options.env,
          cwd: process.cwd(),
          windowsHide: true
        })
      } catch (e) {
        // Synchronous failures (bad arguments, EAGAIN from fork) are a failed command, not a crash.
        complete({ exitCode: 127, signal: null, spawnError: `cannot start ${options.shell}: ${describe(e)}` })
        return { child: undefined, handle: makeHandle(undefined, done, () => {}) }
      }

      let spawned = false
      let exited: { code: number | null; signal: string | null } | undefined
      const open = new Set<StreamName>(["stdout", "stderr"])
      const finishIfDone = () => {
        if (exited !== undefined && open.size === 0) {
          complete({ exitCode: exited.code, signal: exited.signal })
        }
      }
      const endStream = (name: StreamName) => {
        if (!open.has(name)) return
        open.delete(name)
        options.onEnd(name)
        finishIfDone()
      }
      for (const name of ["stdout", "stderr"] as const) {
        const stream = child[name]!
        stream.on("data", (chunk: Buffer) => {
          if (open.has(name)) options.onChunk(name, chunk)
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
      return { child, handle: makeHandle(child.pid, done, abandon) }
    }),
    ({ child, handle }) =>
      Effect.gen(function*() {
        if (child === undefined) return
        const finished = yield* handle.finished
        if (!finished) {
          killGroup(child.pid, "SIGKILL")
          child.stdout?.destroy()
          child.stderr?.destroy()
        }
      })
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
