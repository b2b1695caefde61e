/**
 * Path MTU errors for the overlay (issue #9, "Path MTU"): what to do with a packet from
 * the TUN that is larger than its path allows, and the ICMP error that tells its sender's
 * kernel to send smaller packets (RFC 1191 for IPv4, RFC 8201 for IPv6). The error goes
 * back into the TUN as a router on the path would send it; `parseIcmpError` reads such
 * errors (ours, or one a relay or the underlay sent).
 *
 * Its source (`from`) must not be one of the receiving host's own addresses: Linux drops
 * a packet that arrives on an interface with a local source address as a martian
 * (`fib_validate_source`, unless `accept_local` is set), and the local sender's own
 * address is usually this peer's overlay address. Use the address of the far end: the
 * original's destination, or the overlay address of the peer whose path is too small.
 *
 * ```
 *  packet from TUN ── pathMtuAction(packet, mtu) ─┬─ fits: send it
 *                                                 ├─ fragment: fragmentIpv4, send the pieces
 *                                                 ├─ fragmentation-needed: fragmentationNeeded
 *                                                 ├─ packet-too-big: packetTooBig
 *                                                 ├─ below-ipv6-minimum: carry it (RFC 8200 §5)
 *                                                 └─ malformed: drop
 *  (the errors go back into the TUN, to the sender)
 * ```
 *
 * The builders return `undefined` where the RFCs forbid an error (RFC 1122 §3.2.2 and
 * RFC 1812 §4.3.2.7 for ICMP, RFC 4443 §2.4 (e) for ICMPv6), so a caller that sends
 * whatever comes back can never answer an error with an error or a broadcast with a storm.
 * Rate limiting (RFC 1812 §4.3.2.8, RFC 4443 §2.4 (f)) is the caller's: these functions
 * are pure and keep no state.
 */
import { internetChecksum } from "./checksum.ts";
import type { IpPrefix } from "./ip.ts";
import {
  IPV4_CHECKSUM_OFFSET,
  IPV4_DESTINATION_OFFSET,
  IPV4_FLAG_DONT_FRAGMENT,
  IPV4_FLAGS_AND_OFFSET_OFFSET,
  IPV4_MIN_HEADER_BYTES,
  IPV4_MIN_MTU_BYTES,
  IPV4_PROTOCOL_OFFSET,
  IPV4_SOURCE_OFFSET,
  IPV4_TOTAL_LENGTH_OFFSET,
  IPV4_TTL_OFFSET,
  IPV4_TYPE_OF_SERVICE_OFFSET,
  IPV4_VERSION,
  readIpv4Header,
} from "./ipv4-fragment.ts";
import { pseudoHeaderSum } from "./pseudo-header.ts";

// ICMP (RFC 792) and its errors (RFC 1122 §3.2.2, RFC 1812 §4.3.2.7).
/** IP protocol number of ICMP. */
export const PROTOCOL_ICMP = 1;
/** ICMP and ICMPv6 headers: type, code, checksum, and 4 bytes that depend on the type. */
export const ICMP_HEADER_BYTES = 8;
export const ICMP_DESTINATION_UNREACHABLE = 3;
export const ICMP_CODE_FRAGMENTATION_NEEDED = 4;
/** Destination unreachable, source quench, redirect, time exceeded, parameter problem. */
export const ICMP_ERROR_TYPES: ReadonlySet<number> = new Set([3, 4, 5, 11, 12]);
/** An ICMP error datagram, IP header included, stays within 576 bytes (RFC 1812 §4.3.2.3). */
export const ICMP_ERROR_MAX_DATAGRAM_BYTES = 576;

// IPv6 (RFC 8200) and ICMPv6 (RFC 4443).
export const IPV6_VERSION = 6;
export const IPV6_HEADER_BYTES = 40;
/** Every IPv6 link carries 1280-byte packets (RFC 8200 §5); also the bound on an ICMPv6 error. */
export const IPV6_MIN_MTU_BYTES = 1280;
/** IPv6 next header number of ICMPv6. */
export const NEXT_HEADER_ICMPV6 = 58;
export const ICMPV6_PACKET_TOO_BIG = 2;
/** ICMPv6 types below 128 are errors (RFC 4443 §2.1). */
export const ICMPV6_FIRST_INFORMATIONAL_TYPE = 128;

/**
 * TTL and hop limit of our errors: 64, the default TTL RFC 1700 recommends and Linux
 * uses for its own ICMP errors. Not 255, which RFC 4861 (Neighbor Discovery) and RFC 5082
 * (GTSM) check for as proof that a packet never left the link: these errors are not
 * link-local, and may be relayed to a sender on another peer.
 */
export const ICMP_ERROR_HOP_LIMIT = 64;
/** Precedence 6, internetwork control, for the errors (RFC 1812 §4.3.2.5): DSCP CS6. */
const ICMP_ERROR_TYPE_OF_SERVICE = 0xc0;
// Offsets within an ICMP or ICMPv6 header.
const ICMP_CODE_OFFSET = 1;
const ICMP_CHECKSUM_OFFSET = 2;
/** RFC 1191 §4: the low 16 bits of the second word; RFC 4443 §3.2: the whole word. */
const ICMP_MTU_OFFSET = 4;
const ICMP_NEXT_HOP_MTU_OFFSET = 6;

const IPV4_BYTES = 4;
const IPV6_BYTES = 16;
const IPV6_PAYLOAD_LENGTH_OFFSET = 4;
const IPV6_NEXT_HEADER_OFFSET = 6;
const IPV6_HOP_LIMIT_OFFSET = 7;
const IPV6_SOURCE_OFFSET = 8;
const IPV6_DESTINATION_OFFSET = 24;

// IPv6 extension headers whose length is (byte 1 + 1) * 8 (RFC 8200 §4, RFC 7045 §4).
const EXTENSION_HOP_BY_HOP = 0;
const EXTENSION_ROUTING = 43;
const EXTENSION_FRAGMENT = 44;
const EXTENSION_AUTHENTICATION = 51; // length is (byte 1 + 2) * 4 (RFC 4302 §2.2)
const EXTENSION_DESTINATION_OPTIONS = 60;
const EXTENSIONS_IN_8_BYTE_UNITS: ReadonlySet<number> = new Set([
  EXTENSION_HOP_BY_HOP,
  EXTENSION_ROUTING,
  EXTENSION_DESTINATION_OPTIONS,
  135, // Mobility (RFC 6275)
  139, // HIP (RFC 7401)
  140, // Shim6 (RFC 5533)
]);
const FRAGMENT_HEADER_BYTES = 8;

/** What to do with a packet for a path of some MTU: the result of `pathMtuAction`. */
export type PathMtuAction =
  /** It fits: send it as it is. */
  | { readonly kind: "fits" }
  /** IPv4 without Don't Fragment and too big: send the pieces of `fragmentIpv4`. */
  | { readonly kind: "fragment" }
  /** IPv4 with Don't Fragment and too big: answer with `fragmentationNeeded`. */
  | { readonly kind: "fragmentation-needed"; readonly mtuBytes: number }
  /** IPv6 too big: answer with `packetTooBig(packet, mtuBytes, …)`. */
  | { readonly kind: "packet-too-big"; readonly mtuBytes: number }
  /**
   * IPv6 of at most 1280 bytes on a path below 1280: no error can help, since no sender
   * goes below 1280 (RFC 8201 §4); RFC 8200 §5 asks the link (the tunnel) to carry it in
   * pieces below IPv6.
   */
  | { readonly kind: "below-ipv6-minimum" }
  /** Not a well-formed IPv4 or IPv6 packet: drop it. */
  | { readonly kind: "malformed" };

/**
 * What the tunnel should do with `packet` on a path whose MTU is `mtuBytes` (RFC 1191
 * §3 for IPv4, RFC 8201 §4 for IPv6). Sizes are the IP length fields, not the buffer's.
 * IPv6 reports at least 1280 as the MTU, the least a sender will go to. `mtuBytes` must
 * be an integer of at least 68 (`RangeError` otherwise).
 *
 * A packet may be `fragmentation-needed` and still get no error: `fragmentationNeeded`
 * refuses to answer, for instance, a multicast destination. The caller then drops it.
 *
 * @example
 * ```ts
 * const action = pathMtuAction(packet, path.mtuBytes);
 * if (action.kind === "fragmentation-needed") {
 *   const error = fragmentationNeeded(packet, action.mtuBytes, peerAddress);
 *   if (error) tun.write(error);
 * }
 * ```
 */
export function pathMtuAction(packet: Uint8Array, mtuBytes: number): PathMtuAction {
  assertBytes(packet, "packet");
  assertMtu(mtuBytes, IPV4_MIN_MTU_BYTES, Number.MAX_SAFE_INTEGER);
  const version = packet.length > 0 ? packet[0]! >> 4 : 0;
  if (version === 4) {
    const header = readIpv4Header(packet);
    if (header === undefined) return { kind: "malformed" };
    if (header.totalBytes <= mtuBytes) return { kind: "fits" };
    return header.dontFragment ? { kind: "fragmentation-needed", mtuBytes } : { kind: "fragment" };
  }
  if (version === IPV6_VERSION) {
    const totalBytes = ipv6TotalBytes(packet);
    if (totalBytes === undefined) return { kind: "malformed" };
    if (totalBytes <= mtuBytes) return { kind: "fits" };
    if (totalBytes <= IPV6_MIN_MTU_BYTES) return { kind: "below-ipv6-minimum" };
    return { kind: "packet-too-big", mtuBytes: Math.max(mtuBytes, IPV6_MIN_MTU_BYTES) };
  }
  return { kind: "malformed" };
}

/**
 * An ICMP "fragmentation needed and DF set" (type 3, code 4, RFC 792) for `original`,
 * with `mtuBytes` as the Next-Hop MTU (RFC 1191 §4), in an IPv4 packet from `from` (not
 * a local address: see the file header) to the original's source: TTL 64, precedence 6,
 * Don't Fragment set and identification 0 (RFC 6864 §4.1 lets an atomic datagram carry
 * any), both checksums filled in. It quotes the original's header and as much of its data as keeps
 * the error within 576 bytes (RFC 1812 §4.3.2.3), never past the original's total length.
 *
 * `undefined`, so nothing is sent (RFC 1122 §3.2.2, RFC 1812 §4.3.2.7), when `original`
 * is not a well-formed IPv4 packet (see `readIpv4Header`), is a fragment other than the
 * first, is itself an ICMP error (or ICMP too short to tell), comes from an address that
 * is not one host (0.0.0.0/8, 127.0.0.0/8, multicast 224.0.0.0/4, 240.0.0.0/4 with the
 * limited broadcast), or goes to multicast or broadcast. `overlay`, the mesh's prefix,
 * makes its directed broadcast addresses (host bits all ones, or all zeros as old BSDs
 * used, RFC 1122 §3.3.6) count too; without it only 255.255.255.255 is known.
 *
 * Throws `TypeError`/`RangeError` for an `mtuBytes` outside 68 to 65535 or a `from` that
 * is not 4 bytes; never for packet bytes.
 *
 * @example
 * ```ts
 * const error = fragmentationNeeded(packet, 1380, packet.subarray(16, 20));
 * if (error !== undefined) tun.write(error);
 * ```
 */
export function fragmentationNeeded(
  original: Uint8Array,
  mtuBytes: number,
  from: Uint8Array,
  overlay?: IpPrefix,
): Uint8Array | undefined {
  assertBytes(original, "original");
  assertMtu(mtuBytes, IPV4_MIN_MTU_BYTES, 0xffff);
  assertAddress(from, IPV4_BYTES, "from");
  const header = readIpv4Header(original);
  if (header === undefined || header.fragmentOffsetBytes !== 0) return undefined;
  if (!isIpv4SingleHost(header.source, overlay)) return undefined;
  if (isIpv4MulticastOrBroadcast(header.destination, overlay)) return undefined;
  if (header.protocol === PROTOCOL_ICMP) {
    if (header.totalBytes === header.headerBytes) return undefined;
    if (ICMP_ERROR_TYPES.has(original[header.headerBytes]!)) return undefined;
  }

  const quoted = original.subarray(
    0,
    Math.min(
      header.totalBytes,
      ICMP_ERROR_MAX_DATAGRAM_BYTES - IPV4_MIN_HEADER_BYTES - ICMP_HEADER_BYTES,
    ),
  );
  const packet = new Uint8Array(IPV4_MIN_HEADER_BYTES + ICMP_HEADER_BYTES + quoted.length);
  const view = new DataView(packet.buffer);
  packet[0] = (IPV4_VERSION << 4) | (IPV4_MIN_HEADER_BYTES / 4);
  packet[IPV4_TYPE_OF_SERVICE_OFFSET] = ICMP_ERROR_TYPE_OF_SERVICE;
  view.setUint16(IPV4_TOTAL_LENGTH_OFFSET, packet.length);
  view.setUint16(IPV4_FLAGS_AND_OFFSET_OFFSET, IPV4_FLAG_DONT_FRAGMENT);
  packet[IPV4_TTL_OFFSET] = ICMP_ERROR_HOP_LIMIT;
  packet[IPV4_PROTOCOL_OFFSET] = PROTOCOL_ICMP;
  packet.set(from, IPV4_SOURCE_OFFSET);
  packet.set(header.source, IPV4_DESTINATION_OFFSET);
  const ipHeader = packet.subarray(0, IPV4_MIN_HEADER_BYTES);
  view.setUint16(IPV4_CHECKSUM_OFFSET, internetChecksum(ipHeader));

  const icmp = packet.subarray(IPV4_MIN_HEADER_BYTES);
  const icmpView = new DataView(packet.buffer, IPV4_MIN_HEADER_BYTES);
  icmp[0] = ICMP_DESTINATION_UNREACHABLE;
  icmp[ICMP_CODE_OFFSET] = ICMP_CODE_FRAGMENTATION_NEEDED;
  // Bytes 4-5 stay zero: unused (RFC 1191 §4), and RFC 4884's length 0 (no extensions).
  icmpView.setUint16(ICMP_NEXT_HOP_MTU_OFFSET, mtuBytes);
  icmp.set(quoted, ICMP_HEADER_BYTES);
  icmpView.setUint16(ICMP_CHECKSUM_OFFSET, internetChecksum(icmp));
  return packet;
}

/**
 * An ICMPv6 Packet Too Big (type 2, code 0, RFC 4443 §3.2) for `original` with
 * `mtuBytes` as its MTU, in an IPv6 packet from `from` (not a local address: see the
 * file header) to the original's source, hop limit 64 (see `ICMP_ERROR_HOP_LIMIT`),
 * traffic class and flow label 0, checksummed over the pseudo-header (RFC 8200 §8.1). It
 * quotes as much of the original as keeps the error within 1280 bytes (RFC 4443 §2.4 (c)).
 *
 * `undefined`, so nothing is sent (RFC 4443 §2.4 (e)), when `original` is not a
 * well-formed IPv6 packet (a payload length past its end, a cut extension header), is an
 * ICMPv6 error (types below 128, also behind extension headers), or comes from the
 * unspecified address, a multicast address or loopback (not one host, RFC 4291 §2.5.2,
 * §2.5.3, §2.7). Unlike other errors it is sent for a multicast destination (§2.4 (e.2)),
 * so that multicast senders learn the path MTU too. A non-first fragment is answered: the
 * MTU applies to it as to any packet.
 *
 * Throws `TypeError`/`RangeError` for an `mtuBytes` outside 1280 to 2^32-1 (RFC 8201 §4:
 * no node lowers its path MTU below 1280) or a `from` that is not 16 bytes; never for
 * packet bytes.
 *
 * @example
 * ```ts
 * const error = packetTooBig(packet, 1380, packet.subarray(24, 40));
 * if (error !== undefined) tun.write(error);
 * ```
 */
export function packetTooBig(
  original: Uint8Array,
  mtuBytes: number,
  from: Uint8Array,
): Uint8Array | undefined {
  assertBytes(original, "original");
  assertMtu(mtuBytes, IPV6_MIN_MTU_BYTES, 0xffffffff);
  assertAddress(from, IPV6_BYTES, "from");
  const totalBytes = ipv6TotalBytes(original);
  if (totalBytes === undefined) return undefined;
  const source = original.subarray(IPV6_SOURCE_OFFSET, IPV6_SOURCE_OFFSET + IPV6_BYTES);
  if (!isIpv6SingleHost(source)) return undefined;
  const upper = ipv6UpperLayer(original, totalBytes);
  if (upper === undefined) return undefined;
  if (upper.firstFragment && upper.protocol === NEXT_HEADER_ICMPV6) {
    if (upper.offset >= totalBytes) return undefined;
    if (original[upper.offset]! < ICMPV6_FIRST_INFORMATIONAL_TYPE) return undefined;
  }

  const quoted = original.subarray(
    0,
    Math.min(totalBytes, IPV6_MIN_MTU_BYTES - IPV6_HEADER_BYTES - ICMP_HEADER_BYTES),
  );
  const packet = new Uint8Array(IPV6_HEADER_BYTES + ICMP_HEADER_BYTES + quoted.length);
  const view = new DataView(packet.buffer);
  packet[0] = IPV6_VERSION << 4;
  view.setUint16(IPV6_PAYLOAD_LENGTH_OFFSET, ICMP_HEADER_BYTES + quoted.length);
  packet[IPV6_NEXT_HEADER_OFFSET] = NEXT_HEADER_ICMPV6;
  packet[IPV6_HOP_LIMIT_OFFSET] = ICMP_ERROR_HOP_LIMIT;
  packet.set(from, IPV6_SOURCE_OFFSET);
  packet.set(source, IPV6_DESTINATION_OFFSET);

  const icmp = packet.subarray(IPV6_HEADER_BYTES);
  const icmpView = new DataView(packet.buffer, IPV6_HEADER_BYTES);
  icmp[0] = ICMPV6_PACKET_TOO_BIG;
  icmpView.setUint32(ICMP_MTU_OFFSET, mtuBytes);
  icmp.set(quoted, ICMP_HEADER_BYTES);
  const pseudoHeader = ipv6PseudoHeaderSum(packet, icmp.length);
  icmpView.setUint16(ICMP_CHECKSUM_OFFSET, internetChecksum(icmp, pseudoHeader));
  return packet;
}

/** An ICMP or ICMPv6 error as `parseIcmpError` reads it. */
export interface IcmpErrorReport {
  /** 4 for ICMP in IPv4, 6 for ICMPv6. */
  readonly ipVersion: 4 | 6;
  readonly type: number;
  readonly code: number;
  /**
   * The MTU an error reports: the Next-Hop MTU of an IPv4 frag-needed (RFC 1191 §4; 0
   * from a router older than RFC 1191, whose sender must guess, §5) or the MTU of an
   * ICMPv6 Packet Too Big; `undefined` for every other error.
   */
  readonly mtuBytes: number | undefined;
  /** Who sent the error: the source of its IP packet (a view). */
  readonly reporter: Uint8Array;
  /** The start of the packet that caused it, as quoted. */
  readonly quoted: {
    /** Its source address (a view): normally ours, since the error came to us. */
    readonly source: Uint8Array;
    /** Its destination address (a view). */
    readonly destination: Uint8Array;
    /** Its IPv4 protocol or its IPv6 header's next header (extension headers not walked). */
    readonly protocol: number;
    /** The quoted bytes, from its IP header on (a view). */
    readonly bytes: Uint8Array;
  };
}

/**
 * The ICMP error (RFC 792 types 3, 4, 5, 11, 12) or ICMPv6 error (RFC 4443 types 0 to
 * 127) that `packet` carries, or `undefined` when it carries none: not IPv4 or IPv6, a
 * bad IP header (see `readIpv4Header`), an IPv4 fragment, a bad ICMP checksum, an
 * informational message, or a quote shorter than an IP header of the same version. For
 * ICMPv6 the extension headers before it are walked; a routing header is not, so the
 * checksum of a routed error does not verify and it is refused.
 *
 * @example
 * ```ts
 * const report = parseIcmpError(packet);
 * if (report?.mtuBytes) lowerPathMtu(report.quoted.destination, report.mtuBytes);
 * ```
 */
export function parseIcmpError(packet: Uint8Array): IcmpErrorReport | undefined {
  assertBytes(packet, "packet");
  if (packet.length === 0) return undefined;
  const version = packet[0]! >> 4;
  if (version === 4) return parseIcmpv4Error(packet);
  if (version === IPV6_VERSION) return parseIcmpv6Error(packet);
  return undefined;
}

function parseIcmpv4Error(packet: Uint8Array): IcmpErrorReport | undefined {
  const header = readIpv4Header(packet);
  if (header === undefined || header.protocol !== PROTOCOL_ICMP) return undefined;
  // A fragmented error cannot have its ICMP checksum checked, and errors fit in 576 bytes.
  if (header.fragmentOffsetBytes !== 0 || header.moreFragments) return undefined;
  const icmp = packet.subarray(header.headerBytes, header.totalBytes);
  if (icmp.length < ICMP_HEADER_BYTES || internetChecksum(icmp) !== 0) return undefined;
  const type = icmp[0]!;
  const code = icmp[ICMP_CODE_OFFSET]!;
  if (!ICMP_ERROR_TYPES.has(type)) return undefined;
  const bytes = icmp.subarray(ICMP_HEADER_BYTES);
  if (bytes.length < IPV4_MIN_HEADER_BYTES || bytes[0]! >> 4 !== IPV4_VERSION) return undefined;
  const isFragNeeded =
    type === ICMP_DESTINATION_UNREACHABLE && code === ICMP_CODE_FRAGMENTATION_NEEDED;
  return {
    ipVersion: 4,
    type,
    code,
    mtuBytes: isFragNeeded
      ? (icmp[ICMP_NEXT_HOP_MTU_OFFSET]! << 8) | icmp[ICMP_NEXT_HOP_MTU_OFFSET + 1]!
      : undefined,
    reporter: header.source,
    quoted: {
      source: bytes.subarray(IPV4_SOURCE_OFFSET, IPV4_SOURCE_OFFSET + IPV4_BYTES),
      destination: bytes.subarray(IPV4_DESTINATION_OFFSET, IPV4_DESTINATION_OFFSET + IPV4_BYTES),
      protocol: bytes[IPV4_PROTOCOL_OFFSET]!,
      bytes,
    },
  };
}

function parseIcmpv6Error(packet: Uint8Array): IcmpErrorReport | undefined {
  const totalBytes = ipv6TotalBytes(packet);
  if (totalBytes === undefined) return undefined;
  const upper = ipv6UpperLayer(packet, totalBytes);
  if (upper === undefined || !upper.firstFragment || upper.protocol !== NEXT_HEADER_ICMPV6) {
    return undefined;
  }
  const icmp = packet.subarray(upper.offset, totalBytes);
  if (icmp.length < ICMP_HEADER_BYTES) return undefined;
  if (internetChecksum(icmp, ipv6PseudoHeaderSum(packet, icmp.length)) !== 0) return undefined;
  const type = icmp[0]!;
  if (type >= ICMPV6_FIRST_INFORMATIONAL_TYPE) return undefined;
  const bytes = icmp.subarray(ICMP_HEADER_BYTES);
  if (bytes.length < IPV6_HEADER_BYTES || bytes[0]! >> 4 !== IPV6_VERSION) return undefined;
  const view = new DataView(icmp.buffer, icmp.byteOffset, icmp.length);
  return {
    ipVersion: 6,
    type,
    code: icmp[ICMP_CODE_OFFSET]!,
    mtuBytes: type === ICMPV6_PACKET_TOO_BIG ? view.getUint32(ICMP_MTU_OFFSET) : undefined,
    reporter: packet.subarray(IPV6_SOURCE_OFFSET, IPV6_SOURCE_OFFSET + IPV6_BYTES),
    quoted: {
      source: bytes.subarray(IPV6_SOURCE_OFFSET, IPV6_SOURCE_OFFSET + IPV6_BYTES),
      destination: bytes.subarray(IPV6_DESTINATION_OFFSET, IPV6_DESTINATION_OFFSET + IPV6_BYTES),
      protocol: bytes[IPV6_NEXT_HEADER_OFFSET]!,
      bytes,
    },
  };
}

/**
 * Header plus payload length of an IPv6 packet, or `undefined` when it is not one or the
 * payload runs past the buffer. A jumbogram's payload length of 0 (RFC 2675) reads as a
 * bare header; no TUN carries one.
 */
function ipv6TotalBytes(packet: Uint8Array): number | undefined {
  if (packet.length < IPV6_HEADER_BYTES || packet[0]! >> 4 !== IPV6_VERSION) return undefined;
  const payloadBytes =
    (packet[IPV6_PAYLOAD_LENGTH_OFFSET]! << 8) | packet[IPV6_PAYLOAD_LENGTH_OFFSET + 1]!;
  const totalBytes = IPV6_HEADER_BYTES + payloadBytes;
  return totalBytes <= packet.length ? totalBytes : undefined;
}

/** Where the upper-layer header starts, after the extension headers (RFC 8200 §4.1). */
interface Ipv6UpperLayer {
  /** Its next header number (ICMPv6 58, UDP 17, ESP 50, No Next Header 59, ...). */
  readonly protocol: number;
  /** Its offset in the packet; meaningful only in a first fragment. */
  readonly offset: number;
  /** False behind a Fragment header with a non-zero offset: the upper layer is elsewhere. */
  readonly firstFragment: boolean;
}

/** The upper layer of an IPv6 packet, or `undefined` when an extension header is cut short. */
function ipv6UpperLayer(packet: Uint8Array, totalBytes: number): Ipv6UpperLayer | undefined {
  let protocol = packet[IPV6_NEXT_HEADER_OFFSET]!;
  let offset = IPV6_HEADER_BYTES;
  for (;;) {
    let length: number;
    if (EXTENSIONS_IN_8_BYTE_UNITS.has(protocol)) {
      if (offset + 2 > totalBytes) return undefined;
      length = (packet[offset + 1]! + 1) * 8;
    } else if (protocol === EXTENSION_AUTHENTICATION) {
      if (offset + 2 > totalBytes) return undefined;
      length = (packet[offset + 1]! + 2) * 4;
    } else if (protocol === EXTENSION_FRAGMENT) {
      if (offset + FRAGMENT_HEADER_BYTES > totalBytes) return undefined;
      const fragmentOffset = ((packet[offset + 2]! << 8) | packet[offset + 3]!) >> 3;
      if (fragmentOffset !== 0) {
        return { protocol: packet[offset]!, offset: totalBytes, firstFragment: false };
      }
      length = FRAGMENT_HEADER_BYTES;
    } else {
      return { protocol, offset, firstFragment: true };
    }
    if (offset + length > totalBytes) return undefined;
    protocol = packet[offset]!;
    offset += length;
  }
}

/** The ICMPv6 pseudo-header sum (RFC 8200 §8.1) for the addresses of `packet`. */
function ipv6PseudoHeaderSum(packet: Uint8Array, upperLayerBytes: number): number {
  return pseudoHeaderSum(
    packet.subarray(IPV6_SOURCE_OFFSET, IPV6_SOURCE_OFFSET + IPV6_BYTES),
    packet.subarray(IPV6_DESTINATION_OFFSET, IPV6_DESTINATION_OFFSET + IPV6_BYTES),
    NEXT_HEADER_ICMPV6,
    upperLayerBytes,
  );
}

/**
 * May an IPv4 error go to `address`? Not to "this network" 0.0.0.0/8, loopback
 * 127.0.0.0/8, multicast 224.0.0.0/4, reserved 240.0.0.0/4 (which holds
 * 255.255.255.255), nor the overlay's broadcast addresses (RFC 1812 §4.3.2.7).
 */
function isIpv4SingleHost(address: Uint8Array, overlay: IpPrefix | undefined): boolean {
  const first = address[0]!;
  if (first === 0 || first === 127 || first >= 224) return false;
  return !isOverlayBroadcast(address, overlay);
}

function isIpv4MulticastOrBroadcast(address: Uint8Array, overlay: IpPrefix | undefined): boolean {
  const first = address[0]!;
  if (first >= 224 && first < 240) return true;
  if (address.every((byte) => byte === 0xff)) return true;
  return isOverlayBroadcast(address, overlay);
}

/**
 * Is `address` in the overlay prefix with host bits all ones (RFC 919) or all zeros (the
 * old BSD form that RFC 1122 §3.3.6 asks hosts to accept)? A /31 (RFC 3021) or /32 has none.
 */
function isOverlayBroadcast(address: Uint8Array, overlay: IpPrefix | undefined): boolean {
  if (overlay === undefined || overlay.address.length !== IPV4_BYTES) return false;
  const { prefixLength } = overlay;
  if (prefixLength > 30) return false;
  const hostValues = 2 ** (32 - prefixLength);
  const value = readUint32(address);
  const network = Math.floor(value / hostValues);
  if (network !== Math.floor(readUint32(overlay.address) / hostValues)) return false;
  const host = value % hostValues;
  return host === 0 || host === hostValues - 1;
}

function readUint32(bytes: Uint8Array): number {
  return ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
}

/** Not :: (RFC 4291 §2.5.2), loopback ::1 (§2.5.3), or multicast ff00::/8 (§2.7). */
function isIpv6SingleHost(address: Uint8Array): boolean {
  if (address[0] === 0xff) return false;
  const last = address[IPV6_BYTES - 1]!;
  const restZero = address.subarray(0, IPV6_BYTES - 1).every((byte) => byte === 0);
  return !(restZero && (last === 0 || last === 1));
}

function assertBytes(value: unknown, name: string): void {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`Expected "${name}" to be a Uint8Array, got ${typeof value}`);
  }
}

function assertAddress(value: unknown, bytes: number, name: string): void {
  assertBytes(value, name);
  const length = (value as Uint8Array).length;
  if (length !== bytes) {
    throw new RangeError(`Expected "${name}" to be ${bytes} bytes, got ${length}`);
  }
}

function assertMtu(mtuBytes: number, min: number, max: number): void {
  if (!Number.isInteger(mtuBytes) || mtuBytes < min || mtuBytes > max) {
    throw new RangeError(
      `Expected "mtuBytes" to be an integer from ${min} to ${max}, got ${mtuBytes}`,
    );
  }
}
