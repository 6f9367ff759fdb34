// P1 (burst effect) pure parts: the cases, and measured cases → result rows and charts.

import type { LatencySummary } from '../../demo/workload/stats.js';
import type { BurstConfig } from '../../protocol/index.js';
import { type BenchChart, type BenchRow, row } from './results.js';

export interface BurstCase {
  /** Short label used in rows and charts, e.g. "static 50%". */
  name: string;
  kind: 'none' | 'static' | 'quota' | 'auto';
  config: Partial<BurstConfig>;
}

/** The comparison: no burst, static kernel burst at several %, dynamic quota only, auto. */
export function burstCases(mode: 'full' | 'smoke'): BurstCase[] {
  const statics = mode === 'smoke' ? [100] : [25, 50, 100];
  const cases: BurstCase[] = [
    { name: 'no burst', kind: 'none', config: { policy: 'none' } },
    ...statics.map(
      (p): BurstCase => ({
        name: `static ${p}%`,
        kind: 'static',
        config: { policy: 'cpuBurstOnly', cpuBurstPercent: p },
      }),
    ),
  ];
  if (mode === 'full')
    cases.push({
      name: 'cfsQuotaBurstOnly',
      kind: 'quota',
      config: { policy: 'cfsQuotaBurstOnly', cfsQuotaBurstPercent: 300, cfsQuotaBurstPeriodSeconds: -1 },
    });
  cases.push({
    name: 'auto',
    kind: 'auto',
    config: {
      policy: 'auto',
      cpuBurstPercent: 100,
      cfsQuotaBurstPercent: 300,
      cfsQuotaBurstPeriodSeconds: -1,
    },
  });
  return cases;
}

export interface CaseMeasurement {
  name: string;
  kind: BurstCase['kind'];
  seconds: number;
  latencyMs: LatencySummary;
  /** nr_throttled / nr_periods over the window (0..1). */
  throttledRatio: number;
  nrBursts: number;
  burstTimeMs: number;
  meanCpuCores: number;
  limitCores: number;
  /** Container quota in cores, sampled once a second (-1 quota → null). */
  quotaCores: (number | null)[];
  burstUs: number;
}

export interface NeighbourMeasurement {
  /** e.g. "protection on (50 %)". */
  name: string;
  threshold: number;
  seconds: number;
  /** Bursty pods' latencies merged. */
  latencyMs: LatencySummary;
  /** Σ mean CPU of the bursty pods (cores). */
  burstyCpuCores: number;
  /** Mean over seconds of Σ bursty container quotas (cores). */
  burstyQuotaCores: number;
  /** The best-effort hog's CPU (cores): its progress. */
  hogCpuCores: number;
  /** Seconds the agent reported each node state. */
  nodeStates: Record<string, number>;
}

const r1 = (x: number) => Math.round(x * 10) / 10;
const r3 = (x: number) => Math.round(x * 1000) / 1000;
const finite = (x: number) => (Number.isFinite(x) ? x : null);

/** Rows: every case against no burst (same run), the static mean-CPU goal and the auto goals. */
export function burstRows(cases: CaseMeasurement[]): BenchRow[] {
  const none = cases.find((c) => c.kind === 'none');
  const rows: BenchRow[] = [];
  const ref = (v: (c: CaseMeasurement) => number) => (none ? finite(v(none)) : null);
  for (const c of cases) {
    const vs = c === none ? {} : { reference: null as number | null, referenceName: 'no burst' };
    for (const q of ['p50', 'p90', 'p99', 'max'] as const) {
      const base = { case: c.name, metric: `${q} latency ms`, value: finite(c.latencyMs[q]) };
      if (c === none) rows.push(row(base));
      else if (q === 'p99' && c.kind === 'auto')
        rows.push(
          row({
            ...base,
            ...vs,
            reference: ref((x) => x.latencyMs.p99),
            goal: '≤ 0.5× no burst',
            met: met(
              base.value,
              ref((x) => x.latencyMs.p99),
              (v, r) => v <= 0.5 * r,
            ),
          }),
        );
      else rows.push(row({ ...base, ...vs, reference: ref((x) => x.latencyMs[q]) }));
    }
    rows.push(
      row({
        case: c.name,
        metric: 'throttled periods %',
        value: r1(c.throttledRatio * 100),
        ...(c === none ? {} : { ...vs, reference: ref((x) => r1(x.throttledRatio * 100)) }),
      }),
    );
    rows.push(row({ case: c.name, metric: 'nr_bursts', value: c.nrBursts }));
    rows.push(row({ case: c.name, metric: 'burst_time ms', value: r1(c.burstTimeMs) }));
    const cpu = c.limitCores > 0 ? r3(c.meanCpuCores / c.limitCores) : null;
    rows.push(
      row({
        case: c.name,
        metric: 'mean CPU / limit',
        value: cpu,
        ...(c.kind === 'static' ? { goal: '≤ 1.05', met: cpu != null && cpu <= 1.05 } : {}),
        note: `${r3(c.meanCpuCores)} of ${c.limitCores} cores`,
      }),
    );
  }
  const auto = cases.find((c) => c.kind === 'auto');
  const statics = cases.filter((c) => c.kind === 'static' && Number.isFinite(c.latencyMs.p99));
  if (auto && statics.length > 0) {
    const best = statics.reduce((a, b) => (b.latencyMs.p99 < a.latencyMs.p99 ? b : a));
    const v = finite(auto.latencyMs.p99);
    rows.push(
      row({
        case: 'auto vs best static',
        metric: 'p99 latency ms',
        value: v,
        reference: best.latencyMs.p99,
        referenceName: best.name,
        goal: '≤ best static',
        met: met(v, best.latencyMs.p99, (a, b) => a <= b),
      }),
    );
  }
  return rows;
}

/** Observations the figures support (pure). */
export function burstNotes(cases: CaseMeasurement[]): string[] {
  const auto = cases.find((c) => c.kind === 'auto');
  const quota = cases.find((c) => c.kind === 'quota');
  const notes: string[] = [];
  if (auto && quota && auto.latencyMs.p99 > quota.latencyMs.p99) {
    const mean = (c: CaseMeasurement) => {
      const q = c.quotaCores.filter((x): x is number => x != null);
      return q.length ? Math.round((q.reduce((a, b) => a + b, 0) / q.length) * 1000) / 1000 : null;
    };
    notes.push(
      `auto's p99 (${auto.latencyMs.p99} ms) is above cfsQuotaBurstOnly's (${quota.latencyMs.p99} ms): the kernel burst ` +
        `absorbs clusters, so the 1 s loop sees fewer throttled periods (${r1(auto.throttledRatio * 100)}% vs ` +
        `${r1(quota.throttledRatio * 100)}%) and raises the quota less (mean ${mean(auto)} vs ${mean(quota)} cores).`,
    );
  }
  return notes;
}

function met(v: number | null, ref: number | null, ok: (v: number, r: number) => boolean): boolean {
  return v != null && ref != null && ok(v, ref);
}

/** Rows of the noisy-neighbour case: protection on, against protection off. */
export function neighbourRows(on: NeighbourMeasurement, off: NeighbourMeasurement): BenchRow[] {
  const c = `noisy neighbour: ${on.name}`;
  const refName = off.name;
  const states = (m: NeighbourMeasurement) =>
    Object.entries(m.nodeStates)
      .map(([k, v]) => `${k} ${v} s`)
      .join(', ');
  return [
    row({
      case: c,
      metric: 'hog CPU cores',
      value: r3(on.hogCpuCores),
      reference: r3(off.hogCpuCores),
      referenceName: refName,
      note: 'the best-effort hog’s progress',
    }),
    row({
      case: c,
      metric: 'bursty pods quota cores',
      value: r3(on.burstyQuotaCores),
      reference: r3(off.burstyQuotaCores),
      referenceName: refName,
      note: 'Σ container quotas, mean over the window',
    }),
    row({
      case: c,
      metric: 'bursty pods CPU cores',
      value: r3(on.burstyCpuCores),
      reference: r3(off.burstyCpuCores),
      referenceName: refName,
    }),
    row({
      case: c,
      metric: 'bursty pods p99 latency ms',
      value: finite(on.latencyMs.p99),
      reference: finite(off.latencyMs.p99),
      referenceName: refName,
    }),
    row({
      case: c,
      metric: 'seconds not idle %',
      value: r1(notIdle(on) * 100),
      reference: r1(notIdle(off) * 100),
      referenceName: refName,
      note: `node state seen by the agent: on: ${states(on) || 'none'}; off: ${states(off) || 'none'}`,
    }),
  ];
}

function notIdle(m: NeighbourMeasurement): number {
  const total = Object.values(m.nodeStates).reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  return (total - (m.nodeStates.idle ?? 0)) / total;
}

export function burstCharts(cases: CaseMeasurement[], neighbour: NeighbourMeasurement[]): BenchChart[] {
  const x = cases.map((c) => c.name);
  const charts: BenchChart[] = [
    {
      title: 'Request latency by burst policy',
      unit: 'latency (ms)',
      kind: 'bar',
      x,
      series: (['p50', 'p90', 'p99'] as const).map((q) => ({
        name: q,
        values: cases.map((c) => finite(c.latencyMs[q])),
      })),
    },
    {
      title: 'Throttled CFS periods and mean CPU',
      unit: '% (periods) / % of limit (CPU)',
      kind: 'bar',
      x,
      series: [
        { name: 'throttled periods %', values: cases.map((c) => r1(c.throttledRatio * 100)) },
        {
          name: 'mean CPU % of limit',
          values: cases.map((c) => (c.limitCores > 0 ? r1((c.meanCpuCores / c.limitCores) * 100) : null)),
        },
      ],
    },
  ];
  const dynamic = cases.filter((c) => c.quotaCores.length > 0 && (c.kind === 'auto' || c.kind === 'quota'));
  if (dynamic.length > 0) {
    const n = Math.max(...dynamic.map((c) => c.quotaCores.length));
    charts.push({
      title: 'Container quota over the window (dynamic quota)',
      unit: 'quota (cores)',
      kind: 'line',
      x: Array.from({ length: n }, (_, i) => i + 1),
      xTitle: 'second',
      series: [
        ...dynamic.map((c) => ({ name: c.name, values: pad(c.quotaCores, n) })),
        { name: 'limit', values: Array.from({ length: n }, () => dynamic[0]!.limitCores) },
      ],
    });
  }
  if (neighbour.length > 0)
    charts.push({
      title: 'Noisy neighbour: share-pool protection',
      unit: 'cores',
      kind: 'bar',
      x: neighbour.map((m) => m.name),
      series: [
        { name: 'best-effort hog CPU', values: neighbour.map((m) => r3(m.hogCpuCores)) },
        { name: 'bursty pods CPU', values: neighbour.map((m) => r3(m.burstyCpuCores)) },
        { name: 'bursty pods quota', values: neighbour.map((m) => r3(m.burstyQuotaCores)) },
      ],
    });
  return charts;
}

function pad(v: (number | null)[], n: number): (number | null)[] {
  return [...v, ...Array.from({ length: Math.max(0, n - v.length) }, () => null)];
}
