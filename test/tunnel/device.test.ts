/** Two real Devices over the simulated network in virtual time: handshakes, data, rekeys, roaming, cookies. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { nobleCrypto } from "../../src/crypto/index.ts";
import { icmpEchoRequest, parseIpv4, udpPacket } from "../helpers/packets.ts";
import { providers } from "../helpers/providers.ts";
import {
  A_OVERLAY,
  A_UNDERLAY,
  B_OVERLAY,
  B_UNDERLAY,
  createTunnelPair,
} from "../helpers/tunnel-pair.ts";

const native = providers[1]![1];
const payload = (n: number) => new TextEncoder().encode(`packet ${n}`);

describe("Device over the simulated network", () => {
  for (const [name, crypto] of providers) {
    test(`a packet from A's Tun comes out of B's Tun and back (${name})`, () => {
      const { clock, a, b } = createTunnelPair({ crypto, link: { latencyMs: 5 } });
      const request = icmpEchoRequest(A_OVERLAY, B_OVERLAY, 1, 1, payload(1));
      a.tun.inject(request);
      clock.advance(100);
      assert.equal(b.tun.written.length, 1, a.logs.concat(b.logs).join("\n"));
      assert.deepEqual(b.tun.written[0], request);
      // B learned A's endpoint from the handshake and can answer.
      const reply = udpPacket(B_OVERLAY, A_OVERLAY, 7, 7, payload(2));
      b.tun.inject(reply);
      clock.advance(100);
      assert.deepEqual(a.tun.written, [reply]);
      assert.deepEqual(b.device.peers()[0]!.endpoint, { address: A_UNDERLAY, port: 51820 });
      assert.equal(a.device.peers()[0]!.handshakesCompleted, 1);
      assert.deepEqual(a.device.drops(), {});
      assert.deepEqual(b.device.drops(), {});
    });
  }

  test("packets staged during the handshake all arrive, in order", () => {
    const { clock, a, b } = createTunnelPair({ crypto: native, link: { latencyMs: 20 } });
    const sent = Array.from({ length: 50 }, (_, i) =>
      udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, payload(i)),
    );
    for (const p of sent) a.tun.inject(p);
    clock.advance(200);
    assert.deepEqual(b.tun.written, sent);
  });

  test("the staging queue is bounded: the oldest packets are dropped", () => {
    const { clock, a, b, network } = createTunnelPair({ crypto: native });
    network.block(A_UNDERLAY, B_UNDERLAY);
    for (let i = 0; i < 500; i++) a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, payload(i)));
    assert.equal(a.device.diagnostics().stagedPackets, 128);
    network.heal();
    clock.advance(6_000); // the retransmitted initiation gets through
    assert.equal(b.tun.written.length, 128);
    assert.deepEqual(parseIpv4(b.tun.written[0]!)!.payload.subarray(8), payload(372));
  });

  test("a packet whose inner source is not allowed for the peer is dropped", () => {
    const { clock, a, b } = createTunnelPair({ crypto: native });
    a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, payload(0)));
    clock.advance(50);
    a.tun.inject(udpPacket("10.214.0.99", B_OVERLAY, 1, 2, payload(1)));
    clock.advance(50);
    assert.equal(b.tun.written.length, 1);
    assert.equal(b.device.drops()["source-not-allowed"], 1);
  });

  test("a packet to an address no peer owns is dropped", () => {
    const { a } = createTunnelPair({ crypto: native });
    a.tun.inject(udpPacket(A_OVERLAY, "10.214.0.77", 1, 2, payload(0)));
    assert.equal(a.device.drops()["no-peer-for-destination"], 1);
  });

  test("sessions rekey under traffic without losing packets", () => {
    const timers = {
      rekeyAfterTimeMs: 2_000,
      rejectAfterTimeMs: 3_000,
      rekeyTimeoutMs: 500,
      keepaliveTimeoutMs: 1_000,
    };
    const { clock, a, b } = createTunnelPair({ crypto: native, timers, link: { latencyMs: 10 } });
    let sent = 0;
    for (let t = 0; t < 20_000; t += 50) {
      a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, payload(sent++)));
      if (sent % 4 === 0) b.tun.inject(udpPacket(B_OVERLAY, A_OVERLAY, 2, 1, payload(sent)));
      clock.advance(50);
    }
    clock.advance(100);
    assert.equal(b.tun.written.length, sent, a.logs.concat(b.logs).slice(-20).join("\n"));
    assert.ok(
      a.device.peers()[0]!.handshakesCompleted >= 8,
      `only ${a.device.peers()[0]!.handshakesCompleted} handshakes`,
    );
    assert.equal(a.device.drops()["expired-keypair"] ?? 0, 0);
  });

  test("a retransmitted initiation recovers from handshake loss", () => {
    const { clock, a, b, network } = createTunnelPair({ crypto: native });
    network.block(A_UNDERLAY, B_UNDERLAY);
    a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, payload(0)));
    clock.advance(4_000);
    network.heal();
    clock.advance(2_000); // REKEY_TIMEOUT 5 s plus jitter
    assert.equal(b.tun.written.length, 1);
  });

  test("the initiator gives up after REKEY_ATTEMPT_TIME and says why", () => {
    const { clock, a, network } = createTunnelPair({ crypto: native });
    network.block(A_UNDERLAY, B_UNDERLAY);
    a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, payload(0)));
    clock.advance(100_000);
    assert.ok(
      a.logs.some((l) => /did not complete after \d+ attempts/.test(l)),
      a.logs.join("\n"),
    );
    assert.equal(a.device.diagnostics().stagedPackets, 0);
  });

  test("keepalives flow after data is received, and persistent keepalives keep a NAT open", () => {
    const { clock, a, b, network } = createTunnelPair({
      crypto: native,
      persistentKeepaliveSeconds: 25,
    });
    clock.advance(100); // persistent keepalive starts the handshake at once
    assert.equal(a.device.peers()[0]!.handshakesCompleted, 1);
    const before = network.counters().delivered;
    clock.advance(100_000);
    const keepalives = network.counters().delivered - before;
    assert.ok(keepalives >= 4 && keepalives <= 6, `${keepalives} datagrams in 100 s`);
    assert.equal(b.tun.written.length, 0);
  });

  test("roaming: B follows A to a new address and port from its next authenticated packet", () => {
    const { clock, a, b, network } = createTunnelPair({ crypto: native });
    a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, payload(0)));
    clock.advance(50);
    a.conn.rebind(network.listen("192.0.2.9", 4000));
    a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, payload(1)));
    clock.advance(50);
    assert.equal(b.tun.written.length, 2);
    assert.deepEqual(b.device.peers()[0]!.endpoint, { address: "192.0.2.9", port: 4000 });
    b.tun.inject(udpPacket(B_OVERLAY, A_OVERLAY, 2, 1, payload(2)));
    clock.advance(50);
    assert.equal(a.tun.written.length, 1);
    assert.equal(a.device.peers()[0]!.handshakesCompleted, 1); // same session throughout
  });

  test("reports handshakes and endpoint changes as events", () => {
    const { clock, a, b, network } = createTunnelPair({ crypto: native });
    a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, payload(0)));
    clock.advance(50);
    assert.deepEqual(
      a.events.map((e) => e.type),
      ["source-changed", "handshake-completed"],
    );
    // B learns A's endpoint from the initiation and confirms the session on A's first data.
    assert.deepEqual(
      b.events.map((e) => e.type),
      ["source-changed", "endpoint-changed", "handshake-completed"],
    );
    assert.deepEqual(b.events[2]!.publicKey, a.publicKey);
    a.conn.rebind(network.listen("192.0.2.9", 4000));
    a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, payload(1)));
    clock.advance(50);
    assert.deepEqual(b.events.at(-1), {
      type: "endpoint-changed",
      publicKey: a.publicKey,
      endpoint: { address: "192.0.2.9", port: 4000 },
    });
  });

  test("an unauthenticated packet from elsewhere does not move the endpoint", () => {
    const { clock, a, b, network } = createTunnelPair({ crypto: native });
    a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, payload(0)));
    clock.advance(50);
    const forged = a.conn.sent.at(-1)!.slice();
    forged[forged.length - 1]! ^= 1;
    network.listen("192.0.2.66", 5).send(forged, { address: B_UNDERLAY, port: 51820 });
    clock.advance(50);
    assert.deepEqual(b.device.peers()[0]!.endpoint, { address: A_UNDERLAY, port: 51820 });
    assert.equal(b.device.drops()["decrypt-failed"], 1);
  });

  test("under load, a responder answers with a cookie first and completes once mac2 is valid", () => {
    const { clock, a, b } = createTunnelPair({
      crypto: native,
      b: { underLoadHandshakesPerSecond: 0 },
    });
    a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, payload(0)));
    clock.advance(100);
    assert.equal(b.device.drops()["cookie-sent"], 1);
    assert.equal(b.tun.written.length, 0);
    clock.advance(6_000); // retransmission carries mac2
    assert.equal(b.tun.written.length, 1, b.logs.join("\n"));
    assert.equal(a.device.peers()[0]!.handshakesCompleted, 1);
  });

  test("a wrong peer public key or preshared key never yields a session, and each side says why", () => {
    const stranger = nobleCrypto.publicKey(nobleCrypto.generatePrivateKey());
    const wrongKey = createTunnelPair({ crypto: native, a: { peerPublicKey: stranger } });
    wrongKey.a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, payload(0)));
    wrongKey.clock.advance(1_000);
    assert.equal(wrongKey.b.tun.written.length, 0);
    assert.equal(wrongKey.b.device.drops().mac1, 1);

    const unknownToB = createTunnelPair({ crypto: native, b: { peerPublicKey: stranger } });
    unknownToB.a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, payload(0)));
    unknownToB.clock.advance(1_000);
    assert.ok(
      unknownToB.b.logs.some((l) => /not a configured peer/.test(l)),
      unknownToB.b.logs.join("\n"),
    );

    const psk = createTunnelPair({
      crypto: native,
      a: { presharedKey: new Uint8Array(32).fill(1) },
    });
    psk.a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, payload(0)));
    psk.clock.advance(1_000);
    assert.equal(psk.b.tun.written.length, 0);
    assert.ok(
      psk.a.logs.some((l) => /failed to authenticate \(different preshared key\?\)/.test(l)),
      psk.a.logs.join("\n"),
    );
  });

  test("replayed initiations and transport messages are refused and never delivered twice", () => {
    const { clock, a, b, network } = createTunnelPair({ crypto: native });
    for (let i = 0; i < 3; i++) a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, payload(i)));
    clock.advance(50);
    assert.equal(b.tun.written.length, 3);
    const attacker = network.listen("192.0.2.66", 5);
    for (const message of a.conn.sent) attacker.send(message, { address: B_UNDERLAY, port: 51820 });
    clock.advance(50);
    assert.equal(b.tun.written.length, 3);
    assert.equal(b.device.drops()["replayed-initiation"], 1);
    assert.equal(b.device.drops()["replayed-counter"], 3);
    assert.deepEqual(b.device.peers()[0]!.endpoint, { address: A_UNDERLAY, port: 51820 });
    assert.equal(b.device.peers()[0]!.handshakesCompleted, 1);
  });
});
