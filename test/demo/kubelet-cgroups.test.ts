// Mini-kubelet on REAL cgroups with an in-memory API: pod → cgroups + process → status;
// delete → cleaned; quota math per QoS class.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { silentLogger } from '../../common/log.js';
import type { KubeletApi, WatchEvent } from '../../devcluster/kubelet/api.js';
import { destroyTreeSync, startMiniKubelet } from '../../devcluster/kubelet/index.js';
import { CG, NO_REAL_CGROUPS, REAL_CGROUPS } from './helpers.js';

const skip = REAL_CGROUPS ? false : NO_REAL_CGROUPS;
const BASE = `cpuburst-test-demo-${process.pid}`;

/** In-memory API: pods live in a map; the watch is a callback list. */
function memoryApi() {
  const pods = new Map<string, V1Pod>();
  const statuses: Array<{ name: string; status: V1PodStatus }> = [];
  const deleted: string[] = [];
  const events: string[] = [];
  let listener: ((t: WatchEvent, p: V1Pod) => void) | undefined;
  const api: KubeletApi = {
    async listPods() {
      return { pods: [...pods.values()], resourceVersion: '1' };
    },
    async watchPods(_n, _rv, onEvent) {
      listener = onEvent;
      return { abort: () => {} };
    },
    async patchPodStatus(_ns, name, status) {
      statuses.push({ name, status });
      const p = [...pods.values()].find((x) => x.metadata?.name === name);
      if (p) p.status = status;
    },
    async deletePod(_ns, name) {
      deleted.push(name);
      for (const [k, p] of pods) if (p.metadata?.name === name) pods.delete(k);
    },
    async registerNode() {},
    async podEvent(p, _type, reason) {
      events.push(`${p.name}:${reason}`);
    },
  };
  return {
    api,
    statuses,
    deleted,
    events,
    add(p: V1Pod) {
      pods.set(p.metadata!.uid!, p);
      listener?.('ADDED', p);
    },
    remove(uid: string) {
      const p = pods.get(uid)!;
      pods.delete(uid);
      listener?.('DELETED', p);
    },
  };
}

function pod(name: string, uid: string, resources: object[], cmd = ['sleep', '300']): V1Pod {
  return {
    metadata: { name, namespace: 'default', uid },
    spec: {
      nodeName: 'n1',
      containers: resources.map((r, i) => ({ name: `c${i}`, image: 'local', command: cmd, resources: r })),
    },
  };
}

async function until<T>(fn: () => T | undefined | false, what: string, ms = 15000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const read = (rel: string, file: string, ctl = 'cpu') =>
  fs.readFileSync(path.join(CG, ctl, rel, file), 'utf8').trim();

test('mini-kubelet runs pods in kubelet-layout cgroups and cleans up', {
  skip,
  timeout: 60000,
}, async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-demo-kubelet-'));
  const mem = memoryApi();
  const kubelet = await startMiniKubelet({
    api: mem.api,
    node: 'n1',
    parentBase: BASE,
    logDir,
    log: silentLogger(),
  });
  const parent = kubelet.cgroups.parent;
  after(() => {
    destroyTreeSync(path.join(CG, 'cpu', parent));
    destroyTreeSync(path.join(CG, 'cpuacct', parent));
    fs.rmSync(logDir, { recursive: true, force: true });
  });
  await kubelet.ready;

  // Burstable: limits 500m + 250m → container quotas 50000/25000, pod quota 75000.
  mem.add(
    pod('burst', 'u-burst', [
      { limits: { cpu: '500m' } },
      { requests: { cpu: '100m' }, limits: { cpu: '250m' } },
    ]),
  );
  // Guaranteed: directly under kubepods/pod<uid>.
  mem.add(
    pod('guar', 'u-guar', [{ requests: { cpu: '1', memory: '1Mi' }, limits: { cpu: '1', memory: '1Mi' } }]),
  );
  // Best effort: no limit → no quota, pod unlimited.
  mem.add(pod('be', 'u-be', [{}]));
  // One container without a limit → pod quota stays unlimited.
  mem.add(pod('mixed', 'u-mixed', [{ limits: { cpu: '2' } }, {}]));

  const info = await until(() => {
    const ps = kubelet.pods();
    return ps.length === 4 && ps;
  }, 'four pods');
  const byName = Object.fromEntries(info.map((p) => [p.name, p]));
  const kp = kubelet.cgroups.kubepodsRel;
  assert.equal(byName.burst!.cgroup, `${kp}/burstable/podu-burst`);
  assert.equal(byName.guar!.cgroup, `${kp}/podu-guar`);
  assert.equal(byName.be!.cgroup, `${kp}/besteffort/podu-be`);
  assert.equal(read(byName.burst!.cgroup, 'cpu.cfs_quota_us'), '75000');
  assert.equal(read(byName.burst!.containers[0]!.cgroup, 'cpu.cfs_quota_us'), '50000');
  assert.equal(read(byName.burst!.containers[1]!.cgroup, 'cpu.cfs_quota_us'), '25000');
  assert.equal(read(byName.burst!.containers[1]!.cgroup, 'cpu.shares'), '102');
  assert.equal(read(byName.guar!.cgroup, 'cpu.cfs_quota_us'), '100000');
  assert.equal(read(byName.be!.cgroup, 'cpu.cfs_quota_us'), '-1');
  assert.equal(read(byName.mixed!.cgroup, 'cpu.cfs_quota_us'), '-1');
  assert.equal(read(byName.mixed!.containers[0]!.cgroup, 'cpu.cfs_quota_us'), '200000');

  // The process lives in both the cpu and the cpuacct container cgroups.
  const c0 = byName.burst!.containers[0]!;
  assert.match(c0.id, /^[0-9a-f]{64}$/);
  await until(
    () => read(c0.cgroup, 'cgroup.procs').split('\n').includes(String(c0.pid)),
    'pid in cpu cgroup',
  );
  assert.ok(read(c0.cgroup, 'cgroup.procs', 'cpuacct').split('\n').includes(String(c0.pid)));

  // Status: containerID, running state, qosClass, phase.
  const st = await until(() => mem.statuses.find((s) => s.name === 'burst')?.status, 'burst status');
  assert.equal(st.phase, 'Running');
  assert.equal(st.qosClass, 'Burstable');
  assert.equal(st.containerStatuses?.[0]?.containerID, `containerd://${c0.id}`);
  assert.ok(st.containerStatuses?.[0]?.state?.running);
  assert.equal(mem.statuses.find((s) => s.name === 'guar')?.status.qosClass, 'Guaranteed');

  // Delete → process killed, pod cgroups gone in both controllers.
  mem.remove('u-burst');
  await until(() => !fs.existsSync(path.join(CG, 'cpu', byName.burst!.cgroup)), 'pod cgroup removed');
  assert.ok(!fs.existsSync(path.join(CG, 'cpuacct', byName.burst!.cgroup)));
  assert.throws(() => process.kill(c0.pid, 0));
  assert.ok(mem.events.includes('burst:Started') && mem.events.includes('burst:Killing'), mem.events.join());

  // A container that exits → terminated status and phase Succeeded.
  mem.add(pod('short', 'u-short', [{ limits: { cpu: '100m' } }], ['true']));
  const done = await until(
    () => mem.statuses.find((s) => s.name === 'short' && s.status.phase === 'Succeeded')?.status,
    'short pod Succeeded',
  );
  assert.equal(done.containerStatuses?.[0]?.state?.terminated?.exitCode, 0);

  await kubelet.stop();
  assert.ok(!fs.existsSync(path.join(CG, 'cpu', parent)), 'no cpu cgroup left after stop');
  assert.ok(!fs.existsSync(path.join(CG, 'cpuacct', parent)), 'no cpuacct cgroup left after stop');
  for (const p of info) for (const c of p.containers) assert.throws(() => process.kill(c.pid, 0));
});
