/**
 * What a donor gives: half of its largest free stretch, as the largest aligned
 * power-of-two block in that stretch's upper half. Halving leaves the donor enough to keep
 * allocating; aligned blocks keep ring tokens few and ranges readable as prefixes; the
 * upper half, because allocation takes the lowest address, so the donor's own addresses
 * stay packed at the bottom. A block never spans two ring entries (the ring grants
 * within one entry), so free stretches are cut at entry boundaries first.
 */
import { type AddressRange, largestAlignedBlock } from "./address.ts";

/**
 * The block to donate from `free` (sorted free intervals) cut by `entries` (the donor's
 * own entries), or undefined when no stretch holds 2 addresses: a donor keeps its last one.
 *
 * @example
 * ```ts
 * chooseDonation([{ start: 0, end: 256 }], [{ start: 0, end: 256 }]); // { start: 128, end: 256 }
 * ```
 */
export function chooseDonation(
  free: readonly AddressRange[],
  entries: readonly AddressRange[],
): AddressRange | undefined {
  let largest: AddressRange | undefined;
  for (const entry of entries) {
    for (const stretch of free) {
      const start = Math.max(entry.start, stretch.start);
      const end = Math.min(entry.end, stretch.end);
      if (
        end - start >= 2 &&
        (largest === undefined || end - start > largest.end - largest.start)
      ) {
        largest = { start, end };
      }
    }
  }
  if (largest === undefined) return undefined;
  const size = largest.end - largest.start;
  return largestAlignedBlock(largest.start + Math.ceil(size / 2), largest.end);
}
