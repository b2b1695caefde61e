/**
 * IP fragment reassembly in the Netstack (#10): fragments scapy cut (fixtures/
 * fragments.json, with the call that made them) arrive in order, out of order and
 * duplicated and come out as one UDP datagram; overlaps abandon the datagram (RFC 5722);
 * timeouts run on a virtual clock (30 s IPv4, 60 s IPv6); a flood stays within the
 * memory bound and a legitimate datagram still gets through; too-big and tiny first
 * fragments are refused. Drops are counted by reason.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { parseIp } from "../../src/net/ip.ts";
import { PROTOCOL_TCP, PROTOCOL_UDP } from "../../src/netstack/constants.ts";
import { Reassembler } from "../../src/netstack/ip-reassembly.ts";
import { encodeIpv4 } from "../../src/netstack/ipv4.ts";
import { Netstack, type UdpReceived } from "../../src/netstack/netstack.ts";
import { VirtualClock } from "../../src/sim/virtual-clock.ts";

const fixtures = JSON.parse(
  readFileSync(new URL("./fixtures/fragments.json", import.meta.url), "utf8"),
) as { ipv4: string[]; ipv6: string[] };
const fromHex = (text: string) =>
  Uint8Array.from(text.match(/../g)!, (b) => Number.parseInt(b, 16));
const V4 = fixtures.ipv4.map(fromHex);
const V6 = fixtures.ipv6.map(fromHex);
const PAYLOAD = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff);

function host(options: { maxBytes?: number; maxEntries?: number } = {}) {
  const clock = new VirtualClock();
  const stack = new Netstack({
    addresses: ["10.40.0.2", "fd00::2"],
    clock,
    reassembly: options,
  });
  const received: UdpReceived[] = [];
  stack.bindUdp(7, (d) => received.push(d));
  stack.onPacket(() => {});
  return { clock, stack, received };
}

/** An IPv4 fragment of `data` at `offsetBytes` (id, protocol, More Fragments as given). */
function fragment4(
  id: number,
  offsetBytes: number,
  more: boolean,
  data: Uint8Array,
  protocol = PROTOCOL_UDP,
): Uint8Array {
  const packet = encodeIpv4(
    {
      source: parseIp("10.40.0.1")!,
      destination: parseIp("10.40.0.2")!,
      protocol,
      identification: id,
      dontFragment: false,
    },
    data,
  );
  const view = new DataView(packet.buffer);
  view.setUint16(6, (more ? 0x2000 : 0) | (offsetBytes / 8));
  view.setUint16(10, 0);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += view.getUint16(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  view.setUint16(10, ~sum & 0xffff);
  return packet;
}

describe("IP fragment reassembly", () => {
  test("IPv4 fragments from scapy, in order, make one UDP datagram", () => {
    const { stack, received } = host();
    for (const f of V4) stack.write(f);
    assert.equal(received.length, 1);
    assert.deepEqual(received[0]!.data, PAYLOAD);
    assert.equal(received[0]!.sourcePort, 5000);
    assert.equal(stack.counters().reassembled, 1);
    assert.equal(stack.counters().reassemblyBytes, 0);
    assert.deepEqual(stack.counters().drops, {});
  });

  test("out of order and duplicated fragments, IPv4 and IPv6, make one datagram each", () => {
    const { stack, received } = host();
    for (const i of [3, 1, 1, 2, 3]) stack.write(V4[i]!);
    assert.equal(received.length, 0);
    stack.write(V4[0]!);
    stack.write(V4[2]!); // a duplicate after completion starts a new datagram, held
    assert.equal(received.length, 1);
    assert.deepEqual(received[0]!.data, PAYLOAD);
    for (const i of [2, 0, 0, 1]) stack.write(V6[i]!);
    assert.equal(received.length, 2);
    assert.deepEqual(received[1]!.data, PAYLOAD);
    assert.equal(received[1]!.destinationPort, 7);
    assert.equal(stack.counters().reassembled, 2);
    assert.deepEqual(stack.counters().drops, {});
  });

  test("an overlapping fragment abandons the whole datagram (RFC 5722)", () => {
    const { stack, received } = host();
    const first = new Uint8Array(16).fill(1);
    first.set([0x13, 0x88, 0, 7, 0, 40, 0, 0]); // UDP header, checksum 0
    stack.write(fragment4(9, 0, true, first));
    stack.write(fragment4(9, 8, true, new Uint8Array(16))); // overlaps bytes 8..16
    stack.write(fragment4(9, 16, true, new Uint8Array(16))); // after abandonment
    stack.write(fragment4(9, 32, false, new Uint8Array(8)));
    assert.equal(received.length, 0);
    assert.deepEqual(stack.counters().drops, {
      "fragment-overlap": 1,
      "fragment-abandoned": 2,
    });
    assert.equal(stack.counters().reassemblyBytes, 0);
    // IPv6: the same scapy fragment twice with other bytes is an overlap too.
    const altered = V6[1]!.slice();
    altered[altered.length - 1]! ^= 0xff;
    stack.write(V6[1]!);
    stack.write(altered);
    stack.write(V6[0]!);
    stack.write(V6[2]!);
    assert.equal(received.length, 0);
    assert.equal(stack.counters().drops["fragment-overlap"], 2);
  });

  test("a datagram not complete in 30 s (IPv4) or 60 s (IPv6) is dropped", () => {
    const { clock, stack, received } = host();
    stack.write(V4[0]!);
    stack.write(V6[0]!);
    clock.advance(29_999);
    stack.write(V4[1]!);
    clock.advance(1);
    for (const f of V4.slice(2)) stack.write(f); // 30 s after the first: too late
    assert.equal(received.length, 0);
    assert.equal(stack.counters().drops["fragment-timeout"], 1);
    clock.advance(29_999);
    stack.write(V6[1]!);
    stack.write(V6[2]!); // 59.999 s: still in time
    assert.equal(received.length, 1);
    stack.write(V6[0]!);
    clock.advance(60_000);
    stack.write(V6[1]!);
    stack.write(V6[2]!);
    assert.equal(received.length, 1);
    assert.equal(stack.counters().drops["fragment-timeout"], 2);
  });

  test("a flood of incomplete datagrams stays within the memory bound", () => {
    const { stack, received } = host();
    for (let id = 0; id < 10_000; id++) {
      stack.write(fragment4(id, 1400, true, new Uint8Array(1400)));
      const { reassemblyBytes } = stack.counters();
      assert.ok(reassemblyBytes <= 4 * 1024 * 1024, `held ${reassemblyBytes}`);
    }
    const { drops, reassemblyBytes } = stack.counters();
    assert.ok(reassemblyBytes <= 64 * (1400 + 64), `64 entries at most, held ${reassemblyBytes}`);
    assert.equal(drops["fragment-evicted"], 10_000 - 64);
    for (const f of V4) stack.write(f);
    assert.equal(received.length, 1, "a legitimate datagram still gets through");
    // The byte bound alone: 64 KiB holds few 8-byte fragments of many datagrams.
    const small = host({ maxBytes: 64 * 1024, maxEntries: 100_000 });
    for (let id = 0; id < 10_000; id++) {
      small.stack.write(fragment4(id, 8 * (1 + (id % 100)), true, new Uint8Array(8)));
    }
    assert.ok(small.stack.counters().reassemblyBytes <= 64 * 1024);
  });

  test("too big, tiny first fragments and bad lengths are refused", () => {
    const { stack, received } = host();
    // IPv4: data ending at byte 65528 fits the offset field but not a 20-byte header.
    stack.write(fragment4(1, 65_520, false, new Uint8Array(8)));
    const first = new Uint8Array(65_520);
    first.set([0x13, 0x88, 0, 7]);
    for (let at = 0; at < 65_520; at += 1400) {
      const end = Math.min(65_520, at + 1400);
      stack.write(fragment4(1, at, true, first.subarray(at, end)));
    }
    assert.equal(received.length, 0);
    assert.equal(stack.counters().drops["fragment-too-big"], 1);
    // A first TCP fragment of 8 bytes splits the TCP header (RFC 1858 §3.1), and a TCP
    // fragment at offset 8 can only be rewriting flags (§3.2).
    stack.write(fragment4(2, 0, true, new Uint8Array(8), PROTOCOL_TCP));
    stack.write(fragment4(3, 8, false, new Uint8Array(12), PROTOCOL_TCP));
    assert.equal(stack.counters().drops["fragment-tiny"], 2);
  });

  test("the Reassembler alone: inconsistent ends and exact duplicates", () => {
    const r = new Reassembler<string>(1000);
    const piece = (offsetBytes: number, more: boolean, n: number) => ({
      offsetBytes,
      moreFragments: more,
      data: new Uint8Array(n).fill(offsetBytes & 0xff),
    });
    assert.equal(r.add("a", piece(16, false, 8), "h", 0, 8).kind, "held");
    assert.deepEqual(r.add("a", piece(32, true, 8), "h", 0, 8), {
      kind: "dropped",
      reason: "fragment-inconsistent",
    });
    assert.equal(r.bytes, 0);
    assert.equal(r.add("b", piece(8, true, 8), "h", 0, 8).kind, "held");
    assert.equal(r.add("b", piece(8, true, 8), "h", 0, 8).kind, "held", "exact duplicate");
    assert.deepEqual(r.add("b", piece(8, true, 12), "h", 0, 8), {
      kind: "dropped",
      reason: "fragment-bad-length",
    });
    assert.equal(r.add("c", piece(0, true, 8), "first", 0, 8).kind, "held");
    const done = r.add("c", piece(8, false, 3), "other", 1, 8);
    assert.equal(done.kind, "complete");
    if (done.kind === "complete") {
      assert.equal(done.header, "first");
      assert.deepEqual(done.data, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 8, 8, 8));
    }
    assert.equal(r.add("d", piece(0, false, 8), "h", 1001, 8).kind, "complete");
    assert.equal(r.losses.timedOut, 1, "b timed out (a was abandoned, c completed)");
    assert.equal(r.entries, 0);
  });
});
