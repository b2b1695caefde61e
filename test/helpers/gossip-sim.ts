/**
 * Test doubles for the gossip engine: a grow-only map state (key -> version and value, a
 * key's owner is its prefix before "/") and an in-memory mesh of engines that delivers
 * through a VirtualClock with seeded delay, loss, duplication and reordering.
 */
import assert from "node:assert/strict";
import { sha256 } from "@noble/hashes/sha2.js";
import { Gossip, type GossipOptions, type GossipTransport } from "../../src/mesh/gossip.ts";
import {
  type GossipChannel,
  GossipRejected,
  type GossipState,
  type PeerKey,
  type Summary,
} from "../../src/mesh/gossip-state.ts";
import { createRandom, type Random, VirtualClock } from "../../src/sim/index.ts";

export interface Entry {
  version: number;
  value: string;
}

export type MapDelta = Map<string, Entry>;

/** A grow-only map: the higher version of a key wins. */
export class MapState implements GossipState<MapDelta> {
  readonly entries = new Map<string, Entry>();
  #digest: Uint8Array | undefined;
  /** A value this replica refuses with GossipRejected (a broken invariant). */
  rejectValue: string | undefined;
  /** A value that makes merge throw a plain Error (a buggy state). */
  crashValue: string | undefined;

  /** A local change: the next version of `key`; returns the delta to broadcast. */
  set(key: string, value: string): MapDelta {
    const version = (this.entries.get(key)?.version ?? 0) + 1;
    this.entries.set(key, { version, value });
    this.#digest = undefined;
    return new Map([[key, { version, value }]]);
  }

  digest(): Uint8Array {
    if (this.#digest === undefined) {
      const keys = [...this.entries.keys()].sort();
      const text = keys.map((key) => `${key}\0${this.entries.get(key)!.version}\n`).join("");
      this.#digest = sha256(new TextEncoder().encode(text));
    }
    return this.#digest;
  }

  summary(): Summary {
    return new Map([...this.entries].map(([key, entry]) => [key, entry.version]));
  }

  deltaFor(theirs: Summary): MapDelta | null {
    const delta: MapDelta = new Map();
    for (const [key, entry] of this.entries) {
      if ((theirs.get(key) ?? 0) < entry.version) delta.set(key, entry);
    }
    return delta.size > 0 ? delta : null;
  }

  merge(delta: MapDelta, _from: PeerKey): MapDelta | null {
    for (const entry of delta.values()) {
      if (entry.value === this.rejectValue) throw new GossipRejected("Rejected a poisoned value");
      if (entry.value === this.crashValue) throw new Error("A buggy state");
    }
    const changed: MapDelta = new Map();
    for (const [key, entry] of delta) {
      if ((this.entries.get(key)?.version ?? 0) < entry.version) {
        this.entries.set(key, entry);
        changed.set(key, entry);
      }
    }
    if (changed.size === 0) return null;
    this.#digest = undefined;
    return changed;
  }

  encode(delta: MapDelta): unknown[] {
    return [...delta].map(([key, entry]) => [key, entry.version, entry.value]);
  }

  decode(items: readonly unknown[]): MapDelta {
    const delta: MapDelta = new Map();
    for (const item of items) {
      if (!Array.isArray(item) || item.length !== 3) throw new GossipRejected("Bad item");
      const [key, version, value] = item;
      if (typeof key !== "string" || typeof value !== "string")
        throw new GossipRejected("Bad item");
      if (!Number.isSafeInteger(version) || version < 1) throw new GossipRejected("Bad version");
      const known = delta.get(key);
      if (known === undefined || known.version < version) delta.set(key, { version, value });
    }
    return delta;
  }
}

export interface LinkConditions {
  lossRate: number;
  duplicateRate: number;
  minDelayMs: number;
  maxDelayMs: number;
}

export const PERFECT_LINKS: LinkConditions = {
  lossRate: 0,
  duplicateRate: 0,
  minDelayMs: 1,
  maxDelayMs: 1,
};

export interface SimPeer {
  readonly key: PeerKey;
  readonly gossip: Gossip;
  /** One state per channel name. */
  readonly states: Map<string, MapState>;
  readonly channels: Map<string, GossipChannel<MapDelta>>;
  /** Gossip bytes and messages this peer handed to the transport. */
  sentBytes: number;
  sentMessages: number;
  logs: string[];
}

export interface GossipSimOptions {
  seed: number;
  peers: readonly PeerKey[];
  edges: ReadonlyArray<readonly [PeerKey, PeerKey]>;
  links?: Partial<LinkConditions>;
  channels?: readonly string[];
  gossip?: Partial<Omit<GossipOptions, "self" | "transport" | "clock" | "random">>;
}

/** Many engines in one process on virtual time; links are undirected and can go down. */
export class GossipSim {
  readonly clock = new VirtualClock();
  readonly random: Random;
  readonly peers = new Map<PeerKey, SimPeer>();
  readonly links: LinkConditions;
  readonly maxMessageBytes: number;
  readonly #adjacency = new Map<PeerKey, Set<PeerKey>>();

  constructor(options: GossipSimOptions) {
    this.random = createRandom(options.seed);
    this.links = { ...PERFECT_LINKS, ...options.links };
    this.maxMessageBytes = options.gossip?.maxMessageBytes ?? 32 * 1024;
    const channelNames = options.channels ?? ["map"];
    for (const key of options.peers) {
      this.#adjacency.set(key, new Set());
      const logs: string[] = [];
      const transport: GossipTransport = {
        neighbours: () => [...this.#adjacency.get(key)!],
        send: (to, message) => this.#send(key, to, message),
      };
      const gossip = new Gossip({
        self: key,
        transport,
        clock: this.clock,
        random: () => this.random.next(),
        log: (level, message) => logs.push(`${level} ${message}`),
        ...options.gossip,
      });
      const states = new Map<string, MapState>();
      const channels = new Map<string, GossipChannel<MapDelta>>();
      for (const name of channelNames) {
        const state = new MapState();
        states.set(name, state);
        channels.set(name, gossip.channel(name, state));
      }
      this.peers.set(key, { key, gossip, states, channels, sentBytes: 0, sentMessages: 0, logs });
    }
    for (const [a, b] of options.edges) this.connect(a, b);
  }

  peer(key: PeerKey): SimPeer {
    const peer = this.peers.get(key);
    assert.ok(peer, `no peer ${key}`);
    return peer;
  }

  /** A local change at `key`, broadcast on its channel. */
  set(key: PeerKey, entryKey: string, value: string, channel = "map"): void {
    const peer = this.peer(key);
    peer.channels.get(channel)!.broadcast(peer.states.get(channel)!.set(entryKey, value));
  }

  connect(a: PeerKey, b: PeerKey): void {
    if (a === b || this.#adjacency.get(a)!.has(b)) return;
    this.#adjacency.get(a)!.add(b);
    this.#adjacency.get(b)!.add(a);
    this.peer(a).gossip.neighbourUp(b);
    this.peer(b).gossip.neighbourUp(a);
  }

  disconnect(a: PeerKey, b: PeerKey): void {
    if (!this.#adjacency.get(a)!.delete(b)) return;
    this.#adjacency.get(b)!.delete(a);
    this.peer(a).gossip.neighbourDown(b);
    this.peer(b).gossip.neighbourDown(a);
  }

  /** Whether every replica of `channel` in `group` has the same digest. */
  converged(group: Iterable<PeerKey> = this.peers.keys(), channel = "map"): boolean {
    let first: string | undefined;
    for (const key of group) {
      const digest = hex(this.peer(key).states.get(channel)!.digest());
      if (first === undefined) first = digest;
      else if (digest !== first) return false;
    }
    return true;
  }

  /** Advances in steps until `done()`; returns the virtual ms it took, or -1 past `limitMs`. */
  runUntil(done: () => boolean, limitMs: number, stepMs = 50): number {
    const start = this.clock.now();
    while (!done()) {
      if (this.clock.now() - start >= limitMs) return -1;
      this.clock.advance(stepMs);
    }
    return this.clock.now() - start;
  }

  close(): void {
    for (const peer of this.peers.values()) peer.gossip.close();
  }

  #send(from: PeerKey, to: PeerKey, message: Uint8Array): boolean {
    assert.ok(
      message.length <= this.maxMessageBytes,
      `${from} sent ${message.length} bytes, over ${this.maxMessageBytes}`,
    );
    if (!this.#adjacency.get(from)!.has(to) && !this.#reachable(from, to)) return false;
    const sender = this.peer(from);
    sender.sentBytes += message.length;
    sender.sentMessages++;
    const { lossRate, duplicateRate, minDelayMs, maxDelayMs } = this.links;
    const copies = this.random.next() < lossRate ? 0 : this.random.next() < duplicateRate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delayMs = minDelayMs + this.random.next() * (maxDelayMs - minDelayMs);
      const bytes = message.slice(); // the sender may reuse its buffer
      this.clock.setTimer(delayMs, () => this.peers.get(to)!.gossip.receive(from, bytes));
    }
    return true;
  }

  /** The mesh relays unicasts: any peer reachable over up links has a path. */
  #reachable(from: PeerKey, to: PeerKey): boolean {
    const seen = new Set([from]);
    const queue = [from];
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      if (next === to) return true;
      for (const n of this.#adjacency.get(next)!) {
        if (!seen.has(n)) {
          seen.add(n);
          queue.push(n);
        }
      }
    }
    return false;
  }
}

/** Peer names p00, p01, ... */
export function peerNames(count: number): PeerKey[] {
  return Array.from({ length: count }, (_, i) => `p${String(i).padStart(2, "0")}`);
}

export type GraphShape = "line" | "ring" | "random";

/** Edges of a line, a ring, or a random connected graph (a random tree plus extra edges). */
export function graphEdges(
  shape: GraphShape,
  peers: readonly PeerKey[],
  random: Random,
  averageDegree = 4,
): Array<[PeerKey, PeerKey]> {
  const edges: Array<[PeerKey, PeerKey]> = [];
  for (let i = 1; i < peers.length; i++) {
    const j = shape === "random" ? random.int(i) : i - 1;
    edges.push([peers[j]!, peers[i]!]);
  }
  if (shape === "ring" && peers.length > 2) edges.push([peers[peers.length - 1]!, peers[0]!]);
  if (shape === "random") {
    const extra = Math.max(0, Math.round((peers.length * averageDegree) / 2) - edges.length);
    for (let k = 0; k < extra; k++) {
      edges.push([peers[random.int(peers.length)]!, peers[random.int(peers.length)]!]);
    }
  }
  return edges;
}

export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
