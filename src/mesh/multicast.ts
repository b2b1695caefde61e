/**
 * Multicast and broadcast across the mesh, as on one link (issue #9, item 4).
 *
 *   Tun ─ packet no member owns ─► Device onNoRoute ─► MulticastCarrier.send
 *       classify (src/net/multicast.ts) ─ not carried ─► counted
 *       sender rate limit ─► [version][epoch][sequence][IP packet]
 *       ─► mesh.broadcastDatagram(MULTICAST_PORT): this peer's spanning tree, each member once
 *   member ─ broadcast frame from its tree parent ─► MulticastCarrier.receive
 *       duplicate? ─► origin rate limit ─► checkMulticast (header, checksum, destination,
 *       TTL, source in the origin's allowed IPs) ─► our Tun; forwarded down the tree only
 *       when accepted (returning false stops the mesh forwarding it)
 *
 * The packet is written to every other member's Tun unchanged: the mesh is one link, so
 * TTL is respected as a link respects it (at least 1 to be carried, never decremented,
 * never routed past the members' hosts). The kernel loops a packet back to local sockets
 * itself (IP_MULTICAST_LOOP), so the sender's own Tun gets nothing.
 *
 * Duplicates: the spanning trees deliver once while every peer's view of the topology
 * agrees; while a link flaps, a member whose tree parent changed could get a packet twice,
 * so each carries the origin's epoch (random per start) and sequence number, and a
 * per-origin window (the WireGuard replay filter) drops repeats.
 *
 * Rate limit: a token bucket per origin, `packetsPerSecond` with a burst of `burst`, at the
 * sender for its own Tun's packets and at every receiver per origin (what a receiver drops
 * it does not forward, so one member cannot flood the mesh). Receivers allow twice the
 * burst, so a sender shaped by the same settings is not cut by jitter on the way; members
 * should share one setting (a receiver with a lower rate thins what its subtree gets).
 *
 * Off: nothing from our Tun is sent, nothing is written to it and nothing is forwarded.
 */
import type { Clock } from "../clock.ts";
import type { IpPrefix } from "../net/ip.ts";
import {
  checkMulticast,
  classifyMulticast,
  ipv4Ttl,
  type MulticastRejection,
} from "../net/multicast.ts";
import { REJECT_AFTER_MESSAGES } from "../tunnel/constants.ts";
import {
  createReplayFilter,
  type ReplayFilter,
  resetReplayFilter,
  validateCounter,
} from "../tunnel/replay.ts";
import type { PeerKey } from "./gossip-state.ts";
import { TokenBuckets } from "./token-buckets.ts";

/** The mesh datagram port multicast travels on; applications must not use it. */
export const MULTICAST_PORT = 0xfe01;
/** Packets per second each member may send to the mesh (and each receiver takes from one). */
export const DEFAULT_MULTICAST_PACKETS_PER_SECOND = 100;
/** Packets a member may send at once before its rate applies. */
export const DEFAULT_MULTICAST_BURST = 200;
const MULTICAST_WIRE_VERSION = 1;
/** version (1), epoch (4), sequence (4). */
const HEADER_BYTES = 9;
/** How much more burst a receiver allows than a sender takes: jitter bunches packets up. */
const RECEIVER_BURST_FACTOR = 2;

/** Why the carrier dropped a packet, counted. */
export type MulticastDropReason =
  | MulticastRejection
  /** Multicast is off here: not sent, not written to the Tun, not forwarded. */
  | "disabled"
  /** Our own Tun sent more than the rate allows. */
  | "sender-rate-limited"
  /** A member sent more than the rate allows (counted at each receiver). */
  | "origin-rate-limited"
  /** A packet already delivered (the trees changed while it travelled). */
  | "duplicate"
  /** Our header is missing or of another version. */
  | "malformed-frame"
  /** Sent to the multicast port as a unicast datagram, not along the trees. */
  | "not-broadcast";

export interface MulticastCounters {
  /** Packets from our Tun sent into the mesh. */
  sent: number;
  /** Packets from members written to our Tun. */
  delivered: number;
  /** Packets from our Tun not carried by design: IGMP and IPv6 multicast. */
  ignored: { igmp: number; ipv6: number };
  dropped: Partial<Record<MulticastDropReason, number>>;
}

/** What the carrier needs from the mesh (a `Mesh` provides it through `attachMulticast`). */
export interface MulticastTransport {
  /** Sends to every other reachable member once, along this peer's broadcast tree. */
  broadcast(port: number, data: Uint8Array): void;
  /** The member's allowed IPs: the addresses its packets may come from. */
  allowedIpsOf(key: PeerKey): readonly IpPrefix[];
}

export interface MulticastOptions {
  readonly clock: Pick<Clock, "now">;
  /** Whether multicast and broadcast are carried at all; true by default. */
  readonly enabled?: boolean;
  /** DEFAULT_MULTICAST_PACKETS_PER_SECOND by default; at least 1. */
  readonly packetsPerSecond?: number;
  /** DEFAULT_MULTICAST_BURST by default; at least 1. */
  readonly burst?: number;
  /** Directed broadcast addresses carried as broadcast (the mesh range's, 4 bytes). */
  readonly broadcasts?: readonly Uint8Array[];
  /** For the epoch that tells this start's sequence numbers from the last one's. */
  readonly random?: () => number;
}

interface OriginWindow {
  epoch: number;
  readonly filter: ReplayFilter;
}

/** Carries one peer's multicast and broadcast packets to the other members, and theirs to it. */
export class MulticastCarrier {
  readonly enabled: boolean;
  readonly packetsPerSecond: number;
  readonly burst: number;
  readonly #transport: MulticastTransport;
  readonly #write: (packet: Uint8Array) => void;
  readonly #clock: Pick<Clock, "now">;
  readonly #broadcasts: readonly Uint8Array[];
  readonly #sendLimiter: TokenBuckets<"self">;
  readonly #receiveLimiter: TokenBuckets<PeerKey>;
  readonly #windows = new Map<PeerKey, OriginWindow>();
  readonly #epoch: number;
  #sequence = 0;
  readonly #counters: MulticastCounters = {
    sent: 0,
    delivered: 0,
    ignored: { igmp: 0, ipv6: 0 },
    dropped: {},
  };

  /**
   * @param transport The mesh side.
   * @param write Writes a packet to our Tun.
   * @param options Rate, on or off, broadcast addresses.
   */
  constructor(
    transport: MulticastTransport,
    write: (packet: Uint8Array) => void,
    options: MulticastOptions,
  ) {
    const packetsPerSecond = options.packetsPerSecond ?? DEFAULT_MULTICAST_PACKETS_PER_SECOND;
    const burst = options.burst ?? DEFAULT_MULTICAST_BURST;
    for (const [name, value] of [
      ["packetsPerSecond", packetsPerSecond],
      ["burst", burst],
    ] as const) {
      if (!Number.isFinite(value) || value < 1) {
        throw new RangeError(`Expected "${name}" to be a number of at least 1, got ${value}`);
      }
    }
    this.enabled = options.enabled ?? true;
    this.packetsPerSecond = packetsPerSecond;
    this.burst = burst;
    this.#transport = transport;
    this.#write = write;
    this.#clock = options.clock;
    this.#broadcasts = options.broadcasts ?? [];
    this.#sendLimiter = new TokenBuckets(packetsPerSecond, burst);
    this.#receiveLimiter = new TokenBuckets(packetsPerSecond, burst * RECEIVER_BURST_FACTOR);
    this.#epoch = Math.floor((options.random ?? Math.random)() * 0x1_0000_0000) >>> 0;
  }

  /**
   * A packet from our Tun that no member owns (the Device's `onNoRoute`): carried when it
   * is multicast or broadcast. Returns whether it was ours to handle (carried, or dropped
   * and counted here); false leaves it to the Device to count as unroutable.
   */
  send(packet: Uint8Array): boolean {
    const kind = classifyMulticast(packet, this.#broadcasts);
    if (kind === "other") return false;
    if (kind === "igmp") {
      this.#counters.ignored.igmp++;
      return true;
    }
    if (kind === "ipv6-multicast") {
      this.#counters.ignored.ipv6++;
      return true;
    }
    if (!this.enabled) return this.#consumed("disabled");
    if (ipv4Ttl(packet) === 0) return this.#consumed("ttl-expired");
    if (!this.#sendLimiter.take("self", this.#clock.now())) {
      return this.#consumed("sender-rate-limited");
    }
    this.#sequence = (this.#sequence + 1) >>> 0;
    const data = new Uint8Array(HEADER_BYTES + packet.length);
    const view = new DataView(data.buffer);
    data[0] = MULTICAST_WIRE_VERSION;
    view.setUint32(1, this.#epoch);
    view.setUint32(5, this.#sequence);
    data.set(packet, HEADER_BYTES);
    this.#transport.broadcast(MULTICAST_PORT, data);
    this.#counters.sent++;
    return true;
  }

  /**
   * A datagram on MULTICAST_PORT from `origin` (the mesh checked it is a member and that
   * it came from our tree parent). Writes the packet to our Tun when it passes every
   * check; returns whether the mesh should forward it down the tree.
   */
  receive(origin: PeerKey, data: Uint8Array, info: { readonly broadcast: boolean }): boolean {
    if (!this.enabled) return this.#drop("disabled");
    if (!info.broadcast) return this.#drop("not-broadcast");
    if (data.length < HEADER_BYTES || data[0] !== MULTICAST_WIRE_VERSION) {
      return this.#drop("malformed-frame");
    }
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const epoch = view.getUint32(1);
    const sequence = view.getUint32(5);
    let window = this.#windows.get(origin);
    if (!window) {
      window = { epoch, filter: createReplayFilter(REJECT_AFTER_MESSAGES) };
      this.#windows.set(origin, window);
    } else if (window.epoch !== epoch) {
      // The origin restarted (or its sequence wrapped): a new series.
      window.epoch = epoch;
      resetReplayFilter(window.filter);
    }
    if (!validateCounter(window.filter, sequence, 0)) return this.#drop("duplicate");
    if (!this.#receiveLimiter.take(origin, this.#clock.now())) {
      return this.#drop("origin-rate-limited");
    }
    const packet = data.subarray(HEADER_BYTES);
    const rejection = checkMulticast(
      packet,
      this.#transport.allowedIpsOf(origin),
      this.#broadcasts,
    );
    if (rejection !== undefined) return this.#drop(rejection);
    this.#write(packet);
    this.#counters.delivered++;
    return true;
  }

  /** Counts for status and metrics (a copy). */
  counters(): MulticastCounters {
    const c = this.#counters;
    return { ...c, ignored: { ...c.ignored }, dropped: { ...c.dropped } };
  }

  /** A packet from our Tun dropped here: counted, and not the Device's to count. */
  #consumed(reason: MulticastDropReason): true {
    this.#drop(reason);
    return true;
  }

  #drop(reason: MulticastDropReason): false {
    this.#counters.dropped[reason] = (this.#counters.dropped[reason] ?? 0) + 1;
    return false;
  }
}

/** What `attachMulticast` needs of a Mesh (its public methods). */
export interface MulticastMesh {
  broadcastDatagram(port: number, data: Uint8Array): void;
  allowedIpsOf(key: PeerKey): readonly IpPrefix[];
  onPort(
    port: number,
    handler:
      | ((
          from: PeerKey,
          port: number,
          data: Uint8Array,
          info: { readonly broadcast: boolean },
        ) => boolean | undefined)
      | undefined,
  ): void;
  onNoRoute(handler: ((packet: Uint8Array) => boolean) | undefined): void;
}

/**
 * Makes a mesh carry multicast and broadcast between its Tun (`write`) and the other
 * members: the mesh's unroutable Tun packets go to the carrier, and MULTICAST_PORT's
 * broadcasts come from it. Returns the carrier (for its counters).
 *
 * @example
 * ```ts
 * const multicast = attachMulticast(mesh, (packet) => tun.write(packet), { clock });
 * multicast.counters().delivered;
 * ```
 */
export function attachMulticast(
  mesh: MulticastMesh,
  write: (packet: Uint8Array) => void,
  options: MulticastOptions,
): MulticastCarrier {
  const carrier = new MulticastCarrier(
    {
      broadcast: (port, data) => mesh.broadcastDatagram(port, data),
      allowedIpsOf: (key) => mesh.allowedIpsOf(key),
    },
    write,
    options,
  );
  mesh.onNoRoute((packet) => carrier.send(packet));
  mesh.onPort(MULTICAST_PORT, (from, _port, data, info) => carrier.receive(from, data, info));
  return carrier;
}
