#!/usr/bin/env node
// Runs the bundle when it is up to date, else the TypeScript sources through tsx (scripts/launch.mjs).
// Startup's compiler tiers are off before the launcher's walk over the sources (a hot loop that
// otherwise pulls TurboFan's pages of the node binary in: +3.5 MiB idle RSS, issue 17); the
// program's src/internal/heapFlags.ts sets the same flags and turns both tiers back on after startup.
import { setFlagsFromString } from "node:v8"
import { launch } from "../../../scripts/launch.mjs"
setFlagsFromString("--no-opt")
setFlagsFromString("--no-sparkplug")
await launch("agent", "bartoc")
