// Pure pieces of the demo: kubelet quota math, QoS, percentiles, cpu.stat deltas, preflight text,
// the results table and the chart pipeline (Vega-Lite → SVG → PNG).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CgroupSnapshot, parseCpuStat, phaseResult, throttleDelta } from '../../demo/measure.js';
import { preflightProblem } from '../../demo/preflight.js';
import { chartSpec, haveSystemFonts, renderChartPng } from '../../demo/results/chart.js';
import { formatTable } from '../../demo/results/table.js';
import type { DemoResults } from '../../demo/results/types.js';
import { percentile, poissonGapMs, summarize } from '../../demo/workload/stats.js';
import {
  containerQuotaUs,
  parseCpuMilli,
  podCgroupDir,
  podQuotaUs,
  qosClassOf,
  sharesFor,
} from '../../devcluster/kubelet/resources.js';

test('CPU quantities and kubelet quota math', () => {
  assert.equal(parseCpuMilli('500m'), 500);
  assert.equal(parseCpuMilli('1.5'), 1500);
  assert.equal(parseCpuMilli(2), 2000);
  assert.equal(parseCpuMilli('.1'), 100);
  assert.throws(() => parseCpuMilli('1Gi'));
  assert.equal(containerQuotaUs(500), 50000);
  assert.equal(containerQuotaUs(500, 50000), 25000);
  assert.equal(containerQuotaUs(5), 1000, 'floored at the kernel minimum');
  assert.equal(containerQuotaUs(undefined), -1);
  assert.equal(podQuotaUs([500, 250]), 75000);
  assert.equal(podQuotaUs([500, undefined]), -1, 'one container without a limit → pod unlimited');
  assert.equal(podQuotaUs([]), -1);
  assert.equal(sharesFor(100), 102);
  assert.equal(sharesFor(undefined), 2);
});

test('QoS class and cgroupfs pod dirs', () => {
  assert.equal(qosClassOf([{}]), 'BestEffort');
  assert.equal(qosClassOf([{ limits: { cpu: '1', memory: '1Gi' } }]), 'Guaranteed');
  assert.equal(qosClassOf([{ limits: { cpu: '1' } }]), 'Burstable');
  assert.equal(
    qosClassOf([{ requests: { cpu: '1', memory: '1Gi' }, limits: { cpu: '2', memory: '1Gi' } }]),
    'Burstable',
  );
  assert.equal(podCgroupDir('Guaranteed', 'u1'), 'podu1');
  assert.equal(podCgroupDir('Burstable', 'u1'), 'burstable/podu1');
  assert.equal(podCgroupDir('BestEffort', 'u1'), 'besteffort/podu1');
});

test('latency statistics', () => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(xs, 50), 50);
  assert.equal(percentile(xs, 99), 99);
  assert.equal(percentile([], 50), Number.NaN);
  const s = summarize([3, 1, 2]);
  assert.deepEqual([s.count, s.p50, s.max, s.mean], [3, 2, 3, 2]);
  // Mean of exponential gaps ≈ 1000/rate.
  let sum = 0;
  for (let i = 0; i < 2000; i++) sum += poissonGapMs(20, (i + 0.5) / 2000);
  assert.ok(Math.abs(sum / 2000 - 50) < 2, `mean gap ${sum / 2000}`);
});

const snap = (o: Partial<CgroupSnapshot>): CgroupSnapshot => ({
  atMs: 0,
  nrPeriods: 0,
  nrThrottled: 0,
  throttledTimeNs: 0,
  nrBursts: 0,
  burstTimeNs: 0,
  usageNs: 0,
  quotaUs: 50000,
  burstUs: 0,
  periodUs: 100000,
  ...o,
});

test('cpu.stat parsing and phase arithmetic', () => {
  assert.deepEqual(parseCpuStat('nr_periods 10\nnr_throttled 3\nthrottled_time 99\n'), {
    nr_periods: 10,
    nr_throttled: 3,
    throttled_time: 99,
  });
  const a = snap({ atMs: 1000, nrPeriods: 100, nrThrottled: 10, usageNs: 1e9 });
  const b = snap({ atMs: 11000, nrPeriods: 200, nrThrottled: 35, usageNs: 4e9, throttledTimeNs: 2e9 });
  const t = throttleDelta(a, b);
  assert.equal(t.nrPeriods, 100);
  assert.equal(t.throttledRatio, 0.25);
  assert.equal(t.throttledTimeMs, 2000);
  const r = phaseResult('p', 'd', a, b, [
    { ts: 900, latenciesMs: [1000] }, // before the window: excluded
    { ts: 2000, latenciesMs: [10, 20] },
    { ts: 11000, latenciesMs: [30] },
    { ts: 11001, latenciesMs: [5000] }, // after: excluded
  ]);
  assert.equal(r.latencyMs.count, 3);
  assert.equal(r.latencyMs.max, 30);
  assert.equal(r.meanCpuCores, 0.3);
  assert.equal(r.durationSeconds, 10);
});

test('preflight says exactly what is missing and how to simulate', () => {
  const ok = {
    uid: 0,
    cpuControllerExists: true,
    cpuQuotaFileExists: true,
    cpuWritable: true,
    cpuacctExists: true,
    unifiedOnly: false,
    burstFileExists: true,
  };
  assert.equal(preflightProblem(ok, '/sys/fs/cgroup'), null);
  const notRoot = preflightProblem({ ...ok, uid: 1000 }, '/sys/fs/cgroup')!;
  assert.match(notRoot, /not running as root \(uid 1000\)/);
  assert.match(notRoot, /cpuburst demo --simulate/);
  assert.match(preflightProblem({ ...ok, unifiedOnly: true }, '/sys/fs/cgroup')!, /cgroup v2 only/);
  assert.match(preflightProblem({ ...ok, cpuWritable: false }, '/x')!, /\/x\/cpu is not writable/);
  assert.match(preflightProblem({ ...ok, cpuControllerExists: false }, '/x')!, /no cgroup v1 cpu controller/);
});

function results(): DemoResults {
  const phase = (name: string, p99: number, ratio: number) =>
    phaseResult(
      name,
      '',
      snap({ atMs: 0 }),
      snap({ atMs: 10000, nrPeriods: 100, nrThrottled: Math.round(ratio * 100), usageNs: 3e9 }),
      [{ ts: 5000, latenciesMs: [10, 12, p99] }],
    );
  return {
    startedAt: '2026-01-01T00:00:00Z',
    machine: { cpus: 2, kernel: 'test', mode: 'real' },
    workload: { ratePerSecond: 25, workMs: 12, cpuLimit: '500m' },
    phases: [phase('1 no burst', 80, 0.2), phase('2 burst (auto)', 30, 0.02)],
    pipeline: {},
  };
}

test('before/after table', () => {
  const t = formatTable(results());
  assert.match(t, /1 no burst .* 80\.0 .* 20\.0% \(20\/100\)/);
  assert.match(t, /p99 80\.0 → 30\.0 ms \(-62\.5%\), throttled periods 20\.0% → 2\.0%/);
});

test('chart renders to a PNG without a browser', { timeout: 60000 }, async () => {
  const spec = chartSpec(results()) as any;
  assert.equal(spec.hconcat.length, 2);
  const { svg, png } = await renderChartPng(results());
  assert.match(svg, /<svg/);
  assert.match(svg, /2 burst \(auto\)/);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.ok(png.length > 10000, `PNG is ${png.length} bytes`);
  assert.equal(haveSystemFonts(['/nonexistent-font-dir']), false);
});
