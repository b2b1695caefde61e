/** The simulated network: delivery in virtual time, link conditions, cuts, counters. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { Endpoint } from "../../src/net/packet-conn.ts";
import {
  createRandom,
  DEFAULT_LINK,
  type LinkOptions,
  type NetworkCounters,
  type NetworkEvent,
  SimNetwork,
  VirtualClock,
} from "../../src/sim/index.ts";

const A = "10.0.0.1";
const B = "10.0.0.2";
const C = "10.0.0.3";
const PORT = 51820;

interface Received {
  atMs: number;
  data: Uint8Array;
  from: Endpoint;
}

function setup(seed = 1, defaultLink: Partial<LinkOptions> = {}) {
  const clock = new VirtualClock();
  const trace: NetworkEvent[] = [];
  const network = new SimNetwork({
    clock,
    random: createRandom(seed),
    defaultLink,
    trace: (event) => trace.push(event),
  });
  /** Listens and records what arrives. */
  function host(address: string, port = PORT) {
    const conn = network.listen(address, port);
    const received: Received[] = [];
    conn.onReceive((data, from) => received.push({ atMs: clock.now(), data, from }));
    return { conn, received, endpoint: { address, port: conn.localPort } };
  }
  return { clock, network, trace, host };
}

/** Packet i carries i in its first two bytes, so order can be checked. */
function numbered(i: number, length = 64): Uint8Array {
  const data = new Uint8Array(length);
  data[0] = i >> 8;
  data[1] = i & 0xff;
  return data;
}

function numberOf(data: Uint8Array): number {
  return (data[0]! << 8) | data[1]!;
}

function totalDropped(counters: NetworkCounters): number {
  return Object.values(counters.dropped).reduce((sum, n) => sum + n, 0);
}

describe("SimNetwork delivery", () => {
  test("delivers after the link's latency, not before, from the sender's endpoint", () => {
    const { clock, network, host } = setup();
    network.setLink(A, B, { latencyMs: 20 });
    const a = host(A);
    const b = host(B);
    a.conn.send(new Uint8Array([1, 2, 3]), b.endpoint);
    clock.advance(19);
    assert.equal(b.received.length, 0);
    clock.advance(1);
    assert.equal(b.received.length, 1);
    assert.equal(b.received[0]!.atMs, 20);
    assert.deepEqual(b.received[0]!.data, new Uint8Array([1, 2, 3]));
    assert.deepEqual(b.received[0]!.from, { address: A, port: PORT });
  });

  test("uses each direction's own latency", () => {
    const { clock, network, host } = setup();
    network.setLink(A, B, { latencyMs: 5 });
    network.setLink(B, A, { latencyMs: 50 });
    const a = host(A);
    const b = host(B);
    a.conn.send(numbered(1), b.endpoint);
    b.conn.send(numbered(2), a.endpoint);
    clock.advance(100);
    assert.equal(b.received[0]!.atMs, 5);
    assert.equal(a.received[0]!.atMs, 50);
  });

  test("nothing arrives until the clock advances, even with zero latency", () => {
    const { clock, host } = setup();
    const a = host(A);
    const b = host(B);
    a.conn.send(numbered(1), b.endpoint);
    assert.equal(b.received.length, 0);
    clock.advance(0);
    assert.equal(b.received.length, 1);
  });

  test("hands the receiver a copy, so the sender may reuse its buffer", () => {
    const { clock, host } = setup();
    const a = host(A);
    const b = host(B);
    const buffer = new Uint8Array([7, 7, 7]);
    a.conn.send(buffer, b.endpoint);
    buffer.fill(0);
    clock.advance(0);
    assert.deepEqual(b.received[0]!.data, new Uint8Array([7, 7, 7]));
    assert.notEqual(b.received[0]!.data, buffer);
  });

  test("sends to self, and between IPv6 hosts whatever the spelling", () => {
    const { clock, host } = setup();
    const a = host(A);
    a.conn.send(numbered(1), a.endpoint);
    const v6a = host("fd00::1");
    const v6b = host("FD00:0:0:0::2");
    v6a.conn.send(numbered(2), { address: "fd00:0000::2", port: PORT });
    clock.advance(0);
    assert.equal(a.received.length, 1);
    assert.equal(v6b.received.length, 1);
    assert.deepEqual(v6b.received[0]!.from, { address: "fd00::1", port: PORT });
  });

  test("IPv4-mapped IPv6 destinations reach the IPv4 host", () => {
    const { clock, host } = setup();
    const a = host(A);
    const b = host(B);
    a.conn.send(numbered(1), { address: `::ffff:${B}`, port: PORT });
    clock.advance(0);
    assert.equal(b.received.length, 1);
  });

  test("drops silently, and counts, what nobody listens for or cannot be routed", () => {
    const { clock, network, host } = setup();
    const a = host(A);
    const v6 = host("fd00::1");
    a.conn.send(numbered(1), { address: B, port: PORT });
    a.conn.send(numbered(2), { address: "fd00::1", port: PORT });
    a.conn.send(numbered(3), { address: "not an address", port: PORT });
    a.conn.send(numbered(4), { address: B, port: 0 });
    a.conn.send(numbered(5), { address: B, port: 70000 });
    clock.advance(0);
    const { dropped, delivered } = network.counters();
    assert.equal(delivered, 0);
    assert.equal(dropped.noListener, 1);
    assert.equal(dropped.unroutable, 4);
    assert.equal(v6.received.length, 0);
  });

  test("counts datagrams that reach a conn with no handler yet", () => {
    const { clock, network, host } = setup();
    const a = host(A);
    const quiet = network.listen(B, PORT);
    a.conn.send(numbered(1), { address: B, port: quiet.localPort });
    clock.advance(0);
    assert.equal(network.counters().dropped.noHandler, 1);
  });
});

describe("SimNetwork conns", () => {
  test("port 0 picks free ports from 49152 up; a taken port throws EADDRINUSE", () => {
    const { network } = setup();
    assert.equal(network.listen(A, 0).localPort, 49152);
    assert.equal(network.listen(A).localPort, 49153);
    assert.equal(network.listen(B).localPort, 49152);
    network.listen(A, PORT);
    assert.throws(() => network.listen(A, PORT), { code: "EADDRINUSE" });
    assert.throws(() => network.listen("10.0.0.01", PORT), SyntaxError);
    assert.throws(() => network.listen("0.0.0.0", PORT), RangeError);
    assert.throws(() => network.listen(A, 65536), RangeError);
  });

  test("reports where it is bound", () => {
    const { network } = setup();
    const conn = network.listen("FD00::0001", 4000);
    assert.equal(conn.localAddress, "fd00::1");
    assert.equal(conn.localPort, 4000);
    assert.equal(conn.closed, false);
  });

  test("close is idempotent, frees the port, stops delivery and drops later sends", async () => {
    const { clock, network, host } = setup();
    network.setLinkBetween(A, B, { latencyMs: 10 });
    const a = host(A);
    const b = host(B);
    a.conn.send(numbered(1), b.endpoint);
    await b.conn.close();
    await b.conn.close();
    assert.equal(b.conn.closed, true);
    b.conn.send(numbered(2), a.endpoint);
    clock.advance(10);
    assert.equal(b.received.length, 0);
    assert.equal(a.received.length, 0);
    const counters = network.counters();
    assert.equal(counters.dropped.noListener, 1);
    assert.equal(counters.dropped.closed, 1);
    // The port is free again, and a new listener gets what arrives later.
    const again = host(B);
    a.conn.send(numbered(3), b.endpoint);
    clock.advance(10);
    assert.equal(again.received.length, 1);
  });
});

describe("SimNetwork link conditions", () => {
  test("loses about lossRate of many datagrams, reproducibly for a seed", () => {
    const run = (seed: number) => {
      const { clock, network, host } = setup(seed, { lossRate: 0.3 });
      const a = host(A);
      const b = host(B);
      for (let i = 0; i < 10_000; i++) a.conn.send(numbered(i), b.endpoint);
      clock.advance(1);
      const counters = network.counters();
      assert.equal(counters.delivered, b.received.length);
      assert.equal(counters.dropped.loss + counters.delivered, 10_000);
      return counters.dropped.loss;
    };
    const lost = run(1234);
    assert.ok(lost > 2800 && lost < 3200, `lost ${lost} of 10000 at lossRate 0.3`);
    assert.equal(run(1234), lost);
  });

  test("the same seed gives the same delivery trace, another seed another", () => {
    const scenario = (seed: number) => {
      const { clock, host, trace } = setup(seed, {
        latencyMs: 5,
        jitterMs: 20,
        lossRate: 0.1,
        duplicateRate: 0.1,
        reorderRate: 0.1,
      });
      const a = host(A);
      const b = host(B);
      const c = host(C);
      for (let i = 0; i < 200; i++) {
        a.conn.send(numbered(i), i % 2 ? b.endpoint : c.endpoint);
        b.conn.send(numbered(i), a.endpoint);
        clock.advance(1);
      }
      clock.advance(100);
      const arrivals = [a, b, c].flatMap((h) =>
        h.received.map((r) => `${r.atMs.toFixed(6)} ${r.from.address} ${numberOf(r.data)}`),
      );
      return { trace, arrivals };
    };
    const first = scenario(99);
    const second = scenario(99);
    assert.ok(first.trace.length > 350, `trace of ${first.trace.length} events`);
    assert.deepEqual(second.trace, first.trace);
    assert.deepEqual(second.arrivals, first.arrivals);
    assert.notDeepEqual(scenario(100).trace, first.trace);
  });

  test("drops datagrams over the link MTU, counting IP and UDP headers", () => {
    const { clock, network, host } = setup();
    const a = host(A);
    const b = host(B);
    a.conn.send(new Uint8Array(1472), b.endpoint); // 1472 + 8 + 20 = 1500
    a.conn.send(new Uint8Array(1473), b.endpoint);
    const v6a = host("fd00::1");
    const v6b = host("fd00::2");
    v6a.conn.send(new Uint8Array(1452), v6b.endpoint); // 1452 + 8 + 40 = 1500
    v6a.conn.send(new Uint8Array(1453), v6b.endpoint);
    network.setLink(B, A, { mtuBytes: 1280 });
    b.conn.send(new Uint8Array(1253), a.endpoint);
    b.conn.send(new Uint8Array(1252), a.endpoint);
    clock.advance(0);
    assert.deepEqual(
      b.received.map((r) => r.data.length),
      [1472],
    );
    assert.deepEqual(
      v6b.received.map((r) => r.data.length),
      [1452],
    );
    assert.deepEqual(
      a.received.map((r) => r.data.length),
      [1252],
    );
    assert.equal(network.counters().dropped.mtu, 3);
  });

  test("duplicates: every datagram twice at duplicateRate 1, each copy its own buffer", () => {
    const { clock, network, host } = setup(5, { latencyMs: 3, duplicateRate: 1 });
    const a = host(A);
    const b = host(B);
    for (let i = 0; i < 10; i++) a.conn.send(numbered(i), b.endpoint);
    clock.advance(3);
    assert.equal(b.received.length, 20);
    assert.deepEqual(
      b.received.map((r) => numberOf(r.data)).sort((x, y) => x - y),
      [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9],
    );
    assert.notEqual(b.received[0]!.data, b.received[1]!.data);
    assert.equal(network.counters().duplicated, 10);
  });

  test("keeps order without jitter, and reorders with jitter", () => {
    const orderOf = (jitterMs: number) => {
      const { clock, host } = setup(8, { latencyMs: 10, jitterMs });
      const a = host(A);
      const b = host(B);
      for (let i = 0; i < 100; i++) {
        a.conn.send(numbered(i), b.endpoint);
        clock.advance(1);
      }
      clock.advance(100);
      return b.received.map((r) => numberOf(r.data));
    };
    const inOrder = Array.from({ length: 100 }, (_, i) => i);
    assert.deepEqual(orderOf(0), inOrder);
    const jittered = orderOf(30);
    assert.equal(jittered.length, 100);
    assert.notDeepEqual(jittered, inOrder);
    assert.deepEqual(
      [...jittered].sort((x, y) => x - y),
      inOrder,
    );
  });

  test("reorderRate holds some datagrams back so later ones overtake them", () => {
    const { clock, network, host } = setup(9, {
      latencyMs: 10,
      reorderRate: 0.2,
      reorderDelayMs: 5,
    });
    const a = host(A);
    const b = host(B);
    for (let i = 0; i < 100; i++) {
      a.conn.send(numbered(i), b.endpoint);
      clock.advance(1);
    }
    clock.advance(100);
    const order = b.received.map((r) => numberOf(r.data));
    const reordered = network.counters().reordered;
    assert.ok(reordered > 5 && reordered < 40, `reordered ${reordered} of 100`);
    assert.notDeepEqual(
      order,
      Array.from({ length: 100 }, (_, i) => i),
    );
    // A held-back datagram arrives exactly reorderDelayMs late.
    const late = b.received.filter((r) => r.atMs !== numberOf(r.data) + 10);
    assert.equal(late.length, reordered);
    for (const r of late) assert.equal(r.atMs, numberOf(r.data) + 15);
  });

  test("setLink merges per direction over the default; bad options throw", () => {
    const { network } = setup(1, { latencyMs: 2 });
    network.setLink(A, B, { lossRate: 0.5 });
    network.setLink(A, B, { jitterMs: 4 });
    assert.deepEqual(network.linkOptions(A, B), {
      ...DEFAULT_LINK,
      latencyMs: 2,
      lossRate: 0.5,
      jitterMs: 4,
    });
    assert.equal(network.linkOptions(B, A).lossRate, 0);
    network.setDefaultLink({ latencyMs: 7 });
    assert.equal(network.linkOptions(A, B).latencyMs, 7);
    assert.equal(network.linkOptions(B, A).latencyMs, 7);
    network.setLinkBetween(A, C, { mtuBytes: 1280 });
    assert.equal(network.linkOptions(C, A).mtuBytes, 1280);
    assert.throws(() => network.setLink(A, B, { lossRate: 1.5 }), RangeError);
    assert.throws(() => network.setLink(A, B, { latencyMs: -1 }), RangeError);
    assert.throws(() => network.setLink(A, B, { mtuBytes: 1.5 }), RangeError);
    assert.throws(() => network.setLink(A, B, { bogus: 1 } as Partial<LinkOptions>), TypeError);
    assert.equal(network.linkOptions(A, B).lossRate, 0.5);
  });
});

describe("SimNetwork cuts", () => {
  test("partition cuts both ways between groups until heal", () => {
    const { clock, network, host } = setup();
    const a = host(A);
    const b = host(B);
    const c = host(C);
    const sendAll = () => {
      a.conn.send(numbered(1), b.endpoint);
      a.conn.send(numbered(2), c.endpoint);
      c.conn.send(numbered(3), a.endpoint);
      c.conn.send(numbered(4), b.endpoint);
      clock.advance(0);
    };
    network.partition([A, B], [C]);
    sendAll();
    assert.equal(b.received.length, 1);
    assert.equal(c.received.length, 0);
    assert.equal(a.received.length, 0);
    assert.equal(network.counters().dropped.partition, 3);
    network.heal();
    sendAll();
    assert.equal(b.received.length, 3);
    assert.equal(c.received.length, 1);
    assert.equal(a.received.length, 1);
  });

  test("a cut applies at send time: datagrams already in flight arrive", () => {
    const { clock, network, host } = setup(1, { latencyMs: 10 });
    const a = host(A);
    const b = host(B);
    a.conn.send(numbered(1), b.endpoint);
    network.partition([A], [B]);
    a.conn.send(numbered(2), b.endpoint);
    clock.advance(10);
    assert.deepEqual(
      b.received.map((r) => numberOf(r.data)),
      [1],
    );
  });

  test("block cuts one direction only, until unblock or heal", () => {
    const { clock, network, host } = setup();
    const a = host(A);
    const b = host(B);
    network.block(A, B);
    a.conn.send(numbered(1), b.endpoint);
    b.conn.send(numbered(2), a.endpoint);
    clock.advance(0);
    assert.equal(b.received.length, 0);
    assert.equal(a.received.length, 1);
    assert.equal(network.counters().dropped.blocked, 1);
    network.unblock(A, B);
    a.conn.send(numbered(3), b.endpoint);
    network.block(B, A);
    network.heal();
    b.conn.send(numbered(4), a.endpoint);
    clock.advance(0);
    assert.equal(b.received.length, 1);
    assert.equal(a.received.length, 2);
  });
});

describe("SimNetwork counters", () => {
  test("every datagram is accounted for: sent + duplicated = delivered + in flight + dropped", () => {
    const linkArbitrary = fc.record({
      latencyMs: fc.integer({ min: 0, max: 20 }),
      jitterMs: fc.integer({ min: 0, max: 20 }),
      lossRate: fc.double({ min: 0, max: 1, noNaN: true }),
      duplicateRate: fc.double({ min: 0, max: 1, noNaN: true }),
      reorderRate: fc.double({ min: 0, max: 1, noNaN: true }),
      mtuBytes: fc.integer({ min: 100, max: 1500 }),
    });
    const step = fc.record({
      from: fc.integer({ min: 0, max: 2 }),
      to: fc.integer({ min: 0, max: 3 }),
      bytes: fc.integer({ min: 0, max: 1500 }),
      advanceMs: fc.integer({ min: 0, max: 10 }),
      cut: fc.integer({ min: 0, max: 20 }),
    });
    fc.assert(
      fc.property(
        fc.integer(),
        linkArbitrary,
        fc.array(step, { maxLength: 100 }),
        (seed, link, steps) => {
          const { clock, network, host } = setup(seed, link);
          const hosts = [host(A), host(B), host(C)];
          let received = 0;
          for (const h of hosts) h.conn.onReceive(() => received++);
          const check = () => {
            const c = network.counters();
            assert.equal(c.sent + c.duplicated, c.delivered + c.inFlight + totalDropped(c));
            assert.equal(c.delivered, received);
          };
          for (const s of steps) {
            const to = s.to === 3 ? { address: A, port: 9 } : hosts[s.to]!.endpoint;
            if (s.cut === 0) network.partition([A], [B, C]);
            if (s.cut === 1) network.block(B, C);
            if (s.cut === 2) network.heal();
            hosts[s.from]!.conn.send(new Uint8Array(s.bytes), to);
            clock.advance(s.advanceMs);
            check();
          }
          clock.advance(100);
          check();
          assert.equal(network.counters().inFlight, 0);
        },
      ),
      { numRuns: 200 },
    );
  });
});
