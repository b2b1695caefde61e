/**
 * Token buckets by key: each key may take `burst` tokens at once and `perSecond` more
 * every second after. A bucket idle long enough to be full again is forgotten (looked for
 * at most once per refill time), so the table holds only keys that are being limited.
 *
 * `src/tunnel/rate-limiter.ts` is the handshake limiter's own (its sweep assumes a bucket
 * refills within a second, true for its 20/s with a burst of 5); this one refills in
 * `burst / perSecond` seconds, whatever they are.
 */

interface Bucket {
  tokens: number;
  lastMs: number;
}

export class TokenBuckets<K> {
  readonly perSecond: number;
  readonly burst: number;
  readonly #buckets = new Map<K, Bucket>();
  /** How long an idle bucket takes to fill up. */
  readonly #refillMs: number;
  #lastSweepMs = Number.NEGATIVE_INFINITY;

  /**
   * @param perSecond Tokens added per second; a positive finite number.
   * @param burst Tokens a full bucket holds; at least 1.
   */
  constructor(perSecond: number, burst: number) {
    if (!Number.isFinite(perSecond) || perSecond <= 0) {
      throw new RangeError(`Expected "perSecond" to be a positive number, got ${perSecond}`);
    }
    if (!Number.isFinite(burst) || burst < 1) {
      throw new RangeError(`Expected "burst" to be a number of at least 1, got ${burst}`);
    }
    this.perSecond = perSecond;
    this.burst = burst;
    this.#refillMs = (burst / perSecond) * 1000;
  }

  /** Takes a token for `key` at `nowMs`; false when its bucket is empty. */
  take(key: K, nowMs: number): boolean {
    if (nowMs - this.#lastSweepMs >= this.#refillMs) this.#sweep(nowMs);
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      bucket = { tokens: this.burst, lastMs: nowMs };
      this.#buckets.set(key, bucket);
    }
    const elapsedMs = Math.max(0, nowMs - bucket.lastMs);
    bucket.tokens = Math.min(this.burst, bucket.tokens + (elapsedMs * this.perSecond) / 1000);
    bucket.lastMs = nowMs;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Keys whose buckets are held now (not full). */
  get size(): number {
    return this.#buckets.size;
  }

  #sweep(nowMs: number): void {
    this.#lastSweepMs = nowMs;
    for (const [key, bucket] of this.#buckets) {
      if (nowMs - bucket.lastMs >= this.#refillMs) this.#buckets.delete(key);
    }
  }
}
