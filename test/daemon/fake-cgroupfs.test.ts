// The fake cgroupfs must refuse exactly what the kernel refuses. Explicit cases for v1 and v2,
// then a differential test: the same random writes on the REAL v1 kernel and on the fake, with
// the same accept/EINVAL outcome and the same resulting values.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { nodeFs } from '../../daemon/cgroup/fs.js';
import { FakeCgroupFs } from '../support/fake-cgroupfs.js';
import { CPU, realCgroupSkipReason, removeTree, testParentName } from './real-cgroup.js';

const einval = (fn: () => void) => assert.throws(fn, (e: NodeJS.ErrnoException) => e.code === 'EINVAL');

describe('fake cgroupfs enforces the kernel rules', () => {
  const v1 = FakeCgroupFs.create({ version: 1 });
  const v2 = FakeCgroupFs.create({ version: 2, driver: 'systemd' });
  after(() => {
    v1.cleanup();
    v2.cleanup();
  });

  it('v1: burst ≤ quota, quota ≥ 1 ms, 1 ms ≤ period ≤ 1 s, child ≤ parent, no root writes', () => {
    const { podDir, containerDirs } = v1.addPod({
      uid: 'u1',
      qosClass: 'Burstable',
      containers: [{ id: 'containerd://a', quotaUs: 100000 }],
    });
    const c = containerDirs[0]!;
    einval(() => v1.write(path.join(c, 'cpu.cfs_burst_us'), '100001'));
    v1.write(path.join(c, 'cpu.cfs_burst_us'), '100000');
    einval(() => v1.write(path.join(c, 'cpu.cfs_quota_us'), '99999')); // below the burst
    einval(() => v1.write(path.join(c, 'cpu.cfs_quota_us'), '999'));
    einval(() => v1.write(path.join(c, 'cpu.cfs_period_us'), '999'));
    einval(() => v1.write(path.join(c, 'cpu.cfs_period_us'), '1000001'));
    einval(() => v1.write(path.join(c, 'cpu.cfs_quota_us'), '100001')); // above the pod's 100000
    einval(() => v1.write(path.join(podDir, 'cpu.cfs_quota_us'), '50000')); // below its child
    einval(() => v1.write(path.join(v1.cpuRoot, 'cpu.cfs_quota_us'), '100000'));
    einval(() => v1.write(path.join(c, 'cpu.cfs_quota_us'), 'abc'));
    v1.write(path.join(c, 'cpu.cfs_quota_us'), '-1'); // an unlimited child inherits: allowed
    v1.write(path.join(podDir, 'cpu.cfs_quota_us'), '50000');
    assert.deepEqual(v1.values(podDir), { periodUs: 100000, quotaUs: 50000, burstUs: 0 });
    assert.throws(() => v1.write(path.join(podDir, 'nope', 'cpu.cfs_quota_us'), '1000'), { code: 'ENOENT' });
    assert.ok(v1.einvalCount >= 9);
  });

  it('v2: cpu.max "quota period" and "max", cpu.max.burst ≤ quota, children are not checked', () => {
    const { podDir, containerDirs } = v2.addPod({
      uid: 'u-2',
      qosClass: 'Guaranteed',
      containers: [{ id: 'cri-o://b', quotaUs: 100000 }],
    });
    const c = containerDirs[0]!;
    v2.write(path.join(c, 'cpu.max'), '400000 100000'); // above the pod: v2 caps silently
    einval(() => v2.write(path.join(c, 'cpu.max.burst'), '400001'));
    v2.write(path.join(c, 'cpu.max.burst'), '400000');
    einval(() => v2.write(path.join(c, 'cpu.max'), '300000'));
    v2.write(path.join(c, 'cpu.max'), 'max');
    v2.write(path.join(c, 'cpu.max.burst'), '900000'); // unlimited: any burst is stored
    assert.deepEqual(v2.values(c), { periodUs: 100000, quotaUs: -1, burstUs: 900000 });
    assert.equal(fs.readFileSync(path.join(c, 'cpu.max'), 'utf8'), 'max 100000\n');
    einval(() => v2.write(path.join(c, 'cpu.max'), '500000 2000000'));
    assert.deepEqual(v2.values(podDir).quotaUs, 100000);
  });

  it('a kernel without burst files', () => {
    const nb = FakeCgroupFs.create({ version: 1, burst: false });
    try {
      const { containerDirs } = nb.addPod({
        uid: 'nb',
        qosClass: 'Burstable',
        containers: [{ id: 'containerd://x', quotaUs: 1000 }],
      });
      assert.equal(nb.values(containerDirs[0]!).burstUs, null);
      assert.throws(() => nb.write(path.join(containerDirs[0]!, 'cpu.cfs_burst_us'), '0'), {
        code: 'ENOENT',
      });
    } finally {
      nb.cleanup();
    }
  });
});

const skip = realCgroupSkipReason();
describe('fake vs real kernel (differential)', { skip: skip ?? false }, () => {
  const parent = path.join(CPU, testParentName());
  const fake = FakeCgroupFs.create({ version: 1, kubepodsDir: 'kp' });
  after(() => {
    removeTree(parent, CPU);
    fake.cleanup();
  });

  it('2,000 random writes: same EINVAL outcome and values on both', (t) => {
    // Same tree on both: kp (parent) / pod / {c0, c1}
    const rels = ['', 'pod', 'pod/c0', 'pod/c1'];
    for (const r of rels) {
      fs.mkdirSync(path.join(parent, 'kp', r), { recursive: true });
      if (r) fake.mkdir(path.join(fake.kubepodsPath, r));
    }
    const files = ['cpu.cfs_quota_us', 'cpu.cfs_period_us', 'cpu.cfs_burst_us'];
    const value = fc.oneof(
      fc.constant('-1'),
      fc.integer({ min: 0, max: 1_200_000 }).map(String),
      fc.constantFrom('999', '1000', '1000000', '1000001', '100000', '50000', '200000'),
    );
    let refused = 0;
    let writes = 0;
    fc.assert(
      fc.property(fc.constantFrom(...rels), fc.constantFrom(...files), value, (rel, file, v) => {
        const outcome = (fn: () => void) => {
          try {
            fn();
            return 'ok';
          } catch (e) {
            return (e as NodeJS.ErrnoException).code ?? 'error';
          }
        };
        const real = outcome(() => nodeFs.write(path.join(parent, 'kp', rel, file), v));
        const sim = outcome(() => fake.write(path.join(fake.kubepodsPath, rel, file), v));
        writes++;
        if (real !== 'ok') refused++;
        assert.equal(sim, real, `${rel || 'kp'}/${file} = ${v}`);
        for (const r of rels) {
          const rv = {
            quotaUs: Number(nodeFs.read(path.join(parent, 'kp', r, 'cpu.cfs_quota_us'))),
            periodUs: Number(nodeFs.read(path.join(parent, 'kp', r, 'cpu.cfs_period_us'))),
            burstUs: Number(nodeFs.read(path.join(parent, 'kp', r, 'cpu.cfs_burst_us'))),
          };
          assert.deepEqual(fake.values(path.join(fake.kubepodsPath, r)), rv, r || 'kp');
        }
      }),
      { numRuns: 2000 },
    );
    t.diagnostic(`writes=${writes} refusedByKernel=${refused}`);
    assert.ok(refused > 100, 'the sequence exercised refusals');
  });
});

if (skip) describe('fake vs real kernel', () => it(`skipped: ${skip}`, { skip }, () => {}));
