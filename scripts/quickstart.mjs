#!/usr/bin/env node
// `npm start`: the quick start. Runs bartos on the embedded SQLite default plus one local bartoc
// with a demo schedule that fires every 5 seconds, and prints the barto-cli commands that show
// the results. All state lives in ./.barto/ (BARTO_QUICKSTART_DIR; delete it to start over). The
// port is BARTO_QUICKSTART_PORT (default 20000).
//
// Ctrl-C (SIGINT), SIGTERM and closing the terminal (SIGHUP) stop both children and wait for them:
// bartos and bartoc both survive a SIGHUP of their own (a reload), so this script must not die of
// one and leave them behind holding the port.
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const dir = resolve(process.env.BARTO_QUICKSTART_DIR ?? join(root, ".barto"))
const port = Number(process.env.BARTO_QUICKSTART_PORT ?? 20000)
mkdirSync(dir, { recursive: true })

const write = (name, text, { always = false } = {}) => {
  const path = join(dir, name)
  if (always || !existsSync(path)) writeFileSync(path, text)
  return path
}

// The port is not in the server and agent files (they are written once and may be edited): it
// reaches them as BARTOS_ACTIX__PORT / BARTOC_BARTOS__PORT, which override the files.
const bartosToml = write(
  "bartos.toml",
  `# Quick-start server: embedded SQLite, loopback only. The port comes from npm start
# (BARTO_QUICKSTART_PORT, default 20000).
[actix]
ip = "127.0.0.1"

[sqlite]
path = "${join(dir, "bartos.db")}"

[[schedules.demo.schedules]]
name = "hello"
on_calendar = "*-*-* *:*:0/5"
cmds = ["echo hello from barto at $(date -u +%H:%M:%S)", "uname -sr"]

[[schedules.demo.schedules]]
name = "disk"
on_calendar = "*-*-* *:*:00"
cmds = ["df -h / | tail -n 1"]
`
)
const bartocToml = write(
  "bartoc.toml",
  `name = "demo"
state_path = "${join(dir, "bartoc.db")}"

[bartos]
prefix = "ws"
host = "127.0.0.1"
`
)
// Rewritten on every start: it is what the printed commands use, so it follows the port.
const cliToml = write(
  "barto-cli.toml",
  `# Written by npm start for the port it used.
name = "barto-cli"

[bartos]
prefix = "ws"
host = "127.0.0.1"
port = ${port}
`,
  { always: true }
)

const bin = (pkg, prog) => join(root, "packages", pkg, "bin", `${prog}.mjs`)
const children = []
const start = (name, args, onLine = () => {}) => {
  const child = spawn(process.execPath, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, BARTOS_ACTIX__PORT: String(port), BARTOC_BARTOS__PORT: String(port) }
  })
  children.push(child)
  const prefix = (line) => `[${name}] ${line}`
  const onData = (stream) => {
    let rest = ""
    return (chunk) => {
      const lines = (rest + chunk.toString()).split("\n")
      rest = lines.pop()
      for (const line of lines) {
        stream.write(prefix(line) + "\n")
        onLine(line)
      }
    }
  }
  child.stdout.on("data", onData(process.stdout))
  child.stderr.on("data", onData(process.stderr))
  child.on("exit", (code, signal) => {
    console.log(prefix(`exited (${signal ?? code})`))
    if (!stopping) stop(code ?? 1)
  })
  return child
}

/** How long the children get to stop (bartoc lets a running demo job finish) before SIGKILL. */
const STOP_GRACE_MS = 15_000

let stopping = false
const alive = (c) => c.exitCode === null && c.signalCode === null
const stop = (code = 0) => {
  if (stopping) return
  stopping = true
  for (const c of children) if (alive(c)) c.kill("SIGTERM")
  // Never leave a child behind: past the grace, SIGKILL; exit once every child is gone.
  setTimeout(() => {
    for (const c of children) if (alive(c)) c.kill("SIGKILL")
  }, STOP_GRACE_MS).unref()
  Promise.all(children.map((c) => (alive(c) ? new Promise((r) => c.once("exit", r)) : null))).then(() =>
    process.exit(code)
  )
}
process.on("SIGINT", () => stop(0))
process.on("SIGTERM", () => stop(0))
process.on("SIGHUP", () => stop(0))

let portTaken = false
const server = start("bartos", [bin("server", "bartos"), "-c", bartosToml, "-t", join(dir, "bartos.log")], (line) => {
  if (/EADDRINUSE/.test(line)) portTaken = true
})
server.on("exit", () => {
  if (portTaken) {
    console.error(
      `\nport ${port} is already in use (another bartos, or an earlier npm start still running?).\n` +
        `Stop it, or pick another port: BARTO_QUICKSTART_PORT=${port + 1} npm start`
    )
  }
})
const listening = await new Promise((resolveListening) => {
  server.stdout.on("data", (chunk) => {
    if (chunk.toString().includes("listening on")) resolveListening(true)
  })
  server.once("exit", () => resolveListening(false))
})
// Not listening: bartos exited, and stop() ends this script once it is gone.
if (listening) {
  start("bartoc", [bin("agent", "bartoc"), "-c", bartocToml, "-t", join(dir, "bartoc.log")])
  const cli = `npx barto-cli -c ${cliToml}`
  console.log(`
barto is running: bartos on ws://127.0.0.1:${port} (SQLite ${join(dir, "bartos.db")}),
one agent "demo" running schedule "hello" every 5 s and "disk" every minute.
Config and state: ${dir}   (Ctrl-C, or closing this terminal, stops both)

Web console: http://127.0.0.1:${port}/   (HTTP API: http://127.0.0.1:${port}/v1/api/openapi.json)

In another terminal, look at the results:
  ${cli} clients
  ${cli} schedules
  ${cli} runs --limit 5
  ${cli} list -n demo -c hello
  ${cli} tail -f --agent demo --schedule hello
  ${cli} run demo hello --wait
  ${cli} query -q "SELECT state, COUNT(*) AS n, SUM(occurrences) AS occurrences FROM runs GROUP BY state"
`)
}
