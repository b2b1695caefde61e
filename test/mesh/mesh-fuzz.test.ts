/**
 * Bad input from an authenticated neighbour: malformed, oversized and replayed gossip and
 * relay frames are dropped and counted, change no state, and never stop the mesh.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { toHex } from "../../src/crypto/index.ts";
import { encodeFrame, encodeRelay } from "../../src/mesh/frames.ts";
import { createRandom } from "../../src/sim/random.ts";
import { createRelayLine, type SimPeer } from "../helpers/mesh-sim.ts";
import { providers } from "../helpers/providers.ts";

const native = providers[1]![1];
const SEED = Number(globalThis.process?.env?.WEFT_SEED ?? 7);

function totalDrops(peer: SimPeer): number {
  const status = peer.mesh.status();
  const gossip = peer.mesh.gossip.stats().dropped as Record<string, number>;
  return [
    ...Object.values(status.drops),
    ...Object.values(status.deviceDrops),
    ...Object.values(gossip),
  ].reduce((a, b) => a + b, 0);
}

const line = () => createRelayLine({ crypto: native, seed: SEED, settleMs: 5_000 });

/** What must not change in B: its view of the mesh and its connections. */
function snapshot(peer: SimPeer) {
  const status = peer.mesh.status();
  return {
    topology: toHex(peer.mesh.topology.digest()),
    connections: status.connections,
    paths: status.peers.map((p) => `${p.publicKey}:${p.path}`).sort(),
  };
}

describe("mesh bad input", () => {
  test("100,000 fuzzed control frames from a neighbour are dropped and change nothing", async () => {
    const { sim, a, b, c } = line();
    const before = snapshot(b);
    const dropsBefore = totalDrops(b);
    const random = createRandom(SEED);
    const valid = [
      encodeFrame({ type: "gossip", message: new Uint8Array([0x83, 1, 2, 3]) }),
      encodeRelay(16, c.publicKey, a.publicKey, new Uint8Array([4, 0, 0, 0, 1, 2, 3, 4])),
      encodeRelay(16, random.bytes(32), a.publicKey, new Uint8Array([1, 0, 0, 0])),
      encodeFrame({ type: "fragment", id: 1, index: 0, count: 2, piece: random.bytes(50) }),
      encodeFrame({
        type: "broadcast",
        hopLimit: 3,
        source: c.publicKey,
        port: 1,
        data: random.bytes(9),
      }),
      encodeFrame({
        type: "hello",
        hello: { version: 1, nickname: "x", endpoints: [], features: [] },
      }),
    ];
    let sent = 0;
    for (let i = 0; i < 100_000; i++) {
      let frame: Uint8Array;
      const kind = random.int(3);
      if (kind === 0) {
        frame = random.bytes(1 + random.int(200));
        frame[0] = 1 + random.int(8);
      } else {
        frame = valid[random.int(valid.length)]!.slice();
        for (let m = 0; m <= random.int(3); m++)
          frame[1 + random.int(frame.length - 1)] = random.int(256);
        if (kind === 2) frame = frame.subarray(0, 1 + random.int(frame.length));
      }
      const nibble = frame[0]! >>> 4;
      if (nibble === 4 || nibble === 6) continue;
      a.mesh.device.sendControl(b.publicKey, frame);
      sent++;
      if (i % 1000 === 999) sim.run(10);
    }
    sim.run(1_000);
    assert.ok(sent > 99_000);
    assert.deepEqual(snapshot(b), before);
    assert.ok(totalDrops(b) - dropsBefore > 50_000, `drops ${totalDrops(b) - dropsBefore}`);
    // And the mesh still carries traffic through B.
    a.mesh.sendDatagram(c.key, 3, new Uint8Array([42]));
    sim.run(1_000);
    assert.ok(c.received.some((r) => r.from === a.key && r.data[0] === 42));
    await sim.close();
  });

  test("an oversized gossip frame and a relay frame with no hops left are dropped and counted", async () => {
    const { sim, a, b, c } = line();
    const before = snapshot(b);
    // A gossip message over the engine's limit, in fragments.
    const huge = encodeFrame({ type: "gossip", message: new Uint8Array(60_000).fill(0xa1) });
    for (
      let offset = 0, id = 77, count = Math.ceil(huge.length / 1000), index = 0;
      offset < huge.length;
      offset += 1000, index++
    )
      a.mesh.device.sendControl(
        b.publicKey,
        encodeFrame({
          type: "fragment",
          id,
          index,
          count,
          piece: huge.subarray(offset, offset + 1000),
        }),
      );
    a.mesh.device.sendControl(
      b.publicKey,
      encodeRelay(1, c.publicKey, a.publicKey, new Uint8Array([4, 0, 0, 0])),
    );
    a.mesh.device.sendControl(
      b.publicKey,
      encodeRelay(16, c.publicKey, c.publicKey, new Uint8Array([4, 0, 0, 0])),
    );
    sim.run(500);
    assert.equal(b.mesh.drops()["relay-hop-limit"], 1);
    assert.equal(b.mesh.drops()["relay-spoofed-source"], 1);
    const gossipDrops = Object.values(b.mesh.gossip.stats().dropped as Record<string, number>);
    assert.ok(gossipDrops.reduce((x, y) => x + y, 0) >= 1, "the oversized gossip was counted");
    assert.deepEqual(snapshot(b), before);
    await sim.close();
  });

  test("replayed datagrams carrying relay frames are dropped by the hop's replay window", async () => {
    const { sim, a, b, c } = createRelayLine({
      crypto: native,
      seed: SEED,
      recordSends: true,
      settleMs: 5_000,
    });
    a.mesh.sendDatagram(c.key, 3, new Uint8Array([1]));
    sim.run(500);
    assert.equal(c.received.filter((r) => r.from === a.key).length, 1);
    const toB = a.sent.filter((s) => s.to.address === b.address && s.data[0] === 4);
    assert.ok(toB.length > 0);
    const tap = sim.network.listen(a.address, 40000);
    const replayedBefore = b.mesh.device.drops()["replayed-counter"] ?? 0;
    const before = snapshot(b);
    for (const { data } of toB) tap.send(data, { address: b.address, port: 51820 });
    sim.run(500);
    assert.equal((b.mesh.device.drops()["replayed-counter"] ?? 0) - replayedBefore, toB.length);
    assert.equal(c.received.filter((r) => r.from === a.key).length, 1, "nothing delivered twice");
    assert.deepEqual(snapshot(b), before);
    await sim.close();
  });
});
