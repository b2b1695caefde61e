/**
 * IPv4 address arithmetic for IPAM: an address is an unsigned 32-bit integer and a range
 * is the half-open interval [start, end) of them, so sizes and splits are plain number
 * arithmetic (exact: 2^32 is far below 2^53). Parsing and formatting go through
 * `src/net/ip.ts`, so IPAM reads exactly what the tunnel's configuration reads.
 *
 * IPv6 ULA ranges are not supported yet. What they would take: the ring, the space and
 * donation counting offsets from the range's first address instead of addresses, with the
 * range carrying its 16-byte base. Offsets stay exact numbers (below 2^53) for any IPv6
 * prefix of /76 or longer, such as a /80 inside a ULA /48 (2^48 addresses); a whole /64
 * would need bigint or (high, low) offsets in every comparison, `ownerOf` on the packet
 * path included. Then: parsing and formatting 16-byte addresses here (`src/net/ip.ts`
 * already reads them); the range as base bytes plus prefix length in ring items and the
 * saved state (new IPAM_WIRE_VERSION and IPAM_STATE_VERSION); only the first address
 * reserved (IPv6 has no broadcast); ranges as IPv6 prefixes for the routes (the tunnel's
 * allowed IPs already route IPv6); AAAA records for the addresses in DNS.
 */
import { formatIp, IPV4_BYTES, parseIp, parsePrefix } from "../net/ip.ts";

/** An IPv4 address as an unsigned 32-bit integer (10.0.0.1 is 0x0a000001). */
export type Address = number;

/** The addresses from `start` up to but excluding `end`; `end` may be 2^32. */
export interface AddressRange {
  readonly start: Address;
  readonly end: number;
}

/** One more than the largest IPv4 address. */
export const IPV4_SPACE = 2 ** 32;

/** A parsed range, or why the text is not one. */
export type RangeParse =
  | { readonly ok: true; readonly range: AddressRange }
  | { readonly ok: false; readonly error: string };

/**
 * The range of an IPv4 prefix such as `10.40.0.0/16`. Host bits must be zero (a mesh
 * range written with them is most likely a typo), and the prefix must hold at least 4
 * addresses, since the first and last are never handed out.
 *
 * @example
 * ```ts
 * parseRange("10.40.0.0/16"); // { ok: true, range: { start: 170393600, end: 170459136 } }
 * parseRange("fd00::/64"); // { ok: false, error: "...IPv6 ranges are not supported yet" }
 * ```
 */
export function parseRange(text: string): RangeParse {
  const prefix = parsePrefix(text);
  if (prefix === undefined || !text.includes("/")) {
    return { ok: false, error: `Expected an IPv4 prefix such as "10.40.0.0/16", got "${text}"` };
  }
  if (prefix.address.length !== IPV4_BYTES) {
    return { ok: false, error: `Cannot use "${text}": IPv6 ranges are not supported yet` };
  }
  const size = 2 ** (32 - prefix.prefixLength);
  const start = addressFromBytes(prefix.address);
  if (start % size !== 0) {
    return { ok: false, error: `Expected "${text}" to have zero host bits` };
  }
  if (size < 4) {
    return { ok: false, error: `Expected a prefix of /30 or shorter, got "${text}"` };
  }
  return { ok: true, range: { start, end: start + size } };
}

/** `a.b.c.d/n` when the range is one prefix, else `first-last` (both inclusive). */
export function formatRange(range: AddressRange): string {
  const size = range.end - range.start;
  const bits = Math.log2(size);
  if (Number.isInteger(bits) && range.start % size === 0) {
    return `${formatAddress(range.start)}/${32 - bits}`;
  }
  return `${formatAddress(range.start)}-${formatAddress(range.end - 1)}`;
}

/** An address from dotted-quad text, or `undefined`. */
export function parseAddress(text: string): Address | undefined {
  const bytes = parseIp(text);
  return bytes?.length === IPV4_BYTES ? addressFromBytes(bytes) : undefined;
}

/** Dotted-quad text of an address. */
export function formatAddress(address: Address): string {
  return formatIp(addressToBytes(address));
}

/** The integer of 4 bytes in network order (as an IPv4 header carries them). */
export function addressFromBytes(bytes: Uint8Array): Address {
  if (bytes.length !== IPV4_BYTES) {
    throw new RangeError(`Expected "bytes" to be 4 bytes, got ${bytes.length}`);
  }
  return ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
}

/** 4 bytes in network order. */
export function addressToBytes(address: Address): Uint8Array {
  if (!isAddress(address)) {
    throw new RangeError(`Expected "address" to be an integer from 0 to 2^32-1, got ${address}`);
  }
  return new Uint8Array([
    address >>> 24,
    (address >>> 16) & 0xff,
    (address >>> 8) & 0xff,
    address & 0xff,
  ]);
}

/** True for an integer that is an IPv4 address. */
export function isAddress(value: unknown): value is Address {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value < IPV4_SPACE;
}

/** How many addresses the range holds. */
export function rangeSize(range: AddressRange): number {
  return range.end - range.start;
}

/** True when `address` lies in `range`. */
export function rangeContains(range: AddressRange, address: Address): boolean {
  return address >= range.start && address < range.end;
}

/**
 * The largest block of a power-of-two size aligned to that size (as a prefix is) that
 * fits in [start, end), the highest one among equals; undefined for an empty range.
 * Donations hand out such blocks so the ring keeps few tokens and ranges read as prefixes.
 */
export function largestAlignedBlock(start: Address, end: number): AddressRange | undefined {
  if (end <= start) return undefined;
  let size = 2 ** Math.floor(Math.log2(end - start));
  for (; size >= 1; size /= 2) {
    // The highest aligned block start that still fits.
    const blockStart = Math.floor((end - size) / size) * size;
    if (blockStart >= start) return { start: blockStart, end: blockStart + size };
  }
  return undefined;
}
