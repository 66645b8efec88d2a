import { assert, describe, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import * as Calendar from "../src/Calendar.js"
import {
  cacheStats,
  intlOffsetSeconds,
  intlWallSeconds,
  MAX_SPANS,
  offsetSeconds,
  wallSeconds
} from "../src/internal/zone.js"
import * as Zone from "../src/Zone.js"

const sec = (iso: string): number => Date.parse(iso) / 1000

// Zones with DST of every shape and with historic changes of their standard offset: half-hour
// and 45-minute offsets and shifts, date-line jumps (Apia, Kiritimati, Fakaofo), abolished or
// restarted DST (Moscow, Sao Paulo, Tehran, Cairo), negative DST (Dublin), Ramadan breaks
// (Casablanca, Gaza), a two-hour DST (Troll), Pyongyang's and Caracas' half-hour moves.
const ZONES = [
  "Europe/Berlin",
  "America/New_York",
  "Australia/Lord_Howe",
  "Pacific/Apia",
  "Asia/Kolkata",
  "America/St_Johns",
  "Europe/Moscow",
  "Asia/Pyongyang",
  "America/Caracas",
  "Africa/Casablanca",
  "Asia/Gaza",
  "Antarctica/Troll",
  "Europe/Dublin",
  "Pacific/Kiritimati",
  "Pacific/Chatham",
  "Australia/Eucla",
  "Asia/Kathmandu",
  "America/Sao_Paulo",
  "Asia/Tehran",
  "Africa/Cairo",
  "Pacific/Norfolk",
  "America/Santiago",
  "Pacific/Fakaofo",
  "Asia/Dhaka",
  "Europe/Volgograd",
  "America/Nuuk",
  "Asia/Tokyo",
  "UTC"
]

/** Offset changes as the tz database records them: [zone, first UTC second of the new offset, offset before, after]. */
const TRANSITIONS: ReadonlyArray<readonly [string, string, number, number]> = [
  ["Europe/Berlin", "2026-03-29T01:00:00Z", 3600, 7200],
  ["Europe/Berlin", "2026-10-25T01:00:00Z", 7200, 3600],
  ["America/New_York", "2026-03-08T07:00:00Z", -18000, -14400],
  ["America/New_York", "2026-11-01T06:00:00Z", -14400, -18000],
  ["Australia/Lord_Howe", "2026-04-04T15:00:00Z", 39600, 37800],
  ["Australia/Lord_Howe", "2026-10-03T15:30:00Z", 37800, 39600],
  ["Pacific/Apia", "2011-12-30T10:00:00Z", -36000, 50400],
  ["Pacific/Kiritimati", "1994-12-31T10:00:00Z", -36000, 50400],
  ["Pacific/Fakaofo", "2011-12-30T11:00:00Z", -39600, 46800],
  ["Asia/Pyongyang", "2015-08-14T15:00:00Z", 32400, 30600],
  ["Asia/Pyongyang", "2018-05-04T15:00:00Z", 30600, 32400],
  ["America/Caracas", "2007-12-09T07:00:00Z", -14400, -16200],
  ["America/Caracas", "2016-05-01T07:00:00Z", -16200, -14400],
  ["Europe/Moscow", "2011-03-26T23:00:00Z", 10800, 14400],
  ["Europe/Moscow", "2014-10-25T22:00:00Z", 14400, 10800],
  ["Antarctica/Troll", "2026-03-29T01:00:00Z", 0, 7200],
  ["Pacific/Chatham", "2026-09-26T14:00:00Z", 45900, 49500]
]

const agreeWithIntl = (zone: string, s: number): void => {
  assert.strictEqual(
    offsetSeconds(zone, s),
    intlOffsetSeconds(zone, s),
    `${zone} offset at ${new Date(s * 1000).toISOString()}`
  )
  assert.strictEqual(
    wallSeconds(zone, s),
    intlWallSeconds(zone, s),
    `${zone} wall at ${new Date(s * 1000).toISOString()}`
  )
}

describe("zone offsets: the transition cache says what Intl says", () => {
  it("known transitions, to the second, in the cache and in Intl", () => {
    for (const [zone, at, before, after] of TRANSITIONS) {
      const t = sec(at)
      assert.strictEqual(intlOffsetSeconds(zone, t - 1), before, `Intl ${zone} before ${at}`)
      assert.strictEqual(intlOffsetSeconds(zone, t), after, `Intl ${zone} at ${at}`)
      assert.strictEqual(offsetSeconds(zone, t - 1), before, `${zone} before ${at}`)
      assert.strictEqual(offsetSeconds(zone, t), after, `${zone} at ${at}`)
    }
  })

  it.prop(
    "random instants 1970–2100, many zones",
    [
      fc.constantFrom(...ZONES),
      fc.integer({ min: sec("1970-01-01T00:00:00Z"), max: sec("2100-12-31T23:59:59Z") })
    ],
    ([zone, s]) => agreeWithIntl(zone, s),
    { fastCheck: { numRuns: 3000 } }
  )

  it.prop(
    "around known transitions: seconds and days either side",
    [
      fc.constantFrom(...TRANSITIONS),
      fc.oneof(fc.integer({ min: -3, max: 3 }), fc.integer({ min: -2 * 86_400, max: 2 * 86_400 }))
    ],
    ([[zone, at], d]) => agreeWithIntl(zone, sec(at) + d),
    { fastCheck: { numRuns: 1000 } }
  )

  it.prop(
    "before 1970 and far-future years (rules extrapolated by ICU)",
    [
      fc.constantFrom(...ZONES),
      fc.oneof(
        fc.integer({ min: sec("1850-01-01T00:00:00Z"), max: sec("1970-01-01T00:00:00Z") }),
        fc.integer({ min: sec("2100-01-01T00:00:00Z"), max: sec("3000-01-01T00:00:00Z") }),
        fc.integer({ min: sec("9000-01-01T00:00:00Z"), max: 8_639_999_999_999 })
      )
    ],
    ([zone, s]) => agreeWithIntl(zone, s),
    { fastCheck: { numRuns: 500 } }
  )

  it("fractions of a second are dropped, as the wall clock shows them", () => {
    const t = sec("2026-10-25T00:59:59Z")
    assert.strictEqual(wallSeconds("Europe/Berlin", t + 0.75), intlWallSeconds("Europe/Berlin", t))
    assert.strictEqual(offsetSeconds("Europe/Berlin", t + 0.999), 7200)
    assert.strictEqual(offsetSeconds("Europe/Berlin", t + 1), 3600)
  })

  it("unknown zones and impossible instants still fail as Intl fails, and are not cached", () => {
    const before = cacheStats().zones
    assert.throws(() => offsetSeconds("Mars/Olympus", 0), RangeError)
    assert.throws(() => offsetSeconds("Europe/Berlin", NaN), RangeError)
    assert.throws(() => wallSeconds("Europe/Berlin", 8_640_000_000_001), RangeError)
    assert.strictEqual(cacheStats().zones, before)
  })

  it("the public Zone module answers from the same cache (barto-cli renders through it)", () => {
    const t = sec("2026-03-29T01:00:00Z")
    assert.strictEqual(Zone.offsetSeconds("Europe/Berlin", t), 7200)
    assert.strictEqual(Zone.wallSeconds("Europe/Berlin", t - 1), t - 1 + 3600)
    assert.strictEqual(Zone.formatRfc3339(t, "Europe/Berlin"), "2026-03-29T03:00:00+02:00")
    assert.strictEqual(
      Zone.formatRfc3339(sec("2026-04-04T15:00:00Z"), "Australia/Lord_Howe"),
      "2026-04-05T01:30:00+10:30"
    )
  })
})

describe("zone cache memory is bounded", () => {
  it(`holds at most ${MAX_SPANS} spans of a zone and still answers evicted ones right`, () => {
    const zone = "America/Santiago"
    const from = sec("1900-01-01T00:00:00Z")
    // ~160 years of ~97-day spans: more than the cache keeps for one zone.
    const probes = Array.from({ length: MAX_SPANS + 100 }, (_, i) => from + i * 2 ** 23 + 4321)
    for (const s of probes) offsetSeconds(zone, s)
    assert.isAtMost(cacheStats().maxSpansPerZone, MAX_SPANS)
    for (const s of probes.slice(0, 50)) agreeWithIntl(zone, s)
    assert.isAtMost(cacheStats().maxSpansPerZone, MAX_SPANS)
  })

  it("10,000 schedules in four zones share a few spans per zone, however often they are evaluated", () => {
    const zones = ["Europe/Paris", "America/Chicago", "Asia/Shanghai", "Australia/Sydney"]
    const cals = Array.from(
      { length: 10_000 },
      (_, i) =>
        Either.getOrThrow(Calendar.parse(`*-*-* ${i % 24}:${i % 60}:${(i * 7) % 60} ${zones[i % zones.length]}`))
    )
    const start = Date.parse("2026-01-01T00:00:00Z")
    const evaluate = () => {
      for (let i = 0; i < cals.length; i++) {
        // Each schedule asks from its own instant in 2026, as a server does at different times.
        const at = start + ((i * 2_654_435_761) % 365) * 86_400_000 + i * 1000
        const n = Calendar.next(cals[i]!, at)
        assert.isDefined(n)
        assert.isTrue(Calendar.matches(cals[i]!, n!))
      }
    }
    const spansOf = () => cacheStats().spans
    const before = spansOf()
    evaluate()
    const after = spansOf()
    evaluate()
    assert.strictEqual(spansOf(), after, "a second round fills nothing new")
    // 2026 (and the days either side) is five ~97-day spans per zone, whatever the schedule count.
    assert.isAtMost(after - before, zones.length * 6)
  })
})
