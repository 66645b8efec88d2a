/**
 * A real bartos (and bartoc) on 127.0.0.1 for a benchmark: config files in the suite's temp dir,
 * a free port picked beforehand (bartos' config wants a port ≥ 1, so port 0 is not an option),
 * the real bin shims, and the fd limit raised where many sockets are held.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { stringify } from "smol-toml"
import type { Db } from "./db.js"
import { binPath, freePort, type Proc, repoRoot, startNode } from "./procs.js"

/**
 * `npm run bench -- --profile` sets this: bartos and bartoc then write a CPU profile at exit
 * (lib/cpuprofile.mjs) into that directory.
 */
export const profileEnv = (): Record<string, string> => {
  const dir = process.env.BENCH_PROFILE_DIR
  if (dir === undefined || dir === "") return {}
  const preload = `--import ${join(repoRoot, "bench/lib/cpuprofile.mjs")}`
  return { NODE_OPTIONS: [process.env.NODE_OPTIONS, preload].filter(Boolean).join(" ") }
}

/**
 * What the bin shim of `program` runs right now: the bundle (packages/<pkg>/dist/<program>.mjs)
 * when the shim goes through scripts/launch.mjs and the bundle is at least as new as every
 * source, else the TypeScript sources through tsx. Memory figures differ a lot between the two.
 */
export const launchMode = (program: "bartos" | "bartoc"): "bundle" | "tsx" => {
  const pkg = program === "bartos" ? "server" : "agent"
  if (process.env.BARTO_FROM_SOURCE === "1") return "tsx"
  if (!readFileSync(binPath(program), "utf8").includes("launch")) return "tsx"
  const bundle = join(repoRoot, "packages", pkg, "dist", `${program}.mjs`)
  if (!existsSync(bundle)) return "tsx"
  let newest = 0
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (entry.name.endsWith(".ts") || entry.name === "package.json") {
        newest = Math.max(newest, statSync(path).mtimeMs)
      }
    }
  }
  for (const p of ["domain", "scheduler", "server", "agent", "cli"]) {
    const src = join(repoRoot, "packages", p, "src")
    if (existsSync(src)) walk(src)
    const manifest = join(repoRoot, "packages", p, "package.json")
    if (existsSync(manifest)) newest = Math.max(newest, statSync(manifest).mtimeMs)
  }
  return statSync(bundle).mtimeMs >= newest ? "bundle" : "tsx"
}

export interface ScheduleToml {
  readonly name: string
  readonly on_calendar: string
  readonly cmds: ReadonlyArray<string>
  readonly overlap?: "allow" | "forbid" | "queue"
  readonly timeout?: number
  readonly nice?: number
}

export interface Server {
  readonly proc: Proc
  /** What the bin shim ran: the bundle or the sources through tsx (decided at start). */
  readonly launch: "bundle" | "tsx"
  readonly port: number
  readonly url: string
  readonly logFile: string
}

export const NOFILE = 20_000

export const startServer = async (
  dir: string,
  db: Db,
  options: { readonly schedules?: Record<string, ReadonlyArray<ScheduleToml>>; readonly nofile?: number } = {}
): Promise<Server> => {
  const port = await freePort()
  const configFile = join(dir, "bartos.toml")
  const logFile = join(dir, "bartos.log")
  writeFileSync(
    configFile,
    stringify({
      ...db.toml,
      actix: { ip: "127.0.0.1", port },
      schedules: Object.fromEntries(
        Object.entries(options.schedules ?? {}).map(([agent, list]) => [agent, { schedules: list }])
      )
    })
  )
  const launch = launchMode("bartos")
  const proc = startNode(binPath("bartos"), ["-c", configFile, "-t", logFile], {
    name: "bartos",
    env: profileEnv(),
    ...(options.nofile !== undefined ? { nofile: options.nofile } : {})
  })
  await proc.waitForLine(/listening on ws:\/\/127\.0\.0\.1:\d+/, 90_000)
  return { proc, launch, port, url: `ws://127.0.0.1:${port}`, logFile }
}

export interface Agent {
  readonly proc: Proc
  readonly launch: "bundle" | "tsx"
  readonly logFile: string
}

/** `extra`: more top-level bartoc.toml tables (e.g. `{ runner: { shutdown: "terminate" } }`). */
export const startAgent = (dir: string, server: Server, name: string, extra: Record<string, unknown> = {}): Agent => {
  const configFile = join(dir, `bartoc-${name}.toml`)
  const logFile = join(dir, `bartoc-${name}.log`)
  writeFileSync(
    configFile,
    stringify({
      name,
      state_path: join(dir, `bartoc-${name}.db`),
      bartos: { prefix: "ws", host: "127.0.0.1", port: server.port },
      ...extra
    })
  )
  const launch = launchMode("bartoc")
  const proc = startNode(binPath("bartoc"), ["-c", configFile, "-t", logFile], {
    name: `bartoc:${name}`,
    env: profileEnv()
  })
  return { proc, launch, logFile }
}
