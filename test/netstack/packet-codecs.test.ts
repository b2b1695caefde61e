/**
 * The packet layer of the userspace stack (#10): IPv4, IPv6, UDP, ICMP, ICMPv6 and TCP
 * headers. Exact bytes for fixed packets, round trips and mutations as properties, and
 * "never throws" for any bytes.
 *
 * Every fixed packet below was built with scapy 2.5.0 (Debian's python3-scapy), which
 * computed every checksum in it (`bytes(p).hex()`), with
 *   v4 = IP(src="10.40.0.2", dst="10.40.0.3", id=0x1234, flags="DF", ttl=64)
 *   v6 = IPv6(src="fd00::2", dst="fd00::3", hlim=64)
 * ICMP4:  v4/ICMP(type=8, id=0x77, seq=1)/b"weft ping"
 * ICMP6:  v6/ICMPv6EchoRequest(id=0x77, seq=1, data=b"weft ping")
 * UDP4:   v4/UDP(sport=40000, dport=5353)/b"hello udp"
 * UDP6:   v6/UDP(sport=40000, dport=5353)/b"hello udp"
 * SYN4:   v4/TCP(sport=40000, dport=80, seq=0x01020304, ack=0, flags="S", window=65535,
 *           options=[("MSS",1380), ("SAckOK",b""), ("Timestamp",(123456,0)), ("NOP",None),
 *           ("WScale",7)])
 * DATA6:  v6/TCP(sport=80, dport=40000, seq=1000, ack=2000, flags="PA", window=502,
 *           options=[("NOP",None), ("NOP",None), ("Timestamp",(5,6)), ("NOP",None),
 *           ("NOP",None), ("SAck",(3000,3100,3200,3300))])/b"GET / HTTP/1.1\r\n\r\n"
 * EXT6:   v6/IPv6ExtHdrHopByHop()/IPv6ExtHdrDestOpt()/IPv6ExtHdrFragment(offset=0, m=0,
 *           id=5)/ICMPv6EchoRequest(id=0x77, seq=1, data=b"weft ping")
 * FRAG6:  v6/IPv6ExtHdrFragment(offset=2, m=1, id=5, nh=17)/Raw(b"12345678")
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { toHex } from "../../src/crypto/index.ts";
import { parseIp } from "../../src/net/ip.ts";
import {
  PROTOCOL_ICMP,
  PROTOCOL_ICMPV6,
  PROTOCOL_TCP,
  PROTOCOL_UDP,
} from "../../src/netstack/constants.ts";
import { type DecodeError, isDecodeError } from "../../src/netstack/decode-error.ts";
import {
  decodeIcmpv4,
  decodeIcmpv6,
  encodeIcmpv4Echo,
  encodeIcmpv6Echo,
  type IcmpEcho,
} from "../../src/netstack/icmp.ts";
import { decodeIpv4, encodeIpv4 } from "../../src/netstack/ipv4.ts";
import { decodeIpv6, encodeIpv6 } from "../../src/netstack/ipv6.ts";
import { decodeTcp, encodeTcp } from "../../src/netstack/tcp-header.ts";
import { NO_FLAGS, type TcpOptions, type TcpSegment } from "../../src/netstack/tcp-segment.ts";
import { decodeUdp, encodeUdp } from "../../src/netstack/udp.ts";
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
const DATA6 = hex(
  "6000000000460640fd000000000000000000000000000002fd000000000000000000000000000003" +
    "00509c40000003e8000007d0d01801f66c5300000101080a00000005000000060101051200000bb8" +
    "00000c1c00000c8000000ce4474554202f20485454502f312e310d0a0d0a",
);
const EXT6 = hex(
  "6000000000290040fd000000000000000000000000000002fd000000000000000000000000000003" +
    "3c000104000000002c000104000000003a000000000000058000b67c00770001776566742070696e67",
);
const FRAG6 = hex(
  "6000000000102c40fd000000000000000000000000000002fd000000000000000000000000000003" +
    "11000011000000053132333435363738",
);

const V4_SOURCE = parseIp("10.40.0.2")!;
const V4_DESTINATION = parseIp("10.40.0.3")!;
const V6_SOURCE = parseIp("fd00::2")!;
const V6_DESTINATION = parseIp("fd00::3")!;
const text = (value: string) => new TextEncoder().encode(value);

function ok<T extends object>(result: T | DecodeError, what: string): T {
  assert.ok(!isDecodeError(result), `${what}: refused with ${(result as DecodeError).error}`);
  return result as T;
}

/**
 * Everything a packet decodes to, IP and upper layer, as text (bytes in hex), or the
 * refusal: what the mutation property compares. Throws only if a decoder throws.
 */
function decodeAll(bytes: Uint8Array): string {
  const version = bytes.length > 0 ? bytes[0]! >> 4 : 0;
  const ip = version === 4 ? decodeIpv4(bytes) : decodeIpv6(bytes);
  if (isDecodeError(ip)) return `ip ${ip.error}`;
  let upper: object;
  if (ip.protocol === PROTOCOL_ICMP && version === 4) upper = decodeIcmpv4(ip.payload);
  else if (ip.protocol === PROTOCOL_ICMPV6) {
    upper = decodeIcmpv6(ip.payload, ip.source, ip.destination);
  } else if (ip.protocol === PROTOCOL_UDP) upper = decodeUdp(ip.payload, ip.source, ip.destination);
  else if (ip.protocol === PROTOCOL_TCP) upper = decodeTcp(ip.payload, ip.source, ip.destination);
  else upper = { protocol: ip.protocol };
  return JSON.stringify({ ip, upper }, (_key, value) =>
    value instanceof Uint8Array ? toHex(value) : value,
  );
}

function tcpSegment(fields: Partial<TcpSegment>): TcpSegment {
  return {
    sourcePort: 40000,
    destinationPort: 80,
    seq: 1,
    ack: 0,
    flags: NO_FLAGS,
    window: 1000,
    urgentPointer: 0,
    options: {},
    payload: new Uint8Array(),
    ...fields,
  };
}

/** A TCP segment in bytes with a raw options area and a correct checksum (the reference one). */
function rawTcp(options: number[], source = V4_SOURCE, destination = V4_DESTINATION): Uint8Array {
  const bytes = new Uint8Array(20 + options.length);
  bytes[12] = ((20 + options.length) / 4) << 4;
  bytes[13] = 0x02;
  bytes.set(options, 20);
  const pseudo = new Uint8Array(12);
  pseudo.set(source, 0);
  pseudo.set(destination, 4);
  pseudo[9] = PROTOCOL_TCP;
  pseudo[11] = bytes.length;
  const checksum = referenceChecksum(pseudo, bytes);
  bytes[16] = checksum >> 8;
  bytes[17] = checksum & 0xff;
  return bytes;
}

describe("netstack packet codecs: fixed packets (scapy)", () => {
  test("IPv4 + ICMP echo request decodes and encodes to the same bytes", () => {
    const ip = ok(decodeIpv4(ICMP4), "ipv4");
    assert.equal(ip.protocol, PROTOCOL_ICMP);
    assert.equal(ip.identification, 0x1234);
    assert.equal(ip.dontFragment, true);
    assert.equal(ip.timeToLive, 64);
    const echo = ok(decodeIcmpv4(ip.payload), "icmp") as IcmpEcho;
    assert.deepEqual(
      { kind: echo.kind, identifier: echo.identifier, sequence: echo.sequence },
      { kind: "echo-request", identifier: 0x77, sequence: 1 },
    );
    assert.deepEqual(echo.data, text("weft ping"));
    const bytes = encodeIpv4(
      {
        source: V4_SOURCE,
        destination: V4_DESTINATION,
        protocol: PROTOCOL_ICMP,
        identification: 0x1234,
      },
      encodeIcmpv4Echo(echo),
    );
    assertSameBytes(bytes, ICMP4, "encoded ICMP echo");
  });

  test("IPv6 + ICMPv6 echo request decodes and encodes to the same bytes", () => {
    const ip = ok(decodeIpv6(ICMP6), "ipv6");
    assert.equal(ip.protocol, PROTOCOL_ICMPV6);
    assert.equal(ip.hopLimit, 64);
    assert.equal(ip.fragment, undefined);
    const echo = ok(decodeIcmpv6(ip.payload, ip.source, ip.destination), "icmpv6") as IcmpEcho;
    assert.equal(echo.kind, "echo-request");
    assert.equal(echo.identifier, 0x77);
    assert.deepEqual(echo.data, text("weft ping"));
    const bytes = encodeIpv6(
      { source: V6_SOURCE, destination: V6_DESTINATION, protocol: PROTOCOL_ICMPV6 },
      encodeIcmpv6Echo(echo, V6_SOURCE, V6_DESTINATION),
    );
    assertSameBytes(bytes, ICMP6, "encoded ICMPv6 echo");
  });

  test("IPv4 + UDP and IPv6 + UDP decode and encode to the same bytes", () => {
    for (const [packet, source, destination, name] of [
      [UDP4, V4_SOURCE, V4_DESTINATION, "udp4"],
      [UDP6, V6_SOURCE, V6_DESTINATION, "udp6"],
    ] as const) {
      const ip = packet === UDP4 ? ok(decodeIpv4(packet), name) : ok(decodeIpv6(packet), name);
      assert.equal(ip.protocol, PROTOCOL_UDP, name);
      const udp = ok(decodeUdp(ip.payload, ip.source, ip.destination), name);
      assert.deepEqual(
        { sourcePort: udp.sourcePort, destinationPort: udp.destinationPort },
        { sourcePort: 40000, destinationPort: 5353 },
      );
      assert.deepEqual(udp.payload, text("hello udp"));
      const upper = encodeUdp(udp, source, destination);
      const bytes =
        packet === UDP4
          ? encodeIpv4(
              { source, destination, protocol: PROTOCOL_UDP, identification: 0x1234 },
              upper,
            )
          : encodeIpv6({ source, destination, protocol: PROTOCOL_UDP }, upper);
      assertSameBytes(bytes, packet, name);
    }
  });

  test("IPv4 + TCP SYN with every option decodes and encodes to the same bytes", () => {
    const ip = ok(decodeIpv4(SYN4), "ipv4");
    const segment = ok(decodeTcp(ip.payload, ip.source, ip.destination), "tcp");
    assert.deepEqual(
      { ...segment, payload: [...segment.payload] },
      {
        sourcePort: 40000,
        destinationPort: 80,
        seq: 0x01020304,
        ack: 0,
        flags: { ...NO_FLAGS, syn: true },
        window: 65535,
        urgentPointer: 0,
        options: {
          mss: 1380,
          sackPermitted: true,
          timestamp: { value: 123456, echo: 0 },
          windowScale: 7,
        },
        payload: [],
      },
    );
    const bytes = encodeIpv4(
      {
        source: V4_SOURCE,
        destination: V4_DESTINATION,
        protocol: PROTOCOL_TCP,
        identification: 0x1234,
      },
      encodeTcp(segment, V4_SOURCE, V4_DESTINATION),
    );
    assertSameBytes(bytes, SYN4, "encoded SYN");
  });

  test("IPv6 + TCP data with timestamps and SACK decodes and encodes to the same bytes", () => {
    const ip = ok(decodeIpv6(DATA6), "ipv6");
    const segment = ok(decodeTcp(ip.payload, ip.source, ip.destination), "tcp");
    assert.equal(segment.seq, 1000);
    assert.equal(segment.ack, 2000);
    assert.deepEqual(segment.flags, { ...NO_FLAGS, psh: true, ack: true });
    assert.equal(segment.window, 502);
    assert.deepEqual(segment.options, {
      timestamp: { value: 5, echo: 6 },
      sack: [
        [3000, 3100],
        [3200, 3300],
      ],
    });
    assert.deepEqual(segment.payload, text("GET / HTTP/1.1\r\n\r\n"));
    const bytes = encodeIpv6(
      { source: V6_SOURCE, destination: V6_DESTINATION, protocol: PROTOCOL_TCP },
      encodeTcp(segment, V6_SOURCE, V6_DESTINATION),
    );
    assertSameBytes(bytes, DATA6, "encoded TCP data");
  });

  test("IPv6 extension headers are walked to the upper layer; a fragment is reported", () => {
    const ip = ok(decodeIpv6(EXT6), "ext6");
    assert.equal(ip.protocol, PROTOCOL_ICMPV6);
    assert.equal(ip.fragment, undefined, "an atomic fragment is no fragment");
    assert.deepEqual(
      ip.extensionHeaders.map((header) => header.type),
      [0, 60, 44],
    );
    const echo = ok(decodeIcmpv6(ip.payload, ip.source, ip.destination), "icmpv6");
    assert.equal(echo.kind, "echo-request");
    const fragment = ok(decodeIpv6(FRAG6), "frag6");
    assert.deepEqual(fragment.fragment, {
      identification: 5,
      offsetBytes: 16,
      moreFragments: true,
    });
    assert.equal(fragment.protocol, PROTOCOL_UDP);
    assert.deepEqual(fragment.payload, text("12345678"));
  });

  test("an IPv4 header with options is decoded past them", () => {
    // The UDP4 packet with one 4-byte option (NOP, NOP, NOP, EOL) put into its header.
    const withOptions = new Uint8Array(UDP4.length + 4);
    withOptions.set(UDP4.subarray(0, 20));
    withOptions.set([1, 1, 1, 0], 20);
    withOptions.set(UDP4.subarray(20), 24);
    withOptions[0] = 0x46;
    withOptions[3] = withOptions.length;
    withOptions[10] = 0;
    withOptions[11] = 0;
    const checksum = referenceChecksum(withOptions.subarray(0, 24));
    withOptions[10] = checksum >> 8;
    withOptions[11] = checksum & 0xff;
    const ip = ok(decodeIpv4(withOptions), "ipv4 with options");
    assert.equal(ip.headerBytes, 24);
    const udp = ok(decodeUdp(ip.payload, ip.source, ip.destination), "udp");
    assert.deepEqual(udp.payload, text("hello udp"));
  });
});

describe("netstack packet codecs: refusals", () => {
  test("IPv4 refuses short, wrong version, bad lengths and a bad checksum", () => {
    const cases: [Uint8Array, string][] = [
      [ICMP4.subarray(0, 19), "truncated"],
      [Uint8Array.from(ICMP4, (byte, i) => (i === 0 ? 0x65 : byte)), "not-ipv4"],
      [Uint8Array.from(ICMP4, (byte, i) => (i === 0 ? 0x44 : byte)), "bad-header-length"],
      [ICMP4.subarray(0, 30), "bad-total-length"],
      [Uint8Array.from(ICMP4, (byte, i) => (i === 8 ? 63 : byte)), "bad-checksum"],
    ];
    for (const [bytes, code] of cases) {
      assert.deepEqual(decodeIpv4(bytes), { error: code }, code);
    }
  });

  test("IPv6 refuses short, wrong version, a payload past the end, cut extension headers", () => {
    const cut = EXT6.slice(0, 44);
    cut[5] = 4; // payload length 4: the hop-by-hop header claims 8
    const lateHopByHop = EXT6.slice();
    lateHopByHop[40] = 0; // destination options followed by hop-by-hop
    assert.deepEqual(decodeIpv6(ICMP6.subarray(0, 39)), { error: "truncated" });
    assert.deepEqual(decodeIpv6(SYN4), { error: "not-ipv6" });
    assert.deepEqual(decodeIpv6(ICMP6.subarray(0, ICMP6.length - 1)), {
      error: "bad-payload-length",
    });
    assert.deepEqual(decodeIpv6(cut), { error: "bad-extension-header" });
    assert.deepEqual(decodeIpv6(lateHopByHop), { error: "bad-extension-header" });
    const routed = EXT6.slice();
    routed[6] = 43; // the first header read as a routing header: type 1, 4 segments left
    assert.deepEqual(decodeIpv6(routed), { error: "routing-segments-left" });
    const unknownOption = EXT6.slice();
    unknownOption[42] = 0x81; // an unknown option of type 10xxxxxx: discard the packet
    assert.deepEqual(decodeIpv6(unknownOption), { error: "unrecognized-option" });
    const skippable = EXT6.slice();
    skippable[42] = 0x1e; // an unknown option of type 00xxxxxx: skip it
    assert.ok(!isDecodeError(decodeIpv6(skippable)), "an option of type 00xxxxxx is skipped");
    const overlong = EXT6.slice();
    overlong[43] = 5; // PadN running past its header
    assert.deepEqual(decodeIpv6(overlong), { error: "bad-option" });
  });

  test("UDP over IPv6 with a zero checksum is refused; over IPv4 it means none", () => {
    const udp = encodeUdp(
      { sourcePort: 1, destinationPort: 2, payload: text("x") },
      V4_SOURCE,
      V4_DESTINATION,
    );
    udp[6] = 0;
    udp[7] = 0;
    ok(decodeUdp(udp, V4_SOURCE, V4_DESTINATION), "udp4 without checksum");
    assert.deepEqual(decodeUdp(udp, V6_SOURCE, V6_DESTINATION), { error: "bad-checksum" });
    assert.deepEqual(decodeUdp(udp.subarray(0, 7), V4_SOURCE, V4_DESTINATION), {
      error: "truncated",
    });
    udp[5] = 100;
    assert.deepEqual(decodeUdp(udp, V4_SOURCE, V4_DESTINATION), { error: "bad-length" });
  });

  test("TCP options: unknown kinds skipped, EOL ends the list, window scale capped at 14", () => {
    // Kind 30 (MPTCP) with 6 bytes, then window scale 15, then EOL and garbage after it.
    const segment = ok(
      decodeTcp(rawTcp([30, 6, 9, 9, 9, 9, 3, 3, 15, 0, 0xff, 0xff]), V4_SOURCE, V4_DESTINATION),
      "tcp",
    );
    assert.deepEqual(segment.options, { windowScale: 14 });
  });

  test("TCP options with malformed lengths are refused", () => {
    const malformed: [number[], string][] = [
      [[2, 4, 5, 0xb4, 30, 0, 0, 0], "a length of 0"],
      [[30, 1, 1, 1], "a length of 1"],
      [[1, 1, 1, 30], "a kind without a length byte"],
      [[30, 8, 0, 0], "a length past the header"],
      [[2, 3, 5, 0], "an MSS of length 3"],
      [[3, 4, 7, 0], "a window scale of length 4"],
      [[4, 3, 0, 0], "SACK permitted of length 3"],
      [[5, 2, 0, 0], "SACK with no block"],
      [[5, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], "SACK with a partial block"],
      [[8, 8, 0, 0, 0, 0, 0, 0], "timestamps of length 8"],
    ];
    for (const [options, what] of malformed) {
      assert.deepEqual(
        decodeTcp(rawTcp(options), V4_SOURCE, V4_DESTINATION),
        { error: "bad-option" },
        what,
      );
    }
  });

  test("TCP refuses a data offset below 5 or past the segment, and a bad checksum", () => {
    const low = rawTcp([]);
    low[12] = 0x40;
    assert.deepEqual(decodeTcp(low, V4_SOURCE, V4_DESTINATION), { error: "bad-data-offset" });
    const high = rawTcp([]);
    high[12] = 0x60;
    assert.deepEqual(decodeTcp(high, V4_SOURCE, V4_DESTINATION), { error: "bad-data-offset" });
    assert.deepEqual(
      decodeTcp(
        rawTcp([]),
        V4_DESTINATION,
        V4_SOURCE.map((b) => b + 1),
      ),
      {
        error: "bad-checksum",
      },
    );
  });

  test("encodeTcp throws RangeError for options over 40 bytes and fields out of range", () => {
    const tooMany: TcpOptions = {
      mss: 1380,
      sackPermitted: true,
      timestamp: { value: 1, echo: 2 },
      windowScale: 7,
      sack: [
        [1, 2],
        [3, 4],
        [5, 6],
      ],
    };
    assert.throws(
      () => encodeTcp(tcpSegment({ options: tooMany }), V4_SOURCE, V4_DESTINATION),
      RangeError,
    );
    assert.throws(
      () => encodeTcp(tcpSegment({ seq: 2 ** 32 }), V4_SOURCE, V4_DESTINATION),
      RangeError,
    );
    assert.throws(
      () => encodeTcp(tcpSegment({ sourcePort: -1 }), V4_SOURCE, V4_DESTINATION),
      RangeError,
    );
  });
});

const v4Address = fc.uint8Array({ minLength: 4, maxLength: 4 });
const v6Address = fc.uint8Array({ minLength: 16, maxLength: 16 });
const addressPair = fc.oneof(fc.tuple(v4Address, v4Address), fc.tuple(v6Address, v6Address));
const uint32 = fc.integer({ min: 0, max: 0xffffffff });
const port = fc.integer({ min: 0, max: 0xffff });

const optionsArbitrary: fc.Arbitrary<TcpOptions> = fc
  .record(
    {
      mss: fc.integer({ min: 0, max: 0xffff }),
      windowScale: fc.integer({ min: 0, max: 14 }),
      sackPermitted: fc.constant(true),
      sack: fc.array(fc.tuple(uint32, uint32), { minLength: 1, maxLength: 4 }),
      timestamp: fc.tuple(uint32, uint32).map(([value, echo]) => ({ value, echo })),
    },
    { requiredKeys: [] },
  )
  .filter((options) => {
    const bytes =
      (options.mss !== undefined ? 4 : 0) +
      (options.timestamp !== undefined ? 12 : options.sackPermitted ? 4 : 0) +
      (options.windowScale !== undefined ? 4 : 0) +
      (options.sack !== undefined ? 4 + 8 * options.sack.length : 0);
    return bytes <= 40;
  });

const segmentArbitrary: fc.Arbitrary<TcpSegment> = fc.record({
  sourcePort: port,
  destinationPort: port,
  seq: uint32,
  ack: uint32,
  flags: fc.record({
    fin: fc.boolean(),
    syn: fc.boolean(),
    rst: fc.boolean(),
    psh: fc.boolean(),
    ack: fc.boolean(),
    urg: fc.boolean(),
    ece: fc.boolean(),
    cwr: fc.boolean(),
  }),
  window: port,
  urgentPointer: port,
  options: optionsArbitrary,
  payload: fc.uint8Array({ maxLength: 64 }),
});

describe("netstack packet codecs: properties", () => {
  test("TCP segments round-trip through encodeTcp and decodeTcp, over IPv4 and IPv6", () => {
    fc.assert(
      fc.property(segmentArbitrary, addressPair, (segment, [source, destination]) => {
        const bytes = encodeTcp(segment, source, destination);
        assert.ok(bytes.length % 4 === segment.payload.length % 4, "the header is whole words");
        const decoded = ok(decodeTcp(bytes, source, destination), "round trip");
        assert.deepEqual(
          { ...decoded, payload: [...decoded.payload] },
          {
            ...segment,
            flags: { ...segment.flags },
            options: { ...segment.options },
            payload: [...segment.payload],
          },
        );
      }),
    );
  });

  test("UDP and ICMP echoes round-trip inside IPv4 and IPv6", () => {
    fc.assert(
      fc.property(
        addressPair,
        port,
        port,
        fc.uint8Array({ maxLength: 64 }),
        fc.constantFrom("echo-request" as const, "echo-reply" as const),
        (pair, sourcePort, destinationPort, data, kind) => {
          const [source, destination] = pair;
          const v4 = source.length === 4;
          const wrap = (protocol: number, upper: Uint8Array) =>
            v4
              ? encodeIpv4({ source, destination, protocol }, upper)
              : encodeIpv6({ source, destination, protocol }, upper);
          const udpPacket = wrap(
            PROTOCOL_UDP,
            encodeUdp({ sourcePort, destinationPort, payload: data }, source, destination),
          );
          const echo: IcmpEcho = { kind, identifier: sourcePort, sequence: destinationPort, data };
          const icmpPacket = v4
            ? wrap(PROTOCOL_ICMP, encodeIcmpv4Echo(echo))
            : wrap(PROTOCOL_ICMPV6, encodeIcmpv6Echo(echo, source, destination));
          const udpIp = v4 ? ok(decodeIpv4(udpPacket), "ip") : ok(decodeIpv6(udpPacket), "ip");
          assert.deepEqual(udpIp.source, source);
          assert.deepEqual(udpIp.destination, destination);
          const udp = ok(decodeUdp(udpIp.payload, source, destination), "udp");
          assert.deepEqual(
            [udp.sourcePort, udp.destinationPort, [...udp.payload]],
            [sourcePort, destinationPort, [...data]],
          );
          const icmpIp = v4 ? ok(decodeIpv4(icmpPacket), "ip") : ok(decodeIpv6(icmpPacket), "ip");
          const message = v4
            ? ok(decodeIcmpv4(icmpIp.payload), "icmp")
            : ok(decodeIcmpv6(icmpIp.payload, source, destination), "icmpv6");
          assert.deepEqual(
            { ...message, data: [...(message as IcmpEcho).data] },
            { ...echo, data: [...data] },
          );
        },
      ),
    );
  });

  test("every one-byte change of a fixed packet is refused or decodes to something else", () => {
    for (const [name, packet] of Object.entries({ ICMP4, ICMP6, UDP4, UDP6, SYN4, DATA6, EXT6 })) {
      const original = decodeAll(packet);
      assert.ok(
        !original.startsWith("ip ") && !original.includes('"error"'),
        `${name} decodes: ${original}`,
      );
      for (let index = 0; index < packet.length; index++) {
        for (let flip = 1; flip < 256; flip++) {
          const mutated = packet.slice();
          mutated[index]! ^= flip;
          const decoded = decodeAll(mutated);
          assert.ok(
            decoded !== original,
            `${name} with byte ${index} xor ${flip} decodes as the original`,
          );
        }
      }
    }
  });

  test("no decoder throws for any bytes, and each returns a value or a refusal", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 120 }),
        addressPair,
        (bytes, [source, destination]) => {
          const results: object[] = [
            decodeIpv4(bytes),
            decodeIpv6(bytes),
            decodeUdp(bytes, source, destination),
            decodeTcp(bytes, source, destination),
            decodeIcmpv4(bytes),
            decodeIcmpv6(bytes, source, destination),
          ];
          for (const result of results)
            assert.ok(typeof result === "object" && result !== null, "a result");
          decodeAll(bytes);
        },
      ),
    );
  });

  test("well-formed headers with a random tail or cut never throw in the whole chain", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(ICMP4, ICMP6, UDP4, UDP6, SYN4, DATA6, EXT6, FRAG6),
        fc.nat(),
        fc.uint8Array({ maxLength: 40 }),
        (packet, cutAt, tail) => {
          const cut = packet.subarray(0, cutAt % (packet.length + 1));
          const bytes = new Uint8Array(cut.length + tail.length);
          bytes.set(cut);
          bytes.set(tail, cut.length);
          assert.ok(typeof decodeAll(bytes) === "string", "decodes or refuses");
        },
      ),
    );
  });
});
