/**
 * The worker session's inbox (order, backlog, the socket's flow control) and the sweep's
 * decision per session (hello deadline, liveness probe, liveness close), and the budget of
 * connection log lines, as pure pieces.
 */
import { assert, describe, it } from "@effect/vitest"
import { LineBudget } from "../src/internal/lineBudget.js"
import { HIGH_WATER, SocketInbox } from "../src/internal/sessionInbox.js"
import * as Sweep from "../src/internal/sessionSweep.js"

const fakeSocket = () => {
  const calls: Array<string> = []
  const ws = {
    isPaused: false,
    pause() {
      this.isPaused = true
      calls.push("pause")
    },
    resume() {
      this.isPaused = false
      calls.push("resume")
    }
  }
  return { ws, calls }
}

describe("SocketInbox", () => {
  it("hands items out in arrival order and is empty after the last", () => {
    const { ws } = fakeSocket()
    const inbox = new SocketInbox<number>(ws)
    for (let i = 0; i < 5; i++) inbox.push(i)
    assert.strictEqual(inbox.pending, 5)
    assert.strictEqual(inbox.peek(), 0)
    const out: Array<number> = []
    for (let item = inbox.shift(true); item !== undefined; item = inbox.shift(true)) out.push(item)
    assert.deepStrictEqual(out, [0, 1, 2, 3, 4])
    assert.strictEqual(inbox.pending, 0)
    assert.isUndefined(inbox.peek())
  })

  it("replaceNext swaps the next item in place (a frame decoded once)", () => {
    const { ws } = fakeSocket()
    const inbox = new SocketInbox<string>(ws)
    inbox.push("raw-1")
    inbox.push("raw-2")
    inbox.replaceNext("decoded-1")
    assert.strictEqual(inbox.shift(true), "decoded-1")
    assert.strictEqual(inbox.shift(true), "raw-2")
  })

  it("pauses the socket at HIGH_WATER and resumes it at half, unless closing", () => {
    const { calls, ws } = fakeSocket()
    const inbox = new SocketInbox<number>(ws)
    for (let i = 0; i < HIGH_WATER; i++) inbox.push(i)
    assert.deepStrictEqual(calls, ["pause"])
    for (let i = 0; i < HIGH_WATER / 2 - 1; i++) inbox.shift(true)
    assert.isTrue(ws.isPaused)
    inbox.shift(false)
    assert.isTrue(ws.isPaused, "a closing session never reads again")
    inbox.shift(true)
    assert.deepStrictEqual(calls, ["pause", "resume"])
  })

  it("clear drops what was not taken", () => {
    const { ws } = fakeSocket()
    const inbox = new SocketInbox<number>(ws)
    inbox.push(1)
    inbox.push(2)
    inbox.shift(true)
    inbox.clear()
    assert.strictEqual(inbox.pending, 0)
    assert.isUndefined(inbox.shift(true))
  })
})

describe("sessionSweep.decide", () => {
  const options = { livenessMs: 15_000, helloTimeoutMs: 10_000 }
  const base: Sweep.SweepState = {
    phase: Sweep.READY,
    closing: undefined,
    helloSeen: true,
    openedAt: 0,
    lastSeen: 100_000,
    probed: -1
  }

  it("no hello within the deadline closes with 1008; a hello in hand waits", () => {
    const hello: Sweep.SweepState = { ...base, phase: Sweep.HELLO, helloSeen: false, openedAt: 0 }
    assert.isUndefined(Sweep.decide(hello, 9_999, options))
    const action = Sweep.decide(hello, 10_000, options)
    assert.deepStrictEqual(action, { _tag: "Close", code: 1008, reason: "no AgentHello within 10 s" })
    assert.isUndefined(Sweep.decide({ ...hello, helloSeen: true }, 60_000, options))
  })

  it("half the liveness silent: one Ping per silence; all of it: close 4000 with a warning", () => {
    assert.isUndefined(Sweep.decide(base, 100_000 + 7_499, options))
    assert.deepStrictEqual(Sweep.decide(base, 100_000 + 7_500, options), { _tag: "Ping" })
    assert.isUndefined(Sweep.decide({ ...base, probed: base.lastSeen }, 100_000 + 8_000, options))
    const close = Sweep.decide({ ...base, probed: base.lastSeen }, 100_000 + 15_000, options)
    assert.strictEqual(close?._tag, "Close")
    if (close?._tag === "Close") {
      assert.strictEqual(close.code, 4000)
      assert.include(close.warning ?? "", "no frame for 15 s")
    }
  })

  it("a closing or ended session is left alone", () => {
    assert.isUndefined(Sweep.decide({ ...base, closing: {} }, 1e12, options))
    assert.isUndefined(Sweep.decide({ ...base, phase: Sweep.ENDED }, 1e12, options))
  })

  it("the sweep interval is bounded between 10 ms and 1 s", () => {
    assert.strictEqual(Sweep.interval(options), 1000)
    assert.strictEqual(Sweep.interval({ livenessMs: 600, helloTimeoutMs: 10_000 }), 100)
    assert.strictEqual(Sweep.interval({ livenessMs: 30, helloTimeoutMs: 20 }), 10)
  })
})

describe("LineBudget", () => {
  it("lets the first lines of a period through, folds the rest, and counts them once at the period's end", () => {
    const budget = new LineBudget(3, 1000)
    assert.deepStrictEqual(Array.from({ length: 5 }, () => budget.take()), [true, true, true, false, false])
    assert.deepStrictEqual(budget.flush(1800), { folded: 2, periodMs: 800 })
    // A new period: the budget is full again and nothing is left to summarise.
    assert.deepStrictEqual(budget.flush(2800), { folded: 0, periodMs: 1000 })
    assert.deepStrictEqual(Array.from({ length: 4 }, () => budget.take()), [true, true, true, false])
    assert.deepStrictEqual(budget.flush(3000), { folded: 1, periodMs: 200 })
  })

  it("a quiet period writes every line and no summary", () => {
    const budget = new LineBudget(20, 0)
    for (let i = 0; i < 20; i++) assert.isTrue(budget.take())
    assert.strictEqual(budget.flush(1000).folded, 0)
  })
})
