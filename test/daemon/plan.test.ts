import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { silentLogger } from '../../common/log.js';
import {
  type PlanInput,
  planWrites,
  planWritesFull,
  steadyPlan,
  tripleError,
} from '../../daemon/cgroup/plan.js';
import { readCpu } from '../../daemon/cgroup/read.js';
import { executePlan } from '../../daemon/cgroup/write.js';
import { FakeCgroupFs } from '../support/fake-cgroupfs.js';

const log = silentLogger();
const cur = (quotaUs: number, burstUs: number | null = 0, periodUs = 100000) => ({
  quotaUs,
  burstUs,
  periodUs,
});

describe('write planner (pure)', () => {
  it('lowers burst before quota when shrinking (Koordinator #2778)', () => {
    const plan = planWrites({
      version: 2,
      burstAboveQuota: false,
      parentLimit: null,
      pod: { dir: '/p', current: cur(480000, 200000), target: { quotaUs: 200000, burstUs: 100000 } },
      containers: [
        { dir: '/p/c', current: cur(480000, 200000), target: { quotaUs: 200000, burstUs: 100000 } },
      ],
    });
    assert.deepEqual(
      plan.writes.map((w) => `${w.dir} ${w.file}=${w.value}`),
      [
        '/p/c cpu.max.burst=100000',
        '/p cpu.max.burst=100000',
        '/p/c cpu.max=200000 100000',
        '/p cpu.max=200000 100000',
      ],
    );
    assert.deepEqual(plan.unsafe, []);
  });

  it('raises the pod quota before the container quota on v1, then burst', () => {
    const plan = planWrites({
      version: 1,
      burstAboveQuota: false,
      parentLimit: null,
      pod: { dir: '/p', current: cur(200000), target: { quotaUs: 600000, burstUs: 200000 } },
      containers: [{ dir: '/p/c', current: cur(200000), target: { quotaUs: 600000, burstUs: 200000 } }],
    });
    assert.deepEqual(
      plan.writes.map((w) => `${w.dir} ${w.file}=${w.value}`),
      [
        '/p cpu.cfs_quota_us=600000',
        '/p/c cpu.cfs_quota_us=600000',
        '/p cpu.cfs_burst_us=200000',
        '/p/c cpu.cfs_burst_us=200000',
      ],
    );
  });

  it('clamps with reasons and skips no-op writes', () => {
    const plan = planWrites({
      version: 1,
      burstAboveQuota: false,
      parentLimit: { quotaUs: 300000, periodUs: 100000 },
      pod: { dir: '/p', current: cur(200000), target: { quotaUs: 500000, burstUs: 2_000_000 } },
      containers: [
        { dir: '/p/a', current: cur(200000), target: { quotaUs: 200000, burstUs: 0 } },
        { dir: '/p/b', current: cur(500), target: { quotaUs: 500 } },
      ],
    });
    const reasons = plan.clamps.map((c) => `${c.dir}:${c.field}:${c.reason}:${c.applied}`).sort();
    assert.deepEqual(reasons, [
      '/p/b:quota:QuotaBelowMinimum:1000',
      '/p:burst:BurstAboveQuota:300000',
      '/p:quota:AboveParentQuota:300000',
    ]);
    assert.ok(!plan.writes.some((w) => w.dir === '/p/a'), 'no-op container write skipped');
    assert.equal(
      tripleError({ periodUs: 100000, quotaUs: 999, burstUs: 0 }, false),
      'quota 999 outside [1000, 17592186044415]',
    );
  });

  it('leaves burst alone where the kernel has no burst file', () => {
    const plan = planWrites({
      version: 1,
      burstAboveQuota: false,
      parentLimit: null,
      pod: { dir: '/p', current: cur(200000, null), target: { quotaUs: 300000, burstUs: 100000 } },
      containers: [],
    });
    assert.deepEqual(
      plan.writes.map((w) => w.field),
      ['quota'],
    );
    assert.equal(plan.clamps[0]?.reason, 'BurstUnsupported');
  });

  it('unlimited → limited: children first on v1', () => {
    const plan = planWrites({
      version: 1,
      burstAboveQuota: false,
      parentLimit: null,
      pod: { dir: '/p', current: cur(-1, 900000), target: { quotaUs: 300000, burstUs: 0 } },
      containers: [{ dir: '/p/c', current: cur(400000), target: { quotaUs: 300000 } }],
    });
    assert.deepEqual(
      plan.writes.map((w) => `${w.dir} ${w.field}`),
      ['/p burst', '/p/c quota', '/p quota'],
    );
  });
});

// Random (current, target) pairs for a pod with 1–3 containers, executed on the kernel-enforcing
// fake: zero EINVAL and every final value equal to the clamped target.
for (const version of [1, 2] as const) {
  describe(`planner + writer on the kernel-enforcing fake (v${version})`, () => {
    const fake = FakeCgroupFs.create({ version });
    after(() => fake.cleanup());
    const quota = fc.oneof(fc.constant(-1), fc.integer({ min: 1000, max: 1_600_000 }));
    const period = fc.constantFrom(100000, 50000, 200000, 1000, 1_000_000);
    const node = fc.record({
      quotaUs: quota,
      burstUs: fc.integer({ min: 0, max: 2_000_000 }),
      periodUs: period,
    });
    const kubepods = fc.oneof(fc.constant(-1), fc.integer({ min: 200000, max: 1_600_000 }));
    let n = 0;
    let unsafe = 0;
    let writes = 0;
    it('400 random plans: zero EINVAL, final = planned', (t) => {
      fc.assert(
        fc.property(
          kubepods,
          fc.array(fc.tuple(node, node), { minLength: 1, maxLength: 3 }),
          node,
          (kp, cs, podT) => {
            const uid = `prop-${n++}`;
            const { podDir, containerDirs } = fake.addPod({
              uid,
              qosClass: 'Guaranteed',
              containers: cs.map((_, i) => ({ id: `containerd://c${n}x${i}` })),
            });
            try {
              // A valid starting state, set the way a kubelet would (kubepods limit first).
              fake.setRaw(fake.kubepodsPath, { quotaUs: kp, periodUs: 100000, burstUs: 0 });
              const start = planWrites({
                version,
                burstAboveQuota: false,
                parentLimit: kp === -1 ? null : { quotaUs: kp, periodUs: 100000 },
                pod: {
                  dir: podDir,
                  current: readCpu(fake, version, podDir),
                  target: { quotaUs: -1, burstUs: 0 },
                },
                containers: containerDirs.map((d, i) => ({
                  dir: d,
                  current: readCpu(fake, version, d),
                  target: cs[i]![0],
                })),
              });
              assert.equal(executePlan(fake, version, start, log).failure, null);
              const input: PlanInput = {
                version,
                burstAboveQuota: false,
                parentLimit: kp === -1 ? null : { quotaUs: kp, periodUs: 100000 },
                pod: { dir: podDir, current: readCpu(fake, version, podDir), target: podT },
                containers: containerDirs.map((d, i) => ({
                  dir: d,
                  current: readCpu(fake, version, d),
                  target: cs[i]![1],
                })),
              };
              const plan = planWrites(input);
              unsafe += plan.unsafe.length;
              if (plan.unsafe.length && process.env.DEBUG_UNSAFE)
                console.error(
                  JSON.stringify({
                    kp,
                    u: plan.unsafe,
                    t: [...plan.targets],
                    c: input.containers.map((c) => c.current),
                    p: input.pod.current,
                  }),
                );
              writes += plan.writes.length;
              const res = executePlan(fake, version, plan, log);
              assert.equal(res.failure, null, res.failure?.message);
              for (const [dir, t] of plan.targets) {
                if (plan.unsafe.some((u) => u.dir === dir)) continue;
                assert.deepEqual(readCpu(fake, version, dir), t, dir);
              }
            } finally {
              fake.removeCgroup(podDir);
              fake.setRaw(fake.kubepodsPath, { quotaUs: -1 });
            }
          },
        ),
        { numRuns: 400 },
      );
      assert.equal(fake.einvalCount, 0);
      t.diagnostic(`writes=${writes} unsafe=${unsafe} einval=${fake.einvalCount}`);
      assert.ok(unsafe <= writes / 20, 'the planner rarely gives up');
    });
  });
}

// The no-change shortcut must answer exactly what the full planner would (it skips the simulation
// every steady round): random current values (valid or not), targets mostly equal to them.
describe('planner no-change shortcut', () => {
  it('2,000 random inputs: planWrites = planWritesFull; the shortcut is taken when nothing changes', (t) => {
    const quota = fc.oneof(fc.constant(-1), fc.integer({ min: 500, max: 400_000 }));
    const period = fc.constantFrom(100000, 50000, 200000, 500, 2_000_000);
    const burst = fc.oneof(fc.constant(null), fc.integer({ min: 0, max: 400_000 }));
    const triple = fc.record({ quotaUs: quota, periodUs: period, burstUs: burst });
    // Target: keep every field (undefined), restate it, or (rarely) ask for another value.
    const node = (dir: string) =>
      fc
        .tuple(triple, fc.constantFrom('keep', 'same', 'same', 'other'), triple)
        .map(([current, how, other]) => ({
          dir,
          current,
          target:
            how === 'keep'
              ? {}
              : how === 'same'
                ? {
                    quotaUs: current.quotaUs,
                    periodUs: current.periodUs,
                    burstUs: current.burstUs ?? undefined,
                  }
                : { quotaUs: other.quotaUs, burstUs: other.burstUs ?? undefined },
        }));
    let shortcut = 0;
    fc.assert(
      fc.property(
        fc.constantFrom(1, 2) as fc.Arbitrary<1 | 2>,
        fc.boolean(),
        fc.option(fc.record({ quotaUs: fc.integer({ min: 1000, max: 800_000 }), periodUs: period })),
        node('/p'),
        fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 0, maxLength: 3 }),
        fc.array(triple, { maxLength: 2 }),
        (version, burstAboveQuota, parentLimit, pod, ids, others) => {
          const containers = [...new Set(ids)].map(
            (i) => fc.sample(node(`/p/c${i}`), { numRuns: 1, seed: i })[0]!,
          );
          const input: PlanInput = { version, burstAboveQuota, parentLimit, pod, containers, others };
          if (steadyPlan(input)) shortcut++;
          assert.deepEqual(planWrites(input), planWritesFull(input));
        },
      ),
      { numRuns: 2000 },
    );
    t.diagnostic(`shortcut taken ${shortcut} times`);
    assert.ok(shortcut > 50, `shortcut taken only ${shortcut} times`);
  });
});
