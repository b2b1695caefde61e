/**
 * Mesh behaviours beyond reachability: paths that improve, broadcasts along trees,
 * protocol versions, forgetting peers, and the status a CLI prints.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { encodeFrame } from "../../src/mesh/frames.ts";
import { backoffMs } from "../../src/mesh/peer-state.ts";
import { formatStatus } from "../../src/mesh/status.ts";
import { createMeshSim, createRelayLine, type SimPeer } from "../helpers/mesh-sim.ts";
import { providers } from "../helpers/providers.ts";

const native = providers[1]![1];
const SEED = Number(globalThis.process?.env?.WEFT_SEED ?? 11);

const pathOf = (from: SimPeer, to: SimPeer) =>
  from.mesh.status().peers.find((p) => p.publicKey === to.key)?.path;

describe("mesh behaviour", () => {
  test("traffic moves to a direct path when one appears, and back to the relay when it breaks", async () => {
    const { sim, a, b, c } = createRelayLine({ crypto: native, seed: SEED });
    a.mesh.sendDatagram(c.key, 1, new Uint8Array([1]));
    sim.run(1_000);
    assert.equal(pathOf(a, c), "relayed", "relayed while A-C is cut");
    sim.uncut(0, 2);
    const tookDirect = sim.runUntil(
      () => pathOf(a, c) === "direct" && pathOf(c, a) === "direct",
      40_000,
    );
    assert.notEqual(tookDirect, -1, "A and C find the direct path");
    const forwardedBefore = b.mesh.status().relayed.relayedForwarded;
    for (let i = 0; i < 10; i++) a.mesh.sendDatagram(c.key, 1, new Uint8Array([2]));
    sim.run(500);
    assert.equal(b.mesh.status().relayed.relayedForwarded, forwardedBefore, "B relays nothing now");
    assert.equal(c.received.filter((r) => r.data[0] === 2).length, 10);
    // The direct path breaks: traffic falls back to the relay without a new handshake.
    const handshakes = c.mesh.device
      .peers()
      .find((p) => p.publicKey.every((x, i) => x === a.publicKey[i]))!.handshakesCompleted;
    sim.cut(0, 2);
    let delivered = 0;
    const fellBack = sim.runUntil(
      () => {
        a.mesh.sendDatagram(c.key, 1, new Uint8Array([3]));
        delivered = c.received.filter((r) => r.data[0] === 3).length;
        return pathOf(a, c) === "relayed" && delivered > 0;
      },
      10_000,
      250,
    );
    assert.notEqual(fellBack, -1, "falls back to the relay");
    assert.ok(fellBack <= 5_000, `fell back after ${fellBack} ms`);
    const after = c.mesh.device
      .peers()
      .find((p) => p.publicKey.every((x, i) => x === a.publicKey[i]))!.handshakesCompleted;
    assert.equal(after, handshakes, "the session survived the path change");
    await sim.close();
  });

  test("a large datagram to a relayed peer is cut so relays never split it again", async () => {
    const { sim, a, b, c } = createRelayLine({ crypto: native, seed: SEED, recordSends: true });
    a.mesh.sendDatagram(c.key, 1, new Uint8Array([0]));
    sim.run(500);
    const before = a.sent.length;
    const big = new Uint8Array(1400).map((_, i) => i & 255);
    a.mesh.sendDatagram(c.key, 1, big);
    const sent = a.sent.slice(before);
    // Two end-to-end pieces, each in one relay frame that fits one datagram.
    assert.equal(sent.length, 2, `sent ${sent.map((d) => d.data.length).join(", ")}`);
    for (const { data } of sent) assert.ok(data.length <= 1440, `a ${data.length}-byte datagram`);
    sim.run(500);
    assert.deepEqual(c.received.at(-1)?.data, big);
    assert.equal(b.mesh.status().relayed.reassembled, 0, "the relay forwarded whole frames");
    assert.ok(c.mesh.status().relayed.reassembled >= 1, "the destination reassembled");
    await sim.close();
  });

  test("a broadcast reaches every other peer exactly once, along the trees", async () => {
    const n = 10;
    const sim = createMeshSim({
      crypto: native,
      seed: SEED,
      count: n,
      staticPeers: (i) => [(i + 1) % n],
    });
    // A ring plus a chord: several paths, so only the trees keep copies from doubling.
    for (let x = 0; x < n; x++)
      for (let y = x + 1; y < n; y++)
        if (!(y === x + 1 || (x === 0 && y === n - 1) || (x === 2 && y === 7))) sim.cut(x, y);
    sim.run(20_000);
    for (const source of sim.peers)
      source.mesh.broadcastDatagram(4, new Uint8Array([source.index]));
    sim.run(2_000);
    for (const peer of sim.peers) {
      const got = peer.received
        .filter((r) => r.broadcast)
        .map((r) => r.data[0]!)
        .sort((x, y) => x - y);
      const expected = sim.peers.filter((p) => p !== peer).map((p) => p.index);
      assert.deepEqual(got, expected, `${peer.name} received each broadcast once`);
    }
    await sim.close();
  });

  test("a hello of another protocol version is logged once and counted, never crashing", async () => {
    const sim = createMeshSim({ crypto: native, seed: SEED, count: 2, keepLogs: true });
    const [a, b] = sim.peers as [SimPeer, SimPeer];
    sim.run(3_000);
    const future = encodeFrame({
      type: "hello",
      hello: { version: 1, nickname: "future", endpoints: [], features: [] },
    });
    future[3] = 2; // the version byte
    for (let i = 0; i < 5; i++) b.mesh.device.sendControl(a.publicKey, future);
    sim.run(500);
    const lines = a.logs.filter((l) => /speaks mesh protocol version 2, we speak 1/.test(l));
    assert.equal(lines.length, 1, a.logs.join("\n"));
    assert.equal(a.mesh.drops()["version-mismatch"], 5);
    await sim.close();
  });

  test("a peer that no one can reach is forgotten after the timeout", async () => {
    const sim = createMeshSim({
      crypto: native,
      seed: SEED,
      count: 3,
      meshOptions: { forgetAfterMs: 20_000 },
    });
    const [a, , c] = sim.peers as [SimPeer, SimPeer, SimPeer];
    sim.run(5_000);
    assert.ok(a.mesh.members().includes(c.key), "A knows C");
    await sim.kill(2);
    sim.run(10_000);
    assert.ok(a.mesh.members().includes(c.key), "still remembered before the timeout");
    const took = sim.runUntil(() => !a.mesh.members().includes(c.key), 40_000, 500);
    assert.notEqual(took, -1, "forgotten");
    assert.equal(a.mesh.topology.entry(c.key), undefined);
    await sim.close();
  });

  test("status says how each peer is reached", async () => {
    const { sim, a, b, c } = createRelayLine({ crypto: native, seed: SEED });
    a.mesh.sendDatagram(c.key, 1, new Uint8Array([1]));
    sim.run(1_000);
    const status = a.mesh.status();
    const toB = status.peers.find((p) => p.publicKey === b.key)!;
    const toC = status.peers.find((p) => p.publicKey === c.key)!;
    assert.equal(toB.path, "direct");
    assert.equal(toB.hops, 1);
    assert.equal(toB.endpoint, `${b.address}:51820`);
    assert.equal(toB.connected, true);
    assert.equal(toC.path, "relayed");
    assert.equal(toC.hops, 2);
    assert.deepEqual(toC.via, [b.key]);
    assert.ok(
      toC.handshakeAgeMs !== undefined && toC.handshakeAgeMs <= sim.clock.now(),
      `handshake age ${toC.handshakeAgeMs}`,
    );
    assert.ok(toC.txBytes > 0 && toC.rxBytes > 0, "bytes counted");
    const text = formatStatus(status);
    assert.match(text, /p2 +\S+ +relayed via p1 \(2 hops\)/);
    assert.match(text, /p1 +\S+ +direct 198\.18\.0\.2:51820/);
    await sim.close();
  });

  test("retries back off exponentially up to a cap, with jitter", () => {
    const mid = () => 0.5;
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 10].map((n) => backoffMs(n, 1_000, 30_000, mid)),
      [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000],
    );
    assert.equal(
      backoffMs(3, 1_000, 30_000, () => 0),
      6_000,
    );
    assert.equal(
      backoffMs(3, 1_000, 30_000, () => 0.999999),
      10_000,
    );
  });
});
