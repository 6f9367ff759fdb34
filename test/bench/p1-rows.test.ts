// P1's pure parts: the cases per mode, and measurements → rows (references, goals) and charts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  burstCases,
  burstCharts,
  burstNotes,
  burstRows,
  type CaseMeasurement,
  type NeighbourMeasurement,
  neighbourRows,
} from '../../bench/lib/p1.js';
import { seededRandom } from '../../demo/workload/service.js';

function m(
  name: string,
  kind: CaseMeasurement['kind'],
  p99: number,
  extra: Partial<CaseMeasurement> = {},
): CaseMeasurement {
  return {
    name,
    kind,
    seconds: 30,
    latencyMs: { count: 750, p50: p99 / 4, p90: p99 / 2, p99, max: p99 * 2, mean: p99 / 3 },
    throttledRatio: 0.2,
    nrBursts: 10,
    burstTimeMs: 120.55,
    meanCpuCores: 0.33,
    limitCores: 0.4,
    quotaCores: [],
    burstUs: 0,
    ...extra,
  };
}

const find = (rows: ReturnType<typeof burstRows>, c: string, metric: string) => {
  const r = rows.find((x) => x.case === c && x.metric === metric);
  assert.ok(r, `row ${c} / ${metric}`);
  return r;
};

describe('p1 cases', () => {
  it('full: no burst, three static percentages, cfsQuotaBurstOnly, auto; smoke: fewer', () => {
    const full = burstCases('full');
    assert.deepEqual(
      full.map((c) => c.name),
      ['no burst', 'static 25%', 'static 50%', 'static 100%', 'cfsQuotaBurstOnly', 'auto'],
    );
    assert.deepEqual(full[2]!.config, { policy: 'cpuBurstOnly', cpuBurstPercent: 50 });
    assert.equal(full[4]!.config.policy, 'cfsQuotaBurstOnly');
    assert.deepEqual(
      burstCases('smoke').map((c) => c.kind),
      ['none', 'static', 'auto'],
    );
  });
});

describe('p1 rows', () => {
  const cases = [
    m('no burst', 'none', 400),
    m('static 50%', 'static', 150),
    m('static 100%', 'static', 120, { meanCpuCores: 0.43 }),
    m('auto', 'auto', 100, { meanCpuCores: 0.6 }),
  ];
  const rows = burstRows(cases);

  it('every case has latency, throttling, bursts and CPU rows; others reference no burst', () => {
    for (const c of cases)
      for (const metric of [
        'p50 latency ms',
        'p90 latency ms',
        'p99 latency ms',
        'max latency ms',
        'throttled periods %',
        'nr_bursts',
        'burst_time ms',
        'mean CPU / limit',
      ])
        find(rows, c.name, metric);
    assert.equal(find(rows, 'no burst', 'p99 latency ms').reference, undefined);
    const s = find(rows, 'static 50%', 'p99 latency ms');
    assert.equal(s.reference, 400);
    assert.equal(s.referenceName, 'no burst');
    assert.equal(s.ratio, 0.375);
    assert.equal(find(rows, 'static 50%', 'throttled periods %').value, 20);
    assert.equal(find(rows, 'static 50%', 'burst_time ms').value, 120.6);
  });

  it('static burst: mean CPU ≤ 1.05 × limit is the goal', () => {
    const ok = find(rows, 'static 50%', 'mean CPU / limit');
    assert.equal(ok.value, 0.825);
    assert.equal(ok.met, true);
    const over = find(rows, 'static 100%', 'mean CPU / limit');
    assert.equal(over.value, 1.075);
    assert.equal(over.met, false);
    assert.equal(find(rows, 'auto', 'mean CPU / limit').met, undefined, 'auto may use more than the limit');
  });

  it('auto: p99 ≤ 0.5× no burst, and ≤ the best static', () => {
    const a = find(rows, 'auto', 'p99 latency ms');
    assert.equal(a.goal, '≤ 0.5× no burst');
    assert.equal(a.met, true);
    const best = find(rows, 'auto vs best static', 'p99 latency ms');
    assert.equal(best.reference, 120);
    assert.equal(best.referenceName, 'static 100%');
    assert.equal(best.met, true);
    const worse = burstRows([
      m('no burst', 'none', 150),
      m('static 100%', 'static', 60),
      m('auto', 'auto', 90),
    ]);
    assert.equal(find(worse, 'auto', 'p99 latency ms').met, false);
    assert.equal(find(worse, 'auto vs best static', 'p99 latency ms').met, false);
  });

  it('an unmeasured latency is null, never a met goal', () => {
    const r = burstRows([m('no burst', 'none', 100), m('auto', 'auto', Number.NaN)]);
    const a = find(r, 'auto', 'p99 latency ms');
    assert.equal(a.value, null);
    assert.equal(a.met, false);
  });
});

describe('p1 noisy neighbour and charts', () => {
  const nb = (name: string, threshold: number, hog: number, quota: number, states: Record<string, number>) =>
    ({
      name,
      threshold,
      seconds: 25,
      latencyMs: { count: 1000, p50: 20, p90: 40, p99: 80, max: 100, mean: 25 },
      burstyCpuCores: 2 - hog,
      burstyQuotaCores: quota,
      hogCpuCores: hog,
      nodeStates: states,
    }) satisfies NeighbourMeasurement;
  const on = nb('protection on (50 %)', 50, 1, 1, { overload: 20, cooling: 5 });
  const off = nb('protection off (100 %)', 100, 0.6, 2.4, { idle: 25 });

  it('protection on against off: hog progress, quota, CPU, p99, node state', () => {
    const rows = neighbourRows(on, off);
    const hog = rows.find((r) => r.metric === 'hog CPU cores')!;
    assert.equal(hog.value, 1);
    assert.equal(hog.reference, 0.6);
    assert.equal(hog.referenceName, 'protection off (100 %)');
    assert.equal(rows.find((r) => r.metric === 'bursty pods quota cores')!.reference, 2.4);
    const st = rows.find((r) => r.metric === 'seconds not idle %')!;
    assert.equal(st.value, 100);
    assert.equal(st.reference, 0);
    assert.match(st.note!, /on: overload 20 s, cooling 5 s; off: idle 25 s/);
  });

  it('charts: latency, throttling/CPU, the dynamic quota over time, the neighbour', () => {
    const cases = [m('no burst', 'none', 400), m('auto', 'auto', 100, { quotaCores: [0.4, 0.8, 1.2] })];
    const charts = burstCharts(cases, [on, off]);
    assert.deepEqual(
      charts.map((c) => c.kind),
      ['bar', 'bar', 'line', 'bar'],
    );
    assert.deepEqual(charts[0]!.x, ['no burst', 'auto']);
    assert.deepEqual(charts[0]!.series[2], { name: 'p99', values: [400, 100] });
    assert.deepEqual(charts[2]!.x, [1, 2, 3]);
    assert.deepEqual(charts[2]!.series[0]!.values, [0.4, 0.8, 1.2]);
    assert.deepEqual(charts[2]!.series[1]!.values, [0.4, 0.4, 0.4], 'the limit line');
    assert.deepEqual(charts[3]!.series[0]!.values, [1, 0.6]);
    assert.equal(burstCharts(cases.slice(0, 1), []).length, 2, 'no quota chart without a dynamic case');
  });
});

describe('p1 notes', () => {
  it('explains auto above cfsQuotaBurstOnly from the throttling and quota it saw; silent otherwise', () => {
    const quota = m('cfsQuotaBurstOnly', 'quota', 80, { throttledRatio: 0.08, quotaCores: [0.6, 0.7, null] });
    const auto = m('auto', 'auto', 110, { throttledRatio: 0.04, quotaCores: [0.4, 0.5] });
    const [n] = burstNotes([m('no burst', 'none', 300), quota, auto]);
    assert.match(n!, /auto's p99 \(110 ms\) is above cfsQuotaBurstOnly's \(80 ms\)/);
    assert.match(n!, /\(4% vs 8%\)/);
    assert.match(n!, /mean 0.45 vs 0.65 cores/);
    assert.deepEqual(burstNotes([quota, { ...auto, latencyMs: { ...auto.latencyMs, p99: 70 } }]), []);
    assert.deepEqual(burstNotes([auto]), []);
  });
});

describe('seeded arrivals (demo/workload --seed)', () => {
  it('one seed replays one sequence in [0,1); another seed differs', () => {
    const take = (seed: number) => {
      const r = seededRandom(seed);
      return Array.from({ length: 1000 }, () => r());
    };
    const a = take(1);
    assert.deepEqual(take(1), a);
    assert.notDeepEqual(take(2).slice(0, 10), a.slice(0, 10));
    assert.ok(a.every((x) => x >= 0 && x < 1));
    const mean = a.reduce((x, y) => x + y, 0) / a.length;
    assert.ok(Math.abs(mean - 0.5) < 0.05, `roughly uniform (mean ${mean})`);
  });
});
