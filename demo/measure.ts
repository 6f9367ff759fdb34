// Phase measurements: cgroup snapshots (cpu.stat, cpuacct.usage, quota/burst) read from the
// container's cgroup, latency lines read from the workload's file; the arithmetic is pure.
import fs from 'node:fs';
import path from 'node:path';
import type { PhaseResult, ThrottleStats } from './results/types.js';
import { summarize } from './workload/stats.js';

export interface CgroupSnapshot {
  atMs: number;
  nrPeriods: number;
  nrThrottled: number;
  throttledTimeNs: number;
  nrBursts: number;
  burstTimeNs: number;
  usageNs: number;
  quotaUs: number;
  burstUs: number;
  periodUs: number;
}

export function parseCpuStat(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^-?\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

/** Reads a v1 container cgroup (`rel` is relative to the controller mounts under `root`). */
export function snapshot(root: string, rel: string, now = Date.now()): CgroupSnapshot {
  const cpu = path.join(root, 'cpu', rel);
  const read = (f: string) => fs.readFileSync(f, 'utf8').trim();
  const num = (f: string, dflt: number) => {
    try {
      return Number.parseInt(read(f), 10);
    } catch {
      return dflt;
    }
  };
  const st = parseCpuStat(read(path.join(cpu, 'cpu.stat')));
  let usageNs = num(path.join(root, 'cpuacct', rel, 'cpuacct.usage'), Number.NaN);
  if (Number.isNaN(usageNs)) usageNs = num(path.join(cpu, 'cpuacct.usage'), 0);
  return {
    atMs: now,
    nrPeriods: st.nr_periods ?? 0,
    nrThrottled: st.nr_throttled ?? 0,
    throttledTimeNs: st.throttled_time ?? (st.throttled_usec ?? 0) * 1000,
    nrBursts: st.nr_bursts ?? 0,
    burstTimeNs: st.burst_time ?? (st.burst_usec ?? 0) * 1000,
    usageNs,
    quotaUs: num(path.join(cpu, 'cpu.cfs_quota_us'), -1),
    burstUs: num(path.join(cpu, 'cpu.cfs_burst_us'), 0),
    periodUs: num(path.join(cpu, 'cpu.cfs_period_us'), 100000),
  };
}

export function throttleDelta(a: CgroupSnapshot, b: CgroupSnapshot): ThrottleStats {
  const nrPeriods = b.nrPeriods - a.nrPeriods;
  const nrThrottled = b.nrThrottled - a.nrThrottled;
  return {
    nrPeriods,
    nrThrottled,
    throttledTimeMs: Math.round((b.throttledTimeNs - a.throttledTimeNs) / 1e4) / 100,
    nrBursts: b.nrBursts - a.nrBursts,
    burstTimeMs: Math.round((b.burstTimeNs - a.burstTimeNs) / 1e4) / 100,
    throttledRatio: nrPeriods > 0 ? Math.round((nrThrottled / nrPeriods) * 10000) / 10000 : 0,
  };
}

export interface LatencyLine {
  ts: number;
  latenciesMs: number[];
}

/** Latency lines of the workload file (malformed lines are skipped: the file may be mid-write). */
export function readLatencyLines(file: string): LatencyLine[] {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: LatencyLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const v = JSON.parse(line) as LatencyLine;
      if (typeof v.ts === 'number' && Array.isArray(v.latenciesMs)) out.push(v);
    } catch {
      // partial line
    }
  }
  return out;
}

/** Pure: one phase's result from two snapshots and the latency lines flushed inside the window. */
export function phaseResult(
  name: string,
  description: string,
  a: CgroupSnapshot,
  b: CgroupSnapshot,
  lines: LatencyLine[],
): PhaseResult {
  const lat = lines.filter((l) => l.ts > a.atMs && l.ts <= b.atMs).flatMap((l) => l.latenciesMs);
  const seconds = (b.atMs - a.atMs) / 1000;
  return {
    name,
    description,
    durationSeconds: Math.round(seconds * 10) / 10,
    latencyMs: summarize(lat),
    throttling: throttleDelta(a, b),
    meanCpuCores: seconds > 0 ? Math.round(((b.usageNs - a.usageNs) / 1e9 / seconds) * 1000) / 1000 : 0,
    cgroup: { quotaUs: b.quotaUs, burstUs: b.burstUs, periodUs: b.periodUs },
  };
}
