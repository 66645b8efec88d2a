/**
 * A simulated agent for benchmarks: speaks the real worker protocol (hello, info, pings, record
 * batches) over a real WebSocket, without running jobs.
 */
import * as Codec from "@barto/domain/Codec"
import * as M from "@barto/domain/Messages"
import { WebSocket } from "ws"

const codec = Codec.makeJson({ maxFrameBytes: 64 * 1024 * 1024 })

export interface SimAgent {
  readonly ws: WebSocket
  readonly hello: M.ServerMessage & { _tag: "ServerHello" }
  readonly send: (message: M.AgentMessage) => void
  readonly onMessage: (f: (m: M.ServerMessage) => void) => void
  readonly close: () => void
}

export const connectSimAgent = (url: string, name: string, outboxId = `bench-${name}`): Promise<SimAgent> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}/v1/ws/worker?name=${encodeURIComponent(name)}`, { perMessageDeflate: false })
    const listeners: Array<(m: M.ServerMessage) => void> = []
    let hello: (M.ServerMessage & { _tag: "ServerHello" }) | undefined
    const send = (message: M.AgentMessage) => ws.send(codec.encode(M.AgentMessage, message))
    ws.on("message", (data: Buffer) => {
      const decoded = codec.decode(M.ServerMessage, new Uint8Array(data))
      if (decoded._tag === "Left") return
      const m = decoded.right
      if (m._tag === "ServerHello" && hello === undefined) {
        hello = m
        resolve({ ws, hello: m, send, onMessage: (f) => listeners.push(f), close: () => ws.close(1000) })
      }
      for (const l of listeners) l(m)
    })
    ws.once("error", reject)
    // A close before ServerHello (refused, dropped by a struggling server) must not hang the caller.
    ws.once("close", (code, reason) => {
      if (hello === undefined) reject(new Error(`closed before ServerHello: ${code} ${reason.toString()}`))
    })
    ws.once("open", () => {
      send({
        _tag: "AgentHello",
        protocol: M.PROTOCOL_VERSION,
        agentVersion: "bench",
        capabilities: [],
        outboxId,
        lastSeq: -1
      })
    })
  })
