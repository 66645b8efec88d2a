import { assert, describe, it } from "@effect/vitest"
import { FastCheck } from "effect"
import * as Updates from "../src/Updates.js"

const pkgName = FastCheck.stringMatching(/^[a-z0-9][a-z0-9+._-]{0,20}$/)

describe("Updates.garuda (reference §1.15)", () => {
  it("parses the reference example", () => {
    const r = Updates.parse("garuda", ["extra/kio    6.19.0-1     6.19.0-2       0.00 MiB       3.59 MiB"])
    assert.deepStrictEqual(r, {
      _tag: "Garuda",
      updates: [{
        channel: "extra",
        package: "kio",
        oldVersion: "6.19.0-1",
        newVersion: "6.19.0-2",
        sizeChange: "0.00 MiB",
        downloadSize: "3.59 MiB"
      }]
    })
  })

  it("keeps every known repository, sorts by (channel, package), ignores everything else", () => {
    const lines = [
      ":: Synchronizing package databases...",
      "Package (3)            Old Version  New Version  Net Change  Download Size",
      "multilib/lib32-glibc   2.40-1       2.40-2        -0.05 MiB       2.10 MiB",
      "extra/zstd             1.5.6-1      1.5.7-1        0.01 MiB       0.50 MiB",
      "chaotic-aur/yay-bin    12.4-1       12.5-1         0.20 MiB       3.00 MiB",
      "extra/curl             8.10-1       8.11-1         0.02 MiB       1.20 MiB",
      "community/old          1-1          1-2            0.00 MiB       0.10 MiB",
      "extra/nosize           1-1          1-2",
      "Total Download Size:   6.80 MiB"
    ]
    const r = Updates.garuda(lines)
    assert.deepStrictEqual(r.map((u) => `${u.channel}/${u.package}`), [
      "chaotic-aur/yay-bin",
      "extra/curl",
      "extra/zstd",
      "multilib/lib32-glibc"
    ])
    assert.strictEqual(r[3]!.sizeChange, "-0.05 MiB")
  })

  it.prop("finds exactly the package rows among arbitrary noise", [
    FastCheck.array(FastCheck.tuple(FastCheck.constantFrom("core", "extra", "garuda"), pkgName)),
    FastCheck.array(FastCheck.string())
  ], ([rows, noise]) => {
    const lines = [
      ...noise.filter((l) => !/MiB/.test(l)),
      ...rows.map(([repo, pkg]) => `${repo}/${pkg} 1.0-1 1.1-1 0.10 MiB 2.00 MiB`)
    ]
    const r = Updates.garuda(lines)
    assert.strictEqual(r.length, rows.length)
    const sorted = [...rows].sort(([a1, a2], [b1, b2]) => a1 < b1 ? -1 : a1 > b1 ? 1 : a2 < b2 ? -1 : a2 > b2 ? 1 : 0)
    assert.deepStrictEqual(r.map((u) => [u.channel, u.package]), sorted)
  })
})

describe("Updates.pacman (reference §1.15)", () => {
  it("parses the reference example", () => {
    const r = Updates.parse("pacman", [
      "Packages (2) foo bar",
      "",
      "Total Download Size:   1.50 MiB",
      "Total Installed Size:  2.00 MiB",
      "Net Upgrade Size:   0.50 MiB"
    ])
    assert.deepStrictEqual(r, {
      _tag: "Pacman",
      summary: { updateCount: 2, packages: ["foo", "bar"], downloadSize: 1.5, installSize: 2.0, netSize: 0.5 }
    })
  })

  it("sums counts, names and sizes over every run in the history", () => {
    const r = Updates.pacman([
      "Packages (2) foo-1.0-1  bar-2.0-1",
      "Total Download Size:   1.50 MiB",
      "Total Installed Size:  2.00 MiB",
      "Net Upgrade Size:      0.50 MiB",
      ":: Proceed with installation? [Y/n]",
      "Packages (1) baz-3.1-1",
      "Total Download Size:   0.25 MiB",
      "Total Installed Size:  1.00 MiB",
      "Net Upgrade Size:      0.25 MiB"
    ])
    assert.deepStrictEqual(r, {
      updateCount: 3,
      packages: ["foo-1.0-1", "bar-2.0-1", "baz-3.1-1"],
      downloadSize: 1.75,
      installSize: 3,
      netSize: 0.75
    })
  })

  it("counts a shrinking upgrade and other units (the reference dropped them)", () => {
    const r = Updates.pacman([
      "Packages (1) foo",
      "Total Download Size:   512.00 KiB",
      "Total Installed Size:  1.00 GiB",
      "Net Upgrade Size:     -0.50 MiB"
    ])
    assert.deepStrictEqual(r, {
      updateCount: 1,
      packages: ["foo"],
      downloadSize: 0.5,
      installSize: 1024,
      netSize: -0.5
    })
  })

  it("is empty for no matching output", () => {
    assert.deepStrictEqual(Updates.pacman(["there is nothing to do", " there is nothing to do"]), {
      updateCount: 0,
      packages: [],
      downloadSize: 0,
      installSize: 0,
      netSize: 0
    })
  })

  it.prop(
    "sums arbitrary package lines",
    [FastCheck.array(FastCheck.array(pkgName, { minLength: 1, maxLength: 5 }))],
    ([
      groups
    ]) => {
      const r = Updates.pacman(groups.map((g) => `Packages (${g.length}) ${g.join("  ")}`))
      assert.strictEqual(r.updateCount, groups.reduce((n, g) => n + g.length, 0))
      assert.deepStrictEqual(r.packages, groups.flat())
    }
  )
})

describe("Updates.cachyos (reference §1.15)", () => {
  it("keeps package names of the CachyOS repositories, counts names, sums sizes as pacman", () => {
    const r = Updates.parse("cachyos", [
      "Package (4)                     Old Version  New Version  Net Change  Download Size",
      "cachyos-v3/linux-cachyos        6.17.1-1     6.17.2-1       0.30 MiB     140.00 MiB",
      "cachyos/cachyos-settings        1:1.2-1      1:1.3-1        0.00 MiB       0.02 MiB",
      "core/glibc                      2.42-1       2.42-2        -0.01 MiB      10.00 MiB",
      "extra/kio                       6.19.0-1     6.19.0-2       0.00 MiB       3.59 MiB",
      "chaotic-aur/yay-bin             12.4-1       12.5-1         0.20 MiB       3.00 MiB",
      "Total Download Size:   153.61 MiB",
      "Total Installed Size:  600.00 MiB",
      "Net Upgrade Size:        0.29 MiB"
    ])
    assert.deepStrictEqual(r, {
      _tag: "Cachyos",
      summary: {
        updateCount: 4,
        packages: ["linux-cachyos", "cachyos-settings", "glibc", "kio"],
        downloadSize: 153.61,
        installSize: 600,
        netSize: 0.29
      }
    })
  })
})

describe("Updates.apt (reference §1.15)", () => {
  it("reads `apt list --upgradable` too (the name before the suite), next to upgrade listings", () => {
    assert.deepStrictEqual(
      Updates.apt([
        "Listing... Done",
        "bash/jammy-updates 5.1-6ubuntu1.1 amd64 [upgradable from: 5.1-6ubuntu1]",
        "libc6/jammy-updates,jammy-security 2.35-0ubuntu3.6 amd64 [upgradable from: 2.35-0ubuntu3.5]",
        "g++-12/jammy-updates 12.3.0-1ubuntu1~22.04 amd64 [upgradable from: 12.1.0-2ubuntu1~22.04]",
        "N: There is 1 additional version. Please use the '-a' switch to see it",
        "The following packages will be upgraded:",
        "  curl",
        "Done"
      ]),
      ["bash", "libc6", "g++-12", "curl"]
    )
    assert.deepStrictEqual(
      Updates.apt(["bash/jammy 5.1 amd64 [installed]", "WARNING: apt does not have a stable CLI"]),
      []
    )
  })

  it("parses the reference example", () => {
    const r = Updates.parse("apt", [
      "Reading package lists...",
      "The following packages will be upgraded:",
      "  libtdb-dev libtdb1",
      "2 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.",
      "some other command output",
      "The following packages will be upgraded:",
      "  libssh-4 libxml2 libxml2-dev",
      "3 upgraded, 0 newly installed, 0 to remove and 0 not upgraded."
    ])
    assert.deepStrictEqual(r, {
      _tag: "Apt",
      packages: ["libtdb-dev", "libtdb1", "libssh-4", "libxml2", "libxml2-dev"]
    })
  })

  it("follows apt's wrapped package list and stops at the first unindented line", () => {
    const r = Updates.apt([
      "The following packages will be upgraded:",
      "  a b c",
      "  d e",
      "5 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.",
      "  not-a-package"
    ])
    assert.deepStrictEqual(r, ["a", "b", "c", "d", "e"])
  })

  it("ignores other headers", () => {
    assert.deepStrictEqual(
      Updates.apt([
        "The following NEW packages will be installed:",
        "  foo",
        "The following packages have been kept back:",
        "  bar"
      ]),
      []
    )
  })

  it.prop(
    "returns every listed package",
    [FastCheck.array(FastCheck.array(pkgName, { minLength: 1, maxLength: 6 }))],
    ([
      lists
    ]) => {
      const lines = lists.flatMap((l) => ["The following packages will be upgraded:", `  ${l.join(" ")}`, "done."])
      assert.deepStrictEqual(Updates.apt(lines), lists.flat())
    }
  )
})
