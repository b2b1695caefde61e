/**
 * Stack-wide rate limits for TCP's answers to segments an attacker can send blind:
 * challenge ACKs (RFC 5961 §7 asks for a limit across the whole stack, on top of any
 * per-connection one) and RSTs for segments no connection owns (RFC 9293 §3.10.7.1), so
 * a flood of spoofed segments cannot turn the stack into a reflector at line rate.
 *
 * A fixed one-second window whose limit is drawn anew each second from [limit / 2,
 * 3 * limit / 2): a limit that is exactly known and shared by all connections is a side
 * channel (CVE-2016-5696 used Linux's global challenge-ACK count to find a connection's
 * sequence numbers); Linux randomises its limit the same way since.
 */
export class PerSecondLimit {
  readonly #limit: number;
  readonly #randomUint32: () => number;
  #windowStartMs = Number.NEGATIVE_INFINITY;
  #allowed = 0;
  #used = 0;
  /** Answers refused by the limit. */
  refused = 0;

  /** `limit` a second on average; 0 refuses everything; Infinity allows everything. */
  constructor(limit: number, randomUint32: () => number) {
    if (!(limit >= 0)) throw new RangeError(`Expected a limit of 0 or more, got ${limit}`);
    this.#limit = limit;
    this.#randomUint32 = randomUint32;
  }

  /** May one more answer go out at `nowMs`? Counts it if so. */
  take(nowMs: number): boolean {
    if (this.#limit === Number.POSITIVE_INFINITY) return true;
    if (nowMs - this.#windowStartMs >= 1000) {
      this.#windowStartMs = nowMs;
      this.#used = 0;
      const jitter = ((this.#randomUint32() >>> 0) / 0x1_0000_0000) * this.#limit;
      this.#allowed = Math.floor(this.#limit / 2 + jitter);
    }
    if (this.#used >= this.#allowed) {
      this.refused++;
      return false;
    }
    this.#used++;
    return true;
  }
}
