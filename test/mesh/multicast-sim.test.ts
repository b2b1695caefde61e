/**
 * Multicast across a simulated mesh where not everyone is directly connected: a ring of
 * six with one chord, so there are several paths between most pairs and only the trees
 * (and the carrier's sequence window) keep copies from doubling. One peer's Tun sends
 * UDP to a group; every other peer's Tun gets each datagram exactly once, also after a
 * link flapped; a flood is held to the rate; a forged source and "off" deliver nothing.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  attachMulticast,
  type MulticastCarrier,
  type MulticastOptions,
} from "../../src/mesh/multicast.ts";
import { parsePrefix } from "../../src/net/ip.ts";
import { createMeshSim, type MeshSim, type SimPeer } from "../helpers/mesh-sim.ts";
import { udpPacket } from "../helpers/packets.ts";
import { providers } from "../helpers/providers.ts";

const native = providers[1]![1];
const SEED = Number(globalThis.process?.env?.WEFT_SEED ?? 9);
const COUNT = 6;
const GROUP = "239.1.2.3";

/** Peer i owns 10.32.i.0/24, its Tun address is 10.32.i.1. */
const addressOf = (i: number) => `10.32.${i}.1`;

interface World {
  readonly sim: MeshSim;
  readonly peers: SimPeer[];
  readonly carriers: MulticastCarrier[];
}

function world(options: (index: number) => Partial<MulticastOptions> = () => ({})): World {
  const sim = createMeshSim({
    crypto: native,
    seed: SEED,
    count: COUNT,
    staticPeers: (i) => [(i + 1) % COUNT],
  });
  // The ring 0-1-2-3-4-5-0 plus the chord 1-4; every other pair is cut.
  for (let x = 0; x < COUNT; x++)
    for (let y = x + 1; y < COUNT; y++)
      if (!(y === x + 1 || (x === 0 && y === COUNT - 1) || (x === 1 && y === 4))) sim.cut(x, y);
  const peers = sim.peers;
  for (const peer of peers)
    for (const other of peers)
      if (other !== peer)
        peer.mesh.setAllowedIps(other.key, [parsePrefix(`10.32.${other.index}.0/24`)!]);
  const carriers = peers.map((peer) =>
    attachMulticast(peer.mesh, (packet) => peer.tun.write(packet), {
      clock: sim.clock,
      broadcasts: [new Uint8Array([10, 47, 255, 255])],
      ...options(peer.index),
    }),
  );
  sim.run(20_000);
  return { sim, peers, carriers };
}

function datagram(sequence: number, from: number, destination = GROUP, source?: string) {
  return udpPacket(
    source ?? addressOf(from),
    destination,
    40000,
    5000,
    new Uint8Array([from, sequence >> 8, sequence & 255]),
  );
}

/** Sequence numbers of the datagrams from `from` that `peer`'s Tun got, sorted. */
function got(peer: SimPeer, from: number): number[] {
  return peer.tun.written
    .filter((p) => p.length === 31 && p[28] === from)
    .map((p) => (p[29]! << 8) | p[30]!)
    .sort((x, y) => x - y);
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe("multicast across a relayed mesh", () => {
  test("every other peer's Tun gets each of 50 datagrams exactly once, unchanged", async () => {
    const { sim, peers, carriers } = world();
    const sender = peers[0]!;
    assert.ok(
      sender.mesh.status().peers.some((p) => p.path === "relayed"),
      "some peers are reached through others",
    );
    const sent = range(0, 50).map((i) => datagram(i, 0));
    for (const packet of sent) {
      sender.tun.inject(packet);
      sim.run(10);
    }
    sim.run(1_000);
    for (const peer of peers.slice(1)) {
      assert.deepEqual(got(peer, 0), range(0, 50), `${peer.name} got each datagram once`);
      const first = peer.tun.written.find((p) => p[28] === 0 && p[30] === 0);
      assert.deepEqual(first, sent[0], `${peer.name} got the packet unchanged`);
    }
    assert.deepEqual(got(sender, 0), [], "the sender's own Tun gets nothing back");
    assert.equal(carriers[0]!.counters().sent, 50);
    const duplicates = carriers.reduce((n, c) => n + (c.counters().dropped.duplicate ?? 0), 0);
    assert.equal(duplicates, 0, "the trees alone delivered once");
    await sim.close();
  });

  test("directed and limited broadcast reach everyone; every peer can send", async () => {
    const { sim, peers } = world();
    for (const peer of peers) {
      peer.tun.inject(datagram(1, peer.index, "10.47.255.255"));
      peer.tun.inject(datagram(2, peer.index, "255.255.255.255"));
    }
    sim.run(1_000);
    for (const peer of peers)
      for (const other of peers)
        if (other !== peer)
          assert.deepEqual(got(peer, other.index), [1, 2], `${peer.name} from ${other.name}`);
    await sim.close();
  });

  test("while a link on the trees flaps nothing arrives twice, and after it all arrives once", async () => {
    const { sim, peers, carriers } = world();
    const sender = peers[0]!;
    for (let i = 0; i < 60; i++) {
      if (i % 10 === 0) sim.cut(0, 1);
      if (i % 10 === 5) sim.uncut(0, 1);
      sender.tun.inject(datagram(i, 0));
      sim.run(500);
    }
    sim.uncut(0, 1);
    sim.run(20_000);
    for (const peer of peers.slice(1)) {
      const seen = got(peer, 0);
      assert.equal(new Set(seen).size, seen.length, `${peer.name} got no duplicate: ${seen}`);
    }
    for (let i = 100; i < 120; i++) sender.tun.inject(datagram(i, 0));
    sim.run(1_000);
    for (const peer of peers.slice(1)) {
      assert.deepEqual(
        got(peer, 0).filter((s) => s >= 100),
        range(100, 120),
        `${peer.name} after the flap`,
      );
    }
    assert.ok(carriers[0]!.counters().sent >= 80, "the sender kept sending");
    await sim.close();
  });

  test("a flood is held to the burst at the sender, and a member that ignores its limit at the receivers", async () => {
    // Peer 0 keeps to 100/s with a burst of 200; peer 3 pretends there is no limit.
    const { sim, peers, carriers } = world((i) =>
      i === 3 ? { packetsPerSecond: 1e6, burst: 1e6 } : {},
    );
    for (let i = 0; i < 1_000; i++) peers[0]!.tun.inject(datagram(i, 0));
    for (let i = 0; i < 1_000; i++) peers[3]!.tun.inject(datagram(i, 3));
    sim.run(100);
    assert.equal(carriers[0]!.counters().sent, 200, "the sender's burst");
    assert.equal(carriers[3]!.counters().sent, 1_000, "the rogue sent all");
    for (const peer of peers) {
      if (peer.index !== 0) assert.equal(got(peer, 0).length, 200, `${peer.name} from p0`);
      if (peer.index === 3) continue;
      const fromRogue = got(peer, 3).length;
      // Twice the burst, plus what the rate refills while the flood crosses the mesh.
      assert.ok(fromRogue >= 400 && fromRogue <= 420, `${peer.name} took ${fromRogue} from p3`);
    }
    const limited = carriers.reduce(
      (n, c) => n + (c.counters().dropped["origin-rate-limited"] ?? 0),
      0,
    );
    assert.ok(limited >= 600, `receivers refused the rest (${limited})`);
    await sim.close();
  });

  test("a member's multicast from another member's address is dropped at the first hop", async () => {
    const { sim, peers, carriers } = world();
    // Peer 1 sends with peer 0's address.
    peers[1]!.tun.inject(datagram(1, 1, GROUP, addressOf(0)));
    peers[1]!.tun.inject(datagram(2, 1));
    sim.run(1_000);
    for (const peer of peers) {
      if (peer.index === 1) continue;
      assert.deepEqual(got(peer, 1), [2], `${peer.name} got only the honest datagram`);
    }
    const spoofed = carriers.reduce((n, c) => n + (c.counters().dropped["spoofed-source"] ?? 0), 0);
    const neighbours = peers[1]!.mesh.status().peers.filter((p) => p.path === "direct").length;
    assert.equal(spoofed, neighbours, "dropped by each neighbour, forwarded by none");
    await sim.close();
  });

  test("off: a peer with multicast off sends nothing and its Tun gets nothing", async () => {
    const { sim, peers, carriers } = world((i) => (i === 0 || i === 2 ? { enabled: false } : {}));
    for (let i = 0; i < 5; i++) peers[0]!.tun.inject(datagram(i, 0));
    for (let i = 0; i < 5; i++) peers[3]!.tun.inject(datagram(i, 3));
    sim.run(1_000);
    assert.equal(carriers[0]!.counters().sent, 0);
    assert.ok((carriers[0]!.counters().dropped.disabled ?? 0) >= 5, "its own five counted");
    for (const peer of peers)
      assert.deepEqual(got(peer, 0), [], `${peer.name} got nothing from p0`);
    assert.deepEqual(got(peers[2]!, 3), [], "p2 (off) wrote nothing to its Tun");
    assert.deepEqual(got(peers[4]!, 3), range(0, 5), "p4 (on) got p3's datagrams");
    assert.equal(peers[0]!.mesh.device.drops()["no-peer-for-destination"] ?? 0, 0);
    await sim.close();
  });
});
