/**
 * The Clock seam: time for protocol code. Real clocks come from `runtimes/`; the
 * simulator supplies a virtual one so that tests of many peers run deterministically.
 */

/** Cancels a scheduled timer; calling it after the timer fired, or twice, does nothing. */
export type CancelTimer = () => void;

export interface Clock {
  /** Monotonic milliseconds since an arbitrary origin; never goes backwards. */
  now(): number;
  /** Wall-clock milliseconds since the Unix epoch (for TAI64N timestamps); may jump. */
  wallNow(): number;
  /** Runs `callback` once after `delayMs` (0 or more); returns a function that cancels it. */
  setTimer(delayMs: number, callback: () => void): CancelTimer;
}

/** A Clock on web-standard timers, which Node, Deno and Bun all provide. */
export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimer(delayMs, callback) {
    const handle = setTimeout(callback, Math.max(0, delayMs));
    return () => clearTimeout(handle);
  },
};
