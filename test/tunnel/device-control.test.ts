/** The hooks the mesh uses: control messages inside sessions, fixed endpoints, key digests. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { equalBytes } from "../../src/crypto/index.ts";
import { udpPacket } from "../helpers/packets.ts";
import { providers } from "../helpers/providers.ts";
import {
  A_OVERLAY,
  A_UNDERLAY,
  B_OVERLAY,
  B_UNDERLAY,
  createTunnelPair,
} from "../helpers/tunnel-pair.ts";

const native = providers[1]![1];
const control = (...bytes: number[]) => new Uint8Array(bytes);

describe("Device control messages", () => {
  test("travel inside the session, wait for its handshake, and keep their padding", () => {
    const { clock, a, b } = createTunnelPair({ crypto: native, control: true });
    assert.equal(a.device.hasSession(b.publicKey), false);
    assert.equal(a.device.sendControl(b.publicKey, control(0x01, 0xaa, 0xbb)), true);
    clock.advance(50);
    assert.equal(a.device.hasSession(b.publicKey), true);
    assert.equal(b.controls.length, 1);
    const received = b.controls[0]!;
    assert.deepEqual(received.publicKey, a.publicKey);
    assert.deepEqual(received.from, { address: A_UNDERLAY, port: 51820 });
    assert.equal(received.payload.length, 16); // padded to a multiple of 16
    assert.deepEqual(received.payload.subarray(0, 3), control(0x01, 0xaa, 0xbb));
    assert.equal(b.tun.written.length, 0);
  });

  test("are dropped as bad packets when nothing above takes them", () => {
    const { clock, a, b } = createTunnelPair({ crypto: native });
    a.device.sendControl(b.publicKey, control(0x02, 1));
    clock.advance(50);
    assert.equal(b.device.drops()["bad-inner-packet"], 1);
  });

  test("refuse payloads that would be read as IP packets, or empty ones", () => {
    const { a, b } = createTunnelPair({ crypto: native });
    assert.throws(() => a.device.sendControl(b.publicKey, control(0x45, 0)), RangeError);
    assert.throws(() => a.device.sendControl(b.publicKey, control(0x60)), RangeError);
    assert.throws(() => a.device.sendControl(b.publicKey, new Uint8Array(0)), RangeError);
  });

  test("`via` sends to another address only on a live session", () => {
    const { clock, a, b, network } = createTunnelPair({ crypto: native, control: true });
    const elsewhere = { address: "192.0.2.50", port: 7000 };
    const probe = network.listen(elsewhere.address, elsewhere.port);
    const seen: Uint8Array[] = [];
    probe.onReceive((data) => seen.push(data.slice()));
    assert.equal(a.device.sendControl(b.publicKey, control(0x03), elsewhere), false);
    a.device.connect(b.publicKey);
    clock.advance(50);
    assert.equal(a.device.sendControl(b.publicKey, control(0x03), elsewhere), true);
    clock.advance(50);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]![0], 4); // a transport message, sealed for B
    // Forwarded to B by hand, it opens there and reports where it came from.
    probe.send(seen[0]!, { address: B_UNDERLAY, port: 51820 });
    clock.advance(50);
    assert.deepEqual(b.controls.at(-1)!.from, elsewhere);
  });
});

describe("Device peers without roaming", () => {
  test("keep their endpoint but report where authenticated packets come from", () => {
    const { clock, a, b, network } = createTunnelPair({ crypto: native, b: { roaming: false } });
    b.device.setEndpoint(a.publicKey, { address: A_UNDERLAY, port: 51820 });
    a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, new Uint8Array(4)));
    clock.advance(50);
    a.conn.rebind(network.listen("192.0.2.9", 4000));
    a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, new Uint8Array(4)));
    clock.advance(50);
    assert.equal(b.tun.written.length, 2);
    assert.deepEqual(b.device.peers()[0]!.endpoint, { address: A_UNDERLAY, port: 51820 });
    assert.deepEqual(
      b.events.filter((e) => e.type === "source-changed").map((e) => e.endpoint),
      [
        { address: A_UNDERLAY, port: 51820 },
        { address: "192.0.2.9", port: 4000 },
      ],
    );
    assert.equal(
      b.events.some((e) => e.type === "endpoint-changed"),
      false,
    );
  });
});

describe("Device session key digests", () => {
  test("match between the two ends of a session and nowhere else", () => {
    const { clock, a, b } = createTunnelPair({ crypto: native });
    a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, new Uint8Array(4)));
    clock.advance(50);
    const ofA = [...a.device.sessionKeyDigests().values()].flat();
    const ofB = [...b.device.sessionKeyDigests().values()].flat();
    assert.equal(ofA.length, 2);
    assert.equal(ofB.length, 2);
    for (const digest of ofA) assert.ok(ofB.some((d) => equalBytes(d, digest)));
    const other = createTunnelPair({ crypto: native, seed: 2 });
    other.a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, new Uint8Array(4)));
    other.clock.advance(50);
    const ofOther = [...other.a.device.sessionKeyDigests().values()].flat();
    for (const digest of ofOther) assert.ok(!ofA.some((d) => equalBytes(d, digest)));
  });
});
