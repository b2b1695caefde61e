/**
 * The Netstack as a Tun (#10): it answers pings, carries UDP, refuses what it cannot use
 * by counting it, hands TCP to its seam; two of them back to back; and one as the Tun of
 * a simulated mesh peer, pinged and reached over UDP from another peer's ChannelTun.
 *
 * The requests are the scapy packets of packet-codecs.test.ts (10.40.0.2 or fd00::2 to
 * 10.40.0.3 or fd00::3). The expected answers were built with scapy 2.5.0 too:
 *   REPLY4:    IP(src="10.40.0.3", dst="10.40.0.2", id=0, flags="DF", ttl=64)/ICMP(type=0,
 *                id=0x77, seq=1)/b"weft ping"
 *   REPLY6:    IPv6(src="fd00::3", dst="fd00::2", hlim=64)/ICMPv6EchoReply(id=0x77, seq=1,
 *                data=b"weft ping")
 *   UNREACH4:  IP(src="10.40.0.3", dst="10.40.0.2", id=0, flags="DF", ttl=64)/ICMP(type=3,
 *                code=3)/Raw(bytes(UDP4))
 *   UNREACH6:  IPv6(src="fd00::3", dst="fd00::2", hlim=64)/ICMPv6DestUnreach(code=4)/
 *                Raw(bytes(UDP6))
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { parseIp } from "../../src/net/ip.ts";
import {
  PROTOCOL_ICMP,
  PROTOCOL_ICMPV6,
  PROTOCOL_TCP,
  PROTOCOL_UDP,
} from "../../src/netstack/constants.ts";
import { isDecodeError } from "../../src/netstack/decode-error.ts";
import { decodeIcmpv6, encodeIcmpv4Echo, encodeIcmpv6Echo } from "../../src/netstack/icmp.ts";
import { decodeIpv4, encodeIpv4 } from "../../src/netstack/ipv4.ts";
import { decodeIpv6, encodeIpv6 } from "../../src/netstack/ipv6.ts";
import {
  NETSTACK_ICMP_ERRORS_PER_SECOND,
  Netstack,
  type UdpReceived,
} from "../../src/netstack/netstack.ts";
import { decodeTcp } from "../../src/netstack/tcp-header.ts";
import { NO_FLAGS, type TcpSegment } from "../../src/netstack/tcp-segment.ts";
import { decodeUdp } from "../../src/netstack/udp.ts";
import { VirtualClock } from "../../src/sim/virtual-clock.ts";
import { createMeshSim } from "../helpers/mesh-sim.ts";
import { icmpEchoRequest, parseIpv4, udpPacket } from "../helpers/packets.ts";
import { providers } from "../helpers/providers.ts";
import { assertSameBytes, hex, referenceChecksum } from "../net/packet-fixtures.ts";

const ICMP4 = hex("4500002512344000400114500a2800020a280003080028cf00770001776566742070696e67");
const ICMP6 = hex(
  "6000000000113a40fd000000000000000000000000000002fd000000000000000000000000000003" +
    "8000b67c00770001776566742070696e67",
);
const UDP4 = hex("4500002512344000401114400a2800020a2800039c4014e9001110f768656c6c6f20756470");
const UDP6 = hex(
  "6000000000111140fd000000000000000000000000000002fd000000000000000000000000000003" +
    "9c4014e900112b4568656c6c6f20756470",
);
const SYN4 = hex(
  "4500003c12344000400614340a2800020a280003" +
    "9c4000500102030400000000a002ffffb1230000020405640402080a0001e2400000000001030307",
);
const REPLY4 = hex("4500002500004000400126840a2800030a280002000030cf00770001776566742070696e67");
const REPLY6 = hex(
  "6000000000113a40fd000000000000000000000000000003fd000000000000000000000000000002" +
    "8100b57c00770001776566742070696e67",
);
const UNREACH4 = hex(
  "4500004100004000400126680a2800030a28000203031174000000004500002512344000401114400a2800020a280003" +
    "9c4014e9001110f768656c6c6f20756470",
);
const UNREACH6 = hex(
  "6000000000413a40fd000000000000000000000000000003fd0000000000000000000000000000020104934a00000000" +
    "6000000000111140fd000000000000000000000000000002fd0000000000000000000000000000039c4014e9" +
    "00112b4568656c6c6f20756470",
);

const text = (value: string) => new TextEncoder().encode(value);
const native = providers[1]![1];

/** A Netstack at 10.40.0.3 and fd00::3 whose output collects in `sent`. */
function stackUnderTest(): { stack: Netstack; sent: Uint8Array[] } {
  const stack = new Netstack({ addresses: ["10.40.0.3", "fd00::3/64"] });
  const sent: Uint8Array[] = [];
  stack.onPacket((packet) => sent.push(packet.slice()));
  return { stack, sent };
}

describe("Netstack as a host", () => {
  test("answers an ICMP echo request with the reply scapy builds", () => {
    const { stack, sent } = stackUnderTest();
    stack.write(ICMP4);
    assert.equal(sent.length, 1);
    assertSameBytes(sent[0], REPLY4, "echo reply");
    assert.equal(stack.counters().echoRepliesSent, 1);
  });

  test("answers an ICMPv6 echo request with the reply scapy builds", () => {
    const { stack, sent } = stackUnderTest();
    stack.write(ICMP6);
    assert.equal(sent.length, 1);
    assertSameBytes(sent[0], REPLY6, "echo reply");
  });

  test("delivers UDP to a bound port, over IPv4 and IPv6, with addresses and ports", () => {
    const { stack, sent } = stackUnderTest();
    const received: UdpReceived[] = [];
    stack.bindUdp(5353, (datagram) => received.push(datagram));
    stack.write(UDP4);
    stack.write(UDP6);
    assert.equal(sent.length, 0);
    assert.equal(received.length, 2);
    assert.deepEqual(
      received.map((r) => [[...r.source], r.sourcePort, [...r.destination], r.destinationPort]),
      [
        [[10, 40, 0, 2], 40000, [10, 40, 0, 3], 5353],
        [[...parseIp("fd00::2")!], 40000, [...parseIp("fd00::3")!], 5353],
      ],
    );
    for (const r of received) assert.deepEqual(r.data, text("hello udp"));
    assert.equal(stack.counters().udpDelivered, 2);
  });

  test("UDP to a port nobody bound gets the port unreachable scapy builds", () => {
    const { stack, sent } = stackUnderTest();
    const binding = stack.bindUdp(5353, () => {});
    binding.close();
    stack.write(UDP4);
    stack.write(UDP6);
    assert.equal(sent.length, 2);
    assertSameBytes(sent[0], UNREACH4, "ICMP port unreachable");
    assertSameBytes(sent[1], UNREACH6, "ICMPv6 port unreachable");
    assert.equal(stack.counters().drops["udp-port-unreachable"], 2);
  });

  test("port unreachable errors are rate limited per destination", () => {
    const clock = new VirtualClock();
    const stack = new Netstack({ addresses: ["10.40.0.3", "fd00::3"], clock });
    const sent: Uint8Array[] = [];
    stack.onPacket((packet) => sent.push(packet));
    for (let i = 0; i < NETSTACK_ICMP_ERRORS_PER_SECOND + 5; i++) stack.write(UDP4);
    assert.equal(sent.length, NETSTACK_ICMP_ERRORS_PER_SECOND, "a burst, then silence");
    assert.equal(stack.counters().drops["icmp-error-rate-limited"], 5);
    stack.write(UDP6);
    assert.equal(
      sent.length,
      NETSTACK_ICMP_ERRORS_PER_SECOND + 1,
      "another destination has its own bucket",
    );
    clock.advance(1_000);
    stack.write(UDP4);
    assert.equal(
      sent.length,
      NETSTACK_ICMP_ERRORS_PER_SECOND + 2,
      "a second later it may answer again",
    );
  });

  test("sendUdp builds datagrams from our address of the destination's version", () => {
    const { stack, sent } = stackUnderTest();
    stack.sendUdp(5353, "10.40.0.2", 40000, text("hello udp"));
    stack.sendUdp(5353, parseIp("fd00::2")!, 40000, text("hello udp"));
    const v4 = decodeIpv4(sent[0]!);
    const v6 = decodeIpv6(sent[1]!);
    assert.ok(!isDecodeError(v4) && !isDecodeError(v6), "both decode");
    assert.deepEqual([...v4.source], [10, 40, 0, 3]);
    assert.deepEqual(v6.source, parseIp("fd00::3"));
    for (const ip of [v4, v6]) {
      const udp = decodeUdp(ip.payload, ip.source, ip.destination);
      assert.ok(!isDecodeError(udp), "the UDP checksum holds");
      assert.deepEqual([udp.sourcePort, udp.destinationPort], [5353, 40000]);
    }
    assert.throws(() => stack.sendUdp(1, "10.40.0.2", 2, new Uint8Array(1401)), RangeError);
    const v4Only = new Netstack({ addresses: ["10.40.0.3"] });
    assert.throws(() => v4Only.sendUdp(1, "fd00::2", 2, text("x")), RangeError);
    assert.throws(() => stack.bindUdp(70000, () => {}), RangeError);
  });

  test("bindUdp refuses a bound port and picks an ephemeral one for port 0", () => {
    const { stack } = stackUnderTest();
    stack.bindUdp(53, () => {});
    assert.throws(() => stack.bindUdp(53, () => {}), RangeError);
    const first = stack.bindUdp(0, () => {});
    const second = stack.bindUdp(0, () => {});
    assert.equal(first.port, 49152);
    assert.equal(second.port, 49153);
  });

  test("hands TCP to the onTcp seam, and sendTcp puts segments on the wire", () => {
    const { stack, sent } = stackUnderTest();
    stack.write(SYN4);
    assert.equal(stack.counters().drops["tcp-no-handler"], 1);
    const segments: [TcpSegment, Uint8Array, Uint8Array][] = [];
    stack.onTcp((segment, source, destination) => segments.push([segment, source, destination]));
    stack.write(SYN4);
    assert.equal(segments.length, 1);
    const [syn, source, destination] = segments[0]!;
    assert.equal(syn.flags.syn, true);
    assert.equal(syn.options.mss, 1380);
    assert.deepEqual([...source, ...destination], [10, 40, 0, 2, 10, 40, 0, 3]);
    const synAck: TcpSegment = {
      ...syn,
      sourcePort: syn.destinationPort,
      destinationPort: syn.sourcePort,
      seq: 7,
      ack: (syn.seq + 1) >>> 0,
      flags: { ...NO_FLAGS, syn: true, ack: true },
      options: { mss: 1380 },
    };
    stack.sendTcp(synAck, destination, source);
    const ip = decodeIpv4(sent[0]!);
    assert.ok(!isDecodeError(ip) && ip.protocol === PROTOCOL_TCP, "a TCP packet");
    const decoded = decodeTcp(ip.payload, ip.source, ip.destination);
    assert.ok(!isDecodeError(decoded), "its checksum holds");
    assert.deepEqual(
      [decoded.seq, decoded.ack, decoded.flags.syn, decoded.flags.ack],
      [7, 0x01020305, true, true],
    );
    assert.throws(() => stack.sendTcp(synAck, source, destination), RangeError, "source not ours");
    // A full-sized segment at the announced MSS fits the MTU exactly, over both versions.
    assert.deepEqual([stack.tcpMssFor(source), stack.tcpMssFor(parseIp("fd00::2")!)], [1380, 1360]);
    const full = { ...synAck, options: {}, payload: new Uint8Array(stack.tcpMssFor(source)) };
    stack.sendTcp(full, destination, source);
    assert.equal(sent.at(-1)!.length, stack.mtuBytes);
    assert.throws(
      () => stack.sendTcp({ ...full, payload: new Uint8Array(1381) }, destination, source),
      RangeError,
      "one byte more than the MSS does not fit",
    );
  });

  test("counts what it cannot use by reason and never answers it", () => {
    const { stack, sent } = stackUnderTest();
    const notForUs = ICMP4.slice();
    notForUs[19] = 9;
    notForUs[10] = 0;
    notForUs[11] = 0;
    const checksum = referenceChecksum(notForUs.subarray(0, 20));
    notForUs[10] = checksum >> 8;
    notForUs[11] = checksum & 0xff;
    const badChecksum = ICMP4.slice();
    badChecksum[8] = 1;
    const fragment = encodeIpv4(
      { source: parseIp("10.40.0.2")!, destination: parseIp("10.40.0.3")!, protocol: PROTOCOL_UDP },
      new Uint8Array(16),
    );
    fragment[6]! |= 0x20; // More Fragments
    fragment[10] = 0;
    fragment[11] = 0;
    const fragmentChecksum = referenceChecksum(fragment.subarray(0, 20));
    fragment[10] = fragmentChecksum >> 8;
    fragment[11] = fragmentChecksum & 0xff;
    const unknown = encodeIpv4(
      { source: parseIp("10.40.0.2")!, destination: parseIp("10.40.0.3")!, protocol: 132 },
      new Uint8Array(12),
    );
    const replyToUs = encodeIpv4(
      {
        source: parseIp("10.40.0.2")!,
        destination: parseIp("10.40.0.3")!,
        protocol: PROTOCOL_ICMP,
      },
      encodeIcmpv4Echo({ kind: "echo-reply", identifier: 1, sequence: 1, data: new Uint8Array() }),
    );
    const fromMulticast = encodeIpv4(
      {
        source: parseIp("224.0.0.1")!,
        destination: parseIp("10.40.0.3")!,
        protocol: PROTOCOL_ICMP,
      },
      encodeIcmpv4Echo({
        kind: "echo-request",
        identifier: 1,
        sequence: 1,
        data: new Uint8Array(),
      }),
    );
    const fromLoopback6 = encodeIpv6(
      { source: parseIp("::1")!, destination: parseIp("fd00::3")!, protocol: PROTOCOL_ICMPV6 },
      encodeIcmpv6Echo(
        { kind: "echo-request", identifier: 1, sequence: 1, data: new Uint8Array() },
        parseIp("::1")!,
        parseIp("fd00::3")!,
      ),
    );
    const badUdp = UDP4.slice();
    badUdp[30]! ^= 1;
    for (const packet of [
      notForUs,
      badChecksum,
      fragment, // held for reassembly now, not dropped
      unknown,
      badUdp,
      replyToUs,
      fromMulticast,
      fromLoopback6,
      new Uint8Array([0x10]),
      new Uint8Array(),
    ]) {
      stack.write(packet);
    }
    assert.equal(sent.length, 0);
    assert.deepEqual(stack.counters().drops, {
      "not-for-us": 1,
      "ipv4-bad-checksum": 1,
      "unknown-protocol": 1,
      "udp-bad-checksum": 1,
      "icmp-not-echo-request": 1,
      "not-ip": 2,
      "bad-source": 2,
    });
    assert.equal(stack.counters().received, 10);
  });

  test("a handler that throws is counted, not thrown into the mesh", () => {
    const { stack } = stackUnderTest();
    stack.bindUdp(5353, () => {
      throw new Error("handler bug");
    });
    stack.write(UDP4);
    assert.equal(stack.counters().drops["udp-handler-threw"], 1);
  });

  test("after close nothing is delivered or sent", async () => {
    const { stack, sent } = stackUnderTest();
    await stack.close();
    stack.write(ICMP4);
    stack.sendUdp(1, "10.40.0.2", 2, text("x"));
    assert.equal(sent.length, 0);
    assert.equal(stack.counters().received, 0);
  });

  test("never throws for any bytes written, and sends only well-formed packets", () => {
    const { stack, sent } = stackUnderTest();
    stack.onTcp(() => {});
    stack.bindUdp(5353, () => {});
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 100 }),
          fc
            .tuple(
              fc.constantFrom(ICMP4, ICMP6, UDP4, UDP6, SYN4),
              fc.nat(),
              fc.integer({ min: 1, max: 255 }),
            )
            .map(([packet, index, flip]) => {
              const mutated = packet.slice();
              mutated[index % mutated.length]! ^= flip;
              return mutated;
            }),
        ),
        (bytes) => {
          stack.write(bytes);
        },
      ),
    );
    for (const packet of sent) {
      const ip = packet[0]! >> 4 === 4 ? decodeIpv4(packet) : decodeIpv6(packet);
      assert.ok(!isDecodeError(ip), "a packet we sent decodes");
    }
  });
});

describe("Netstack wired to another", () => {
  test("two stacks back to back carry UDP both ways over IPv4 and IPv6", () => {
    const a = new Netstack({ addresses: ["10.40.0.2", "fd00::2"] });
    const b = new Netstack({ addresses: ["10.40.0.3", "fd00::3"] });
    a.onPacket((packet) => b.write(packet));
    b.onPacket((packet) => a.write(packet));
    b.bindUdp(7, (d) => b.sendUdp(7, d.source, d.sourcePort, d.data));
    const echoed: string[] = [];
    const client = a.bindUdp(0, (d) =>
      echoed.push(`${d.sourcePort} ${new TextDecoder().decode(d.data)}`),
    );
    a.sendUdp(client.port, "10.40.0.3", 7, text("over v4"));
    a.sendUdp(client.port, "fd00::3", 7, text("over v6"));
    assert.deepEqual(echoed, ["7 over v4", "7 over v6"]);
    // A port nobody bound on B: B's port unreachable reaches A, which counts it.
    a.sendUdp(client.port, "10.40.0.3", 9, text("nobody"));
    assert.equal(b.counters().drops["udp-port-unreachable"], 1);
    assert.equal(a.counters().drops["icmp-not-echo-request"], 1);
  });
});

describe("Netstack as the Tun of a mesh peer", () => {
  test("a peer pings it and exchanges UDP with it through the simulated mesh", async () => {
    const stack = new Netstack({ addresses: ["10.0.0.2", "fd00::2"] });
    const sim = createMeshSim({
      crypto: native,
      seed: 20261128,
      count: 2,
      tunFor: (index) => (index === 1 ? stack : undefined),
    });
    const [host, userspace] = sim.peers as [(typeof sim.peers)[0], (typeof sim.peers)[0]];
    host.mesh.addPeer({
      publicKey: userspace.publicKey,
      allowedIps: [
        { address: parseIp("10.0.0.2")!, prefixLength: 32 },
        { address: parseIp("fd00::2")!, prefixLength: 128 },
      ],
    });
    userspace.mesh.addPeer({
      publicKey: host.publicKey,
      allowedIps: [
        { address: parseIp("10.0.0.1")!, prefixLength: 32 },
        { address: parseIp("fd00::1")!, prefixLength: 128 },
      ],
    });
    sim.run(3_000);

    const request = icmpEchoRequest("10.0.0.1", "10.0.0.2", 0x4242, 3, text("ping"));
    host.tun.inject(request);
    sim.run(1_000);
    const reply = host.tun.written
      .map((packet) => parseIpv4(packet))
      .find((p) => p?.protocol === 1);
    assert.ok(
      reply !== undefined,
      `an echo reply reached the host; stack counters ${JSON.stringify(stack.counters())}`,
    );
    assert.deepEqual([reply.source, reply.destination], ["10.0.0.2", "10.0.0.1"]);
    assert.equal(reply.payload[0], 0, "ICMP type 0, echo reply");
    assert.equal(referenceChecksum(reply.payload), 0, "its ICMP checksum holds");
    assert.deepEqual(
      reply.payload.subarray(4),
      request.subarray(24),
      "identifier, sequence and data echoed",
    );

    stack.bindUdp(7, (d) => stack.sendUdp(7, d.source, d.sourcePort, d.data));
    host.tun.inject(udpPacket("10.0.0.1", "10.0.0.2", 40000, 7, text("echo me")));
    sim.run(1_000);
    const udp = host.tun.written
      .map((packet) => parseIpv4(packet))
      .find((p) => p?.protocol === PROTOCOL_UDP);
    assert.ok(udp !== undefined, "the UDP echo reached the host");
    const datagram = decodeUdp(udp.payload, parseIp(udp.source)!, parseIp(udp.destination)!);
    assert.ok(!isDecodeError(datagram), "its UDP checksum holds");
    assert.deepEqual([datagram.sourcePort, datagram.destinationPort], [7, 40000]);
    assert.deepEqual(datagram.payload, text("echo me"));

    // The stack starts a conversation: a datagram from it reaches the host's Tun.
    host.tun.written.length = 0;
    stack.sendUdp(5000, "10.0.0.1", 6000, text("hello host"));
    sim.run(1_000);
    const initiated = host.tun.written
      .map((packet) => parseIpv4(packet))
      .find((p) => p?.protocol === PROTOCOL_UDP);
    assert.ok(initiated !== undefined, "the stack's datagram reached the host");
    assert.equal(initiated.source, "10.0.0.2");
    assert.deepEqual(initiated.payload.subarray(8), text("hello host"));

    // IPv6: the host pings fd00::2 (a request built with the codecs, the reply checked by them).
    const host6 = parseIp("fd00::1")!;
    const stack6 = parseIp("fd00::2")!;
    const echo6 = {
      kind: "echo-request" as const,
      identifier: 9,
      sequence: 4,
      data: text("ping6"),
    };
    host.tun.written.length = 0;
    host.tun.inject(
      encodeIpv6(
        { source: host6, destination: stack6, protocol: PROTOCOL_ICMPV6 },
        encodeIcmpv6Echo(echo6, host6, stack6),
      ),
    );
    sim.run(1_000);
    const reply6 = decodeIpv6(host.tun.written[0] ?? new Uint8Array());
    assert.ok(
      !isDecodeError(reply6),
      `an IPv6 packet reached the host: ${JSON.stringify(stack.counters())}`,
    );
    const message6 = decodeIcmpv6(reply6.payload, reply6.source, reply6.destination);
    assert.deepEqual({ ...message6 }, { ...echo6, kind: "echo-reply" });
    await sim.close();
  });
});
