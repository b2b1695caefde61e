/**
 * Ring deltas as gossip items, and back. Each item stands alone (it repeats the ring's
 * range and seeds), so any subset of a delta's items is a delta, as the gossip contract
 * asks. One item is a CBOR-friendly array:
 *
 * ```
 * [version, rangeStart, rangeEnd, [seed...], [owner...], [token, end, ownerIndex, version, free, ...]
 *  (, [dead, heir, by, ...])]
 * ```
 *
 * The optional last field carries removal records (reclaim.ts); there are few, so the
 * first item of a delta carries them all.
 *
 * Owners are listed once per item and entries point at them, since a key is 44 bytes and
 * most entries repeat a few owners. `decodeRingItems` checks every field and limit and
 * throws `RingRejected`; it never trusts a count it has not bounded.
 */
import type { PeerKey } from "../mesh/gossip-state.ts";
import { type AddressRange, IPV4_SPACE, isAddress } from "./address.ts";
import {
  IPAM_WIRE_VERSION,
  MAX_DELTA_ITEMS,
  MAX_ENTRIES_PER_ITEM,
  MAX_OWNERS_PER_ITEM,
  MAX_RING_ENTRIES,
  MAX_SEEDS,
} from "./constants.ts";
import { RingRejected } from "./errors.ts";
import { isPeerKey } from "./peer-key.ts";
import { preferredRemoval, type Removal } from "./reclaim.ts";
import {
  findInvariantViolation,
  type RingDelta,
  type RingEntry,
  sameEntry,
} from "./ring-entries.ts";

const ITEM_FIELDS = 6;
const REMOVAL_FIELDS = 3;
const ENTRY_FIELDS = 5;

/**
 * Items of at most about `maxItemBytes` each (estimated as CBOR would encode them), at
 * least one entry per item whatever the limit; a delta without entries is one item that
 * carries only the ring's identity.
 */
export function encodeRingItems(delta: RingDelta, maxItemBytes: number): unknown[] {
  const header =
    16 + delta.seeds.reduce((sum, seed) => sum + seed.length + 3, 0) + intBytes(delta.range.end);
  const items: unknown[] = [];
  let owners: PeerKey[] = [];
  let flat: number[] = [];
  let bytes = header;
  let removals = (delta.removals ?? []).flatMap((r) => [r.dead, r.heir, r.by]);
  function flush(): void {
    const item: unknown[] = [
      IPAM_WIRE_VERSION,
      delta.range.start,
      delta.range.end,
      [...delta.seeds],
      owners,
      flat,
    ];
    if (removals.length > 0) item.push(removals);
    removals = [];
    items.push(item);
    owners = [];
    flat = [];
    bytes = header;
  }
  for (const entry of delta.entries) {
    let ownerIndex = owners.indexOf(entry.owner);
    const ownerBytes = ownerIndex < 0 ? entry.owner.length + 3 : 0;
    const entryBytes =
      intBytes(entry.token) +
      intBytes(entry.end) +
      intBytes(owners.length) +
      intBytes(entry.version) +
      intBytes(entry.free);
    const full =
      flat.length >= ENTRY_FIELDS * MAX_ENTRIES_PER_ITEM || owners.length >= MAX_OWNERS_PER_ITEM;
    if (flat.length > 0 && (full || bytes + ownerBytes + entryBytes > maxItemBytes)) {
      flush();
      ownerIndex = -1;
    }
    if (ownerIndex < 0) {
      ownerIndex = owners.length;
      owners.push(entry.owner);
      bytes += entry.owner.length + 3;
    }
    flat.push(entry.token, entry.end, ownerIndex, entry.version, entry.free);
    bytes += entryBytes;
  }
  if (flat.length > 0 || items.length === 0) flush();
  return items;
}

/** The delta that `items` encode; throws `RingRejected` naming the first problem found. */
export function decodeRingItems(items: readonly unknown[]): RingDelta {
  if (!Array.isArray(items) || items.length === 0) malformed("Expected at least one ring item");
  if (items.length > MAX_DELTA_ITEMS) {
    throw new RingRejected(
      "TOO_LARGE",
      `Ring delta of ${items.length} items exceeds ${MAX_DELTA_ITEMS}`,
    );
  }
  const first = decodeItem(items[0]);
  // Most deltas are one item in order, which needs no joining.
  const delta =
    items.length === 1 && first.removals === undefined && isStrictlySorted(first.entries)
      ? first
      : joinItems(first, items);
  const violation = findInvariantViolation(delta.entries, delta.range);
  if (violation !== undefined) throw new RingRejected("OVERLAP", violation);
  return delta;
}

/**
 * The delta of several items (`first` the first one decoded): the same token may come in
 * several, identical; entries sorted and records merged and sorted.
 */
function joinItems(first: RingDelta, items: readonly unknown[]): RingDelta {
  const { range, seeds } = first;
  const all: RingEntry[] = [];
  const removals = new Map<PeerKey, Removal>();
  for (let i = 0; i < items.length; i++) {
    const decoded = i === 0 ? first : decodeItem(items[i]);
    if (
      range.start !== decoded.range.start ||
      range.end !== decoded.range.end ||
      !sameSeeds(seeds, decoded.seeds)
    ) {
      malformed("Ring items of one delta disagree on the range or seeds");
    }
    for (const removal of decoded.removals ?? []) {
      const known = removals.get(removal.dead);
      removals.set(removal.dead, known === undefined ? removal : preferredRemoval(known, removal));
    }
    for (const entry of decoded.entries) all.push(entry);
    // Counted with repeats, and as items come: a flood of items stops early.
    if (all.length > MAX_RING_ENTRIES) {
      throw new RingRejected("TOO_LARGE", `Ring delta exceeds ${MAX_RING_ENTRIES} entries`);
    }
  }
  sortByToken(all);
  const entries: RingEntry[] = [];
  for (const entry of all) {
    const previous = entries[entries.length - 1];
    if (previous === undefined || previous.token !== entry.token) entries.push(entry);
    else if (!sameEntry(previous, entry)) {
      malformed(`Ring delta holds two different entries for token ${entry.token}`);
    }
  }
  const delta: RingDelta = { range, seeds, entries };
  if (removals.size > 0) {
    (delta as { removals?: Removal[] }).removals = [...removals.values()].sort((a, b) =>
      a.dead < b.dead ? -1 : 1,
    );
  }
  return delta;
}

/**
 * Sorts entries by token, stably, so every copy of a token lies next to the first one.
 * The items of a batch arrive a few dozen entries at a time, where an insertion sort
 * beats calling a comparator from the built-in sort.
 */
function sortByToken(entries: RingEntry[]): void {
  if (entries.length > 64) {
    entries.sort((a, b) => a.token - b.token);
    return;
  }
  for (let i = 1; i < entries.length; i++) {
    const entry = entries[i]!;
    let j = i - 1;
    for (; j >= 0 && entries[j]!.token > entry.token; j--) entries[j + 1] = entries[j]!;
    entries[j + 1] = entry;
  }
}

/** True when every token is above the one before: sorted, none twice. */
function isStrictlySorted(entries: readonly RingEntry[]): boolean {
  for (let i = 1; i < entries.length; i++) {
    if (entries[i - 1]!.token >= entries[i]!.token) return false;
  }
  return true;
}

function decodeItem(item: unknown): RingDelta {
  if (!Array.isArray(item) || (item.length !== ITEM_FIELDS && item.length !== ITEM_FIELDS + 1)) {
    malformed(`Expected a ring item to be an array of ${ITEM_FIELDS} or ${ITEM_FIELDS + 1}`);
  }
  const [version, start, end, seeds, owners, flat, removalFields] = item as unknown[];
  if (version !== IPAM_WIRE_VERSION) {
    malformed(`Unsupported ring item version ${String(version)}, expected ${IPAM_WIRE_VERSION}`);
  }
  if (
    !isAddress(start) ||
    !Number.isInteger(end) ||
    (end as number) <= start ||
    (end as number) > IPV4_SPACE
  ) {
    malformed("Ring item has an invalid range");
  }
  const range: AddressRange = { start, end: end as number };
  if (!Array.isArray(seeds) || seeds.length === 0 || seeds.length > MAX_SEEDS) {
    malformed(`Expected 1 to ${MAX_SEEDS} seeds`);
  }
  for (const [i, seed] of seeds.entries()) {
    if (!isPeerKey(seed)) malformed("Ring item names a seed that is not a peer key");
    if (i > 0 && seeds[i - 1] >= seed) malformed("Ring item seeds are not sorted and distinct");
  }
  if (!Array.isArray(owners) || owners.length > MAX_OWNERS_PER_ITEM || !owners.every(isPeerKey)) {
    malformed(`Expected at most ${MAX_OWNERS_PER_ITEM} owners, each a peer key`);
  }
  if (!Array.isArray(flat) || flat.length % ENTRY_FIELDS !== 0) {
    malformed(`Expected ring entries as groups of ${ENTRY_FIELDS} numbers`);
  }
  if (flat.length > ENTRY_FIELDS * MAX_ENTRIES_PER_ITEM) {
    throw new RingRejected("TOO_LARGE", `Ring item exceeds ${MAX_ENTRIES_PER_ITEM} entries`);
  }
  const entries: RingEntry[] = [];
  for (let i = 0; i < flat.length; i += ENTRY_FIELDS) {
    const token: unknown = flat[i];
    const entryEnd: unknown = flat[i + 1];
    const ownerIndex: unknown = flat[i + 2];
    const entryVersion: unknown = flat[i + 3];
    const free: unknown = flat[i + 4];
    if (!isAddress(token) || !Number.isInteger(entryEnd) || !Number.isInteger(free)) {
      malformed(`Ring entry ${i / ENTRY_FIELDS} has a non-integer field`);
    }
    const owner = Number.isInteger(ownerIndex) ? owners[ownerIndex as number] : undefined;
    if (typeof owner !== "string") malformed(`Ring entry at ${token} names no listed owner`);
    if (!Number.isSafeInteger(entryVersion) || (entryVersion as number) < 1) {
      malformed(`Ring entry at ${token} has an invalid version`);
    }
    entries.push({
      token,
      end: entryEnd as number,
      owner,
      version: entryVersion as number,
      free: free as number,
    });
  }
  const removals = removalFields === undefined ? undefined : decodeRemovals(removalFields);
  return { range, seeds: seeds as PeerKey[], entries, ...(removals && { removals }) };
}

function decodeRemovals(flat: unknown): Removal[] {
  if (
    !Array.isArray(flat) ||
    flat.length === 0 ||
    flat.length % REMOVAL_FIELDS !== 0 ||
    flat.length > REMOVAL_FIELDS * MAX_OWNERS_PER_ITEM ||
    !flat.every(isPeerKey)
  ) {
    malformed(`Expected removal records as groups of ${REMOVAL_FIELDS} peer keys`);
  }
  const removals: Removal[] = [];
  for (let i = 0; i < flat.length; i += REMOVAL_FIELDS) {
    const [dead, heir, by] = flat.slice(i, i + REMOVAL_FIELDS) as PeerKey[];
    if (dead === heir) malformed(`Removal record of ${dead} names it its own heir`);
    removals.push({ dead: dead!, heir: heir!, by: by! });
  }
  return removals;
}

/** True when both seed lists name the same peers in the same order. */
export function sameSeeds(a: readonly PeerKey[], b: readonly PeerKey[]): boolean {
  return a.length === b.length && a.every((seed, i) => seed === b[i]);
}

function malformed(message: string): never {
  throw new RingRejected("MALFORMED", message);
}

/** Bytes CBOR spends on an unsigned integer. */
function intBytes(n: number): number {
  if (n < 24) return 1;
  if (n < 0x100) return 2;
  if (n < 0x1_0000) return 3;
  if (n < 0x1_0000_0000) return 5;
  return 9;
}
