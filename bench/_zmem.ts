import * as Z from "../packages/scheduler/src/internal/zone.js"
const gc = (globalThis as any).gc
const fill = (zones: Array<string>) => { for (const z of zones) for (let y = 1900; y < 2100; y += 0.25) Z.offsetSeconds(z, (y - 1970) * 365.25 * 86400) }
fill(["Europe/Paris"])
gc(); const s0 = Z.cacheStats(); const h0 = process.memoryUsage().heapUsed
fill(["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Lord_Howe", "Pacific/Apia", "Asia/Kolkata", "America/Sao_Paulo", "Africa/Casablanca"])
gc(); const h1 = process.memoryUsage().heapUsed
const st = Z.cacheStats()
console.log(st, "bytes/span", (h1 - h0) / (st.spans - s0.spans))
