/**
 * The DNS entry CRDT: merge laws, convergence under any delivery order, duplication and
 * loss (anti-entropy repairing the loss), tombstones that never resurrect, and decode.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decode as cborDecode, encode as cborEncode } from "cbor-x";
import fc from "fast-check";
import { type DnsDelta, DnsEntries } from "../../src/dns/entries.ts";
import { normaliseName } from "../../src/dns/names.ts";
import { GossipRejected } from "../../src/mesh/gossip-state.ts";
import { VirtualClock } from "../../src/sim/index.ts";

const PEERS = ["A", "B", "C"].map((c) => `${c.repeat(42)}A=`);
const NAMES = ["web.weft.internal", "db.weft.internal", "Web.Weft.Internal."];
const ADDRESSES = ["10.40.0.1", "10.40.0.2", "fd00::1", "fd00:0::2"];

type Op = { peer: number; kind: "add" | "remove"; name: number; address: number };
const opArb: fc.Arbitrary<Op> = fc.record({
  peer: fc.integer({ min: 0, max: PEERS.length - 1 }),
  kind: fc.constantFrom("add" as const, "remove" as const),
  name: fc.integer({ min: 0, max: NAMES.length - 1 }),
  address: fc.integer({ min: 0, max: ADDRESSES.length - 1 }),
});

function replica(peer: number, clock = new VirtualClock()): DnsEntries {
  return new DnsEntries({ self: PEERS[peer]!, clock });
}

/** Runs `ops` on one replica per peer; returns the replicas and every delta made, in order. */
function history(ops: Op[]): { owners: DnsEntries[]; deltas: DnsDelta[] } {
  const owners = PEERS.map((_, i) => replica(i));
  const deltas: DnsDelta[] = [];
  for (const op of ops) {
    const owner = owners[op.peer]!;
    const name = NAMES[op.name]!;
    const address = ADDRESSES[op.address]!;
    const delta = op.kind === "add" ? owner.add(name, address) : owner.remove(name, address);
    if (delta) deltas.push(delta);
  }
  return { owners, deltas };
}

/** What lookups see: live records, sorted. */
function live(state: DnsEntries): string[] {
  return state
    .list()
    .filter((e) => !e.deleted)
    .map((e) => `${e.owner.slice(0, 1)} ${e.name} ${e.address}`)
    .sort();
}

/** Everything held, tombstones included, plus the summary: equal only for equal states. */
function full(state: DnsEntries): string {
  const entries = state
    .list()
    .map((e) => `${e.owner.slice(0, 1)} ${e.name} ${e.address} ${e.version} ${e.deleted}`)
    .sort();
  const summary = [...state.summary()].sort().map(([k, v]) => `${k.slice(0, 1)}=${v}`);
  return JSON.stringify({ entries, summary, digest: [...state.digest()] });
}

/** Through the encoder, CBOR and the decoder, as the gossip engine carries it. */
function wire(state: DnsEntries, delta: DnsDelta, maxItemBytes = 200): DnsDelta {
  const items = state.encode(delta, maxItemBytes);
  return state.decode(cborDecode(cborEncode(items)) as unknown[]);
}

/** Anti-entropy until quiet: each pair exchanges deltaFor(summary) both ways. */
function antiEntropy(replicas: DnsEntries[]): void {
  for (let round = 0; round < 4; round++) {
    for (const a of replicas) {
      for (const b of replicas) {
        if (a === b) continue;
        const delta = a.deltaFor(b.summary());
        if (delta) b.merge(wire(a, delta), "x");
      }
    }
  }
}

describe("DNS entries: local changes", () => {
  it("normalises names and addresses, keeps several addresses and owners per name", () => {
    const a = replica(0);
    const b = replica(1);
    b.merge(a.add("Web.Weft.Internal", "10.40.0.1")!, PEERS[0]!);
    b.add("web.weft.internal.", "10.40.0.2");
    b.add("web.weft.internal.", "10.40.0.1");
    assert.equal(a.add("WEB.weft.internal.", "10.40.0.1"), null, "already registered");
    assert.equal(b.lookup("WEB.WEFT.INTERNAL").length, 3);
    assert.deepEqual(b.lookup("web.weft.internal")[0], {
      name: "web.weft.internal.",
      address: "10.40.0.1",
      owner: PEERS[0],
    });
    a.add("six.weft.internal", "FD00:0:0::1");
    assert.equal(a.lookup("six.weft.internal")[0]?.address, "fd00::1");
    assert.deepEqual(
      a.reverseLookup("fd00:0::1").map((r) => r.name),
      ["six.weft.internal."],
    );
    assert.throws(() => a.add("bad..name", "10.0.0.1"), RangeError);
    assert.throws(() => a.add("ok.name", "10.0.0.256"), RangeError);
    assert.throws(() => a.add(`${"x".repeat(64)}.name`, "10.0.0.1"), RangeError);
  });

  it("validates names per RFC 1035", () => {
    assert.equal(normaliseName("A.b.C"), "a.b.c.");
    assert.equal(normaliseName("xn--bcher-kva.example"), "xn--bcher-kva.example.");
    assert.equal(normaliseName("Bücher.example"), "bücher.example.", "non-ASCII left as is");
    assert.equal(normaliseName(`${"a".repeat(63)}.b`), `${"a".repeat(63)}.b.`);
    assert.equal(normaliseName(`${"a".repeat(64)}.b`), undefined);
    const label = "a".repeat(63);
    const name253 = `${label}.${label}.${label}.${"a".repeat(61)}`;
    assert.equal(name253.length, 253);
    assert.equal(normaliseName(name253), `${name253}.`);
    assert.equal(normaliseName(`${name253}a`), undefined);
    for (const bad of ["", ".", "a..b", "a b", "a\\.b", ".a"])
      assert.equal(normaliseName(bad), undefined, bad);
  });

  it("removePeer deletes its entries and ignores them from lagging replicas", () => {
    const a = replica(0);
    const b = replica(1);
    const c = replica(2);
    const delta = a.add("web.weft.internal", "10.40.0.1")!;
    b.merge(delta, PEERS[0]!);
    c.merge(delta, PEERS[0]!);
    assert.equal(b.removePeer(PEERS[0]!), true);
    assert.deepEqual(b.lookup("web.weft.internal"), []);
    assert.equal(b.merge(c.deltaFor(new Map())!, PEERS[2]!), null);
    assert.deepEqual(b.lookup("web.weft.internal"), []);
    assert.equal(b.summary().has(PEERS[0]!), false);
  });
});

describe("DNS entries: merge laws (fast-check)", () => {
  // States of replicas that saw different subsets of the same history: a pool of items
  // (every broadcast delta, and each owner's final state cut into one-entry claims), a
  // random subset of it merged into a replica, then that replica's full state.
  const statesArb = fc
    .tuple(
      fc.array(opArb, { maxLength: 30 }),
      fc.array(fc.array(fc.boolean(), { minLength: 80, maxLength: 80 }), {
        minLength: 3,
        maxLength: 3,
      }),
    )
    .map(([ops, masks]) => {
      const { owners, deltas } = history(ops);
      const codec = owners[0]!;
      const pool = [
        ...deltas.flatMap((d) => codec.encode(d, 1)),
        ...owners.flatMap((o) => codec.encode(o.deltaFor(new Map()) ?? { chunks: [] }, 1)),
      ];
      return masks.map((mask) => {
        const r = replica(0);
        pool.forEach((item, i) => {
          if (mask[i] ?? true) r.merge(codec.decode([item]), "x");
        });
        return r.deltaFor(new Map()) ?? { chunks: [] };
      });
    });

  function mergeAll(...deltas: DnsDelta[]): string {
    const r = replica(1);
    for (const d of deltas) r.merge(d, "x");
    return full(r);
  }

  it("is commutative, associative and idempotent", () => {
    fc.assert(
      fc.property(statesArb, ([x, y, z]) => {
        assert.equal(mergeAll(x!, y!), mergeAll(y!, x!));
        assert.equal(mergeAll(x!, y!, z!), mergeAll(y!, z!, x!));
        assert.equal(mergeAll(x!, mergeAll0(y!, z!)), mergeAll(x!, y!, z!));
        assert.equal(mergeAll(x!, x!), mergeAll(x!));
      }),
      { numRuns: 300 },
    );
  });

  /** y merged with z as one state, then as a full-state delta. */
  function mergeAll0(y: DnsDelta, z: DnsDelta): DnsDelta {
    const r = replica(1);
    r.merge(y, "x");
    r.merge(z, "x");
    return r.deltaFor(new Map()) ?? { chunks: [] };
  }

  it("a second merge of the same delta changes nothing", () => {
    fc.assert(
      fc.property(statesArb, ([x]) => {
        const r = replica(1);
        r.merge(x!, "x");
        assert.equal(r.merge(x!, "x"), null);
      }),
      { numRuns: 200 },
    );
  });
});

describe("DNS entries: convergence (fast-check)", () => {
  it("replicas converge under any order, duplication and loss, once anti-entropy runs", () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 40 }),
        fc.array(
          fc.tuple(fc.nat(), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 3 })),
          { maxLength: 120 },
        ),
        (ops, deliveries) => {
          const { owners, deltas } = history(ops);
          const receivers = [replica(0), replica(1), replica(2)];
          // Each delivery: delta #n to receiver r, 0 copies (lost) to 3 (duplicated).
          for (const [n, r, copies] of deliveries) {
            if (deltas.length === 0) break;
            const delta = deltas[n % deltas.length]!;
            for (let i = 0; i < copies; i++) receivers[r]!.merge(wire(owners[0]!, delta), "x");
          }
          // Before anti-entropy nothing is promised; after it, all agree with the owners.
          const all = [...owners, ...receivers];
          antiEntropy(all);
          const expected = live(owners[0]!);
          for (const r of all) assert.deepEqual(live(r), expected);
          const fullExpected = full(all[0]!);
          for (const r of all) assert.equal(full(r), fullExpected);
          // And the union of the owners' own views is what everyone sees.
          const union = owners.flatMap((o, i) =>
            live(o).filter((l) => l.startsWith(PEERS[i]!.slice(0, 1))),
          );
          assert.deepEqual(expected, union.sort());
        },
      ),
      { numRuns: 200 },
    );
  });

  it("a claim drops held entries of its range that it does not list (they are dead)", () => {
    const owner = replica(0);
    owner.add("a.weft.internal", "10.40.0.1"); // version 1
    const k = owner.add("k.weft.internal", "10.40.0.2")!; // version 2
    owner.add("j.weft.internal", "10.40.0.3"); // version 3
    owner.remove("k.weft.internal", "10.40.0.2"); // version 4
    // One-entry claims of the final state: (0,1] a, (1,3] j, (3,4] the tombstone of k.
    const items = owner.encode(owner.deltaFor(new Map())!, 1);
    const early = owner.decode(items.slice(0, 2));
    const inOrder = replica(1);
    inOrder.merge(k, "x");
    inOrder.merge(early, "x");
    const reversed = replica(2);
    reversed.merge(early, "x");
    reversed.merge(k, "x");
    assert.deepEqual(inOrder.lookup("k.weft.internal"), []);
    assert.deepEqual(reversed.lookup("k.weft.internal"), []);
    assert.deepEqual(live(inOrder), live(reversed));
  });

  it("a delete followed by a stale add from gossip never resurrects the entry", () => {
    const a = replica(0);
    const stale = replica(1);
    const b = replica(2);
    const added = a.add("web.weft.internal", "10.40.0.1")!;
    stale.merge(added, PEERS[0]!);
    b.merge(added, PEERS[0]!);
    b.merge(a.remove("web.weft.internal", "10.40.0.1")!, PEERS[0]!);
    b.merge(stale.deltaFor(new Map())!, PEERS[1]!);
    b.merge(added, PEERS[0]!);
    assert.deepEqual(b.lookup("web.weft.internal"), []);
  });
});

describe("DNS entries: tombstone collection", () => {
  it("collects after the TTL on the local clock and never resurrects, with anti-entropy within the TTL", () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 30 }),
        fc.array(
          fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 5 }), fc.boolean()),
          { maxLength: 60 },
        ),
        (ops, steps) => {
          // Six replicas on one virtual clock; a TTL of 1,000 ms. Each step is a partial
          // exchange (or a clock tick), and a full anti-entropy round runs at least every
          // 500 ms, as the engine's period would, well inside the TTL.
          const clock = new VirtualClock();
          const ttl = 1000;
          const replicas = PEERS.flatMap((_, i) => [i, i]).map(
            (i) => new DnsEntries({ self: PEERS[i]!, clock, tombstoneTtlMs: ttl }),
          );
          const owners = [replicas[0]!, replicas[2]!, replicas[4]!];
          let opIndex = 0;
          let sinceFull = 0;
          for (const [from, to, tick] of steps) {
            const op = ops[opIndex++];
            if (op) {
              const o = owners[op.peer]!;
              const name = NAMES[op.name]!;
              const address = ADDRESSES[op.address]!;
              const d = op.kind === "add" ? o.add(name, address) : o.remove(name, address);
              if (d) replicas[to]!.merge(d, "x"); // an immediate broadcast reaching one replica
            }
            const delta = replicas[from]!.deltaFor(replicas[to]!.summary());
            if (delta) replicas[to]!.merge(wire(replicas[from]!, delta), "x");
            if (tick) {
              clock.advance(250);
              sinceFull += 250;
            }
            if (sinceFull >= 500) {
              antiEntropy(replicas);
              sinceFull = 0;
            }
          }
          antiEntropy(replicas);
          clock.advance(ttl * 3); // every tombstone is now collectable
          for (const r of replicas) r.collectTombstones();
          antiEntropy(replicas);
          const expected = owners
            .flatMap((o, i) => live(o).filter((l) => l.startsWith(PEERS[i]!.slice(0, 1))))
            .sort();
          for (const r of replicas) {
            assert.deepEqual(live(r), expected);
            assert.equal(r.list().filter((e) => e.deleted).length, 0, "all tombstones collected");
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("a collected tombstone refuses the stale add it deleted", () => {
    const clock = new VirtualClock();
    const a = new DnsEntries({ self: PEERS[0]!, clock, tombstoneTtlMs: 1000 });
    const b = new DnsEntries({ self: PEERS[1]!, clock, tombstoneTtlMs: 1000 });
    const added = a.add("web.weft.internal", "10.40.0.1")!;
    const removed = a.remove("web.weft.internal", "10.40.0.1")!;
    b.merge(added, PEERS[0]!);
    b.merge(removed, PEERS[0]!);
    clock.advance(999);
    assert.equal(b.collectTombstones(), 0);
    clock.advance(1);
    assert.equal(b.collectTombstones(), 1);
    assert.equal(b.merge(added, PEERS[0]!), null);
    assert.equal(b.merge(removed, PEERS[0]!), null);
    assert.deepEqual(b.lookup("web.weft.internal"), []);
    assert.equal(b.list().length, 0);
  });
});

describe("DNS entries: decode", () => {
  const good = () => {
    const a = replica(0);
    return a.encode(a.add("web.weft.internal", "10.40.0.1")!, 1000)[0] as unknown[];
  };
  const key = PEERS[0]!;
  const ip = new Uint8Array([10, 40, 0, 1]);

  it("accepts what encode makes, through CBOR", () => {
    const a = replica(0);
    for (let i = 0; i < 50; i++) a.add(`n${i}.weft.internal`, `10.40.0.${i + 1}`);
    const items = a.encode(a.deltaFor(new Map())!, 300);
    assert.ok(items.length > 5, "split into several items");
    const b = replica(1);
    // Any subset of the items is a valid delta: here every other one, then the rest.
    b.merge(
      b.decode(cborDecode(cborEncode(items.filter((_, i) => i % 2 === 0))) as unknown[]),
      "x",
    );
    b.merge(b.decode(cborDecode(cborEncode(items)) as unknown[]), "x");
    assert.equal(live(b).length, 50);
    assert.deepEqual(b.summary(), a.summary());
  });

  it("rejects malformed items with GossipRejected", () => {
    const b = replica(1);
    const bad: unknown[] = [
      null,
      "x",
      [],
      [2, key, 0, 1, []],
      [1, "not a key", 0, 1, []],
      [1, key, 1, 1, []],
      [1, key, -1, 1, []],
      [1, key, 0, 1.5, []],
      [1, key, 0, 2 ** 60, []],
      [1, key, 0, 1, "x"],
      [1, key, 0, 1, [["Web.weft.internal.", ip, 1, false]]],
      [1, key, 0, 1, [["web..internal.", ip, 1, false]]],
      [1, key, 0, 1, [["web.weft.internal.", new Uint8Array(5), 1, false]]],
      [1, key, 0, 1, [["web.weft.internal.", "10.40.0.1", 1, false]]],
      [1, key, 0, 1, [["web.weft.internal.", ip, 2, false]]],
      [1, key, 0, 1, [["web.weft.internal.", ip, 1, 0]]],
      [
        1,
        key,
        0,
        3,
        [
          ["a.weft.internal.", ip, 2, false],
          ["b.weft.internal.", ip, 2, false],
        ],
      ],
      [
        1,
        key,
        0,
        3,
        [
          ["a.weft.internal.", ip, 2, false],
          ["a.weft.internal.", ip, 3, false],
        ],
      ],
      [1, key, 0, 1, [["web.weft.internal.", ip, 1]]],
    ];
    assert.doesNotThrow(() => b.decode([good()]));
    for (const item of bad) {
      assert.throws(() => b.decode([good(), item]), GossipRejected, JSON.stringify(item));
    }
    assert.throws(() => b.decode("x" as unknown as unknown[]), GossipRejected);
    assert.throws(() => b.decode(Array.from({ length: 5000 }, good)), GossipRejected);
  });

  it("never throws anything but GossipRejected for random input", () => {
    const b = replica(1);
    fc.assert(
      fc.property(fc.array(fc.anything({ withTypedArray: true }), { maxLength: 5 }), (items) => {
        try {
          b.merge(b.decode(items), "x");
        } catch (error) {
          assert.ok(error instanceof GossipRejected, String(error));
        }
      }),
      { numRuns: 1000 },
    );
  });
});
