/**
 * A loopback TCP proxy for fault tests: forwards to a target port and can cut every open
 * connection (both sides see a reset) or stall them (bytes are held until resumed).
 */
import * as net from "node:net"

export interface FaultProxy {
  readonly port: number
  /** Destroys every open connection pair. New connections are still accepted. */
  readonly cut: () => void
  /** Holds all traffic (existing and new connections) until `resume`. */
  readonly stall: () => void
  readonly resume: () => void
  /** Refuse new connections (closes them at once) until `accept`. */
  readonly refuse: () => void
  readonly accept: () => void
  readonly connections: () => number
  readonly close: () => Promise<void>
}

export const startProxy = async (targetPort: number, host = "127.0.0.1"): Promise<FaultProxy> => {
  const pairs = new Set<{ a: net.Socket; b: net.Socket }>()
  let stalled = false
  let refusing = false
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy()
      return
    }
    const upstream = net.connect({ host, port: targetPort })
    const pair = { a: client, b: upstream }
    pairs.add(pair)
    if (stalled) {
      client.pause()
      upstream.pause()
    }
    client.pipe(upstream)
    upstream.pipe(client)
    const end = () => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on("error", end)
    upstream.on("error", end)
    client.on("close", end)
    upstream.on("close", end)
  })
  await new Promise<void>((r) => server.listen(0, host, r))
  const port = (server.address() as net.AddressInfo).port
  return {
    port,
    cut: () => {
      for (const { a, b } of pairs) {
        a.resetAndDestroy()
        b.resetAndDestroy()
      }
      pairs.clear()
    },
    stall: () => {
      stalled = true
      for (const { a, b } of pairs) {
        a.pause()
        b.pause()
      }
    },
    resume: () => {
      stalled = false
      for (const { a, b } of pairs) {
        a.resume()
        b.resume()
      }
    },
    refuse: () => {
      refusing = true
    },
    accept: () => {
      refusing = false
    },
    connections: () => pairs.size,
    close: async () => {
      for (const { a, b } of pairs) {
        a.destroy()
        b.destroy()
      }
      await new Promise<void>((r) => server.close(() => r()))
    }
  }
}
