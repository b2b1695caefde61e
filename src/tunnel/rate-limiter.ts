/**
 * Per-source token buckets for handshake messages once the device is under load
 * (wireguard-go's ratelimiter: 20 per second, burst of 5, keyed by source IP). Entries
 * idle for a second are full again and are dropped, so the table holds only sources
 * that sent within the last second.
 */
import { HANDSHAKE_BURST_PER_SOURCE, HANDSHAKES_PER_SECOND_PER_SOURCE } from "./constants.ts";

interface Bucket {
  tokens: number;
  lastMs: number;
}

export interface RateLimiter {
  readonly buckets: Map<string, Bucket>;
  lastSweepMs: number;
  readonly perSecond: number;
  readonly burst: number;
}

export function createRateLimiter(
  perSecond = HANDSHAKES_PER_SECOND_PER_SOURCE,
  burst = HANDSHAKE_BURST_PER_SOURCE,
): RateLimiter {
  return { buckets: new Map(), lastSweepMs: 0, perSecond, burst };
}

/** Takes a token for `source` (an IP address); false when its bucket is empty. */
export function allow(limiter: RateLimiter, source: string, nowMs: number): boolean {
  if (nowMs - limiter.lastSweepMs >= 1000) sweepRateLimiter(limiter, nowMs);
  const bucket = limiter.buckets.get(source);
  if (!bucket) {
    limiter.buckets.set(source, { tokens: limiter.burst - 1, lastMs: nowMs });
    return true;
  }
  bucket.tokens = Math.min(
    limiter.burst,
    bucket.tokens + ((nowMs - bucket.lastMs) * limiter.perSecond) / 1000,
  );
  bucket.lastMs = nowMs;
  if (bucket.tokens < 1) return false;
  bucket.tokens -= 1;
  return true;
}

/** Drops the buckets of sources idle for a second (they would be full again anyway). */
export function sweepRateLimiter(limiter: RateLimiter, nowMs: number): void {
  for (const [source, bucket] of limiter.buckets) {
    if (nowMs - bucket.lastMs >= 1000) limiter.buckets.delete(source);
  }
  limiter.lastSweepMs = nowMs;
}
