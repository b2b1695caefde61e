/**
 * Routes over the gossiped topology: unicast next hops and per-source broadcast trees,
 * both from one deterministic breadth-first search, so every peer with the same view of
 * the topology computes the same routes.
 *
 * Unicast: the shortest path by hop count; among equally short paths the one whose peer
 * keys, read from self outwards, are lexicographically smallest (BFS visiting neighbours
 * in key order finds exactly that path).
 *
 * Broadcast (reverse-path trees): in the tree of source S, a peer's parent is its own
 * unicast next hop towards S. A peer forwards S's broadcast to the neighbours whose next
 * hop towards S is itself, and accepts S's broadcast only from its own next hop towards
 * S. Every next hop is one hop closer to S, so with one shared view the parents form a
 * tree and each peer receives once; with differing views a receiver still accepts from
 * one parent only, so a broadcast can be lost (gossip repairs that) but never loop.
 *
 *        S            parent(x) = nextHop(x -> S)
 *       / \           children(p) = { neighbour n of p : nextHop(n -> S) = p }
 *      a   b
 *     / \
 *    c   d
 */

import type { PeerKey } from "./gossip-state.ts";

/** What a peer needs to forward traffic: computed from one topology snapshot, immutable. */
export interface Routes {
  readonly self: PeerKey;
  /** The neighbour to send to for `destination`; undefined for self and for unreachable peers. */
  nextHop(destination: PeerKey): PeerKey | undefined;
  /** Hops to `destination` (0 for self), or undefined when it is unreachable. */
  hops(destination: PeerKey): number | undefined;
  /**
   * The path to `destination` for status output: the peers after self, ending with
   * `destination` (empty for self), or undefined when it is unreachable.
   */
  via(destination: PeerKey): PeerKey[] | undefined;
  /** Every peer reachable from self, self included. */
  reachable(): ReadonlySet<PeerKey>;
  /** The neighbours self forwards a broadcast from `source` to (sorted; empty if none). */
  broadcastChildren(source: PeerKey): readonly PeerKey[];
  /**
   * The only neighbour self accepts a broadcast from `source` from: self's next hop
   * towards `source`. Undefined when self is the source or cannot reach it.
   */
  broadcastParent(source: PeerKey): PeerKey | undefined;
}

/** Breadth-first search result from one root, over peer indices. */
interface SearchTree {
  /** Hops from the root, -1 when unreachable. */
  readonly distance: Int32Array;
  /** Predecessor on the chosen path, -1 for the root and unreachable peers. */
  readonly parent: Int32Array;
  /** The root's neighbour that starts the chosen path, -1 for the root and unreachable peers. */
  readonly firstHop: Int32Array;
}

/** The symmetric graph in compressed rows: i's neighbours are targets[offsets[i]..offsets[i+1]). */
interface Graph {
  readonly keys: readonly PeerKey[];
  readonly indexOf: ReadonlyMap<PeerKey, number>;
  readonly offsets: Int32Array;
  readonly targets: Int32Array;
}

const UNREACHABLE = -1;

/**
 * Computes routes from `self` over `adjacency` (peer to the peers it lists as neighbours).
 * An edge counts only when both ends list each other: a half-open link is not a route.
 * Broadcast children are computed lazily, one extra search per neighbour, then cached.
 *
 * @example
 * ```ts
 * const routes = computeRoutes("A", new Map([["A", ["B"]], ["B", ["A", "C"]], ["C", ["B"]]]));
 * routes.nextHop("C"); // "B"
 * routes.via("C"); // ["B", "C"]
 * ```
 */
export function computeRoutes(
  self: PeerKey,
  adjacency: ReadonlyMap<PeerKey, readonly PeerKey[]>,
): Routes {
  const graph = symmetricGraph(self, adjacency);
  const selfIndex = graph.indexOf.get(self)!;
  const fromSelf = search(graph, selfIndex);
  let reachableSet: Set<PeerKey> | undefined;
  // Next hops of each neighbour of self, searched on first broadcast query.
  let neighbourTrees: Map<number, SearchTree> | undefined;

  const indexOfReachable = (peer: PeerKey): number | undefined => {
    const index = graph.indexOf.get(peer);
    return index === undefined || fromSelf.distance[index] === UNREACHABLE ? undefined : index;
  };

  const nextHop = (destination: PeerKey): PeerKey | undefined => {
    const index = indexOfReachable(destination);
    const hop = index === undefined ? UNREACHABLE : fromSelf.firstHop[index]!;
    return hop === UNREACHABLE ? undefined : graph.keys[hop];
  };

  return {
    self,
    nextHop,
    hops(destination) {
      const index = indexOfReachable(destination);
      return index === undefined ? undefined : fromSelf.distance[index];
    },
    via(destination) {
      let index = indexOfReachable(destination);
      if (index === undefined) return undefined;
      const path: PeerKey[] = [];
      for (; index !== selfIndex; index = fromSelf.parent[index]!) path.push(graph.keys[index]!);
      return path.reverse();
    },
    reachable() {
      if (reachableSet === undefined) {
        reachableSet = new Set();
        graph.keys.forEach((key, index) => {
          if (fromSelf.distance[index] !== UNREACHABLE) reachableSet!.add(key);
        });
      }
      return reachableSet;
    },
    broadcastChildren(source) {
      const sourceIndex = indexOfReachable(source);
      if (sourceIndex === undefined) return [];
      if (neighbourTrees === undefined) {
        neighbourTrees = new Map();
        for (let at = graph.offsets[selfIndex]!; at < graph.offsets[selfIndex + 1]!; at++) {
          const neighbour = graph.targets[at]!;
          neighbourTrees.set(neighbour, search(graph, neighbour));
        }
      }
      const children: PeerKey[] = [];
      // Map iteration follows insertion, which followed ascending index: children come sorted.
      for (const [neighbour, tree] of neighbourTrees) {
        if (neighbour !== sourceIndex && tree.firstHop[sourceIndex] === selfIndex) {
          children.push(graph.keys[neighbour]!);
        }
      }
      return children;
    },
    broadcastParent: nextHop,
  };
}

/** Indexes peers in sorted key order (so index order is key order) and keeps only mutual edges. */
function symmetricGraph(self: PeerKey, adjacency: ReadonlyMap<PeerKey, readonly PeerKey[]>): Graph {
  const keys = [...new Set([self, ...adjacency.keys()])].sort();
  const indexOf = new Map(keys.map((key, index) => [key, index]));
  const count = keys.length;
  // Directed edges as from * count + to; fine up to ~94 million peers before losing precision.
  const listed = new Set<number>();
  for (const [peer, neighbours] of adjacency) {
    const from = indexOf.get(peer)!;
    for (const neighbour of neighbours) {
      const to = indexOf.get(neighbour);
      if (to !== undefined && to !== from) listed.add(from * count + to);
    }
  }
  const rows: number[][] = keys.map(() => []);
  for (const edge of listed) {
    const from = Math.floor(edge / count);
    const to = edge - from * count;
    if (listed.has(to * count + from)) rows[from]!.push(to);
  }
  const offsets = new Int32Array(count + 1);
  const targets = new Int32Array(rows.reduce((sum, row) => sum + row.length, 0));
  let at = 0;
  rows.forEach((row, index) => {
    row.sort((a, b) => a - b);
    targets.set(row, at);
    at += row.length;
    offsets[index + 1] = at;
  });
  return { keys, indexOf, offsets, targets };
}

/** BFS from `root`, neighbours in ascending index order: the first path found is the smallest. */
function search(graph: Graph, root: number): SearchTree {
  const count = graph.keys.length;
  const distance = new Int32Array(count).fill(UNREACHABLE);
  const parent = new Int32Array(count).fill(UNREACHABLE);
  const firstHop = new Int32Array(count).fill(UNREACHABLE);
  const queue = new Int32Array(count);
  let head = 0;
  let tail = 0;
  distance[root] = 0;
  queue[tail++] = root;
  while (head < tail) {
    const at = queue[head++]!;
    const nextDistance = distance[at]! + 1;
    for (let edge = graph.offsets[at]!; edge < graph.offsets[at + 1]!; edge++) {
      const neighbour = graph.targets[edge]!;
      if (distance[neighbour] !== UNREACHABLE) continue;
      distance[neighbour] = nextDistance;
      parent[neighbour] = at;
      firstHop[neighbour] = at === root ? neighbour : firstHop[at]!;
      queue[tail++] = neighbour;
    }
  }
  return { distance, parent, firstHop };
}
