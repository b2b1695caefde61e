/**
 * @module IPAM: the mesh's address range as a ring CRDT of owned entries, per-peer
 * allocation from owned space, donation between peers, and bootstrap (seed, Paxos
 * consensus, observer). Other layers import from here.
 */
export * from "./address.ts";
export * from "./allocator.ts";
export * from "./constants.ts";
export * from "./donation.ts";
export * from "./errors.ts";
export * from "./messages.ts";
export * from "./paxos.ts";
export * from "./peer-key.ts";
export * from "./reclaim.ts";
export * from "./replicate.ts";
export * from "./ring.ts";
export { decodeRingItems, encodeRingItems } from "./ring-codec.ts";
export * from "./ring-entries.ts";
export * from "./space.ts";
export * from "./state-codec.ts";
