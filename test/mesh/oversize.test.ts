/**
 * What the mesh does with a Tun packet too big for its path (`src/mesh/oversize.ts`):
 * fixed packets, each result checked against the independent checksums and reassembler
 * of packet-fixtures.ts, and the ICMP rate limiter's token buckets.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  allowIcmpError,
  createIcmpRateLimiter,
  handleOversize,
  ICMP_BURST,
  ICMP_PER_SECOND,
} from "../../src/mesh/oversize.ts";
import { parseIcmpError } from "../../src/net/icmp-errors.ts";
import {
  assertSameBytes,
  buildIpv4,
  buildIpv6,
  icmpv4ChecksumOk,
  ipv4HeaderChecksumOk,
  ipv6UpperChecksumOk,
  reassembleIpv4,
} from "../net/packet-fixtures.ts";

const NEAR = new Uint8Array([10, 40, 0, 2]);
const FAR = new Uint8Array([10, 40, 0, 3]);
const NEAR6 = new Uint8Array([0xfd, ...new Array(14).fill(0), 2]);
const FAR6 = new Uint8Array([0xfd, ...new Array(14).fill(0), 3]);

function udp4(totalBytes: number, dontFragment: boolean, destination = FAR): Uint8Array {
  const payload = new Uint8Array(totalBytes - 20);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + 3) & 0xff;
  return buildIpv4({
    typeOfService: 0,
    identification: 0x1234,
    reservedFlag: false,
    dontFragment,
    moreFragments: false,
    fragmentOffsetUnits: 0,
    timeToLive: 64,
    protocol: 17,
    source: NEAR,
    destination,
    options: new Uint8Array(0),
    payload,
  });
}

function udp6(totalBytes: number, destination = FAR6): Uint8Array {
  return buildIpv6({
    nextHeader: 17,
    source: NEAR6,
    destination,
    payload: new Uint8Array(totalBytes - 40).fill(0x5a),
  });
}

describe("handleOversize", () => {
  test("IPv4 with DF: a frag-needed from the far end to the sender, with the path MTU", () => {
    const packet = udp4(1400, true);
    const result = handleOversize(packet, 1220, createIcmpRateLimiter(), 0);
    assert.equal(result.kind, "reply", "an error goes back to the Tun");
    if (result.kind !== "reply") return;
    const error = result.packet;
    assert.ok(ipv4HeaderChecksumOk(error), "the error's IP header checksum verifies");
    assert.ok(icmpv4ChecksumOk(error), "the error's ICMP checksum verifies");
    assertSameBytes(error.subarray(12, 16), FAR, "from the far end");
    assertSameBytes(error.subarray(16, 20), NEAR, "to the sender");
    const report = parseIcmpError(error);
    assert.equal(report?.type, 3);
    assert.equal(report?.code, 4);
    assert.equal(report?.mtuBytes, 1220);
    assertSameBytes(report?.quoted.bytes.subarray(0, 28), packet.subarray(0, 28), "quotes it");
  });

  test("IPv4 without DF: fragments of at most the MTU that reassemble to the packet", () => {
    const packet = udp4(1400, false);
    const result = handleOversize(packet, 1220, createIcmpRateLimiter(), 0);
    assert.equal(result.kind, "send", "the packet is sent in pieces");
    if (result.kind !== "send") return;
    assert.equal(result.packets.length, 2);
    for (const piece of result.packets) {
      assert.ok(piece.length <= 1220, `a fragment of ${piece.length} bytes fits 1220`);
      assert.ok(ipv4HeaderChecksumOk(piece), "each fragment's header checksum verifies");
    }
    assertSameBytes(reassembleIpv4(result.packets), packet, "reassembled");
  });

  test("IPv6: a packet too big from the far end, never below 1280", () => {
    const packet = udp6(1400);
    const result = handleOversize(packet, 1220, createIcmpRateLimiter(), 0);
    assert.equal(result.kind, "reply", "an error goes back to the Tun");
    if (result.kind !== "reply") return;
    assert.ok(ipv6UpperChecksumOk(result.packet), "the ICMPv6 checksum verifies");
    assertSameBytes(result.packet.subarray(8, 24), FAR6, "from the far end");
    assertSameBytes(result.packet.subarray(24, 40), NEAR6, "to the sender");
    const report = parseIcmpError(result.packet);
    assert.equal(report?.type, 2);
    assert.equal(report?.mtuBytes, 1280, "RFC 8201: no sender goes below 1280");
  });

  test("IPv6 of at most 1280 on a smaller path is sent as it is", () => {
    const packet = udp6(1280);
    const result = handleOversize(packet, 1220, createIcmpRateLimiter(), 0);
    assert.equal(result.kind, "send");
    if (result.kind === "send") assert.deepEqual(result.packets, [packet]);
  });

  test("no error for a broadcast, an IPv6 multicast far end, or garbage", () => {
    const limiter = createIcmpRateLimiter();
    const broadcast = udp4(1400, true, new Uint8Array([255, 255, 255, 255]));
    assert.deepEqual(handleOversize(broadcast, 1220, limiter, 0), {
      kind: "drop",
      reason: "refused",
    });
    const multicast6 = udp6(1400, new Uint8Array([0xff, 2, ...new Array(13).fill(0), 1]));
    assert.deepEqual(handleOversize(multicast6, 1220, limiter, 0), {
      kind: "drop",
      reason: "refused",
    });
    const garbage = new Uint8Array(1400).fill(0x45);
    assert.deepEqual(handleOversize(garbage, 1220, limiter, 0), {
      kind: "drop",
      reason: "malformed",
    });
    assert.deepEqual(handleOversize(new Uint8Array(0), 1220, limiter, 0), {
      kind: "drop",
      reason: "malformed",
    });
  });

  test("errors per far end are rate-limited; another far end has its own bucket", () => {
    const limiter = createIcmpRateLimiter();
    const packet = udp4(1400, true);
    const kinds = Array.from(
      { length: ICMP_BURST + 5 },
      () => handleOversize(packet, 1220, limiter, 1_000).kind,
    );
    assert.equal(kinds.filter((k) => k === "reply").length, ICMP_BURST, "a burst, then none");
    const other = udp4(1400, true, new Uint8Array([10, 40, 0, 9]));
    assert.equal(handleOversize(other, 1220, limiter, 1_000).kind, "reply");
    assert.equal(handleOversize(packet, 1220, limiter, 1_000).kind, "drop");
    // One second later the first far end has earned ICMP_PER_SECOND more.
    const later = Array.from(
      { length: ICMP_PER_SECOND + 3 },
      () => handleOversize(packet, 1220, limiter, 2_000).kind,
    );
    assert.equal(later.filter((k) => k === "reply").length, ICMP_PER_SECOND);
  });
});

describe("allowIcmpError", () => {
  test("refills at the rate up to the burst, never beyond", () => {
    const limiter = createIcmpRateLimiter(2, 1);
    assert.ok(allowIcmpError(limiter, "a", 0), "first token");
    assert.ok(allowIcmpError(limiter, "a", 0), "second token");
    assert.ok(!allowIcmpError(limiter, "a", 0), "bucket empty");
    assert.ok(!allowIcmpError(limiter, "a", 500), "half a token is not one");
    assert.ok(allowIcmpError(limiter, "a", 1_000), "a token a second");
    assert.ok(allowIcmpError(limiter, "a", 60_000), "refilled");
    assert.ok(allowIcmpError(limiter, "a", 60_000), "refilled to the burst");
    assert.ok(!allowIcmpError(limiter, "a", 60_000), "but no more than the burst");
    assert.ok(allowIcmpError(limiter, "a", 61_000), "a second later, one more");
    assert.ok(!allowIcmpError(limiter, "a", 50_000), "a clock stepping back earns nothing");
    assert.ok(!allowIcmpError(limiter, "a", 61_500), "nor later, counted from 61 s");
  });

  test("remembers at most maxEntries far ends, forgetting the least recent", () => {
    const limiter = createIcmpRateLimiter(1, 1, 3);
    for (const key of ["a", "b", "c"]) assert.ok(allowIcmpError(limiter, key, 0), key);
    assert.ok(!allowIcmpError(limiter, "a", 0), "a is empty and now the most recent");
    assert.ok(allowIcmpError(limiter, "d", 0), "d evicts b, the least recent");
    assert.equal(limiter.buckets.size, 3);
    assert.deepEqual([...limiter.buckets.keys()].sort(), ["a", "c", "d"]);
  });

  test("refuses nonsensical settings", () => {
    assert.throws(() => createIcmpRateLimiter(0), RangeError);
    assert.throws(() => createIcmpRateLimiter(1, 0), RangeError);
    assert.throws(() => createIcmpRateLimiter(1, 1, 0), RangeError);
  });
});
