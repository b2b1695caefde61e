/** The gossip engine: convergence in simulation, splitting, steady-state cost, bad input. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { GOSSIP_DEFAULTS, Gossip, type GossipStats } from "../../src/mesh/gossip.ts";
import {
  decodeMessage,
  encodeValue,
  GOSSIP_PROTOCOL_VERSION,
  inRange,
  isPlainCbor,
  MESSAGE_KIND,
  packSummary,
} from "../../src/mesh/gossip-wire.ts";
import { createRandom, VirtualClock } from "../../src/sim/index.ts";
import {
  GossipSim,
  type GraphShape,
  graphEdges,
  hex,
  MapState,
  peerNames,
} from "../helpers/gossip-sim.ts";

/** Runs `body` with a seed, naming the seed if it fails so the run can be replayed. */
function withSeed(seed: number, body: (seed: number) => void): void {
  try {
    body(seed);
  } catch (error) {
    if (error instanceof Error) error.message = `[seed ${seed}] ${error.message}`;
    throw error;
  }
}

function sentOf(stats: GossipStats, kind: string): number {
  let messages = 0;
  for (const byKind of Object.values(stats.sent)) {
    messages += (byKind as Record<string, { messages: number }>)[kind]?.messages ?? 0;
  }
  return messages;
}

function dropped(stats: GossipStats): number {
  return Object.values(stats.dropped).reduce((sum, n) => sum + (n ?? 0), 0);
}

/** Every peer writes `perPeer` keys of its own at random times in the first second. */
function scatterWrites(sim: GossipSim, perPeer: number): void {
  for (const key of sim.peers.keys()) {
    for (let i = 0; i < perPeer; i++) {
      sim.clock.setTimer(sim.random.int(1000), () => sim.set(key, `${key}/${i}`, `v${i}`));
    }
  }
}

describe("Gossip convergence", () => {
  it("converges every replica on line, ring and random graphs under loss and duplication", () => {
    fc.assert(
      fc.property(
        fc.record({
          seed: fc.integer(),
          shape: fc.constantFrom<GraphShape>("line", "ring", "random"),
          size: fc.integer({ min: 2, max: 50 }),
          lossRate: fc.double({ min: 0, max: 0.2, noNaN: true }),
          duplicateRate: fc.double({ min: 0, max: 0.2, noNaN: true }),
        }),
        ({ seed, shape, size, lossRate, duplicateRate }) =>
          withSeed(seed, () => {
            const peers = peerNames(size);
            const sim = new GossipSim({
              seed,
              peers,
              edges: graphEdges(shape, peers, createRandom(seed)),
              links: { lossRate, duplicateRate, minDelayMs: 1, maxDelayMs: 40 },
            });
            scatterWrites(sim, 2);
            sim.clock.advance(1000);
            // A lost hop waits for the next anti-entropy round (about intervalMs), and a
            // line of 50 at 20% loss loses many: the worst of 60 seeds took 112 s.
            const tookMs = sim.runUntil(() => sim.converged(), 180_000, 250);
            assert.notEqual(tookMs, -1, `${shape} of ${size} did not converge in 180 s`);
            for (const peer of sim.peers.values()) {
              assert.equal(peer.states.get("map")!.entries.size, 2 * size);
            }
            sim.close();
          }),
      ),
      {
        numRuns: 30,
        examples: (["line", "ring", "random"] as const).map((shape) => [
          { seed: 1, shape, size: 50, lossRate: 0.2, duplicateRate: 0.2 },
        ]),
      },
    );
  });

  it("converges within a few hops' time when nothing is lost", () => {
    const peers = peerNames(50);
    const sim = new GossipSim({
      seed: 7,
      peers,
      edges: graphEdges("random", peers, createRandom(7)),
      links: { minDelayMs: 5, maxDelayMs: 20 },
    });
    sim.set("p00", "p00/x", "hello");
    const tookMs = sim.runUntil(() => sim.converged(), 5_000, 10);
    assert.ok(tookMs >= 0 && tookMs < 2_000, `took ${tookMs} ms`);
    // Flooding passes each change over each link at most once each way.
    const deltas = [...sim.peers.values()].reduce(
      (sum, p) => sum + sentOf(p.gossip.stats(), "delta"),
      0,
    );
    assert.ok(deltas <= 2 * graphEdges("random", peers, createRandom(7)).length, `${deltas}`);
    sim.close();
  });

  it("converges both sides after a partition heals", () => {
    for (const seed of [1, 2, 3]) {
      withSeed(seed, () => {
        const peers = peerNames(30);
        const edges = graphEdges("random", peers, createRandom(seed));
        const sim = new GossipSim({
          seed,
          peers,
          edges,
          links: { lossRate: 0.05, duplicateRate: 0.05, minDelayMs: 1, maxDelayMs: 30 },
        });
        scatterWrites(sim, 1);
        assert.notEqual(
          sim.runUntil(() => sim.converged(), 60_000),
          -1,
        );
        // Cut every link between the halves, so each half changes on its own.
        const left = new Set(peers.slice(0, 15));
        const cut = edges.filter(([a, b]) => left.has(a) !== left.has(b));
        for (const [a, b] of cut) sim.disconnect(a, b);
        for (const key of peers) sim.set(key, `${key}/partitioned`, left.has(key) ? "L" : "R");
        sim.clock.advance(30_000);
        assert.equal(sim.converged(), false);
        // Heal: the halves may be disconnected internally, but each side's own changes
        // cannot have crossed the cut.
        assert.equal(sim.peer("p00").states.get("map")!.entries.has("p29/partitioned"), false);
        for (const [a, b] of cut) sim.connect(a, b);
        const tookMs = sim.runUntil(() => sim.converged(), 10_000);
        assert.notEqual(tookMs, -1, "did not converge within 10 s of healing");
        assert.equal(sim.peer("p00").states.get("map")!.entries.size, 60);
        sim.close();
      });
    }
  });

  it("batches a burst of changes into one message per neighbour", () => {
    const sim = new GossipSim({
      seed: 5,
      peers: ["a", "b", "c"],
      edges: [
        ["a", "b"],
        ["a", "c"],
      ],
    });
    sim.clock.advance(100);
    const before = sentOf(sim.peer("a").gossip.stats(), "delta");
    for (let i = 0; i < 100; i++) sim.set("a", `a/${i}`, "x");
    sim.clock.advance(GOSSIP_DEFAULTS.flushDelayMs + 10);
    assert.equal(sentOf(sim.peer("a").gossip.stats(), "delta") - before, 2);
    assert.equal(sim.peer("b").states.get("map")!.entries.size, 100);
    sim.close();
  });
});

describe("Gossip steady state", () => {
  it("sends only digests once converged, and few bytes", () => {
    const seed = 50;
    const peers = peerNames(50);
    const channels = ["topology", "ipam", "dns"];
    const sim = new GossipSim({
      seed,
      peers,
      edges: graphEdges("random", peers, createRandom(seed)),
      links: { minDelayMs: 1, maxDelayMs: 30 },
      channels,
    });
    // Topology-like (one entry per peer), IPAM-like (one range each) and DNS (two names each).
    for (const key of peers) {
      sim.set(key, key, "edges", "topology");
      sim.set(key, `${key}/range`, "10.32.0.0/24", "ipam");
      sim.set(key, `${key}/web`, "10.32.0.1", "dns");
      sim.set(key, `${key}/db`, "10.32.0.2", "dns");
    }
    const all = () => channels.every((c) => sim.converged(sim.peers.keys(), c));
    assert.notEqual(sim.runUntil(all, 30_000), -1);
    sim.clock.advance(10_000); // let in-flight repairs finish
    const before = [...sim.peers.values()].map((p) => p.gossip.stats());
    const bytesBefore = [...sim.peers.values()].reduce((sum, p) => sum + p.sentBytes, 0);
    const windowMs = 120_000;
    sim.clock.advance(windowMs);
    const bytes = [...sim.peers.values()].reduce((sum, p) => sum + p.sentBytes, 0) - bytesBefore;
    [...sim.peers.values()].forEach((peer, i) => {
      const now = peer.gossip.stats();
      for (const kind of ["summary", "request", "delta", "unicast"]) {
        assert.equal(sentOf(now, kind), sentOf(before[i]!, kind), `${peer.key} sent a ${kind}`);
      }
    });
    const perPeerPerSecond = bytes / peers.length / (windowMs / 1000);
    console.log(
      `gossip steady state, 50 peers, 3 channels, defaults: ${perPeerPerSecond.toFixed(1)} B/s sent per peer (payload, before tunnel overhead)`,
    );
    assert.ok(perPeerPerSecond < 200, `${perPeerPerSecond} B/s per peer`);
    sim.close();
  });
});

describe("Gossip splitting", () => {
  /** 44-character base64 keys, as peer keys are. */
  function base64Key(random: ReturnType<typeof createRandom>): string {
    return btoa(String.fromCharCode(...random.bytes(32)));
  }

  it("splits summaries and deltas over maxMessageBytes and still converges", () => {
    const seed = 44;
    withSeed(seed, () => {
      const random = createRandom(seed);
      const sim = new GossipSim({
        seed,
        peers: ["a", "b", "c"],
        edges: [],
        links: { lossRate: 0.1, duplicateRate: 0.1, minDelayMs: 1, maxDelayMs: 20 },
        gossip: { maxMessageBytes: 1024 },
      });
      // a and b each hold 1,000 keys the other lacks; c holds some of both, older.
      for (let i = 0; i < 1000; i++) {
        const aKey = base64Key(random);
        const bKey = base64Key(random);
        sim.peer("a").states.get("map")!.set(aKey, "from a");
        sim.peer("b").states.get("map")!.set(bKey, "from b");
        if (i % 3 === 0) {
          sim.peer("c").states.get("map")!.set(aKey, "stale");
          sim.peer("a").states.get("map")!.set(aKey, "newer");
        }
      }
      sim.connect("a", "b");
      sim.connect("b", "c");
      const tookMs = sim.runUntil(() => sim.converged(), 60_000, 100);
      assert.notEqual(tookMs, -1, "did not converge in 60 s");
      assert.equal(sim.peer("c").states.get("map")!.entries.size, 2000);
      const stats = sim.peer("a").gossip.stats();
      const summaries = sentOf(stats, "summary") + sentOf(sim.peer("b").gossip.stats(), "summary");
      assert.ok(summaries > 2, `${summaries} summary messages`);
      assert.ok(sentOf(stats, "delta") > 2, `${sentOf(stats, "delta")} delta messages`);
      sim.close();
    });
  });

  it("packs any summary into contiguous key ranges that each fit", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.string({ maxLength: 60 }), fc.integer({ min: 1, max: 2 ** 40 })), {
          size: "max",
          maxLength: 400,
        }),
        fc.integer({ min: 512, max: 4096 }),
        (pairs, maxBytes) => {
          const summary = new Map(pairs);
          const { messages, skipped } = packSummary("ch", summary, maxBytes);
          assert.equal(skipped, 0);
          const seen = new Map<string, number>();
          let expectedFrom = "";
          messages.forEach((bytes, index) => {
            assert.ok(bytes.length <= maxBytes, `${bytes.length} > ${maxBytes}`);
            const decoded = decodeMessage(bytes, maxBytes);
            assert.ok(decoded.ok && decoded.message.kind === "summary", "not a summary");
            const part = decoded.message;
            assert.equal(part.fromKey, expectedFrom);
            assert.equal(part.toKey === null, index === messages.length - 1);
            for (const [key, version] of part.entries) {
              assert.ok(inRange(key, part.fromKey, part.toKey), `${key} out of range`);
              seen.set(key, version);
            }
            expectedFrom = part.toKey ?? "";
          });
          assert.deepEqual(seen, summary);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe("Gossip unicast", () => {
  it("delivers to a neighbour or through relays, naming the authenticated source", () => {
    const sim = new GossipSim({
      seed: 3,
      peers: ["a", "b", "c", "d"],
      edges: [
        ["a", "b"],
        ["b", "c"],
      ],
    });
    const heard: Array<[string, string]> = [];
    sim
      .peer("c")
      .channels.get("map")!
      .onUnicast((from, message) => {
        heard.push([from, new TextDecoder().decode(message)]);
      });
    const text = (s: string) => new TextEncoder().encode(s);
    assert.equal(sim.peer("a").channels.get("map")!.unicast("c", text("via b")), true);
    assert.equal(sim.peer("b").channels.get("map")!.unicast("c", text("direct")), true);
    assert.equal(sim.peer("a").channels.get("map")!.unicast("d", text("nowhere")), false);
    sim.clock.advance(100);
    assert.deepEqual(heard.sort(), [
      ["a", "via b"],
      ["b", "direct"],
    ]);
    // The source is whoever the mesh says sent it: the same bytes from another peer.
    const sent: Uint8Array[] = [];
    const probe = new Gossip({
      self: "x",
      clock: new VirtualClock(),
      random: () => 0.5,
      transport: { neighbours: () => [], send: (_peer, message) => sent.push(message) > 0 },
    });
    probe.channel("map", new MapState()).unicast("c", text("forged?"));
    sim.peer("c").gossip.receive("d", sent[0]!);
    assert.deepEqual(heard.at(-1), ["d", "forged?"]);
    probe.close();
    sim.close();
  });

  it("refuses payloads too large, and counts messages with no handler or a failing one", () => {
    const sim = new GossipSim({ seed: 4, peers: ["a", "b"], edges: [["a", "b"]] });
    const channel = sim.peer("a").channels.get("map")!;
    const limit = sim.peer("a").gossip.maxUnicastBytes("map");
    assert.throws(() => channel.unicast("b", new Uint8Array(limit + 1)), RangeError);
    assert.equal(channel.unicast("b", new Uint8Array(limit)), true);
    sim.clock.advance(10);
    assert.equal(sim.peer("b").gossip.stats().dropped.noHandler, 1);
    sim
      .peer("b")
      .channels.get("map")!
      .onUnicast(() => {
        throw new Error("handler bug");
      });
    channel.unicast("b", new Uint8Array(1));
    sim.clock.advance(10);
    assert.equal(sim.peer("b").gossip.stats().dropped.handlerError, 1);
    sim.close();
  });
});

describe("Gossip and misbehaving states", () => {
  it("keeps working when a state rejects a delta, and counts it", () => {
    const sim = new GossipSim({ seed: 6, peers: ["a", "b"], edges: [["a", "b"]] });
    sim.peer("b").states.get("map")!.rejectValue = "poison";
    sim.clock.advance(100); // past the digests exchanged on connecting
    sim.set("a", "a/1", "poison");
    sim.clock.advance(200);
    const stats = sim.peer("b").gossip.stats();
    assert.equal(stats.merges.map!.rejected, 1);
    assert.equal(stats.dropped.rejected, 1);
    assert.equal(sim.peer("b").states.get("map")!.entries.size, 0);
    sim.set("a", "a/2", "fine");
    sim.clock.advance(200);
    assert.equal(sim.peer("b").states.get("map")!.entries.get("a/2")?.value, "fine");
    sim.close();
  });

  it("survives a state that throws a plain error, counting it", () => {
    const sim = new GossipSim({ seed: 8, peers: ["a", "b"], edges: [["a", "b"]] });
    sim.peer("b").states.get("map")!.crashValue = "crash";
    sim.clock.advance(100);
    sim.set("a", "a/1", "crash");
    sim.clock.advance(200);
    assert.equal(sim.peer("b").gossip.stats().dropped.stateError, 1);
    sim.set("a", "a/2", "fine");
    sim.clock.advance(200);
    assert.equal(sim.peer("b").states.get("map")!.entries.get("a/2")?.value, "fine");
    sim.close();
  });
});

describe("Gossip bad input", () => {
  /** Real messages of every kind, captured from an exchange between two engines. */
  function captureValidMessages(): Uint8Array[] {
    const captured: Uint8Array[] = [];
    const clock = new VirtualClock();
    const queue: Array<() => void> = [];
    const engines = new Map<string, Gossip>();
    for (const [self, other] of [
      ["x", "y"],
      ["y", "x"],
    ] as const) {
      const gossip = new Gossip({
        self,
        clock,
        random: () => 0.5,
        transport: {
          neighbours: () => [other],
          send: (to, message) => {
            captured.push(message);
            queue.push(() => engines.get(to)!.receive(self, message));
            return true;
          },
        },
      });
      const state = new MapState();
      for (let i = 0; i < 10; i++) state.set(`${self}/${i}`, "value");
      engines.set(self, gossip);
      gossip.channel("map", state).onUnicast(() => {});
    }
    const x = engines.get("x")!;
    x.neighbourUp("y");
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) next();
    x.channel("other", new MapState()).unicast("y", Uint8Array.of(1, 2, 3));
    for (const gossip of engines.values()) gossip.close();
    return captured;
  }

  it("drops and counts 100,000 fuzzed messages with no state change and no exception", () => {
    const seed = 100_000;
    withSeed(seed, (s) => {
      const random = createRandom(s);
      const valid = captureValidMessages();
      const kinds = new Set(valid.map((m) => decodeMessage(m, 32 * 1024).ok && m[2]));
      assert.equal(kinds.size, 5, `captured kinds ${[...kinds]}`);
      const clock = new VirtualClock();
      const state = new MapState();
      for (let i = 0; i < 10; i++) state.set(`t/${i}`, "target");
      const target = new Gossip({
        self: "target",
        clock,
        random: () => random.next(),
        transport: { neighbours: () => ["peer"], send: () => true },
        maxMessageBytes: 4096,
      });
      target.channel("map", state);
      const digestBefore = hex(state.digest());
      const pick = () => valid[random.int(valid.length)]!;
      let count = 0;
      // Never valid: random bytes, strict prefixes of valid messages, oversized messages.
      for (let i = 0; i < 40_000; i++, count++)
        target.receive("peer", random.bytes(random.int(64)));
      for (let i = 0; i < 30_000; i++, count++) {
        const message = pick();
        target.receive("peer", message.subarray(0, random.int(message.length)));
      }
      for (let i = 0; i < 1_000; i++, count++) {
        target.receive("peer", random.bytes(4097 + random.int(10_000)));
      }
      // A valid message from a future protocol version.
      for (let i = 0; i < 1_000; i++, count++) {
        const future = pick().slice();
        future[1] = GOSSIP_PROTOCOL_VERSION + 1;
        target.receive("peer", future);
      }
      const stats = target.stats();
      assert.equal(dropped(stats), count);
      assert.deepEqual(stats.received, {});
      assert.equal(hex(state.digest()), digestBefore);
      assert.ok((stats.dropped.oversize ?? 0) >= 1_000, `${stats.dropped.oversize} oversize`);
      assert.ok((stats.dropped.version ?? 0) >= 1_000, `${stats.dropped.version} version`);
      // Mutated valid messages may still be valid (a changed value is a new delta), so these
      // only have to leave the engine and the state sound.
      for (let i = 0; i < 28_000; i++, count++) {
        const mutated = pick().slice();
        for (let flips = 1 + random.int(3); flips > 0; flips--) {
          mutated[random.int(mutated.length)] = random.int(256);
        }
        target.receive("peer", mutated);
      }
      assert.equal(count, 100_000);
      for (const [key, entry] of state.entries) {
        assert.equal(typeof key, "string");
        assert.ok(Number.isSafeInteger(entry.version), `${key} version ${entry.version}`);
        assert.equal(typeof entry.value, "string");
      }
      // Still working: a genuine delta merges.
      const peerState = new MapState();
      const sent: Uint8Array[] = [];
      const peer = new Gossip({
        self: "peer",
        clock,
        random: () => 0.5,
        transport: { neighbours: () => ["target"], send: (_p, m) => sent.push(m) > 0 },
        maxMessageBytes: 4096,
      });
      peer.channel("map", peerState).broadcast(peerState.set("peer/ok", "fine"));
      clock.advance(100);
      for (const message of sent) target.receive("peer", message);
      assert.equal(state.entries.get("peer/ok")?.value, "fine");
      target.close();
      peer.close();
    });
  });

  it("refuses random and tagged CBOR with fast-check, never throwing", () => {
    const clock = new VirtualClock();
    const state = new MapState();
    const target = new Gossip({
      self: "t",
      clock,
      random: () => 0.5,
      transport: { neighbours: () => [], send: () => true },
    });
    target.channel("map", state);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300, size: "max" }), (bytes) => {
        target.receive("p", bytes);
      }),
      { numRuns: 2_000 },
    );
    // Tags (a Date, Node's tagged byte strings), indefinite lengths and huge claims.
    const date = Uint8Array.of(0x84, 0x01, 0x04, 0x63, 0x6d, 0x61, 0x70, 0x81, 0xc1, 0x00);
    const indefinite = Uint8Array.of(0x9f, 0x01, 0x04, 0xff);
    const hugeArray = Uint8Array.of(0x84, 0x01, 0x04, 0x63, 0x6d, 0x61, 0x70, 0x9a, 0xff, 0, 0, 0);
    const hugeString = Uint8Array.of(
      0x84,
      0x01,
      0x05,
      0x63,
      0x6d,
      0x61,
      0x70,
      0x5b,
      0xff,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
    );
    const deep = new Uint8Array(1000).fill(0x81);
    for (const bytes of [date, indefinite, hugeArray, hugeString, deep]) {
      assert.equal(isPlainCbor(bytes), false);
      target.receive("p", bytes);
    }
    assert.equal(state.entries.size, 0);
    assert.equal(target.stats().dropped.malformed! >= 5, true);
    target.close();
  });

  it("logs one line per peer for a protocol version mismatch, not one per message", () => {
    const logs: string[] = [];
    const target = new Gossip({
      self: "t",
      clock: new VirtualClock(),
      random: () => 0.5,
      transport: { neighbours: () => [], send: () => true },
      log: (level, message) => logs.push(`${level} ${message}`),
    });
    target.channel("map", new MapState());
    const future = encodeValue([GOSSIP_PROTOCOL_VERSION + 1, MESSAGE_KIND.digests, []])!;
    for (let i = 0; i < 10; i++) target.receive("old-peer", future);
    target.receive("other-peer", future);
    assert.equal(logs.filter((line) => line.includes("protocol version")).length, 2);
    assert.equal(target.stats().dropped.version, 11);
    target.close();
  });

  it("sends nothing after close", () => {
    const sim = new GossipSim({ seed: 10, peers: ["a", "b"], edges: [["a", "b"]] });
    sim.peer("a").gossip.close();
    const before = sim.peer("a").sentMessages;
    sim.set("a", "a/1", "x");
    sim.clock.advance(60_000);
    assert.equal(sim.peer("a").sentMessages, before);
    assert.equal(sim.peer("a").channels.get("map")!.unicast("b", new Uint8Array(1)), false);
    sim.close();
  });
});
