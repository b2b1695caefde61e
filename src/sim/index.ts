/**
 * @module Test doubles that are real implementations of the seams: a virtual `Clock`,
 * a simulated network of `PacketConn`s with NATs, a channel `Tun`, and the seeded random
 * that drives them, so a simulation replays exactly from its seed.
 */
export * from "./channel-tun.ts";
export * from "./memory-store.ts";
export * from "./nat.ts";
export * from "./network.ts";
export * from "./random.ts";
export * from "./virtual-clock.ts";
