/**
 * Ring ranges as IP prefixes: the packet path routes by prefix (the tunnel's allowed-IPs
 * trie), while the ring hands out arbitrary [start, end) ranges. Any range is the union of
 * at most 2 x 32 aligned blocks, and donations hand out aligned blocks, so in practice a
 * peer's ranges are a handful of prefixes.
 */
import type { IpPrefix } from "../net/ip.ts";
import { type AddressRange, addressToBytes, largestAlignedBlock } from "./address.ts";

/** The fewest prefixes that cover exactly [start, end), in address order. */
export function rangeToPrefixes(range: AddressRange): IpPrefix[] {
  const prefixes: IpPrefix[] = [];
  let start = range.start;
  while (start < range.end) {
    // The largest block aligned at `start` that fits; `largestAlignedBlock` picks the
    // highest one, so ask it about [start, start + size) with the alignment of `start`.
    const alignment = start === 0 ? 2 ** 32 : 2 ** countTrailingZeros(start);
    const size = Math.min(alignment, 2 ** Math.floor(Math.log2(range.end - start)));
    const block = largestAlignedBlock(start, start + size)!;
    prefixes.push({
      address: addressToBytes(block.start),
      prefixLength: 32 - Math.log2(block.end - block.start),
    });
    start = block.end;
  }
  return prefixes;
}

/** Prefixes covering every range, merged where ranges touch. */
export function rangesToPrefixes(ranges: readonly AddressRange[]): IpPrefix[] {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  const merged: AddressRange[] = [];
  for (const range of sorted) {
    const last = merged.at(-1);
    if (last !== undefined && last.end >= range.start) {
      merged[merged.length - 1] = { start: last.start, end: Math.max(last.end, range.end) };
    } else merged.push(range);
  }
  return merged.flatMap(rangeToPrefixes);
}

function countTrailingZeros(value: number): number {
  let zeros = 0;
  while (zeros < 32 && Math.floor(value / 2 ** zeros) % 2 === 0) zeros++;
  return zeros;
}
