/**
 * The workspace's package manifests say what the code does: every package declares what it
 * imports (workspace packages included), the root declares only tooling, and every `exports`
 * entry, and every `@barto/<pkg>/<Module>` specifier written anywhere, resolves to a file that
 * exists (and never into `internal/`).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { builtinModules } from "node:module"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..")

interface Manifest {
  readonly name?: string
  readonly dependencies?: Record<string, string>
  readonly devDependencies?: Record<string, string>
  readonly peerDependencies?: Record<string, string>
  readonly exports?: Record<string, string | null>
  readonly workspaces?: ReadonlyArray<string>
}

const manifest = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, "package.json"), "utf8"))
const rootManifest = manifest(root)
const workspaces = (rootManifest.workspaces ?? []).map((w) => join(root, w))

const SOURCE = /\.(ts|tsx|mjs|js)$/
const files = (dir: string): Array<string> => {
  if (!existsSync(dir)) return []
  const out: Array<string> = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "node_modules" || entry.name === "dist" || entry.name === "results") continue
    const path = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...files(path))
    else if (SOURCE.test(entry.name)) out.push(path)
  }
  return out
}

// Import and export specifiers (static, dynamic, side-effect, `export … from`), not strings in general.
const SPECIFIER =
  /(?:^|[\s;])(?:import|export)\s[^"'`;]*?from\s*["']([^"']+)["']|(?:^|[\s;])import\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/gm
const specifiers = (file: string): Array<string> => {
  // Comments may quote imports ("import … from" in a doc comment) without making them real.
  const text = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "")
  return Array.from(text.matchAll(SPECIFIER), (m) => m[1] ?? m[2] ?? m[3]!)
}
const packageOf = (specifier: string) =>
  specifier.startsWith("@") ? specifier.split("/").slice(0, 2).join("/") : specifier.split("/")[0]!
const isBare = (specifier: string) => !specifier.startsWith(".") && !specifier.startsWith("/")
const isBuiltin = (name: string) => name.startsWith("node:") || builtinModules.includes(name)

const declared = (m: Manifest) =>
  new Set([
    ...Object.keys(m.dependencies ?? {}),
    ...Object.keys(m.devDependencies ?? {}),
    ...Object.keys(m.peerDependencies ?? {})
  ])

describe("package manifests", () => {
  it("the workspaces are the packages, the e2e tests and the benchmarks", () => {
    for (const dir of workspaces) expect(existsSync(join(dir, "package.json")), relative(root, dir)).toBe(true)
    expect(workspaces.map((w) => relative(root, w))).toEqual(expect.arrayContaining(["packages/e2e", "bench"]))
  })

  it("every package declares what it imports", () => {
    const missing: Array<string> = []
    for (const dir of workspaces) {
      const m = manifest(dir)
      const known = declared(m)
      for (const file of files(dir)) {
        for (const specifier of specifiers(file)) {
          if (!isBare(specifier)) continue
          const name = packageOf(specifier)
          if (isBuiltin(name) || name === m.name || known.has(name)) continue
          missing.push(`${relative(root, file)}: ${name} is not declared in ${relative(root, dir)}/package.json`)
        }
      }
    }
    expect(missing).toEqual([])
  })

  it("the root declares only tooling, and the imports of its own scripts", () => {
    expect(rootManifest.dependencies).toBeUndefined()
    const known = declared(rootManifest)
    const missing: Array<string> = []
    const rootFiles = [...files(join(root, "scripts")), join(root, "vitest.config.ts"), join(root, "eslint.config.mjs")]
    for (const file of rootFiles) {
      for (const specifier of specifiers(file)) {
        if (!isBare(specifier)) continue
        const name = packageOf(specifier)
        if (!isBuiltin(name) && !known.has(name)) missing.push(`${relative(root, file)}: ${name}`)
      }
    }
    expect(missing).toEqual([])
  })

  it("every export resolves to files that exist; internal/ is closed", () => {
    for (const dir of workspaces) {
      const { exports } = manifest(dir)
      if (exports === undefined) continue
      for (const [key, target] of Object.entries(exports)) {
        if (target === null) {
          expect(key, `${relative(root, dir)}: only internal/ is closed`).toBe("./internal/*")
          continue
        }
        if (!target.includes("*")) {
          expect(existsSync(join(dir, target)), `${relative(root, dir)} exports ${key} -> ${target}`).toBe(true)
          continue
        }
        // A pattern: its folder has files of its kind.
        const [before, after] = target.split("*") as [string, string]
        const folder = join(dir, dirname(before + "x"))
        expect(existsSync(folder), `${relative(root, dir)} exports ${key} -> ${target}`).toBe(true)
        expect(readdirSync(folder).some((f) => f.endsWith(after)), `${relative(root, dir)}: no ${target}`).toBe(true)
      }
    }
  })

  it("every @barto/<pkg>/<Module> written in the repo resolves through its package's exports", () => {
    const byName = new Map(workspaces.map((dir) => [manifest(dir).name, dir]))
    const unresolved: Array<string> = []
    const everywhere = [...workspaces.flatMap(files), ...files(join(root, "scripts"))]
    for (const file of new Set(everywhere)) {
      for (const specifier of specifiers(file)) {
        if (!specifier.startsWith("@barto/")) continue
        const name = packageOf(specifier)
        const dir = byName.get(name)
        const sub = specifier.slice(name.length + 1)
        const exports = dir === undefined ? undefined : manifest(dir).exports
        if (dir === undefined || exports === undefined || sub === "" || sub.startsWith("internal/")) {
          unresolved.push(`${relative(root, file)}: ${specifier}`)
          continue
        }
        // An exact entry (`./certs`) first, else the package's `./*` pattern.
        const exact = exports[`./${sub}`]
        const target = typeof exact === "string" ? exact : exports["./*"]
        if (typeof target !== "string" || !existsSync(join(dir, target.replace("*", sub)))) {
          unresolved.push(`${relative(root, file)}: ${specifier}`)
        }
      }
    }
    expect(unresolved).toEqual([])
  })
})
