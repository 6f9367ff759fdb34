// Pure latency statistics shared by the workload and the demo's result table.

/** Nearest-rank percentile of an ascending-sorted array (p in 0..100); NaN when empty. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarize(latencies: number[]): LatencySummary {
  const s = [...latencies].sort((a, b) => a - b);
  const sum = s.reduce((a, b) => a + b, 0);
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    count: s.length,
    p50: r(percentile(s, 50)),
    p90: r(percentile(s, 90)),
    p99: r(percentile(s, 99)),
    max: r(s.length ? s[s.length - 1]! : Number.NaN),
    mean: r(s.length ? sum / s.length : Number.NaN),
  };
}

/** Exponential inter-arrival gap (ms) of a Poisson process with `ratePerSec`; `u` in [0,1). */
export function poissonGapMs(ratePerSec: number, u: number): number {
  return (-Math.log(1 - u) / ratePerSec) * 1000;
}
