/**
 * IPv4 headers (RFC 791 §3.1) for the userspace stack: decode with the header checksum
 * checked and options skipped (their length honoured), encode without options.
 *
 * `decodeIpv4` reports the fragment fields; the Netstack reassembles fragments
 * (ip-reassembly.ts, RFC 791 §3.2 and RFC 815).
 */

import { internetChecksum } from "../net/checksum.ts";
import { IPV4_BYTES } from "../net/ip.ts";
import { parseIpv4Header } from "../net/ipv4-fragment.ts";
import { DEFAULT_HOP_LIMIT, IPV4_HEADER_BYTES } from "./constants.ts";
import { type DecodeError, decodeError } from "./decode-error.ts";

const VERSION = 4;
const MAX_TOTAL_BYTES = 0xffff;
const FLAG_DONT_FRAGMENT = 0x4000;
const CHECKSUM_OFFSET = 10;

export interface Ipv4Packet {
  /** Header length in bytes, options included: 20 to 60. */
  readonly headerBytes: number;
  readonly typeOfService: number;
  readonly identification: number;
  readonly dontFragment: boolean;
  readonly moreFragments: boolean;
  /** Where this fragment's data starts in the datagram: the field times 8. */
  readonly fragmentOffsetBytes: number;
  readonly timeToLive: number;
  readonly protocol: number;
  /** A view into the packet. */
  readonly source: Uint8Array;
  /** A view into the packet. */
  readonly destination: Uint8Array;
  /** The data after the header up to the total length (link padding past it dropped); a view. */
  readonly payload: Uint8Array;
}

/** What `encodeIpv4` writes; omitted fields take the defaults named. */
export interface Ipv4HeaderFields {
  readonly source: Uint8Array;
  readonly destination: Uint8Array;
  readonly protocol: number;
  /** 64 by default. */
  readonly timeToLive?: number;
  /** 0 by default. */
  readonly typeOfService?: number;
  /** 0 by default (RFC 6864 §4.1: any value will do on an atomic datagram). */
  readonly identification?: number;
  /** True by default: we send atomic datagrams and rely on path MTU discovery. */
  readonly dontFragment?: boolean;
}

/** Is this packet a fragment (More Fragments set or a non-zero offset)? */
export function isIpv4Fragment(packet: Ipv4Packet): boolean {
  return packet.moreFragments || packet.fragmentOffsetBytes !== 0;
}

/**
 * The IPv4 packet in `bytes`, or why not: "truncated", "not-ipv4", "bad-header-length",
 * "bad-total-length", "bad-checksum", "bad-options", "bad-fragment" (`parseIpv4Header`'s
 * reasons). Never throws for any bytes.
 *
 * @example
 * ```ts
 * const packet = decodeIpv4(bytes);
 * if (!isDecodeError(packet) && packet.protocol === PROTOCOL_UDP) handle(packet.payload);
 * ```
 */
export function decodeIpv4(bytes: Uint8Array): Ipv4Packet | DecodeError {
  // One IPv4 header parser for the whole core: the one path MTU and ICMP errors use.
  const header = parseIpv4Header(bytes);
  if ("error" in header) return decodeError(header.error);
  return {
    headerBytes: header.headerBytes,
    typeOfService: bytes[1]!,
    identification: header.identification,
    dontFragment: header.dontFragment,
    moreFragments: header.moreFragments,
    fragmentOffsetBytes: header.fragmentOffsetBytes,
    timeToLive: header.timeToLive,
    protocol: header.protocol,
    source: header.source,
    destination: header.destination,
    payload: bytes.subarray(header.headerBytes, header.totalBytes),
  };
}

/**
 * A 20-byte IPv4 header with its checksum, followed by `payload`. Throws `RangeError`
 * for addresses that are not 4 bytes or a packet over 65535 bytes.
 *
 * @example
 * ```ts
 * const packet = encodeIpv4({ source, destination, protocol: PROTOCOL_UDP }, udp);
 * ```
 */
export function encodeIpv4(fields: Ipv4HeaderFields, payload: Uint8Array): Uint8Array {
  const packet = new Uint8Array(IPV4_HEADER_BYTES + payload.length);
  writeIpv4Header(packet, fields, payload.length);
  packet.set(payload, IPV4_HEADER_BYTES);
  return packet;
}

/**
 * Writes the 20-byte header of an IPv4 packet carrying `payloadBytes` into the start of
 * `packet`, checksum included, for a caller that lays the payload out after it itself.
 * Throws `RangeError` like `encodeIpv4`.
 */
export function writeIpv4Header(
  packet: Uint8Array,
  fields: Ipv4HeaderFields,
  payloadBytes: number,
): void {
  assertAddress(fields.source, "source");
  assertAddress(fields.destination, "destination");
  const totalBytes = IPV4_HEADER_BYTES + payloadBytes;
  if (totalBytes > MAX_TOTAL_BYTES) {
    throw new RangeError(`Expected an IPv4 packet of at most 65535 bytes, got ${totalBytes}`);
  }
  const view = new DataView(packet.buffer, packet.byteOffset, IPV4_HEADER_BYTES);
  packet[0] = (VERSION << 4) | (IPV4_HEADER_BYTES / 4);
  packet[1] = fields.typeOfService ?? 0;
  view.setUint16(2, totalBytes);
  view.setUint16(4, fields.identification ?? 0);
  view.setUint16(6, (fields.dontFragment ?? true) ? FLAG_DONT_FRAGMENT : 0);
  packet[8] = fields.timeToLive ?? DEFAULT_HOP_LIMIT;
  packet[9] = fields.protocol;
  view.setUint16(CHECKSUM_OFFSET, 0);
  packet.set(fields.source, 12);
  packet.set(fields.destination, 16);
  view.setUint16(CHECKSUM_OFFSET, internetChecksum(packet.subarray(0, IPV4_HEADER_BYTES)));
}

function assertAddress(address: Uint8Array, name: string): void {
  if (!(address instanceof Uint8Array) || address.length !== IPV4_BYTES) {
    throw new RangeError(`Expected "${name}" to be 4 bytes`);
  }
}
