/**
 * Multicast classification and the checks before a member's multicast packet reaches our
 * Tun (src/net/multicast.ts): every destination class, every rejection, and properties:
 * any byte string is classified and checked without throwing, and a good packet with any
 * single header byte changed is refused or still passes every stated rule.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { parseIp, parsePrefix } from "../../src/net/ip.ts";
import {
  checkMulticast,
  classifyMulticast,
  directedBroadcast,
  ipv4Ttl,
} from "../../src/net/multicast.ts";
import { internetChecksum, ipv4Packet, udpPacket } from "../helpers/packets.ts";

const RANGE = parsePrefix("10.32.0.0/12")!;
const BROADCASTS = [directedBroadcast(RANGE)!];
const SENDER = [parsePrefix("10.32.0.0/14")!];

function udpTo(destination: string, source = "10.32.0.5"): Uint8Array {
  return udpPacket(source, destination, 40000, 5000, new TextEncoder().encode("hello"));
}

/** `packet` with its TTL set and the header checksum recomputed. */
function withTtl(packet: Uint8Array, ttl: number): Uint8Array {
  const out = packet.slice();
  out[8] = ttl;
  out[10] = 0;
  out[11] = 0;
  const sum = internetChecksum(out.subarray(0, 20));
  out[10] = sum >> 8;
  out[11] = sum & 0xff;
  return out;
}

function ipv6To(destination: string): Uint8Array {
  const packet = new Uint8Array(48);
  packet[0] = 0x60;
  packet[5] = 8;
  packet[6] = 17;
  packet[7] = 1;
  packet.set(parseIp("fe80::1")!, 8);
  packet.set(parseIp(destination)!, 24);
  return packet;
}

describe("classifyMulticast", () => {
  test("IPv4 224.0.0.0/4 is multicast, from its first to its last address", () => {
    for (const group of ["224.0.0.1", "224.0.0.251", "239.1.2.3", "239.255.255.255"]) {
      assert.equal(classifyMulticast(udpTo(group), BROADCASTS), "multicast", group);
    }
  });

  test("IGMP to a group is told apart (protocol 2)", () => {
    const report = ipv4Packet("10.32.0.5", "224.0.0.22", 2, new Uint8Array(8));
    assert.equal(classifyMulticast(report, BROADCASTS), "igmp");
  });

  test("the limited broadcast and the directed broadcasts given are broadcast", () => {
    assert.equal(classifyMulticast(udpTo("255.255.255.255"), BROADCASTS), "broadcast");
    assert.equal(classifyMulticast(udpTo("10.47.255.255"), BROADCASTS), "broadcast");
    assert.equal(classifyMulticast(udpTo("10.47.255.255"), []), "other");
  });

  test("unicast, class E and addresses next to the boundaries are other", () => {
    for (const address of ["10.32.0.9", "223.255.255.255", "240.0.0.1", "10.47.255.254"]) {
      assert.equal(classifyMulticast(udpTo(address), BROADCASTS), "other", address);
    }
  });

  test("IPv6 ff00::/8 is ipv6-multicast, other IPv6 is other", () => {
    assert.equal(classifyMulticast(ipv6To("ff02::1"), BROADCASTS), "ipv6-multicast");
    assert.equal(classifyMulticast(ipv6To("ff05::1:3"), BROADCASTS), "ipv6-multicast");
    assert.equal(classifyMulticast(ipv6To("fd00::1"), BROADCASTS), "other");
  });

  test("what is too short to tell is other", () => {
    assert.equal(classifyMulticast(new Uint8Array(0), BROADCASTS), "other");
    assert.equal(classifyMulticast(udpTo("239.1.2.3").subarray(0, 19), BROADCASTS), "other");
    assert.equal(classifyMulticast(ipv6To("ff02::1").subarray(0, 39), BROADCASTS), "other");
  });
});

describe("directedBroadcast", () => {
  test("sets every host bit", () => {
    const cases: [string, string][] = [
      ["10.32.0.0/12", "10.47.255.255"],
      ["192.168.1.0/24", "192.168.1.255"],
      ["10.40.0.0/16", "10.40.255.255"],
      ["172.16.4.0/22", "172.16.7.255"],
      ["10.0.0.0/30", "10.0.0.3"],
    ];
    for (const [prefix, expected] of cases) {
      assert.deepEqual(directedBroadcast(parsePrefix(prefix)!), parseIp(expected), prefix);
    }
  });

  test("none for /31, /32 and IPv6", () => {
    assert.equal(directedBroadcast(parsePrefix("10.0.0.0/31")!), undefined);
    assert.equal(directedBroadcast(parsePrefix("10.0.0.1/32")!), undefined);
    assert.equal(directedBroadcast(parsePrefix("fd00::/64")!), undefined);
  });
});

describe("checkMulticast", () => {
  test("accepts a multicast and a broadcast datagram from the sender's own addresses", () => {
    assert.equal(checkMulticast(udpTo("239.1.2.3"), SENDER, BROADCASTS), undefined);
    assert.equal(checkMulticast(udpTo("10.47.255.255"), SENDER, BROADCASTS), undefined);
    assert.equal(checkMulticast(udpTo("255.255.255.255"), SENDER, BROADCASTS), undefined);
    assert.equal(checkMulticast(withTtl(udpTo("224.0.0.251"), 1), SENDER, BROADCASTS), undefined);
  });

  test("refuses a source outside the sender's allowed IPs (another member's address)", () => {
    const spoofed = udpTo("239.1.2.3", "10.36.0.1");
    assert.equal(checkMulticast(spoofed, SENDER, BROADCASTS), "spoofed-source");
    assert.equal(checkMulticast(udpTo("239.1.2.3"), [], BROADCASTS), "spoofed-source");
    const v6only = [parsePrefix("fd00::/8")!];
    assert.equal(checkMulticast(udpTo("239.1.2.3"), v6only, BROADCASTS), "spoofed-source");
  });

  test("refuses a bad header checksum", () => {
    const packet = udpTo("239.1.2.3");
    packet[10]! ^= 0x01;
    assert.equal(checkMulticast(packet, SENDER, BROADCASTS), "bad-checksum");
  });

  test("refuses truncated, padded and non-IPv4 packets", () => {
    const packet = udpTo("239.1.2.3");
    assert.equal(checkMulticast(packet.subarray(0, 19), SENDER, BROADCASTS), "malformed");
    assert.equal(
      checkMulticast(packet.subarray(0, packet.length - 1), SENDER, BROADCASTS),
      "malformed",
    );
    const padded = new Uint8Array(packet.length + 1);
    padded.set(packet);
    assert.equal(checkMulticast(padded, SENDER, BROADCASTS), "malformed");
    assert.equal(checkMulticast(ipv6To("ff02::1"), SENDER, BROADCASTS), "malformed");
    const shortIhl = packet.slice();
    shortIhl[0] = 0x44;
    assert.equal(checkMulticast(shortIhl, SENDER, BROADCASTS), "malformed");
    const longIhl = packet.slice(0, 24);
    longIhl[0] = 0x4f;
    assert.equal(checkMulticast(longIhl, SENDER, BROADCASTS), "malformed");
  });

  test("refuses unicast and IGMP destinations", () => {
    assert.equal(checkMulticast(udpTo("10.32.0.9"), SENDER, BROADCASTS), "not-multicast");
    const igmp = ipv4Packet("10.32.0.5", "224.0.0.22", 2, new Uint8Array(8));
    assert.equal(checkMulticast(igmp, SENDER, BROADCASTS), "not-multicast");
    assert.equal(checkMulticast(udpTo("10.47.255.255"), SENDER, []), "not-multicast");
  });

  test("refuses TTL 0 and keeps TTL as it is otherwise", () => {
    assert.equal(checkMulticast(withTtl(udpTo("239.1.2.3"), 0), SENDER, BROADCASTS), "ttl-expired");
    assert.equal(ipv4Ttl(withTtl(udpTo("239.1.2.3"), 7)), 7);
    assert.equal(ipv4Ttl(new Uint8Array(3)), undefined);
  });

  test("never throws, and what it accepts obeys every rule", () => {
    const good = udpTo("239.1.2.3");
    const mutated = fc
      .tuple(fc.integer({ min: 0, max: good.length - 1 }), fc.integer({ min: 0, max: 255 }))
      .map(([at, value]) => {
        const packet = good.slice();
        packet[at] = value;
        return packet;
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 80 }), mutated), (packet) => {
        const kind = classifyMulticast(packet, BROADCASTS);
        assert.ok(typeof kind === "string", "a classification");
        if (checkMulticast(packet, SENDER, BROADCASTS) !== undefined) return;
        assert.equal(packet[0]! >> 4, 4, "IPv4");
        assert.equal((packet[2]! << 8) | packet[3]!, packet.length, "total length");
        const header = packet.subarray(0, (packet[0]! & 15) * 4);
        assert.equal(internetChecksum(header), 0, "checksum");
        assert.ok(packet[8]! >= 1, "TTL at least 1");
        assert.ok(kind === "multicast" || kind === "broadcast", `carried kind, got ${kind}`);
        assert.ok(packet[12]! === 10 && (packet[13]! & 0xfc) === 32, "source in 10.32.0.0/14");
      }),
      { numRuns: 2000 },
    );
  });
});
