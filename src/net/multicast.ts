/**
 * Which packets from the Tun are multicast or broadcast, and whether one that a member
 * sent us may be written to our Tun. Pure functions of the packet's bytes.
 *
 * Carried: IPv4 multicast (224.0.0.0/4, RFC 5771) except IGMP, the limited broadcast
 * 255.255.255.255 and the directed broadcasts the caller names (the mesh range's, RFC 919
 * and RFC 922). Not carried, and told apart so they can be counted: IGMP (protocol 2, RFC
 * 3376: membership reports are for routers, and the mesh floods every group to every
 * member anyway) and IPv6 multicast (ff00::/8, RFC 4291 §2.7: its sources are link-local
 * addresses no member's allowed IPs contain, so a receiver could not check them).
 *
 * The mesh is one link, as a switch is: a packet reaches every other member unchanged
 * when its TTL is at least 1 and is never routed further, so TTL 1 (link-local scope) is
 * enough and TTL 0 is dropped.
 */
import { internetChecksum } from "./checksum.ts";
import { IPV4_BYTES, type IpPrefix, prefixContains } from "./ip.ts";

/** What a packet from the Tun is, as far as multicast goes. */
export type MulticastKind =
  /** IPv4 to 224.0.0.0/4, not IGMP: carried. */
  | "multicast"
  /** IPv4 to 255.255.255.255 or to one of the directed broadcasts given: carried. */
  | "broadcast"
  /** IGMP to a multicast group: not carried. */
  | "igmp"
  /** IPv6 to ff00::/8: not carried. */
  | "ipv6-multicast"
  /** Anything else, including what is too short to tell. */
  | "other";

/** Why a multicast packet from a member is not written to the Tun. */
export type MulticastRejection =
  /** Not IPv4, a header shorter than 20 bytes or longer than the packet, or a total length that is not the packet's. */
  | "malformed"
  /** The IPv4 header checksum does not verify (RFC 791 §3.1). */
  | "bad-checksum"
  /** The destination is neither multicast nor a broadcast address (or it is IGMP). */
  | "not-multicast"
  /** TTL 0: no link may carry it. */
  | "ttl-expired"
  /** The source is not an address of the member that sent it (not in its allowed IPs). */
  | "spoofed-source";

const IPV4_HEADER_MIN_BYTES = 20;
const IPV6_HEADER_BYTES = 40;
const IPV4_TTL_OFFSET = 8;
const IPV4_PROTOCOL_OFFSET = 9;
const IPV4_SOURCE_OFFSET = 12;
const IPV4_DESTINATION_OFFSET = 16;
const IPV6_DESTINATION_OFFSET = 24;
const IGMP_PROTOCOL = 2;

/**
 * Classifies a packet from the Tun by its destination.
 *
 * @param packet An IP packet as the Tun gave it.
 * @param broadcasts Directed broadcast addresses (4 bytes each) that count as broadcast.
 * @returns What the packet is; "other" for unicast and for what is too short to tell.
 *
 * @example Classifying a datagram to a group
 * ```ts
 * classifyMulticast(packetTo239_1_2_3, []); // "multicast"
 * ```
 */
export function classifyMulticast(
  packet: Uint8Array,
  broadcasts: readonly Uint8Array[],
): MulticastKind {
  const version = packet.length > 0 ? packet[0]! >> 4 : 0;
  if (version === 6) {
    return packet.length >= IPV6_HEADER_BYTES && packet[IPV6_DESTINATION_OFFSET] === 0xff
      ? "ipv6-multicast"
      : "other";
  }
  if (version !== 4 || packet.length < IPV4_HEADER_MIN_BYTES) return "other";
  const first = packet[IPV4_DESTINATION_OFFSET]!;
  if (first >> 4 === 0xe) {
    return packet[IPV4_PROTOCOL_OFFSET] === IGMP_PROTOCOL ? "igmp" : "multicast";
  }
  return isBroadcast(
    packet.subarray(IPV4_DESTINATION_OFFSET, IPV4_DESTINATION_OFFSET + 4),
    broadcasts,
  )
    ? "broadcast"
    : "other";
}

/**
 * Checks an IPv4 multicast or broadcast packet a member sent before it goes to our Tun:
 * a well-formed header with a valid checksum, a multicast or broadcast destination, TTL
 * at least 1, and a source inside the sender's own prefixes (so that no member speaks for
 * another's addresses through multicast).
 *
 * @param packet The packet as it arrived.
 * @param senderPrefixes The allowed IPs of the member it came from.
 * @param broadcasts Directed broadcast addresses that count as broadcast.
 * @returns undefined when the packet may be written to the Tun, else why not.
 *
 * @example Refusing a forged source
 * ```ts
 * checkMulticast(packetFrom10_40_0_9, [parsePrefix("10.32.0.0/14")!], []); // "spoofed-source"
 * ```
 */
export function checkMulticast(
  packet: Uint8Array,
  senderPrefixes: readonly IpPrefix[],
  broadcasts: readonly Uint8Array[],
): MulticastRejection | undefined {
  if (packet.length < IPV4_HEADER_MIN_BYTES || packet[0]! >> 4 !== 4) return "malformed";
  const headerBytes = (packet[0]! & 0x0f) * 4;
  if (headerBytes < IPV4_HEADER_MIN_BYTES || headerBytes > packet.length) return "malformed";
  const totalLength = (packet[2]! << 8) | packet[3]!;
  if (totalLength !== packet.length) return "malformed";
  if (internetChecksum(packet.subarray(0, headerBytes)) !== 0) return "bad-checksum";
  const kind = classifyMulticast(packet, broadcasts);
  if (kind !== "multicast" && kind !== "broadcast") return "not-multicast";
  if (packet[IPV4_TTL_OFFSET] === 0) return "ttl-expired";
  const source = packet.subarray(IPV4_SOURCE_OFFSET, IPV4_SOURCE_OFFSET + IPV4_BYTES);
  if (!senderPrefixes.some((prefix) => prefixContains(prefix, source))) return "spoofed-source";
  return undefined;
}

/** The TTL of an IPv4 packet (undefined when it is shorter than a header). */
export function ipv4Ttl(packet: Uint8Array): number | undefined {
  return packet.length >= IPV4_HEADER_MIN_BYTES ? packet[IPV4_TTL_OFFSET] : undefined;
}

/**
 * The directed broadcast address of an IPv4 prefix: its host bits all ones (RFC 919).
 * Undefined for IPv6 and for /31 and /32, which have none (RFC 3021).
 *
 * @example
 * ```ts
 * directedBroadcast(parsePrefix("10.32.0.0/12")!); // 10.47.255.255 as bytes
 * ```
 */
export function directedBroadcast(prefix: IpPrefix): Uint8Array | undefined {
  if (prefix.address.length !== IPV4_BYTES || prefix.prefixLength > 30) return undefined;
  const out = new Uint8Array(IPV4_BYTES);
  for (let i = 0; i < IPV4_BYTES; i++) {
    const bits = Math.min(8, Math.max(0, prefix.prefixLength - i * 8));
    const hostMask = 0xff >> bits;
    out[i] = (prefix.address[i]! | hostMask) & 0xff;
  }
  return out;
}

function isBroadcast(destination: Uint8Array, broadcasts: readonly Uint8Array[]): boolean {
  if (destination.every((byte) => byte === 0xff)) return true;
  return broadcasts.some(
    (b) =>
      b.length === IPV4_BYTES &&
      b[0] === destination[0] &&
      b[1] === destination[1] &&
      b[2] === destination[2] &&
      b[3] === destination[3],
  );
}
