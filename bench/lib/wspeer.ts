/**
 * The reconnect suite's peer, measured in the same run with the same holders: a bare `ws` server
 * that completes the handshake the simulated agents expect (their AgentHello answered by a
 * ServerHello and an empty ScheduleTable, both encoded once at start) and does nothing else: no
 * registry, no database, no log. What is left is the WebSocket upgrade, one frame in and two out
 * per agent: the floor for "re-established" on this machine under this load.
 *
 * Usage: `node --import tsx wspeer.ts <port>`; prints `listening <port>` once it accepts.
 */
import * as Codec from "@barto/domain/Codec"
import * as M from "@barto/domain/Messages"
import { randomUUID } from "node:crypto"
import { WebSocketServer } from "ws"

const port = Number(process.argv[2])
const codec = Codec.makeJson({ maxFrameBytes: 64 * 1024 * 1024 })
const hello = codec.encode(M.ServerMessage, {
  _tag: "ServerHello",
  protocol: M.PROTOCOL_VERSION,
  serverVersion: "bare-ws-peer",
  capabilities: [],
  sessionId: randomUUID(),
  ackedUpTo: -1
})
const table = codec.encode(M.ServerMessage, { _tag: "ScheduleTable", version: "empty", schedules: [] })
const server = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false })
server.on("connection", (ws) => {
  let greeted = false
  ws.on("message", () => {
    if (greeted) return
    greeted = true
    ws.send(hello, { binary: true })
    ws.send(table, { binary: true })
  })
  ws.on("error", () => {})
})
server.on("listening", () => process.stdout.write(`listening ${port}\n`))
