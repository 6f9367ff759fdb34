// The agent on the kernel-enforcing fake cgroupfs: apply, control, restore, ownership, bad input.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { memoryLogger } from '../../common/log.js';
import type { FakeCgroupFs } from '../support/fake-cgroupfs.js';
import { container, document, type Harness, makeHarness, podDecision } from './harness.js';

/** One second of load on a container: periods, throttled periods, CPU used (cores). */
function load(fake: FakeCgroupFs, dir: string, throttled: number, cores: number) {
  const s = fake.stat(dir);
  fake.setStat(dir, {
    nrPeriods: s.nrPeriods + 10,
    nrThrottled: s.nrThrottled + throttled,
    usageUs: s.usageUs + cores * 1e6,
  });
}

let busy = 0;
let idle = 0;
/** Advances the clock one second with the node at `busyCores` of 4 CPUs. */
function second(h: Harness, busyCores = 0.5) {
  busy += busyCores;
  idle += 4 - busyCores;
  h.fake.setProcStat(4, busy, idle);
  h.clock.now += 1000;
}

for (const version of [1, 2] as const) {
  describe(`agent on fake cgroup v${version}`, () => {
    const h = makeHarness({ version });
    after(() => h.cleanup());
    const { fake } = h;
    const { podDir, containerDirs } = fake.addPod({
      uid: 'aaaa-1111',
      qosClass: 'Burstable',
      containers: [
        { id: 'containerd://c1', quotaUs: 200000 },
        { id: 'containerd://c2', quotaUs: 100000 },
      ],
    });
    const [c1, c2] = containerDirs as [string, string];
    const pod = podDecision('aaaa-1111', [
      container('app', 'containerd://c1', 2000),
      container('side', 'containerd://c2', 1000),
    ]);

    it('applies static burst (100 % of the limit) to containers and the pod (sum)', () => {
      const res = h.agent.apply(document(1, [pod]));
      assert.equal(res.result, 'Applied', JSON.stringify(res.errors));
      assert.deepEqual(fake.values(c1), { periodUs: 100000, quotaUs: 200000, burstUs: 200000 });
      assert.deepEqual(fake.values(c2), { periodUs: 100000, quotaUs: 100000, burstUs: 100000 });
      assert.deepEqual(fake.values(podDir), { periodUs: 100000, quotaUs: 300000, burstUs: 300000 });
      assert.equal(fake.einvalCount, 0);
    });

    it('raises the quota proportionally while throttled, pod = sum of containers', () => {
      second(h);
      h.agent.round(); // first sample
      const seen: number[] = [];
      for (let i = 0; i < 4; i++) {
        second(h);
        load(fake, c1, 10, 2); // throttled in every period
        load(fake, c2, 0, 0.1);
        h.agent.round();
        seen.push(fake.values(c1).quotaUs);
      }
      // ratio 1.0 → ×2 per round, capped at 300 % of the limit
      assert.deepEqual(seen, [400000, 600000, 600000, 600000]);
      assert.equal(fake.values(c2).quotaUs, 100000);
      assert.equal(fake.values(podDir).quotaUs, 700000);
      assert.equal(fake.einvalCount, 0);
    });

    it('gives the extra quota back when the load stops', () => {
      const seen: number[] = [];
      for (let i = 0; i < 8; i++) {
        second(h);
        load(fake, c1, 0, 0.05);
        h.agent.round();
        seen.push(fake.values(c1).quotaUs);
      }
      assert.ok(seen[0]! < 600000 && seen.at(-1) === 200000, seen.join(','));
      assert.equal(fake.values(podDir).quotaUs, 300000);
      assert.equal(fake.einvalCount, 0);
    });

    it('policy none restores the originals once, then is hands-off', () => {
      second(h);
      load(fake, c1, 10, 2);
      h.agent.round();
      assert.ok(fake.values(c1).quotaUs > 200000);
      const none = { ...pod, config: { ...pod.config, policy: 'none' as const } };
      const res = h.agent.apply(document(2, [none]));
      assert.equal(res.result, 'Applied');
      assert.deepEqual(fake.values(c1), { periodUs: 100000, quotaUs: 200000, burstUs: 0 });
      assert.deepEqual(fake.values(podDir), { periodUs: 100000, quotaUs: 300000, burstUs: 0 });
      assert.equal(h.store.entries().length, 0);
      // Another writer now changes the quota: the agent must not touch it again.
      fake.setRaw(c1, { quotaUs: 150000 });
      const before = fake.writeLog.length;
      for (let i = 0; i < 3; i++) {
        second(h);
        load(fake, c1, 10, 2);
        h.agent.round();
      }
      assert.equal(fake.writeLog.length, before, 'no writes under policy none');
      assert.equal(fake.values(c1).quotaUs, 150000);
      fake.setRaw(c1, { quotaUs: 200000 });
    });

    it('opt-out (pod no longer in the document) restores', () => {
      h.agent.apply(document(3, [pod]));
      assert.equal(fake.values(c1).burstUs, 200000);
      h.agent.apply(document(4, []));
      assert.deepEqual(fake.values(c1), { periodUs: 100000, quotaUs: 200000, burstUs: 0 });
      assert.equal(fake.values(podDir).burstUs, 0);
      assert.equal(h.store.entries().length, 0);
    });

    it('keeps ownership across a restart and --restore-all puts the originals back', () => {
      h.agent.apply(document(5, [pod]));
      second(h);
      h.agent.round();
      second(h);
      load(fake, c1, 5, 2);
      h.agent.round();
      assert.equal(fake.values(c1).quotaUs, 300000); // ratio 0.5 → ×1.5
      const agent2 = h.restart();
      assert.equal(agent2.appliedVersion, 5, 'persisted document reloaded');
      const r = agent2.restoreAll();
      assert.deepEqual(r, { pods: 1, restored: 1, failed: 0, conflicts: 0 });
      assert.deepEqual(fake.values(c1), { periodUs: 100000, quotaUs: 200000, burstUs: 0 });
      assert.deepEqual(fake.values(podDir), { periodUs: 100000, quotaUs: 300000, burstUs: 0 });
      assert.equal(fake.einvalCount, 0);
    });

    it('a value changed by someone else is a conflict: reported, and restore leaves it', () => {
      h.agent.apply(document(6, [pod]));
      fake.setRaw(c2, { burstUs: 50000 }); // e.g. another agent
      const rep = h.agent.round();
      assert.ok(
        rep.errors.some((e) => e.reason === 'Conflict'),
        JSON.stringify(rep.errors),
      );
      assert.equal(fake.values(c2).burstUs, 50000, 'left alone this round');
      h.agent.round(); // adopted as baseline: enforcing again
      assert.equal(fake.values(c2).burstUs, 100000);
      fake.setRaw(c2, { burstUs: 70000 });
      h.agent.apply(document(7, []));
      assert.equal(fake.values(c2).burstUs, 70000, 'restore leaves a foreign value');
      assert.equal(fake.values(c1).burstUs, 0, 'but restores its own');
      fake.setRaw(c2, { burstUs: 0 });
    });

    it('pod deletion forgets the state', () => {
      const p2 = fake.addPod({
        uid: 'bbbb-2222',
        qosClass: 'Guaranteed',
        containers: [{ id: 'containerd://d1', quotaUs: 100000 }],
      });
      const doc = document(8, [
        podDecision('bbbb-2222', [container('app', 'containerd://d1', 1000)], {}, 'Guaranteed'),
      ]);
      h.agent.apply(doc);
      assert.ok(h.store.entries().length > 0);
      fake.removeCgroup(p2.podDir);
      const rep = h.agent.round();
      assert.equal(h.store.entries().length, 0);
      assert.ok(rep.errors.some((e) => e.reason === 'CgroupNotFound'));
    });
  });
}

describe('agent bad input', () => {
  const { log, lines } = memoryLogger('agent');
  const h = makeHarness({ version: 1 }, log);
  after(() => h.cleanup());
  const { fake } = h;

  it('a pod without CPU limits is skipped and nothing is written', () => {
    const { containerDirs } = fake.addPod({
      uid: 'nolimit',
      qosClass: 'BestEffort',
      containers: [{ id: 'containerd://n1' }],
    });
    const before = fake.writeLog.length;
    const rep = h.agent.round();
    h.agent.apply(
      document(1, [podDecision('nolimit', [container('app', 'containerd://n1', null)], {}, 'BestEffort')]),
    );
    const st = h.agent.lastReport!.statuses[0]!;
    assert.equal(st.phase, 'Skipped');
    assert.equal(st.reason, 'NoCpuLimit');
    assert.equal(fake.writeLog.length, before);
    assert.equal(fake.values(containerDirs[0]!).quotaUs, -1);
    assert.equal(rep.errors.length, 0);
  });

  it('a pod whose quota is unlimited keeps an unlimited pod quota; a limited container is still bounded', () => {
    const { podDir, containerDirs } = fake.addPod({
      uid: 'mixed',
      qosClass: 'Burstable',
      containers: [{ id: 'containerd://m1', quotaUs: 100000 }, { id: 'containerd://m2' }],
    });
    const res = h.agent.apply(
      document(2, [
        podDecision('mixed', [
          container('a', 'containerd://m1', 1000),
          container('b', 'containerd://m2', null),
        ]),
      ]),
    );
    assert.equal(res.result, 'Applied', JSON.stringify(res.errors));
    assert.equal(fake.values(podDir).quotaUs, -1);
    assert.deepEqual(fake.values(containerDirs[0]!), { periodUs: 100000, quotaUs: 100000, burstUs: 100000 });
    assert.equal(fake.values(containerDirs[1]!).quotaUs, -1);
  });

  it("Koordinator's 1000 % burst is clamped to the quota instead of EINVAL (#2326)", () => {
    const { containerDirs } = fake.addPod({
      uid: 'koord',
      qosClass: 'Burstable',
      containers: [{ id: 'containerd://k1', quotaUs: 200000 }],
    });
    const res = h.agent.apply(
      document(3, [
        podDecision('koord', [container('a', 'containerd://k1', 2000)], {
          policy: 'cpuBurstOnly',
          cpuBurstPercent: 1000,
        }),
      ]),
    );
    assert.equal(res.result, 'Applied');
    assert.ok(res.errors.some((e) => e.reason === 'Clamped' && /BurstAboveQuota/.test(e.message)));
    assert.equal(fake.values(containerDirs[0]!).burstUs, 200000);
    assert.equal(fake.einvalCount, 0);
  });

  it('missing cgroup dirs: a clear error, no crash, no writes', () => {
    const before = fake.writeLog.length;
    const res = h.agent.apply(document(4, [podDecision('ghost', [container('a', 'containerd://zz', 1000)])]));
    assert.equal(res.result, 'PartiallyApplied');
    assert.equal(res.errors[0]?.reason, 'CgroupNotFound');
    assert.ok(lines.some((l) => l.message === 'Pod cgroup not found' && l.uid === 'ghost'));
    assert.equal(fake.writeLog.filter((w) => w.path.includes('ghost')).length, 0);
    assert.ok(fake.writeLog.length >= before);
  });

  it('duplicate pods or container IDs in a document are refused, the first entry applies', () => {
    const { containerDirs } = fake.addPod({
      uid: 'dup',
      qosClass: 'Burstable',
      containers: [{ id: 'containerd://du1', quotaUs: 100000 }],
    });
    const p1 = podDecision('dup', [
      container('a', 'containerd://du1', 1000),
      container('b', 'containerd://du1', 1000),
    ]);
    const p2 = podDecision('dup', [container('a', 'containerd://du1', 1000)], { cpuBurstPercent: 50 });
    const res = h.agent.apply(document(7, [p1, p2]));
    assert.equal(
      res.errors.filter((e) => e.reason === 'InvalidDecision').length,
      2,
      JSON.stringify(res.errors),
    );
    assert.equal(fake.values(containerDirs[0]!).burstUs, 100000);
    assert.equal(fake.einvalCount, 0);
  });

  it('a malicious uid or container id cannot escape the cgroup tree', () => {
    const res = h.agent.apply(
      document(5, [podDecision('../../etc', [container('a', 'containerd://../../x', 1000)])]),
    );
    assert.equal(res.errors[0]?.reason, 'InvalidDecision');
  });

  it('a cgroup removed mid-write: clear log line, no crash, the next round forgets it', () => {
    const { podDir, containerDirs } = fake.addPod({
      uid: 'vanish',
      qosClass: 'Burstable',
      containers: [{ id: 'containerd://v1', quotaUs: 100000 }],
    });
    fake.beforeWrite = (file) => {
      if (file.startsWith(containerDirs[0]!)) fake.removeCgroup(podDir);
    };
    const res = h.agent.apply(
      document(6, [podDecision('vanish', [container('a', 'containerd://v1', 1000)])]),
    );
    fake.beforeWrite = null;
    assert.equal(res.result, 'PartiallyApplied');
    assert.ok(res.errors.some((e) => e.reason === 'CgroupNotFound'));
    assert.ok(
      lines.some((l) => l.message === 'Failed to write cgroup value' && l.reason === 'CgroupNotFound'),
    );
    h.agent.round();
    assert.equal(h.store.dirsOfPod('vanish').length, 0);
    assert.equal(fake.einvalCount, 0);
  });
});

describe('agent container kinds and write errors', () => {
  const { log, lines } = memoryLogger('agent');
  const h = makeHarness({ version: 2 }, log);
  after(() => h.cleanup());
  const { fake } = h;

  it('manages running init and sidecar containers too (#2988), never exited ones', () => {
    const { containerDirs, podDir } = fake.addPod({
      uid: 'kinds',
      qosClass: 'Burstable',
      containers: [
        { id: 'containerd://init1', quotaUs: 300000 },
        { id: 'containerd://side1', quotaUs: 50000 },
        { id: 'containerd://app1', quotaUs: 100000 },
      ],
      quotaUs: 300000,
    });
    const res = h.agent.apply(
      document(1, [
        podDecision('kinds', [
          container('init', 'containerd://init1', 3000, { kind: 'init', running: false }),
          container('side', 'containerd://side1', 500, { kind: 'sidecar' }),
          container('app', 'containerd://app1', 1000),
        ]),
      ]),
    );
    assert.deepEqual(res.errors, []);
    assert.equal(fake.values(containerDirs[0]!).burstUs, 0, 'exited init container untouched');
    assert.equal(fake.values(containerDirs[1]!).burstUs, 50000, 'sidecar');
    assert.equal(fake.values(containerDirs[2]!).burstUs, 100000, 'app');
    assert.equal(fake.values(podDir).quotaUs, 300000, 'pod keeps the kubelet value (max with init)');
    assert.equal(fake.values(podDir).burstUs, 150000);
    const initRunning = h.agent.apply(
      document(2, [
        podDecision('kinds', [
          container('init', 'containerd://init1', 3000, { kind: 'init', running: true }),
          container('side', 'containerd://side1', 500, { kind: 'sidecar' }),
        ]),
      ]),
    );
    assert.deepEqual(initRunning.errors, []);
    assert.equal(fake.values(containerDirs[0]!).burstUs, 300000, 'running init container bursts');
    assert.equal(fake.values(containerDirs[2]!).burstUs, 0, 'container gone from the document: restored');
  });

  it('a pod whose only container loses its limit is restored', () => {
    const { containerDirs, podDir } = fake.addPod({
      uid: 'lose',
      qosClass: 'Burstable',
      containers: [{ id: 'containerd://lo1', quotaUs: 100000 }],
    });
    h.agent.apply(document(10, [podDecision('lose', [container('a', 'containerd://lo1', 1000)])]));
    assert.equal(fake.values(containerDirs[0]!).burstUs, 100000);
    const res = h.agent.apply(
      document(11, [podDecision('lose', [container('a', 'containerd://lo1', null)])]),
    );
    assert.deepEqual(res.errors, []);
    assert.equal(h.agent.lastReport!.statuses[0]!.phase, 'Restored');
    assert.equal(fake.values(containerDirs[0]!).burstUs, 0);
    assert.equal(fake.values(podDir).burstUs, 0);
    assert.equal(h.store.dirsOfPod('lose').length, 0);
  });

  it('EACCES is reported as PermissionDenied, nothing after it is written', () => {
    const { containerDirs } = fake.addPod({
      uid: 'ro',
      qosClass: 'Burstable',
      containers: [{ id: 'containerd://ro1', quotaUs: 100000 }],
    });
    const before = fake.writeLog.length;
    fake.beforeWrite = () => {
      const e = new Error('EACCES: permission denied') as NodeJS.ErrnoException;
      e.code = 'EACCES';
      throw e;
    };
    const res = h.agent.apply(document(3, [podDecision('ro', [container('a', 'containerd://ro1', 1000)])]));
    fake.beforeWrite = null;
    assert.ok(
      res.errors.some((e) => e.reason === 'PermissionDenied'),
      JSON.stringify(res.errors),
    );
    assert.equal(fake.writeLog.length, before);
    assert.equal(fake.values(containerDirs[0]!).burstUs, 0);
    assert.ok(lines.some((l) => l.message === 'Failed to write cgroup value' && l.code === 'EACCES'));
  });
});

describe('agent node state from the share pool', () => {
  const h = makeHarness({ version: 2, cpus: 16 });
  after(() => h.cleanup());
  it("Koordinator's vector end to end: 16 CPUs, LSR pod requesting 8 using 5, node using 10 → overload", async () => {
    const { fake } = h;
    const lsr = fake.addPod({
      uid: 'lsr-1',
      qosClass: 'Guaranteed',
      containers: [{ id: 'containerd://l1', quotaUs: 800000 }],
    });
    const { containerDirs } = fake.addPod({
      uid: 'ls-1',
      qosClass: 'Burstable',
      containers: [{ id: 'containerd://s1', quotaUs: 100000 }],
    });
    const doc = document(1, [podDecision('ls-1', [container('app', 'containerd://s1', 1000)])], {
      excludedPods: [
        {
          uid: 'lsr-1',
          namespace: 'db',
          name: 'db-0',
          qos: 'LSR',
          qosClass: 'Guaranteed',
          cpuRequestMilli: 8000,
        },
      ],
    });
    h.agent.apply(doc);
    let busy = 0;
    let lsrUsage = 0;
    for (let i = 0; i < 3; i++) {
      busy += 10;
      lsrUsage += 5e6;
      fake.setProcStat(16, busy, i * 6);
      fake.setStat(lsr.podDir, { usageUs: lsrUsage });
      const s = fake.stat(containerDirs[0]!);
      fake.setStat(containerDirs[0]!, {
        nrPeriods: s.nrPeriods + 10,
        nrThrottled: s.nrThrottled + 10,
        usageUs: s.usageUs + 1e6,
      });
      h.clock.now += 1000;
      h.agent.round();
    }
    assert.equal(h.agent.statusReport().nodeState, 'overload');
    const ratio = (await h.metrics.sharePoolRatio.get()).values[0]!.value;
    assert.ok(Math.abs(ratio - 5 / 8) < 1e-9, `share-pool ratio ${ratio}`);
    assert.equal(fake.values(containerDirs[0]!).quotaUs, 100000, 'no scale-up under overload');
  });
});

describe('agent on an Alibaba-Cloud-Linux-like kernel (burst > quota accepted)', () => {
  const h = makeHarness({ version: 1, burstAboveQuota: true });
  after(() => h.cleanup());
  it('probes the capability and writes burst above quota unclamped', () => {
    const { containerDirs } = h.fake.addPod({
      uid: 'ali',
      qosClass: 'Burstable',
      containers: [{ id: 'containerd://a1', quotaUs: 200000 }],
    });
    const res = h.agent.apply(
      document(1, [
        podDecision('ali', [container('a', 'containerd://a1', 2000)], {
          policy: 'cpuBurstOnly',
          cpuBurstPercent: 300,
        }),
      ]),
    );
    assert.deepEqual(res.errors, []);
    assert.equal(h.fake.values(containerDirs[0]!).burstUs, 600000);
    assert.ok(!h.fake.exists(`${h.fake.kubepodsPath}/cpuburst-probe-${process.pid}`), 'probe cgroup removed');
  });
});

describe('agent on systemd driver with cri-o and docker scopes', () => {
  const h = makeHarness({ version: 2, driver: 'systemd' });
  after(() => h.cleanup());
  it('finds Guaranteed/Burstable pod slices and runtime scopes', () => {
    const g = h.fake.addPod({
      uid: 'a-b-c',
      qosClass: 'Guaranteed',
      containers: [{ id: 'cri-o://x1', quotaUs: 100000 }],
    });
    const b = h.fake.addPod({
      uid: 'd-e-f',
      qosClass: 'Burstable',
      containers: [{ id: 'docker://y1', quotaUs: 100000 }],
    });
    assert.match(g.containerDirs[0]!, /kubepods\.slice\/kubepods-poda_b_c\.slice\/crio-x1\.scope$/);
    assert.match(
      b.containerDirs[0]!,
      /kubepods-burstable\.slice\/kubepods-burstable-podd_e_f\.slice\/docker-y1\.scope$/,
    );
    const res = h.agent.apply(
      document(1, [
        podDecision('a-b-c', [container('a', 'cri-o://x1', 1000)], {}, 'Guaranteed'),
        podDecision('d-e-f', [container('a', 'docker://y1', 1000)]),
      ]),
    );
    assert.deepEqual(res.errors, []);
    assert.equal(h.fake.values(g.containerDirs[0]!).burstUs, 100000);
    assert.equal(h.fake.values(b.containerDirs[0]!).burstUs, 100000);
  });
});
