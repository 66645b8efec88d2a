/**
 * The inbound unions of both links, flattened to one level of tagged structs.
 *
 * `Codec.decode` tells "unknown tag" from "malformed" only for a flat union of tagged structs;
 * `Messages.AgentToServer` and `Messages.CliToServer` nest unions, which would report every
 * unknown tag as merely undecodable. Same members, same types: nothing is redefined here.
 */
import * as Messages from "@barto/domain/Messages"
import * as Schema from "effect/Schema"

export const FromAgent: Schema.Schema<Messages.AgentToServer, Schema.Schema.Encoded<typeof Messages.AgentToServer>> =
  Schema
    .Union(...Messages.AgentMessage.members, Messages.ProtocolError)

export const FromCli: Schema.Schema<Messages.CliToServer, Schema.Schema.Encoded<typeof Messages.CliToServer>> = Schema
  .Union(Messages.CliHello, ...Messages.CliRequest.members, Messages.Ping)
