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
  // Carries are folded once at the end: 2^16 words of at most 0xffff stay far below 2^53.
  let sum = initial;
  const evenLength = data.length & ~1;
  for (let i = 0; i < evenLength; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (evenLength < data.length) sum += data[evenLength]! << 8;
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
