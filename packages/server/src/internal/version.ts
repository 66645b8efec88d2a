import pkg from "../../package.json" with { type: "json" }

/** The package version (inlined by the bundler; read from package.json when run from sources). */
export const VERSION: string = pkg.version
