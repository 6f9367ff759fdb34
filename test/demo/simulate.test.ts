// --simulate (fake cgroupfs + user-space CFS enforcement) and the preflight message: the pipeline
// must work without touching /sys/fs/cgroup, and a machine without cgroups must be told what to do.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { FlagError } from '../../common/flags.js';
import { main as demoMain } from '../../demo/main.js';
import { formatCpuStat, initialCfs, stepCfs } from '../../demo/simulate/cfs.js';
import { REPO_ROOT, runCli } from '../support/cli.js';

test('CFS accounting: throttles at the quota, banks unused runtime up to the burst', () => {
  const l = { quotaUs: 50000, periodUs: 100000, burstUs: 0 };
  let s = initialCfs(0, l);
  s = stepCfs(s, l, 40000, 40000);
  assert.equal(s.throttled, false);
  s = stepCfs(s, l, 60000, 20000); // 60 ms used of a 50 ms quota
  assert.equal(s.throttled, true);
  assert.equal(s.nrThrottled, 1);
  s = stepCfs(s, l, 100000, 0); // refill: -10 ms + 50 ms
  assert.equal(s.throttled, false);
  assert.equal(s.nrPeriods, 1);
  assert.equal(s.runtimeUs, 40000);
  assert.equal(s.throttledTimeUs, 40000);
  // With burst = quota, an idle period banks runtime: 100 ms can run in one period.
  const b = { quotaUs: 50000, periodUs: 100000, burstUs: 50000 };
  let t = initialCfs(0, b);
  t = stepCfs(t, b, 100000, 0); // idle period → runtime min(50+50, 100) = 100 ms
  assert.equal(t.runtimeUs, 100000);
  t = stepCfs(t, b, 190000, 90000);
  assert.equal(t.throttled, false);
  t = stepCfs(t, b, 200000, 0);
  assert.equal(t.nrBursts, 1);
  assert.equal(t.burstTimeUs, 40000);
  assert.match(formatCpuStat(t), /^nr_periods 2\nnr_throttled 0\n/);
  // Unlimited quota never throttles.
  const u = { quotaUs: -1, periodUs: 100000, burstUs: 0 };
  assert.equal(stepCfs(initialCfs(0, u), u, 50000, 1e6).throttled, false);
});

test('without a cgroup v1 cpu controller the demo says so and suggests --simulate', {
  timeout: 60000,
}, async () => {
  const r = await runCli(['demo', '--cgroup-root', path.join(os.tmpdir(), 'cpuburst-no-such-cgroupfs')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot run the real-cgroup demo/);
  assert.match(r.stderr, /no cgroup v1 cpu controller with CFS quota at .*cpuburst-no-such-cgroupfs\/cpu/);
  assert.match(r.stderr, /cpuburst demo --simulate/);
});

test('cpuburst demo --simulate runs every component on a fake cgroupfs', { timeout: 180000 }, async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-demo-sim-'));
  after(() => fs.rmSync(work, { recursive: true, force: true }));
  const before = fs.existsSync('/sys/fs/cgroup/cpu')
    ? fs.readdirSync('/sys/fs/cgroup/cpu').filter((n) => n.startsWith('cpuburst-demo-'))
    : [];
  const r = await runCli(
    [
      'demo',
      '--simulate',
      '--json',
      '--no-neighbour',
      '--duration',
      '3',
      '--warmup',
      '1',
      '--settle-timeout',
      '0',
      '--work-dir',
      work,
      '--out-dir',
      path.join(work, 'out'),
    ],
    { cwd: REPO_ROOT },
  );
  assert.equal(r.code, 0, r.stderr.slice(-3000));
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(res.machine.mode, 'simulate');
  assert.equal(res.pipeline.strategy.ready, true);
  assert.equal(res.pipeline.ack.result, 'Applied');
  assert.equal(res.pipeline.applied.asPlanned, true);
  assert.equal(res.pipeline.restoredBeforeExit, true);
  assert.deepEqual(res.pipeline.cgroupsLeftAfterExit, []);
  assert.ok(res.phases[0].throttling.nrPeriods > 0, 'the emulator writes cpu.stat');
  assert.ok(res.phases[0].meanCpuCores > 0, 'the emulator writes cpuacct.usage');
  // The real cgroupfs was not touched.
  const now = fs.existsSync('/sys/fs/cgroup/cpu')
    ? fs.readdirSync('/sys/fs/cgroup/cpu').filter((n) => n.startsWith('cpuburst-demo-'))
    : [];
  assert.deepEqual(
    now.filter((n) => !before.includes(n)),
    [],
  );
  assert.deepEqual(fs.readdirSync(path.join(work, 'cgroupfs', 'cpu')), []);
});

test('bad demo flags are refused with a clear message (the CLI exits 2 on FlagError)', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--cpu-limit', 'abc'], /--cpu-limit "abc" is not a usable CPU quantity/],
    [['--node-name', 'Bad_Node'], /--node-name "Bad_Node" is not a valid node name/],
    [['--rate', '0'], /--rate must be a positive number/],
    [['--cfs-quota-burst-percent', '50'], /at least 100/],
    [['--bogus'], /unknown flag --bogus/],
  ];
  for (const [args, re] of cases) {
    await assert.rejects(demoMain(args), (err: Error) => err instanceof FlagError && re.test(err.message));
  }
});
