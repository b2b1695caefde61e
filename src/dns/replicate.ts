/**
 * Wires a `DnsEntries` replica to the mesh's gossip: registers it as a channel, so
 * anti-entropy repairs what broadcasts miss, and broadcasts the delta of every local
 * `add` and `remove` at once. The replica stays the place to read from (`lookup`).
 */
import type { GossipChannel, GossipState } from "../mesh/gossip-state.ts";
import { DNS_CHANNEL } from "./constants.ts";
import type { DnsDelta, DnsEntries } from "./entries.ts";

/** What replication needs of the mesh: `Mesh` and `Gossip` both provide it. */
export interface ChannelProvider {
  channel<D>(name: string, state: GossipState<D>): GossipChannel<D>;
}

/** Local changes that reach every replica. */
export interface DnsReplication {
  readonly channel: GossipChannel<DnsDelta>;
  /** Registers `address` under `name` for this peer; false when it already was. Throws as `DnsEntries.add`. */
  add(name: string, address: string): boolean;
  /** Unregisters `address` under `name` for this peer; false when it was not registered. */
  remove(name: string, address: string): boolean;
}

/**
 * Replicates `entries` on the mesh's channel `name` ("dns" by default).
 *
 * @example
 * ```ts
 * const entries = new DnsEntries({ self: mesh.key, clock });
 * const dns = replicateDns(entries, mesh);
 * dns.add("web.weft.internal", "10.40.0.7"); // resolvable on every peer moments later
 * ```
 */
export function replicateDns(
  entries: DnsEntries,
  mesh: ChannelProvider,
  name = DNS_CHANNEL,
): DnsReplication {
  const channel = mesh.channel(name, entries);
  const send = (delta: DnsDelta | null) => {
    if (delta === null) return false;
    channel.broadcast(delta);
    return true;
  };
  return {
    channel,
    add: (entryName, address) => send(entries.add(entryName, address)),
    remove: (entryName, address) => send(entries.remove(entryName, address)),
  };
}
