// Smoke run of bench/p2-propagation.bench.ts: the same code path with small sizes (latency: 60
// changes; scale: 50 nodes × 20 pods, 50 simulated agents, two operators, a leader kill -9). Asserts
// the result's shape and sanity, never goal thresholds (timings on a loaded CI box mean nothing).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runSmoke } from './smoke.js';

test('p2-propagation --smoke writes sane latency and scale rows', { timeout: 240_000 }, async (t) => {
  const { result: res, stderr } = await runSmoke(t, 'p2-propagation');
  assert.ok(res.durationSeconds > 0 && res.durationSeconds < 240);
  assert.ok(res.machine.cpus >= 1);
  assert.ok(!res.notes.some((n) => /failed/.test(n)), `a part failed: ${res.notes.join(' | ')}\n${stderr}`);

  // Latency: cpuburst and the koordinator-style reference both measured, over every change.
  const lat = res.rows.filter((r) => r.metric.endsWith('latency ms'));
  assert.equal(lat.length, 6);
  for (const r of lat) {
    assert.ok(Number.isFinite(r.value) && r.value! > 0 && r.value! < 15_000, `${r.case}: ${r.value}`);
    assert.ok(Number.isFinite(r.reference) && r.reference! > 0 && r.reference! < 15_000, `${r.case}: ref`);
    assert.equal(r.referenceName, 'koordinator-style watch + 1 s tick');
  }
  const all99 = lat.find((r) => r.case.startsWith('all changes') && r.metric === 'p99 latency ms')!;
  assert.equal(all99.goal, '≤ 100 ms');
  assert.equal(typeof all99.met, 'boolean');
  assert.match(all99.note!, /^n=60 \(reference n=60\)$/);
  // A 1 s tick cannot beat 0 ms, and its median must sit well inside (0, 1.5 s).
  const refP50 = lat.find((r) => r.case.startsWith('all changes') && r.metric === 'p50 latency ms')!;
  assert.ok(refP50.reference! > 1 && refP50.reference! < 1500);

  // Scale: three phases converged on every node; operator memory and CPU present.
  const conv = res.rows.filter((r) => r.metric === 'full convergence s');
  assert.deepEqual(
    conv.map((r) => r.case.replace(/^.*: /, '')),
    ['operator start', 'global strategy change', 'leader kill -9 (fail-over)'],
  );
  for (const r of conv) {
    assert.ok(Number.isFinite(r.value) && r.value! >= 0 && r.value! < 60, `${r.case}: ${r.value}`);
    assert.match(r.note!, /^50\/50 nodes acked/);
    assert.equal(r.goal, '≤ 10 s');
  }
  assert.match(conv[2]!.note!, /newLeaderSeconds \d/);
  const rss = res.rows.filter((r) => r.metric === 'peak RSS MiB');
  assert.equal(rss.length, 2);
  for (const r of rss) assert.ok(r.value! > 20 && r.value! < 4096, `${r.case}: ${r.value}`);
  const cpu = res.rows.filter((r) => r.metric === 'CPU s');
  assert.equal(cpu.length, 3);
  for (const r of cpu) assert.ok(r.value! > 0 && r.value! < 600, `${r.case}: ${r.value}`);

  assert.equal(res.charts.length, 2);
  for (const c of res.charts)
    for (const s of c.series) assert.equal(s.values.length, c.x.length, `${c.title}/${s.name}`);
});
