// One control-loop round, pure: per container, the dynamic quota target and the static burst.
//   static burst      = limit × cpuBurstPercent % of the REAL period (the planner clamps to quota)
//   dynamic quota     ∈ [base, base × cfsQuotaBurstPercent %], base = limit of the real period
//   scale up          × (1 + throttle ratio), capped at ×2 — proportional, not "any throttling → ×1.2"
//   scale down        × 0.8 when the bucket is empty, on overload (least-need pods first, only as
//                     many as needed to free the excess), and when unused (usage < 80 % of base)
//   node gating       cooling/unknown: no scale-up; overload: no scale-up, selected scale-down
import type { BurstConfig, NodeState } from '../../protocol/index.js';
import { type Bucket, stepBucket } from './bucket.js';

export const KOORD_UP = 1.2;
export const DOWN = 0.8;
export const MAX_UP_GAIN = 1;
/** Below this usage (fraction of base) a scaled-up container gives the extra quota back. */
export const IDLE_USAGE_FRACTION = 0.8;

export type QuotaOp = 'scaleUp' | 'scaleDown' | 'remain' | 'reset' | 'none';

export function quotaBurstEnabled(policy: BurstConfig['policy']): boolean {
  return policy === 'cfsQuotaBurstOnly' || policy === 'auto';
}

export function cpuBurstEnabled(policy: BurstConfig['policy']): boolean {
  return policy === 'cpuBurstOnly' || policy === 'auto';
}

/** The limit in µs per period (Koordinator's GetContainerBaseCFSQuota, with the real period). */
export function baseQuotaUs(limitMilli: number, periodUs: number): number {
  return Math.max(1000, Math.round((limitMilli * periodUs) / 1000));
}

export function ceilQuotaUs(base: number, cfsQuotaBurstPercent: number): number {
  return cfsQuotaBurstPercent > 100 ? Math.round((base * cfsQuotaBurstPercent) / 100) : base;
}

export function staticBurstUs(limitMilli: number, cpuBurstPercent: number, periodUs: number): number {
  return Math.round((limitMilli / 1000) * (cpuBurstPercent / 100) * periodUs);
}

/** Koordinator's step, for comparison: any throttling → ×1.2. */
export function koordinatorScaleUp(cur: number, base: number, ceil: number): number {
  return Math.min(ceil, Math.max(base, Math.trunc(cur * KOORD_UP)));
}

/** Ours: the step grows with the share of throttled periods. */
export function proportionalScaleUp(cur: number, base: number, ceil: number, throttleRatio: number): number {
  const gain = Math.min(MAX_UP_GAIN, Math.max(0, throttleRatio));
  return Math.min(ceil, Math.max(base, Math.trunc(cur * (1 + gain))));
}

export function scaleDown(cur: number, base: number): number {
  return Math.max(base, Math.trunc(cur * DOWN));
}

export interface ContainerInput {
  key: string;
  limitMilli: number;
  periodUs: number;
  /** Current container quota, µs (−1 unlimited). */
  currentQuotaUs: number;
  config: BurstConfig;
  /** Δnr_throttled / Δnr_periods since the last round; null = no sample yet. */
  throttleRatio: number | null;
  /** Average usage in cores since the last round; null = unknown. */
  usageCores: number | null;
}

export interface RoundInput {
  nowMs: number;
  nodeState: NodeState;
  /** Cores to free under overload (0 = unknown: free at least one candidate). */
  excessCores: number;
  containers: ContainerInput[];
  buckets: ReadonlyMap<string, Bucket>;
}

export interface ContainerTarget {
  key: string;
  op: QuotaOp;
  /** Target quota, µs; undefined = the quota is not the agent's to set (keep or restore). */
  quotaUs: number | undefined;
  /** Static burst, µs; undefined = burst not enabled by the policy. */
  burstUs: number | undefined;
  baseUs: number;
  ceilUs: number;
  /** Short why, for logs and status. */
  reason: string;
  bucketTokens: number | null;
}

export interface RoundOutput {
  targets: Map<string, ContainerTarget>;
  buckets: Map<string, Bucket>;
}

export function controlRound(input: RoundInput): RoundOutput {
  const targets = new Map<string, ContainerTarget>();
  const buckets = new Map<string, Bucket>();
  const candidates: Array<{ c: ContainerInput; t: ContainerTarget }> = [];
  for (const c of input.containers) {
    const base = baseQuotaUs(c.limitMilli, c.periodUs);
    const ceil = ceilQuotaUs(base, c.config.cfsQuotaBurstPercent);
    const burstUs = cpuBurstEnabled(c.config.policy)
      ? staticBurstUs(c.limitMilli, c.config.cpuBurstPercent, c.periodUs)
      : undefined;
    const usagePct = c.usageCores === null ? null : (c.usageCores * 100_000) / c.limitMilli;
    const b = stepBucket(input.buckets.get(c.key), c.config, usagePct, input.nowMs);
    if (b.bucket) buckets.set(c.key, b.bucket);
    const t: ContainerTarget = {
      key: c.key,
      op: 'none',
      quotaUs: undefined,
      burstUs,
      baseUs: base,
      ceilUs: ceil,
      reason: '',
      bucketTokens: b.bucket ? b.bucket.tokens : null,
    };
    targets.set(c.key, t);
    if (!quotaBurstEnabled(c.config.policy)) {
      t.op = 'reset';
      t.reason = 'policy without quota burst';
      continue;
    }
    // An unlimited or foreign value outside [base, ceil] is brought back into range.
    const cur = c.currentQuotaUs < 0 ? base : Math.min(ceil, Math.max(base, c.currentQuotaUs));
    t.quotaUs = cur;
    t.op = 'remain';
    const ratio = c.throttleRatio ?? 0;
    const unused = c.usageCores !== null && c.usageCores * c.periodUs < IDLE_USAGE_FRACTION * base;
    if (!b.allowed) {
      t.quotaUs = scaleDown(cur, base);
      t.op = t.quotaUs < cur ? 'scaleDown' : 'remain';
      t.reason = 'burst time budget used up';
    } else if (ratio > 0 && c.throttleRatio !== null) {
      if (input.nodeState === 'idle') {
        t.quotaUs = proportionalScaleUp(cur, base, ceil, ratio);
        t.op = t.quotaUs > cur ? 'scaleUp' : 'remain';
        t.reason = `throttled ${(ratio * 100).toFixed(1)}% of periods`;
      } else t.reason = `throttled, but node is ${input.nodeState}`;
      if (input.nodeState === 'overload' && cur > base) candidates.push({ c, t });
    } else if (unused && cur > base) {
      t.quotaUs = scaleDown(cur, base);
      t.op = 'scaleDown';
      t.reason = 'extra quota unused';
    } else if (input.nodeState === 'overload' && cur > base) candidates.push({ c, t });
  }
  // Overload: free the excess from the pods that need the extra quota least (Koordinator #2164
  // scales everyone down at once and then everyone back up).
  if (input.nodeState === 'overload' && candidates.length > 0) {
    const need = (x: { c: ContainerInput; t: ContainerTarget }) => [
      x.c.throttleRatio ?? 0,
      x.c.usageCores === null ? 1 : (x.c.usageCores * x.c.periodUs) / Math.max(1, x.t.quotaUs ?? 1),
    ];
    candidates.sort((a, b) => {
      const [a1, a2] = need(a);
      const [b1, b2] = need(b);
      return a1! - b1! || a2! - b2! || a.c.key.localeCompare(b.c.key);
    });
    let freed = 0;
    for (const { c, t } of candidates) {
      if (input.excessCores > 0 && freed >= input.excessCores) break;
      const cur = t.quotaUs!;
      const next = scaleDown(cur, t.baseUs);
      freed += (cur - next) / c.periodUs;
      t.quotaUs = next;
      t.op = 'scaleDown';
      t.reason = 'node overload: least need first';
      if (input.excessCores <= 0) break;
    }
  }
  return { targets, buckets };
}

/** Pod target derived from its containers: never a delta, so it cannot drift. */
export function podQuotaTarget(
  containers: Array<{ quotaUs: number; periodUs: number; running: boolean }>,
  podBaseUs: number | null,
  podPeriodUs: number,
): number {
  if (podBaseUs === null) return -1;
  let sum = 0;
  for (const c of containers) {
    if (!c.running) continue;
    if (c.quotaUs < 0) return -1;
    sum += (c.quotaUs * podPeriodUs) / c.periodUs;
  }
  return Math.max(podBaseUs, Math.ceil(sum));
}
