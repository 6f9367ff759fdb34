// What one steady round costs in cgroup I/O, and that the shortcuts behind it (dir caches instead of
// existence checks, gauges set only on change, the planner's no-change answer) keep the behaviour:
// a vanished container is reported and found again, metric series follow changes and departures.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { CgroupFs } from '../../daemon/cgroup/fs.js';
import type { FakeCgroupFs } from '../support/fake-cgroupfs.js';
import { container, document, type Harness, makeHarness, podDecision } from './harness.js';

function counting(inner: FakeCgroupFs) {
  const n = { read: 0, exists: 0, listDirs: 0, write: 0, sweep: 0 };
  const fs: CgroupFs = {
    read: (p) => {
      n.read++;
      return inner.read(p);
    },
    write: (p, v) => {
      n.write++;
      return inner.write(p, v);
    },
    exists: (p) => {
      n.exists++;
      return inner.exists(p);
    },
    mkdir: (p) => inner.mkdir(p),
    rmdir: (p) => inner.rmdir(p),
    listDirs: (p) => {
      n.listDirs++;
      return inner.listDirs(p);
    },
    isCgroup2: (p) => inner.isCgroup2(p),
    sweep: () => {
      n.sweep++;
    },
  };
  const reset = () => {
    for (const k of Object.keys(n) as Array<keyof typeof n>) n[k] = 0;
  };
  return { fs, n, reset };
}

let busy = 0;
let idle = 0;
function second(h: Harness) {
  busy += 0.5;
  idle += 3.5;
  h.fake.setProcStat(4, busy, idle);
  h.clock.now += 1000;
}

const PODS = 5;

for (const version of [1, 2] as const) {
  describe(`one steady round on fake cgroup v${version}`, () => {
    const h = makeHarness({ version });
    after(() => h.cleanup());
    const c = counting(h.fake);
    const agent = h.restart({ fs: c.fs });
    const ctrDirs: string[][] = [];
    const pods = Array.from({ length: PODS }, (_, i) => {
      const { containerDirs } = h.fake.addPod({
        uid: `cost-${i}`,
        qosClass: 'Burstable',
        containers: [
          { id: `containerd://a${i}`, quotaUs: 50000 },
          { id: `containerd://b${i}`, quotaUs: 20000 },
        ],
      });
      ctrDirs.push(containerDirs);
      return podDecision(`cost-${i}`, [
        container('app', `containerd://a${i}`, 500),
        container('side', `containerd://b${i}`, 200),
      ]);
    });

    it('reads each value once, checks no existence, lists no dirs, writes nothing', () => {
      assert.equal(agent.apply(document(1, pods)).result, 'Applied');
      for (let i = 0; i < 3; i++) {
        second(h);
        agent.round();
      }
      c.reset();
      second(h);
      const rep = agent.round();
      assert.deepEqual(rep.errors, []);
      // v1: pod burst+quota+period, container those three + cpu.stat + cpuacct.usage.
      // v2: pod cpu.max.burst+cpu.max, container those two + cpu.stat (usage_usec).
      // v1 also reads the pods' two ancestors (burstable, kubepods) once per round: the hierarchy rule.
      const perPod = version === 1 ? 3 + 2 * 5 : 2 + 2 * 3;
      assert.equal(c.n.read, PODS * perPod + (version === 1 ? 2 * 3 : 0));
      assert.equal(c.n.exists, 0);
      assert.equal(c.n.listDirs, 0);
      assert.equal(c.n.write, 0);
      assert.equal(c.n.sweep, 1);
    });

    it('a container cgroup that vanishes is reported, and picked up again when it is back', () => {
      const gone = ctrDirs[0]![1]!;
      h.fake.removeCgroup(gone);
      second(h);
      const rep = agent.round();
      const e = rep.errors.find((x) => x.uid === 'cost-0');
      assert.equal(e?.reason, 'CgroupNotFound');
      assert.match(e!.message, /has no cgroup/);
      h.fake.mkdir(gone);
      h.fake.setRaw(gone, { quotaUs: 20000 });
      second(h);
      const back = agent.round();
      assert.deepEqual(back.errors, []);
      // Static burst (100 % of 200m) is applied to the re-created cgroup.
      assert.equal(h.fake.values(gone).burstUs, 20000);
    });

    it('metric series follow value changes, and go with the pod and come back with it', async () => {
      const quota = async () =>
        (await h.metrics.containerQuota.get()).values.find(
          (v) => v.labels.uid === 'cost-1' && v.labels.container === 'app',
        )?.value;
      assert.equal(await quota(), 0.05);
      // Throttled: the dynamic quota goes up, and the gauge with it.
      const app = ctrDirs[1]![0]!;
      for (let i = 0; i < 2; i++) {
        const s = h.fake.stat(app);
        h.fake.setStat(app, {
          nrPeriods: s.nrPeriods + 10,
          nrThrottled: s.nrThrottled + 10,
          usageUs: s.usageUs + 5e5,
        });
        second(h);
        agent.round();
      }
      const raised = await quota();
      assert.ok(raised !== undefined && raised > 0.05, `quota gauge ${raised}`);
      assert.equal(raised, h.fake.values(app).quotaUs / 1e6);
      // The pod leaves the document: its series go.
      agent.apply(
        document(
          2,
          pods.filter((p) => p.uid !== 'cost-1'),
        ),
      );
      assert.equal(await quota(), undefined);
      // It comes back: the series are set again (not skipped as "unchanged").
      agent.apply(document(3, pods));
      second(h);
      agent.round();
      assert.equal(await quota(), h.fake.values(app).quotaUs / 1e6);
    });
  });
}
