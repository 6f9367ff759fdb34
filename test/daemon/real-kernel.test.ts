// Property test on the REAL kernel (cgroup v1 cpu controller with cpu.cfs_burst_us): ≥ 10,000
// random sequences of limit / policy / percent / load changes through the whole agent (control
// round → pod targets → planner → writer → ownership → restore) on a small kubepods tree.
// cpu.stat and /proc/stat are synthesized (to inject throttling and node load); every WRITE goes
// to the kernel. Asserts zero EINVAL, every final value = planned, originals restored at the end.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { silentLogger } from '../../common/log.js';
import { Agent } from '../../daemon/agent.js';
import { type CgroupFs, nodeFs } from '../../daemon/cgroup/fs.js';
import { detectLayout } from '../../daemon/cgroup/layout.js';
import { probeCapabilities } from '../../daemon/cgroup/probe.js';
import { readCpu } from '../../daemon/cgroup/read.js';
import { createAgentMetrics } from '../../daemon/metrics.js';
import { StateStore } from '../../daemon/state/store.js';
import type { BurstPolicy } from '../../protocol/index.js';
import { container, document, podDecision } from './harness.js';
import { CPU, realCgroupSkipReason, removeTree, testParentName, V1_ROOT } from './real-cgroup.js';

const SEQUENCES = Number(process.env.CPUBURST_PROPERTY_RUNS ?? 10_000);
const skip = realCgroupSkipReason();

/** Real kernel writes; synthetic cpu.stat / cpuacct.usage so the loop sees throttling and load. */
function instrumentedFs(stats: Map<string, { periods: number; throttled: number; usageUs: number }>) {
  const counts = { writes: 0, einval: 0 };
  const fsx: CgroupFs = {
    ...nodeFs,
    read(p) {
      const base = path.basename(p);
      const s = stats.get(path.dirname(p));
      if (base === 'cpu.stat' && s)
        return `nr_periods ${s.periods}\nnr_throttled ${s.throttled}\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n`;
      if (base === 'cpuacct.usage' && s) return `${s.usageUs * 1000}\n`;
      return nodeFs.read(p);
    },
    exists(p) {
      if (path.basename(p) === 'cpuacct.usage' && stats.has(path.dirname(p))) return true;
      return nodeFs.exists(p);
    },
    write(p, v) {
      counts.writes++;
      try {
        nodeFs.write(p, v);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EINVAL') counts.einval++;
        throw err;
      }
    },
  };
  return { fsx, counts };
}

describe('real kernel: property test through planner + writer', { skip: skip ?? false }, () => {
  const parent = path.join(CPU, testParentName());
  const kubepods = path.join(parent, 'kubepods');
  const tmp = fs.mkdtempSync(
    path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'cpuburst-prop-'),
  );
  after(() => {
    removeTree(parent, CPU);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it(`${SEQUENCES} random sequences: zero EINVAL, final = planned, restore = original`, {
    timeout: 170_000,
  }, (t) => {
    fs.mkdirSync(parent);
    fs.mkdirSync(kubepods);
    // A limited kubepods (8 cores) so the v1 parent rule is exercised: pods may not exceed it.
    nodeFs.write(path.join(kubepods, 'cpu.cfs_quota_us'), '800000');
    fs.mkdirSync(path.join(kubepods, 'burstable'));
    const stats = new Map<string, { periods: number; throttled: number; usageUs: number }>();
    const { fsx, counts } = instrumentedFs(stats);
    const log = silentLogger();
    const layout = detectLayout(fsx, { root: V1_ROOT, kubepodsDir: path.relative(CPU, kubepods) });
    const caps = probeCapabilities(fsx, layout, log);
    assert.equal(caps.burstSupported, true);
    assert.equal(caps.burstAboveQuota, false, 'mainline: burst > quota refused');
    counts.einval = 0; // the probe's refusal is intended
    const procRoot = path.join(tmp, 'proc');
    fs.mkdirSync(procRoot);
    const clock = { now: 1_700_000_000_000, busy: 0, idle: 0 };
    const store = new StateStore(path.join(tmp, 'state'), log);
    const agent = new Agent({
      node: 'node-a',
      fs: fsx,
      layout,
      caps,
      store,
      log,
      metrics: createAgentMetrics(),
      procRoot,
      intervalMs: 1000,
      clock: () => clock.now,
    });

    const policy = fc.constantFrom<BurstPolicy>('none', 'cpuBurstOnly', 'cfsQuotaBurstOnly', 'auto', 'auto');
    const cfg = fc.record({
      policy,
      cpuBurstPercent: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.constantFrom(100, 1000, 10000)),
      cfsQuotaBurstPercent: fc.integer({ min: 100, max: 500 }),
      cfsQuotaBurstPeriodSeconds: fc.constantFrom(-1, -1, 0, 1, 5),
    });
    const limit = fc.oneof(
      fc.constant(null),
      fc.integer({ min: 1, max: 2000 }),
      fc.integer({ min: 100, max: 2000 }),
    );
    const step = fc.oneof(
      fc.record({
        kind: fc.constant('decide' as const),
        cfg,
        limits: fc.array(limit, { minLength: 3, maxLength: 3 }),
      }),
      fc.record({
        kind: fc.constant('load' as const),
        throttle: fc.array(fc.integer({ min: 0, max: 10 }), { minLength: 3, maxLength: 3 }),
        usage: fc.array(fc.double({ min: 0, max: 4, noNaN: true }), { minLength: 3, maxLength: 3 }),
        nodeBusy: fc.double({ min: 0, max: 2, noNaN: true }),
      }),
    );
    const kubelet = fc.array(fc.option(fc.integer({ min: 100, max: 2000 }), { nil: null }), {
      minLength: 1,
      maxLength: 3,
    });

    let seq = 0;
    let verified = 0;
    const started = Date.now();
    fc.assert(
      fc.property(kubelet, fc.array(step, { minLength: 1, maxLength: 4 }), (limits, steps) => {
        seq++;
        const einvalBefore = counts.einval;
        const uid = `p${seq}`;
        const podDir = path.join(kubepods, 'burstable', `pod${uid}`);
        const ids = limits.map((_, i) => `c${seq}x${i}`);
        // The kubelet's starting state: container quota = limit, pod = sum (unlimited if any is).
        fs.mkdirSync(podDir);
        const podQuota = limits.some((l) => l === null)
          ? -1
          : limits.reduce<number>((s, l) => s + l! * 100, 0);
        if (podQuota > 0) nodeFs.write(path.join(podDir, 'cpu.cfs_quota_us'), String(podQuota));
        ids.forEach((id, i) => {
          fs.mkdirSync(path.join(podDir, id));
          if (limits[i] !== null)
            nodeFs.write(path.join(podDir, id, 'cpu.cfs_quota_us'), String(limits[i]! * 100));
          stats.set(path.join(podDir, id), { periods: 0, throttled: 0, usageUs: 0 });
        });
        const original = new Map(
          [podDir, ...ids.map((id) => path.join(podDir, id))].map((d) => [d, readCpu(fsx, 1, d)]),
        );
        try {
          for (const s of steps) {
            clock.now += 1000;
            if (s.kind === 'decide') {
              const pod = podDecision(
                uid,
                ids.map((id, i) => container(`c${i}`, `containerd://${id}`, s.limits[i] ?? null)),
                s.cfg,
              );
              const res = agent.apply(document(seq * 10 + steps.indexOf(s) + 1, [pod]));
              assert.ok(!res.errors.some((e) => e.reason === 'KernelRefused'), JSON.stringify(res.errors));
            } else {
              ids.forEach((id, i) => {
                const st = stats.get(path.join(podDir, id))!;
                st.periods += 10;
                st.throttled += s.throttle[i]!;
                st.usageUs += Math.round(s.usage[i]! * 1e6);
              });
              clock.busy += s.nodeBusy * 100;
              clock.idle += (4 - s.nodeBusy) * 100;
              fs.writeFileSync(
                path.join(procRoot, 'stat'),
                `cpu  ${Math.round(clock.busy)} 0 0 ${Math.round(clock.idle)} 0 0 0 0 0 0\ncpu0 0\ncpu1 0\ncpu2 0\ncpu3 0\n`,
              );
              agent.round();
            }
            for (const [dir, want] of agent.lastReport!.planned) {
              assert.deepEqual(readCpu(fsx, 1, dir), want, `final value of ${dir} = planned`);
              verified++;
            }
          }
          // Opt-out: everything the agent wrote goes back to the kubelet's values.
          agent.apply(document(seq * 10 + 9, []));
          for (const [dir, want] of original) assert.deepEqual(readCpu(fsx, 1, dir), want, `restored ${dir}`);
          assert.equal(store.entries().length, 0);
          assert.equal(counts.einval, einvalBefore, 'EINVAL seen');
        } finally {
          for (const id of ids) stats.delete(path.join(podDir, id));
          removeTree(podDir, CPU);
          agent.round(); // forgets any state of the removed pod
        }
      }),
      { numRuns: SEQUENCES },
    );
    const secs = (Date.now() - started) / 1000;
    t.diagnostic(
      `sequences=${seq} cgroupWrites=${counts.writes} EINVAL=${counts.einval} verifiedValues=${verified} seconds=${secs.toFixed(1)} writesPerSecond=${Math.round(counts.writes / secs)}`,
    );
    assert.ok(seq >= SEQUENCES);
    assert.equal(counts.einval, 0);
  });
});

if (skip) describe('real kernel', () => it(`skipped: ${skip}`, { skip }, () => {}));
