/**
 * The `updates` scrapers (reference §1.15): turn the output of an agent's successful commands into
 * a summary of pending package updates. Pure; the input is every output line of the agent whose
 * command exited 0, in time order (all history in the database, like the reference).
 *
 * Where we knowingly do better than the reference (same meaning, fewer silent losses):
 * - pacman/cachyos totals accept a sign and any pacman unit (B, KiB, MiB, GiB, TiB), converted to
 *   MiB; the reference's `\d+\.\d+ MiB` silently dropped a negative "Net Upgrade Size", which
 *   pacman prints whenever the upgrade shrinks the system.
 * - apt takes the line after the header and every following indented line: apt wraps a long
 *   package list over several lines indented by two spaces, and the reference kept only the first;
 *   it also reads `apt list --upgradable`.
 */
import type * as Messages from "@barto/domain/Messages"

export type UpdateKind = Messages.UpdateKind
export type UpdatesResult = Messages.UpdatesResult
export type GarudaUpdate = typeof Messages.GarudaUpdate.Type
export type PacmanSummary = typeof Messages.PacmanSummary.Type

/**
 * A pacman "VerbosePkgLists" row: `<repo>/<pkg> <old> <new> <size change> <download size>`; the two
 * sizes are whatever ends in ` MiB` (pacman forces MiB in that table; the change may be negative).
 */
const packageRow = (repos: string) =>
  new RegExp(`^\\s*(${repos})/(\\S+)\\s+(\\S+)\\s+(\\S+)\\s+(\\S+ MiB)\\s+(\\S+ MiB)\\s*$`)

const GARUDA_ROW = packageRow("chaotic-aur|core|extra|garuda|multilib")
const CACHYOS_ROW = packageRow("cachyos|cachyos-[^/\\s]+|core|extra|multilib")

const PACKAGES_LINE = /^\s*Packages \((\d+)\)\s*(.*)$/
const SIZE = "([-+]?\\d+(?:\\.\\d+)?)\\s*(B|KiB|MiB|GiB|TiB)\\b"
const DOWNLOAD_LINE = new RegExp(`^\\s*Total Download Size:\\s*${SIZE}`)
const INSTALLED_LINE = new RegExp(`^\\s*Total Installed Size:\\s*${SIZE}`)
const NET_LINE = new RegExp(`^\\s*Net Upgrade Size:\\s*${SIZE}`)

const APT_HEADER = "The following packages will be upgraded:"

const MIB_PER_UNIT: Record<string, number> = {
  B: 1 / (1024 * 1024),
  KiB: 1 / 1024,
  MiB: 1,
  GiB: 1024,
  TiB: 1024 * 1024
}

const toMiB = (m: RegExpExecArray): number => Number(m[1]) * (MIB_PER_UNIT[m[2]!] ?? 0)

const words = (s: string): Array<string> => s.split(/\s+/).filter((w) => w.length > 0)

/** garuda: every package row of the known repositories, sorted by (channel, package). */
export const garuda = (lines: Iterable<string>): Array<GarudaUpdate> => {
  const out: Array<GarudaUpdate> = []
  for (const line of lines) {
    const m = GARUDA_ROW.exec(line)
    if (m === null) continue
    out.push({
      channel: m[1]!,
      package: m[2]!,
      oldVersion: m[3]!,
      newVersion: m[4]!,
      sizeChange: m[5]!,
      downloadSize: m[6]!
    })
  }
  // Stable sort: equal (channel, package) keep time order, so the latest sighting is last.
  return out.sort((a, b) =>
    a.channel < b.channel ? -1 : a.channel > b.channel ? 1 : a.package < b.package ? -1 : a.package > b.package ? 1 : 0
  )
}

interface Totals {
  download: number
  installed: number
  net: number
}

/** Adds the three pacman size totals of `line` into `t`; true when the line was one of them. */
const addTotals = (t: Totals, line: string): boolean => {
  let m = DOWNLOAD_LINE.exec(line)
  if (m !== null) {
    t.download += toMiB(m)
    return true
  }
  m = INSTALLED_LINE.exec(line)
  if (m !== null) {
    t.installed += toMiB(m)
    return true
  }
  m = NET_LINE.exec(line)
  if (m !== null) {
    t.net += toMiB(m)
    return true
  }
  return false
}

/** pacman: `Packages (n) names…` lines (counts and names summed) and the size totals, summed. */
export const pacman = (lines: Iterable<string>): PacmanSummary => {
  let updateCount = 0
  const packages: Array<string> = []
  const t: Totals = { download: 0, installed: 0, net: 0 }
  for (const line of lines) {
    const m = PACKAGES_LINE.exec(line)
    if (m !== null) {
      updateCount += Number(m[1])
      packages.push(...words(m[2]!))
      continue
    }
    addTotals(t, line)
  }
  return { updateCount, packages, installSize: t.installed, netSize: t.net, downloadSize: t.download }
}

/** cachyos: package rows of the CachyOS repositories (names only; count = names), totals as pacman. */
export const cachyos = (lines: Iterable<string>): PacmanSummary => {
  const packages: Array<string> = []
  const t: Totals = { download: 0, installed: 0, net: 0 }
  for (const line of lines) {
    const m = CACHYOS_ROW.exec(line)
    if (m !== null) {
      packages.push(m[2]!)
      continue
    }
    addTotals(t, line)
  }
  return {
    updateCount: packages.length,
    packages,
    installSize: t.installed,
    netSize: t.net,
    downloadSize: t.download
  }
}

/**
 * A line of `apt list --upgradable`:
 * `bash/jammy-updates 5.1-6ubuntu1.1 amd64 [upgradable from: 5.1-6ubuntu1]` (the name before `/`).
 */
const APT_LIST_ROW = /^([a-z0-9][a-z0-9+.-]*)\/\S+\s+\S+\s+\S+\s+\[upgradable from: [^\]]+\]\s*$/

/**
 * apt: the package names of two outputs, in the order they were printed:
 * - `apt-get -s upgrade` / `apt upgrade` (and `-s dist-upgrade`): the names listed under every
 *   `The following packages will be upgraded:` header, wrapped over indented lines;
 * - `apt list --upgradable`: one `name/suite version arch [upgradable from: old]` line each.
 */
export const apt = (lines: Iterable<string>): Array<string> => {
  const out: Array<string> = []
  // "after" = we just saw the header (take the next line whatever it is);
  // "list" = we are in its indented continuation lines.
  let state: "idle" | "after" | "list" = "idle"
  for (const line of lines) {
    const listed = APT_LIST_ROW.exec(line)
    if (listed !== null && state !== "after") {
      out.push(listed[1]!)
      state = "idle"
      continue
    }
    if (line.trimEnd() === APT_HEADER) {
      state = "after"
      continue
    }
    if (state === "after" || (state === "list" && /^\s/.test(line) && line.trim().length > 0)) {
      out.push(...words(line))
      state = "list"
    } else {
      state = "idle"
    }
  }
  return out
}

/** Parses `lines` as the given kind. */
export const parse = (kind: UpdateKind, lines: Iterable<string>): UpdatesResult => {
  switch (kind) {
    case "garuda":
      return { _tag: "Garuda", updates: garuda(lines) }
    case "pacman":
      return { _tag: "Pacman", summary: pacman(lines) }
    case "cachyos":
      return { _tag: "Cachyos", summary: cachyos(lines) }
    case "apt":
      return { _tag: "Apt", packages: apt(lines) }
  }
}
