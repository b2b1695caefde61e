/**
 * Path MTU in simulation (issue #9): real meshes on a virtual clock, with a link whose
 * MTU is 1280 in both directions somewhere between them. Probing converges to what the
 * link carries (1280 - 20 IPv4 - 8 UDP - 32 WireGuard = 1220), an oversize DF packet
 * gets an ICMP frag-needed with that MTU back on the sender's Tun, a packet without DF
 * arrives at the far Tun in fragments that reassemble to it, and a relayed path gets its
 * first hop's MTU less the relay overhead. Prints the seed on failure (WEFT_SEED=...).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseIcmpError } from "../../src/net/icmp-errors.ts";
import type { SimPeer } from "../helpers/mesh-sim.ts";
import { addressOf, createMeshSim, type MeshSim } from "../helpers/mesh-sim.ts";
import { providers } from "../helpers/providers.ts";
import {
  assertSameBytes,
  buildIpv4,
  icmpv4ChecksumOk,
  ipv4HeaderChecksumOk,
  reassembleIpv4,
} from "../net/packet-fixtures.ts";

const native = providers[1]![1];
const SEED = Number(globalThis.process?.env?.WEFT_SEED ?? 20261128);
/** 1280 less the outer IPv4 (20) and UDP (8) headers and WireGuard's header and tag (32). */
const LINK_MTU = 1280;
const EXPECTED_MTU = 1220;
/** The relay frame's header (68) and the relayed message's header and tag (32). */
const RELAY_OVERHEAD = 100;

async function withSeed(name: string, body: (seed: number) => Promise<void> | void) {
  try {
    await body(SEED);
  } catch (error) {
    throw new Error(`${name} failed with seed ${SEED} (rerun with WEFT_SEED=${SEED})`, {
      cause: error,
    });
  }
}

/** Overlay address of peer `i`: 10.40.0.(i+1). */
function overlay(i: number): Uint8Array {
  return new Uint8Array([10, 40, 0, i + 1]);
}

/** Routes every peer's overlay /32 to it on every other peer. */
function routeOverlay(sim: MeshSim): void {
  for (const p of sim.peers)
    for (const q of sim.peers)
      if (p !== q) p.mesh.setAllowedIps(q.key, [{ address: overlay(q.index), prefixLength: 32 }]);
}

function udp(from: number, to: number, totalBytes: number, dontFragment: boolean): Uint8Array {
  const payload = new Uint8Array(totalBytes - 20);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + from) & 0xff;
  return buildIpv4({
    typeOfService: 0,
    identification: 0x4242,
    reservedFlag: false,
    dontFragment,
    moreFragments: false,
    fragmentOffsetUnits: 0,
    timeToLive: 64,
    protocol: 17,
    source: overlay(from),
    destination: overlay(to),
    options: new Uint8Array(0),
    payload,
  });
}

function pathMtuOf(from: SimPeer, to: SimPeer): number | undefined {
  return from.mesh.status().peers.find((p) => p.publicKey === to.key)?.pathMtu;
}

/** Two peers whose only link has MTU 1280 both ways, connected and routed. */
function createNarrowPair(seed: number) {
  const sim = createMeshSim({ crypto: native, seed, count: 2 });
  sim.network.setLinkBetween(addressOf(0), addressOf(1), { mtuBytes: LINK_MTU });
  routeOverlay(sim);
  const [a, b] = sim.peers as [SimPeer, SimPeer];
  return { sim, a, b };
}

describe("path MTU in simulation", () => {
  test("probing finds a 1280-byte link: the path MTU becomes 1220 both ways", () =>
    withSeed("converge", async (seed) => {
      const { sim, a, b } = createNarrowPair(seed);
      const direct = sim.runUntil(
        () => a.mesh.status().peers.find((p) => p.publicKey === b.key)?.path === "direct",
        10_000,
        10,
      );
      assert.ok(direct >= 0, "a direct path comes up");
      const tookMs = sim.runUntil(
        () => pathMtuOf(a, b) === EXPECTED_MTU && pathMtuOf(b, a) === EXPECTED_MTU,
        20_000,
        10,
      );
      assert.ok(tookMs >= 0, `both sides reach ${EXPECTED_MTU}: ${pathMtuOf(a, b)}`);
      console.log(`path MTU converged ${tookMs} ms (virtual) after the direct path came up`);
      sim.run(30_000);
      assert.equal(pathMtuOf(a, b), EXPECTED_MTU, "and stays there");
      assert.equal(a.mesh.status().peers[0]!.path, "direct", "the path itself stays up");
      await sim.close();
    }));

  test("an oversize DF packet gets a frag-needed with the path MTU; without DF it is fragmented", () =>
    withSeed("oversize", async (seed) => {
      const { sim, a, b } = createNarrowPair(seed);
      sim.runUntil(() => pathMtuOf(a, b) === EXPECTED_MTU, 20_000, 10);
      assert.equal(pathMtuOf(a, b), EXPECTED_MTU, "converged first");

      const mtuDropsBefore = sim.network.counters().dropped.mtu;
      const big = udp(0, 1, 1400, true);
      a.tun.inject(big);
      sim.run(500);
      assert.equal(b.tun.written.length, 0, "the DF packet is not sent");
      assert.equal(a.tun.written.length, 1, "an error came back into the sender's Tun");
      const error = a.tun.written[0]!;
      assert.ok(ipv4HeaderChecksumOk(error), "its IP header checksum verifies");
      assert.ok(icmpv4ChecksumOk(error), "its ICMP checksum verifies");
      const report = parseIcmpError(error);
      assert.equal(report?.type, 3, "destination unreachable");
      assert.equal(report?.code, 4, "fragmentation needed");
      assert.equal(report?.mtuBytes, EXPECTED_MTU, "with the path MTU");
      assertSameBytes(report?.reporter, overlay(1), "from the far end");
      assertSameBytes(error.subarray(16, 20), overlay(0), "to the sender");

      const fits = udp(0, 1, EXPECTED_MTU, true);
      a.tun.inject(fits);
      sim.run(500);
      assert.equal(b.tun.written.length, 1, "a packet of exactly the path MTU gets through");
      assertSameBytes(b.tun.written[0], fits, "whole");

      const loose = udp(0, 1, 1400, false);
      a.tun.inject(loose);
      sim.run(500);
      const pieces = b.tun.written.slice(1);
      assert.equal(pieces.length, 2, "the packet without DF arrives in two fragments");
      for (const piece of pieces)
        assert.ok(piece.length <= EXPECTED_MTU, `a fragment of ${piece.length} bytes fits`);
      assertSameBytes(reassembleIpv4(pieces), loose, "the fragments reassemble to it");
      assert.equal(
        sim.network.counters().dropped.mtu,
        mtuDropsBefore,
        "no datagram was too big for the link once the MTU was known",
      );
      await sim.close();
    }));

  test("a relayed path gets the first hop's MTU less the relay overhead, and carries it", () =>
    withSeed("relayed", async (seed) => {
      // A and C know only B; A-C is cut, so A reaches C through B. A-B has MTU 1280.
      const sim = createMeshSim({
        crypto: native,
        seed,
        count: 3,
        staticPeers: (i) => (i === 1 ? [] : [1]),
      });
      sim.cut(0, 2);
      sim.network.setLinkBetween(addressOf(0), addressOf(1), { mtuBytes: LINK_MTU });
      routeOverlay(sim);
      const [a, b, c] = sim.peers as [SimPeer, SimPeer, SimPeer];
      const relayedMtu = EXPECTED_MTU - RELAY_OVERHEAD;
      const tookMs = sim.runUntil(
        () =>
          a.mesh.status().peers.find((p) => p.publicKey === c.key)?.path === "relayed" &&
          pathMtuOf(a, b) === EXPECTED_MTU &&
          pathMtuOf(a, c) === relayedMtu,
        30_000,
        10,
      );
      assert.ok(tookMs >= 0, `A's path to C is relayed with MTU ${relayedMtu}: ${pathMtuOf(a, c)}`);

      a.tun.inject(udp(0, 2, 1200, true));
      sim.run(500);
      const report = parseIcmpError(a.tun.written[0] ?? new Uint8Array(0));
      assert.equal(report?.mtuBytes, relayedMtu, "the relayed MTU is what the sender is told");
      const fits = udp(0, 2, relayedMtu, true);
      a.tun.inject(fits);
      sim.run(500);
      assert.equal(c.tun.written.length, 1, "a packet of the relayed MTU arrives");
      assertSameBytes(c.tun.written[0], fits, "whole");
      await sim.close();
    }));

  test("a small link past the relay: the sender is told only the first hop's, and the relay cuts frames", () =>
    withSeed("second-hop", async (seed) => {
      const sim = createMeshSim({
        crypto: native,
        seed,
        count: 3,
        staticPeers: (i) => (i === 1 ? [] : [1]),
      });
      sim.cut(0, 2);
      sim.network.setLinkBetween(addressOf(1), addressOf(2), { mtuBytes: LINK_MTU });
      routeOverlay(sim);
      const [a, b, c] = sim.peers as [SimPeer, SimPeer, SimPeer];
      const firstHopOnly = 1408 - RELAY_OVERHEAD; // min(1420, the largest frame) - 100
      sim.runUntil(
        () => pathMtuOf(a, c) === firstHopOnly && pathMtuOf(b, c) === EXPECTED_MTU,
        30_000,
        10,
      );
      assert.equal(pathMtuOf(a, c), firstHopOnly, "A knows only its first hop");
      assert.equal(pathMtuOf(b, c), EXPECTED_MTU, "B probed its own link to C");
      const packet = udp(0, 2, firstHopOnly, true);
      a.tun.inject(packet);
      sim.run(1_000);
      assert.equal(c.tun.written.length, 1, "it still arrives: B cut the relay frame in pieces");
      assertSameBytes(c.tun.written[0], packet, "whole");
      assert.ok(c.mesh.status().relayed.reassembled >= 1, "C put the pieces back together");
      await sim.close();
    }));
});
