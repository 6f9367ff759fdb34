// Token bucket limiting how long a container may run above its limit (cfsQuotaBurstPeriodSeconds).
// Koordinator's unit: capacity = periodSec × (cfsQuotaBurstPercent − 100) "percent·seconds"; usage u
// in % of the limit drains (u − 100)/s above 100 %. Improvements: it refills whenever u < 100 % (not
// only below 60 %), and elapsed time is counted in fractions of a second (not truncated).
import type { BurstConfig } from '../../protocol/index.js';

export interface Bucket {
  capacity: number;
  tokens: number;
  lastMs: number;
}

/** null = no time limit (period −1); 0 = never allowed. */
export function bucketCapacity(
  cfg: Pick<BurstConfig, 'cfsQuotaBurstPeriodSeconds' | 'cfsQuotaBurstPercent'>,
) {
  if (cfg.cfsQuotaBurstPeriodSeconds < 0) return null;
  if (cfg.cfsQuotaBurstPercent <= 100) return 0;
  return cfg.cfsQuotaBurstPeriodSeconds * (cfg.cfsQuotaBurstPercent - 100);
}

export interface BucketStep {
  bucket: Bucket | null;
  allowed: boolean;
}

/**
 * Advances the bucket to nowMs with the usage (percent of the limit) seen since the last step.
 * A new or re-sized bucket starts full, so a fresh pod may burst at once. Unknown usage = no change.
 */
export function stepBucket(
  prev: Bucket | undefined,
  cfg: Pick<BurstConfig, 'cfsQuotaBurstPeriodSeconds' | 'cfsQuotaBurstPercent'>,
  usagePercent: number | null,
  nowMs: number,
): BucketStep {
  const capacity = bucketCapacity(cfg);
  if (capacity === null) return { bucket: null, allowed: true };
  if (capacity === 0) return { bucket: { capacity, tokens: 0, lastMs: nowMs }, allowed: false };
  if (!prev || prev.capacity !== capacity) {
    const b = { capacity, tokens: capacity, lastMs: nowMs };
    return { bucket: b, allowed: true };
  }
  const dt = Math.max(0, (nowMs - prev.lastMs) / 1000);
  let tokens = prev.tokens;
  if (usagePercent !== null && Number.isFinite(usagePercent)) tokens += (100 - usagePercent) * dt;
  tokens = Math.min(capacity, Math.max(-capacity, tokens));
  return { bucket: { capacity, tokens, lastMs: nowMs }, allowed: tokens > 0 };
}

/** Koordinator's limiter for comparison: whole seconds only, refill only below 60 %. */
export function koordinatorBucket(tokens: number, capacity: number, usagePercent: number, dtSeconds: number) {
  const dt = Math.trunc(dtSeconds);
  let t = tokens;
  if (usagePercent >= 100) t -= (usagePercent - 100) * dt;
  else if (usagePercent < 60) t += (100 - usagePercent) * dt;
  return Math.min(capacity, Math.max(-capacity, t));
}
