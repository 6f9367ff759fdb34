// Reading cpu bandwidth values and statistics, in both cgroup versions' spellings.
import path from 'node:path';
import type { CgroupFs } from './fs.js';
import { type CgroupLayout, type CgroupVersion, cpuacctDir } from './layout.js';

/** One cgroup's bandwidth triple. quotaUs -1 = unlimited ("max"); burstUs null = no burst file. */
export interface CpuValues {
  periodUs: number;
  quotaUs: number;
  burstUs: number | null;
}

export interface CpuStat {
  nrPeriods: number;
  nrThrottled: number;
  throttledUs: number;
  nrBursts: number;
  burstUs: number;
  /** Cumulative CPU time used, µs; null when no usage counter is readable. */
  usageUs: number | null;
}

export const FILES = {
  1: { quota: 'cpu.cfs_quota_us', period: 'cpu.cfs_period_us', burst: 'cpu.cfs_burst_us' },
  2: { max: 'cpu.max', burst: 'cpu.max.burst' },
} as const;

export function burstFile(version: CgroupVersion): string {
  return version === 1 ? FILES[1].burst : FILES[2].burst;
}

function int(text: string, what: string): number {
  const t = text.trim();
  if (!/^-?\d+$/.test(t)) throw new Error(`unexpected ${what} value ${JSON.stringify(t)}`);
  return Number(t);
}

/** Parses cpu.max: "max 100000" | "50000 100000". */
export function parseCpuMax(text: string): { quotaUs: number; periodUs: number } {
  const [q, p] = text.trim().split(/\s+/);
  return {
    quotaUs: q === 'max' ? -1 : int(q ?? '', 'cpu.max quota'),
    periodUs: int(p ?? '100000', 'cpu.max period'),
  };
}

export function formatCpuMax(quotaUs: number, periodUs: number): string {
  return `${quotaUs < 0 ? 'max' : quotaUs} ${periodUs}`;
}

export function readCpu(fs: CgroupFs, version: CgroupVersion, dir: string): CpuValues {
  let burstUs: number | null = null;
  const bf = path.join(dir, burstFile(version));
  try {
    burstUs = int(fs.read(bf), bf);
  } catch (err) {
    // No burst file (kernel < 5.14) is normal; anything else (cgroup gone) surfaces below.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (version === 2) {
    const { quotaUs, periodUs } = parseCpuMax(fs.read(path.join(dir, FILES[2].max)));
    return { periodUs, quotaUs, burstUs };
  }
  const quotaUs = int(fs.read(path.join(dir, FILES[1].quota)), 'cpu.cfs_quota_us');
  const periodUs = int(fs.read(path.join(dir, FILES[1].period)), 'cpu.cfs_period_us');
  return { periodUs, quotaUs: quotaUs < 0 ? -1 : quotaUs, burstUs };
}

export function parseCpuStat(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v && /^\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

export function readStat(fs: CgroupFs, layout: CgroupLayout, dir: string): CpuStat {
  const s = parseCpuStat(fs.read(path.join(dir, 'cpu.stat')));
  if (layout.version === 2) {
    return {
      nrPeriods: s.nr_periods ?? 0,
      nrThrottled: s.nr_throttled ?? 0,
      throttledUs: s.throttled_usec ?? 0,
      nrBursts: s.nr_bursts ?? 0,
      burstUs: s.burst_usec ?? 0,
      usageUs: s.usage_usec ?? null,
    };
  }
  return {
    nrPeriods: s.nr_periods ?? 0,
    nrThrottled: s.nr_throttled ?? 0,
    throttledUs: Math.floor((s.throttled_time ?? 0) / 1000),
    nrBursts: s.nr_bursts ?? 0,
    burstUs: Math.floor((s.burst_time ?? 0) / 1000),
    usageUs: readV1Usage(fs, layout, dir),
  };
}

function readV1Usage(fs: CgroupFs, layout: CgroupLayout, dir: string): number | null {
  const dirs = layout.cpuacctRoot ? [cpuacctDir(layout, dir)] : [dir];
  for (const d of dirs) {
    const f = path.join(d, 'cpuacct.usage');
    try {
      return Math.floor(int(fs.read(f), 'cpuacct.usage') / 1000);
    } catch {
      /* not readable: usage unknown */
    }
  }
  return null;
}

/** Usage only (for excluded pods' share-pool accounting). */
export function readUsageUs(fs: CgroupFs, layout: CgroupLayout, dir: string): number | null {
  if (layout.version === 2) {
    try {
      return parseCpuStat(fs.read(path.join(dir, 'cpu.stat'))).usage_usec ?? null;
    } catch {
      return null;
    }
  }
  return readV1Usage(fs, layout, dir);
}
