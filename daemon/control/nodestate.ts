// Node state from share-pool usage, as Koordinator defines it (getNodeStateForBurst):
//   total = logical CPUs − requests of LSE/LSR pods;  usage = node usage − usage of LSE/LSR/BE pods
//   ratio = usage / total (1 when total ≤ 0);  T = sharePoolThresholdPercent / 100
//   ratio ≥ T → overload;  0.9·T ≤ ratio < T → cooling;  otherwise idle;  no data → unknown.
import type { NodeState } from '../../protocol/index.js';

export const COOLING_RATIO = 0.9;

export interface SharePoolInput {
  cpus: number | null;
  /** Average node CPU usage in cores over the window; null = unknown. */
  nodeUsageCores: number | null;
  /** Σ CPU requests (cores) of LSE and LSR pods. */
  excludedRequestCores: number;
  /** Σ CPU usage (cores) of LSE, LSR and BE pods. */
  excludedUsageCores: number;
  thresholdPercent: number;
}

export interface NodeStateResult {
  state: NodeState;
  ratio: number | null;
  /** Cores above the threshold (overload only), what scale-down should free. */
  excessCores: number;
}

export function nodeState(i: SharePoolInput): NodeStateResult {
  if (i.cpus === null || i.cpus <= 0 || i.nodeUsageCores === null || !Number.isFinite(i.nodeUsageCores))
    return { state: 'unknown', ratio: null, excessCores: 0 };
  const total = i.cpus - i.excludedRequestCores;
  const usage = Math.max(0, i.nodeUsageCores - i.excludedUsageCores);
  const ratio = total <= 0 ? 1 : usage / total;
  const t = i.thresholdPercent / 100;
  if (ratio >= t)
    return { state: 'overload', ratio, excessCores: Math.max(0, usage - t * Math.max(total, 0)) };
  if (ratio >= COOLING_RATIO * t) return { state: 'cooling', ratio, excessCores: 0 };
  return { state: 'idle', ratio, excessCores: 0 };
}

/** Averages node usage over a sliding window (Koordinator: min(5 × interval, 10 s)). */
export function windowMs(intervalMs: number): number {
  return Math.min(5 * intervalMs, 10_000);
}
