/**
 * The Internet checksum (RFC 1071) on the netstack's hot path: the same ones' complement
 * sum as `src/net/checksum.ts`, but four bytes at a time through a DataView (a 32-bit
 * big-endian word is hi * 2^16 + lo, and 2^16 ≡ 1 in ones' complement arithmetic, so
 * summing words and folding at the end gives the same 16-bit sum), and the pseudo-header
 * summed straight from the addresses without building it in a buffer. A 1400-byte
 * segment is summed in one tight loop of 350 reads.
 */

/**
 * The ones' complement sum of `data`, folded to 16 bits and not complemented, added to
 * `initial`. Like `onesComplementSum`, only the last piece of a chain may be odd.
 */
export function sumWords(data: Uint8Array, initial = 0): number {
  const length = data.length;
  const view = new DataView(data.buffer, data.byteOffset, length);
  let sum = initial;
  let i = 0;
  // At most 2^14 words of at most 2^32 each: far below 2^53, so no carry is lost.
  const end4 = length - 3;
  for (; i < end4; i += 4) sum += view.getUint32(i);
  if (i + 1 < length) {
    sum += view.getUint16(i);
    i += 2;
  }
  if (i < length) sum += data[i]! << 8;
  return fold(sum);
}

/** Folds a sum of 16-bit and 32-bit words to 16 bits (end-around carry). */
export function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/**
 * The pseudo-header's sum (RFC 9293 §3.1 for IPv4, RFC 8200 §8.1 for IPv6) for an upper
 * layer of `upperLayerBytes` bytes; both addresses 4 or both 16 bytes (not checked).
 */
export function pseudoHeaderWords(
  source: Uint8Array,
  destination: Uint8Array,
  protocol: number,
  upperLayerBytes: number,
): number {
  let sum = protocol + upperLayerBytes;
  for (let i = 0; i < source.length; i += 2) {
    sum += ((source[i]! << 8) | source[i + 1]!) + ((destination[i]! << 8) | destination[i + 1]!);
  }
  return sum;
}
