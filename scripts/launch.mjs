// Shared by the bin shims: run the bundled program (packages/<pkg>/dist/<program>.mjs, built by
// scripts/build.mjs) when it is at least as new as every TypeScript source it was built from;
// otherwise run the sources through tsx, so an edited checkout never runs stale code.
import { existsSync, readdirSync, statSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const sourcePackages = ["domain", "scheduler", "server", "agent", "cli"]

const newestSource = () => {
  let newest = 0
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (entry.name.endsWith(".ts") || entry.name === "package.json") {
        newest = Math.max(newest, statSync(path).mtimeMs)
      }
    }
  }
  for (const pkg of sourcePackages) {
    const src = join(root, "packages", pkg, "src")
    if (existsSync(src)) walk(src)
    const manifest = join(root, "packages", pkg, "package.json")
    if (existsSync(manifest)) newest = Math.max(newest, statSync(manifest).mtimeMs)
  }
  return newest
}

export const launch = async (pkg, program) => {
  const bundle = join(root, "packages", pkg, "dist", `${program}.mjs`)
  const fresh = process.env.BARTO_FROM_SOURCE !== "1" && existsSync(bundle) &&
    statSync(bundle).mtimeMs >= newestSource()
  if (fresh) {
    await import(pathToFileURL(bundle).href)
  } else {
    const { register } = await import("tsx/esm/api")
    register()
    await import(pathToFileURL(join(root, "packages", pkg, "src", "bin.ts")).href)
  }
}
