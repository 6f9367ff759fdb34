// Smoke of bench P4 (the agent's cost per tick): runs bench/p4-agent.bench.ts --smoke (the same code
// path as the full run, 20 pods, a few ticks per window) and checks the result's shape and sanity:
// every case measured, references measured in the same run, numbers finite and plausible. No goal
// thresholds: those are for the full run on an idle machine. Plus the pure parsers it relies on.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  groupSyscalls,
  parseProcPidStat,
  parseProcStatus,
  parseStraceSummary,
  straceAvailable,
} from '../../bench/lib/p4-procmeter.js';
import type { BenchResult } from '../../bench/lib/results.js';
import { realCgroupSkipReason } from '../daemon/real-cgroup.js';
import { runSmoke } from './smoke.js';

describe('bench P4 parsers', () => {
  it('/proc/<pid>/stat: utime+stime after the last parenthesis of comm', () => {
    const line =
      '123 (node (x) y) S 1 123 123 0 -1 4194560 100 0 0 0 250 40 0 0 20 0 11 0 1000 1000000 2000 18446744073709551615';
    assert.equal(parseProcPidStat(line), 290);
  });

  it('/proc/<pid>/status: VmRSS and VmHWM in MiB', () => {
    const m = parseProcStatus('Name:\tnode\nVmHWM:\t  102400 kB\nVmRSS:\t   51200 kB\n');
    assert.deepEqual(m, { vmRssMiB: 50, vmHwmMiB: 100 });
    assert.throws(() => parseProcStatus('Name:\tnode\n'), /VmRSS/);
  });

  it('strace -c table: calls per syscall, errors, grouped', () => {
    const s = parseStraceSummary(`% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.000600           1       600           pread64
 20.00    0.000200           1       100        10 openat
 10.00    0.000100           1       100           close
  5.00    0.000050           5        10           epoll_pwait
  5.00    0.000050           5         4           fsync
------ ----------- ----------- --------- --------- ----------------
100.00    0.001000                   814        10 total
`);
    assert.equal(s.total, 814);
    assert.deepEqual(s.errors, { openat: 10 });
    const g = groupSyscalls(s);
    assert.equal(g.reads, 600);
    assert.equal(g.opens, 100);
    assert.equal(g.closes, 100);
    assert.equal(g.fsyncs, 4);
    assert.equal(g.other, 10);
    assert.equal(g.total, 814);
  });
});

describe('bench P4 smoke (bench/p4-agent.bench.ts --smoke)', { timeout: 300_000 }, () => {
  let result: BenchResult;

  it('runs and writes p4-agent.smoke.json', async (t) => {
    const run = await runSmoke(t, 'p4-agent');
    result = run.result;
    // Nothing left behind: this run's cgroups are gone.
    for (const root of ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpuacct'])
      assert.equal(
        fs.existsSync(path.join(root, `cpuburst-bench-p4-${run.pid}`)),
        false,
        `leftover under ${root}`,
      );
  });

  it('measures every case, with plausible numbers', () => {
    const cases = result.setup.cases as Array<{
      name: string;
      cpuMsPerTick: number;
      mem: { vmRssMiB: number; vmHwmMiB: number };
      rounds: number | null;
      syscalls: Record<string, number> | null;
    }>;
    const names = cases.map((c) => c.name);
    for (const n of ['plain node idle', 'node + agent modules idle', 'agent, 0 pods, fake cgroupfs'])
      assert.ok(names.includes(n), `case ${n} missing: ${names.join(', ')}`);
    assert.ok(names.some((n) => /^agent, \d+ pods, fake cgroupfs$/.test(n) && !n.includes(' 0 pods')));
    for (const c of cases) {
      assert.ok(Number.isFinite(c.cpuMsPerTick) && c.cpuMsPerTick >= 0 && c.cpuMsPerTick < 1000, c.name);
      assert.ok(c.mem.vmRssMiB > 10 && c.mem.vmRssMiB < 4096, `${c.name} RSS ${c.mem.vmRssMiB}`);
      assert.ok(c.mem.vmHwmMiB >= c.mem.vmRssMiB, c.name);
      if (c.name.startsWith('agent'))
        assert.ok((c.rounds ?? 0) >= 2, `${c.name}: ${c.rounds} rounds counted`);
    }
    // The agent with pods reads cgroup files (strace), the idle node does not.
    const withPods = cases.find((c) => /fake cgroupfs/.test(c.name) && !c.name.includes(' 0 pods'))!;
    if (straceAvailable() !== null) {
      assert.ok(result.notes.some((n) => /strace/.test(n)));
    } else {
      assert.ok(withPods.syscalls, 'the agent case was traced');
      assert.ok(withPods.syscalls!.reads! > 10 && withPods.syscalls!.total! > withPods.syscalls!.reads!);
      assert.equal(cases.find((c) => c.name === 'plain node idle')!.syscalls!.reads, 0);
    }
  });

  it('rows carry values, references from the same run, goals and met', () => {
    const goalRows = result.rows.filter((r) => r.goal);
    assert.ok(goalRows.length >= 4, 'CPU and RSS goal rows for the fake and the real tree');
    for (const r of result.rows) {
      if (r.value === null) {
        assert.ok(r.note, `${r.case} / ${r.metric}: null without a note`);
        continue;
      }
      assert.ok(Number.isFinite(r.value), `${r.case} / ${r.metric}`);
      if (r.referenceName) assert.ok(r.reference === null || Number.isFinite(r.reference));
      if (r.goal) assert.equal(typeof r.met, 'boolean');
    }
    const cpuFake = result.rows.find(
      (r) => /fake cgroupfs/.test(r.case) && r.metric === 'CPU ms per tick (utime+stime)' && r.goal,
    );
    assert.ok(cpuFake && cpuFake.value !== null && cpuFake.reference !== null);
    assert.ok(result.charts.length >= 3);
    for (const c of result.charts) for (const s of c.series) assert.equal(s.values.length, c.x.length);
  });

  it('measures the real cgroup v1 tree when there is one', (t) => {
    const skip = realCgroupSkipReason();
    const real = result.rows.filter((r) => /real cgroup v1/.test(r.case));
    assert.ok(real.length > 0, 'the real case has rows either way');
    if (skip) {
      t.skip(`no real cgroup v1 cpu controller: ${skip}`);
      assert.ok(real.every((r) => r.value === null && r.note));
      return;
    }
    const cpu = real.find((r) => r.metric === 'CPU ms per tick (utime+stime)')!;
    const rss = real.find((r) => r.metric === 'RSS MiB (VmRSS, window max)')!;
    assert.ok(cpu.value !== null && rss.value !== null, JSON.stringify(real));
  });
});
