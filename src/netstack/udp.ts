/**
 * UDP (RFC 768) datagrams: decode with the length field honoured and the checksum checked
 * over the pseudo-header, encode with the checksum filled in. Over IPv4 a zero checksum
 * means "none" and is accepted; over IPv6 it is refused (RFC 8200 §8.1).
 */
import { IPV6_BYTES } from "../net/ip.ts";
import { upperLayerChecksum } from "../net/pseudo-header.ts";
import { PROTOCOL_UDP, UDP_HEADER_BYTES } from "./constants.ts";
import { type DecodeError, decodeError } from "./decode-error.ts";

const CHECKSUM_OFFSET = 6;
const MAX_UDP_BYTES = 0xffff;

export interface UdpDatagram {
  readonly sourcePort: number;
  readonly destinationPort: number;
  /** The data after the header up to the length field; a view when decoded. */
  readonly payload: Uint8Array;
}

/**
 * The UDP datagram in `bytes` (an IP payload) between `source` and `destination` (both 4
 * or both 16 bytes), or why not: "truncated", "bad-length", "bad-checksum". Never throws
 * for any bytes.
 *
 * @example
 * ```ts
 * const datagram = decodeUdp(ip.payload, ip.source, ip.destination);
 * ```
 */
export function decodeUdp(
  bytes: Uint8Array,
  source: Uint8Array,
  destination: Uint8Array,
): UdpDatagram | DecodeError {
  if (bytes.length < UDP_HEADER_BYTES) return decodeError("truncated");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const length = view.getUint16(4);
  if (length < UDP_HEADER_BYTES || length > bytes.length) return decodeError("bad-length");
  const datagram = bytes.subarray(0, length);
  const checksum = view.getUint16(CHECKSUM_OFFSET);
  if (checksum === 0) {
    if (source.length === IPV6_BYTES) return decodeError("bad-checksum");
  } else if (upperLayerChecksum(datagram, source, destination, PROTOCOL_UDP) !== 0) {
    return decodeError("bad-checksum");
  }
  return {
    sourcePort: view.getUint16(0),
    destinationPort: view.getUint16(2),
    payload: datagram.subarray(UDP_HEADER_BYTES),
  };
}

/**
 * The bytes of `datagram` from `source` to `destination`, checksum included (a computed
 * 0 is sent as 0xffff, RFC 768). Throws `RangeError` for a datagram over 65535 bytes.
 *
 * @example
 * ```ts
 * const udp = encodeUdp({ sourcePort: 5353, destinationPort: 53, payload }, source, destination);
 * ```
 */
export function encodeUdp(
  datagram: UdpDatagram,
  source: Uint8Array,
  destination: Uint8Array,
): Uint8Array {
  const length = UDP_HEADER_BYTES + datagram.payload.length;
  if (length > MAX_UDP_BYTES) {
    throw new RangeError(`Expected a UDP datagram of at most 65535 bytes, got ${length}`);
  }
  const bytes = new Uint8Array(length);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, datagram.sourcePort);
  view.setUint16(2, datagram.destinationPort);
  view.setUint16(4, length);
  bytes.set(datagram.payload, UDP_HEADER_BYTES);
  const checksum = upperLayerChecksum(bytes, source, destination, PROTOCOL_UDP);
  view.setUint16(CHECKSUM_OFFSET, checksum === 0 ? 0xffff : checksum);
  return bytes;
}
