/**
 * The Store-client yardstick of the ingest suite (`lib/rawInsert.ts`) on both databases.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { databases } from "../../packages/server/test/utils/databases.js"
import { measureRawInsertRate } from "../lib/rawInsert.js"

for (const db of databases) {
  layer(db.layer(), { excludeTestServices: true, timeout: "60 seconds" })(
    `raw insert yardstick on ${db.name}`,
    (it) => {
      it.effect("measureRawInsertRate reports a positive rate", () =>
        Effect.gen(function*() {
          const rate = yield* measureRawInsertRate(2000)
          assert.isAbove(rate, 0)
          assert.isAbove(yield* measureRawInsertRate(1000, { rowsPerInsert: 500 }), 0)
          // The scratch table is gone afterwards.
          const sql = yield* SqlClient.SqlClient
          assert.isTrue(Either.isLeft(yield* Effect.either(sql.unsafe("SELECT 1 FROM barto_bench_raw"))))
        }))
    }
  )
}
