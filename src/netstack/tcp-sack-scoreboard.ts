/**
 * The sender's SACK scoreboard (RFC 2018 §4, with the hole search of RFC 6675 §4 in
 * its simplest form): which ranges above SND.UNA the peer reported holding, so fast
 * recovery can resend every hole in one round trip instead of NewReno's one per round
 * trip. Bounded in ranges; SACK is advisory, so it is cleared on a timeout (RFC 2018 §8:
 * the receiver may have reneged).
 */
import { seqDiff, seqGt, seqLe, seqLt } from "./tcp-sequence.ts";

export class SackScoreboard {
  readonly #maxRanges: number;
  /** Sorted, merged [start, end) ranges, all after SND.UNA. */
  #ranges: [number, number][] = [];

  constructor(maxRanges: number) {
    this.#maxRanges = maxRanges;
  }

  get ranges(): readonly (readonly [number, number])[] {
    return this.#ranges;
  }

  /**
   * Adds the blocks that lie within (una, max]; others (stale or forged) are ignored.
   * Returns whether they reported bytes not SACKed before (RFC 6675's DupAck test).
   */
  update(blocks: readonly (readonly [number, number])[], una: number, max: number): boolean {
    const before = this.#sackedBytes();
    for (const block of blocks) {
      const [start, end] = block;
      if (!(seqLt(start, end) && seqLt(una, end) && seqLe(end, max))) continue;
      this.#insert(seqGt(start, una) ? start : una, end, una);
    }
    return this.#sackedBytes() > before;
  }

  /** Bytes the peer reported holding above SND.UNA. */
  get sackedBytes(): number {
    return this.#sackedBytes();
  }

  /** The end of the SACKed range that holds `seq`, or undefined when `seq` is not SACKed. */
  sackedEnd(seq: number): number | undefined {
    for (const [start, end] of this.#ranges) {
      if (seqLe(start, seq) && seqLt(seq, end)) return end;
      if (seqGt(start, seq)) return undefined;
    }
    return undefined;
  }

  /** SACKed bytes below `seq` (all ranges lie above SND.UNA). */
  sackedBelow(seq: number): number {
    let bytes = 0;
    for (const [start, end] of this.#ranges) {
      if (seqLe(seq, start)) break;
      bytes += seqDiff(seqLt(end, seq) ? end : seq, start);
    }
    return bytes;
  }

  /** The start of the first SACKed range above `seq`, or undefined. */
  nextSackedAfter(seq: number): number | undefined {
    for (const [start] of this.#ranges) if (seqGt(start, seq)) return start;
    return undefined;
  }

  #sackedBytes(): number {
    let bytes = 0;
    for (const [start, end] of this.#ranges) bytes += seqDiff(end, start);
    return bytes;
  }

  /** Forgets what SND.UNA moved past. */
  advance(una: number): void {
    const kept: [number, number][] = [];
    for (const [start, end] of this.#ranges) {
      if (seqLe(end, una)) continue;
      kept.push([seqLt(start, una) ? una : start, end]);
    }
    this.#ranges = kept;
  }

  clear(): void {
    this.#ranges = [];
  }

  /** The first gap at or after `from` that lies below SACKed data: [start, end), or undefined. */
  nextHole(from: number): [number, number] | undefined {
    let cursor = from;
    for (const [start, end] of this.#ranges) {
      if (seqLe(end, cursor)) continue;
      if (seqLt(cursor, start)) return [cursor, start];
      cursor = end;
    }
    return undefined;
  }

  #insert(start: number, end: number, una: number): void {
    const ranges = this.#ranges;
    ranges.push([start, end]);
    ranges.sort((a, b) => seqDiff(a[0], una) - seqDiff(b[0], una));
    const merged: [number, number][] = [];
    for (const range of ranges) {
      const last = merged[merged.length - 1];
      if (last !== undefined && seqLe(range[0], last[1])) {
        if (seqGt(range[1], last[1])) last[1] = range[1];
      } else {
        merged.push([range[0], range[1]]);
      }
    }
    // Past the bound, forget the highest ranges: that only costs a redundant resend.
    this.#ranges = merged.slice(0, this.#maxRanges);
  }
}
