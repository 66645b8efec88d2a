#!/usr/bin/env node
// `npm start`: the quick start. Runs bartos on the embedded SQLite default plus one local bartoc
// with a demo schedule that fires every 5 seconds, and prints the barto-cli commands that show
// the results. All state lives in ./.barto/ (delete it to start over). Ctrl-C stops both.
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const dir = join(root, ".barto")
const port = Number(process.env.BARTO_QUICKSTART_PORT ?? 20000)
mkdirSync(dir, { recursive: true })

const write = (name, text) => {
  const path = join(dir, name)
  if (!existsSync(path)) writeFileSync(path, text)
  return path
}

const bartosToml = write(
  "bartos.toml",
  `# Quick-start server: embedded SQLite, loopback only.
[actix]
ip = "127.0.0.1"
port = ${port}

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
port = ${port}
`
)
const cliToml = write(
  "barto-cli.toml",
  `name = "barto-cli"

[bartos]
prefix = "ws"
host = "127.0.0.1"
port = ${port}
`
)

const bin = (pkg, prog) => join(root, "packages", pkg, "bin", `${prog}.mjs`)
const children = []
const start = (name, args) => {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env: process.env })
  children.push(child)
  const prefix = (line) => `[${name}] ${line}`
  const onData = (stream) => {
    let rest = ""
    return (chunk) => {
      const lines = (rest + chunk.toString()).split("\n")
      rest = lines.pop()
      for (const line of lines) stream.write(prefix(line) + "\n")
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

let stopping = false
const stop = (code = 0) => {
  stopping = true
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM")
  setTimeout(() => process.exit(code), 3000).unref()
  Promise.all(children.map((c) => (c.exitCode !== null ? null : new Promise((r) => c.once("exit", r))))).then(() =>
    process.exit(code)
  )
}
process.on("SIGINT", () => stop(0))
process.on("SIGTERM", () => stop(0))

const server = start("bartos", [bin("server", "bartos"), "-c", bartosToml, "-t", join(dir, "bartos.log")])
await new Promise((resolveListening) => {
  server.stdout.on("data", (chunk) => {
    if (chunk.toString().includes("listening on")) resolveListening()
  })
})
start("bartoc", [bin("agent", "bartoc"), "-c", bartocToml, "-t", join(dir, "bartoc.log")])

const cli = `npx barto-cli -c ${cliToml}`
console.log(`
barto is running: bartos on ws://127.0.0.1:${port} (SQLite ${join(dir, "bartos.db")}),
one agent "demo" running schedule "hello" every 5 s and "disk" every minute.
Config and state: ${dir}   (Ctrl-C stops both)

Web console: http://127.0.0.1:${port}/   (HTTP API: http://127.0.0.1:${port}/v1/api/openapi.json)

In another terminal, look at the results:
  ${cli} clients
  ${cli} schedules
  ${cli} runs --limit 5
  ${cli} list -n demo -c hello
  ${cli} tail -f --agent demo --schedule hello
  ${cli} run demo hello --wait
  ${cli} query -q "SELECT state, COUNT(*) AS n FROM runs GROUP BY state"
`)
