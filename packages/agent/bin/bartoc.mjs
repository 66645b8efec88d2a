#!/usr/bin/env node
// Runs the bundle when it is up to date, else the TypeScript sources through tsx (scripts/launch.mjs).
import { launch } from "../../../scripts/launch.mjs"
await launch("agent", "bartoc")
