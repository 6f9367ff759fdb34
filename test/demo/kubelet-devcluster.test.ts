// The mini-kubelet as its own process (`cpuburst demo kubelet`) against a real devcluster process,
// on REAL cgroups: pod → cgroups + process → status; delete → cleaned; kill -9 of the kubelet →
// the next kubelet removes the stale tree and its orphaned processes.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../devcluster/kubelet/api.js';
import { spawnCli } from '../support/cli.js';
import {
  alive,
  CG,
  cgroupTrees,
  NO_REAL_CGROUPS,
  type Poll,
  REAL_CGROUPS,
  removeCgroupTrees,
  until,
} from './helpers.js';

const skip = REAL_CGROUPS ? false : NO_REAL_CGROUPS;
const BASE = `cpuburst-test-demo-${process.pid}-k`;
const ourTrees = () => cgroupTrees(BASE);
/** This test polls faster and gives up sooner than the helpers' default. */
const soon = <T>(fn: Poll<T>, what: string) => until(fn, what, 30000, 100);

test('mini-kubelet process against devcluster: run, delete, crash cleanup', {
  skip,
  timeout: 150000,
}, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-demo-kdc-'));
  const procs: ChildProcess[] = [];
  after(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    removeCgroupTrees(BASE);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const kubeconfig = path.join(dir, 'kubeconfig');
  const dev = spawnCli([
    'devcluster',
    '--port',
    '0',
    '--kubeconfig',
    kubeconfig,
    '--ports-file',
    path.join(dir, 'dev.json'),
  ]);
  procs.push(dev);
  await soon(() => fs.existsSync(path.join(dir, 'dev.json')) && fs.existsSync(kubeconfig), 'devcluster');
  const core = loadKubeConfig(kubeconfig).makeApiClient(CoreV1Api);

  const startKubelet = (n: number) => {
    const ready = path.join(dir, `ready-${n}.json`);
    const p = spawnCli([
      'demo',
      'kubelet',
      '--kubeconfig',
      kubeconfig,
      '--node-name',
      'kn1',
      '--parent-base',
      BASE,
      '--log-dir',
      path.join(dir, 'logs'),
      '--ready-file',
      ready,
    ]);
    procs.push(p);
    return { p, ready };
  };
  const k1 = startKubelet(1);
  const r1 = await soon(
    () => fs.existsSync(k1.ready) && JSON.parse(fs.readFileSync(k1.ready, 'utf8')),
    'kubelet 1 ready',
  );

  const node = await core.readNode({ name: 'kn1' });
  assert.equal(node.status?.capacity?.cpu, String(os.cpus().length));
  assert.equal(node.metadata?.labels?.['kubernetes.io/hostname'], 'kn1');

  const pod: V1Pod = {
    metadata: { name: 'p1', namespace: 'default' },
    spec: {
      nodeName: 'kn1',
      containers: [
        { name: 'c', image: 'local', command: ['sleep', '300'], resources: { limits: { cpu: '300m' } } },
      ],
    },
  };
  await core.createNamespacedPod({ namespace: 'default', body: pod });
  const running = await soon(async () => {
    const p = await core.readNamespacedPod({ namespace: 'default', name: 'p1' });
    return p.status?.phase === 'Running' && p.status.containerStatuses?.[0]?.containerID ? p : null;
  }, 'pod Running');
  assert.equal(running.status?.qosClass, 'Burstable');
  const id = running.status!.containerStatuses![0]!.containerID!.replace('containerd://', '');
  const podDir = path.join(CG, 'cpu', r1.kubepodsDir, 'burstable', `pod${running.metadata!.uid}`);
  assert.equal(fs.readFileSync(path.join(podDir, 'cpu.cfs_quota_us'), 'utf8').trim(), '30000');
  assert.equal(fs.readFileSync(path.join(podDir, id, 'cpu.cfs_quota_us'), 'utf8').trim(), '30000');
  const pid = Number(
    fs
      .readFileSync(path.join(podDir, id, 'cgroup.procs'), 'utf8')
      .trim()
      .split('\n')[0],
  );
  assert.ok(pid > 0 && alive(pid));
  const acctProcs = fs.readFileSync(
    path.join(CG, 'cpuacct', r1.kubepodsDir, 'burstable', `pod${running.metadata!.uid}`, id, 'cgroup.procs'),
    'utf8',
  );
  assert.ok(acctProcs.split('\n').includes(String(pid)), 'process is in the cpuacct container cgroup too');

  // The kubelet's Events are on the pod (kubectl describe pod shows them).
  await soon(async () => {
    const ev = await core.listNamespacedEvent({
      namespace: 'default',
      fieldSelector: 'involvedObject.name=p1',
    });
    return ev.items.some((e) => e.reason === 'Started' && e.source?.component === 'kubelet');
  }, 'Started Event');

  // Delete → process killed, cgroups removed.
  await core.deleteNamespacedPod({ namespace: 'default', name: 'p1' });
  await soon(() => !fs.existsSync(podDir) && !alive(pid), 'pod cgroup and process gone');

  // Crash: kill -9 the kubelet with a pod running; the tree and the orphan survive it...
  await core.createNamespacedPod({ namespace: 'default', body: pod });
  const again = await soon(async () => {
    const p = await core.readNamespacedPod({ namespace: 'default', name: 'p1' });
    return p.status?.phase === 'Running' && p.status.containerStatuses?.[0]?.containerID ? p : null;
  }, 'pod Running again');
  const id2 = again.status!.containerStatuses![0]!.containerID!.replace('containerd://', '');
  const dir2 = path.join(CG, 'cpu', r1.kubepodsDir, 'burstable', `pod${again.metadata!.uid}`, id2);
  const orphan = await soon(
    () => Number(fs.readFileSync(path.join(dir2, 'cgroup.procs'), 'utf8').trim().split('\n')[0]),
    'container pid',
  );
  k1.p.kill('SIGKILL');
  await soon(() => k1.p.exitCode !== null || k1.p.signalCode !== null, 'kubelet 1 dead');
  assert.ok(fs.existsSync(path.join(CG, 'cpu', r1.parent)), 'kill -9 leaves the tree behind');
  assert.ok(alive(orphan));
  // ...and the next kubelet removes both, then runs the pod again in its own tree.
  const k2 = startKubelet(2);
  const r2 = await soon(
    () => fs.existsSync(k2.ready) && JSON.parse(fs.readFileSync(k2.ready, 'utf8')),
    'kubelet 2 ready',
  );
  assert.ok(!fs.existsSync(path.join(CG, 'cpu', r1.parent)), 'stale cpu tree removed');
  assert.ok(!fs.existsSync(path.join(CG, 'cpuacct', r1.parent)), 'stale cpuacct tree removed');
  await soon(() => !alive(orphan), 'orphaned container process killed');
  await soon(
    () => fs.existsSync(path.join(CG, 'cpu', r2.kubepodsDir, 'burstable', `pod${again.metadata!.uid}`)),
    'pod restarted',
  );

  // SIGTERM → clean stop, nothing left.
  k2.p.kill('SIGTERM');
  await soon(() => k2.p.exitCode !== null, 'kubelet 2 exit');
  assert.equal(k2.p.exitCode, 0);
  assert.deepEqual(ourTrees(), []);
});
