/**
 * Splitting large control frames into pieces that fit one underlay datagram, and putting
 * them back together. Gossip can exceed a path's MTU (a full topology summary of a large
 * mesh), and relying on IP fragmentation fails behind many NATs and firewalls, so the
 * mesh never sends a transport message larger than `maxFrameBytes` of plaintext.
 *
 * Reassembly is bounded: at most 64 frames and 1 MiB in progress per peer, each frame at
 * most 255 pieces and 64 KiB, forgotten after a timeout. A lost piece loses the frame; the
 * protocols above (gossip anti-entropy, retransmitted pings) recover.
 */
import { type DecodedFrame, decodeFrame, encodeFrame, FRAME_HEADER_BYTES } from "./frames.ts";

/** Plaintext that fits a 1500-byte underlay without IP fragmentation, over IPv4 or IPv6. */
export const DEFAULT_MAX_FRAME_BYTES = 1408;
const PIECE_OVERHEAD = FRAME_HEADER_BYTES + 6;
/**
 * A full-state sync of a large mesh is many 32 KiB gossip messages sent back to back, whose
 * pieces interleave on arrival: a handful of frames in progress is too few (a 1,000-peer
 * topology is ten messages). Bounded by count and by bytes held per peer instead.
 */
const MAX_IN_PROGRESS = 64;
const MAX_HELD_BYTES = 1 << 20;
const MAX_REASSEMBLED_BYTES = FRAME_HEADER_BYTES + 0xffff;

/** Splits an encoded frame into fragment frames of at most `maxFrameBytes`, or returns it alone. */
export function fragment(frame: Uint8Array, id: number, maxFrameBytes: number): Uint8Array[] {
  if (frame.length <= maxFrameBytes) return [frame];
  const pieceBytes = maxFrameBytes - PIECE_OVERHEAD;
  const count = Math.ceil(frame.length / pieceBytes);
  if (count > 255) throw new RangeError(`Frame of ${frame.length} bytes needs over 255 pieces`);
  const pieces: Uint8Array[] = [];
  for (let index = 0; index < count; index++) {
    const piece = frame.subarray(index * pieceBytes, (index + 1) * pieceBytes);
    pieces.push(encodeFrame({ type: "fragment", id, index, count, piece }));
  }
  return pieces;
}

interface InProgress {
  readonly count: number;
  readonly pieces: (Uint8Array | undefined)[];
  received: number;
  bytes: number;
  readonly startedMs: number;
}

/** Reassembles the fragments of one peer. */
export class Reassembler {
  readonly #timeoutMs: number;
  readonly #inProgress = new Map<number, InProgress>();

  constructor(timeoutMs = 5_000) {
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Adds one piece. Returns the decoded whole frame once complete, an error for a piece
   * that contradicts the others or overflows the limits, or undefined while waiting.
   */
  add(
    id: number,
    index: number,
    count: number,
    piece: Uint8Array,
    now: number,
  ): DecodedFrame | undefined {
    this.#expire(now);
    let frame = this.#inProgress.get(id);
    if (!frame) {
      // Make room by dropping the oldest (Maps iterate in insertion order): a stalled
      // frame must not block new ones.
      while (this.#inProgress.size >= MAX_IN_PROGRESS || this.#heldBytes() > MAX_HELD_BYTES) {
        const oldest = this.#inProgress.keys().next().value!;
        this.#inProgress.delete(oldest);
      }
      frame = { count, pieces: new Array(count), received: 0, bytes: 0, startedMs: now };
      this.#inProgress.set(id, frame);
    }
    if (frame.count !== count) {
      this.#inProgress.delete(id);
      return { error: "fragment count differs from earlier pieces" };
    }
    if (frame.pieces[index]) return undefined; // a duplicate
    frame.bytes += piece.length;
    if (frame.bytes > MAX_REASSEMBLED_BYTES) {
      this.#inProgress.delete(id);
      return { error: "fragmented frame over 64 KiB" };
    }
    frame.pieces[index] = piece.slice();
    frame.received++;
    if (frame.received < count) return undefined;
    this.#inProgress.delete(id);
    const whole = new Uint8Array(frame.bytes);
    let offset = 0;
    for (const p of frame.pieces) {
      whole.set(p!, offset);
      offset += p!.length;
    }
    const decoded = decodeFrame(whole);
    if ("type" in decoded && decoded.type === "fragment")
      return { error: "a fragment inside a fragment" };
    return decoded;
  }

  #heldBytes(): number {
    let bytes = 0;
    for (const frame of this.#inProgress.values()) bytes += frame.bytes;
    return bytes;
  }

  /** Frames waiting for pieces. */
  get pending(): number {
    return this.#inProgress.size;
  }

  #expire(now: number): void {
    for (const [id, frame] of this.#inProgress)
      if (now - frame.startedMs > this.#timeoutMs) this.#inProgress.delete(id);
  }
}
