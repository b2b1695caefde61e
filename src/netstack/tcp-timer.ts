/**
 * A TCP timer whose deadline moves without touching the clock's timers: `start` on every
 * ACK (the retransmission timer restarts per RFC 6298 §5.3) and `stop` when all is
 * acknowledged only move or clear a deadline, and the one underlying timer, when it
 * fires early, re-arms itself for what is left. A bulk transfer restarts its
 * retransmission timer once per ACK; with this, the clock sees about one timer per RTO
 * instead of one cancel and one new timer per ACK.
 */
import type { CancelTimer, Clock } from "../clock.ts";

export class LazyTimer {
  readonly #clock: Clock;
  readonly #onExpiry: () => void;
  /** When the timer is due, or undefined when it is stopped. */
  #deadline: number | undefined;
  /** The underlying clock timer and when it fires, if one is armed. */
  #cancel: CancelTimer | undefined;
  #firesAt = 0;

  constructor(clock: Clock, onExpiry: () => void) {
    this.#clock = clock;
    this.#onExpiry = onExpiry;
  }

  /** Is a deadline set? */
  get running(): boolean {
    return this.#deadline !== undefined;
  }

  /** Sets the deadline `delayMs` from now (replacing any earlier one). */
  start(delayMs: number): void {
    const now = this.#clock.now();
    const deadline = now + Math.max(0, delayMs);
    this.#deadline = deadline;
    // An armed timer that fires no later than the deadline will re-arm itself; one that
    // fires after it (the deadline moved earlier) must be replaced.
    if (this.#cancel !== undefined && this.#firesAt <= deadline) return;
    this.#arm(deadline - now);
  }

  /** Clears the deadline; an armed clock timer lingers and does nothing when it fires. */
  stop(): void {
    this.#deadline = undefined;
  }

  /** Clears the deadline and the clock timer too (for a connection that is done). */
  cancel(): void {
    this.#deadline = undefined;
    this.#cancel?.();
    this.#cancel = undefined;
  }

  #arm(delayMs: number): void {
    this.#cancel?.();
    this.#firesAt = this.#clock.now() + delayMs;
    this.#cancel = this.#clock.setTimer(delayMs, this.#fire);
  }

  readonly #fire = (): void => {
    this.#cancel = undefined;
    const deadline = this.#deadline;
    if (deadline === undefined) return;
    const left = deadline - this.#clock.now();
    // Real timers may fire a fraction of a millisecond early: that counts as on time.
    if (left >= 1) {
      this.#arm(left);
      return;
    }
    this.#deadline = undefined;
    this.#onExpiry();
  };
}
