/**
 * Glue between one peer's `Allocator` and its mesh: the ring rides the gossip channel
 * "ipam", donation requests and Paxos messages go as unicasts on that channel (relayed
 * when need be), and donors are chosen among the members the mesh can reach now.
 *
 * ```
 *  Allocator ──broadcast(delta)──► channel "ipam" ──► every reachable peer's ring.merge
 *            ──unicast(peer, msg)─► channel "ipam" ──► that peer's Allocator.onUnicast
 *            ◄─reachablePeers()─── mesh.reachable()
 * ```
 */
import type { GossipChannel, GossipState, PeerKey } from "../mesh/gossip-state.ts";
import { Allocator, type AllocatorOptions } from "./allocator.ts";
import type { RingDelta } from "./ring-entries.ts";

/** The gossip channel IPAM's ring and messages travel on. */
export const IPAM_CHANNEL = "ipam";

/** What IPAM needs of a mesh (the `Mesh` class has it). */
export interface IpamMesh {
  /** This peer's key. */
  readonly key: PeerKey;
  channel<D>(name: string, state: GossipState<D>): GossipChannel<D>;
  /** Members that messages can reach now, directly or relayed. */
  reachable(): PeerKey[];
}

/**
 * An allocator for `mesh`'s peer, its ring on the "ipam" channel. A mesh has one such
 * channel: call this once per Mesh (a restarted peer has a new Mesh).
 *
 * @example
 * ```ts
 * const ipam = attachAllocator(mesh, { range, clock, bootstrap: { kind: "join" }, store });
 * const address = await ipam.allocate("container-1");
 * ```
 */
export function attachAllocator(
  mesh: IpamMesh,
  options: Omit<AllocatorOptions, "me" | "link">,
): Allocator {
  let channel: GossipChannel<RingDelta> | undefined;
  // A seeding allocator broadcasts from its constructor, before the channel exists:
  // those deltas wait here and leave once it does.
  const early: RingDelta[] = [];
  const allocator = new Allocator({
    ...options,
    me: mesh.key,
    link: {
      reachablePeers: () => mesh.reachable(),
      unicast: (peer, bytes) => channel?.unicast(peer, bytes) ?? false,
      broadcast: (delta) => {
        if (channel === undefined) early.push(delta);
        else channel.broadcast(delta);
      },
    },
  });
  channel = mesh.channel(IPAM_CHANNEL, allocator.gossip);
  channel.onUnicast((from, bytes) => allocator.onUnicast(from, bytes));
  for (const delta of early) channel.broadcast(delta);
  return allocator;
}
