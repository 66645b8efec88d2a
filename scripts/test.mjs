#!/usr/bin/env node
// `npm test`: runs the whole vitest suite. The persistence tests run against both SQLite and a
// real MariaDB; this wrapper checks whether MariaDB answers first and says so LOUDLY when it
// does not (the MariaDB half is then skipped unless BARTO_REQUIRE_MARIADB=1, as in CI, where it
// is a failure).
import { spawn, spawnSync } from "node:child_process"
import net from "node:net"

const url = process.env.BARTO_TEST_MARIADB_URL
const target = url ? new URL(url) : new URL("mysql://root@127.0.0.1:3306")
const host = target.hostname
const port = Number(target.port || 3306)

const reachable = await new Promise((resolve) => {
  const socket = net.connect({ host, port })
  const done = (ok) => {
    socket.destroy()
    resolve(ok)
  }
  socket.setTimeout(2000, () => done(false))
  socket.once("connect", () => done(true))
  socket.once("error", () => done(false))
})

const env = { ...process.env }
if (reachable) {
  console.log(`test: MariaDB answers at ${host}:${port}: persistence tests run against MariaDB AND SQLite`)
  env.BARTO_MARIADB_AVAILABLE = "1"
} else {
  const line = "!".repeat(100)
  console.warn(`${line}\n!! MariaDB is NOT reachable at ${host}:${port}.`)
  if (process.env.BARTO_REQUIRE_MARIADB === "1") {
    console.warn(`!! BARTO_REQUIRE_MARIADB=1: failing.\n${line}`)
    process.exit(1)
  }
  console.warn(`!! The MariaDB half of the persistence tests will NOT run; only SQLite is tested.\n${line}`)
  env.BARTO_MARIADB_AVAILABLE = "0"
}

// The end-to-end tests start the real programs; bundle them first so each start costs ~0.4 s
// instead of ~2.5 s through tsx (the bin shims fall back to sources if a bundle is stale).
const build = spawnSync(process.execPath, ["scripts/build.mjs"], { stdio: "inherit" })
if (build.status !== 0) {
  console.error("test: building the program bundles failed")
  process.exit(1)
}

const child = spawn(process.execPath, ["node_modules/vitest/vitest.mjs", "run", ...process.argv.slice(2)], {
  stdio: "inherit",
  env
})
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
