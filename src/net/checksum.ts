/**
 * The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of
 * the data as 16-bit big-endian words, an odd final byte padded with a zero byte. IPv4
 * headers (RFC 791 §3.1), ICMP (RFC 792) and ICMPv6 (RFC 4443 §2.3) all use it.
 *
 * Data that already carries its checksum sums to `0xffff`, so checking is computing the
 * checksum over the whole and comparing with 0 (RFC 1071 §1 (3)).
 */

/**
 * The ones' complement sum of `data`, folded to 16 bits and not complemented, added to
 * `initial` (an earlier sum, such as a pseudo-header's). Only the last piece of a chain
 * may have an odd length: RFC 1071 pads at the very end, not between pieces.
 *
 * @example
 * ```ts
 * const pseudo = onesComplementSum(pseudoHeader);
 * const checksum = internetChecksum(message, pseudo);
 * ```
 */
export function onesComplementSum(data: Uint8Array, initial = 0): number {
  // Four bytes at a time: a 32-bit big-endian word is hi * 2^16 + lo, and 2^16 ≡ 1 in
  // ones' complement arithmetic, so summing 32-bit words and folding at the end gives the
  // same 16-bit sum. At most 2^14 words of under 2^32: far below 2^53, no carry is lost.
  const length = data.length;
  const view = new DataView(data.buffer, data.byteOffset, length);
  let sum = initial;
  let i = 0;
  for (const end = length - 3; i < end; i += 4) sum += view.getUint32(i);
  if (i + 1 < length) {
    sum += view.getUint16(i);
    i += 2;
  }
  if (i < length) sum += data[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/**
 * The checksum to write into a header whose checksum field is zero, or 0 when `data`
 * already carries a correct one. `initial` continues a sum from `onesComplementSum`.
 *
 * @example
 * ```ts
 * const header = packet.subarray(0, 20);
 * internetChecksum(header) === 0; // the IPv4 header checksum is correct
 * ```
 */
export function internetChecksum(data: Uint8Array, initial = 0): number {
  return ~onesComplementSum(data, initial) & 0xffff;
}
