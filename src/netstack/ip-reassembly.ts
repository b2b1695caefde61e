/**
 * IP fragment reassembly for the Netstack (RFC 791 §3.2 and RFC 815 for IPv4, RFC 8200
 * §4.5 for IPv6): the fragments of one datagram, keyed by source, destination,
 * identification (and protocol for IPv4), are kept as sorted, non-overlapping ranges
 * until they cover the datagram from 0 to the end the last fragment names.
 *
 * Defences, each counted as a drop reason by the caller:
 * - overlap: a fragment that overlaps another (other than an exact duplicate, which is
 *   ignored) abandons the whole datagram, and later fragments of it are dropped until
 *   its timer runs out (RFC 5722 for IPv6; for IPv4 the same, since overlaps are how
 *   RFC 1858 attacks rewrite a header that a filter already looked at);
 * - too big: a datagram whose data would pass 65535 bytes;
 * - tiny: a first fragment that splits the transport header (RFC 1858 §3.1), and an
 *   IPv4 TCP fragment at offset 8 (RFC 1858 §3.2);
 * - inconsistent: two different ends, or data past the end;
 * - timeout: 30 s for IPv4 (RFC 1122 §3.3.2 suggests 60 to 120 s; Linux uses 30 s), 60 s
 *   for IPv6 (RFC 8200 §4.5), checked lazily when fragments arrive (the Netstack has no
 *   timers);
 * - memory: at most `maxBytes` held (data plus a per-fragment overhead, so a flood of
 *   8-byte fragments is bounded too) in at most `maxEntries` datagrams, the oldest
 *   evicted first to make room.
 */

/** The fragment-header facts reassembly needs. */
export interface FragmentPiece {
  /** Where the data starts in the datagram's data, in bytes (a multiple of 8). */
  readonly offsetBytes: number;
  readonly moreFragments: boolean;
  /** The fragment's data; copied when kept. */
  readonly data: Uint8Array;
}

export type ReassemblyDrop =
  | "fragment-overlap"
  | "fragment-too-big"
  | "fragment-tiny"
  | "fragment-inconsistent"
  | "fragment-abandoned"
  | "fragment-bad-length";

export type ReassemblyResult<H> =
  /** Held, waiting for more. */
  | { readonly kind: "held" }
  /** Refused (the datagram may have been abandoned with it). */
  | { readonly kind: "dropped"; readonly reason: ReassemblyDrop }
  /** Complete: the first fragment's `header` and the datagram's data. */
  | { readonly kind: "complete"; readonly header: H; readonly data: Uint8Array };

export interface ReassemblerOptions {
  /** Bytes held at most over all datagrams; 4 MiB by default. */
  readonly maxBytes?: number;
  /** Datagrams in reassembly at most; 64 by default. */
  readonly maxEntries?: number;
}

export const DEFAULT_REASSEMBLY_MAX_BYTES = 4 * 1024 * 1024;
export const DEFAULT_REASSEMBLY_MAX_ENTRIES = 64;
export const IPV4_REASSEMBLY_TIMEOUT_MS = 30_000;
export const IPV6_REASSEMBLY_TIMEOUT_MS = 60_000;
/** What a held fragment costs beyond its data (bookkeeping), for the memory bound. */
export const FRAGMENT_OVERHEAD_BYTES = 64;
const MAX_DATAGRAM_DATA_BYTES = 0xffff;

interface Range {
  readonly start: number;
  readonly end: number;
  readonly data: Uint8Array;
}

interface Entry<H> {
  readonly expiresAtMs: number;
  ranges: Range[];
  /** Set by the fragment at offset 0. */
  header: H | undefined;
  /** The datagram's data length, once the last fragment (More Fragments clear) came. */
  end: number | undefined;
  bytes: number;
  /** Abandoned after an overlap: fragments are dropped until it expires. */
  abandoned: boolean;
}

/** What went away without completing, for the caller's counters. */
export interface ReassemblyLosses {
  timedOut: number;
  evicted: number;
}

/**
 * Datagrams in reassembly, of one IP version (`H` is what the caller keeps of the first
 * fragment to rebuild the packet: its header).
 */
export class Reassembler<H> {
  readonly #maxBytes: number;
  readonly #maxEntries: number;
  readonly #timeoutMs: number;
  /** In arrival order of each datagram's first fragment: the oldest first. */
  readonly #entries = new Map<string, Entry<H>>();
  #bytes = 0;
  readonly losses: ReassemblyLosses = { timedOut: 0, evicted: 0 };

  constructor(timeoutMs: number, options: ReassemblerOptions = {}) {
    this.#timeoutMs = timeoutMs;
    this.#maxBytes = options.maxBytes ?? DEFAULT_REASSEMBLY_MAX_BYTES;
    this.#maxEntries = options.maxEntries ?? DEFAULT_REASSEMBLY_MAX_ENTRIES;
    for (const [name, value] of [
      ["maxBytes", this.#maxBytes],
      ["maxEntries", this.#maxEntries],
    ] as const) {
      if (!Number.isInteger(value) || value < 1) {
        throw new RangeError(`Expected "${name}" to be a positive integer, got ${value}`);
      }
    }
  }

  /** Bytes held now (data and per-fragment overhead). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Datagrams in reassembly now (abandoned ones included until they expire). */
  get entries(): number {
    return this.#entries.size;
  }

  /**
   * Adds a fragment of the datagram `key` at time `nowMs`. `header` is kept when this is
   * the first fragment (offset 0); `minFirstBytes` is how much data a first fragment
   * that is not also the last must carry (the transport header).
   */
  add(
    key: string,
    piece: FragmentPiece,
    header: H,
    nowMs: number,
    minFirstBytes: number,
  ): ReassemblyResult<H> {
    this.#expire(nowMs);
    const start = piece.offsetBytes;
    const end = start + piece.data.length;
    let entry = this.#entries.get(key);
    if (entry?.abandoned) return dropped("fragment-abandoned");
    if (end > MAX_DATAGRAM_DATA_BYTES) return this.#abandon(entry, "fragment-too-big");
    if (start === 0 && piece.moreFragments && piece.data.length < minFirstBytes) {
      return this.#abandon(entry, "fragment-tiny");
    }
    // A malformed fragment is dropped alone: it says nothing about the others.
    if (piece.moreFragments && (piece.data.length % 8 !== 0 || piece.data.length === 0)) {
      return dropped("fragment-bad-length");
    }
    if (entry !== undefined) {
      if (!piece.moreFragments && entry.end !== undefined && entry.end !== end) {
        return this.#abandon(entry, "fragment-inconsistent");
      }
      const limit = piece.moreFragments ? entry.end : end;
      if (limit !== undefined && entry.ranges.some((r) => r.end > limit)) {
        return this.#abandon(entry, "fragment-inconsistent");
      }
      if (entry.end !== undefined && end > entry.end) {
        return this.#abandon(entry, "fragment-inconsistent");
      }
    }
    // Where it goes among the sorted ranges, and whether it overlaps a neighbour.
    const ranges = entry?.ranges ?? [];
    let at = 0;
    while (at < ranges.length && ranges[at]!.start < start) at++;
    const same = ranges[at];
    if (same !== undefined && same.start === start && same.end === end) {
      // An exact duplicate (a retransmission) is ignored; the same place with other
      // bytes is an overlap like any other.
      if (sameBytes(same.data, piece.data)) return { kind: "held" };
      return this.#abandon(entry, "fragment-overlap");
    }
    const before = ranges[at - 1];
    if ((before !== undefined && before.end > start) || (same !== undefined && same.start < end)) {
      return this.#abandon(entry, "fragment-overlap");
    }
    const cost = piece.data.length + FRAGMENT_OVERHEAD_BYTES;
    if (entry === undefined) {
      this.#makeRoom(cost, 1);
      entry = {
        expiresAtMs: nowMs + this.#timeoutMs,
        ranges,
        header: undefined,
        end: undefined,
        bytes: 0,
        abandoned: false,
      };
      this.#entries.set(key, entry);
    } else {
      this.#makeRoom(cost, 0, key);
      if (!this.#entries.has(key)) return dropped("fragment-abandoned"); // cannot happen
    }
    ranges.splice(at, 0, { start, end, data: piece.data.slice() });
    entry.bytes += cost;
    this.#bytes += cost;
    if (start === 0) entry.header = header;
    if (!piece.moreFragments) entry.end = end;
    if (entry.end === undefined || entry.header === undefined) return { kind: "held" };
    // Complete when the sorted ranges run from 0 to the end without a gap.
    let covered = 0;
    for (const r of ranges) {
      if (r.start !== covered) return { kind: "held" };
      covered = r.end;
    }
    if (covered !== entry.end) return { kind: "held" };
    const data = new Uint8Array(covered);
    for (const r of ranges) data.set(r.data, r.start);
    this.#remove(key, entry);
    return { kind: "complete", header: entry.header, data };
  }

  /** Drops datagrams whose time is up. */
  #expire(nowMs: number): void {
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAtMs > nowMs) continue;
      if (!entry.abandoned) this.losses.timedOut++;
      this.#remove(key, entry);
    }
  }

  /** Evicts the oldest datagrams (never `keep`) until `bytes` more and `entries` more fit. */
  #makeRoom(bytes: number, entries: number, keep?: string): void {
    for (const [key, entry] of this.#entries) {
      if (
        this.#bytes + bytes <= this.#maxBytes &&
        this.#entries.size + entries <= this.#maxEntries
      ) {
        return;
      }
      if (key === keep) continue;
      if (!entry.abandoned) this.losses.evicted++;
      this.#remove(key, entry);
    }
  }

  /** Abandons a datagram: its data goes, its key stays (empty) until it expires. */
  #abandon(entry: Entry<H> | undefined, reason: ReassemblyDrop): ReassemblyResult<H> {
    if (entry !== undefined) {
      this.#bytes -= entry.bytes;
      entry.bytes = 0;
      entry.ranges = [];
      entry.header = undefined;
      entry.abandoned = true;
    }
    return dropped(reason);
  }

  #remove(key: string, entry: Entry<H>): void {
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
  }
}

function dropped<H>(reason: ReassemblyDrop): ReassemblyResult<H> {
  return { kind: "dropped", reason };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
