/**
 * The real client address behind reverse proxies (`[actix] trusted_proxies`, issue 18).
 *
 * Only a peer that is a trusted proxy is believed, and only as far as the chain stays trusted:
 * the hops (`Forwarded: for=…` when present, else `X-Forwarded-For`) are walked from the nearest
 * (rightmost) back, skipping trusted proxies; the first address that is not one is the client. A
 * client can write anything into these headers, so an address left of an untrusted hop is never
 * taken. A hop that is not an address (`for=unknown`, an obfuscated `_id`) ends the walk at the
 * proxy that reported it. Pure: headers in, address out.
 */
import type { IncomingHttpHeaders } from "node:http"
import { BlockList, isIP } from "node:net"

export type ClientAddress = (peer: string, headers: IncomingHttpHeaders) => string

const unmap = (ip: string) => (ip.startsWith("::ffff:") && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip)

/** `for=` values of a `Forwarded` header (RFC 7239), nearest last; ports and brackets removed. */
export const forwardedFor = (header: string): Array<string> => {
  const out: Array<string> = []
  for (const element of header.split(",")) {
    for (const pair of element.split(";")) {
      const eq = pair.indexOf("=")
      if (eq < 0 || pair.slice(0, eq).trim().toLowerCase() !== "for") continue
      let value = pair.slice(eq + 1).trim()
      if (value.startsWith("\"") && value.endsWith("\"") && value.length >= 2) value = value.slice(1, -1)
      if (value.startsWith("[")) {
        const end = value.indexOf("]")
        value = end < 0 ? value : value.slice(1, end)
      } else if (isIP(value) === 0 && value.includes(":") && value.indexOf(":") === value.lastIndexOf(":")) {
        value = value.slice(0, value.indexOf(":")) // IPv4 with a port
      }
      out.push(value)
    }
  }
  return out
}

/** `X-Forwarded-For` hops, nearest last. */
export const xForwardedFor = (header: string): Array<string> =>
  header.split(",").map((h) => h.trim()).filter((h) => h !== "")

const headerText = (v: string | ReadonlyArray<string> | undefined): string | undefined =>
  v === undefined ? undefined : typeof v === "string" ? v : v.join(", ")

/** `trusted`: addresses and CIDR blocks as the config validated them. */
export const make = (trusted: ReadonlyArray<string>): ClientAddress => {
  if (trusted.length === 0) return (peer) => unmap(peer)
  const list = new BlockList()
  for (const entry of trusted) {
    const [address, prefix] = entry.split("/") as [string, string | undefined]
    const family = isIP(address) === 6 ? "ipv6" : "ipv4"
    if (prefix === undefined) list.addAddress(address, family)
    else list.addSubnet(address, Number(prefix), family)
  }
  const isTrusted = (ip: string) => {
    const family = isIP(ip)
    return family !== 0 && list.check(ip, family === 6 ? "ipv6" : "ipv4")
  }
  return (peer, headers) => {
    let client = unmap(peer)
    if (!isTrusted(client)) return client
    const forwarded = headerText(headers["forwarded"])
    const xff = headerText(headers["x-forwarded-for"])
    const hops = forwarded !== undefined ? forwardedFor(forwarded) : xff !== undefined ? xForwardedFor(xff) : []
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = unmap(hops[i]!)
      if (isIP(hop) === 0) return client
      client = hop
      if (!isTrusted(hop)) return hop
    }
    return client
  }
}
