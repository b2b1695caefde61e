/**
 * The pseudo-header that TCP (RFC 9293 §3.1), UDP (RFC 768) and ICMPv6 (RFC 4443 §2.3)
 * add to their checksum: for IPv4 (RFC 768) source, destination, zero, protocol and the
 * 16-bit upper-layer length; for IPv6 (RFC 8200 §8.1) source, destination, the 32-bit
 * upper-layer length, three zero bytes and the next header.
 */
import { internetChecksum } from "./checksum.ts";
import { IPV4_BYTES, IPV6_BYTES } from "./ip.ts";

/**
 * The ones' complement sum of the pseudo-header for an upper layer of `upperLayerBytes`
 * bytes; the address length (4 or 16) chooses the IP version. Throws `RangeError` when
 * the two addresses are not both 4 or both 16 bytes.
 *
 * @example
 * ```ts
 * const sum = pseudoHeaderSum(source, destination, 17, udp.length);
 * const ok = internetChecksum(udp, sum) === 0;
 * ```
 */
export function pseudoHeaderSum(
  source: Uint8Array,
  destination: Uint8Array,
  protocol: number,
  upperLayerBytes: number,
): number {
  if (source.length !== destination.length) {
    throw new RangeError(
      `Expected "source" and "destination" of one length, got ${source.length} and ${destination.length}`,
    );
  }
  if (source.length !== IPV4_BYTES && source.length !== IPV6_BYTES) {
    throw new RangeError(`Expected addresses of 4 or 16 bytes, got ${source.length}`);
  }
  // Summed straight from the addresses (on every TCP segment): the zero bytes add
  // nothing, and the length and protocol words are the same sum in both layouts
  // (IPv6's 32-bit length is two 16-bit words, and the sum folds them alike).
  let sum = protocol + (upperLayerBytes >>> 16) + (upperLayerBytes & 0xffff);
  for (let i = 0; i < source.length; i += 2) {
    sum += ((source[i]! << 8) | source[i + 1]!) + ((destination[i]! << 8) | destination[i + 1]!);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/**
 * The checksum of `upper` (its checksum field zero) under the pseudo-header, or 0 when
 * `upper` already carries a correct one.
 */
export function upperLayerChecksum(
  upper: Uint8Array,
  source: Uint8Array,
  destination: Uint8Array,
  protocol: number,
): number {
  return internetChecksum(upper, pseudoHeaderSum(source, destination, protocol, upper.length));
}
