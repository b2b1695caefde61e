/**
 * Test-only IP packet tools for the fragmentation and ICMP error tests, written apart
 * from src/net so they can judge it: a checksum that adds word by word with the
 * end-around carry (RFC 1071 §2 (1)) instead of folding once, checksum checks per
 * protocol, an IPv4 packet builder, a reassembler (RFC 791 §3.2) and fast-check
 * generators of well-formed IPv4 packets.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { fromHex } from "../../src/crypto/index.ts";

/** Bytes of `text` in hex; whitespace between bytes is allowed for readability. */
export function hex(text: string): Uint8Array {
  return fromHex(text.replace(/\s+/g, ""));
}

/** RFC 1071 by the book: ones' complement addition of each 16-bit word, then complement. */
export function referenceChecksum(...parts: Uint8Array[]): number {
  const bytes = parts.flatMap((part) => [...part]);
  if (bytes.length % 2) bytes.push(0);
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) {
    sum += bytes[i]! * 256 + bytes[i + 1]!;
    if (sum > 0xffff) sum -= 0xffff; // end-around carry
  }
  return 0xffff - sum;
}

/** Is the IPv4 header checksum of `packet` correct? */
export function ipv4HeaderChecksumOk(packet: Uint8Array): boolean {
  return referenceChecksum(packet.subarray(0, (packet[0]! & 15) * 4)) === 0;
}

function ipv4Payload(packet: Uint8Array): Uint8Array {
  return packet.subarray((packet[0]! & 15) * 4, (packet[2]! << 8) | packet[3]!);
}

/** Is the ICMP checksum of an unfragmented IPv4 ICMP packet correct? */
export function icmpv4ChecksumOk(packet: Uint8Array): boolean {
  return referenceChecksum(ipv4Payload(packet)) === 0;
}

/** Is the UDP or TCP checksum of an unfragmented IPv4 packet correct (RFC 768, RFC 9293)? */
export function ipv4TransportChecksumOk(packet: Uint8Array): boolean {
  const payload = ipv4Payload(packet);
  const pseudo = new Uint8Array(12);
  pseudo.set(packet.subarray(12, 20));
  pseudo[9] = packet[9]!;
  pseudo[10] = payload.length >> 8;
  pseudo[11] = payload.length & 0xff;
  return referenceChecksum(pseudo, payload) === 0;
}

/**
 * Is the upper-layer checksum of an IPv6 packet without extension headers correct, over
 * the pseudo-header of RFC 8200 §8.1? Works for UDP and ICMPv6 alike.
 */
export function ipv6UpperChecksumOk(packet: Uint8Array): boolean {
  const payloadLength = (packet[4]! << 8) | packet[5]!;
  const payload = packet.subarray(40, 40 + payloadLength);
  const pseudo = new Uint8Array(40);
  pseudo.set(packet.subarray(8, 40));
  pseudo[34] = payloadLength >> 8;
  pseudo[35] = payloadLength & 0xff;
  pseudo[39] = packet[6]!;
  return referenceChecksum(pseudo, payload) === 0;
}

/** The fields of an IPv4 packet to build; options must be a multiple of 4 bytes, at most 40. */
export interface Ipv4Fields {
  typeOfService: number;
  identification: number;
  reservedFlag: boolean;
  dontFragment: boolean;
  moreFragments: boolean;
  fragmentOffsetUnits: number;
  timeToLive: number;
  protocol: number;
  source: Uint8Array;
  destination: Uint8Array;
  options: Uint8Array;
  payload: Uint8Array;
}

/** An IPv4 packet with `fields` and a correct header checksum. */
export function buildIpv4(fields: Ipv4Fields): Uint8Array {
  const headerLength = 20 + fields.options.length;
  const packet = new Uint8Array(headerLength + fields.payload.length);
  packet[0] = 0x40 | (headerLength / 4);
  packet[1] = fields.typeOfService;
  packet[2] = packet.length >> 8;
  packet[3] = packet.length & 0xff;
  packet[4] = fields.identification >> 8;
  packet[5] = fields.identification & 0xff;
  const flags =
    (fields.reservedFlag ? 0x8000 : 0) |
    (fields.dontFragment ? 0x4000 : 0) |
    (fields.moreFragments ? 0x2000 : 0) |
    fields.fragmentOffsetUnits;
  packet[6] = flags >> 8;
  packet[7] = flags & 0xff;
  packet[8] = fields.timeToLive;
  packet[9] = fields.protocol;
  packet.set(fields.source, 12);
  packet.set(fields.destination, 16);
  packet.set(fields.options, 20);
  packet.set(fields.payload, headerLength);
  const checksum = referenceChecksum(packet.subarray(0, headerLength));
  packet[10] = checksum >> 8;
  packet[11] = checksum & 0xff;
  return packet;
}

/** A fragment as the reassembler reads it. */
interface Piece {
  header: Uint8Array;
  key: string;
  offsetBytes: number;
  moreFragments: boolean;
  data: Uint8Array;
}

/**
 * The datagram that `fragments` (of one datagram, any order) make up, or `undefined`
 * when they do not make one whole: a gap or overlap, a bad header checksum, mixed
 * identities, More Fragments on the last piece or missing on another. The header is
 * the first fragment's, with More Fragments cleared and a new length and checksum, as a
 * receiver rebuilds it (RFC 791 §3.2, "An Example Reassembly Procedure").
 */
export function reassembleIpv4(fragments: readonly Uint8Array[]): Uint8Array | undefined {
  const pieces: Piece[] = [];
  for (const fragment of fragments) {
    if (!ipv4HeaderChecksumOk(fragment)) return undefined;
    const headerLength = (fragment[0]! & 15) * 4;
    const totalLength = (fragment[2]! << 8) | fragment[3]!;
    const flags = (fragment[6]! << 8) | fragment[7]!;
    pieces.push({
      header: fragment.subarray(0, headerLength),
      // RFC 791 §3.2: fragments belong together by source, destination, protocol and id.
      key: `${[...fragment.subarray(12, 20)]}/${fragment[9]}/${fragment[4]}/${fragment[5]}`,
      offsetBytes: (flags & 0x1fff) * 8,
      moreFragments: (flags & 0x2000) !== 0,
      data: fragment.subarray(headerLength, totalLength),
    });
  }
  pieces.sort((a, b) => a.offsetBytes - b.offsetBytes);
  if (pieces.length === 0 || pieces[0]!.offsetBytes !== 0) return undefined;
  let expected = 0;
  for (const [index, piece] of pieces.entries()) {
    if (piece.key !== pieces[0]!.key || piece.offsetBytes !== expected) return undefined;
    if (piece.moreFragments !== index < pieces.length - 1) return undefined;
    expected += piece.data.length;
  }

  const header = pieces[0]!.header;
  const whole = new Uint8Array(header.length + expected);
  whole.set(header);
  let at = header.length;
  for (const piece of pieces) {
    whole.set(piece.data, at);
    at += piece.data.length;
  }
  whole[2] = whole.length >> 8;
  whole[3] = whole.length & 0xff;
  whole[6] = header[6]! & 0xc0; // keep reserved and Don't Fragment; clear More Fragments and offset
  whole[7] = 0;
  whole[10] = 0;
  whole[11] = 0;
  const checksum = referenceChecksum(whole.subarray(0, header.length));
  whole[10] = checksum >> 8;
  whole[11] = checksum & 0xff;
  return whole;
}

/** The options of `options` whose copied flag (0x80) is set, walked independently. */
export function copiedOptionsOf(options: Uint8Array): number[] {
  const copied: number[] = [];
  for (let at = 0; at < options.length; ) {
    const type = options[at]!;
    if (type === 0) break;
    if (type === 1) {
      at++;
      continue;
    }
    const length = options[at + 1]!;
    if (type >= 0x80) copied.push(...options.subarray(at, at + length));
    at += length;
  }
  return copied;
}

/**
 * Well-formed IPv4 options, padded with zeros to a 4-byte boundary: No Operation and
 * type-length-value options of any type but 0 and 1 (so both values of the copied flag),
 * 2 to 8 bytes each, at most 40 bytes in all.
 */
export const ipv4OptionsArbitrary: fc.Arbitrary<Uint8Array> = fc
  .array(
    fc.oneof(
      fc.constant([1]),
      fc
        .tuple(fc.integer({ min: 2, max: 255 }), fc.uint8Array({ maxLength: 6 }))
        .map(([type, data]) => [type, data.length + 2, ...data]),
    ),
    { maxLength: 8 },
  )
  .map((options) => {
    const bytes: number[] = [];
    for (const option of options) {
      if (bytes.length + option.length > 40) break;
      bytes.push(...option);
    }
    while (bytes.length % 4) bytes.push(0);
    return Uint8Array.from(bytes);
  });

/** Any IPv4 address, with the special ones that ICMP must not answer well represented. */
export const ipv4AddressArbitrary: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ minLength: 4, maxLength: 4 }),
  fc
    .constantFrom(
      [0, 0, 0, 0],
      [127, 0, 0, 1],
      [224, 0, 0, 251],
      [239, 255, 255, 250],
      [240, 0, 0, 1],
      [255, 255, 255, 255],
      [10, 40, 255, 255],
      [10, 40, 0, 0],
      [10, 40, 0, 2],
    )
    .map((bytes) => Uint8Array.from(bytes)),
);

/**
 * Random bytes of a random length up to `maxBytes`, drawn as a length and a seed: shrinking
 * then tries shorter lengths and smaller seeds, instead of each of thousands of bytes (which
 * made a failing property shrink for minutes). fast-check's default size would also keep a
 * plain `uint8Array` to about ten bytes, too few to fragment.
 */
export function payloadArbitrary(maxBytes: number): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(
      fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: maxBytes })),
      fc.integer({ min: 1, max: 0x7fffffff }),
    )
    .map(([length, seed]) => {
      const bytes = new Uint8Array(length);
      let state = seed;
      for (let i = 0; i < length; i++) {
        // xorshift32 (Marsaglia 2003)
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        bytes[i] = state & 0xff;
      }
      return bytes;
    });
}

/** Options for `ipv4FieldsArbitrary`. */
export interface Ipv4FieldsOptions {
  maxPayloadBytes?: number;
  addresses?: fc.Arbitrary<Uint8Array>;
  /** Also generate fragments: MF set (then the payload is a multiple of 8) and offsets. */
  fragments?: boolean;
}

/** Fields of a well-formed IPv4 packet (`buildIpv4` makes it). */
export function ipv4FieldsArbitrary(settings: Ipv4FieldsOptions = {}): fc.Arbitrary<Ipv4Fields> {
  const addresses = settings.addresses ?? fc.uint8Array({ minLength: 4, maxLength: 4 });
  return fc
    .record({
      typeOfService: fc.integer({ min: 0, max: 255 }),
      identification: fc.integer({ min: 0, max: 0xffff }),
      reservedFlag: fc.boolean(),
      dontFragment: fc.boolean(),
      moreFragments: settings.fragments ? fc.boolean() : fc.constant(false),
      fragmentOffsetUnits: settings.fragments
        ? fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0x1fff }))
        : fc.constant(0),
      timeToLive: fc.integer({ min: 0, max: 255 }),
      protocol: fc.oneof(fc.constantFrom(1, 6, 17), fc.integer({ min: 0, max: 255 })),
      source: addresses,
      destination: addresses,
      options: ipv4OptionsArbitrary,
      payload: payloadArbitrary(settings.maxPayloadBytes ?? 3000),
    })
    .map((fields) => {
      let payload = fields.payload;
      if (fields.moreFragments)
        payload = payload.subarray(0, payload.length - (payload.length % 8));
      // Keep the datagram within 65535 bytes, as readIpv4Header requires.
      const room = 0xffff - fields.fragmentOffsetUnits * 8;
      if (payload.length > room) payload = payload.subarray(0, room - (room % 8));
      return { ...fields, payload };
    });
}

/** The fields of an IPv6 packet to build; `payload` starts right after the fixed header. */
export interface Ipv6Fields {
  nextHeader: number;
  hopLimit?: number;
  source: Uint8Array;
  destination: Uint8Array;
  payload: Uint8Array;
}

/** An IPv6 packet with `fields`, traffic class and flow label 0. No checksum is filled in. */
export function buildIpv6(fields: Ipv6Fields): Uint8Array {
  const packet = new Uint8Array(40 + fields.payload.length);
  packet[0] = 0x60;
  packet[4] = fields.payload.length >> 8;
  packet[5] = fields.payload.length & 0xff;
  packet[6] = fields.nextHeader;
  packet[7] = fields.hopLimit ?? 64;
  packet.set(fields.source, 8);
  packet.set(fields.destination, 24);
  packet.set(fields.payload, 40);
  return packet;
}

/**
 * Asserts that two byte arrays are equal, naming the first difference. `assert.deepEqual`
 * renders a diff of both arrays on failure, which for packets of a few kilobytes takes
 * seconds, and fast-check's shrinking then runs it hundreds of times.
 */
export function assertSameBytes(
  actual: Uint8Array | undefined,
  expected: Uint8Array,
  message: string,
): void {
  assert.ok(actual !== undefined, `${message}: got undefined`);
  let index = 0;
  while (index < actual.length && index < expected.length && actual[index] === expected[index]) {
    index++;
  }
  assert.ok(
    index === actual.length && index === expected.length,
    `${message}: ${actual.length} bytes, ${expected.length} expected, first difference at ${index}`,
  );
}
