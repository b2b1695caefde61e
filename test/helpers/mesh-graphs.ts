/**
 * Graphs and peer keys for mesh tests: deterministic keys whose sort order is unrelated to
 * their number (so tie-breaks are really exercised), the usual shapes, seeded random graphs,
 * and a naive shortest-path reference to check routes against.
 */
import { blake2s } from "@noble/hashes/blake2.js";
import { toBase64 } from "../../src/crypto/bytes.ts";
import type { PeerKey } from "../../src/mesh/gossip-state.ts";
import type { Routes } from "../../src/mesh/routes.ts";
import type { Random } from "../../src/sim/index.ts";

export type Adjacency = Map<PeerKey, PeerKey[]>;

/** A valid WireGuard-style key (canonical base64 of 32 bytes), the same for `n` every time. */
export function peerKey(n: number): PeerKey {
  return toBase64(blake2s(new TextEncoder().encode(`mesh test peer ${n}`)));
}

export function peerKeys(count: number): PeerKey[] {
  return Array.from({ length: count }, (_, n) => peerKey(n));
}

/** An adjacency listing both directions of each undirected edge `[a, b]` (indices into keys). */
export function undirected(
  keys: readonly PeerKey[],
  edges: readonly [number, number][],
): Adjacency {
  const adjacency: Adjacency = new Map(keys.map((key) => [key, []]));
  for (const [a, b] of edges) {
    adjacency.get(keys[a]!)!.push(keys[b]!);
    adjacency.get(keys[b]!)!.push(keys[a]!);
  }
  return adjacency;
}

export function lineEdges(count: number): [number, number][] {
  return Array.from({ length: count - 1 }, (_, i) => [i, i + 1]);
}

export function ringEdges(count: number): [number, number][] {
  return [...lineEdges(count), [count - 1, 0]];
}

export function starEdges(count: number): [number, number][] {
  return Array.from({ length: count - 1 }, (_, i) => [0, i + 1]);
}

export function gridEdges(width: number, height: number): [number, number][] {
  const edges: [number, number][] = [];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const at = y * width + x;
      if (x + 1 < width) edges.push([at, at + 1]);
      if (y + 1 < height) edges.push([at, at + width]);
    }
  }
  return edges;
}

/** About `count * degree / 2` distinct random edges, without self-loops. */
export function randomEdges(random: Random, count: number, degree: number): [number, number][] {
  const seen = new Set<number>();
  const edges: [number, number][] = [];
  const wanted = Math.floor((count * degree) / 2);
  for (let tries = 0; edges.length < wanted && tries < wanted * 10; tries++) {
    const a = random.int(count);
    const b = random.int(count);
    if (a === b || seen.has(Math.min(a, b) * count + Math.max(a, b))) continue;
    seen.add(Math.min(a, b) * count + Math.max(a, b));
    edges.push([a, b]);
  }
  return edges;
}

/** Hop counts from `from` over mutual edges only, by a plain BFS on the map. */
export function referenceDistances(adjacency: Adjacency, from: PeerKey): Map<PeerKey, number> {
  const distances = new Map([[from, 0]]);
  const frontier = [from];
  while (frontier.length > 0) {
    const at = frontier.shift()!;
    for (const next of adjacency.get(at) ?? []) {
      if (distances.has(next) || !(adjacency.get(next) ?? []).includes(at)) continue;
      distances.set(next, distances.get(at)! + 1);
      frontier.push(next);
    }
  }
  return distances;
}

/** Every shortest path from `from` to `to` (the peers after `from`), by exhaustive search. */
export function allShortestPaths(adjacency: Adjacency, from: PeerKey, to: PeerKey): PeerKey[][] {
  const toTarget = referenceDistances(adjacency, to);
  const length = toTarget.get(from);
  if (length === undefined) return [];
  const paths: PeerKey[][] = [];
  const walk = (at: PeerKey, path: PeerKey[]): void => {
    if (at === to) {
      paths.push(path);
      return;
    }
    for (const next of adjacency.get(at) ?? []) {
      // Each step must get one hop closer to the target over a mutual edge.
      const mutual = (adjacency.get(next) ?? []).includes(at);
      if (mutual && toTarget.get(next) === toTarget.get(at)! - 1) walk(next, [...path, next]);
    }
  };
  walk(from, []);
  return paths;
}

/** -1, 0 or 1 comparing key lists element by element. */
export function comparePaths(a: readonly PeerKey[], b: readonly PeerKey[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  }
  return a.length - b.length;
}

export interface BroadcastOutcome {
  /** How many times each peer accepted the broadcast (the source never does). */
  readonly accepted: Map<PeerKey, number>;
  /** Copies sent to a peer that refused them (not from its parent). */
  readonly refused: number;
}

/**
 * Floods one broadcast from `source` over each peer's own routes: a peer accepts a copy
 * only from its broadcast parent and forwards it to its broadcast children. Stops after
 * `maxSends` copies, so a loop shows up as an assertion failure, not a hung test.
 */
export function simulateBroadcast(
  routesOf: ReadonlyMap<PeerKey, Routes>,
  source: PeerKey,
  maxSends = 1_000_000,
): BroadcastOutcome {
  const accepted = new Map<PeerKey, number>();
  let refused = 0;
  let sends = 0;
  const queue: [from: PeerKey, to: PeerKey][] = [];
  for (const child of routesOf.get(source)!.broadcastChildren(source)) queue.push([source, child]);
  for (let head = 0; head < queue.length; head++) {
    if (++sends > maxSends) throw new Error(`Broadcast from "${source}" did not stop`);
    const [from, to] = queue[head]!;
    const routes = routesOf.get(to)!;
    if (routes.broadcastParent(source) !== from) {
      refused++;
      continue;
    }
    accepted.set(to, (accepted.get(to) ?? 0) + 1);
    for (const child of routes.broadcastChildren(source)) queue.push([to, child]);
  }
  return { accepted, refused };
}
