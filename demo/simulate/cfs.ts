// Pure CFS bandwidth accounting for --simulate (kernel/sched/fair.c, simplified): each period the
// runtime is refilled to min(runtime + quota, quota + burst); a group that has used its runtime is
// throttled until the next period. Fed with CPU-time deltas; says when to stop/continue the task.

export interface CfsLimits {
  quotaUs: number; // -1 = unlimited
  periodUs: number;
  burstUs: number;
}

export interface CfsState {
  periodStartUs: number;
  runtimeUs: number;
  usedInPeriodUs: number;
  throttled: boolean;
  throttledSinceUs: number;
  nrPeriods: number;
  nrThrottled: number;
  throttledTimeUs: number;
  nrBursts: number;
  burstTimeUs: number;
  usageUs: number;
}

export function initialCfs(nowUs: number, l: CfsLimits): CfsState {
  return {
    periodStartUs: nowUs,
    runtimeUs: Math.max(l.quotaUs, 0),
    usedInPeriodUs: 0,
    throttled: false,
    throttledSinceUs: 0,
    nrPeriods: 0,
    nrThrottled: 0,
    throttledTimeUs: 0,
    nrBursts: 0,
    burstTimeUs: 0,
    usageUs: 0,
  };
}

/** Advances the state to `nowUs` after the task used `cpuDeltaUs`; returns the new state. */
export function stepCfs(s: CfsState, l: CfsLimits, nowUs: number, cpuDeltaUs: number): CfsState {
  const n = { ...s, usageUs: s.usageUs + cpuDeltaUs };
  if (l.quotaUs <= 0) {
    n.throttled = false;
    return n;
  }
  n.runtimeUs -= cpuDeltaUs;
  n.usedInPeriodUs += cpuDeltaUs;
  // Period boundaries passed since the last step: account and refill once per period.
  while (nowUs - n.periodStartUs >= l.periodUs) {
    n.periodStartUs += l.periodUs;
    n.nrPeriods++;
    if (n.usedInPeriodUs > l.quotaUs) {
      n.nrBursts++;
      n.burstTimeUs += n.usedInPeriodUs - l.quotaUs;
    }
    n.usedInPeriodUs = 0;
    n.runtimeUs = Math.min(n.runtimeUs + l.quotaUs, l.quotaUs + Math.max(0, l.burstUs));
    if (n.throttled && n.runtimeUs > 0) {
      n.throttled = false;
      n.throttledTimeUs += n.periodStartUs - n.throttledSinceUs;
    }
  }
  if (!n.throttled && n.runtimeUs <= 0) {
    n.throttled = true;
    n.throttledSinceUs = nowUs;
    n.nrThrottled++;
  }
  return n;
}

export function formatCpuStat(s: CfsState): string {
  return [
    `nr_periods ${s.nrPeriods}`,
    `nr_throttled ${s.nrThrottled}`,
    `throttled_time ${Math.round(s.throttledTimeUs * 1000)}`,
    `nr_bursts ${s.nrBursts}`,
    `burst_time ${Math.round(s.burstTimeUs * 1000)}`,
    '',
  ].join('\n');
}
