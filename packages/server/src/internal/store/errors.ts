/**
 * The store's errors, in their own module so the store internals can use them without importing
 * `Store.ts` (which imports the internals). `Store.ts` re-exports both.
 */
import * as Data from "effect/Data"

export class StoreError
  extends Data.TaggedError("StoreError")<{ readonly message: string; readonly cause?: unknown }>
{}

/** A `query` statement that was not run: not read-only (D7), rejected by the database, or too slow. */
export class QueryRefused extends Data.TaggedError("QueryRefused")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}
