/**
 * IPv6 headers (RFC 8200 §3) for the userspace stack: decode, walking the extension
 * headers a host may meet before its upper layer (hop-by-hop options, routing,
 * destination options, fragment; §4), and encode a bare header.
 *
 * Fragment headers are recognised, not reassembled: `decodeIpv6` reports them in
 * `fragment` and the netstack drops fragments (counted as "fragment"). An atomic fragment
 * (offset 0, no More Fragments, RFC 6946) is an ordinary packet and reports none.
 *
 * A routing header with segments left is refused: we are an end host and do not forward
 * (RFC 8200 §4.4), so the packet is not yet at its final destination. With none left, the
 * header's destination is the final one the pseudo-header needs (RFC 8200 §8.1).
 */
import { IPV6_BYTES } from "../net/ip.ts";
import {
  DEFAULT_HOP_LIMIT,
  IPV6_DESTINATION_OPTIONS,
  IPV6_FRAGMENT,
  IPV6_HEADER_BYTES,
  IPV6_HOP_BY_HOP,
  IPV6_ROUTING,
} from "./constants.ts";
import { type DecodeError, decodeError } from "./decode-error.ts";

const VERSION = 6;
const EXTENSION_UNIT_BYTES = 8;
const FRAGMENT_HEADER_BYTES = 8;
const ROUTING_SEGMENTS_LEFT_OFFSET = 3;
// RFC 8200 §4.2: options in hop-by-hop and destination options headers.
const OPTION_PAD1 = 0;
const OPTION_PADN = 1;
/** The two high bits of an option type: what to do when it is not recognised. */
const OPTION_ACTION_MASK = 0xc0;
const MAX_PAYLOAD_BYTES = 0xffff;

/** The fields of an IPv6 Fragment header (RFC 8200 §4.5). */
export interface Ipv6Fragment {
  readonly identification: number;
  readonly offsetBytes: number;
  readonly moreFragments: boolean;
}

/** One extension header as walked: its type (the next header that named it) and bytes. */
export interface Ipv6ExtensionHeader {
  readonly type: number;
  readonly bytes: Uint8Array;
}

export interface Ipv6Packet {
  readonly trafficClass: number;
  readonly flowLabel: number;
  readonly hopLimit: number;
  /** A view into the packet. */
  readonly source: Uint8Array;
  /** A view into the packet. */
  readonly destination: Uint8Array;
  /** The extension headers walked, in order: next header number and bytes (a view). */
  readonly extensionHeaders: readonly Ipv6ExtensionHeader[];
  /** The upper layer's next header number, after the extension headers walked. */
  readonly protocol: number;
  /** The upper-layer bytes (of this fragment, for a fragment); a view. */
  readonly payload: Uint8Array;
  /** Set only for a real fragment: a non-zero offset or More Fragments. */
  readonly fragment?: Ipv6Fragment;
}

/** What `encodeIpv6` writes; omitted fields take the defaults named. */
export interface Ipv6HeaderFields {
  readonly source: Uint8Array;
  readonly destination: Uint8Array;
  /** The next header: the upper layer's protocol number. */
  readonly protocol: number;
  /** 64 by default. */
  readonly hopLimit?: number;
  /** 0 by default. */
  readonly trafficClass?: number;
  /** 0 by default. */
  readonly flowLabel?: number;
}

/**
 * The IPv6 packet in `bytes`, or why not: "truncated", "not-ipv6", "bad-payload-length",
 * "bad-extension-header" (cut short, or hop-by-hop other than first, RFC 8200 §4.1),
 * "routing-segments-left" (a routing header that still has hops to visit),
 * "bad-option" (hop-by-hop or destination options that do not parse) and
 * "unrecognized-option" (an option we do not know whose type asks for the packet to be
 * discarded, RFC 8200 §4.2; no Parameter Problem is sent back).
 * Bytes past the payload length (link padding) are ignored. Never throws for any bytes.
 *
 * @example
 * ```ts
 * const packet = decodeIpv6(bytes);
 * if (!isDecodeError(packet) && packet.protocol === PROTOCOL_ICMPV6) handle(packet.payload);
 * ```
 */
export function decodeIpv6(bytes: Uint8Array): Ipv6Packet | DecodeError {
  if (bytes.length < IPV6_HEADER_BYTES) return decodeError("truncated");
  if (bytes[0]! >> 4 !== VERSION) return decodeError("not-ipv6");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const totalBytes = IPV6_HEADER_BYTES + view.getUint16(4);
  if (totalBytes > bytes.length) return decodeError("bad-payload-length");
  const firstWord = view.getUint32(0);
  let protocol = bytes[6]!;
  let offset = IPV6_HEADER_BYTES;
  let fragment: Ipv6Fragment | undefined;
  const extensionHeaders: Ipv6ExtensionHeader[] = [];
  for (;;) {
    let length: number;
    if (
      protocol === IPV6_HOP_BY_HOP ||
      protocol === IPV6_ROUTING ||
      protocol === IPV6_DESTINATION_OPTIONS
    ) {
      if (protocol === IPV6_HOP_BY_HOP && offset !== IPV6_HEADER_BYTES) {
        return decodeError("bad-extension-header");
      }
      if (offset + 2 > totalBytes) return decodeError("bad-extension-header");
      length = (bytes[offset + 1]! + 1) * EXTENSION_UNIT_BYTES;
      if (protocol === IPV6_ROUTING && offset + ROUTING_SEGMENTS_LEFT_OFFSET < totalBytes) {
        if (bytes[offset + ROUTING_SEGMENTS_LEFT_OFFSET] !== 0) {
          return decodeError("routing-segments-left");
        }
      }
    } else if (protocol === IPV6_FRAGMENT) {
      if (offset + FRAGMENT_HEADER_BYTES > totalBytes) return decodeError("bad-extension-header");
      const offsetAndFlags = view.getUint16(offset + 2);
      const offsetBytes = offsetAndFlags & ~7;
      const moreFragments = (offsetAndFlags & 1) !== 0;
      if (offsetBytes !== 0 || moreFragments) {
        fragment = { identification: view.getUint32(offset + 4), offsetBytes, moreFragments };
      }
      length = FRAGMENT_HEADER_BYTES;
    } else {
      break;
    }
    if (offset + length > totalBytes) return decodeError("bad-extension-header");
    const header = bytes.subarray(offset, offset + length);
    if (protocol === IPV6_HOP_BY_HOP || protocol === IPV6_DESTINATION_OPTIONS) {
      const refusal = checkOptions(header.subarray(2));
      if (refusal !== undefined) return refusal;
    }
    extensionHeaders.push({ type: protocol, bytes: header });
    protocol = bytes[offset]!;
    offset += length;
    // A non-first fragment's next header names a layer whose header is elsewhere.
    if (fragment !== undefined) break;
  }
  const packet: Ipv6Packet = {
    trafficClass: (firstWord >>> 20) & 0xff,
    flowLabel: firstWord & 0xfffff,
    hopLimit: bytes[7]!,
    source: bytes.subarray(8, 8 + IPV6_BYTES),
    destination: bytes.subarray(24, 24 + IPV6_BYTES),
    extensionHeaders,
    protocol,
    payload: bytes.subarray(offset, totalBytes),
  };
  return fragment === undefined ? packet : { ...packet, fragment };
}

/**
 * Refuses options of a hop-by-hop or destination options header (RFC 8200 §4.2) that do
 * not parse, or that we do not know and whose two high bits of type say "discard". Only
 * Pad1 and PadN are known: a host that reads none of the others may skip only those
 * whose type starts with 00.
 */
function checkOptions(options: Uint8Array): DecodeError | undefined {
  let at = 0;
  while (at < options.length) {
    const type = options[at]!;
    if (type === OPTION_PAD1) {
      at++;
      continue;
    }
    if (at + 2 > options.length) return decodeError("bad-option");
    const end = at + 2 + options[at + 1]!;
    if (end > options.length) return decodeError("bad-option");
    if (type !== OPTION_PADN && (type & OPTION_ACTION_MASK) !== 0) {
      return decodeError("unrecognized-option");
    }
    at = end;
  }
  return undefined;
}

/**
 * A 40-byte IPv6 header followed by `payload`, no extension headers. Throws `RangeError`
 * for addresses that are not 16 bytes or a payload over 65535 bytes (no jumbograms).
 *
 * @example
 * ```ts
 * const packet = encodeIpv6({ source, destination, protocol: PROTOCOL_UDP }, udp);
 * ```
 */
export function encodeIpv6(fields: Ipv6HeaderFields, payload: Uint8Array): Uint8Array {
  const packet = new Uint8Array(IPV6_HEADER_BYTES + payload.length);
  writeIpv6Header(packet, fields, payload.length);
  packet.set(payload, IPV6_HEADER_BYTES);
  return packet;
}

/**
 * Writes the 40-byte header of an IPv6 packet carrying `payloadBytes` into the start of
 * `packet`, for a caller that lays the payload out after it itself. Throws `RangeError`
 * like `encodeIpv6`.
 */
export function writeIpv6Header(
  packet: Uint8Array,
  fields: Ipv6HeaderFields,
  payloadBytes: number,
): void {
  assertAddress(fields.source, "source");
  assertAddress(fields.destination, "destination");
  if (payloadBytes > MAX_PAYLOAD_BYTES) {
    throw new RangeError(`Expected an IPv6 payload of at most 65535 bytes, got ${payloadBytes}`);
  }
  const view = new DataView(packet.buffer, packet.byteOffset, IPV6_HEADER_BYTES);
  const trafficClass = fields.trafficClass ?? 0;
  const flowLabel = fields.flowLabel ?? 0;
  view.setUint32(
    0,
    ((VERSION << 28) | ((trafficClass & 0xff) << 20) | (flowLabel & 0xfffff)) >>> 0,
  );
  view.setUint16(4, payloadBytes);
  packet[6] = fields.protocol;
  packet[7] = fields.hopLimit ?? DEFAULT_HOP_LIMIT;
  packet.set(fields.source, 8);
  packet.set(fields.destination, 24);
}

function assertAddress(address: Uint8Array, name: string): void {
  if (!(address instanceof Uint8Array) || address.length !== IPV6_BYTES) {
    throw new RangeError(`Expected "${name}" to be 16 bytes`);
  }
}
