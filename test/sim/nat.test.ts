/**
 * NAT models on the simulated network: mapping and filtering behaviours (RFC 4787),
 * port assignment, mapping lifetime, hairpinning, nesting, counters, and the table of
 * hole-punching outcomes per pair of classic NAT types that issue #9's tests build on.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { type Endpoint, endpointKey } from "../../src/net/packet-conn.ts";
import {
  CLASSIC_NAT_TYPES,
  type ClassicNatType,
  createRandom,
  type NatBehavior,
  type NatCounters,
  SimNat,
  type SimNatOptions,
  SimNetwork,
  VirtualClock,
} from "../../src/sim/index.ts";

const NAT_A = "203.0.113.1";
const NET_A = "192.168.1.0/24";
const PEER_A = "192.168.1.2";
const PEER_A2 = "192.168.1.3";
const NAT_B = "203.0.113.2";
const NET_B = "192.168.2.0/24";
const PEER_B = "192.168.2.2";
const OBSERVER = "198.51.100.1";
const OBSERVER_2 = "198.51.100.2";
const STUN_PORT = 3478;
const PEER_PORT = 51820;
const WAN_LATENCY_MS = 10;
const LAN_LATENCY_MS = 1;
/** Enough for any round trip in these worlds. */
const ROUND_TRIP_MS = 100;

const BEHAVIORS: readonly NatBehavior[] = [
  "endpointIndependent",
  "addressDependent",
  "addressAndPortDependent",
];
const CLASSIC: readonly ClassicNatType[] = [
  "fullCone",
  "restrictedCone",
  "portRestrictedCone",
  "symmetric",
];

interface Received {
  readonly atMs: number;
  readonly data: Uint8Array;
  readonly from: Endpoint;
}

/** A network with 10 ms between public hosts and 1 ms from a private host to its NAT. */
function world(seed = 1) {
  const clock = new VirtualClock();
  const network = new SimNetwork({
    clock,
    random: createRandom(seed),
    defaultLink: { latencyMs: WAN_LATENCY_MS },
  });
  const nats: SimNat[] = [];

  function nat(options: Partial<SimNatOptions> & Pick<SimNatOptions, "publicAddress">): SimNat {
    const made = new SimNat(network, {
      privateNetwork: options.publicAddress === NAT_B ? NET_B : NET_A,
      ...CLASSIC_NAT_TYPES.fullCone,
      ...options,
    });
    nats.push(made);
    return made;
  }

  /** A conn that records what arrives and then calls `onData`, if set. */
  function host(address: string, port = PEER_PORT) {
    const conn = network.listen(address, port);
    const received: Received[] = [];
    const self = {
      conn,
      received,
      endpoint: { address, port: conn.localPort } as Endpoint,
      onData: undefined as ((data: Uint8Array, from: Endpoint) => void) | undefined,
      /** What arrived from `from`. */
      from(from: Endpoint): Received[] {
        return received.filter((r) => endpointKey(r.from) === endpointKey(from));
      },
    };
    conn.onReceive((data, from) => {
      received.push({ atMs: clock.now(), data, from });
      self.onData?.(data, from);
    });
    return self;
  }

  /** A STUN-like host: it answers every datagram with the source it saw, as JSON. */
  function observer(address = OBSERVER, port = STUN_PORT): Endpoint {
    const conn = network.listen(address, port);
    conn.onReceive((_data, from) =>
      conn.send(new TextEncoder().encode(JSON.stringify(from)), from),
    );
    return { address, port };
  }

  /** The endpoint `observerAt` sees `from` at (the NAT's mapping toward the observer). */
  function observe(from: ReturnType<typeof host>, observerAt: Endpoint): Endpoint {
    const before = from.from(observerAt).length;
    from.conn.send(new Uint8Array([0]), observerAt);
    clock.advance(ROUND_TRIP_MS);
    const replies = from.from(observerAt);
    assert.equal(replies.length, before + 1, `one answer from observer ${endpointKey(observerAt)}`);
    return JSON.parse(new TextDecoder().decode(replies.at(-1)!.data)) as Endpoint;
  }

  network.setLinkBetween(PEER_A, NAT_A, { latencyMs: LAN_LATENCY_MS });
  network.setLinkBetween(PEER_A2, NAT_A, { latencyMs: LAN_LATENCY_MS });
  network.setLinkBetween(PEER_B, NAT_B, { latencyMs: LAN_LATENCY_MS });
  return { clock, network, nats, nat, host, observer, observe };
}

function totalDropped(counters: { readonly dropped: Readonly<Record<string, number>> }): number {
  return Object.values(counters.dropped).reduce((sum, n) => sum + n, 0);
}

/** Every datagram handed to a NAT was translated, hairpinned or dropped by it. */
function natHandled(counters: NatCounters): number {
  return counters.outbound + counters.inbound + counters.hairpinned + totalDropped(counters);
}

describe("SimNat mapping behaviour", () => {
  // What a STUN-like observer sees, toward three destinations: the first observer, the
  // same host on another port, another host. Same letter: same public endpoint.
  const cases: readonly { mapping: NatBehavior; expected: readonly [string, string, string] }[] = [
    { mapping: "endpointIndependent", expected: ["x", "x", "x"] },
    { mapping: "addressDependent", expected: ["x", "x", "y"] },
    { mapping: "addressAndPortDependent", expected: ["x", "y", "z"] },
  ];
  for (const { mapping, expected } of cases) {
    test(`${mapping}: the public endpoint per destination is ${expected.join(", ")}`, () => {
      const w = world();
      w.nat({ publicAddress: NAT_A, mapping, filtering: "addressAndPortDependent" });
      const destinations = [
        w.observer(OBSERVER, STUN_PORT),
        w.observer(OBSERVER, STUN_PORT + 1),
        w.observer(OBSERVER_2, STUN_PORT),
      ];
      const peer = w.host(PEER_A);
      const seen = destinations.map((d) => w.observe(peer, d));
      for (const endpoint of seen) {
        assert.equal(
          endpoint.address,
          NAT_A,
          `seen at the NAT's public address: ${endpoint.address}`,
        );
      }
      // The first mapping keeps the private port (preservePort defaults to true).
      assert.equal(seen[0]!.port, PEER_PORT);
      const letters = new Map<number, string>();
      const actual = seen.map((e) => {
        if (!letters.has(e.port)) letters.set(e.port, "xyz"[letters.size]!);
        return letters.get(e.port)!;
      });
      assert.deepEqual(actual, expected, `ports seen: ${seen.map((e) => e.port).join(", ")}`);
      // Asking the same observer again reuses the mapping.
      assert.deepEqual(w.observe(peer, destinations[0]!), seen[0]);
    });
  }

  test("a peer behind a NAT uses a plain conn on its private address; replies come back", () => {
    const w = world();
    const nat = w.nat({ publicAddress: NAT_A, ...CLASSIC_NAT_TYPES.symmetric });
    const server = w.host(OBSERVER, 9000);
    server.onData = (data, from) => server.conn.send(data, from);
    const peer = w.host(PEER_A);
    peer.conn.send(new Uint8Array([1, 2, 3]), server.endpoint);
    w.clock.advance(ROUND_TRIP_MS);
    assert.deepEqual(server.received[0]!.from, { address: NAT_A, port: PEER_PORT });
    assert.equal(server.received[0]!.atMs, LAN_LATENCY_MS + WAN_LATENCY_MS);
    assert.deepEqual(peer.received[0]!.from, server.endpoint);
    assert.deepEqual(peer.received[0]!.data, new Uint8Array([1, 2, 3]));
    assert.equal(peer.received[0]!.atMs, 2 * (LAN_LATENCY_MS + WAN_LATENCY_MS));
    assert.deepEqual(nat.mappings(), [
      {
        internal: { address: PEER_A, port: PEER_PORT },
        external: { address: NAT_A, port: PEER_PORT },
        remoteAddress: OBSERVER,
        remotePort: 9000,
        expiresAtMs: LAN_LATENCY_MS + 30_000,
      },
    ]);
    assert.deepEqual(nat.externalEndpointFor(peer.endpoint, server.endpoint), {
      address: NAT_A,
      port: PEER_PORT,
    });
    assert.equal(
      nat.externalEndpointFor(peer.endpoint, { address: OBSERVER_2, port: 1 }),
      undefined,
    );
  });

  test("port assignment: preserved when free, else the next free port after the last", () => {
    const w = world();
    w.nat({ publicAddress: NAT_A, ...CLASSIC_NAT_TYPES.symmetric });
    const o1 = w.observer(OBSERVER);
    const o2 = w.observer(OBSERVER_2);
    const a = w.host(PEER_A);
    const a2 = w.host(PEER_A2); // the same private port on another host
    assert.equal(w.observe(a, o1).port, PEER_PORT);
    assert.equal(w.observe(a2, o1).port, PEER_PORT + 1, "51820 is taken: the next one");
    assert.equal(w.observe(a, o2).port, PEER_PORT + 2, "symmetric: sequential, so predictable");
    const other = w.host(PEER_A, 4000);
    assert.equal(w.observe(other, o1).port, 4000, "a free private port is kept");
  });

  test("port assignment without preservation: sequential from the range's start, or random", () => {
    const sequential = world();
    sequential.nat({ publicAddress: NAT_A, preservePort: false });
    const o = sequential.observer();
    const ports = [PEER_A, PEER_A2].map((h) => sequential.observe(sequential.host(h), o).port);
    assert.deepEqual(ports, [1024, 1025]);

    const randomPorts = (seed: number) => {
      const w = world();
      w.nat({
        publicAddress: NAT_A,
        preservePort: false,
        portAllocation: "random",
        random: createRandom(seed),
        portRange: { first: 20_000, last: 29_999 },
      });
      const observerAt = w.observer();
      return [PEER_A, PEER_A2].map((h) => w.observe(w.host(h), observerAt).port);
    };
    const first = randomPorts(7);
    for (const port of first) {
      assert.ok(port >= 20_000 && port <= 29_999, `random port ${port} in the range`);
    }
    assert.notEqual(first[0], first[1]);
    assert.deepEqual(randomPorts(7), first, "the same seed picks the same ports");
    assert.notDeepEqual(randomPorts(8), first, "another seed picks others");
  });

  test("a full port range drops new mappings as portsExhausted; an expired one frees its port", () => {
    const w = world();
    const nat = w.nat({
      publicAddress: NAT_A,
      preservePort: false,
      portRange: { first: 2000, last: 2001 },
    });
    const o = w.observer();
    const hosts = [w.host(PEER_A), w.host(PEER_A2), w.host(PEER_A, 5000)];
    assert.equal(w.observe(hosts[0]!, o).port, 2000);
    assert.equal(w.observe(hosts[1]!, o).port, 2001);
    hosts[2]!.conn.send(new Uint8Array([0]), o);
    w.clock.advance(ROUND_TRIP_MS);
    assert.equal(hosts[2]!.received.length, 0, "no mapping, no answer");
    assert.equal(nat.counters().dropped.portsExhausted, 1);
    w.clock.advance(30_000);
    assert.equal(w.observe(hosts[2]!, o).port, 2000, "the first free port after expiry");
  });
});

describe("SimNat filtering behaviour", () => {
  // The peer has sent to S1:3478 (through an endpoint-independent mapping); who may send back?
  const sources = [
    { name: "the same host and port", address: OBSERVER, port: STUN_PORT },
    { name: "the same host, another port", address: OBSERVER, port: STUN_PORT + 1 },
    { name: "another host", address: OBSERVER_2, port: STUN_PORT },
  ] as const;
  const allowed: Record<NatBehavior, readonly boolean[]> = {
    endpointIndependent: [true, true, true],
    addressDependent: [true, true, false],
    addressAndPortDependent: [true, false, false],
  };
  for (const filtering of BEHAVIORS) {
    for (const [i, source] of sources.entries()) {
      const pass = allowed[filtering][i]!;
      test(`${filtering}: inbound from ${source.name} ${pass ? "passes" : "is dropped"}`, () => {
        const w = world();
        const nat = w.nat({ publicAddress: NAT_A, mapping: "endpointIndependent", filtering });
        const peer = w.host(PEER_A);
        const remote = w.host(source.address, source.port);
        // The peer opens its mapping toward OBSERVER:3478: the `remote` itself in case 0.
        const opened = i === 0 ? remote : w.host(OBSERVER, STUN_PORT);
        peer.conn.send(new Uint8Array([1]), opened.endpoint);
        w.clock.advance(ROUND_TRIP_MS);
        remote.conn.send(new Uint8Array([2]), { address: NAT_A, port: PEER_PORT });
        w.clock.advance(ROUND_TRIP_MS);
        const got = peer.from(remote.endpoint).length;
        assert.equal(got, pass ? 1 : 0, `${filtering}, ${source.name}: received ${got}`);
        assert.equal(nat.counters().dropped.filtered, pass ? 0 : 1);
        assert.equal(nat.counters().inbound, pass ? 1 : 0);
      });
    }
  }

  test("unsolicited inbound with no mapping is dropped as noMapping, whatever the filter", () => {
    for (const filtering of BEHAVIORS) {
      const w = world();
      const nat = w.nat({ publicAddress: NAT_A, mapping: "endpointIndependent", filtering });
      const peer = w.host(PEER_A);
      const remote = w.host(OBSERVER);
      remote.conn.send(new Uint8Array([1]), { address: NAT_A, port: PEER_PORT });
      w.clock.advance(ROUND_TRIP_MS);
      assert.equal(peer.received.length, 0, `${filtering}: nothing arrives`);
      assert.equal(nat.counters().dropped.noMapping, 1, `${filtering}: counted as noMapping`);
    }
  });

  test("private addresses cannot be reached from outside; hosts behind one NAT reach each other", () => {
    const w = world();
    const nat = w.nat({ publicAddress: NAT_A });
    const a = w.host(PEER_A);
    const a2 = w.host(PEER_A2);
    const outside = w.host(OBSERVER);
    outside.conn.send(new Uint8Array([1]), a.endpoint);
    a.conn.send(new Uint8Array([2]), a2.endpoint);
    w.clock.advance(ROUND_TRIP_MS);
    assert.equal(a.received.length, 0, "the outside host's datagram to a private address is lost");
    assert.equal(w.network.counters().dropped.unroutable, 1);
    assert.deepEqual(a2.received[0]!.from, a.endpoint, "same LAN: direct, untranslated");
    assert.equal(natHandled(nat.counters()), 0);
  });
});

describe("SimNat mapping lifetime", () => {
  test("inbound passes until the lifetime ends, then is dropped as expired; the next outbound may get a new port", () => {
    const w = world();
    const nat = w.nat({
      publicAddress: NAT_A,
      ...CLASSIC_NAT_TYPES.portRestrictedCone,
      preservePort: false,
      portAllocation: "random",
      random: createRandom(42),
    });
    const o = w.observer();
    const peer = w.host(PEER_A);
    const server = w.host(OBSERVER, 9000);
    peer.conn.send(new Uint8Array([0]), server.endpoint); // reaches the NAT at 1 ms
    w.clock.advance(ROUND_TRIP_MS);
    const mapped = server.received[0]!.from;
    const expiresAtMs = LAN_LATENCY_MS + 30_000; // made when the datagram reached the NAT
    assert.equal(nat.mappings()[0]!.expiresAtMs, expiresAtMs);
    // Inbound reaching the NAT 1 ms before expiry passes (and does not refresh); 1 ms later it is too late.
    w.clock.advance(expiresAtMs - 1 - WAN_LATENCY_MS - w.clock.now());
    server.conn.send(new Uint8Array([1]), mapped);
    w.clock.advance(1);
    server.conn.send(new Uint8Array([2]), mapped);
    w.clock.advance(ROUND_TRIP_MS);
    assert.deepEqual(
      peer.from(server.endpoint).map((r) => r.data[0]),
      [1],
      "the first passes, the second reaches an expired mapping",
    );
    assert.equal(nat.counters().dropped.expired, 1);
    assert.equal(nat.counters().mappingsExpired, 1);
    assert.deepEqual(nat.mappings(), []);
    const again = w.observe(peer, o);
    assert.notEqual(again.port, mapped.port, `a new random port, not ${mapped.port} again`);
    server.conn.send(new Uint8Array([3]), mapped);
    w.clock.advance(ROUND_TRIP_MS);
    assert.equal(nat.counters().dropped.expired, 2, "the old port still counts as expired");
  });

  test("outbound traffic refreshes the mapping; inbound does not unless inboundRefresh", () => {
    for (const inboundRefresh of [false, true]) {
      const w = world();
      const nat = w.nat({ publicAddress: NAT_A, ...CLASSIC_NAT_TYPES.fullCone, inboundRefresh });
      const peer = w.host(PEER_A);
      const server = w.host(OBSERVER, 9000);
      const mapped = { address: NAT_A, port: PEER_PORT };
      peer.conn.send(new Uint8Array([0]), server.endpoint); // at the NAT at 1 ms: until 30.001 s
      w.clock.advance(20_000);
      peer.conn.send(new Uint8Array([0]), server.endpoint); // outbound refresh: until 50.001 s
      w.clock.advance(20_000);
      server.conn.send(new Uint8Array([1]), mapped); // at the NAT at 40.01 s: passes
      w.clock.advance(ROUND_TRIP_MS);
      assert.equal(peer.received.length, 1, `inboundRefresh ${inboundRefresh}: outbound refreshed`);
      w.clock.advance(15_000); // at the NAT at 55.11 s: expired unless 40.01 s refreshed it
      server.conn.send(new Uint8Array([2]), mapped);
      w.clock.advance(ROUND_TRIP_MS);
      assert.equal(
        peer.received.length,
        inboundRefresh ? 2 : 1,
        `inboundRefresh ${inboundRefresh}: received ${peer.received.length}`,
      );
      assert.equal(nat.counters().dropped.expired, inboundRefresh ? 0 : 1);
    }
  });

  test("each permission lapses on its own while the mapping lives on", () => {
    const w = world();
    const nat = w.nat({ publicAddress: NAT_A, ...CLASSIC_NAT_TYPES.portRestrictedCone });
    const peer = w.host(PEER_A);
    const old = w.host(OBSERVER, 9000);
    const current = w.host(OBSERVER_2, 9000);
    const mapped = { address: NAT_A, port: PEER_PORT };
    peer.conn.send(new Uint8Array([0]), old.endpoint);
    for (let i = 0; i < 5; i++) {
      peer.conn.send(new Uint8Array([0]), current.endpoint);
      w.clock.advance(10_000);
    }
    old.conn.send(new Uint8Array([1]), mapped);
    current.conn.send(new Uint8Array([1]), mapped);
    w.clock.advance(ROUND_TRIP_MS);
    assert.equal(peer.from(current.endpoint).length, 1, "the remote it keeps talking to passes");
    assert.equal(peer.from(old.endpoint).length, 0, "the one it stopped talking to is filtered");
    assert.equal(nat.counters().dropped.filtered, 1);
  });
});

describe("SimNat hairpinning", () => {
  /** Two peers behind one NAT learn their public endpoints; A sends to B's. */
  function hairpin(options: Partial<SimNatOptions>, bSendsFirst = false) {
    const w = world();
    const nat = w.nat({ publicAddress: NAT_A, ...options });
    const o = w.observer();
    const a = w.host(PEER_A);
    const b = w.host(PEER_A2, 4000);
    const aPublic = w.observe(a, o);
    const bPublic = w.observe(b, o);
    if (bSendsFirst) b.conn.send(new Uint8Array([9]), aPublic);
    w.clock.advance(ROUND_TRIP_MS);
    a.conn.send(new Uint8Array([1]), bPublic);
    w.clock.advance(ROUND_TRIP_MS);
    return { nat, a, b, aPublic, bPublic };
  }

  test("on: a datagram to the NAT's own public endpoint comes back in, from the sender's public endpoint", () => {
    const { nat, b, aPublic } = hairpin({ ...CLASSIC_NAT_TYPES.fullCone });
    assert.equal(b.from(aPublic).length, 1, "B gets A's datagram from A's public endpoint");
    assert.equal(nat.counters().hairpinned, 1);
  });

  test("off: it is dropped and counted as hairpin", () => {
    const { nat, b } = hairpin({ ...CLASSIC_NAT_TYPES.fullCone, hairpinning: false });
    assert.equal(b.received.length, 1, "only the observer's answer");
    assert.equal(nat.counters().hairpinned, 0);
    assert.equal(nat.counters().dropped.hairpin, 1);
  });

  test("the inbound half is filtered: port-restricted passes only after B sent to A's public endpoint", () => {
    const closed = hairpin({ ...CLASSIC_NAT_TYPES.portRestrictedCone });
    assert.equal(closed.b.from(closed.aPublic).length, 0, "B never sent to A: filtered");
    assert.equal(closed.nat.counters().dropped.filtered, 1);
    const open = hairpin({ ...CLASSIC_NAT_TYPES.portRestrictedCone }, true);
    assert.equal(open.b.from(open.aPublic).length, 1, "B sent to A first: passes");
    assert.equal(
      open.a.from(open.bPublic).length,
      0,
      "B's first datagram was filtered at A's mapping",
    );
    assert.equal(open.nat.counters().hairpinned, 1);
  });
});

describe("SimNat nesting and attachment", () => {
  // A home NAT behind a carrier-grade NAT (RFC 6598's shared space 100.64.0.0/10).
  const CGN = "203.0.113.9";
  const HOME = "100.64.0.2";
  const NEIGHBOUR = "100.64.0.3";

  test("a NAT behind a NAT: the outside sees the outer address, replies find their way back", () => {
    const w = world();
    const cgn = w.nat({ publicAddress: CGN, privateNetwork: "100.64.0.0/10" });
    const home = w.nat({
      publicAddress: HOME,
      privateNetwork: NET_A,
      ...CLASSIC_NAT_TYPES.portRestrictedCone,
    });
    const o = w.observer();
    const peer = w.host(PEER_A);
    const neighbour = w.host(NEIGHBOUR);
    const seen = w.observe(peer, o);
    assert.deepEqual(seen, { address: CGN, port: PEER_PORT });
    assert.deepEqual(home.counters().outbound, 1);
    assert.deepEqual(cgn.counters().outbound, 1);
    assert.equal(home.counters().inbound, 1);
    assert.equal(cgn.counters().inbound, 1);
    // Inside the carrier's network, the neighbour sees the home NAT's address, untouched by the CGN.
    peer.conn.send(new Uint8Array([1]), neighbour.endpoint);
    neighbour.conn.send(new Uint8Array([2]), peer.endpoint); // a private address below its own network
    w.clock.advance(ROUND_TRIP_MS);
    assert.deepEqual(neighbour.received[0]!.from, { address: HOME, port: PEER_PORT });
    assert.equal(cgn.counters().outbound, 1, "the CGN did not translate the neighbour's datagram");
    assert.equal(w.network.counters().dropped.unroutable, 1);
    assert.equal(peer.from(neighbour.endpoint).length, 0);
  });

  test("attachment refuses a taken or inconsistent address", () => {
    const w = world();
    w.nat({ publicAddress: NAT_A });
    assert.throws(() => w.network.listen(NAT_A, 1), { code: "EADDRINUSE" });
    assert.throws(() => w.nat({ publicAddress: NAT_A, privateNetwork: NET_B }), {
      code: "EADDRINUSE",
    });
    w.network.listen(OBSERVER, 1);
    assert.throws(() => w.nat({ publicAddress: OBSERVER, privateNetwork: NET_B }), {
      code: "EADDRINUSE",
    });
    assert.throws(() => w.nat({ publicAddress: NAT_B, privateNetwork: NET_A }), RangeError);
    assert.throws(() => w.nat({ publicAddress: "192.168.2.1", privateNetwork: NET_B }), RangeError);
    assert.throws(() => w.nat({ publicAddress: NAT_B, privateNetwork: "fd00::/64" }), RangeError);
    assert.throws(
      () => w.nat({ publicAddress: NAT_B, privateNetwork: "192.168.2/24" }),
      SyntaxError,
    );
    // A loop: 192.168.2.1 behind NAT_A's network... and NAT_A behind its own.
    assert.throws(
      () => w.nat({ publicAddress: "192.168.1.254", privateNetwork: "203.0.113.0/24" }),
      RangeError,
    );
    assert.throws(() => w.nat({ publicAddress: NAT_B, mapping: "cone" as NatBehavior }), TypeError);
    assert.throws(() => w.nat({ publicAddress: NAT_B, portAllocation: "random" }), TypeError);
    assert.throws(
      () => w.nat({ publicAddress: NAT_B, portRange: { first: 2000, last: 1999 } }),
      RangeError,
    );
    assert.throws(() => w.nat({ publicAddress: NAT_B, mappingLifetimeMs: 0 }), RangeError);
    // Failed attempts left nothing behind: NAT_B is still free.
    w.nat({ publicAddress: NAT_B });
  });
});

describe("SimNat counters", () => {
  test("every datagram is accounted for, in the network and in each NAT", () => {
    const step = fc.record({
      from: fc.integer({ min: 0, max: 4 }),
      to: fc.integer({ min: 0, max: 6 }),
      advanceMs: fc.integer({ min: 0, max: 20_000 }),
    });
    fc.assert(
      fc.property(
        fc.integer(),
        fc.constantFrom(...CLASSIC),
        fc.constantFrom(...CLASSIC),
        fc.double({ min: 0, max: 0.3, noNaN: true }),
        fc.array(step, { maxLength: 60 }),
        (seed, typeA, typeB, lossRate, steps) => {
          const w = world(seed);
          w.network.setDefaultLink({ lossRate, jitterMs: 5, duplicateRate: 0.05 });
          w.nat({ publicAddress: NAT_A, ...CLASSIC_NAT_TYPES[typeA], mappingLifetimeMs: 15_000 });
          w.nat({ publicAddress: NAT_B, ...CLASSIC_NAT_TYPES[typeB], mappingLifetimeMs: 15_000 });
          const hosts = [w.host(PEER_A), w.host(PEER_A2), w.host(PEER_B), w.host(OBSERVER)];
          hosts.push(w.host(OBSERVER_2));
          const echo = hosts[3]!;
          echo.onData = (data, from) => {
            if (endpointKey(from) !== endpointKey(echo.endpoint)) echo.conn.send(data, from);
          };
          const targets: Endpoint[] = [
            ...hosts.map((h) => h.endpoint),
            { address: NAT_A, port: PEER_PORT },
            { address: NAT_B, port: PEER_PORT },
          ];
          const check = () => {
            const c = w.network.counters();
            assert.equal(
              c.sent + c.duplicated,
              c.delivered + c.forwarded + c.inFlight + totalDropped(c),
              `network: ${JSON.stringify(c)}`,
            );
            const handled = w.nats.reduce((sum, nat) => sum + natHandled(nat.counters()), 0);
            assert.equal(c.forwarded, handled, "every datagram handed to a NAT is counted there");
            const received = hosts.reduce((sum, h) => sum + h.received.length, 0);
            assert.equal(c.delivered, received);
          };
          for (const s of steps) {
            hosts[s.from]!.conn.send(new Uint8Array([s.from]), targets[s.to]!);
            w.clock.advance(s.advanceMs);
            check();
          }
          w.clock.advance(1_000);
          check();
          assert.equal(w.network.counters().inFlight, 0);
        },
      ),
      { numRuns: 150 },
    );
  });
});

/**
 * Hole punching between peer A behind a NAT of one classic type and peer B behind a NAT of
 * another. Each asks the observer for its public endpoint; the test hands it to the other
 * (as a relay would); at the same virtual instant both send a probe to the other's
 * observed endpoint, and again every second, five rounds in all. A peer answers every probe
 * and from then on sends to the source it actually saw (a peer-reflexive candidate in
 * ICE's terms, RFC 8445 §7.3.1.3; WireGuard does the same when it roams to the source of an
 * authenticated packet).
 *
 * Expected outcome, direct or not, rows A's NAT, columns B's:
 *
 * |                 | full cone | restricted | port-restr. | symmetric |
 * | --------------- | --------- | ---------- | ----------- | --------- |
 * | full cone       | direct    | direct     | direct      | direct    |
 * | restricted cone | direct    | direct     | direct      | direct    |
 * | port-restricted | direct    | direct     | direct      | no        |
 * | symmetric       | direct    | direct     | no          | no        |
 *
 * Why, with S the symmetric side: its mapping toward the other peer is new (another port,
 * 51821, than the 51820 the observer saw), and its address-and-port-dependent filter on the
 * observed mapping admits only the observer. So the other peer's probes to the observed
 * endpoint are always filtered, and S's probes arrive from a port nobody announced:
 * - cone with endpoint-independent filtering (full cone): S's probe passes; the cone peer
 *   answers the source it saw, which S's new mapping admits (S sent there). Direct.
 * - restricted cone (address-dependent filtering): the cone peer's own probe opened its
 *   filter to S's address, any port, so S's probe from the new port passes. Direct.
 * - port-restricted cone: its filter admits only S's observed endpoint, not the new port.
 *   Neither side hears the other. No.
 * - symmetric: each side's probes are filtered at the other's observed mapping. No.
 * Without answering the seen source, full cone × symmetric is one way only (a test below).
 */
const PUNCH_OUTCOMES: Record<ClassicNatType, Record<ClassicNatType, boolean>> = {
  fullCone: { fullCone: true, restrictedCone: true, portRestrictedCone: true, symmetric: true },
  restrictedCone: {
    fullCone: true,
    restrictedCone: true,
    portRestrictedCone: true,
    symmetric: true,
  },
  portRestrictedCone: {
    fullCone: true,
    restrictedCone: true,
    portRestrictedCone: true,
    symmetric: false,
  },
  symmetric: { fullCone: true, restrictedCone: true, portRestrictedCone: false, symmetric: false },
};
const PROBE = 1;
const ANSWER = 2;
const PUNCH_ROUNDS = 5;
const PUNCH_INTERVAL_MS = 1_000;
/** Issue #9: punching succeeds within 5 virtual seconds where it should. */
const PUNCH_DEADLINE_MS = 5_000;

function punch(typeA: ClassicNatType, typeB: ClassicNatType, answerSeenSource = true) {
  const w = world();
  const natA = w.nat({ publicAddress: NAT_A, ...CLASSIC_NAT_TYPES[typeA] });
  const natB = w.nat({ publicAddress: NAT_B, ...CLASSIC_NAT_TYPES[typeB] });
  const o = w.observer();
  const a = w.host(PEER_A);
  const b = w.host(PEER_B);
  const aObserved = w.observe(a, o);
  const bObserved = w.observe(b, o);
  const startMs = w.clock.now();
  const peers = [
    { host: a, target: bObserved, heardAtMs: undefined as number | undefined },
    { host: b, target: aObserved, heardAtMs: undefined as number | undefined },
  ];
  for (const peer of peers) {
    peer.host.onData = (data, from) => {
      if (endpointKey(from) === endpointKey(o)) return;
      peer.heardAtMs ??= w.clock.now();
      if (answerSeenSource) peer.target = from;
      if (data[0] === PROBE) peer.host.conn.send(new Uint8Array([ANSWER]), peer.target);
    };
  }
  for (let round = 0; round < PUNCH_ROUNDS; round++) {
    w.clock.setTimer(round * PUNCH_INTERVAL_MS, () => {
      for (const peer of peers) peer.host.conn.send(new Uint8Array([PROBE]), peer.target);
    });
  }
  w.clock.advance(PUNCH_ROUNDS * PUNCH_INTERVAL_MS + ROUND_TRIP_MS);
  const [pa, pb] = peers;
  return {
    natA,
    natB,
    aObserved,
    bObserved,
    aHeardB: pa!.heardAtMs !== undefined,
    bHeardA: pb!.heardAtMs !== undefined,
    /** When both had heard from the other, after the first probes. */
    directAfterMs:
      pa!.heardAtMs === undefined || pb!.heardAtMs === undefined
        ? undefined
        : Math.max(pa!.heardAtMs, pb!.heardAtMs) - startMs,
    /** The sources each saw the other at. */
    aSawB: a.received.filter((r) => endpointKey(r.from) !== endpointKey(o)).map((r) => r.from),
    bSawA: b.received.filter((r) => endpointKey(r.from) !== endpointKey(o)).map((r) => r.from),
  };
}

describe("hole punching through classic NAT pairs", () => {
  for (const typeA of CLASSIC) {
    for (const typeB of CLASSIC) {
      const direct = PUNCH_OUTCOMES[typeA][typeB];
      test(`${typeA} × ${typeB}: ${direct ? "direct" : "no direct path"}`, () => {
        const r = punch(typeA, typeB);
        const pair = `${typeA} × ${typeB}`;
        assert.equal(r.aHeardB, direct, `${pair}: A heard B: ${r.aHeardB}`);
        assert.equal(r.bHeardA, direct, `${pair}: B heard A: ${r.bHeardA}`);
        for (const from of r.aSawB)
          assert.equal(from.address, NAT_B, `${pair}: A saw ${from.address}`);
        for (const from of r.bSawA)
          assert.equal(from.address, NAT_A, `${pair}: B saw ${from.address}`);
        if (direct) {
          assert.ok(
            r.directAfterMs !== undefined && r.directAfterMs <= PUNCH_DEADLINE_MS,
            `${pair}: direct after ${r.directAfterMs} ms`,
          );
        } else {
          // Not lost nor unmapped: each NAT's filter refused every probe of the five rounds.
          assert.equal(
            r.natA.counters().dropped.filtered,
            PUNCH_ROUNDS,
            `${pair}: A's NAT filtered`,
          );
          assert.equal(
            r.natB.counters().dropped.filtered,
            PUNCH_ROUNDS,
            `${pair}: B's NAT filtered`,
          );
        }
        // The symmetric side's mapping toward the peer is not the one the observer saw.
        if (typeA === "symmetric") {
          const towardB = r.natA.externalEndpointFor(
            { address: PEER_A, port: PEER_PORT },
            r.bObserved,
          );
          assert.ok(towardB !== undefined, `${pair}: A has a mapping toward B`);
          assert.notDeepEqual(towardB, r.aObserved, `${pair}: and it is not the observed one`);
        }
      });
    }
  }

  test("every pair is in the table, and the table is symmetric", () => {
    for (const x of CLASSIC) {
      for (const y of CLASSIC) {
        assert.equal(PUNCH_OUTCOMES[x][y], PUNCH_OUTCOMES[y][x], `${x} × ${y} as ${y} × ${x}`);
      }
    }
  });

  test("full cone × symmetric is one way only if the cone peer answers the observed endpoint", () => {
    const r = punch("fullCone", "symmetric", false);
    assert.equal(r.aHeardB, true, "the symmetric side's probes reach the full cone");
    assert.equal(
      r.bHeardA,
      false,
      "the cone's probes and answers to the observed endpoint are filtered",
    );
    assert.equal(r.natB.counters().dropped.filtered, 2 * PUNCH_ROUNDS);
  });

  test("a relay reaches both peers of a symmetric × symmetric pair", () => {
    const w = world();
    w.nat({ publicAddress: NAT_A, ...CLASSIC_NAT_TYPES.symmetric });
    w.nat({ publicAddress: NAT_B, ...CLASSIC_NAT_TYPES.symmetric });
    const relay = w.host(OBSERVER, 9000);
    const a = w.host(PEER_A);
    const b = w.host(PEER_B);
    // Each registers with the relay; the relay forwards to the other's source.
    a.conn.send(new Uint8Array([0]), relay.endpoint);
    b.conn.send(new Uint8Array([0]), relay.endpoint);
    w.clock.advance(ROUND_TRIP_MS);
    const aAt = relay.received.find((r) => r.from.address === NAT_A)!.from;
    const bAt = relay.received.find((r) => r.from.address === NAT_B)!.from;
    relay.onData = (data, from) =>
      relay.conn.send(data, endpointKey(from) === endpointKey(aAt) ? bAt : aAt);
    a.conn.send(new Uint8Array([7]), relay.endpoint);
    b.conn.send(new Uint8Array([8]), relay.endpoint);
    w.clock.advance(ROUND_TRIP_MS);
    assert.deepEqual(
      b.from(relay.endpoint).map((r) => r.data[0]),
      [7],
    );
    assert.deepEqual(
      a.from(relay.endpoint).map((r) => r.data[0]),
      [8],
    );
  });
});
