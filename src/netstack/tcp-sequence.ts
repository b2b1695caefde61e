/**
 * TCP sequence-number arithmetic (RFC 9293 §3.4): sequence numbers are unsigned 32-bit
 * values that wrap, so "less than" means "less than by a signed distance under 2^31".
 * Every comparison of sequence or acknowledgment numbers in the stack goes through here.
 */

/** `seq + n` wrapped to an unsigned 32-bit value. */
export function seqAdd(seq: number, n: number): number {
  return (seq + n) >>> 0;
}

/** The signed distance `a - b` (from -2^31 to 2^31 - 1). */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export function seqLt(a: number, b: number): boolean {
  return seqDiff(a, b) < 0;
}

export function seqLe(a: number, b: number): boolean {
  return seqDiff(a, b) <= 0;
}

export function seqGt(a: number, b: number): boolean {
  return seqDiff(a, b) > 0;
}

export function seqGe(a: number, b: number): boolean {
  return seqDiff(a, b) >= 0;
}

/** Whether `left <= seq < left + size` in sequence space (false for an empty window). */
export function seqInWindow(seq: number, left: number, size: number): boolean {
  return size > 0 && (seq - left) >>> 0 < size;
}

/** The later of two sequence numbers. */
export function seqMax(a: number, b: number): number {
  return seqGe(a, b) ? a : b;
}
