/**
 * Routes over the symmetric topology: unicast against a brute-force reference (every
 * shortest path enumerated; ours must be the smallest by key order), half-open edges,
 * determinism, and broadcast trees simulated from every source, with one shared view
 * (each peer exactly once) and with differing views (never twice).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { PeerKey } from "../../src/mesh/gossip-state.ts";
import { computeRoutes, type Routes } from "../../src/mesh/routes.ts";
import { createRandom, type Random } from "../../src/sim/index.ts";
import {
  type Adjacency,
  allShortestPaths,
  comparePaths,
  gridEdges,
  lineEdges,
  peerKeys,
  randomEdges,
  referenceDistances,
  ringEdges,
  simulateBroadcast,
  starEdges,
  undirected,
} from "../helpers/mesh-graphs.ts";

/** Asserts every unicast answer of `self`'s routes against the exhaustive reference. */
function assertMatchesReference(adjacency: Adjacency, self: PeerKey): void {
  const routes = computeRoutes(self, adjacency);
  const distances = referenceDistances(adjacency, self);
  assert.deepEqual([...routes.reachable()].sort(), [...distances.keys()].sort());
  for (const destination of adjacency.keys()) {
    const expected = distances.get(destination);
    assert.equal(routes.hops(destination), expected, `hops to ${destination}`);
    if (expected === undefined) {
      assert.equal(routes.via(destination), undefined);
      assert.equal(routes.nextHop(destination), undefined);
      continue;
    }
    const paths = allShortestPaths(adjacency, self, destination);
    const smallest = paths.sort(comparePaths)[0]!;
    assert.deepEqual(routes.via(destination), smallest, `path to ${destination}`);
    assert.equal(routes.nextHop(destination), smallest[0]);
  }
}

function routesOfAll(adjacency: Adjacency): Map<PeerKey, Routes> {
  return new Map([...adjacency.keys()].map((peer) => [peer, computeRoutes(peer, adjacency)]));
}

function shuffled<T>(random: Random, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const seedArbitrary = fc.integer({ min: 0, max: 2 ** 31 });

describe("computeRoutes: unicast", () => {
  test("on a line, the next hop is the neighbour towards the destination", () => {
    const keys = peerKeys(6);
    const routes = computeRoutes(keys[0]!, undirected(keys, lineEdges(6)));
    assert.equal(routes.nextHop(keys[5]!), keys[1]);
    assert.equal(routes.hops(keys[5]!), 5);
    assert.deepEqual(routes.via(keys[5]!), keys.slice(1));
    const middle = computeRoutes(keys[2]!, undirected(keys, lineEdges(6)));
    assert.equal(middle.nextHop(keys[0]!), keys[1]);
    assert.equal(middle.nextHop(keys[5]!), keys[3]);
  });

  test("self is at 0 hops with no next hop; unknown peers are unreachable", () => {
    const keys = peerKeys(3);
    const routes = computeRoutes(keys[0]!, undirected(keys, lineEdges(3)));
    assert.equal(routes.hops(keys[0]!), 0);
    assert.deepEqual(routes.via(keys[0]!), []);
    assert.equal(routes.nextHop(keys[0]!), undefined);
    assert.equal(routes.hops("nobody"), undefined);
    assert.equal(routes.nextHop("nobody"), undefined);
    assert.equal(routes.via("nobody"), undefined);
    assert.deepEqual([...computeRoutes("alone", new Map()).reachable()], ["alone"]);
  });

  test("line, ring, star and grid match the reference from every peer", () => {
    const shapes: [string, number, [number, number][]][] = [
      ["line", 7, lineEdges(7)],
      ["even ring", 8, ringEdges(8)],
      ["odd ring", 9, ringEdges(9)],
      ["star", 9, starEdges(9)],
      ["grid", 16, gridEdges(4, 4)],
      ["grid with a hole", 20, gridEdges(5, 4).filter(([a, b]) => a !== 7 && b !== 7)],
    ];
    for (const [name, count, edges] of shapes) {
      const keys = peerKeys(count);
      const adjacency = undirected(keys, edges);
      for (const self of keys) {
        assert.doesNotThrow(() => assertMatchesReference(adjacency, self), name);
      }
    }
  });

  test("random graphs match the reference: shortest, and the smallest path by key order", () => {
    fc.assert(
      fc.property(
        seedArbitrary,
        fc.integer({ min: 1, max: 30 }),
        fc.integer({ min: 1, max: 6 }),
        (seed, count, degree) => {
          const random = createRandom(seed);
          const keys = peerKeys(count);
          const adjacency = undirected(keys, randomEdges(random, count, degree));
          assertMatchesReference(adjacency, keys[random.int(count)]!);
        },
      ),
      { numRuns: 200 },
    );
  });

  test("half-open edges are not routes", () => {
    const [a, b, c, d] = peerKeys(4) as [PeerKey, PeerKey, PeerKey, PeerKey];
    // a-b mutual; b lists c but c does not list b; a lists d, which has no entry at all.
    const adjacency = new Map([
      [a, [b, d]],
      [b, [a, c]],
      [c, []],
    ]);
    const routes = computeRoutes(a, adjacency);
    assert.deepEqual([...routes.reachable()].sort(), [a, b].sort());
    assert.equal(routes.nextHop(c), undefined);
    assert.equal(routes.nextHop(d), undefined);
    assert.deepEqual(routes.broadcastChildren(a), [b]);
    // Once c lists b back, the edge counts.
    adjacency.set(c, [b]);
    assert.deepEqual(computeRoutes(a, adjacency).via(c), [b, c]);
  });

  test("the same topology in any order gives the same routes", () => {
    fc.assert(
      fc.property(seedArbitrary, (seed) => {
        const random = createRandom(seed);
        const keys = peerKeys(25);
        const adjacency = undirected(keys, randomEdges(random, 25, 4));
        const reordered: Adjacency = new Map(
          shuffled(random, [...adjacency]).map(([peer, list]) => [peer, shuffled(random, list)]),
        );
        const self = keys[random.int(25)]!;
        const one = computeRoutes(self, adjacency);
        const other = computeRoutes(self, reordered);
        for (const peer of keys) {
          assert.deepEqual(one.via(peer), other.via(peer));
          assert.deepEqual(one.broadcastChildren(peer), other.broadcastChildren(peer));
        }
      }),
      { numRuns: 50 },
    );
  });
});

describe("computeRoutes: broadcast", () => {
  test("the parent towards a source is the next hop towards it; children are sorted", () => {
    const keys = peerKeys(9);
    const adjacency = undirected(keys, starEdges(9));
    const hub = computeRoutes(keys[0]!, adjacency);
    assert.deepEqual(hub.broadcastChildren(keys[0]!), [...keys.slice(1)].sort());
    const others = keys.slice(1).filter((k) => k !== keys[3]);
    assert.deepEqual(hub.broadcastChildren(keys[3]!), others.sort());
    assert.equal(hub.broadcastParent(keys[0]!), undefined);
    const leaf = computeRoutes(keys[3]!, adjacency);
    assert.equal(leaf.broadcastParent(keys[5]!), keys[0]);
    assert.deepEqual(leaf.broadcastChildren(keys[5]!), []);
    assert.deepEqual(leaf.broadcastChildren("nobody"), []);
  });

  test("with one shared view every reachable peer receives each broadcast exactly once", () => {
    const shapes: [string, number, [number, number][]][] = [
      ["line", 6, lineEdges(6)],
      ["ring", 7, ringEdges(7)],
      ["grid", 20, gridEdges(5, 4)],
    ];
    const check = (name: string, count: number, edges: [number, number][]): void => {
      const keys = peerKeys(count);
      const adjacency = undirected(keys, edges);
      const routesOf = routesOfAll(adjacency);
      for (const source of keys) {
        const { accepted, refused } = simulateBroadcast(routesOf, source);
        const reachable = [...routesOf.get(source)!.reachable()].filter((p) => p !== source);
        assert.equal(refused, 0, `${name}: copies refused from ${source}`);
        assert.deepEqual([...accepted.keys()].sort(), reachable.sort(), name);
        assert.ok(
          [...accepted.values()].every((n) => n === 1),
          `${name}: duplicates`,
        );
      }
    };
    for (const [name, count, edges] of shapes) check(name, count, edges);
    fc.assert(
      fc.property(
        seedArbitrary,
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 6 }),
        (seed, count, degree) => {
          check(`seed ${seed}`, count, randomEdges(createRandom(seed), count, degree));
        },
      ),
      { numRuns: 60 },
    );
  });

  test("with differing views a broadcast is accepted at most once per peer (no loops)", () => {
    fc.assert(
      fc.property(
        seedArbitrary,
        fc.integer({ min: 2, max: 40 }),
        fc.integer({ min: 2, max: 6 }),
        (seed, count, degree) => {
          const random = createRandom(seed);
          const keys = peerKeys(count);
          const edges = randomEdges(random, count, degree);
          // The second view lost some links and gained others, as during gossip propagation.
          const changed = [
            ...edges.filter(() => random.int(4) !== 0),
            ...randomEdges(random, count, 1),
          ];
          const views = [undirected(keys, edges), undirected(keys, changed)];
          const routesOf = new Map(
            keys.map((peer) => [peer, computeRoutes(peer, views[random.int(2)]!)]),
          );
          for (const source of keys) {
            const { accepted } = simulateBroadcast(routesOf, source, count * count);
            for (const [peer, times] of accepted) {
              assert.equal(times, 1, `${peer} accepted ${times} copies from ${source}`);
            }
            assert.equal(accepted.has(source), false, "the source accepted its own broadcast");
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  // Speed is measured in bench/mesh.ts, never asserted here: this only runs the size.
  test("1,000 peers of degree 8: routes reach the graph and every source has a tree", () => {
    const random = createRandom(1000);
    const keys = peerKeys(1000);
    const adjacency = undirected(keys, randomEdges(random, 1000, 8));
    const routes = computeRoutes(keys[0]!, adjacency);
    let children = 0;
    for (const source of keys) children += routes.broadcastChildren(source).length;
    assert.ok(routes.reachable().size > 990);
    assert.ok(children > 0);
  });
});
