#!/usr/bin/env node
// Bundles each program (bartos, bartoc, barto-cli) into one ES module under packages/<pkg>/dist/
// with esbuild, and the web console (packages/console) into packages/console/dist/ (index.html and
// content-hashed assets/, which bartos serves as immutable; no CDN, so it works offline). Running from a bundle starts in ~0.4 s instead of ~2.5 s through tsx (which
// transpiles and loads hundreds of modules). Runs on `npm ci` (prepare) and before `npm test`.
// The bin shims fall back to the TypeScript sources when a bundle is missing or older than them.
import * as esbuild from "esbuild"
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { basename, dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const programs = [
  { pkg: "server", program: "bartos" },
  // bartoc without whitespace and in shorter syntax (names kept, so stack traces still name their
  // functions): V8 keeps the whole source of the module for lazy compilation, 0.73 MB instead of
  // 1.07 (issue 17, with internal/heapFlags.ts ~0.5 MiB less idle RSS).
  { pkg: "agent", program: "bartoc", minify: { minifyWhitespace: true, minifySyntax: true } },
  { pkg: "cli", program: "barto-cli" }
]

const started = Date.now()

const buildConsole = async () => {
  const pkg = join(root, "packages", "console")
  const out = join(pkg, "dist")
  rmSync(out, { recursive: true, force: true })
  mkdirSync(join(out, "assets"), { recursive: true })
  const result = await esbuild.build({
    entryPoints: [join(pkg, "src", "main.tsx")],
    outdir: join(out, "assets"),
    entryNames: "[name]-[hash]",
    bundle: true,
    format: "esm",
    target: ["chrome110", "firefox110", "safari16"],
    jsx: "automatic",
    jsxImportSource: "preact",
    minify: true,
    sourcemap: "linked",
    metafile: true,
    logLevel: "warning",
    legalComments: "none"
  })
  const outputs = Object.keys(result.metafile.outputs).map((f) => basename(f))
  const js = outputs.find((f) => f.endsWith(".js"))
  const css = outputs.find((f) => f.endsWith(".css"))
  const html = readFileSync(join(pkg, "src", "index.html"), "utf8").replace("__JS__", js).replace("__CSS__", css)
  writeFileSync(join(out, "index.html"), html)
}

await Promise.all([
  buildConsole(),
  ...programs.map(({ minify, pkg, program }) =>
    esbuild.build({
      entryPoints: [join(root, "packages", pkg, "src", "bin.ts")],
      outfile: join(root, "packages", pkg, "dist", `${program}.mjs`),
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      // the native SQLite driver stays a real package (its .node binary is loaded at run time)
      external: ["better-sqlite3"],
      // CommonJS dependencies bundled into an ES module still call require()
      banner: {
        js:
          "import { createRequire as __bartoCreateRequire } from 'node:module'; const require = __bartoCreateRequire(import.meta.url);"
      },
      sourcemap: "linked",
      charset: "ascii",
      logLevel: "warning",
      legalComments: "none",
      ...minify
    })
  )
])
// esbuild escapes every non-ASCII character in code (charset "ascii"), but keeps a few comments
// verbatim; one non-ASCII character there makes V8 hold the whole bundle as a two-byte string
// (bartoc: 2.8 MB of heap instead of 1.4). One ASCII character for one keeps the source map valid.
for (const { pkg, program } of programs) {
  const file = join(root, "packages", pkg, "dist", `${program}.mjs`)
  const text = readFileSync(file, "utf8")
  // eslint-disable-next-line no-control-regex -- the ASCII range, NUL included
  if (/[^\x00-\x7f]/.test(text)) writeFileSync(file, text.replace(/[^\x00-\x7f]/g, "?"))
}
// bartoc's memory addon (packages/agent/native/malloc_trim.cc, issue 17: ~12 MiB less idle RSS):
// one C++ file (v8.h; no C++ library, exceptions or RTTI) against Node's own headers
// (<prefix>/include/node, what node-gyp builds against too). Optional: without a C++ compiler or the
// headers bartoc runs as before, only larger.
const buildMallocTrim = () => {
  const source = join(root, "packages", "agent", "native", "malloc_trim.cc")
  const out = join(root, "packages", "agent", "dist", "malloc_trim.node")
  const include = join(dirname(dirname(process.execPath)), "include", "node")
  const why = !existsSync(join(include, "node_api.h"))
    ? `no Node headers in ${include}`
    : (() => {
      try {
        mkdirSync(dirname(out), { recursive: true })
        execFileSync(
          process.env.CXX || "c++",
          ["-O2", "-std=c++17", "-fno-exceptions", "-fno-rtti", "-shared", "-fPIC", `-I${include}`, source, "-o", out],
          { stdio: ["ignore", "ignore", "pipe"] }
        )
        return undefined
      } catch (e) {
        return String(e.stderr ?? e.message).trim()
      }
    })()
  if (why !== undefined) {
    rmSync(out, { force: true })
    console.warn(
      `build: warning: bartoc's memory addon not built (bartoc runs without it, ~12 MiB larger): ${why}`
    )
  }
}
buildMallocTrim()

if (!process.argv.includes("--quiet")) {
  console.log(
    `build: bundled ${programs.map((p) => p.program).join(", ")} and the web console in ${Date.now() - started} ms`
  )
}
