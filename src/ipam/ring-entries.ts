/**
 * The ring's records and the pure rules over them: invariants, who owns an address,
 * whether a ring is complete.
 *
 * An entry says "`owner` owns [token, end) at `version`, with `free` addresses unused".
 * Tokens are created only by splitting an entry, by its owner, and are never removed; so
 * over an entry's versions its end only shrinks. A replica that has heard only part of
 * the history can hold a stale entry whose end reaches past newer tokens: entries then
 * nest (the newer, finer one inside the older), but never cross. The innermost entry
 * covering an address is the freshest word on who owns it. Once every entry has flowed
 * everywhere, the entries tile the range exactly (each end is the next token).
 */
import type { PeerKey } from "../mesh/gossip-state.ts";
import type { Address, AddressRange } from "./address.ts";
import type { Removal } from "./reclaim.ts";

export interface RingEntry {
  /** The first address of the entry's range; the entry's key. */
  readonly token: Address;
  /** One past its last address, as its owner last wrote it. */
  readonly end: number;
  readonly owner: PeerKey;
  /** Raised by the owner on every change; the higher version wins a merge. */
  readonly version: number;
  /** Unused addresses in [token, end), as the owner last reported (for choosing donors). */
  readonly free: number;
}

/** A set of entries with the ring's identity, which every delta carries so it can be checked. */
export interface RingDelta {
  readonly range: AddressRange;
  /** The peers that seeded the ring, sorted; two meshes have different seeds. */
  readonly seeds: readonly PeerKey[];
  /** Sorted by token, each token once. */
  readonly entries: readonly RingEntry[];
  /** Removal records (reclaim.ts), sorted by dead peer; absent when there are none. */
  readonly removals?: readonly Removal[];
}

/** One stretch of the range and whom it belongs to, as the packet path looks it up. */
export interface OwnedSegment {
  readonly start: Address;
  readonly end: number;
  readonly owner: PeerKey;
}

/** True when two entries say the same thing. */
export function sameEntry(a: RingEntry, b: RingEntry): boolean {
  return (
    a.token === b.token &&
    a.end === b.end &&
    a.owner === b.owner &&
    a.version === b.version &&
    a.free === b.free
  );
}

/**
 * Why `entries` cannot be a ring's state, or undefined when they can: sorted by token
 * without repeats, inside `range`, free counts within their range, no two entries
 * crossing (only nesting), and none of `me`'s entries containing another token (only the
 * owner splits its range, and it knows its own splits).
 */
export function findInvariantViolation(
  entries: readonly RingEntry[],
  range: AddressRange,
  me?: PeerKey,
): string | undefined {
  const openEnds: number[] = [];
  let previous: RingEntry | undefined;
  for (const entry of entries) {
    if (previous !== undefined && previous.token >= entry.token) {
      return `Tokens not sorted or repeated at ${entry.token}`;
    }
    const fields = findEntryViolation(entry, range);
    if (fields !== undefined) return fields;
    if (
      me !== undefined &&
      previous !== undefined &&
      previous.owner === me &&
      previous.end > entry.token
    ) {
      return `Entry of ${entry.owner} at ${entry.token} lies inside the range ${me} owns from ${previous.token}`;
    }
    while (openEnds.length > 0 && openEnds[openEnds.length - 1]! <= entry.token) openEnds.pop();
    const enclosingEnd = openEnds[openEnds.length - 1];
    if (enclosingEnd !== undefined && entry.end > enclosingEnd) {
      return `Entry [${entry.token}, ${entry.end}) crosses the end ${enclosingEnd} of an enclosing entry`;
    }
    openEnds.push(entry.end);
    previous = entry;
  }
  return undefined;
}

/** Why one entry cannot be in a ring over `range` on its own (bounds, free count), or undefined. */
export function findEntryViolation(entry: RingEntry, range: AddressRange): string | undefined {
  if (entry.token < range.start || entry.end > range.end || entry.token >= entry.end) {
    return `Entry [${entry.token}, ${entry.end}) lies outside the ring's range`;
  }
  if (entry.free < 0 || entry.free > entry.end - entry.token) {
    return `Entry at ${entry.token} reports ${entry.free} free of ${entry.end - entry.token}`;
  }
  return undefined;
}

/**
 * How many entries of sorted `entries` reach past the next token. Zero means the ring is
 * flat: no two entries share an address, which is how a ring looks once gossip has caught
 * up (complete or not). A flat ring breaks no nesting rule, and the owner of an address
 * is the one entry before it, so the ring keeps this count to check and look up cheaply.
 */
export function countOverlaps(entries: readonly RingEntry[]): number {
  let overlaps = 0;
  for (let i = 0; i + 1 < entries.length; i++) {
    if (entries[i]!.end > entries[i + 1]!.token) overlaps++;
  }
  return overlaps;
}

/** The index of the first entry of sorted `entries` whose token is `token` or higher. */
export function lowerBound(
  entries: readonly { readonly token: Address }[],
  token: Address,
): number {
  let low = 0;
  let high = entries.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (entries[middle]!.token < token) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * Who owns what, innermost entry first: sorted disjoint segments, adjacent ones of the
 * same owner joined. Addresses no entry covers (the ring is not complete here) are absent.
 */
export function ownershipSegments(entries: readonly RingEntry[]): OwnedSegment[] {
  const segments: OwnedSegment[] = [];
  const open: RingEntry[] = [];
  let cursor = 0;
  function emit(end: number, owner: PeerKey): void {
    if (end <= cursor) return;
    const last = segments[segments.length - 1];
    if (last !== undefined && last.owner === owner && last.end === cursor) {
      segments[segments.length - 1] = { start: last.start, end, owner };
    } else {
      segments.push({ start: cursor, end, owner });
    }
    cursor = end;
  }
  function closeUntil(position: number): void {
    for (let top = open[open.length - 1]; top !== undefined && top.end <= position; ) {
      emit(top.end, top.owner);
      open.pop();
      top = open[open.length - 1];
    }
  }
  for (const entry of entries) {
    closeUntil(entry.token);
    const enclosing = open[open.length - 1];
    if (enclosing !== undefined) emit(entry.token, enclosing.owner);
    cursor = entry.token;
    open.push(entry);
  }
  closeUntil(Number.POSITIVE_INFINITY);
  return segments;
}

/** The segment holding `address` in sorted `segments`, by binary search. */
export function findSegment(
  segments: readonly OwnedSegment[],
  address: Address,
): OwnedSegment | undefined {
  let low = 0;
  let high = segments.length - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const segment = segments[middle]!;
    if (address < segment.start) high = middle - 1;
    else if (address >= segment.end) low = middle + 1;
    else return segment;
  }
  return undefined;
}

/** True when the entries tile `range` exactly: the state every replica reaches once gossip flows. */
export function isComplete(entries: readonly RingEntry[], range: AddressRange): boolean {
  if (entries.length === 0) return false;
  if (entries[0]!.token !== range.start) return false;
  for (let i = 0; i < entries.length; i++) {
    const next = entries[i + 1];
    if (entries[i]!.end !== (next === undefined ? range.end : next.token)) return false;
  }
  return true;
}

/**
 * The first entries of a ring seeded by `seeds`: the range cut into equal consecutive
 * parts, one per seed in sorted order. Every seed computes the same entries from the
 * same seed set, so a consensus-seeded ring needs no first gossip to agree.
 */
export function seedEntries(
  range: AddressRange,
  seeds: readonly PeerKey[],
  freeOf: (start: Address, end: number) => number,
): RingEntry[] {
  const size = range.end - range.start;
  return seeds.map((owner, i) => {
    const token = range.start + Math.floor((i * size) / seeds.length);
    const end = range.start + Math.floor(((i + 1) * size) / seeds.length);
    return { token, end, owner, version: 1, free: freeOf(token, end) };
  });
}
