/**
 * ICMP "fragmentation needed" and ICMPv6 "packet too big" for path MTU (RFC 1191, RFC
 * 4443 §3.2), the path MTU decision, and the error parser: exact bytes for fixed packets,
 * every case where no error may be sent, and properties over random and well-formed
 * packets, all checked with the independent checksums of packet-fixtures.ts.
 *
 * The fixed packets below and both expected errors were built with scapy 2.5.0 (Debian's
 * python3-scapy), which computed every checksum in them:
 *   IP(src="10.40.0.2", dst="10.40.0.3", id=0x2b0f, flags="DF", ttl=64)/UDP(sport=40000,
 *     dport=53)/<a DNS query for weft.internal>                                      (UDP)
 *   IP(src="10.40.0.3", dst="10.40.0.2", id=0, flags="DF", ttl=64, tos=0xc0)/ICMP(type=3,
 *     code=4, nexthopmtu=1280)/Raw(UDP)                                           (expected)
 *   IPv6(src="fd00::3", dst="fd00::2", hlim=64)/ICMPv6PacketTooBig(mtu=1280)/Raw(UDP6)
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { toHex } from "../../src/crypto/index.ts";
import {
  fragmentationNeeded,
  type IcmpErrorReport,
  packetTooBig,
  parseIcmpError,
  pathMtuAction,
} from "../../src/net/icmp-errors.ts";
import { parseIp, parsePrefix } from "../../src/net/ip.ts";
import {
  assertSameBytes,
  buildIpv4,
  buildIpv6,
  hex,
  type Ipv4Fields,
  icmpv4ChecksumOk,
  ipv4AddressArbitrary,
  ipv4FieldsArbitrary,
  ipv4HeaderChecksumOk,
  ipv4TransportChecksumOk,
  ipv6UpperChecksumOk,
  payloadArbitrary,
  referenceChecksum,
} from "./packet-fixtures.ts";

/** ICMP echo request, 10.40.0.2 to 10.40.0.3, id 0x0f2a, sequence 1, "weft path mtu probe". */
const ECHO = hex(`
  4500002f 1c464000 40010a34 0a280002 0a280003
  0800f98b 0f2a0001 77656674 20706174 68206d74 75207072 6f6265`);
/** UDP 10.40.0.2:40000 to 10.40.0.3:53, a DNS query for weft.internal A. */
const UDP = hex(`
  4500003b 2b0f4000 4011fb4e 0a280002 0a280003
  9c400035 0027aa0c 12340100 00010000 00000000 04776566 7408696e 7465726e 616c0000 010001`);
/** TCP 10.40.0.2:43210 to 10.40.0.3:80, PSH+ACK, "GET / HTTP/1.1\r\nHost: h3\r\n\r\n". */
const TCP = hex(`
  45000044 3c5d4000 4006ea02 0a280002 0a280003
  a8ca0050 01020304 0a0b0c0d 501801f6 8c4b0000
  47455420 2f204854 54502f31 2e310d0a 486f7374 3a206833 0d0a0d0a`);
/** UDP over IPv6, [fd00::2]:40001 to [fd00::3]:5353, flow label 0x12345, "weft over ipv6". */
const UDP6 = hex(`
  60012345 00161140
  fd000000 00000000 00000000 00000002
  fd000000 00000000 00000000 00000003
  9c4114e9 00168e1b 77656674 206f7665 72206970 7636`);

const PEER4 = parseIp("10.40.0.3")!;
const PEER6 = parseIp("fd00::3")!;
const OVERLAY = parsePrefix("10.40.0.0/16")!;

/** 10.40.0.2 to 10.40.0.3, DF, protocol 17 (not a real UDP header: the builder ignores it). */
const BASE4: Ipv4Fields = {
  typeOfService: 0,
  identification: 0x1111,
  reservedFlag: false,
  dontFragment: true,
  moreFragments: false,
  fragmentOffsetUnits: 0,
  timeToLive: 64,
  protocol: 17,
  source: parseIp("10.40.0.2")!,
  destination: parseIp("10.40.0.3")!,
  options: new Uint8Array(0),
  payload: new Uint8Array(1480).fill(0xab),
};

function v4(change: Partial<Ipv4Fields>): Uint8Array {
  return buildIpv4({ ...BASE4, ...change });
}

function v6(change: {
  source?: string;
  destination?: string;
  nextHeader?: number;
  payload?: Uint8Array;
}): Uint8Array {
  return buildIpv6({
    nextHeader: change.nextHeader ?? 17,
    source: parseIp(change.source ?? "fd00::2")!,
    destination: parseIp(change.destination ?? "fd00::3")!,
    payload: change.payload ?? new Uint8Array(1460).fill(0xcd),
  });
}

/** Checks an IPv4 frag-needed for `original` and returns what the parser reads in it. */
function checkFragNeeded(error: Uint8Array | undefined, original: Uint8Array, mtu: number) {
  assert.ok(error !== undefined, "expected a frag-needed");
  assert.ok(error.length <= 576, `frag-needed of ${error.length} bytes`);
  assert.equal((error[2]! << 8) | error[3]!, error.length, "total length is the buffer's");
  assert.ok(ipv4HeaderChecksumOk(error), "IPv4 header checksum of the frag-needed");
  assert.ok(icmpv4ChecksumOk(error), "ICMP checksum of the frag-needed");
  const originalLength = (original[2]! << 8) | original[3]!;
  const quoted = error.subarray(28);
  assert.equal(quoted.length, Math.min(originalLength, 548));
  assertSameBytes(quoted, original.subarray(0, quoted.length), "quotes the original's start");
  assert.deepEqual(
    error.subarray(16, 20),
    original.subarray(12, 16),
    "goes to the original's source",
  );
  const report = parseIcmpError(error);
  assert.ok(report !== undefined, "the parser reads the frag-needed");
  assert.deepEqual([report.type, report.code, report.mtuBytes], [3, 4, mtu]);
  return report;
}

/** Checks an ICMPv6 packet too big for `original` and returns what the parser reads in it. */
function checkPacketTooBig(error: Uint8Array | undefined, original: Uint8Array, mtu: number) {
  assert.ok(error !== undefined, "expected a packet too big");
  assert.ok(error.length <= 1280, `packet too big of ${error.length} bytes`);
  assert.equal(((error[4]! << 8) | error[5]!) + 40, error.length, "payload length");
  assert.ok(ipv6UpperChecksumOk(error), "ICMPv6 checksum of the packet too big");
  const originalLength = ((original[4]! << 8) | original[5]!) + 40;
  const quoted = error.subarray(48);
  assert.equal(quoted.length, Math.min(originalLength, 1232));
  assertSameBytes(quoted, original.subarray(0, quoted.length), "quotes the original's start");
  assert.deepEqual(
    error.subarray(24, 40),
    original.subarray(8, 24),
    "goes to the original's source",
  );
  const report = parseIcmpError(error);
  assert.ok(report !== undefined, "the parser reads the packet too big");
  assert.deepEqual([report.type, report.code, report.mtuBytes], [2, 0, mtu]);
  return report;
}

describe("fixed packets", () => {
  test("the IPv4 fixtures carry correct header and transport checksums", () => {
    for (const [name, packet] of [
      ["echo", ECHO],
      ["udp", UDP],
      ["tcp", TCP],
    ] as const) {
      assert.ok(ipv4HeaderChecksumOk(packet), `${name}: IPv4 header checksum`);
      const transportOk =
        name === "echo" ? icmpv4ChecksumOk(packet) : ipv4TransportChecksumOk(packet);
      assert.ok(transportOk, `${name}: transport checksum`);
    }
  });

  test("the IPv6 fixture carries a correct UDP checksum", () => {
    assert.ok(ipv6UpperChecksumOk(UDP6), "UDP checksum over the IPv6 pseudo-header");
  });

  test("the independent checksum catches a flipped bit in every fixture", () => {
    for (const packet of [ECHO, UDP, TCP]) {
      const broken = packet.slice();
      broken[broken.length - 1]! ^= 0x01;
      assert.ok(
        !icmpv4ChecksumOk(broken) || !ipv4TransportChecksumOk(broken),
        "a broken payload fails",
      );
    }
    const broken6 = UDP6.slice();
    broken6[50]! ^= 0x80;
    assert.ok(!ipv6UpperChecksumOk(broken6), "a broken IPv6 payload fails");
  });
});

describe("fragmentationNeeded", () => {
  test("gives scapy's exact bytes for the UDP fixture at MTU 1280", () => {
    const expected = new Uint8Array([
      ...hex("45c00057 00004000 40012592 0a280003 0a280002"), // TOS 0xc0, DF, TTL 64, ICMP
      ...hex("0304 0c89 0000 0500"), // type 3, code 4, checksum, unused, next-hop MTU 1280
      ...UDP,
    ]);
    const error = fragmentationNeeded(UDP, 1280, PEER4);
    assert.equal(toHex(error!), toHex(expected));
    checkFragNeeded(error, UDP, 1280);
  });

  test("answers the echo and TCP fixtures too, and the parser reads the quoted addresses", () => {
    for (const packet of [ECHO, TCP]) {
      const report = checkFragNeeded(fragmentationNeeded(packet, 576, PEER4), packet, 576);
      assert.deepEqual(report.reporter, PEER4);
      assert.deepEqual(report.quoted.source, packet.subarray(12, 16));
      assert.deepEqual(report.quoted.destination, packet.subarray(16, 20));
      assert.equal(report.quoted.protocol, packet[9]);
    }
  });

  test("quotes 548 bytes of a 1500-byte packet, so the error is 576 bytes", () => {
    const big = v4({});
    const error = fragmentationNeeded(big, 1400, PEER4);
    checkFragNeeded(error, big, 1400);
    assert.equal(error!.length, 576);
    const header = hex("45c00240 00004000 40010000 0a280003 0a280002");
    const checksum = referenceChecksum(header);
    header[10] = checksum >> 8;
    header[11] = checksum & 0xff;
    assert.equal(toHex(error!.subarray(0, 20)), toHex(header));
  });

  test("quotes options and never bytes past the original's total length", () => {
    const withOptions = v4({ options: hex("94040000"), payload: new Uint8Array(30) });
    const padded = new Uint8Array(withOptions.length + 16).fill(0xee);
    padded.set(withOptions);
    const error = fragmentationNeeded(padded, 1280, PEER4);
    checkFragNeeded(error, withOptions, 1280);
    assert.equal(error!.length, 28 + withOptions.length);
  });

  test("answers the first fragment of a fragmented datagram", () => {
    const first = v4({ dontFragment: false, moreFragments: true, payload: new Uint8Array(1400) });
    checkFragNeeded(fragmentationNeeded(first, 1280, PEER4), first, 1280);
  });

  test("answers ICMP messages that are not errors", () => {
    for (const type of [0, 8, 13, 14, 17, 42, 255]) {
      const packet = v4({ protocol: 1, payload: new Uint8Array([type, 0, 0, 0, 0, 0, 0, 0]) });
      assert.ok(
        fragmentationNeeded(packet, 576, PEER4) !== undefined,
        `ICMP type ${type} is answered`,
      );
    }
  });

  test("answers the MTU bounds 68 and 65535", () => {
    checkFragNeeded(fragmentationNeeded(UDP, 68, PEER4), UDP, 68);
    checkFragNeeded(fragmentationNeeded(UDP, 65535, PEER4), UDP, 65535);
  });

  const refused: [string, Uint8Array, boolean?][] = [
    ["an empty buffer", new Uint8Array(0)],
    ["an IPv6 packet", UDP6],
    ["a header cut short", UDP.subarray(0, 19)],
    ["a packet cut before its total length", UDP.subarray(0, UDP.length - 1)],
    ["a bad header checksum", UDP.map((b, i) => (i === 11 ? b ^ 1 : b))],
    ["a non-first fragment", v4({ dontFragment: false, fragmentOffsetUnits: 185 })],
    ["a last fragment", v4({ dontFragment: false, fragmentOffsetUnits: 1, moreFragments: false })],
    ["ICMP without a type byte", v4({ protocol: 1, payload: new Uint8Array(0) })],
    ["source 0.0.0.0", v4({ source: parseIp("0.0.0.0")! })],
    ["source 0.1.2.3 (this network)", v4({ source: parseIp("0.1.2.3")! })],
    ["source 127.0.0.1", v4({ source: parseIp("127.0.0.1")! })],
    ["source 127.255.255.254", v4({ source: parseIp("127.255.255.254")! })],
    ["source 224.0.0.1", v4({ source: parseIp("224.0.0.1")! })],
    ["source 239.255.255.250", v4({ source: parseIp("239.255.255.250")! })],
    ["source 240.0.0.1 (class E)", v4({ source: parseIp("240.0.0.1")! })],
    ["source 255.255.255.255", v4({ source: parseIp("255.255.255.255")! })],
    ["source the overlay's broadcast", v4({ source: parseIp("10.40.255.255")! }), true],
    ["source the overlay's network address", v4({ source: parseIp("10.40.0.0")! }), true],
    ["destination 224.0.0.251 (mDNS)", v4({ destination: parseIp("224.0.0.251")! })],
    ["destination 239.1.2.3", v4({ destination: parseIp("239.1.2.3")! })],
    ["destination 255.255.255.255", v4({ destination: parseIp("255.255.255.255")! })],
    ["destination the overlay's broadcast", v4({ destination: parseIp("10.40.255.255")! }), true],
    ["destination the overlay's network address", v4({ destination: parseIp("10.40.0.0")! }), true],
  ];
  for (const type of [3, 4, 5, 11, 12]) {
    const payload = new Uint8Array(36);
    payload[0] = type;
    refused.push([`ICMP error type ${type}`, v4({ protocol: 1, payload })]);
  }
  for (const [name, packet, needsOverlay] of refused) {
    test(`sends nothing for ${name}`, () => {
      assert.equal(fragmentationNeeded(packet, 576, PEER4, OVERLAY), undefined);
      if (needsOverlay) {
        assert.ok(
          fragmentationNeeded(packet, 576, PEER4) !== undefined,
          "without the overlay prefix the address is not known to be a broadcast",
        );
      }
    });
  }

  test("knows broadcasts only inside the overlay prefix, and none in a /31", () => {
    const in24 = parsePrefix("10.40.0.0/24")!;
    const to = (address: string) => v4({ destination: parseIp(address)! });
    assert.equal(fragmentationNeeded(to("10.40.0.255"), 576, PEER4, in24), undefined);
    assert.ok(fragmentationNeeded(to("10.40.1.255"), 576, PEER4, in24), "outside the /24");
    const pair = parsePrefix("10.40.0.2/31")!;
    assert.ok(fragmentationNeeded(to("10.40.0.3"), 576, PEER4, pair), "a /31 has no broadcast");
    const all = parsePrefix("0.0.0.0/0")!;
    assert.ok(fragmentationNeeded(to("10.40.0.3"), 576, PEER4, all), "a unicast address in /0");
  });

  test("throws for an MTU outside 68 to 65535 or a source that is not 4 bytes", () => {
    for (const mtu of [67, 0, 65536, 576.5, Number.NaN]) {
      assert.throws(() => fragmentationNeeded(UDP, mtu, PEER4), RangeError, `MTU ${mtu}`);
    }
    assert.throws(() => fragmentationNeeded(UDP, 576, PEER6), RangeError);
    assert.throws(() => fragmentationNeeded(UDP, 576, [10, 40, 0, 3] as never), TypeError);
    assert.throws(() => fragmentationNeeded("packet" as never, 576, PEER4), TypeError);
  });
});

describe("packetTooBig", () => {
  test("gives scapy's exact bytes for the IPv6 UDP fixture at MTU 1280", () => {
    const expected = new Uint8Array([
      ...hex("60000000 00463a40"), // payload 70 bytes, next header 58, hop limit 64
      ...PEER6,
      ...UDP6.subarray(8, 24),
      ...hex("0200 6a03 00000500"), // type 2, code 0, checksum, MTU 1280
      ...UDP6,
    ]);
    const error = packetTooBig(UDP6, 1280, PEER6);
    assert.equal(toHex(error!), toHex(expected));
    const report = checkPacketTooBig(error, UDP6, 1280);
    assert.deepEqual(report.reporter, PEER6);
    assert.deepEqual(report.quoted.source, parseIp("fd00::2"));
    assert.deepEqual(report.quoted.destination, parseIp("fd00::3"));
    assert.equal(report.quoted.protocol, 17);
  });

  test("quotes 1232 bytes of a 1500-byte packet, so the error is 1280 bytes", () => {
    const big = v6({});
    assert.equal(big.length, 1500);
    const error = packetTooBig(big, 1420, PEER6);
    checkPacketTooBig(error, big, 1420);
    assert.equal(error!.length, 1280);
  });

  test("carries an MTU above 65535 in its 32-bit field", () => {
    checkPacketTooBig(packetTooBig(UDP6, 0xffffffff, PEER6), UDP6, 0xffffffff);
  });

  test("is sent for a multicast destination (RFC 4443 §2.4 (e.2))", () => {
    for (const destination of ["ff02::1", "ff0e::101", "ff05::1:3"]) {
      const packet = v6({ destination });
      checkPacketTooBig(packetTooBig(packet, 1280, PEER6), packet, 1280);
    }
  });

  test("answers ICMPv6 informational messages and non-first fragments", () => {
    for (const type of [128, 129, 135, 200, 255]) {
      const payload = new Uint8Array(1400);
      payload[0] = type;
      const packet = v6({ nextHeader: 58, payload });
      assert.ok(packetTooBig(packet, 1280, PEER6) !== undefined, `ICMPv6 type ${type} is answered`);
    }
    // A Fragment header with offset 8 and next header 58: the type is in another fragment.
    const payload = new Uint8Array(1400);
    payload.set([58, 0, 0x00, 0x40, 0, 0, 0, 1]);
    payload[8] = 1;
    const fragment = v6({ nextHeader: 44, payload });
    checkPacketTooBig(packetTooBig(fragment, 1280, PEER6), fragment, 1280);
  });

  function icmp6Error(type: number, headers: number[][] = []): Uint8Array {
    // Each header is [next header, ...its bytes]; the innermost says 58.
    const bytes: number[] = [];
    let nextHeader = 58;
    for (let i = headers.length - 1; i >= 0; i--) {
      const [kind, ...rest] = headers[i]!;
      bytes.unshift(nextHeader, ...rest);
      nextHeader = kind!;
    }
    const icmp = new Uint8Array(1300);
    icmp[0] = type;
    return v6({ nextHeader, payload: Uint8Array.from([...bytes, ...icmp]) });
  }

  const hopByHop = [0, 0, 1, 4, 0, 0, 0, 0]; // 8 bytes: PadN
  const destinationOptions = [60, 0, 1, 4, 0, 0, 0, 0];
  const firstFragment = [44, 0, 0x00, 0x01, 0, 0, 0, 7]; // offset 0, M flag set
  const authentication = [51, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]; // (1 + 2) * 4 = 12 bytes
  const refused: [string, Uint8Array][] = [
    ["an empty buffer", new Uint8Array(0)],
    ["an IPv4 packet", UDP],
    ["a header cut short", UDP6.subarray(0, 39)],
    ["a payload length past the buffer", UDP6.subarray(0, UDP6.length - 1)],
    ["source ::", v6({ source: "::" })],
    ["source ::1", v6({ source: "::1" })],
    ["source ff02::1", v6({ source: "ff02::1" })],
    ["source ff05::2", v6({ source: "ff05::2" })],
    ["ICMPv6 without a type byte", v6({ nextHeader: 58, payload: new Uint8Array(0) })],
    ["an ICMPv6 error behind a hop-by-hop header", icmp6Error(2, [hopByHop])],
    [
      "an ICMPv6 error behind destination options and a first fragment",
      icmp6Error(1, [destinationOptions, firstFragment]),
    ],
    ["an ICMPv6 error behind an authentication header", icmp6Error(4, [authentication])],
    [
      "an extension header cut short",
      v6({ nextHeader: 0, payload: Uint8Array.from([17, 1, 0, 0, 0, 0, 0, 0]) }), // says 16
    ],
    [
      "an extension header without its length byte",
      v6({ nextHeader: 60, payload: new Uint8Array([17]) }),
    ],
    ["a Fragment header cut short", v6({ nextHeader: 44, payload: new Uint8Array(7) })],
  ];
  test("walks each extension header by its own length to an informational type", () => {
    // Bytes after the real type say 1 (an error): a header walked with a wrong length lands there.
    for (const headers of [[hopByHop], [authentication], [destinationOptions, firstFragment]]) {
      const bytes: number[] = [];
      let nextHeader = 58;
      for (const [kind, ...rest] of [...headers].reverse()) {
        bytes.unshift(nextHeader, ...rest);
        nextHeader = kind!;
      }
      const icmp = new Uint8Array(1300).fill(1);
      icmp[0] = 128;
      const packet = v6({ nextHeader, payload: Uint8Array.from([...bytes, ...icmp]) });
      checkPacketTooBig(packetTooBig(packet, 1280, PEER6), packet, 1280);
    }
  });

  for (const type of [0, 1, 2, 3, 4, 100, 127]) {
    refused.push([`ICMPv6 error type ${type}`, icmp6Error(type)]);
  }
  for (const [name, packet] of refused) {
    test(`sends nothing for ${name}`, () => {
      assert.equal(packetTooBig(packet, 1280, PEER6), undefined);
    });
  }

  test("throws for an MTU outside 1280 to 2^32-1 or a source that is not 16 bytes", () => {
    for (const mtu of [1279, 68, 2 ** 32, 1280.5, Number.NaN]) {
      assert.throws(() => packetTooBig(UDP6, mtu, PEER6), RangeError, `MTU ${mtu}`);
    }
    assert.throws(() => packetTooBig(UDP6, 1280, PEER4), RangeError);
    assert.throws(() => packetTooBig(null as never, 1280, PEER6), TypeError);
  });
});

describe("pathMtuAction", () => {
  const cases: [string, Uint8Array, number, ReturnType<typeof pathMtuAction>][] = [
    ["IPv4 with DF, too big", v4({}), 1420, { kind: "fragmentation-needed", mtuBytes: 1420 }],
    [
      "IPv4 with DF, one byte too big",
      v4({ payload: new Uint8Array(1401) }),
      1420,
      { kind: "fragmentation-needed", mtuBytes: 1420 },
    ],
    [
      "IPv4 with DF, exactly the MTU",
      v4({ payload: new Uint8Array(1400) }),
      1420,
      { kind: "fits" },
    ],
    ["IPv4 without DF, too big", v4({ dontFragment: false }), 1420, { kind: "fragment" }],
    [
      "IPv4 without DF, small",
      v4({ dontFragment: false, payload: new Uint8Array(10) }),
      68,
      { kind: "fits" },
    ],
    ["IPv6 too big", v6({}), 1420, { kind: "packet-too-big", mtuBytes: 1420 }],
    [
      "IPv6 too big for a path below 1280",
      v6({}),
      1200,
      { kind: "packet-too-big", mtuBytes: 1280 },
    ],
    [
      "IPv6 of 1280 bytes on a 1200 path",
      v6({ payload: new Uint8Array(1240) }),
      1200,
      { kind: "below-ipv6-minimum" },
    ],
    ["IPv6 that fits", v6({ payload: new Uint8Array(1160) }), 1200, { kind: "fits" }],
    ["an empty buffer", new Uint8Array(0), 1420, { kind: "malformed" }],
    ["version 5", new Uint8Array(40).fill(0x55), 1420, { kind: "malformed" }],
    [
      "IPv4 with a bad checksum",
      UDP.map((b, i) => (i === 10 ? b ^ 0xff : b)),
      1420,
      { kind: "malformed" },
    ],
    ["IPv6 cut short", UDP6.subarray(0, 50), 1420, { kind: "malformed" }],
  ];
  for (const [name, packet, mtu, expected] of cases) {
    test(`${name} at ${mtu}: ${expected.kind}`, () => {
      assert.deepEqual(pathMtuAction(packet, mtu), expected);
    });
  }

  test("judges by the length fields, not by link padding after them", () => {
    const padded = new Uint8Array(1500);
    padded.set(UDP);
    assert.deepEqual(pathMtuAction(padded, 576), { kind: "fits" });
    const padded6 = new Uint8Array(1500);
    padded6.set(UDP6);
    assert.deepEqual(pathMtuAction(padded6, 1280), { kind: "fits" });
  });

  test("throws for an MTU below 68 or not an integer", () => {
    assert.throws(() => pathMtuAction(UDP, 67), RangeError);
    assert.throws(() => pathMtuAction(UDP, 1420.5), RangeError);
  });
});

describe("parseIcmpError", () => {
  function icmp4(
    type: number,
    code: number,
    rest: number[],
    quoted: Uint8Array,
    fields: Partial<Ipv4Fields> = {},
  ) {
    const icmp = Uint8Array.from([type, code, 0, 0, ...rest, ...quoted]);
    const checksum = referenceChecksum(icmp);
    icmp[2] = checksum >> 8;
    icmp[3] = checksum & 0xff;
    return v4({ source: PEER4, destination: BASE4.source, protocol: 1, payload: icmp, ...fields });
  }

  /** An ICMPv6 message from PEER6 to fd00::2, checksummed by the reference routine. */
  function icmp6(type: number, rest: number[], quoted: Uint8Array) {
    const packet = v6({
      source: "fd00::3",
      destination: "fd00::2",
      nextHeader: 58,
      payload: Uint8Array.from([type, 0, 0, 0, ...rest, ...quoted]),
    });
    const pseudo = new Uint8Array(40);
    pseudo.set(packet.subarray(8, 40));
    pseudo[34] = (packet.length - 40) >> 8;
    pseudo[35] = (packet.length - 40) & 0xff;
    pseudo[39] = 58;
    const checksum = referenceChecksum(pseudo, packet.subarray(40));
    packet[42] = checksum >> 8;
    packet[43] = checksum & 0xff;
    return packet;
  }

  test("reads a time exceeded, which carries no MTU", () => {
    const report = parseIcmpError(icmp4(11, 0, [0, 0, 0, 0], UDP.subarray(0, 28)));
    assert.deepEqual(report, {
      ipVersion: 4,
      type: 11,
      code: 0,
      mtuBytes: undefined,
      reporter: PEER4,
      quoted: {
        source: parseIp("10.40.0.2")!,
        destination: parseIp("10.40.0.3")!,
        protocol: 17,
        bytes: UDP.subarray(0, 28),
      },
    } satisfies IcmpErrorReport);
  });

  test("reads the MTU 0 of a router older than RFC 1191", () => {
    const report = parseIcmpError(icmp4(3, 4, [0, 0, 0, 0], UDP));
    assert.equal(report?.mtuBytes, 0);
  });

  test("reads a port unreachable (type 3 code 3) without an MTU", () => {
    const report = parseIcmpError(icmp4(3, 3, [0, 0, 5, 0], UDP));
    assert.deepEqual([report?.type, report?.code, report?.mtuBytes], [3, 3, undefined]);
  });

  test("reads a packet too big behind a hop-by-hop header", () => {
    const error = packetTooBig(UDP6, 1400, PEER6)!;
    // The pseudo-header does not change: same addresses, ICMPv6 length and next header 58.
    const withHeader = buildIpv6({
      nextHeader: 0,
      source: error.subarray(8, 24),
      destination: error.subarray(24, 40),
      payload: Uint8Array.from([58, 0, 1, 4, 0, 0, 0, 0, ...error.subarray(40)]),
    });
    const report = parseIcmpError(withHeader);
    assert.deepEqual([report?.type, report?.mtuBytes], [2, 1400]);
    assert.deepEqual(report?.quoted.bytes, UDP6);
  });

  const notErrors: [string, Uint8Array][] = [
    ["an empty buffer", new Uint8Array(0)],
    ["an echo request", ECHO],
    ["UDP", UDP],
    ["IPv6 UDP", UDP6],
    ["an echo reply", icmp4(0, 0, [0, 1, 0, 1], new Uint8Array(20))],
    ["an error quoting less than an IPv4 header", icmp4(11, 0, [0, 0, 0, 0], UDP.subarray(0, 19))],
    ["an error quoting an IPv6 header", icmp4(3, 4, [0, 0, 5, 0], UDP6)],
    // 8 + 56 bytes of ICMP: whole 8-byte units, as a first fragment must carry.
    ["a fragmented error", icmp4(3, 4, [0, 0, 5, 0], UDP.subarray(0, 56), { moreFragments: true })],
    ["an ICMPv6 echo request", icmp6(128, [0, 1, 0, 1], new Uint8Array(40))],
    [
      "an ICMPv6 error quoting less than an IPv6 header",
      icmp6(1, [0, 0, 0, 0], UDP6.subarray(0, 39)),
    ],
    ["an ICMPv6 error quoting an IPv4 header", icmp6(3, [0, 0, 0, 0], TCP)],
  ];

  test("reads a destination unreachable built independently", () => {
    const report = parseIcmpError(icmp6(1, [0, 0, 0, 0], UDP6));
    assert.deepEqual([report?.ipVersion, report?.type, report?.mtuBytes], [6, 1, undefined]);
  });
  for (const [name, packet] of notErrors) {
    test(`finds no error in ${name}`, () => {
      assert.equal(parseIcmpError(packet), undefined);
    });
  }

  test("refuses a bad ICMP or ICMPv6 checksum", () => {
    const error4 = fragmentationNeeded(UDP, 1280, PEER4)!;
    error4[error4.length - 1]! ^= 1;
    assert.equal(parseIcmpError(error4), undefined);
    const error6 = packetTooBig(UDP6, 1280, PEER6)!;
    error6[error6.length - 1]! ^= 1;
    assert.equal(parseIcmpError(error6), undefined);
  });
});

/** An independent model of RFC 1812 §4.3.2.7 for generated packets, overlay 10.40.0.0/16. */
function mayAnswer(fields: Ipv4Fields): boolean {
  const first = fields.source[0]!;
  const isOverlayBroadcast = (x: Uint8Array) =>
    x[0] === 10 && x[1] === 40 && ((x[2] === 255 && x[3] === 255) || (x[2] === 0 && x[3] === 0));
  const sourceOk =
    first !== 0 && first !== 127 && first < 224 && !isOverlayBroadcast(fields.source);
  const destination = fields.destination;
  const destinationOk =
    !(destination[0]! >= 224 && destination[0]! <= 239) &&
    !destination.every((x) => x === 255) &&
    !isOverlayBroadcast(destination);
  const isIcmpError =
    fields.protocol === 1 &&
    (fields.payload.length === 0 || [3, 4, 5, 11, 12].includes(fields.payload[0]!));
  return fields.fragmentOffsetUnits === 0 && sourceOk && destinationOk && !isIcmpError;
}

describe("properties", () => {
  const looksLikeIp = fc
    .tuple(
      fc.constantFrom(0x45, 0x46, 0x60),
      fc.uint8Array({ minLength: 59, maxLength: 59 }),
      payloadArbitrary(1600),
    )
    .map(([first, header, rest]) => {
      const packet = Uint8Array.from([first, ...header, ...rest]);
      if (first >> 4 === 4 && packet.length >= 24) {
        // Fix total length and checksum so that deeper checks are reached.
        const length = Math.min(packet.length, 0xffff);
        packet[2] = length >> 8;
        packet[3] = length & 0xff;
        packet[10] = 0;
        packet[11] = 0;
        const checksum = referenceChecksum(packet.subarray(0, (first & 15) * 4));
        packet[10] = checksum >> 8;
        packet[11] = checksum & 0xff;
      } else if (packet.length >= 40) {
        const payloadLength = packet.length - 40;
        packet[4] = payloadLength >> 8;
        packet[5] = payloadLength & 0xff;
      }
      return packet;
    });
  const anyBytes = fc.oneof(fc.uint8Array({ maxLength: 100 }), looksLikeIp);

  test("the builders never throw on arbitrary bytes; what they build is valid and bounded", () => {
    fc.assert(
      fc.property(
        anyBytes,
        fc.integer({ min: 68, max: 0xffff }),
        fc.integer({ min: 1280, max: 0xffffffff }),
        (bytes, mtu4, mtu6) => {
          const error4 = fragmentationNeeded(bytes, mtu4, PEER4, OVERLAY);
          if (error4 !== undefined) checkFragNeeded(error4, bytes, mtu4);
          const error6 = packetTooBig(bytes, mtu6, PEER6);
          if (error6 !== undefined) checkPacketTooBig(error6, bytes, mtu6);
          const action = pathMtuAction(bytes, mtu4);
          assert.ok(typeof action.kind === "string", "an action");
          parseIcmpError(bytes);
        },
      ),
      { numRuns: 1000 },
    );
  });

  test("a frag-needed is sent exactly when RFC 1812 §4.3.2.7 allows it", () => {
    let answered = 0;
    fc.assert(
      fc.property(
        ipv4FieldsArbitrary({ addresses: ipv4AddressArbitrary, fragments: true }),
        fc.integer({ min: 68, max: 0xffff }),
        (fields, mtu) => {
          const packet = buildIpv4(fields);
          const error = fragmentationNeeded(packet, mtu, PEER4, OVERLAY);
          assert.equal(error !== undefined, mayAnswer(fields), "answered as the model says");
          if (error !== undefined) {
            answered++;
            checkFragNeeded(error, packet, mtu);
          }
        },
      ),
      { numRuns: 1000 },
    );
    assert.ok(answered > 100, `only ${answered} of 1000 generated packets were answered`);
  });

  test("a packet too big is sent exactly when RFC 4443 §2.4 (e) allows it", () => {
    const ipv6Address = fc.oneof(
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc
        .constantFrom("::", "::1", "ff02::1", "ff0e::1", "fd00::2", "fe80::1")
        .map((t) => parseIp(t)!),
    );
    fc.assert(
      fc.property(
        ipv6Address,
        ipv6Address,
        fc.oneof(fc.constantFrom(6, 17, 58, 59), fc.integer({ min: 0, max: 255 })),
        payloadArbitrary(1600),
        (source, destination, nextHeader, payload) => {
          const packet = buildIpv6({ nextHeader, source, destination, payload });
          const error = packetTooBig(packet, 1280, PEER6);
          const sourceOk =
            source[0] !== 0xff &&
            !(source.subarray(0, 15).every((x) => x === 0) && source[15]! <= 1);
          if (!sourceOk) assert.equal(error, undefined, "never to a source that is not one host");
          if (sourceOk && [6, 17, 59].includes(nextHeader)) {
            assert.ok(error !== undefined, "a unicast source's packet is answered");
          }
          if (nextHeader === 58) {
            const isError = payload.length === 0 || payload[0]! < 128;
            assert.equal(
              error !== undefined,
              sourceOk && !isError,
              "ICMPv6 errors are not answered",
            );
          }
          if (error !== undefined) checkPacketTooBig(error, packet, 1280);
        },
      ),
      { numRuns: 1000 },
    );
  });

  test("pathMtuAction agrees with fragmentIpv4's sizes for IPv4", () => {
    fc.assert(
      fc.property(ipv4FieldsArbitrary(), fc.integer({ min: 68, max: 3100 }), (fields, mtu) => {
        const packet = buildIpv4(fields);
        const action = pathMtuAction(packet, mtu);
        if (packet.length <= mtu) assert.deepEqual(action, { kind: "fits" });
        else if (fields.dontFragment) {
          assert.deepEqual(action, { kind: "fragmentation-needed", mtuBytes: mtu });
        } else assert.deepEqual(action, { kind: "fragment" });
      }),
      { numRuns: 500 },
    );
  });
});
