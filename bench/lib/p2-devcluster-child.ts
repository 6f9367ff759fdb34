// The P2 scale bench's API server: devcluster in its own process (the production build when dist/
// exists), seeded in memory with N nodes × M pods through the store (550,000 HTTP POSTs would take
// minutes), the CRD and one cluster-wide CpuBurstStrategy. Prints {"ready":true,...} once listening.
//   node --import tsx bench/lib/p2-devcluster-child.ts '{"nodes":5000,"podsPerNode":110,...}'
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import YAML from 'yaml';
import { REPO_ROOT } from './p2-procs.js';

export interface SeedSpec {
  nodes: number;
  podsPerNode: number;
  namespaces: number;
  strategy: string;
  cpuBurstPercent: number;
  kubeconfigPath: string;
}

export const nodeName = (i: number) => `node-${String(i).padStart(5, '0')}`;

/** A running pod with one limited container, as the kubelet would report it. */
export function seedPod(node: string, j: number, ns: string, rv: string, created: string) {
  const name = `${node}-p${j}`;
  const uid = `00000000-0000-4000-8000-${node.slice(5).padStart(6, '0')}${String(j).padStart(6, '0')}`;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: ns,
      uid,
      resourceVersion: rv,
      creationTimestamp: created,
      labels: { app: `app-${j % 10}` },
    },
    spec: {
      nodeName: node,
      containers: [
        {
          name: 'app',
          image: 'registry.k8s.io/pause:3.10',
          resources: { limits: { cpu: '1', memory: '256Mi' }, requests: { cpu: '500m', memory: '256Mi' } },
        },
      ],
    },
    status: {
      phase: 'Running',
      qosClass: 'Burstable',
      containerStatuses: [
        {
          name: 'app',
          containerID: `containerd://${uid}`,
          ready: true,
          state: { running: { startedAt: created } },
        },
      ],
    },
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as SeedSpec;
  const dist = path.join(REPO_ROOT, 'dist/devcluster/index.js');
  const src = path.join(REPO_ROOT, 'devcluster/index.ts');
  const { startDevCluster } = (await import(
    pathToFileURL(existsSync(dist) ? dist : src).href
  )) as typeof import('../../devcluster/index.js');
  const cluster = await startDevCluster({
    kubeconfigPath: spec.kubeconfigPath,
    watchWindow: 100_000,
    // The initial watch-list of 550,000 pods is one burst of ~300 MB: the real server streams it, this
    // one queues it, so the stuck-watcher limit has to be above it.
    maxWatchBufferedBytes: 4 * 1024 ** 3,
  });
  const t0 = performance.now();
  cluster.store.apply(
    YAML.parse(readFileSync(path.join(REPO_ROOT, 'crds/cpuburststrategies.cpuburst.io.yaml'), 'utf8')),
  );
  for (const ns of ['cpuburst-system', ...Array.from({ length: spec.namespaces }, (_, i) => `ns-${i}`)])
    cluster.store.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  for (let i = 0; i < spec.nodes; i++) {
    const n = nodeName(i);
    cluster.store.create({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: n, labels: { 'kubernetes.io/hostname': n, zone: `z${i % 3}` } },
    });
  }
  cluster.store.create({
    apiVersion: 'cpuburst.io/v1alpha1',
    kind: 'CpuBurstStrategy',
    metadata: { name: spec.strategy },
    spec: { policy: 'cpuBurstOnly', cpuBurstPercent: spec.cpuBurstPercent },
  });
  // Pods go straight into the store (a snapshot load): no event log, no per-object validation.
  const rv = String(cluster.store.resourceVersion);
  const created = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const pods = [];
  for (let i = 0; i < spec.nodes; i++)
    for (let j = 0; j < spec.podsPerNode; j++)
      pods.push(seedPod(nodeName(i), j, `ns-${(i * spec.podsPerNode + j) % spec.namespaces}`, rv, created));
  cluster.store.store.load({ resourceVersion: cluster.store.resourceVersion, objects: pods });
  const seedSeconds = (performance.now() - t0) / 1000;
  process.stdout.write(
    `${JSON.stringify({ ready: true, url: cluster.url, pods: pods.length, seedSeconds, build: existsSync(dist) ? 'dist' : 'tsx' })}\n`,
  );
  const stop = async () => {
    await cluster.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
  process.once('disconnect', () => void stop());
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
