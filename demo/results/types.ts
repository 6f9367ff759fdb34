// The demo's result document (demo-results.json): one entry per phase.
import type { LatencySummary } from '../workload/stats.js';

export interface ThrottleStats {
  nrPeriods: number;
  nrThrottled: number;
  throttledTimeMs: number;
  nrBursts: number;
  burstTimeMs: number;
  /** nrThrottled / nrPeriods over the phase (0..1). */
  throttledRatio: number;
}

export interface PhaseResult {
  name: string;
  description: string;
  durationSeconds: number;
  latencyMs: LatencySummary;
  throttling: ThrottleStats;
  /** Mean CPU of the service container in cores over the phase (cpuacct.usage). */
  meanCpuCores: number;
  /** The container's cgroup values at the end of the phase. */
  cgroup: { quotaUs: number; burstUs: number; periodUs: number };
  /** The agent's share-pool node state at the end of the phase (idle, cooling, overload, unknown). */
  nodeState?: string;
}

export interface DemoResults {
  startedAt: string;
  machine: { cpus: number; kernel: string; mode: 'real' | 'simulate' };
  workload: { ratePerSecond: number; workMs: number; cpuLimit: string };
  phases: PhaseResult[];
  pipeline: Record<string, unknown>;
}
