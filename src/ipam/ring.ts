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
 */
import { sha256 } from "@noble/hashes/sha2.js";
import type { GossipState, PeerKey, Summary } from "../mesh/gossip-state.ts";
import { type Address, type AddressRange, formatRange } from "./address.ts";
import { RingRejected, type RingRejectionCode, RingSeedMismatch } from "./errors.ts";
import { preferredRemoval, type Removal, TAKEOVER_VERSION_STEP } from "./reclaim.ts";
import { decodeRingItems, encodeRingItems, sameSeeds } from "./ring-codec.ts";
import {
  findInvariantViolation,
  findSegment,
  type OwnedSegment,
  ownershipSegments,
  type RingDelta,
  type RingEntry,
  sameEntry,
  seedEntries,
} from "./ring-entries.ts";

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
  /** Sorted by token; replaced, never mutated, so snapshots handed out stay valid. */
  #entries: readonly RingEntry[] = [];
  #byToken = new Map<number, RingEntry>();
  #segments: readonly OwnedSegment[] = [];
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

  /** Every entry, sorted by token (a snapshot). */
  entries(): readonly RingEntry[] {
    return this.#entries;
  }

  /** The peer that owns `address` as far as this replica knows; undefined outside any known entry. */
  ownerOf(address: Address): PeerKey | undefined {
    return findSegment(this.#segments, address)?.owner;
  }

  /** The ranges `peer`'s own entries cover (exact for the local peer, which wrote them). */
  rangesOf(peer: PeerKey): AddressRange[] {
    return this.#entries
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
    this.#commit(seedEntries(this.range, sorted, freeOf));
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
    this.#commit([...saved.entries]);
  }

  /**
   * Hands [block.start, block.end) to `to`. The block must lie inside one entry we own
   * and hold no allocation (the allocator's job). Splits that entry into up to three:
   * ours before, theirs, ours after. Returns the changed entries.
   */
  grant(block: AddressRange, to: PeerKey, freeOf: FreeCounter): RingDelta {
    const host = this.#entries.find(
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
    for (const entry of this.#entries) {
      if (entry.owner !== this.me) continue;
      const free = freeOf(entry.token, entry.end);
      if (free !== entry.free) changed.push({ ...entry, free, version: entry.version + 1 });
    }
    if (changed.length === 0) return null;
    this.#apply(changed);
    return this.#delta(changed);
  }

  digest(): Uint8Array {
    if (this.#digest === undefined) {
      // Entries enter through their running sum (see #commit), so a digest after a merge
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
    const summary = new Map<string, number>();
    if (!this.isSeeded()) return summary;
    summary.set(this.#identityKey(), 1);
    for (const entry of this.#entries) summary.set(String(entry.token), entry.version);
    for (const dead of this.#removals.keys()) summary.set(`removed ${dead}`, 1);
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
    const candidate = new Map(this.#byToken);
    const changed: RingEntry[] = [];
    for (const theirs of delta.entries) {
      const mine = candidate.get(theirs.token);
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
    const entries = [...candidate.values()].sort((a, b) => a.token - b.token);
    const violation = findInvariantViolation(entries, this.range, this.me);
    if (violation !== undefined) {
      const code = violation.includes(`the range ${this.me} owns`) ? "INSIDE_OUR_RANGE" : "OVERLAP";
      throw new RingRejected(code, `Refusing ring delta from ${from}: ${violation}`);
    }
    const adoptedSeeds = !this.isSeeded();
    if (adoptedSeeds) this.#seeds = [...delta.seeds];
    this.#removals = removals;
    this.#commit(entries);
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
    const candidate = new Map(this.#byToken);
    for (const entry of changed) candidate.set(entry.token, entry);
    const entries = [...candidate.values()].sort((a, b) => a.token - b.token);
    const violation = findInvariantViolation(entries, this.range, this.me);
    if (violation !== undefined)
      throw new Error(`Ring invariant broken by a local change: ${violation}`);
    this.#commit(entries);
  }

  #commit(entries: readonly RingEntry[]): void {
    const byToken = new Map(entries.map((entry) => [entry.token, entry]));
    // Entries are immutable records: only those that are not the same object changed.
    for (const [token, old] of this.#byToken) {
      if (byToken.get(token) !== old) addLanes(this.#entrySum, entryHash(old), -1);
    }
    for (const entry of entries) {
      if (this.#byToken.get(entry.token) !== entry) addLanes(this.#entrySum, entryHash(entry), 1);
    }
    this.#entries = entries;
    this.#byToken = byToken;
    this.#segments = ownershipSegments(entries);
    this.#digest = undefined;
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

const entryHashes = new WeakMap<RingEntry, Uint32Array>();

/** SHA-256 of an entry's fields as 8 words, cached per (immutable) entry object. */
function entryHash(entry: RingEntry): Uint32Array {
  let hash = entryHashes.get(entry);
  if (hash === undefined) {
    const text = `${entry.token} ${entry.end} ${entry.owner} ${entry.version} ${entry.free}`;
    const bytes = sha256(new TextEncoder().encode(text));
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    hash = Uint32Array.from({ length: 8 }, (_, i) => view.getUint32(i * 4));
    entryHashes.set(entry, hash);
  }
  return hash;
}

function addLanes(sum: Uint32Array, hash: Uint32Array, sign: 1 | -1): void {
  for (let i = 0; i < 8; i++) sum[i] = (sum[i]! + sign * hash[i]!) >>> 0;
}
