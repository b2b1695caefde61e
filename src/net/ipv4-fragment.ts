/**
 * IPv4 fragmentation (RFC 791 §2.3 and §3.2, "Fragmentation and Reassembly"): a datagram
 * without Don't Fragment that is larger than a path's MTU is cut into fragments that each
 * fit, as a router does, so a sender that does not do path MTU discovery still gets
 * through a tunnel with a smaller MTU. Reading and checking the IPv4 header the cutting
 * needs (RFC 791 §3.1) lives here too, and the ICMP error builder reuses it.
 *
 * ```
 *  original:  | header (all options) |          data, N bytes             |
 *  fragment 1 | header (all options) | data[0, a)   | MF=1, offset 0
 *  fragment 2 | header (copied only) | data[a, b)   | MF=1, offset a/8
 *  last       | header (copied only) | data[b, N)   | MF=original's, offset b/8
 * ```
 *
 * Each fragment but the last carries a multiple of 8 data bytes (offsets count 8-byte
 * units); only options whose "copied" flag is set go into fragments after the first
 * (RFC 791 §3.1, "Options"), so later headers may be shorter and carry more data. A
 * fragment of a fragment keeps its offsets relative to the whole datagram.
 *
 * Decoders never throw on packet bytes: a packet that is not a well-formed IPv4 datagram
 * gives `undefined` or a refusal. Wrong argument types throw, as programmer errors.
 */
import { internetChecksum } from "./checksum.ts";

// RFC 791 §3.1, the header's layout.
/** The version field of an IPv4 header. */
export const IPV4_VERSION = 4;
/** A header without options. */
export const IPV4_MIN_HEADER_BYTES = 20;
/** The largest header: 15 words, 40 bytes of options. */
export const IPV4_MAX_HEADER_BYTES = 60;
/** The largest datagram the total length field can state, and so the largest reassembly. */
export const IPV4_MAX_DATAGRAM_BYTES = 0xffff;
/**
 * The smallest MTU: "Every internet module must be able to forward a datagram of 68
 * octets without further fragmentation" (RFC 791 §3.2): a 60-byte header and 8 data bytes.
 */
export const IPV4_MIN_MTU_BYTES = 68;
/** Fragment offsets count units of 8 bytes (RFC 791 §3.1, "Fragment Offset"). */
export const IPV4_FRAGMENT_UNIT_BYTES = 8;

// Field offsets in bytes, and the flags in the 16 bits at IPV4_FLAGS_AND_OFFSET_OFFSET.
export const IPV4_TYPE_OF_SERVICE_OFFSET = 1;
export const IPV4_TOTAL_LENGTH_OFFSET = 2;
export const IPV4_IDENTIFICATION_OFFSET = 4;
export const IPV4_FLAGS_AND_OFFSET_OFFSET = 6;
export const IPV4_TTL_OFFSET = 8;
export const IPV4_PROTOCOL_OFFSET = 9;
export const IPV4_CHECKSUM_OFFSET = 10;
export const IPV4_SOURCE_OFFSET = 12;
export const IPV4_DESTINATION_OFFSET = 16;
export const IPV4_FLAG_RESERVED = 0x8000;
export const IPV4_FLAG_DONT_FRAGMENT = 0x4000;
export const IPV4_FLAG_MORE_FRAGMENTS = 0x2000;
const FRAGMENT_OFFSET_MASK = 0x1fff;
const ADDRESS_BYTES = 4;

// RFC 791 §3.1, "Options": type octet = copied flag (1 bit), class (2), number (5).
const OPTION_END_OF_LIST = 0;
const OPTION_NO_OPERATION = 1;
const OPTION_COPIED_FLAG = 0x80;
const OPTION_MIN_LENGTH = 2;

/** The fields of an IPv4 header that fragmentation and ICMP errors need. */
export interface Ipv4Header {
  /** Internet header length in bytes: 20 to 60, options included. */
  readonly headerBytes: number;
  /** The total length field: header and data, at most the packet's length. */
  readonly totalBytes: number;
  readonly identification: number;
  readonly dontFragment: boolean;
  readonly moreFragments: boolean;
  /** Where this fragment's data starts in the whole datagram (the field times 8). */
  readonly fragmentOffsetBytes: number;
  readonly timeToLive: number;
  readonly protocol: number;
  /** A view into the packet. */
  readonly source: Uint8Array;
  /** A view into the packet. */
  readonly destination: Uint8Array;
  /** The options area, padding included; a view into the packet, empty when there are none. */
  readonly options: Uint8Array;
}

/**
 * The header of a well-formed IPv4 packet, or `undefined`. Well-formed means: version 4,
 * a header length of 20 to 60 bytes within the packet, a total length from the header
 * length to the packet's length (bytes past it, such as link padding, are ignored), a
 * correct header checksum (RFC 1812 §5.2.2 drops the others), options that parse, and
 * fragment fields that make sense: the data ends by byte 65535 of the datagram and a
 * fragment with More Fragments carries a multiple of 8 bytes (RFC 791 §3.2).
 *
 * @example
 * ```ts
 * const header = readIpv4Header(packet);
 * if (header?.protocol === 17) handleUdp(packet.subarray(header.headerBytes, header.totalBytes));
 * ```
 */
export function readIpv4Header(packet: Uint8Array): Ipv4Header | undefined {
  const header = parseIpv4Header(packet);
  return "error" in header ? undefined : header;
}

/** Why a packet is not a well-formed IPv4 packet (the reasons `parseIpv4Header` gives). */
export type Ipv4HeaderError =
  | "truncated"
  | "not-ipv4"
  | "bad-header-length"
  | "bad-total-length"
  | "bad-checksum"
  | "bad-options"
  | "bad-fragment";

/**
 * `readIpv4Header` that says why a packet is refused, for callers that count drops by
 * reason (the userspace stack). Never throws for any bytes.
 */
export function parseIpv4Header(
  packet: Uint8Array,
): Ipv4Header | { readonly error: Ipv4HeaderError } {
  assertBytes(packet, "packet");
  if (packet.length < IPV4_MIN_HEADER_BYTES) return { error: "truncated" };
  if (packet[0]! >> 4 !== IPV4_VERSION) return { error: "not-ipv4" };
  const headerBytes = (packet[0]! & 0x0f) * 4;
  if (headerBytes < IPV4_MIN_HEADER_BYTES || headerBytes > packet.length)
    return { error: "bad-header-length" };
  const view = new DataView(packet.buffer, packet.byteOffset, headerBytes);
  const totalBytes = view.getUint16(IPV4_TOTAL_LENGTH_OFFSET);
  if (totalBytes < headerBytes || totalBytes > packet.length) return { error: "bad-total-length" };
  if (internetChecksum(packet.subarray(0, headerBytes)) !== 0) return { error: "bad-checksum" };
  const options = packet.subarray(IPV4_MIN_HEADER_BYTES, headerBytes);
  // Most packets have none: no walk, no allocation.
  if (options.length > 0 && copiedOptions(options) === undefined) return { error: "bad-options" };

  const flagsAndOffset = view.getUint16(IPV4_FLAGS_AND_OFFSET_OFFSET);
  const moreFragments = (flagsAndOffset & IPV4_FLAG_MORE_FRAGMENTS) !== 0;
  const fragmentOffsetBytes = (flagsAndOffset & FRAGMENT_OFFSET_MASK) * IPV4_FRAGMENT_UNIT_BYTES;
  const dataBytes = totalBytes - headerBytes;
  if (fragmentOffsetBytes + dataBytes > IPV4_MAX_DATAGRAM_BYTES) return { error: "bad-fragment" };
  if (moreFragments && dataBytes % IPV4_FRAGMENT_UNIT_BYTES !== 0) return { error: "bad-fragment" };

  return {
    headerBytes,
    totalBytes,
    identification: view.getUint16(IPV4_IDENTIFICATION_OFFSET),
    dontFragment: (flagsAndOffset & IPV4_FLAG_DONT_FRAGMENT) !== 0,
    moreFragments,
    fragmentOffsetBytes,
    timeToLive: packet[IPV4_TTL_OFFSET]!,
    protocol: packet[IPV4_PROTOCOL_OFFSET]!,
    source: packet.subarray(IPV4_SOURCE_OFFSET, IPV4_SOURCE_OFFSET + ADDRESS_BYTES),
    destination: packet.subarray(IPV4_DESTINATION_OFFSET, IPV4_DESTINATION_OFFSET + ADDRESS_BYTES),
    options,
  };
}

/**
 * The options whose copied flag is set, in order and unpadded, or `undefined` when the
 * options area does not parse: a length below 2 or running past the header. End of
 * Option List stops the walk (what follows is padding); No Operation is one byte.
 */
function copiedOptions(options: Uint8Array): Uint8Array | undefined {
  const copied: number[] = [];
  let at = 0;
  while (at < options.length) {
    const type = options[at]!;
    if (type === OPTION_END_OF_LIST) break;
    if (type === OPTION_NO_OPERATION) {
      at++;
      continue;
    }
    if (at + 1 >= options.length) return undefined;
    const length = options[at + 1]!;
    if (length < OPTION_MIN_LENGTH || at + length > options.length) return undefined;
    if (type & OPTION_COPIED_FLAG) copied.push(...options.subarray(at, at + length));
    at += length;
  }
  return Uint8Array.from(copied);
}

/** Why `fragmentIpv4` did not cut a packet. */
export type FragmentRefusal =
  /** Not a well-formed IPv4 packet (see `readIpv4Header`). */
  | "malformed"
  /** Too big and Don't Fragment is set: the caller owes the sender an ICMP frag-needed. */
  | "dont-fragment"
  /** The MTU is below 68 bytes, which no IPv4 path may have (RFC 791 §3.2). */
  | "mtu-too-small";

/** Fragments that each fit the MTU, or why there are none. */
export type FragmentResult =
  | { readonly ok: true; readonly fragments: Uint8Array[] }
  | { readonly ok: false; readonly reason: FragmentRefusal };

/**
 * `packet` cut into IPv4 fragments of at most `mtuBytes` each, in order of offset, per
 * RFC 791 §3.2. A packet that fits comes back alone and unchanged (a view of its first
 * total-length bytes), Don't Fragment set or not. Otherwise each fragment gets the
 * original's identification, TTL, protocol, addresses, type of service and reserved flag,
 * its own total length, More Fragments (set on all but the last piece, which keeps the
 * original's, so a fragment of a fragment stays one), its offset in 8-byte units and a
 * new header checksum. The first fragment keeps every option; later ones only the
 * options marked copied, padded with zeros (End of Option List) to a 4-byte boundary.
 *
 * Refuses with a result, never an exception, for a malformed packet, for a packet too big
 * with Don't Fragment set, and for an MTU below 68. A non-integer MTU throws `RangeError`.
 *
 * @example
 * ```ts
 * const result = fragmentIpv4(packet, 1280);
 * if (result.ok) for (const fragment of result.fragments) send(fragment);
 * else if (result.reason === "dont-fragment") reply(fragmentationNeeded(packet, 1280, self));
 * ```
 */
export function fragmentIpv4(packet: Uint8Array, mtuBytes: number): FragmentResult {
  assertBytes(packet, "packet");
  if (!Number.isInteger(mtuBytes)) {
    throw new RangeError(`Expected "mtuBytes" to be an integer, got ${mtuBytes}`);
  }
  if (mtuBytes < IPV4_MIN_MTU_BYTES) return { ok: false, reason: "mtu-too-small" };
  const header = readIpv4Header(packet);
  if (header === undefined) return { ok: false, reason: "malformed" };
  if (header.totalBytes <= mtuBytes) {
    return { ok: true, fragments: [packet.subarray(0, header.totalBytes)] };
  }
  if (header.dontFragment) return { ok: false, reason: "dont-fragment" };

  const firstHeader = packet.subarray(0, header.headerBytes);
  const laterHeader = headerForLaterFragments(firstHeader, copiedOptions(header.options)!);
  const data = packet.subarray(header.headerBytes, header.totalBytes);
  const reservedFlag = (packet[IPV4_FLAGS_AND_OFFSET_OFFSET]! << 8) & IPV4_FLAG_RESERVED;
  const fragments: Uint8Array[] = [];
  for (let position = 0; position < data.length; ) {
    const fragmentHeader = position === 0 ? firstHeader : laterHeader;
    const room = mtuBytes - fragmentHeader.length;
    // With a 68-byte MTU and a 60-byte header there is still room for one 8-byte unit.
    const isLast = data.length - position <= room;
    const dataBytes = isLast ? data.length - position : room - (room % IPV4_FRAGMENT_UNIT_BYTES);
    const moreFragments = isLast ? header.moreFragments : true;
    const offsetUnits = (header.fragmentOffsetBytes + position) / IPV4_FRAGMENT_UNIT_BYTES;

    const fragment = new Uint8Array(fragmentHeader.length + dataBytes);
    fragment.set(fragmentHeader);
    fragment.set(data.subarray(position, position + dataBytes), fragmentHeader.length);
    const view = new DataView(fragment.buffer);
    view.setUint16(IPV4_TOTAL_LENGTH_OFFSET, fragment.length);
    view.setUint16(
      IPV4_FLAGS_AND_OFFSET_OFFSET,
      reservedFlag | (moreFragments ? IPV4_FLAG_MORE_FRAGMENTS : 0) | offsetUnits,
    );
    view.setUint16(IPV4_CHECKSUM_OFFSET, 0);
    view.setUint16(
      IPV4_CHECKSUM_OFFSET,
      internetChecksum(fragment.subarray(0, fragmentHeader.length)),
    );
    fragments.push(fragment);
    position += dataBytes;
  }
  return { ok: true, fragments };
}

/** The first fragment's fixed header with only `copied` options, zero-padded to whole words. */
function headerForLaterFragments(firstHeader: Uint8Array, copied: Uint8Array): Uint8Array {
  const length = IPV4_MIN_HEADER_BYTES + Math.ceil(copied.length / 4) * 4;
  const header = new Uint8Array(length);
  header.set(firstHeader.subarray(0, IPV4_MIN_HEADER_BYTES));
  header.set(copied, IPV4_MIN_HEADER_BYTES);
  header[0] = (IPV4_VERSION << 4) | (length / 4);
  return header;
}

function assertBytes(value: unknown, name: string): void {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`Expected "${name}" to be a Uint8Array, got ${typeof value}`);
  }
}
