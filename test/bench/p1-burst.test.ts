// P1 smoke on the REAL kernel: `bench/p1-burst.bench.ts --smoke` with the real agent process; the
// result file's shape and sanity (not goal thresholds), that the agent really applied the static
// burst, and that the run leaves no cgroup, process or temp dir; SIGINT mid-run cleans up too.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { CPU, CPUACCT, realCgroupProblem } from '../../bench/lib/cgroups.js';
import type { BenchResult } from '../../bench/lib/results.js';

const REPO = path.resolve(import.meta.dirname, '../..');
const skip = process.getuid?.() !== 0 ? 'needs root to write /sys/fs/cgroup' : realCgroupProblem();

function startBench(
  dir: string,
  extra: string[] = [],
): { child: ChildProcess; exit: Promise<number | null>; err: () => string } {
  let err = '';
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/p1-burst.bench.ts', '--smoke', ...extra], {
    cwd: REPO,
    env: { ...process.env, BENCH_RESULTS_DIR: dir, BENCH_MODE: 'smoke' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', (d) => {
    err += d;
  });
  const exit = new Promise<number | null>((r) => child.once('exit', (c, s) => r(c ?? (s ? 128 : null))));
  return { child, exit, err: () => err };
}

const leftovers = (pid: number) =>
  [CPU, CPUACCT].map((r) => path.join(r, `cpuburst-bench-p1-burst-${pid}`)).filter((d) => fs.existsSync(d));

const workDirs = () => new Set(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('cpuburst-bench-p1-')));

describe('p1-burst smoke (real cgroups, real agent)', { skip: skip ?? false, timeout: 300_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-p1-test-'));
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes a sane p1-burst.smoke.json and leaves nothing behind', async (t) => {
    const before = workDirs();
    const b = startBench(dir);
    children.push(b.child);
    const code = await b.exit;
    assert.equal(code, 0, b.err());
    const r = JSON.parse(fs.readFileSync(path.join(dir, 'p1-burst.smoke.json'), 'utf8')) as BenchResult;
    t.diagnostic(b.err().trim());
    assert.equal(r.part, 'p1-burst');
    assert.equal(r.mode, 'smoke');
    assert.equal(r.machine.cpus, os.cpus().length);
    const get = (c: string, metric: string) => {
      const x = r.rows.find((y) => y.case === c && y.metric === metric);
      assert.ok(x, `row ${c} / ${metric}`);
      return x;
    };
    for (const c of ['no burst', 'static 100%', 'auto']) {
      for (const q of ['p50', 'p90', 'p99', 'max']) {
        const v = get(c, `${q} latency ms`).value;
        assert.ok(v != null && Number.isFinite(v) && v > 0 && v < 60_000, `${c} ${q} = ${v}`);
      }
      const th = get(c, 'throttled periods %').value!;
      assert.ok(th >= 0 && th <= 100, `${c} throttled ${th}`);
      const cpu = get(c, 'mean CPU / limit').value!;
      assert.ok(cpu > 0 && cpu < 10, `${c} mean CPU / limit ${cpu}`);
      assert.ok(get(c, 'nr_bursts').value! >= 0);
    }
    // References come from this run's no-burst case.
    const none = get('no burst', 'p99 latency ms').value;
    assert.equal(get('auto', 'p99 latency ms').reference, none);
    assert.equal(typeof get('auto', 'p99 latency ms').met, 'boolean');
    assert.equal(typeof get('auto vs best static', 'p99 latency ms').met, 'boolean');
    assert.equal(get('no burst', 'nr_bursts').value, 0, 'no burst: the kernel never bursts');
    // The real agent applied the decisions: burst = limit (400m → 40000 µs) for static 100 %.
    const measured = r.setup.measured as { cases: { name: string; burstUs: number; requests: number }[] };
    assert.equal(measured.cases.find((c) => c.name === 'static 100%')?.burstUs, 40_000);
    assert.equal(measured.cases.find((c) => c.name === 'no burst')?.burstUs, 0);
    for (const c of measured.cases) assert.ok(c.requests > 0, `${c.name} served requests`);
    // Noisy neighbour: both variants, hog progress measured, node state seen.
    const hog = get('noisy neighbour: protection on (50 %)', 'hog CPU cores');
    assert.ok(hog.value! >= 0 && hog.reference! >= 0 && hog.value! <= os.cpus().length);
    assert.match(get('noisy neighbour: protection on (50 %)', 'seconds not idle %').note!, /on: \w+ \d+ s/);
    assert.ok(r.charts.length >= 3);
    assert.deepEqual(leftovers(b.child.pid!), [], 'no cgroup left');
    assert.deepEqual(
      [...workDirs()].filter((d) => !before.has(d)),
      [],
      'no work dir left',
    );
  });

  it('SIGINT mid-run stops the agent and the services and removes the cgroups', async () => {
    const b = startBench(dir, ['--no-neighbour']);
    children.push(b.child);
    const end = Date.now() + 60_000;
    while (!b.err().includes('no burst:') && Date.now() < end && b.child.exitCode === null)
      await new Promise((r) => setTimeout(r, 100));
    assert.ok(fs.existsSync(path.join(CPU, `cpuburst-bench-p1-burst-${b.child.pid}`)), b.err());
    b.child.kill('SIGINT');
    assert.equal(await b.exit, 130, b.err());
    assert.deepEqual(leftovers(b.child.pid!), []);
    const agents = fs
      .readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return fs
            .readFileSync(`/proc/${p}/cmdline`, 'utf8')
            .includes(`cpuburst-bench-p1-burst-${b.child.pid}`);
        } catch {
          return false;
        }
      });
    assert.deepEqual(agents, [], 'no agent of that run still running');
  });
});

if (skip) describe('p1-burst smoke', () => it(`skipped: ${skip}`, { skip }, () => {}));
