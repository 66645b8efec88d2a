/**
 * Kept apart from cluster.ts: it imports vitest, and cluster.ts is also imported by the bench
 * (bench/lib/db.ts), where vitest refuses to load outside its runner.
 */
import { afterAll, beforeAll, beforeEach } from "vitest"
import type { Cluster } from "./cluster.js"
import { killAll } from "./procs.js"

/**
 * The cluster of a `describe`: made (by `make`) before its tests, its logs printed when a test
 * fails, stopped with every process after them. `get()` inside the tests.
 */
export const clusterPerDescribe = (make: () => Promise<Cluster>): { readonly get: () => Cluster } => {
  let cluster: Cluster | undefined
  beforeAll(async () => {
    cluster = await make()
  })
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => console.log(cluster?.diagnostics()))
  })
  afterAll(async () => {
    await cluster?.stop()
    await killAll()
  })
  return { get: () => cluster! }
}
