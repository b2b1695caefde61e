/**
 * The retransmission timeout estimator of RFC 6298: SRTT and RTTVAR from RTT samples,
 * RTO = SRTT + max(G, 4 * RTTVAR) clamped to [MIN_RTO_MS, MAX_RTO_MS], doubled per
 * timeout (§5.5). Callers apply Karn's rule: no samples from retransmitted segments.
 */
import {
  INITIAL_RTO_MS,
  MAX_RTO_MS,
  MIN_RTO_MS,
  RTO_CLOCK_GRANULARITY_MS,
} from "./tcp-constants.ts";

export interface RtoEstimator {
  /** Smoothed RTT in ms, or undefined before the first sample. */
  srttMs: number | undefined;
  rttvarMs: number;
  /** The current RTO in ms, backoff included. */
  rtoMs: number;
}

export function createRtoEstimator(): RtoEstimator {
  return { srttMs: undefined, rttvarMs: 0, rtoMs: INITIAL_RTO_MS };
}

/** RFC 6298 §2.2-2.3: folds one RTT sample in and recomputes the RTO (ending any backoff). */
export function addRttSample(estimator: RtoEstimator, rttMs: number): void {
  const r = Math.max(0, rttMs);
  if (estimator.srttMs === undefined) {
    estimator.srttMs = r;
    estimator.rttvarMs = r / 2;
  } else {
    estimator.rttvarMs = 0.75 * estimator.rttvarMs + 0.25 * Math.abs(estimator.srttMs - r);
    estimator.srttMs = 0.875 * estimator.srttMs + 0.125 * r;
  }
  estimator.rtoMs = clampRto(
    estimator.srttMs + Math.max(RTO_CLOCK_GRANULARITY_MS, 4 * estimator.rttvarMs),
  );
}

/** RFC 6298 §5.5: doubles the RTO after a timeout, up to the maximum. */
export function backOff(estimator: RtoEstimator): void {
  estimator.rtoMs = Math.min(MAX_RTO_MS, estimator.rtoMs * 2);
}

function clampRto(ms: number): number {
  return Math.min(MAX_RTO_MS, Math.max(MIN_RTO_MS, ms));
}
