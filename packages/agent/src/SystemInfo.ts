/**
 * What bartoc tells bartos about its host (`AgentInfo`, reference §2.4 `BartocInfo`): OS name and
 * version from `/etc/os-release`, hostname, kernel release, agent version.
 */
import { ClientInfo } from "@barto/domain/Messages"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import pkg from "../package.json" with { type: "json" }

/** The agent's version, from its package.json (one place to bump; inlined by the bundler). */
export const AGENT_VERSION: string = pkg.version

/**
 * Parses the `KEY=value` lines of os-release(5): values may be double- or single-quoted with
 * backslash escapes; comments and blank lines are ignored.
 */
export const parseOsRelease = (text: string): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const raw of text.split("\n")) {
    const line = raw.trim()
    if (line === "" || line.startsWith("#")) continue
    const eq = line.indexOf("=")
    if (eq <= 0) continue
    const key = line.slice(0, eq)
    let value = line.slice(eq + 1)
    const quote = value[0]
    if ((quote === "\"" || quote === "'") && value.length >= 2 && value.endsWith(quote)) {
      value = value.slice(1, -1).replace(/\\(.)/g, "$1")
    }
    out[key] = value
  }
  return out
}

const readOsRelease = (): Record<string, string> => {
  // os-release(5): /etc/os-release first, /usr/lib/os-release as the fallback.
  for (const file of ["/etc/os-release", "/usr/lib/os-release"]) {
    try {
      return parseOsRelease(fs.readFileSync(file, "utf8"))
    } catch {
      // try the next one; a host without either still gets the generic values below
    }
  }
  return {}
}

/** Reads the host facts; never fails (unknown values fall back to what Node knows). */
export const read: Effect.Effect<ClientInfo> = Effect.sync(() => {
  const release = readOsRelease()
  return new ClientInfo({
    osName: release.NAME ?? os.type(),
    hostname: os.hostname(),
    osVersion: release.VERSION_ID ?? release.VERSION ?? "",
    kernel: os.release(),
    agentVersion: AGENT_VERSION
  })
})
