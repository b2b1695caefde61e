/**
 * The multicast carrier (src/mesh/multicast.ts) between fake transports: what it sends
 * for each kind of Tun packet, what it writes to the Tun and forwards, duplicates, both
 * rate limits, forged sources and the off switch. Time is a number the tests move.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  DEFAULT_MULTICAST_BURST,
  DEFAULT_MULTICAST_PACKETS_PER_SECOND,
  MULTICAST_PORT,
  MulticastCarrier,
  type MulticastOptions,
} from "../../src/mesh/multicast.ts";
import { parsePrefix } from "../../src/net/ip.ts";
import { directedBroadcast } from "../../src/net/multicast.ts";
import { ipv4Packet, udpPacket } from "../helpers/packets.ts";

const ORIGIN = "origin-key";
const PREFIXES = new Map([[ORIGIN, [parsePrefix("10.32.0.0/14")!]]]);
const BROADCAST = directedBroadcast(parsePrefix("10.32.0.0/12")!)!;

interface Harness {
  readonly carrier: MulticastCarrier;
  /** What the carrier handed to the mesh to broadcast. */
  readonly sent: { port: number; data: Uint8Array }[];
  /** What it wrote to the Tun. */
  readonly written: Uint8Array[];
  readonly clock: { ms: number; now(): number };
}

function harness(options: Partial<MulticastOptions> = {}, random = 0.25): Harness {
  const clock = {
    ms: 1_000,
    now() {
      return this.ms;
    },
  };
  const sent: { port: number; data: Uint8Array }[] = [];
  const written: Uint8Array[] = [];
  const carrier = new MulticastCarrier(
    {
      broadcast: (port, data) => sent.push({ port, data: data.slice() }),
      allowedIpsOf: (key) => PREFIXES.get(key) ?? [],
    },
    (packet) => written.push(packet.slice()),
    { clock, broadcasts: [BROADCAST], random: () => random, ...options },
  );
  return { carrier, sent, written, clock };
}

function datagram(n: number, destination = "239.1.2.3", source = "10.32.0.5"): Uint8Array {
  return udpPacket(source, destination, 40000, 5000, new Uint8Array([n >> 8, n & 255]));
}

const BROADCAST_INFO = { broadcast: true } as const;

describe("MulticastCarrier sending", () => {
  test("multicast and broadcast go to the mesh on the multicast port, packet unchanged", () => {
    const h = harness();
    for (const destination of ["239.1.2.3", "224.0.0.251", "255.255.255.255", "10.47.255.255"]) {
      const packet = datagram(1, destination);
      assert.equal(h.carrier.send(packet), true, destination);
      const last = h.sent.at(-1)!;
      assert.equal(last.port, MULTICAST_PORT);
      assert.deepEqual(last.data.subarray(last.data.length - packet.length), packet, destination);
    }
    assert.equal(h.carrier.counters().sent, 4);
  });

  test("unicast is left to the Device (false), IGMP and IPv6 multicast are consumed and counted", () => {
    const h = harness();
    assert.equal(h.carrier.send(datagram(1, "10.32.0.9")), false);
    assert.equal(h.carrier.send(ipv4Packet("10.32.0.5", "224.0.0.22", 2, new Uint8Array(8))), true);
    const v6 = new Uint8Array(40);
    v6[0] = 0x60;
    v6[24] = 0xff;
    assert.equal(h.carrier.send(v6), true);
    assert.equal(h.sent.length, 0);
    assert.deepEqual(h.carrier.counters().ignored, { igmp: 1, ipv6: 1 });
  });

  test("TTL 0 is not sent", () => {
    const h = harness();
    const packet = datagram(1);
    packet[8] = 0;
    assert.equal(h.carrier.send(packet), true);
    assert.equal(h.sent.length, 0);
    assert.equal(h.carrier.counters().dropped["ttl-expired"], 1);
  });

  test("the sender's bucket holds a flood to the burst, then the rate", () => {
    const h = harness({ packetsPerSecond: 10, burst: 20 });
    for (let i = 0; i < 50; i++) h.carrier.send(datagram(i));
    assert.equal(h.sent.length, 20);
    h.clock.ms += 1_000;
    for (let i = 0; i < 50; i++) h.carrier.send(datagram(i));
    assert.equal(h.sent.length, 30);
    assert.equal(h.carrier.counters().dropped["sender-rate-limited"], 70);
  });

  test("defaults: 100 packets a second with a burst of 200", () => {
    const h = harness();
    assert.equal(h.carrier.packetsPerSecond, DEFAULT_MULTICAST_PACKETS_PER_SECOND);
    assert.equal(h.carrier.burst, DEFAULT_MULTICAST_BURST);
    assert.equal(DEFAULT_MULTICAST_PACKETS_PER_SECOND, 100);
    assert.equal(DEFAULT_MULTICAST_BURST, 200);
    assert.throws(() => harness({ packetsPerSecond: 0 }), RangeError);
    assert.throws(() => harness({ burst: Number.NaN }), RangeError);
  });
});

describe("MulticastCarrier receiving", () => {
  test("writes what a member sent to the Tun unchanged and says to forward it", () => {
    const a = harness();
    const b = harness();
    const packet = datagram(7);
    a.carrier.send(packet);
    assert.equal(b.carrier.receive(ORIGIN, a.sent[0]!.data, BROADCAST_INFO), true);
    assert.deepEqual(b.written, [packet]);
    assert.equal(b.carrier.counters().delivered, 1);
  });

  test("a second copy of one packet is dropped and not forwarded; a new start is not a copy", () => {
    const a = harness();
    const b = harness();
    for (let i = 0; i < 3; i++) a.carrier.send(datagram(i));
    for (const { data } of a.sent) b.carrier.receive(ORIGIN, data, BROADCAST_INFO);
    assert.equal(b.carrier.receive(ORIGIN, a.sent[1]!.data, BROADCAST_INFO), false);
    assert.equal(b.carrier.counters().dropped.duplicate, 1);
    // The origin restarts: a new epoch, its sequence numbers start again.
    const restarted = harness({}, 0.75);
    restarted.carrier.send(datagram(9));
    assert.equal(b.carrier.receive(ORIGIN, restarted.sent[0]!.data, BROADCAST_INFO), true);
    assert.equal(b.written.length, 4);
  });

  test("out of order is fine, each once", () => {
    const a = harness();
    const b = harness();
    for (let i = 0; i < 10; i++) a.carrier.send(datagram(i));
    const order = [3, 1, 0, 9, 2, 8, 4, 7, 5, 6, 3, 9];
    const accepted = order.map((i) => b.carrier.receive(ORIGIN, a.sent[i]!.data, BROADCAST_INFO));
    assert.deepEqual(accepted, [...Array(10).fill(true), false, false]);
  });

  test("a source outside the origin's allowed IPs is dropped and not forwarded", () => {
    const a = harness();
    const b = harness();
    a.carrier.send(datagram(1, "239.1.2.3", "10.36.0.1"));
    assert.equal(b.carrier.receive(ORIGIN, a.sent[0]!.data, BROADCAST_INFO), false);
    a.carrier.send(datagram(2));
    assert.equal(b.carrier.receive("unknown-origin", a.sent[1]!.data, BROADCAST_INFO), false);
    assert.equal(b.written.length, 0);
    assert.equal(b.carrier.counters().dropped["spoofed-source"], 2);
  });

  test("bad packets and frames are counted by reason", () => {
    const a = harness();
    const b = harness();
    const bad = datagram(1);
    bad[10]! ^= 0xff;
    a.carrier.send(bad);
    a.carrier.send(datagram(2, "239.1.2.3"));
    const truncated = a.sent[1]!.data.subarray(0, a.sent[1]!.data.length - 2);
    const wrongVersion = a.sent[1]!.data.slice();
    wrongVersion[0] = 9;
    assert.equal(b.carrier.receive(ORIGIN, a.sent[0]!.data, BROADCAST_INFO), false);
    assert.equal(b.carrier.receive(ORIGIN, truncated, BROADCAST_INFO), false);
    assert.equal(b.carrier.receive(ORIGIN, wrongVersion, BROADCAST_INFO), false);
    assert.equal(b.carrier.receive(ORIGIN, new Uint8Array(3), BROADCAST_INFO), false);
    assert.equal(b.carrier.receive(ORIGIN, a.sent[1]!.data, { broadcast: false }), false);
    assert.deepEqual(b.carrier.counters().dropped, {
      "bad-checksum": 1,
      malformed: 1,
      "malformed-frame": 2,
      "not-broadcast": 1,
    });
    assert.equal(b.written.length, 0);
  });

  test("a receiver holds each origin to the rate with twice the burst, and does not forward the rest", () => {
    const a = harness({ packetsPerSecond: 1_000, burst: 1_000 });
    const b = harness({ packetsPerSecond: 10, burst: 5 });
    for (let i = 0; i < 30; i++) a.carrier.send(datagram(i));
    const forwarded = a.sent.filter(({ data }) => b.carrier.receive(ORIGIN, data, BROADCAST_INFO));
    assert.equal(forwarded.length, 10);
    assert.equal(b.written.length, 10);
    assert.equal(b.carrier.counters().dropped["origin-rate-limited"], 20);
    // Other origins have their own buckets.
    PREFIXES.set("second", [parsePrefix("10.36.0.0/14")!]);
    const c = harness();
    c.carrier.send(datagram(1, "239.1.2.3", "10.36.0.1"));
    assert.equal(b.carrier.receive("second", c.sent[0]!.data, BROADCAST_INFO), true);
    PREFIXES.delete("second");
  });

  test("off: nothing is sent, written or forwarded", () => {
    const a = harness();
    const off = harness({ enabled: false });
    assert.equal(off.carrier.send(datagram(1)), true);
    assert.equal(off.sent.length, 0);
    a.carrier.send(datagram(2));
    assert.equal(off.carrier.receive(ORIGIN, a.sent[0]!.data, BROADCAST_INFO), false);
    assert.equal(off.written.length, 0);
    assert.equal(off.carrier.counters().dropped.disabled, 2);
    assert.equal(off.carrier.send(datagram(3, "10.32.0.9")), false, "unicast stays the Device's");
  });
});
