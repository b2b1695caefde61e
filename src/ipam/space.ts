/**
 * The local peer's address bookkeeping: which addresses it owns (as its ring entries say)
 * and which of those are free. Both are sets of sorted disjoint half-open intervals, so a
 * /16 owned whole is one interval and allocation takes the lowest free address at once.
 * The ring's free counts are reports made from here; this is the truth.
 */
import type { Address, AddressRange } from "./address.ts";

/**
 * Owned and free addresses of one peer. `reserved` addresses (the range's first and last)
 * are owned like any other but never free, so they are never handed out or counted free.
 */
export class Space {
  #owned: AddressRange[] = [];
  #free: AddressRange[] = [];
  readonly #reserved: ReadonlySet<Address>;

  constructor(reserved: Iterable<Address> = []) {
    this.#reserved = new Set(reserved);
  }

  /**
   * Makes `ranges` the owned set. Newly owned addresses become free (they come from a
   * donor, which gives only free space, or from seeding); addresses no longer owned leave.
   */
  setOwned(ranges: readonly AddressRange[]): void {
    const next = normalize(ranges);
    for (const added of difference(next, this.#owned)) {
      for (const part of this.#withoutReserved(added)) this.#free = union(this.#free, [part]);
    }
    this.#free = intersection(this.#free, next);
    this.#owned = next;
  }

  /** The lowest free address, now used; undefined when none is free. */
  take(): Address | undefined {
    const first = this.#free[0];
    if (first === undefined) return undefined;
    this.#free = difference(this.#free, [{ start: first.start, end: first.start + 1 }]);
    return first.start;
  }

  /** Marks a free owned address used; false when it is not owned, not free, or reserved. */
  claim(address: Address): boolean {
    if (!this.isFree(address)) return false;
    this.#free = difference(this.#free, [{ start: address, end: address + 1 }]);
    return true;
  }

  /** Frees a used owned address; false when it is not owned or already free. */
  release(address: Address): boolean {
    if (!this.isOwned(address) || this.isFree(address) || this.#reserved.has(address)) return false;
    this.#free = union(this.#free, [{ start: address, end: address + 1 }]);
    return true;
  }

  isOwned(address: Address): boolean {
    return findRange(this.#owned, address) !== undefined;
  }

  isFree(address: Address): boolean {
    return findRange(this.#free, address) !== undefined;
  }

  isReserved(address: Address): boolean {
    return this.#reserved.has(address);
  }

  /** Free addresses in [start, end). */
  freeIn(start: Address, end: number): number {
    return totalSize(intersection(this.#free, [{ start, end }]));
  }

  freeCount(): number {
    return totalSize(this.#free);
  }

  ownedCount(): number {
    return totalSize(this.#owned);
  }

  /** Free intervals, sorted (a copy). */
  freeRanges(): AddressRange[] {
    return [...this.#free];
  }

  /**
   * What a donor may give away: free addresses plus the reserved ones it owns (they are
   * reserved wherever they go), so a donation from a whole range can still be a clean half.
   */
  donatableRanges(): AddressRange[] {
    const reserved = [...this.#reserved]
      .filter((address) => this.isOwned(address))
      .map((address) => ({ start: address, end: address + 1 }));
    return union(this.#free, reserved);
  }

  ownedRanges(): AddressRange[] {
    return [...this.#owned];
  }

  #withoutReserved(range: AddressRange): AddressRange[] {
    const holes = [...this.#reserved]
      .filter((address) => address >= range.start && address < range.end)
      .map((address) => ({ start: address, end: address + 1 }));
    return difference([range], holes);
  }
}

/** Sorted, disjoint, adjacent ones joined, empty ones dropped. */
function normalize(ranges: readonly AddressRange[]): AddressRange[] {
  const sorted = ranges.filter((r) => r.end > r.start).sort((a, b) => a.start - b.start);
  const out: AddressRange[] = [];
  for (const range of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && range.start <= last.end) {
      out[out.length - 1] = { start: last.start, end: Math.max(last.end, range.end) };
    } else {
      out.push(range);
    }
  }
  return out;
}

function union(a: readonly AddressRange[], b: readonly AddressRange[]): AddressRange[] {
  return normalize([...a, ...b]);
}

/** `a` minus `b`, both normalized. */
function difference(a: readonly AddressRange[], b: readonly AddressRange[]): AddressRange[] {
  const out: AddressRange[] = [];
  for (const range of a) {
    let start = range.start;
    for (const hole of b) {
      if (hole.end <= start || hole.start >= range.end) continue;
      if (hole.start > start) out.push({ start, end: hole.start });
      start = Math.max(start, hole.end);
    }
    if (start < range.end) out.push({ start, end: range.end });
  }
  return out;
}

function intersection(a: readonly AddressRange[], b: readonly AddressRange[]): AddressRange[] {
  const out: AddressRange[] = [];
  for (const x of a) {
    for (const y of b) {
      const start = Math.max(x.start, y.start);
      const end = Math.min(x.end, y.end);
      if (start < end) out.push({ start, end });
    }
  }
  return normalize(out);
}

function totalSize(ranges: readonly AddressRange[]): number {
  return ranges.reduce((sum, r) => sum + r.end - r.start, 0);
}

/** The interval of sorted `ranges` holding `address`, by binary search. */
function findRange(ranges: readonly AddressRange[], address: Address): AddressRange | undefined {
  let low = 0;
  let high = ranges.length - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const range = ranges[middle]!;
    if (address < range.start) high = middle - 1;
    else if (address >= range.end) low = middle + 1;
    else return range;
  }
  return undefined;
}
