// Smoke run of bench/p3-broker.bench.ts: the same code path with small sizes (short QoS 0/1
// flows against cpuburst and Mosquitto, password users + ACL, 1,000 idle connections on each and
// through two Redis-clustered replicas). Asserts the result's shape and sanity, never goal
// thresholds (timings on a loaded CI box mean nothing).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { runSmoke } from './smoke.js';

const MOSQUITTO = process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';
function hasRedis(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const skip = !existsSync(MOSQUITTO)
  ? `mosquitto is not installed at ${MOSQUITTO} (make deps installs it)`
  : !hasRedis()
    ? 'redis-server is not installed (make deps installs it)'
    : false;

test('p3-broker --smoke compares cpuburst with mosquitto on every row', {
  timeout: 300_000,
  skip,
}, async (t) => {
  const { result: res } = await runSmoke(t, 'p3-broker');
  assert.ok(res.durationSeconds > 0 && res.durationSeconds < 300);
  assert.match(String(res.setup.mosquitto), /^mosquitto 2\./);
  assert.ok(['dist/cli.js', 'cli.ts'].some((b) => String(res.setup.cpuburst).includes(b)));

  // Flows: every case has msgs/s, p50 and p99 for both brokers, measured in this run.
  const flows = res.rows.filter((r) => /fan-(in|out)/.test(r.case));
  const cases = [...new Set(flows.map((r) => r.case))];
  assert.ok(cases.length >= 4, `cases: ${cases.join(' | ')}`);
  assert.ok(cases.some((c) => c.startsWith('QoS 0')) && cases.some((c) => c.startsWith('QoS 1')));
  assert.ok(cases.some((c) => c.includes('password users + ACL')));
  let measured = 0;
  for (const c of cases) {
    const get = (m: string) => flows.find((r) => r.case === c && r.metric === m);
    const tput = get('msgs/s delivered')!;
    const p50 = get('p50 latency ms')!;
    const p99 = get('p99 latency ms')!;
    assert.ok(tput && p50 && p99, `${c}: three rows`);
    for (const r of [tput, p50, p99]) {
      // Measured, or null with the reason in the note (the result contract); never 0 or NaN.
      const ok = (v: number | null | undefined, who: string) =>
        (Number.isFinite(v) && v! > 0) || (v === null && (r.note ?? '').includes(`${who}: `));
      assert.ok(ok(r.value, 'cpuburst'), `${c} ${r.metric} value ${r.value}: ${r.note ?? ''}`);
      assert.ok(ok(r.reference, 'mosquitto'), `${c} ${r.metric} reference ${r.reference}: ${r.note ?? ''}`);
      if (r.value != null && r.reference != null) measured++;
      assert.match(r.referenceName!, /^mosquitto 2\./);
      if (r.value != null && r.reference != null)
        assert.ok(Math.abs(r.ratio! - r.value! / r.reference!) < 0.01, `${c} ${r.metric} ratio`);
      assert.equal(typeof r.met, 'boolean');
    }
    assert.equal(tput.goal, '≥ 0.5× mosquitto');
    if (tput.value == null || tput.reference == null) continue; // unmeasured case, reason asserted above
    const eff = get('deliveries per broker CPU-second')!;
    assert.ok(
      eff.value! > 0 && eff.reference! > 0,
      `${c}: deliveries per CPU-second ${eff.value}/${eff.reference}`,
    );
    // a loopback broker delivers more than 100 messages a second and never within a microsecond
    assert.ok(tput.value! > 100 && tput.reference! > 100);
    assert.ok(p50.value! <= p99.value! && p50.reference! <= p99.reference!);
    assert.ok(p50.value! > 0.001 && p99.value! < 10_000);
  }
  // An empty measurement window may happen once in a short smoke run, not as a habit.
  assert.ok(measured >= (cases.length - 1) * 3, `only ${measured} of ${cases.length * 3} flow rows measured`);
  const perCase = res.setup.perCase as {
    floodRun: { generatorCpuCores: number[]; brokerCpuCores: number };
  }[];
  assert.equal(perCase.length, cases.length * 2);
  for (const p of perCase) {
    assert.ok(p.floodRun.generatorCpuCores.length >= 3);
    assert.ok(p.floodRun.generatorCpuCores.every((x) => x >= 0 && x < 2));
  }

  // Idle connections: 1,000 held by each single process; RSS and bytes per connection measured.
  const idle = (metric: string) =>
    res.rows.find((r) => r.case.startsWith('idle connections, one process') && r.metric === metric)!;
  assert.equal(idle('connections held').value, 1000);
  assert.equal(idle('connections held').reference, 1000);
  assert.ok(idle('RSS MiB').value! > 10 && idle('RSS MiB').reference! > 0);
  assert.ok(idle('bytes per connection').value! > 0, 'cpuburst bytes per connection');
  assert.ok(idle('connects/s').value! > 0 && idle('connects/s').reference! > 0);
  const extrap = res.rows.find((r) => r.case.startsWith('100k idle connections, one process'))!;
  assert.ok(extrap.value! > idle('RSS MiB').value!, 'extrapolation grows');
  // The clustered row: cpuburst measured through Redis-sharing replicas; mosquitto not measurable.
  const cluster = res.rows.filter((r) => r.case.includes('cpuburst replicas sharing Redis'));
  assert.equal(cluster.length, 2);
  for (const r of cluster) {
    assert.equal(r.reference, null);
    assert.match(r.note!, /mosquitto: not measurable here/);
  }
  assert.equal(cluster.find((r) => r.metric === 'connections held')!.value, 1000);
  assert.ok(cluster.find((r) => r.metric.startsWith('RSS MiB'))!.value! > 0);

  // Charts: one series per broker, values aligned with x.
  assert.ok(res.charts.length >= 3);
  for (const ch of res.charts) {
    for (const s of ch.series) assert.equal(s.values.length, ch.x.length, ch.title);
  }
});
