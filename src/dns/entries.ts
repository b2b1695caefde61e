/**
 * DNS entries as a CRDT on the gossip contract (`../mesh/gossip-state.ts`): which names
 * map to which addresses, registered by which peer.
 *
 * - An entry is (owner, name, address) with a version and a tombstone flag. Only the
 *   owner changes its entries (`add`, `remove`), and each change takes the next value of
 *   the owner's counter, so versions order changes without any wall clock and are
 *   distinct within an owner. Merge keeps the higher version per entry.
 * - Summary: owner -> watermark, the version up to which this replica knows all of the
 *   owner's entries, so a converged summary has one number per peer.
 * - Deltas are claims: a chunk says "these are all of owner O's entries whose current
 *   version is in (after, upTo]". A bare list would not do: a replica that got version 5
 *   but lost version 3 could not tell it misses something, and a summary of its highest
 *   version would hide the gap from anti-entropy forever. With claims a replica records
 *   which ranges it has complete (`coverage.ts`), its watermark only advances over
 *   contiguous ranges, and `deltaFor` resends from there.
 * - What claims prove: an entry whose version is covered but which this replica does not
 *   hold is dead (deleted, superseded by a newer version, or collected), since every
 *   claim covering its version was made after it existed and would have listed it while
 *   it lived. So a covered version never comes back from a stale replica, and held
 *   entries of a claimed range that the claim does not list are dropped. Merging is a
 *   function of the union of the claims received: commutative, associative, idempotent.
 *
 * Tombstones are collected `tombstoneTtlMs` after this replica learned of them, on its
 * own monotonic clock: no replica compares its clock with another's. That is safe because
 * a tombstone is always covered (entries arrive only inside claims), so once collected
 * its own version and every older one of the same entry are covered and refused; a stale
 * add can only return through a replica that still holds the live entry below its
 * watermark and never received the tombstone. Anti-entropy runs every few seconds
 * between connected peers, so every replica learns a tombstone long before the TTL (an
 * hour) ends; only a replica cut off from every other for longer than the TTL could keep
 * a deleted entry alive, and only on itself, since a replica never sends entries below
 * another's watermark.
 */
import { blake2s } from "@noble/hashes/blake2.js";
import type { Clock } from "../clock.ts";
import {
  GossipRejected,
  type GossipState,
  type PeerKey,
  type Summary,
} from "../mesh/gossip-state.ts";
import { formatIp, parseIp } from "../net/ip.ts";
import { MAX_ENTRIES_PER_OWNER, MAX_RANGES_PER_OWNER, TOMBSTONE_TTL_MS } from "./constants.ts";
import {
  addRange,
  type Coverage,
  covers,
  coversRange,
  rangesAbove,
  watermark,
} from "./coverage.ts";
import {
  type DnsChunk,
  type DnsDelta,
  type DnsEntry,
  decodeItems,
  encodeItems,
  entryKey,
} from "./entry-wire.ts";
import { normaliseName } from "./names.ts";

export type { DnsChunk, DnsDelta, DnsEntry } from "./entry-wire.ts";

/** A live name-to-address record as lookups return it. */
export interface DnsRecord {
  readonly name: string;
  readonly address: string;
  readonly owner: PeerKey;
}

/** An entry as the CLI lists it: with its owner and how long this replica has known it. */
export interface DnsEntryInfo extends DnsEntry {
  readonly owner: PeerKey;
  readonly ageMs: number;
}

export interface DnsEntriesOptions {
  /** This peer's key: the owner of what `add` and `remove` change. */
  readonly self: PeerKey;
  /** Monotonic time, for tombstone collection and entry ages. */
  readonly clock: Clock;
  /** How long a tombstone is kept after it was learned; `TOMBSTONE_TTL_MS` by default. */
  readonly tombstoneTtlMs?: number;
}

interface StoredEntry extends DnsEntry {
  readonly learnedAt: number;
}

interface OwnerState {
  entries: Map<string, StoredEntry>;
  coverage: Coverage;
}

/** Staged changes to one owner during a merge: nothing is applied until all of a delta passed. */
interface Staged {
  readonly owner: PeerKey;
  readonly base: OwnerState;
  readonly overlay: Map<string, StoredEntry | null>;
  coverage: Coverage;
  size: number;
}

/**
 * One replica of the DNS entries. A class: the indexes by name and address must stay in
 * step with the entries.
 *
 * @example
 * ```ts
 * const entries = new DnsEntries({ self: myKey, clock });
 * const update = entries.add("web.weft.internal", "10.40.0.7");
 * if (update) channel.broadcast(update);
 * entries.lookup("WEB.weft.internal."); // [{ name, address: "10.40.0.7", owner: myKey }]
 * ```
 */
export class DnsEntries implements GossipState<DnsDelta> {
  readonly #self: PeerKey;
  readonly #clock: Clock;
  readonly #tombstoneTtlMs: number;
  readonly #owners = new Map<PeerKey, OwnerState>();
  readonly #removed = new Set<PeerKey>();
  /** Live records by name, then by `owner address`. */
  readonly #byName = new Map<string, Map<string, DnsRecord>>();
  /** Live records by address, then by `owner name`. */
  readonly #byAddress = new Map<string, Map<string, DnsRecord>>();
  /** Tombstones in the order learned (the clock is monotonic, so also by expiry). */
  #tombstones: { owner: PeerKey; key: string; version: number; learnedAt: number }[] = [];
  /** Counts changes to the live records, so servers know when cached answers are stale. */
  #generation = 0;

  constructor(options: DnsEntriesOptions) {
    this.#self = options.self;
    this.#clock = options.clock;
    this.#tombstoneTtlMs = options.tombstoneTtlMs ?? TOMBSTONE_TTL_MS;
  }

  /**
   * Registers `address` under `name` for this peer. Returns the delta to broadcast, or
   * null when it was already registered. Throws `RangeError` for a name or address that
   * is not valid, or when this peer has too many entries.
   */
  add(name: string, address: string): DnsDelta | null {
    const entry = this.#ownEntry(name, address);
    const current = this.#ownerState(this.#self).entries.get(entryKey(entry.name, entry.address));
    if (current !== undefined && !current.deleted) return null;
    if (
      current === undefined &&
      this.#ownerState(this.#self).entries.size >= MAX_ENTRIES_PER_OWNER
    ) {
      throw new RangeError(`Cannot register more than ${MAX_ENTRIES_PER_OWNER} entries`);
    }
    return this.#changeOwn(entry.name, entry.address, false);
  }

  /** Unregisters `address` under `name` for this peer; the delta to broadcast, or null if it was not registered. */
  remove(name: string, address: string): DnsDelta | null {
    const entry = this.#ownEntry(name, address);
    const current = this.#owners.get(this.#self)?.entries.get(entryKey(entry.name, entry.address));
    if (current === undefined || current.deleted) return null;
    return this.#changeOwn(entry.name, entry.address, true);
  }

  /**
   * Forgets every entry of `peer` on this replica, and ignores its entries from now on
   * (a lagging replica may still gossip them). The mesh calls this on every peer when
   * `peer` is removed from the mesh. Returns whether anything was held.
   */
  removePeer(peer: PeerKey): boolean {
    this.#removed.add(peer);
    const state = this.#owners.get(peer);
    if (state === undefined) return false;
    for (const entry of state.entries.values()) this.#unindex(peer, entry);
    this.#owners.delete(peer);
    return true;
  }

  /** Live records of `name` (any case, with or without trailing dot), from every owner. */
  lookup(name: string): DnsRecord[] {
    const normal = normaliseName(name);
    if (normal === undefined) return [];
    return [...(this.#byName.get(normal)?.values() ?? [])];
  }

  /** Whether some live record has a name strictly below `name` (an empty non-terminal). */
  hasNamesBelow(name: string): boolean {
    const suffix = `.${name}`;
    for (const candidate of this.#byName.keys()) if (candidate.endsWith(suffix)) return true;
    return false;
  }

  /** Live records of `address` (IPv4 or IPv6 text in any spelling). */
  reverseLookup(address: string): DnsRecord[] {
    const bytes = parseIp(address);
    if (bytes === undefined) return [];
    return [...(this.#byAddress.get(formatIp(bytes))?.values() ?? [])];
  }

  /** Changes whenever a lookup's result may have: for caches of answers. */
  generation(): number {
    return this.#generation;
  }

  /** Every entry held, tombstones included, with owner and age: for `weft dns ls`. */
  list(): DnsEntryInfo[] {
    this.collectTombstones();
    const now = this.#clock.now();
    const out: DnsEntryInfo[] = [];
    for (const [owner, state] of this.#owners) {
      for (const e of state.entries.values()) {
        out.push({
          name: e.name,
          address: e.address,
          version: e.version,
          deleted: e.deleted,
          owner,
          ageMs: now - e.learnedAt,
        });
      }
    }
    return out;
  }

  /** Drops tombstones learned more than the TTL ago; returns how many. Cheap when none are due. */
  collectTombstones(): number {
    const now = this.#clock.now();
    let due = 0;
    while (
      due < this.#tombstones.length &&
      now - this.#tombstones[due]!.learnedAt >= this.#tombstoneTtlMs
    ) {
      due++;
    }
    if (due === 0) return 0;
    let collected = 0;
    for (const t of this.#tombstones.slice(0, due)) {
      const entries = this.#owners.get(t.owner)?.entries;
      const entry = entries?.get(t.key);
      if (entry?.deleted && entry.version === t.version) {
        entries!.delete(t.key);
        collected++;
      }
    }
    this.#tombstones = this.#tombstones.slice(due);
    return collected;
  }

  // --- GossipState ---

  digest(): Uint8Array {
    const lines: string[] = [];
    for (const owner of [...this.#owners.keys()].sort()) {
      const ranges = this.#owners.get(owner)!.coverage.map((r) => `${r.after}-${r.upTo}`);
      lines.push(`${owner} ${ranges.join(",")}`);
    }
    return blake2s(new TextEncoder().encode(lines.join("\n")));
  }

  summary(): Summary {
    const summary = new Map<string, number>();
    for (const [owner, state] of this.#owners) summary.set(owner, watermark(state.coverage));
    return summary;
  }

  deltaFor(theirs: Summary): DnsDelta | null {
    this.collectTombstones();
    const chunks: DnsChunk[] = [];
    for (const [owner, state] of this.#owners) {
      const ranges = rangesAbove(state.coverage, theirs.get(owner) ?? 0);
      if (ranges.length === 0) continue;
      const sorted = [...state.entries.values()].sort((a, b) => a.version - b.version);
      for (const range of ranges) {
        const entries = sorted
          .filter((e) => e.version > range.after && e.version <= range.upTo)
          .map(publicEntry);
        chunks.push({ owner, after: range.after, upTo: range.upTo, entries });
      }
    }
    return chunks.length === 0 ? null : { chunks };
  }

  merge(delta: DnsDelta, _from: PeerKey): DnsDelta | null {
    this.collectTombstones();
    const now = this.#clock.now();
    const byOwner = new Map<PeerKey, DnsChunk[]>();
    for (const chunk of delta.chunks) {
      if (this.#removed.has(chunk.owner)) continue;
      const list = byOwner.get(chunk.owner) ?? [];
      list.push(chunk);
      byOwner.set(chunk.owner, list);
    }
    const staged: Staged[] = [];
    const changed: DnsChunk[] = [];
    for (const [owner, chunks] of byOwner) {
      const base = this.#owners.get(owner) ?? { entries: new Map(), coverage: [] };
      const stage: Staged = {
        owner,
        base,
        overlay: new Map(),
        coverage: base.coverage,
        size: base.entries.size,
      };
      chunks.sort((a, b) => a.after - b.after || a.upTo - b.upTo);
      for (const chunk of chunks) if (applyChunk(stage, chunk, now)) changed.push(chunk);
      if (stage.size > MAX_ENTRIES_PER_OWNER) {
        throw new GossipRejected(
          `DNS delta would give ${owner} more than ${MAX_ENTRIES_PER_OWNER} entries`,
        );
      }
      staged.push(stage);
    }
    for (const stage of staged) this.#commit(stage);
    return changed.length === 0 ? null : { chunks: changed };
  }

  encode(delta: DnsDelta, maxItemBytes: number): unknown[] {
    return encodeItems(delta, maxItemBytes);
  }

  decode(items: readonly unknown[]): DnsDelta {
    return decodeItems(items);
  }

  // --- internals ---

  #ownEntry(name: string, address: string): { name: string; address: string } {
    const normal = normaliseName(name);
    if (normal === undefined)
      throw new RangeError(`Expected "name" to be a DNS name, got "${name}"`);
    const bytes = parseIp(address);
    if (bytes === undefined) {
      throw new RangeError(`Expected "address" to be an IPv4 or IPv6 address, got "${address}"`);
    }
    return { name: normal, address: formatIp(bytes) };
  }

  #ownerState(owner: PeerKey): OwnerState {
    let state = this.#owners.get(owner);
    if (state === undefined) {
      state = { entries: new Map(), coverage: [] };
      this.#owners.set(owner, state);
    }
    return state;
  }

  #changeOwn(name: string, address: string, deleted: boolean): DnsDelta {
    this.#removed.delete(this.#self);
    const state = this.#ownerState(this.#self);
    // Past everything known of our own, even ranges learned back after a restart.
    const after = state.coverage.at(-1)?.upTo ?? 0;
    const entry: DnsEntry = { name, address, version: after + 1, deleted };
    const chunk: DnsChunk = { owner: this.#self, after, upTo: after + 1, entries: [entry] };
    this.merge({ chunks: [chunk] }, this.#self);
    return { chunks: [chunk] };
  }

  #commit(stage: Staged): void {
    const state = this.#ownerState(stage.owner);
    for (const [key, next] of stage.overlay) {
      const previous = state.entries.get(key);
      if (previous !== undefined) this.#unindex(stage.owner, previous);
      if (next === null) {
        state.entries.delete(key);
        continue;
      }
      state.entries.set(key, next);
      if (next.deleted) {
        this.#tombstones.push({
          owner: stage.owner,
          key,
          version: next.version,
          learnedAt: next.learnedAt,
        });
      } else {
        this.#index(stage.owner, next);
      }
    }
    state.coverage = stage.coverage;
  }

  #index(owner: PeerKey, entry: DnsEntry): void {
    this.#generation++;
    const record: DnsRecord = { name: entry.name, address: entry.address, owner };
    indexAdd(this.#byName, entry.name, `${owner} ${entry.address}`, record);
    indexAdd(this.#byAddress, entry.address, `${owner} ${entry.name}`, record);
  }

  #unindex(owner: PeerKey, entry: DnsEntry): void {
    if (entry.deleted) return;
    this.#generation++;
    indexDelete(this.#byName, entry.name, `${owner} ${entry.address}`);
    indexDelete(this.#byAddress, entry.address, `${owner} ${entry.name}`);
  }
}

/**
 * Applies one claim to a staged owner; returns whether it changed anything. A claim that
 * would split coverage into more than `MAX_RANGES_PER_OWNER` ranges is skipped: it comes
 * again from the watermark, which joins ranges instead.
 */
function applyChunk(stage: Staged, chunk: DnsChunk, now: number): boolean {
  const coverage = addRange(stage.coverage, chunk);
  if (coverage.length > MAX_RANGES_PER_OWNER && coverage.length > stage.coverage.length)
    return false;
  let changed = !coversRange(stage.coverage, chunk);
  const listed = new Set(chunk.entries.map((e) => `${entryKey(e.name, e.address)}#${e.version}`));
  const get = (key: string) =>
    stage.overlay.has(key) ? stage.overlay.get(key)! : stage.base.entries.get(key);
  const put = (key: string, value: StoredEntry | null) => {
    const had = get(key) != null;
    if (had && value === null) stage.size--;
    if (!had && value !== null) stage.size++;
    stage.overlay.set(key, value);
    changed = true;
  };
  // Held entries inside the claimed range that it does not list are dead.
  const held = new Set([...stage.base.entries.keys(), ...stage.overlay.keys()]);
  for (const key of held) {
    const entry = get(key);
    if (entry == null || entry.version <= chunk.after || entry.version > chunk.upTo) continue;
    if (!listed.has(`${key}#${entry.version}`)) put(key, null);
  }
  for (const entry of chunk.entries) {
    const key = entryKey(entry.name, entry.address);
    const current = get(key);
    if (current != null && current.version >= entry.version) continue;
    // Covered before this claim yet not held: collected, or superseded; never revive it.
    if (current == null && covers(stage.coverage, entry.version)) continue;
    put(key, { ...publicEntry(entry), learnedAt: now });
  }
  stage.coverage = coverage;
  return changed;
}

function publicEntry(entry: DnsEntry): DnsEntry {
  return {
    name: entry.name,
    address: entry.address,
    version: entry.version,
    deleted: entry.deleted,
  };
}

function indexAdd(
  index: Map<string, Map<string, DnsRecord>>,
  key: string,
  id: string,
  record: DnsRecord,
) {
  let inner = index.get(key);
  if (inner === undefined) {
    inner = new Map();
    index.set(key, inner);
  }
  inner.set(id, record);
}

function indexDelete(index: Map<string, Map<string, DnsRecord>>, key: string, id: string) {
  const inner = index.get(key);
  if (inner === undefined) return;
  inner.delete(id);
  if (inner.size === 0) index.delete(key);
}
