/**
 * The ring: the mesh's address range cut into entries, each owned by one peer, replicated
 * as a CRDT over gossip (the design of Weave Net's `ipam/ring`, rebuilt for per-token
 * anti-entropy). Only an entry's owner changes it, raising its version: it records free
 * counts, and it hands part or all of its range to another peer (donation). Merge keeps
 * the higher version per token.
 *
 * What a replica accepts. Gossip relays entries, so the neighbour a delta came from is not
 * its author, and keys cannot sign (they are X25519): no entry can be traced to its author.
 * What a replica can check is what only it knows for sure, its own entries, plus shape:
 *
 * - a newer version of an entry we own is refused: only we could have written it;
 * - a new token inside a range we own is refused: only we split our ranges;
 * - the same version of a token with different content is an inconsistency, refused;
 * - a newer version whose end grew is refused: tokens are never removed, ends only shrink;
 * - entries that cross (overlap without nesting), another range, other seeds: refused.
 *
 * Anything else (entries about other peers at any version, donations to us) is accepted,
 * because an honest relay sends exactly that. A refusal rejects the whole delta, changes
 * nothing, and is counted by code. A peer that lies about other peers' entries can still
 * misroute them; closing that needs entries signed by their owners.
 *
 * Cost. Every replica merges every change in the mesh, so a merge costs about what the
 * delta holds, not what the ring holds: entries change in place, and the ring counts its
 * entries that reach past the next token. While that count is zero (the ring is flat, as
 * it is whenever gossip has caught up), a delta that keeps it flat breaks no rule between
 * entries, which the changed entries' new neighbours alone show, and the owner of an
 * address is the entry that starts before it. A delta that nests entries, or arrives while
 * some are nested (a newer entry came before the older one it splits), gets the whole-ring
 * check (`findInvariantViolation`) on the ring it would make, as every delta once did.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import type { GossipState, PeerKey, Summary } from "../mesh/gossip-state.ts";
import { type Address, type AddressRange, formatRange } from "./address.ts";
import { RingRejected, type RingRejectionCode, RingSeedMismatch } from "./errors.ts";
import { preferredRemoval, type Removal, TAKEOVER_VERSION_STEP } from "./reclaim.ts";
import { decodeRingItems, encodeRingItems, sameSeeds } from "./ring-codec.ts";
import {
  countOverlaps,
  findEntryViolation,
  findInvariantViolation,
  findSegment,
  lowerBound,
  type OwnedSegment,
  ownershipSegments,
  type RingDelta,
  type RingEntry,
  sameEntry,
  seedEntries,
} from "./ring-entries.ts";

/**
 * Changes adding more new tokens than this rebuild the entry list once (linear) instead
 * of inserting each token in place.
 */
const MAX_INSERTS_IN_PLACE = 16;

/** Counts free addresses in [start, end) as the local peer's space sees them. */
export type FreeCounter = (start: Address, end: number) => number;

export interface RingOptions {
  /** The local peer: the only one whose entries this replica may change. */
  readonly me: PeerKey;
  readonly range: AddressRange;
}

/** What a replica knows and how much it refused. */
export interface RingStats {
  readonly entries: number;
  readonly rejected: Readonly<Partial<Record<RingRejectionCode, number>>>;
  /** Records for one dead peer naming different heirs, met in merges (reclaim.ts). */
  readonly removalConflicts: number;
}

/**
 * One peer's replica of the ring. Implements `GossipState<RingDelta>` for the gossip
 * engine; the owner-only operations (`seed`, `grant`, `reportFree`) are for the allocator.
 *
 * @example
 * ```ts
 * const ring = new Ring({ me: keyA, range: parseRange("10.40.0.0/16").range });
 * const delta = ring.seed([keyA], (start, end) => end - start);
 * other.merge(delta, keyA); // other now knows keyA owns the whole range
 * ```
 */
export class Ring implements GossipState<RingDelta> {
  readonly me: PeerKey;
  readonly range: AddressRange;
  #seeds: readonly PeerKey[] = [];
  /** Sorted by token, changed in place; copied first once `entries()` has handed it out. */
  #entries: RingEntry[] = [];
  #entriesShared = false;
  readonly #byToken = new Map<number, RingEntry>();
  /** The tokens of our own entries. */
  readonly #mine = new Set<number>();
  /** Entries whose end passes the next token (see countOverlaps); 0 while the ring is flat. */
  #overlaps = 0;
  /** Who owns what, computed on demand while the ring is not flat. */
  #segments: readonly OwnedSegment[] | undefined;
  /** What `summary()` returns, built on demand after a change. */
  #summary: Summary | undefined;
  #digest: Uint8Array | undefined;
  /** Lane-wise sum (mod 2^32) of every entry's hash: a multiset hash kept incrementally. */
  readonly #entrySum = new Uint32Array(8);
  #rejected: Partial<Record<RingRejectionCode, number>> = {};
  /** Removal records by dead peer (reclaim.ts). */
  #removals = new Map<PeerKey, Removal>();
  #removalConflicts = 0;

  constructor(options: RingOptions) {
    this.me = options.me;
    this.range = options.range;
  }

  /** The peers that seeded this ring, sorted; empty until seeded or merged. */
  get seeds(): readonly PeerKey[] {
    return this.#seeds;
  }

  isSeeded(): boolean {
    return this.#seeds.length > 0;
  }

  /** Every entry, sorted by token (a snapshot: later changes do not show in it). */
  entries(): readonly RingEntry[] {
    this.#entriesShared = true;
    return this.#entries;
  }

  /** The peer that owns `address` as far as this replica knows; undefined outside any known entry. */
  ownerOf(address: Address): PeerKey | undefined {
    if (this.#overlaps > 0) {
      this.#segments ??= ownershipSegments(this.#entries);
      return findSegment(this.#segments, address)?.owner;
    }
    // Flat: no two entries share an address, so only the last one starting at or before
    // `address` can hold it.
    const entry = this.#entries[lowerBound(this.#entries, address + 1) - 1];
    return entry !== undefined && address < entry.end ? entry.owner : undefined;
  }

  /** The ranges `peer`'s own entries cover (exact for the local peer, which wrote them). */
  rangesOf(peer: PeerKey): AddressRange[] {
    const owned = peer === this.me ? this.#ownEntries() : this.#entries;
    return owned
      .filter((entry) => entry.owner === peer)
      .map((entry) => ({ start: entry.token, end: entry.end }));
  }

  /** Reported free addresses per owner, counting only entries not superseded by finer ones. */
  freeByPeer(): Map<PeerKey, number> {
    const free = new Map<PeerKey, number>();
    for (const [i, entry] of this.#entries.entries()) {
      const next = this.#entries[i + 1];
      if (next !== undefined && next.token < entry.end) continue;
      free.set(entry.owner, (free.get(entry.owner) ?? 0) + entry.free);
    }
    return free;
  }

  stats(): RingStats {
    return {
      entries: this.#entries.length,
      rejected: { ...this.#rejected },
      removalConflicts: this.#removalConflicts,
    };
  }

  /** Every removal record, sorted by dead peer. */
  removals(): Removal[] {
    return [...this.#removals.values()].sort((a, b) => (a.dead < b.dead ? -1 : 1));
  }

  /** The record that removed `peer`, if any. */
  removalOf(peer: PeerKey): Removal | undefined {
    return this.#removals.get(peer);
  }

  /**
   * Who inherits `dead`'s ranges now: its record's heir, or if that heir was removed too,
   * that heir's heir, and so on; undefined when `dead` has no record.
   */
  heirOf(dead: PeerKey): PeerKey | undefined {
    let heir = this.#removals.get(dead)?.heir;
    for (let hops = 0; heir !== undefined && hops < this.#removals.size; hops++) {
      const next = this.#removals.get(heir)?.heir;
      if (next === undefined) return heir;
      heir = next;
    }
    return heir;
  }

  /** Records that `dead` is gone and `heir` inherits its ranges; the delta to gossip. */
  remove(removal: Removal): RingDelta {
    const known = this.#removals.get(removal.dead);
    const kept = known === undefined ? removal : preferredRemoval(known, removal);
    this.#removals.set(removal.dead, kept);
    this.#summary = undefined;
    this.#digest = undefined;
    return this.#delta([], [kept]);
  }

  /**
   * Makes `dead`'s entries ours (the caller checked we are its heir), versions raised by
   * TAKEOVER_VERSION_STEP. An entry that encloses finer tokens is a stale view of an
   * entry `dead` shrank later: it is left alone (its newer version will come by gossip).
   * Returns the changed entries, or null when `dead` owns nothing we can take.
   */
  takeOver(dead: PeerKey, freeOf: FreeCounter): RingDelta | null {
    const changed: RingEntry[] = [];
    for (const [i, entry] of this.#entries.entries()) {
      const next = this.#entries[i + 1];
      if (entry.owner !== dead || (next !== undefined && next.token < entry.end)) continue;
      changed.push({
        ...entry,
        owner: this.me,
        version: entry.version + TAKEOVER_VERSION_STEP,
        free: freeOf(entry.token, entry.end),
      });
    }
    if (changed.length === 0) return null;
    this.#apply(changed);
    // The record travels along, so `dead` itself, if it comes back, accepts the takeover.
    return this.#delta(changed, this.removals());
  }

  /**
   * Seeds an empty ring: the range cut into equal parts, one per seed (sorted), all at
   * version 1, so seeds that agreed on the set build identical rings. Returns the delta.
   */
  seed(seeds: readonly PeerKey[], freeOf: FreeCounter): RingDelta {
    if (this.isSeeded()) throw new Error("Cannot seed a ring that is already seeded");
    const sorted = [...new Set(seeds)].sort();
    if (sorted.length === 0 || sorted.length > this.range.end - this.range.start) {
      throw new RangeError(
        `Expected 1 to ${this.range.end - this.range.start} seeds, got ${sorted.length}`,
      );
    }
    this.#seeds = sorted;
    this.#apply(seedEntries(this.range, sorted, freeOf));
    return this.#delta(this.#entries);
  }

  /**
   * Fills an empty replica with a saved one (`state-codec.ts` checked it): a restarted
   * peer starts from what it had, so its own entries keep their versions.
   */
  restore(saved: RingDelta): void {
    const violation =
      saved.seeds.length === 0
        ? "it names no seeds"
        : findInvariantViolation(saved.entries, this.range, this.me);
    if (this.isSeeded() || violation !== undefined) {
      throw new RangeError(`Cannot restore the ring: ${violation ?? "it is already seeded"}`);
    }
    this.#seeds = [...saved.seeds];
    this.#removals = new Map((saved.removals ?? []).map((r) => [r.dead, r]));
    this.#apply(saved.entries);
    this.#summary = undefined;
    this.#digest = undefined;
  }

  /**
   * Hands [block.start, block.end) to `to`. The block must lie inside one entry we own
   * and hold no allocation (the allocator's job). Splits that entry into up to three:
   * ours before, theirs, ours after. Returns the changed entries.
   */
  grant(block: AddressRange, to: PeerKey, freeOf: FreeCounter): RingDelta {
    const host = this.#ownEntries().find(
      (entry) => entry.owner === this.me && entry.token <= block.start && block.end <= entry.end,
    );
    if (host === undefined || block.end <= block.start || to === this.me) {
      throw new RangeError(
        `Cannot grant [${block.start}, ${block.end}) to ${to}: not inside one entry we own`,
      );
    }
    const changed: RingEntry[] = [];
    if (block.start === host.token) {
      changed.push({
        ...host,
        owner: to,
        end: block.end,
        version: host.version + 1,
        free: freeOf(block.start, block.end),
      });
    } else {
      changed.push({
        ...host,
        end: block.start,
        version: host.version + 1,
        free: freeOf(host.token, block.start),
      });
      changed.push({
        token: block.start,
        end: block.end,
        owner: to,
        version: 1,
        free: freeOf(block.start, block.end),
      });
    }
    if (block.end < host.end) {
      changed.push({
        token: block.end,
        end: host.end,
        owner: this.me,
        version: 1,
        free: freeOf(block.end, host.end),
      });
    }
    this.#apply(changed);
    return this.#delta(changed);
  }

  /** Records current free counts in our entries; the changed entries, or null. */
  reportFree(freeOf: FreeCounter): RingDelta | null {
    const changed: RingEntry[] = [];
    for (const entry of this.#ownEntries()) {
      const free = freeOf(entry.token, entry.end);
      if (free !== entry.free) changed.push({ ...entry, free, version: entry.version + 1 });
    }
    if (changed.length === 0) return null;
    this.#apply(changed);
    return this.#delta(changed);
  }

  digest(): Uint8Array {
    if (this.#digest === undefined) {
      // Entries enter through their running sum (see #change), so a digest after a merge
      // costs one small hash, not one over the whole ring.
      const canonical = JSON.stringify([
        this.range.start,
        this.range.end,
        this.#seeds,
        this.#entries.length,
        Array.from(this.#entrySum),
        this.removals().map((r) => [r.dead, r.heir, r.by]),
      ]);
      this.#digest = sha256(new TextEncoder().encode(canonical));
    }
    return this.#digest;
  }

  summary(): Summary {
    if (this.#summary !== undefined) return this.#summary;
    // Built once per change and never changed after: whoever holds one keeps a snapshot.
    const summary = new Map<string, number>();
    if (this.isSeeded()) {
      summary.set(this.#identityKey(), 1);
      for (const entry of this.#entries) summary.set(String(entry.token), entry.version);
      for (const dead of this.#removals.keys()) summary.set(`removed ${dead}`, 1);
    }
    this.#summary = summary;
    return summary;
  }

  deltaFor(theirs: Summary): RingDelta | null {
    if (!this.isSeeded()) return null;
    // A replica without our identity key is new or from another mesh: it gets everything,
    // and another mesh's merge then refuses it, naming both seed sets.
    if (!theirs.has(this.#identityKey())) return this.#delta(this.#entries, this.removals());
    const newer = this.#entries.filter(
      (entry) => (theirs.get(String(entry.token)) ?? 0) < entry.version,
    );
    // Records are few, and two for one dead peer may differ (see reclaim.ts) without the
    // summary showing it: whoever asks gets them all, and merge keeps the preferred ones.
    if (newer.length === 0 && this.#removals.size === 0) return null;
    return this.#delta(newer, this.removals());
  }

  merge(delta: RingDelta, from: PeerKey): RingDelta | null {
    try {
      return this.#merge(delta, from);
    } catch (error) {
      if (error instanceof RingRejected) this.#count(error.code);
      throw error;
    }
  }

  encode(delta: RingDelta, maxItemBytes: number): unknown[] {
    return encodeRingItems(delta, maxItemBytes);
  }

  decode(items: readonly unknown[]): RingDelta {
    try {
      return decodeRingItems(items);
    } catch (error) {
      if (error instanceof RingRejected) this.#count(error.code);
      throw error;
    }
  }

  #merge(delta: RingDelta, from: PeerKey): RingDelta | null {
    if (delta.range.start !== this.range.start || delta.range.end !== this.range.end) {
      throw new RingRejected(
        "OTHER_RANGE",
        `Refusing a ring for ${formatRange(delta.range)} from ${from}: ours is ${formatRange(this.range)}`,
      );
    }
    if (delta.seeds.length === 0)
      throw new RingRejected("MALFORMED", `Ring delta from ${from} names no seeds`);
    if (this.isSeeded() && !sameSeeds(this.#seeds, delta.seeds)) {
      throw new RingSeedMismatch(this.#seeds, delta.seeds);
    }
    if (this.isSeeded() && this.#holdsAll(delta)) return null;
    const removals = new Map(this.#removals);
    const changedRemovals: Removal[] = [];
    for (const removal of delta.removals ?? []) {
      const known = removals.get(removal.dead);
      const kept = known === undefined ? removal : preferredRemoval(known, removal);
      if (known !== undefined && known.heir !== removal.heir) this.#removalConflicts++;
      if (kept !== known) {
        removals.set(removal.dead, kept);
        changedRemovals.push(kept);
      }
    }
    // Once we are removed, our heir rewrites our entries: that is no forgery.
    const weAreRemoved = removals.has(this.me);
    const candidate = new Map<number, RingEntry>();
    const changed: RingEntry[] = [];
    for (const theirs of delta.entries) {
      const mine = candidate.get(theirs.token) ?? this.#byToken.get(theirs.token);
      if (mine !== undefined) {
        if (theirs.version < mine.version) continue;
        if (theirs.version === mine.version) {
          if (sameEntry(mine, theirs)) continue;
          throw new RingRejected(
            "SAME_VERSION_DIFFERS",
            `Inconsistent ring entry at ${theirs.token} v${theirs.version}: we hold owner ${mine.owner}, ` +
              `end ${mine.end}, free ${mine.free}; ${from} sent owner ${theirs.owner}, end ${theirs.end}, free ${theirs.free}`,
          );
        }
        if (mine.owner === this.me && !weAreRemoved) {
          throw new RingRejected(
            "CHANGES_OUR_ENTRY",
            `Refusing v${theirs.version} of our entry at ${theirs.token} (we hold v${mine.version}) from ${from}: only we change it`,
          );
        }
        if (theirs.end > mine.end) {
          throw new RingRejected(
            "END_GREW",
            `Refusing v${theirs.version} of the entry at ${theirs.token} from ${from}: its end grew from ${mine.end} to ${theirs.end}`,
          );
        }
      }
      candidate.set(theirs.token, theirs);
      changed.push(theirs);
    }
    if (changed.length === 0 && changedRemovals.length === 0 && this.isSeeded()) return null;
    const violation = this.#change(candidate);
    if (violation !== undefined) {
      const code = violation.includes(`the range ${this.me} owns`) ? "INSIDE_OUR_RANGE" : "OVERLAP";
      throw new RingRejected(code, `Refusing ring delta from ${from}: ${violation}`);
    }
    if (!this.isSeeded()) this.#seeds = [...delta.seeds];
    this.#removals = removals;
    this.#summary = undefined;
    this.#digest = undefined;
    return this.#delta(changed, changedRemovals);
  }

  /**
   * True when the delta brings nothing new: every entry we hold at the same or a newer
   * version (identical when the same), every record as we keep it. Flooded gossip brings
   * most deltas several times; this spares the whole-ring copy and checks for them.
   */
  #holdsAll(delta: RingDelta): boolean {
    for (const theirs of delta.entries) {
      const mine = this.#byToken.get(theirs.token);
      if (mine === undefined || mine.version < theirs.version) return false;
      if (mine.version === theirs.version && !sameEntry(mine, theirs)) return false;
    }
    for (const removal of delta.removals ?? []) {
      const known = this.#removals.get(removal.dead);
      if (known === undefined || preferredRemoval(known, removal) !== known) return false;
    }
    return true;
  }

  /** Applies our own changes; a violation here is a bug in the caller, so it throws. */
  #apply(changed: readonly RingEntry[]): void {
    const changes = new Map(changed.map((entry) => [entry.token, entry]));
    const violation = this.#change(changes);
    if (violation !== undefined)
      throw new Error(`Ring invariant broken by a local change: ${violation}`);
  }

  /**
   * Applies `changes` (by token: entries that replace ours or add new tokens) when the
   * ring they make keeps every invariant; otherwise changes nothing and says why.
   */
  #change(changes: ReadonlyMap<number, RingEntry>): string | undefined {
    if (changes.size === 0) return undefined;
    const added: RingEntry[] = [];
    for (const entry of changes.values()) if (!this.#byToken.has(entry.token)) added.push(entry);
    added.sort((a, b) => a.token - b.token);
    if (this.#overlaps === 0 && this.#staysFlat(changes, added)) {
      if (added.length > MAX_INSERTS_IN_PLACE) {
        this.#entries = this.#mergedWith(changes);
        this.#entriesShared = false;
      } else {
        const entries = this.#writableEntries();
        for (const entry of changes.values()) {
          if (this.#byToken.has(entry.token)) entries[lowerBound(entries, entry.token)] = entry;
        }
        for (const entry of added) entries.splice(lowerBound(entries, entry.token), 0, entry);
      }
    } else {
      const entries = this.#mergedWith(changes);
      const violation = findInvariantViolation(entries, this.range, this.me);
      if (violation !== undefined) return violation;
      this.#entries = entries;
      this.#entriesShared = false;
      this.#overlaps = countOverlaps(entries);
    }
    for (const entry of changes.values()) {
      const old = this.#byToken.get(entry.token);
      if (old !== undefined) addEntryHash(this.#entrySum, old, -1);
      addEntryHash(this.#entrySum, entry, 1);
      this.#byToken.set(entry.token, entry);
      if (entry.owner === this.me) this.#mine.add(entry.token);
      else this.#mine.delete(entry.token);
    }
    this.#segments = undefined;
    this.#summary = undefined;
    this.#digest = undefined;
    return undefined;
  }

  /**
   * True when the ring (flat now) stays flat with `changes` (`added`: those with new
   * tokens, sorted), each change valid on its own. Only pairs of neighbours with a changed
   * entry in them can newly overlap, so each changed entry is checked against the entries
   * next to it in the ring it would make. A flat ring breaks no rule between entries: none
   * crosses or nests in another, so none of ours holds another token.
   */
  #staysFlat(changes: ReadonlyMap<number, RingEntry>, added: readonly RingEntry[]): boolean {
    const entries = this.#entries;
    const current = (entry: RingEntry) => changes.get(entry.token) ?? entry;
    for (const entry of changes.values()) {
      if (findEntryViolation(entry, this.range) !== undefined) return false;
      const at = lowerBound(entries, entry.token);
      const kept = entries[at]?.token === entry.token;
      const addedAt = lowerBound(added, entry.token);
      const addedIsHere = added[addedAt]?.token === entry.token;
      // The nearest tokens before and after, among the entries we hold and those added.
      const before = closer(entries[at - 1], added[addedAt - 1], (a, b) => a.token > b.token);
      const after = closer(
        entries[kept ? at + 1 : at],
        added[addedIsHere ? addedAt + 1 : addedAt],
        (a, b) => a.token < b.token,
      );
      if (before !== undefined && current(before).end > entry.token) return false;
      if (after !== undefined && entry.end > after.token) return false;
    }
    return true;
  }

  /** The sorted entry list with `changes` in it. */
  #mergedWith(changes: ReadonlyMap<number, RingEntry>): RingEntry[] {
    const sorted = [...changes.values()].sort((a, b) => a.token - b.token);
    const merged: RingEntry[] = [];
    let next = 0;
    for (const entry of this.#entries) {
      while (next < sorted.length && sorted[next]!.token < entry.token)
        merged.push(sorted[next++]!);
      merged.push(sorted[next]?.token === entry.token ? sorted[next++]! : entry);
    }
    while (next < sorted.length) merged.push(sorted[next++]!);
    return merged;
  }

  /** The entry list, ready to change in place: copied if a snapshot of it is out. */
  #writableEntries(): RingEntry[] {
    if (this.#entriesShared) {
      this.#entries = [...this.#entries];
      this.#entriesShared = false;
    }
    return this.#entries;
  }

  /** Our own entries, sorted by token. */
  #ownEntries(): RingEntry[] {
    return [...this.#mine]
      .map((token) => this.#byToken.get(token)!)
      .sort((a, b) => a.token - b.token);
  }

  #delta(entries: readonly RingEntry[], removals: readonly Removal[] = []): RingDelta {
    const delta = {
      range: this.range,
      seeds: this.#seeds,
      entries: [...entries].sort((a, b) => a.token - b.token),
    };
    return removals.length === 0 ? delta : { ...delta, removals };
  }

  #identityKey(): string {
    return `ring ${formatRange(this.range)} seeded by ${this.#seeds.join(",")}`;
  }

  #count(code: RingRejectionCode): void {
    this.#rejected[code] = (this.#rejected[code] ?? 0) + 1;
  }
}

/**
 * Per lane of the entry hash: a start value and an odd multiplier (the fractional parts
 * of the square and cube roots of the first primes, as SHA-256 uses them: arbitrary
 * constants nobody chose).
 */
const LANE_STARTS = [
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const LANE_MULTIPLIERS = [
  0x428a2f99, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a5, 0xab1c5ed5,
];
const TWO_TO_32 = 2 ** 32;

/**
 * Adds (`sign` 1) or takes away (-1) an entry's 256-bit hash, 8 lanes of 32 bits, to the
 * lane-wise sum. The digest must tell different rings apart, by accident never; it need
 * not stop a forger, who as a member can lie about entries outright (see the header). So
 * each lane is a multiply-xorshift over the entry's fields with its own constants: well
 * under a microsecond, where SHA-256 per entry cost more than all the rest of a merge.
 */
function addEntryHash(sum: Uint32Array, entry: RingEntry, sign: 1 | -1): void {
  const { owner, token, end, version, free } = entry;
  for (let lane = 0; lane < 8; lane++) {
    const multiplier = LANE_MULTIPLIERS[lane]!;
    let h = LANE_STARTS[lane]!;
    for (let i = 0; i < owner.length; i++) h = mix(h, owner.charCodeAt(i), multiplier);
    h = mix(h, owner.length, multiplier);
    h = mix(mix(h, token >>> 0, multiplier), Math.floor(token / TWO_TO_32), multiplier);
    h = mix(mix(h, end >>> 0, multiplier), Math.floor(end / TWO_TO_32), multiplier);
    h = mix(mix(h, version >>> 0, multiplier), Math.floor(version / TWO_TO_32), multiplier);
    h = mix(mix(h, free >>> 0, multiplier), Math.floor(free / TWO_TO_32), multiplier);
    h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
    h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
    h ^= h >>> 16;
    sum[lane] = (sum[lane]! + sign * (h >>> 0)) >>> 0;
  }
}

/** One step of a lane: the 32-bit state with one more word in it. */
function mix(state: number, word: number, multiplier: number): number {
  const h = Math.imul(state ^ word, multiplier);
  return h ^ (h >>> 15);
}

/** Whichever of two optional entries `better` prefers; the one there if only one is. */
function closer(
  a: RingEntry | undefined,
  b: RingEntry | undefined,
  better: (a: RingEntry, b: RingEntry) => boolean,
): RingEntry | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return better(a, b) ? a : b;
}
