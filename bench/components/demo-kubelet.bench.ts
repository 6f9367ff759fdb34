// Mini-kubelet on real cgroups against an in-process devcluster: how fast a pod becomes a process
// in its cgroup (create → status Running) and how fast deletion removes it (delete → cgroup gone),
// for a batch of pods. Prints one JSON object. Bounded: 30 pods, < 1 min.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { silentLogger } from '../../common/log.js';
import { summarize } from '../../demo/workload/stats.js';
import { startDevCluster } from '../../devcluster/index.js';
import { allowPlainHttp } from '../../devcluster/kubelet/api.js';
import { destroyTreeSync } from '../../devcluster/kubelet/cgroupfs.js';
import { startMiniKubelet } from '../../devcluster/kubelet/kubelet.js';

const CG = '/sys/fs/cgroup';
if (!fs.existsSync(`${CG}/cpu/cpu.cfs_quota_us`) || process.getuid?.() !== 0) {
  process.stdout.write(
    `${JSON.stringify({ bench: 'demo-kubelet', skipped: 'needs root and a cgroup v1 cpu controller' })}\n`,
  );
  process.exit(0);
}
const PODS = Number(process.env.DEMO_KUBELET_BENCH_PODS ?? 30);
const base = `cpuburst-test-demo-bench-${process.pid}`;
const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-demo-kbench-'));
const dc = await startDevCluster({ port: 0 });
const kc = new KubeConfig();
kc.loadFromString(dc.kubeConfig());
allowPlainHttp(kc);
const core = kc.makeApiClient(CoreV1Api);
const kubelet = await startMiniKubelet({
  kubeconfig: kc,
  node: 'bench',
  parentBase: base,
  logDir,
  log: silentLogger(),
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

try {
  await kubelet.ready;
  // One pod first, so the watch is established and code paths are warm before the measured batch.
  await core.createNamespacedPod({
    namespace: 'default',
    body: {
      metadata: { name: 'warm' },
      spec: { nodeName: 'bench', containers: [{ name: 'c', image: 'local', command: ['true'] }] },
    },
  });
  for (let i = 0; i < 500; i++) {
    const p = await core.readNamespacedPod({ namespace: 'default', name: 'warm' });
    if (p.status?.phase === 'Succeeded') break;
    await sleep(20);
  }
  await core.deleteNamespacedPod({ namespace: 'default', name: 'warm' });
  const created = new Map<string, number>();
  const running = new Map<string, number>();
  const t0 = performance.now();
  // Observe while creating: the poller runs alongside the creates.
  const poller = (async () => {
    while (running.size < PODS && performance.now() - t0 < 45000) {
      const list = await core.listNamespacedPod({ namespace: 'default' });
      const now = performance.now();
      for (const p of list.items)
        if (p.status?.phase === 'Running' && !running.has(p.metadata!.name!))
          running.set(p.metadata!.name!, now);
      await sleep(20);
    }
  })();
  await Promise.all(
    Array.from({ length: PODS }, async (_, i) => {
      const name = `p${i}`;
      created.set(name, performance.now());
      await core.createNamespacedPod({
        namespace: 'default',
        body: {
          metadata: { name },
          spec: {
            nodeName: 'bench',
            containers: [
              {
                name: 'c',
                image: 'local',
                command: ['sleep', '600'],
                resources: { limits: { cpu: '100m' } },
              },
            ],
          },
        },
      });
    }),
  );
  await poller;
  const startMs = [...running].map(([n, t]) => t - created.get(n)!);
  const dirs = kubelet
    .pods()
    .filter((p) => created.has(p.name))
    .map((p) => path.join(CG, 'cpu', p.cgroup));
  const d0 = performance.now();
  await Promise.all(
    [...created.keys()].map((name) => core.deleteNamespacedPod({ namespace: 'default', name })),
  );
  while (dirs.some((d) => fs.existsSync(d)) && performance.now() - d0 < 30000) await sleep(10);
  const deleteAllMs = performance.now() - d0;
  process.stdout.write(
    `${JSON.stringify({
      bench: 'demo-kubelet',
      pods: PODS,
      running: running.size,
      createToRunningMs: summarize(startMs),
      allRunningAfterMs: Math.round(Math.max(...startMs)),
      deleteAllToCgroupsGoneMs: Math.round(deleteAllMs),
      cgroupsLeft: dirs.filter((d) => fs.existsSync(d)).length,
      loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    })}\n`,
  );
} finally {
  await kubelet.stop();
  await dc.close();
  for (const ctl of ['cpu', 'cpuacct'])
    for (const n of fs.readdirSync(path.join(CG, ctl)))
      if (n.startsWith(`${base}-`)) destroyTreeSync(path.join(CG, ctl, n));
  fs.rmSync(logDir, { recursive: true, force: true });
}
