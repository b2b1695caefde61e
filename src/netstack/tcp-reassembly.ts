/**
 * The receive side's out-of-order queue (RFC 9293 §3.10.7.4, "segment text"): segments
 * that arrived beyond RCV.NXT, kept sorted and without overlap until the gap fills.
 * The caller trims every segment to the receive window first, so the bytes held never
 * exceed the window; the number of pieces is bounded too, so a flood of tiny segments
 * cannot grow it. It also produces the SACK blocks of RFC 2018 §4.
 */
import { seqAdd, seqDiff, seqGt, seqLe } from "./tcp-sequence.ts";

interface Piece {
  seq: number;
  data: Uint8Array;
}

export class ReassemblyQueue {
  readonly #maxPieces: number;
  #pieces: Piece[] = [];
  #bytes = 0;
  /** The start of the block that most recently received data, for the first SACK block. */
  #recentSeq: number | undefined;

  constructor(maxPieces: number) {
    this.#maxPieces = maxPieces;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get pieces(): number {
    return this.#pieces.length;
  }

  /**
   * Stores the parts of `data` (at `seq`, strictly after `rcvNxt`) not already held.
   * Returns false when nothing was stored because the piece limit was reached.
   */
  insert(seq: number, data: Uint8Array, rcvNxt: number): boolean {
    const start = seqDiff(seq, rcvNxt);
    const end = start + data.length;
    const added: Piece[] = [];
    let cursor = start;
    for (const piece of this.#pieces) {
      const pieceStart = seqDiff(piece.seq, rcvNxt);
      const pieceEnd = pieceStart + piece.data.length;
      if (pieceEnd <= cursor) continue;
      if (pieceStart >= end) break;
      if (pieceStart > cursor) {
        added.push({
          seq: seqAdd(rcvNxt, cursor),
          data: data.slice(cursor - start, pieceStart - start),
        });
      }
      cursor = Math.max(cursor, pieceEnd);
    }
    if (cursor < end) {
      added.push({ seq: seqAdd(rcvNxt, cursor), data: data.slice(cursor - start, end - start) });
    }
    if (added.length === 0) {
      this.#recentSeq = seq;
      return true;
    }
    if (this.#pieces.length + added.length > this.#maxPieces) return false;
    for (const piece of added) {
      this.#bytes += piece.data.length;
      this.#pieces.push(piece);
    }
    this.#pieces.sort((a, b) => seqDiff(a.seq, rcvNxt) - seqDiff(b.seq, rcvNxt));
    this.#recentSeq = seq;
    return true;
  }

  /**
   * Removes and returns, in order, the data that continues from `rcvNxt`; pieces wholly
   * before it are dropped. The caller advances RCV.NXT by the total returned.
   */
  take(rcvNxt: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let next = rcvNxt;
    while (this.#pieces.length > 0) {
      const piece = this.#pieces[0]!;
      if (seqGt(piece.seq, next)) break;
      this.#pieces.shift();
      this.#bytes -= piece.data.length;
      const skip = seqDiff(next, piece.seq);
      if (skip < piece.data.length) {
        const part = piece.data.subarray(skip);
        out.push(part);
        next = seqAdd(next, part.length);
      }
    }
    return out;
  }

  /** Drops everything (on reset or close). */
  clear(): void {
    this.#pieces = [];
    this.#bytes = 0;
    this.#recentSeq = undefined;
  }

  /**
   * SACK blocks [left, right) of contiguous held data, at most `max`, the block holding
   * the most recent arrival first (RFC 2018 §4), then the others in sequence order.
   */
  sackBlocks(max: number): [number, number][] {
    const blocks: [number, number][] = [];
    for (const piece of this.#pieces) {
      const last = blocks[blocks.length - 1];
      const end = seqAdd(piece.seq, piece.data.length);
      if (last !== undefined && seqLe(piece.seq, last[1])) {
        if (seqGt(end, last[1])) last[1] = end;
      } else {
        blocks.push([piece.seq, end]);
      }
    }
    const recent = this.#recentSeq;
    if (recent !== undefined) {
      const index = blocks.findIndex((b) => seqLe(b[0], recent) && seqGt(b[1], recent));
      if (index > 0) blocks.unshift(...blocks.splice(index, 1));
    }
    return blocks.slice(0, max);
  }
}
