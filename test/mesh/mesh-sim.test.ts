/**
 * The mesh in simulation: real Devices, gossip and routing on a virtual clock and a
 * seeded network. Each test prints its seed when it fails; rerun with WEFT_SEED=<seed>.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { equalBytes, toHex } from "../../src/crypto/index.ts";
import { createRandom } from "../../src/sim/random.ts";
import { createMeshSim, createRelayLine, type MeshSim, type SimPeer } from "../helpers/mesh-sim.ts";
import { udpPacket } from "../helpers/packets.ts";
import { providers } from "../helpers/providers.ts";

const native = providers[1]![1];
const SEED = Number(globalThis.process?.env?.WEFT_SEED ?? 20261128);

/** Runs a scenario and names its seed if it fails. */
async function withSeed(name: string, body: (seed: number) => Promise<void> | void) {
  try {
    await body(SEED);
  } catch (error) {
    throw new Error(`${name} failed with seed ${SEED} (rerun with WEFT_SEED=${SEED})`, {
      cause: error,
    });
  }
}

/** Sends one datagram each way between every pair of live peers and checks they arrive. */
function exchangeAll(sim: MeshSim, pairs: [SimPeer, SimPeer][], settleMs: number): string[] {
  const failures: string[] = [];
  for (const p of sim.peers) p.received.length = 0;
  for (const [a, b] of pairs) {
    a.mesh.sendDatagram(b.key, 9, new Uint8Array([a.index, b.index]));
    b.mesh.sendDatagram(a.key, 9, new Uint8Array([b.index, a.index]));
  }
  sim.run(settleMs);
  for (const [a, b] of pairs) {
    if (!b.received.some((r) => r.from === a.key && r.data[0] === a.index))
      failures.push(`${a.name} -> ${b.name}`);
    if (!a.received.some((r) => r.from === b.key && r.data[0] === b.index))
      failures.push(`${b.name} -> ${a.name}`);
  }
  return failures;
}

function allPairs(peers: SimPeer[]): [SimPeer, SimPeer][] {
  const pairs: [SimPeer, SimPeer][] = [];
  for (let i = 0; i < peers.length; i++)
    for (let j = i + 1; j < peers.length; j++) pairs.push([peers[i]!, peers[j]!]);
  return pairs;
}

/** True when every live peer holds the same topology and reaches every other live peer. */
function converged(sim: MeshSim): boolean {
  const live = sim.peers.filter((p) => p.alive);
  const digest = toHex(live[0]!.mesh.topology.digest());
  for (const p of live) {
    if (toHex(p.mesh.topology.digest()) !== digest) return false;
    const status = p.mesh.status();
    for (const q of live) {
      if (q === p) continue;
      const entry = status.peers.find((s) => s.publicKey === q.key);
      if (!entry || entry.path === "unreachable") return false;
    }
  }
  return true;
}

/** Opens only the given links: every other pair of hosts is cut both ways. */
function onlyLinks(sim: MeshSim, open: (a: number, b: number) => boolean) {
  const n = sim.peers.length;
  for (let a = 0; a < n; a++) for (let b = a + 1; b < n; b++) if (!open(a, b)) sim.cut(a, b);
}

describe("mesh simulation", () => {
  test("line A-B-C with A-C blocked: traffic flows both ways through B, which never holds A-C keys", () =>
    withSeed("line", async (seed) => {
      const { sim, a, b, c } = createRelayLine({ crypto: native, seed });
      for (let i = 0; i < 20; i++) {
        a.mesh.sendDatagram(c.key, 1, new Uint8Array([i]));
        c.mesh.sendDatagram(a.key, 2, new Uint8Array([i]));
        sim.run(100);
      }
      sim.run(1_000);
      assert.equal(c.received.filter((r) => r.from === a.key).length, 20);
      assert.equal(a.received.filter((r) => r.from === c.key).length, 20);
      const statusA = a.mesh.status().peers.find((p) => p.publicKey === c.key)!;
      assert.equal(statusA.path, "relayed");
      assert.deepEqual(statusA.via, [b.key]);
      assert.equal(statusA.hops, 2);
      assert.ok(b.mesh.status().relayed.relayedForwarded >= 40);

      // B's device has sessions with A and C only, and none of the A-C session keys.
      const acKeys = a.mesh.device.sessionKeyDigests().get(toHex(c.publicKey))!;
      assert.ok(acKeys.length >= 2);
      const ofB = [...b.mesh.device.sessionKeyDigests().values()].flat();
      for (const key of acKeys) assert.ok(!ofB.some((k) => equalBytes(k, key)));
      assert.deepEqual(
        [...b.mesh.device.sessionKeyDigests().keys()].sort(),
        [toHex(a.publicKey), toHex(c.publicKey)].sort(),
      );
      await sim.close();
    }));

  test("a relayed IP packet still obeys cryptokey routing at the destination", () =>
    withSeed("cryptokey", async (seed) => {
      const { sim, a, c } = createRelayLine({ crypto: native, seed });
      const A_IP = new Uint8Array([10, 0, 0, 1]);
      const C_IP = new Uint8Array([10, 0, 0, 3]);
      a.mesh.addPeer({ publicKey: c.publicKey, allowedIps: [{ address: C_IP, prefixLength: 32 }] });
      const fromA = udpPacket("10.0.0.1", "10.0.0.3", 1000, 2000, new Uint8Array([7]));
      // C does not (yet) allow 10.0.0.1 from A: decrypted, then refused.
      a.tun.inject(fromA);
      sim.run(1_000);
      assert.equal(c.tun.written.length, 0);
      assert.equal(c.mesh.device.drops()["source-not-allowed"], 1);
      // Once C allows it, the same kind of packet arrives, through the relay.
      c.mesh.addPeer({ publicKey: a.publicKey, allowedIps: [{ address: A_IP, prefixLength: 32 }] });
      a.tun.inject(fromA);
      sim.run(1_000);
      assert.equal(c.tun.written.length, 1);
      assert.deepEqual(c.tun.written[0], fromA);
      assert.equal(a.mesh.status().peers.find((p) => p.publicKey === c.key)!.path, "relayed");
      await sim.close();
    }));

  for (const shape of ["ring", "star"] as const) {
    test(`${shape} of 12: every pair exchanges packets`, () =>
      withSeed(shape, async (seed) => {
        const n = 12;
        const sim = createMeshSim({
          crypto: native,
          seed,
          count: n,
          staticPeers: (i) => (shape === "ring" ? [(i + 1) % n] : i === 0 ? [] : [0]),
        });
        onlyLinks(sim, (a, b) =>
          shape === "ring" ? b === a + 1 || (a === 0 && b === n - 1) : a === 0,
        );
        assert.notEqual(
          sim.runUntil(() => converged(sim), 30_000),
          -1,
        );
        assert.deepEqual(exchangeAll(sim, allPairs(sim.peers), 3_000), []);
        await sim.close();
      }));
  }

  test("50 peers, 30% of links blocked: every connected pair exchanges packets", () =>
    withSeed("random-50", async (seed) => {
      const n = 50;
      const random = createRandom(seed + 1);
      const blocked = new Set<string>();
      for (let a = 0; a < n; a++)
        for (let b = a + 1; b < n; b++) if (random.next() < 0.3) blocked.add(`${a},${b}`);
      // Each peer is configured with one earlier peer it can reach (a random spanning tree).
      const staticOf = (i: number) => {
        const reachable = [...Array(i).keys()].filter((j) => !blocked.has(`${j},${i}`));
        return reachable.length ? [reachable[random.int(reachable.length)]!] : [];
      };
      const configured = [...Array(n).keys()].map(staticOf);
      const sim = createMeshSim({
        crypto: native,
        seed,
        count: n,
        staticPeers: (i) => configured[i]!,
      });
      onlyLinks(sim, (a, b) => !blocked.has(`${a},${b}`));
      const took = sim.runUntil(() => converged(sim), 60_000, 500);
      assert.notEqual(took, -1, "the topology converges");
      assert.deepEqual(exchangeAll(sim, allPairs(sim.peers), 5_000), []);
      await sim.close();
    }));

  test("failover: with A-B-C and A-D-C, killing the relay in use moves traffic within 5 s", () =>
    withSeed("failover", async (seed) => {
      const sim = createMeshSim({
        crypto: native,
        seed,
        count: 4,
        staticPeers: (i) => (i === 0 || i === 2 ? [1, 3] : []),
      });
      const [a, b, c, d] = sim.peers as [SimPeer, SimPeer, SimPeer, SimPeer];
      sim.cut(0, 2);
      sim.cut(1, 3);
      assert.notEqual(
        sim.runUntil(() => converged(sim), 20_000),
        -1,
      );
      let sent = 0;
      const send = () => {
        a.mesh.sendDatagram(c.key, 5, new Uint8Array([sent >> 8, sent & 255]));
        sent++;
      };
      for (let i = 0; i < 20; i++) {
        send();
        sim.run(100);
      }
      const via = a.mesh.status().peers.find((p) => p.publicKey === c.key)!.via[0];
      const relay = via === b.key ? b : d;
      assert.ok(via === b.key || via === d.key);
      await sim.kill(relay.index);
      const killedAt = sim.clock.now();
      const firstAfterKill = sent;
      let resumedAt = -1;
      for (let i = 0; i < 100 && resumedAt < 0; i++) {
        const before = c.received.length;
        const seq = sent;
        send();
        sim.run(100);
        if (
          c.received.length > before &&
          c.received.some((r) => ((r.data[0]! << 8) | r.data[1]!) === seq)
        )
          resumedAt = sim.clock.now();
      }
      assert.ok(resumedAt >= 0, "traffic resumed");
      assert.ok(resumedAt - killedAt <= 5_000, `resumed after ${resumedAt - killedAt} ms`);
      assert.ok(sent > firstAfterKill);
      const other = relay === b ? d : b;
      assert.deepEqual(a.mesh.status().peers.find((p) => p.publicKey === c.key)!.via, [other.key]);
      await sim.close();
    }));

  test("partition and heal: both sides converge to one topology within 10 s of healing", () =>
    withSeed("partition", async (seed) => {
      const n = 12;
      const sim = createMeshSim({ crypto: native, seed, count: n });
      assert.notEqual(
        sim.runUntil(() => converged(sim), 30_000),
        -1,
      );
      const left = sim.peers.slice(0, n / 2).map((p) => p.address);
      const right = sim.peers.slice(n / 2).map((p) => p.address);
      sim.network.partition(left, right);
      sim.run(30_000);
      for (const p of sim.peers.slice(0, n / 2)) {
        const status = p.mesh.status();
        for (const q of sim.peers.slice(n / 2))
          assert.equal(
            status.peers.find((s) => s.publicKey === q.key)?.path ?? "unreachable",
            "unreachable",
          );
      }
      sim.network.heal();
      const took = sim.runUntil(() => converged(sim), 10_000);
      assert.notEqual(took, -1, "converged within 10 s of healing");
      await sim.close();
    }));

  test("churn: peers leave and come back at random for 10 minutes; the end state is consistent", () =>
    withSeed("churn", async (seed) => {
      const n = 16;
      const sim = createMeshSim({
        crypto: native,
        seed,
        count: n,
        staticPeers: (i) => (i < 2 ? [1 - i] : [i % 2]),
      });
      const random = createRandom(seed + 7);
      sim.run(10_000);
      for (let second = 0; second < 600; second++) {
        if (random.next() < 0.1) {
          const index = 2 + random.int(n - 2);
          const peer = sim.peers[index]!;
          if (peer.alive) await sim.kill(index);
          else sim.revive(index);
        }
        sim.run(1_000);
      }
      for (const peer of sim.peers) if (!peer.alive) sim.revive(peer.index);
      const took = sim.runUntil(() => converged(sim), 60_000, 500);
      assert.notEqual(took, -1, "converged after churn");
      assert.deepEqual(
        exchangeAll(
          sim,
          sim.peers.slice(1).map((p) => [sim.peers[0]!, p]),
          3_000,
        ),
        [],
      );
      await sim.close();
    }));
});
