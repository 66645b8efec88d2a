import * as Z from "../packages/scheduler/src/internal/zone.js"
const zones = Intl.supportedValuesOf("timeZone")
let x = 12345, bad = 0, checks = 0
const rnd = () => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return x / 2 ** 32 }
const lo = Date.UTC(1900, 0, 1) / 1000, hi = Date.UTC(2200, 0, 1) / 1000
const t0 = Date.now()
for (const z of zones) {
  for (let i = 0; i < 60; i++) {
    const s = Math.floor(lo + rnd() * (hi - lo))
    for (const d of [0, -86400 * 40, 86400 * 40]) {
      const t = s + d
      checks++
      if (Z.offsetSeconds(z, t) !== Z.intlOffsetSeconds(z, t)) { bad++; console.log("MISMATCH", z, t) }
    }
  }
}
console.log("random", checks, "bad", bad, (Date.now() - t0) / 1000, "s", Z.cacheStats())
