/**
 * DNS entry deltas and their gossip items. A delta is a list of chunks; a chunk is one
 * owner's claim "these are all my entries whose current version lies in (after, upTo]"
 * (see entries.ts for why a claim, not a bare list). An item is one chunk as CBOR-ready
 * arrays, so any subset of items is a valid delta:
 *
 *   [FORMAT, owner, after, upTo, [[name, address bytes, version, deleted], ...]]
 *
 * `decodeItems` checks everything before anything is used and throws `GossipRejected`.
 */
import { GossipRejected, type PeerKey } from "../mesh/gossip-state.ts";
import { formatIp, IPV4_BYTES, IPV6_BYTES, parseIp } from "../net/ip.ts";
import { MAX_ENTRIES_PER_ITEM, MAX_ITEMS_PER_DELTA } from "./constants.ts";
import { normaliseName } from "./names.ts";

/** One name-to-address registration as replicated. */
export interface DnsEntry {
  /** Normalised: lowercase ASCII, trailing dot. */
  readonly name: string;
  /** IPv4 or IPv6 text as `formatIp` writes it. */
  readonly address: string;
  /** The owner's counter when it last changed this entry. */
  readonly version: number;
  /** A tombstone: the owner removed it. */
  readonly deleted: boolean;
}

/** One owner's entries with versions in (after, upTo], claimed complete. */
export interface DnsChunk {
  readonly owner: PeerKey;
  readonly after: number;
  readonly upTo: number;
  /** Sorted by version; versions are distinct (each change of an owner has its own). */
  readonly entries: readonly DnsEntry[];
}

export interface DnsDelta {
  readonly chunks: readonly DnsChunk[];
}

const FORMAT = 1;
// A WireGuard public key as `wg` prints it: 32 bytes in padded base64.
const PEER_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
// CBOR sizes, generously: item header, owner, two 9-byte integers; per entry its framing.
const ITEM_OVERHEAD_BYTES = 80;
const ENTRY_OVERHEAD_BYTES = 16;
const encoder = new TextEncoder();

/** An estimate, from above, of one entry's encoded size. */
function entryBytes(entry: DnsEntry): number {
  const addressBytes = entry.address.includes(":") ? IPV6_BYTES : IPV4_BYTES;
  return encoder.encode(entry.name).length + addressBytes + ENTRY_OVERHEAD_BYTES;
}

/**
 * Items of at most about `maxItemBytes` each. A chunk too big for one item is cut at entry
 * versions into smaller chunks, each still a complete claim for its narrower range.
 */
export function encodeItems(delta: DnsDelta, maxItemBytes: number): unknown[] {
  const items: unknown[] = [];
  for (const chunk of delta.chunks) {
    let after = chunk.after;
    let piece: DnsEntry[] = [];
    let bytes = ITEM_OVERHEAD_BYTES;
    for (const entry of chunk.entries) {
      const size = entryBytes(entry);
      if (
        piece.length > 0 &&
        (bytes + size > maxItemBytes || piece.length >= MAX_ENTRIES_PER_ITEM)
      ) {
        const upTo = piece.at(-1)!.version;
        items.push(toItem(chunk.owner, after, upTo, piece));
        after = upTo;
        piece = [];
        bytes = ITEM_OVERHEAD_BYTES;
      }
      piece.push(entry);
      bytes += size;
    }
    items.push(toItem(chunk.owner, after, chunk.upTo, piece));
  }
  return items;
}

function toItem(owner: PeerKey, after: number, upTo: number, entries: readonly DnsEntry[]) {
  const wireEntries = entries.map((e) => [e.name, parseIp(e.address)!, e.version, e.deleted]);
  return [FORMAT, owner, after, upTo, wireEntries];
}

/** Parses gossip items into a delta; throws `GossipRejected` naming what is wrong. */
export function decodeItems(items: readonly unknown[]): DnsDelta {
  if (!Array.isArray(items)) throw new GossipRejected("DNS delta is not a list of items");
  if (items.length > MAX_ITEMS_PER_DELTA) {
    throw new GossipRejected(
      `DNS delta has ${items.length} items, more than ${MAX_ITEMS_PER_DELTA}`,
    );
  }
  return { chunks: items.map((item, index) => decodeItem(item, index)) };
}

function decodeItem(item: unknown, index: number): DnsChunk {
  const reject = (why: string): never => {
    throw new GossipRejected(`DNS item ${index}: ${why}`);
  };
  if (!Array.isArray(item) || item.length !== 5) return reject("not a 5-element list");
  const [format, owner, after, upTo, wireEntries] = item as unknown[];
  if (format !== FORMAT) return reject(`unknown format ${String(format)}`);
  if (typeof owner !== "string" || !PEER_KEY.test(owner)) return reject("owner is not a peer key");
  if (!isVersion(after) || !isVersion(upTo) || after >= upTo) {
    return reject("range is not two versions with after < upTo");
  }
  if (!Array.isArray(wireEntries) || wireEntries.length > MAX_ENTRIES_PER_ITEM) {
    return reject(`entries are not a list of at most ${MAX_ENTRIES_PER_ITEM}`);
  }
  const entries: DnsEntry[] = [];
  const versions = new Set<number>();
  const keys = new Set<string>();
  for (const wire of wireEntries as unknown[]) {
    const entry = decodeEntry(wire);
    if (typeof entry === "string") return reject(entry);
    if (entry.version <= after || entry.version > upTo)
      return reject("entry version outside range");
    const key = entryKey(entry.name, entry.address);
    if (versions.has(entry.version) || keys.has(key)) return reject("duplicate version or entry");
    versions.add(entry.version);
    keys.add(key);
    entries.push(entry);
  }
  entries.sort((a, b) => a.version - b.version);
  return { owner, after, upTo, entries };
}

/** An entry, or the reason it is not one. */
function decodeEntry(wire: unknown): DnsEntry | string {
  if (!Array.isArray(wire) || wire.length !== 4) return "entry is not a 4-element list";
  const [name, address, version, deleted] = wire as unknown[];
  if (typeof name !== "string" || normaliseName(name) !== name) return "name is not normalised";
  if (!(address instanceof Uint8Array)) return "address is not bytes";
  if (address.length !== IPV4_BYTES && address.length !== IPV6_BYTES) {
    return "address is not 4 or 16 bytes";
  }
  if (!isVersion(version) || version === 0) return "version is not a positive integer";
  if (typeof deleted !== "boolean") return "deleted flag is not a boolean";
  return { name, address: formatIp(Uint8Array.from(address)), version, deleted };
}

function isVersion(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** The identity of an entry within its owner: name and address (a space is in neither). */
export function entryKey(name: string, address: string): string {
  return `${name} ${address}`;
}
