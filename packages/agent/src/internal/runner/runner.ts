import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { Outbox } from "../../Outbox.js"
import type { Options, Runner, RunnerShape } from "../../Runner.js"

// Interim: the implementation lands in the next commit; the interface is fixed so others can build.
export const layer = (tag: Context.Tag<Runner, RunnerShape>, _options: Options): Layer.Layer<Runner, never, Outbox> =>
  Layer.effect(tag, Effect.dieMessage("Runner: implementation pending"))
