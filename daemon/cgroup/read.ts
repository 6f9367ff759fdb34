// Reading cpu bandwidth values and statistics, in both cgroup versions' spellings.
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

/** An integer file: through readInt when the fs has it, else (or when that says "not an integer") as text. */
function intFile(fs: CgroupFs, file: string, what: string): number {
  const v = fs.readInt?.(file);
  return v === undefined || v === null ? int(fs.read(file), what) : v;
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

// Paths below are `${dir}/${file}`: dir is already a clean absolute path, and path.join's
// normalisation showed up in the agent's per-round profile (five files per container every second).

export function readCpu(fs: CgroupFs, version: CgroupVersion, dir: string): CpuValues {
  let burstUs: number | null = null;
  const bf = `${dir}/${burstFile(version)}`;
  try {
    burstUs = intFile(fs, bf, bf);
  } catch (err) {
    // No burst file (kernel < 5.14) is normal; anything else (cgroup gone) surfaces below.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (version === 2) {
    const { quotaUs, periodUs } = parseCpuMax(fs.read(`${dir}/${FILES[2].max}`));
    return { periodUs, quotaUs, burstUs };
  }
  const quotaUs = intFile(fs, `${dir}/${FILES[1].quota}`, 'cpu.cfs_quota_us');
  const periodUs = intFile(fs, `${dir}/${FILES[1].period}`, 'cpu.cfs_period_us');
  return { periodUs, quotaUs: quotaUs < 0 ? -1 : quotaUs, burstUs };
}

/**
 * Parses "key value" lines (cpu.stat). Read for every container every round, so it scans the text
 * instead of splitting it: no per-line arrays or strings besides the keys.
 */
export function parseCpuStat(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  const n = text.length;
  let i = 0;
  while (i < n) {
    // One line: "<key> <digits>[ anything]"; other lines are skipped.
    while (i < n && isBlank(text.charCodeAt(i))) i++;
    const k0 = i;
    while (i < n && !isBlank(text.charCodeAt(i)) && text.charCodeAt(i) !== 10) i++;
    const k1 = i;
    while (i < n && isBlank(text.charCodeAt(i))) i++;
    let v = 0;
    let digits = 0;
    const v0 = i;
    for (let c = text.charCodeAt(i); i < n && c >= 48 && c <= 57; c = text.charCodeAt(++i)) {
      v = v * 10 + (c - 48);
      digits++;
    }
    // Beyond 15 digits the running sum may round differently from Number(): use it there.
    if (digits > 15) v = Number(text.slice(v0, i));
    const ended = i >= n || isBlank(text.charCodeAt(i)) || text.charCodeAt(i) === 10;
    if (k1 > k0 && digits > 0 && ended) out[text.slice(k0, k1)] = v;
    while (i < n && text.charCodeAt(i) !== 10) i++;
    i++;
  }
  return out;
}

/** Whitespace within a line. */
function isBlank(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 11 || c === 12;
}

export function readStat(fs: CgroupFs, layout: CgroupLayout, dir: string): CpuStat {
  const s = parseCpuStat(fs.read(`${dir}/cpu.stat`));
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
    const f = `${d}/cpuacct.usage`;
    try {
      return Math.floor(intFile(fs, f, 'cpuacct.usage') / 1000);
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
      return parseCpuStat(fs.read(`${dir}/cpu.stat`)).usage_usec ?? null;
    } catch {
      return null;
    }
  }
  return readV1Usage(fs, layout, dir);
}
