/**
 * The replicated topology: local publishing, the merge laws and convergence of replicas
 * (property tests on consistent entry sets), entries about self from earlier incarnations,
 * inconsistencies, forgetting that old versions cannot undo, and decoding that refuses
 * malformed items with `GossipRejected` only.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Decoder, Encoder } from "cbor-x";
import fc from "fast-check";
import { fromBase64, toBase64 } from "../../src/crypto/bytes.ts";
import { GossipRejected, type PeerKey } from "../../src/mesh/gossip-state.ts";
import {
  MAX_CONNECTIONS,
  Topology,
  type TopologyDelta,
  type TopologyEntry,
  type TopologyOptions,
} from "../../src/mesh/topology.ts";
import { createRandom, VirtualClock } from "../../src/sim/index.ts";
import { peerKey, peerKeys } from "../helpers/mesh-graphs.ts";

const KEYS = peerKeys(8);
const SELF = KEYS[0]!;
/** Peers whose entries the property tests generate; SELF only observes. */
const POOL = KEYS.slice(1);

function makeTopology(options: Partial<TopologyOptions> = {}): Topology {
  return new Topology({
    self: SELF,
    initialVersion: 1,
    nickname: "self",
    clock: new VirtualClock(),
    ...options,
  });
}

/**
 * The one entry peer `POOL[index]` publishes at `version`: content is a function of both,
 * as when each peer behaves, so any set of these entries is consistent.
 */
function entryOf(index: number, version: number): TopologyEntry {
  const peer = POOL[index]!;
  const connections = KEYS.filter(
    (key, j) => key !== peer && (index * 7 + j * 3 + version) % 3 !== 0,
  );
  const endpoints = [{ address: `10.${index}.0.${version % 256}`, port: 51820 + index }];
  if (version % 2 === 1) endpoints.push({ address: `fd00::${index + 1}:${version}`, port: 1 });
  return {
    peer,
    version,
    nickname: `peer ${index} v${version}`,
    endpoints,
    connections: connections.sort(),
  };
}

function deltaOf(pairs: readonly (readonly [number, number])[]): TopologyDelta {
  const delta = new Map<PeerKey, TopologyEntry>();
  for (const [index, version] of pairs) {
    const entry = entryOf(index, version);
    if ((delta.get(entry.peer)?.version ?? -1) < version) delta.set(entry.peer, entry);
  }
  return delta;
}

const pairsArbitrary = fc.array(
  fc.tuple(fc.integer({ min: 0, max: POOL.length - 1 }), fc.integer({ min: 0, max: 5 })),
  { maxLength: 12 },
);

/** Everything a replica holds, comparable with deepEqual. */
function stateOf(topology: Topology): unknown {
  return topology.peers().map((peer) => {
    const { version, nickname, endpoints, connections } = topology.entry(peer)!;
    return [peer, version, nickname, endpoints.map((e) => ({ ...e })), [...connections]];
  });
}

/** The union of deltas as one delta, through a scratch replica. */
function union(...deltas: TopologyDelta[]): TopologyDelta {
  const scratch = makeTopology();
  for (const delta of deltas) scratch.merge(delta, SELF);
  const full = new Map(scratch.deltaFor(new Map()));
  full.delete(SELF);
  return full;
}

// As the gossip wire configures cbor-x: plain byte strings, copies on decode.
const cborEncoder = new Encoder({ useRecords: false, tagUint8Array: false });
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true, copyBuffers: true });

/** A delta through encode, CBOR bytes and decode, as it travels between two replicas. */
function overTheWire(from: Topology, to: Topology, delta: TopologyDelta): TopologyDelta {
  const items = from.encode(delta, 1200);
  const decoded = cborDecoder.decode(cborEncoder.encode(items)) as unknown[];
  return to.decode(decoded);
}

describe("Topology: local entry", () => {
  test("setLocal raises the version only on a real change and returns the delta to broadcast", () => {
    const topology = makeTopology({ initialVersion: 10 });
    const generation = topology.generation;
    assert.equal(topology.setLocal({ nickname: "self" }), null);
    assert.equal(topology.generation, generation);
    const delta = topology.setLocal({
      endpoints: [
        { address: "2001:DB8:0::1", port: 51820 },
        { address: "192.0.2.1", port: 1 },
        { address: "2001:db8::1", port: 51820 },
      ],
      connections: [KEYS[3]!, KEYS[1]!, KEYS[3]!],
    });
    const own = topology.entry(SELF)!;
    assert.deepEqual([...delta!.values()], [own]);
    assert.equal(own.version, 11);
    assert.equal(topology.generation, generation + 1);
    // Canonical address text and duplicates dropped: every replica compares the same text.
    assert.deepEqual(own.endpoints, [
      { address: "2001:db8::1", port: 51820 },
      { address: "192.0.2.1", port: 1 },
    ]);
    assert.deepEqual(own.connections, [KEYS[1]!, KEYS[3]!].sort());
    assert.equal(topology.setLocal({ connections: [KEYS[1]!, KEYS[3]!] }), null);
    assert.equal(topology.entry(SELF)!.version, 11);
    assert.ok(Object.isFrozen(own) && Object.isFrozen(own.connections));
  });

  test("setLocal refuses what no peer would accept", () => {
    const topology = makeTopology();
    const bad: Parameters<Topology["setLocal"]>[0][] = [
      { nickname: "x".repeat(65) },
      { nickname: "é".repeat(33) },
      { nickname: "tab\there" },
      { endpoints: [{ address: "example.com", port: 1 }] },
      { endpoints: [{ address: "10.0.0.1", port: 0 }] },
      { endpoints: Array.from({ length: 17 }, (_, i) => ({ address: `10.0.0.${i}`, port: 1 })) },
      { connections: [SELF] },
      { connections: ["not a key"] },
    ];
    for (const change of bad) assert.throws(() => topology.setLocal(change), RangeError);
    assert.equal(topology.entry(SELF)!.version, 1);
    assert.doesNotThrow(() => topology.setLocal({ nickname: "é".repeat(32) }));
  });

  test("the constructor refuses a self that is not a canonical 32-byte base64 key", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.integer({ min: 0, max: 43 }),
        fc.constantFrom(
          ..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-".split(""),
        ),
        (bytes, at, character) => {
          const text = toBase64(bytes).slice(0, at) + character + toBase64(bytes).slice(at + 1);
          let canonical: boolean;
          try {
            canonical = fromBase64(text).length === 32;
          } catch {
            canonical = false;
          }
          const build = () => makeTopology({ self: text });
          if (canonical) assert.doesNotThrow(build);
          else assert.throws(build, TypeError);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe("Topology: merge", () => {
  test("a higher version wins and merge returns only what changed", () => {
    const topology = makeTopology();
    const first = topology.merge(deltaOf([[0, 2]]), KEYS[1]!);
    assert.deepEqual([...first!.values()], [entryOf(0, 2)]);
    assert.equal(topology.merge(deltaOf([[0, 1]]), KEYS[1]!), null);
    assert.equal(topology.merge(deltaOf([[0, 2]]), KEYS[1]!), null);
    const changed = topology.merge(
      deltaOf([
        [0, 3],
        [1, 0],
      ]),
      KEYS[1]!,
    );
    assert.deepEqual([...changed!.keys()].sort(), [POOL[0]!, POOL[1]!].sort());
    assert.equal(topology.entry(POOL[0]!)!.version, 3);
    assert.equal(topology.counters.mergedEntries, 3);
  });

  test("merge is commutative, associative and idempotent on consistent entry sets", () => {
    fc.assert(
      fc.property(pairsArbitrary, pairsArbitrary, pairsArbitrary, (a, b, c) => {
        const [deltaA, deltaB, deltaC] = [deltaOf(a), deltaOf(b), deltaOf(c)];
        const ab = makeTopology();
        ab.merge(deltaA, SELF);
        ab.merge(deltaB, SELF);
        const ba = makeTopology();
        ba.merge(deltaB, SELF);
        ba.merge(deltaA, SELF);
        assert.deepEqual(stateOf(ab), stateOf(ba));
        assert.deepEqual(ab.digest(), ba.digest());

        const left = makeTopology();
        left.merge(union(deltaA, deltaB), SELF);
        left.merge(deltaC, SELF);
        const right = makeTopology();
        right.merge(deltaA, SELF);
        right.merge(union(deltaB, deltaC), SELF);
        assert.deepEqual(stateOf(left), stateOf(right));

        const before = stateOf(ab);
        const generation = ab.generation;
        assert.equal(ab.merge(deltaA, SELF), null);
        assert.equal(ab.merge(deltaB, SELF), null);
        assert.deepEqual(stateOf(ab), before);
        assert.equal(ab.generation, generation);
      }),
      { numRuns: 300 },
    );
  });

  test("what merge returns brings a replica with the old state to the new one", () => {
    fc.assert(
      fc.property(pairsArbitrary, pairsArbitrary, (a, b) => {
        const replica = makeTopology();
        const follower = makeTopology();
        replica.merge(deltaOf(a), SELF);
        follower.merge(deltaOf(a), SELF);
        const changed = replica.merge(deltaOf(b), SELF);
        if (changed !== null) follower.merge(changed, SELF);
        assert.deepEqual(stateOf(follower), stateOf(replica));
      }),
      { numRuns: 200 },
    );
  });

  test("replicas exchanging deltaFor(summary) in any order, with loss and duplicates, converge", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 }),
        fc.integer({ min: 2, max: 7 }),
        (seed, count) => {
          const random = createRandom(seed);
          const replicas = KEYS.slice(0, count).map(
            (self, i) =>
              new Topology({
                self,
                initialVersion: i * 5,
                nickname: `r${i}`,
                clock: new VirtualClock(),
              }),
          );
          const exchange = (from: Topology, to: Topology, wire: boolean): boolean => {
            const delta = from.deltaFor(to.summary());
            if (delta === null) return false;
            return to.merge(wire ? overTheWire(from, to, delta) : delta, SELF) !== null;
          };
          for (let step = 0; step < 60; step++) {
            const index = random.int(count);
            const replica = replicas[index]!;
            if (random.int(3) === 0) {
              const others = KEYS.slice(0, count).filter((_, j) => j !== index);
              replica.setLocal({ connections: others.filter(() => random.int(2) === 0) });
              continue;
            }
            const other = replicas[random.int(count)]!;
            if (other === replica || random.int(5) === 0) continue; // lost
            exchange(replica, other, random.int(2) === 0);
            if (random.int(4) === 0) exchange(replica, other, false); // duplicated
          }
          // Anti-entropy until quiet: every pair, both ways.
          for (let changed = true; changed; ) {
            changed = false;
            for (const a of replicas)
              for (const b of replicas) if (a !== b && exchange(a, b, true)) changed = true;
          }
          const digests = replicas.map((r) => toBase64(r.digest()));
          assert.equal(new Set(digests).size, 1, `seed ${seed}`);
          for (const replica of replicas) assert.deepEqual(stateOf(replica), stateOf(replicas[0]!));
          assert.equal(replicas[0]!.deltaFor(replicas[1]!.summary()), null);
        },
      ),
      { numRuns: 100 },
    );
  });

  test("an equal version with other content is an inconsistency: ours is kept, no flip-flop", () => {
    const topology = makeTopology();
    topology.merge(deltaOf([[0, 4]]), KEYS[1]!);
    const impostor = { ...entryOf(0, 4), nickname: "other incarnation" };
    for (let i = 0; i < 3; i++) {
      assert.equal(topology.merge(new Map([[impostor.peer, impostor]]), KEYS[2]!), null);
      assert.equal(topology.entry(POOL[0]!)!.nickname, entryOf(0, 4).nickname);
    }
    assert.equal(topology.counters.inconsistencies, 3);
  });

  test("an entry about self at or above our version makes us republish above it", () => {
    const topology = makeTopology({ initialVersion: 5 });
    topology.setLocal({ connections: [KEYS[1]!] });
    const own = topology.entry(SELF)!;
    // Our own entry echoed back changes nothing.
    assert.equal(topology.merge(new Map([[SELF, own]]), KEYS[1]!), null);
    const older = { ...own, version: 3, nickname: "old" };
    assert.equal(topology.merge(new Map([[SELF, older]]), KEYS[1]!), null);

    // An earlier incarnation published version 9 before a restart with a lower clock.
    const earlier = { ...own, version: 9, nickname: "before restart", connections: [] };
    const generation = topology.generation;
    const changed = topology.merge(new Map([[SELF, earlier], ...deltaOf([[1, 1]])]), KEYS[1]!);
    const republished = topology.entry(SELF)!;
    assert.equal(republished.version, 10);
    assert.equal(republished.nickname, "self");
    assert.deepEqual(republished.connections, [KEYS[1]!]);
    assert.deepEqual(changed!.get(SELF), republished);
    assert.ok(changed!.has(POOL[1]!));
    assert.ok(topology.generation > generation);

    // Same version, other content: also an earlier incarnation.
    const twin = { ...republished, nickname: "twin" };
    assert.equal(topology.merge(new Map([[SELF, twin]]), KEYS[1]!)!.get(SELF)!.version, 11);
    assert.equal(topology.counters.reincarnations, 2);
    assert.equal(topology.counters.mergedEntries, 1);
  });

  test("a delta with one invalid entry is refused whole, nothing applied", () => {
    const topology = makeTopology();
    const generation = topology.generation;
    const invalid: TopologyEntry[] = [
      { ...entryOf(1, 1), version: -1 },
      { ...entryOf(1, 1), version: 1.5 },
      { ...entryOf(1, 1), connections: [...entryOf(1, 1).connections].reverse() },
      { ...entryOf(1, 1), connections: [POOL[1]!] },
      { ...entryOf(1, 1), endpoints: [{ address: "10.0.0.01", port: 1 }] },
      { ...entryOf(1, 1), endpoints: [{ address: "2001:DB8::1", port: 1 }] },
      { ...entryOf(1, 1), nickname: "\u0000" },
      { ...entryOf(1, 1), peer: "AAAA" },
    ];
    for (const bad of invalid) {
      const delta = new Map([
        ...deltaOf([[0, 1]]),
        [bad.peer === "AAAA" ? POOL[1]! : bad.peer, bad],
      ]);
      assert.throws(() => topology.merge(delta, KEYS[2]!), GossipRejected);
    }
    assert.equal(topology.entry(POOL[0]!), undefined);
    assert.equal(topology.generation, generation);
    assert.equal(topology.counters.rejectedDeltas, invalid.length);
  });

  test("adjacency keeps only edges both ends list", () => {
    const topology = makeTopology();
    const [a, b, c] = [POOL[0]!, POOL[1]!, POOL[2]!];
    const entry = (peer: PeerKey, connections: PeerKey[]): TopologyEntry => ({
      peer,
      version: 1,
      nickname: "",
      endpoints: [],
      connections: connections.sort(),
    });
    topology.setLocal({ connections: [a, c] });
    topology.merge(
      new Map([
        [a, entry(a, [SELF, b])],
        [b, entry(b, [c])],
        [c, entry(c, [b])],
      ]),
      a,
    );
    const adjacency = topology.adjacency();
    assert.deepEqual(adjacency.get(SELF), [a]);
    assert.deepEqual(adjacency.get(a), [SELF]);
    assert.deepEqual(adjacency.get(b), [c]);
    assert.deepEqual(adjacency.get(c), [b]);
    assert.equal(topology.adjacency(), adjacency); // cached until the next change
  });
});

describe("Topology: forgetting", () => {
  /** SELF connected to POOL[0]; POOL[1] known but unreachable. */
  function withStranger(options: Partial<TopologyOptions> = {}): Topology {
    const topology = makeTopology(options);
    topology.setLocal({ connections: [POOL[0]!] });
    const neighbour = {
      peer: POOL[0]!,
      version: 1,
      nickname: "",
      endpoints: [],
      connections: [SELF],
    };
    topology.merge(new Map([[POOL[0]!, neighbour], ...deltaOf([[1, 3]])]), POOL[0]!);
    return topology;
  }

  test("a peer unreachable for forgetAfterMs is forgotten; reachable ones never", () => {
    const topology = withStranger({ forgetAfterMs: 60_000 });
    assert.deepEqual(topology.forgetUnreachable(1_000), []);
    assert.deepEqual(topology.forgetUnreachable(60_999), []);
    const generation = topology.generation;
    assert.deepEqual(topology.forgetUnreachable(61_000), [POOL[1]!]);
    assert.equal(topology.entry(POOL[1]!), undefined);
    assert.ok(topology.entry(POOL[0]!));
    assert.equal(topology.generation, generation + 1);
    assert.equal(topology.counters.forgottenPeers, 1);
    assert.deepEqual(topology.forgetUnreachable(1_000_000), []);
  });

  test("the clock starts again when a peer becomes reachable in between", () => {
    const topology = withStranger({ forgetAfterMs: 10_000 });
    topology.forgetUnreachable(0);
    // POOL[1] connects to us, then drops again.
    topology.setLocal({ connections: [POOL[0]!, POOL[1]!] });
    const back = { ...entryOf(1, 4), connections: [SELF] };
    topology.merge(new Map([[back.peer, back]]), POOL[1]!);
    assert.deepEqual(topology.forgetUnreachable(5_000), []);
    topology.setLocal({ connections: [POOL[0]!] });
    assert.deepEqual(topology.forgetUnreachable(9_000), []);
    assert.deepEqual(topology.forgetUnreachable(18_999), []);
    assert.deepEqual(topology.forgetUnreachable(19_000), [POOL[1]!]);
  });

  test("an old version cannot undo forgetting; a newer one (the peer came back) can", () => {
    fc.assert(
      fc.property(pairsArbitrary, pairsArbitrary, (known, offered) => {
        const topology = makeTopology({ forgetAfterMs: 0 });
        topology.merge(deltaOf(known), SELF);
        const versions = new Map(topology.peers().map((p) => [p, topology.entry(p)!.version]));
        topology.forgetUnreachable(0); // alone: nobody is reachable, all forgotten
        assert.deepEqual(topology.peers(), [SELF]);
        const changed = topology.merge(deltaOf(offered), SELF);
        for (const [peer, entry] of deltaOf(offered)) {
          const forgotten = versions.get(peer);
          const expected = forgotten === undefined || entry.version > forgotten;
          assert.equal(topology.entry(peer) !== undefined, expected, `${peer} v${entry.version}`);
          assert.equal(changed?.has(peer) ?? false, expected);
        }
      }),
      { numRuns: 300 },
    );
  });

  test("a forgotten version is taken back when it makes the peer reachable (a healed partition)", () => {
    const topology = withStranger({ forgetAfterMs: 0 });
    assert.deepEqual(topology.forgetUnreachable(0), [POOL[1]!]);
    const stranger = { ...entryOf(1, 3), connections: [POOL[0]!] };
    // Offered alone it stays forgotten: its only link is half-open.
    assert.equal(topology.merge(new Map([[stranger.peer, stranger]]), POOL[0]!), null);
    assert.equal(topology.counters.resurrectionsRefused, 1);
    const neighbour = {
      peer: POOL[0]!,
      version: 2,
      nickname: "",
      endpoints: [],
      connections: [SELF, POOL[1]!].sort(),
    };
    const changed = topology.merge(
      new Map([
        [stranger.peer, stranger],
        [neighbour.peer, neighbour],
      ]),
      POOL[0]!,
    );
    assert.deepEqual([...changed!.keys()].sort(), [POOL[0]!, POOL[1]!].sort());
    assert.ok(topology.entry(POOL[1]!));
  });

  test("forgotten versions are remembered for rememberForgottenMs only", () => {
    const topology = withStranger({ forgetAfterMs: 0, rememberForgottenMs: 30_000 });
    topology.forgetUnreachable(0);
    assert.equal(topology.merge(deltaOf([[1, 3]]), SELF), null);
    topology.forgetUnreachable(30_000);
    assert.ok(topology.merge(deltaOf([[1, 3]]), SELF));
  });
});

describe("Topology: encode and decode", () => {
  test("items survive CBOR and decode to equal entries", () => {
    fc.assert(
      fc.property(pairsArbitrary, (pairs) => {
        const sender = makeTopology();
        const receiver = makeTopology({ self: KEYS[7]! });
        const delta = deltaOf(pairs);
        const decoded = overTheWire(sender, receiver, delta);
        assert.deepEqual([...decoded.values()], [...delta.values()]);
        // Any subset of the items is a valid delta.
        const items = sender.encode(delta, 1200).filter((_, i) => i % 2 === 0);
        assert.equal(receiver.decode(items).size, items.length);
      }),
      { numRuns: 200 },
    );
  });

  test("a peer with 4096 connections is one item over the budget that still decodes", () => {
    const topology = makeTopology();
    const connections = Array.from({ length: MAX_CONNECTIONS }, (_, i) => peerKey(100 + i)).sort();
    const big = { peer: POOL[0]!, version: 1, nickname: "hub", endpoints: [], connections };
    const items = topology.encode(new Map([[big.peer, big]]), 1200);
    assert.equal(items.length, 1);
    const bytes = cborEncoder.encode(items[0]);
    assert.ok(bytes.length > 131_000, `${bytes.length} bytes`);
    assert.deepEqual(topology.decode(items).get(big.peer), big);
    const tooMany = [...connections, peerKey(99_999)].sort();
    const over = topology.encode(new Map([[big.peer, { ...big, connections: tooMany }]]), 1200);
    assert.throws(() => topology.decode(over), GossipRejected);
  });

  test("decode refuses each kind of malformed field", () => {
    const topology = makeTopology();
    const valid = topology.encode(deltaOf([[0, 1]]), 1200)[0] as unknown[];
    const key = (n: number) => fromBase64(peerKey(n));
    const twoKeys = [peerKey(1), peerKey(2)].sort().map((k) => fromBase64(k));
    const swapped = new Uint8Array([...twoKeys[1]!, ...twoKeys[0]!]);
    const fieldCases: [number, unknown][] = [
      [0, new Uint8Array(31)],
      [0, toBase64(key(1))],
      [1, -1],
      [1, 1.5],
      [1, 2 ** 53],
      [1, 10n],
      [1, "1"],
      [2, "x".repeat(65)],
      [2, "\u0007"],
      [2, "\ud800"],
      [2, 5],
      [3, [[new Uint8Array(5), 1]]],
      [3, [[new Uint8Array(4), 0]]],
      [3, [[new Uint8Array(4), 65_536]]],
      [3, [[new Uint8Array(4), 1, 2]]],
      [
        3,
        [
          [new Uint8Array(4), 1],
          [new Uint8Array(4), 1],
        ],
      ],
      [3, Array.from({ length: 17 }, (_, i) => [new Uint8Array([10, 0, 0, i]), 1])],
      [3, { length: 0 }],
      [4, new Uint8Array(33)],
      [4, swapped],
      [4, new Uint8Array([...twoKeys[0]!, ...twoKeys[0]!])],
      [4, valid[0]],
      [4, [peerKey(1)]],
    ];
    for (const [field, value] of fieldCases) {
      const item = [...valid];
      item[field] = value;
      assert.throws(
        () => topology.decode([item]),
        GossipRejected,
        `field ${field}: ${String(value)}`,
      );
    }
    for (const items of [
      [valid.slice(0, 4)],
      [[...valid, 0]],
      [{}],
      [null],
      "items" as unknown as unknown[],
    ]) {
      assert.throws(() => topology.decode(items), GossipRejected);
    }
    // Two items that disagree on one version contradict each other.
    const other = [...valid];
    other[2] = "someone else";
    assert.throws(() => topology.decode([valid, other]), GossipRejected);
    assert.equal(topology.decode([valid, valid]).size, 1);
    assert.equal(topology.counters.rejectedDeltas, fieldCases.length + 6);
  });

  test("decode of random values throws nothing but GossipRejected, and merge takes what it accepts", () => {
    const valid = makeTopology().encode(
      deltaOf([
        [0, 1],
        [1, 2],
        [2, 3],
      ]),
      1200,
    ) as unknown[][];
    const mutated = fc
      .tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 5 }), fc.anything())
      .map(([which, field, value]) => {
        const item = [...valid[which]!];
        item[field] = value;
        return [item];
      });
    const cborish = fc.array(
      fc.oneof(
        fc.anything(),
        fc.tuple(
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          fc.nat(),
          fc.string(),
          fc.array(fc.tuple(fc.uint8Array({ maxLength: 17 }), fc.integer())),
          fc.uint8Array({ maxLength: 100 }),
        ),
      ),
      { maxLength: 4 },
    );
    fc.assert(
      fc.property(fc.oneof(cborish, mutated, fc.anything()), (items) => {
        const topology = makeTopology();
        let delta: TopologyDelta;
        try {
          delta = topology.decode(items as unknown[]);
        } catch (error) {
          assert.ok(error instanceof GossipRejected, String(error));
          return;
        }
        assert.doesNotThrow(() => topology.merge(delta, SELF));
      }),
      { numRuns: 3000 },
    );
  });

  test("digest and summary follow the versions", () => {
    const a = makeTopology();
    const b = makeTopology();
    assert.deepEqual(a.digest(), b.digest());
    a.merge(deltaOf([[0, 1]]), SELF);
    assert.notDeepEqual(a.digest(), b.digest());
    assert.deepEqual(
      [...a.summary()].sort(),
      [
        [POOL[0]!, 1],
        [SELF, 1],
      ].sort(),
    );
    b.merge(a.deltaFor(b.summary())!, SELF);
    assert.deepEqual(a.digest(), b.digest());
    assert.equal(a.deltaFor(b.summary()), null);
    assert.equal(a.deltaFor(new Map())!.size, 2);
  });
});
