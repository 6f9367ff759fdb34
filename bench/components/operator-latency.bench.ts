// Operator benchmarks (one JSON object on stdout):
//  - annotate → cgroup write: devcluster + the real broker (k8s-token: operator and agent log in with
//    ServiceAccount tokens from devcluster) + the operator + a real agent process on a
//    fake cgroupfs (v2), p50/p99 over ≥ 200 annotations (each pod's cpu.max.burst polled every 1 ms);
//  - annotate → decision published (operator) and → received by a subscriber (agent side of the broker),
//    p50/p99 over ≥ 200 sequential annotations, with 500 background pods on 50 nodes;
//  - planner time for 5,000 pods on 500 nodes with 10 strategies and a Koordinator ConfigMap.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDevCluster } from '../../devcluster/index.js';
import { parseConfigMapData } from '../../operator/planner/config.js';
import { plan } from '../../operator/planner/plan.js';
import { namespace, node, pod, strategy } from '../../test/operator/fixtures.js';
import {
  exited,
  FakeAgent,
  seedCluster,
  startAedes,
  startControlBroker,
  startOperator,
  waitFor,
  writeControlTokens,
} from '../../test/operator/harness.js';
import { spawnCli } from '../../test/support/cli.js';
import { FakeCgroupFs } from '../../test/support/fake-cgroupfs.js';

const ANNOTATIONS = Number(process.env.BENCH_ANNOTATIONS ?? 250);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return Number(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!.toFixed(3));
}

function summary(xs: number[]) {
  return { n: xs.length, p50: pct(xs, 50), p90: pct(xs, 90), p99: pct(xs, 99), max: pct(xs, 100) };
}

async function latency() {
  const nodes = Array.from({ length: 50 }, (_, i) => `node-${i}`);
  const cluster = await startDevCluster({ watchWindow: 100_000 });
  await seedCluster(cluster, nodes);
  for (let i = 0; i < 500; i++)
    cluster.store.create(
      pod(`bg-${i}`, { node: nodes[i % nodes.length]!, labels: { app: i % 2 ? 'web' : 'db' } }) as any,
    );
  cluster.store.create(
    strategy('web', { policy: 'auto', podSelector: { matchLabels: { app: 'web' } } }) as any,
  );
  const broker = await startAedes();
  const agent = new FakeAgent(broker.url, 'node-0');
  await agent.start();
  const op = await startOperator(cluster, broker, { identity: 'bench' });
  await waitFor('synced', () => op.controller.synced, 30_000);
  await waitFor('initial publish', () => agent.latest, 30_000);
  for (let i = 0; i < ANNOTATIONS; i++)
    cluster.store.create(pod(`t-${i}`, { node: 'node-0', labels: { app: 'none' } }) as any);
  await waitFor(
    'targets planned',
    () => op.controller.plan?.podSources && op.controller.queue.depth === 0,
    30_000,
  );
  await op.controller.queue.idle();

  const toPublish: number[] = [];
  const toAgent: number[] = [];
  for (let i = 0; i < ANNOTATIONS; i++) {
    const name = `t-${i}`;
    const live = cluster.store.get('v1', 'Pod', name, 'default') as any;
    live.metadata.annotations = { 'cpuburst.io/enabled': 'true' };
    let publishedAt = 0;
    op.controller.onPublished = (d) => {
      if (!publishedAt && d.node === 'node-0' && d.pods.some((p) => p.name === name))
        publishedAt = performance.now();
    };
    const t0 = performance.now();
    cluster.store.update(live);
    await waitFor(name, () => agent.latest?.pods.some((p) => p.name === name), 10_000, 1);
    const t1 = agent.receivedAt.at(-1)!;
    toAgent.push(t1 - t0);
    toPublish.push(publishedAt - t0);
  }
  if (process.env.BENCH_DEBUG)
    process.stderr.write(
      await op.metrics.registry.getSingleMetricAsString('cpuburst_reconcile_duration_seconds'),
    );
  await op.stop();
  await agent.stop();
  await broker.close();
  await cluster.close();
  return {
    annotateToPublishedMs: summary(toPublish),
    annotateToAgentReceivedMs: summary(toAgent),
    backgroundPods: 500,
    nodes: nodes.length,
  };
}

function plannerScale() {
  const nodes = Array.from({ length: 500 }, (_, i) =>
    node(`node-${i}`, { zone: `z${i % 3}`, pool: i % 10 === 0 ? 'big' : 'std' }),
  );
  const namespaces = Array.from({ length: 20 }, (_, i) => namespace(`ns-${i}`, { team: `t${i % 4}` }));
  const pods = Array.from({ length: 5000 }, (_, i) =>
    pod(`p-${i}`, {
      ns: `ns-${i % 20}`,
      node: `node-${i % 500}`,
      labels: { app: `a${i % 7}`, ...(i % 50 === 0 ? { 'koordinator.sh/qosClass': 'LSR' } : {}) },
      annotations:
        i % 3 === 0
          ? { 'cpuburst.io/enabled': 'true' }
          : i % 11 === 0
            ? { 'cpuburst.io/config': '{"cpuBurstPercent":50}' }
            : {},
      containers: 2,
    }),
  );
  const strategies = Array.from({ length: 10 }, (_, i) =>
    strategy(`s-${i}`, {
      policy: i % 2 ? 'auto' : 'cpuBurstOnly',
      priority: i % 3,
      podSelector: { matchLabels: { app: `a${i % 7}` } },
      namespaceSelector: { matchLabels: { team: `t${i % 4}` } },
      nodeSelector:
        i % 4 === 0
          ? { matchExpressions: [{ key: 'zone', operator: 'In', values: ['z0', 'z1'] }] }
          : undefined,
    }),
  );
  const cm = parseConfigMapData({
    'cpu-burst-config': JSON.stringify({
      clusterStrategy: { policy: 'auto' },
      nodeStrategies: [
        { name: 'big', nodeSelector: { matchLabels: { pool: 'big' } }, policy: 'cfsQuotaBurstOnly' },
      ],
    }),
  });
  if (!cm.ok) throw new Error(cm.error);
  const times: number[] = [];
  let decisions = 0;
  for (let i = 0; i < 25; i++) {
    const t0 = performance.now();
    const p = plan({ strategies, clusterConfig: cm.config, nodes, namespaces, pods, now: new Date() });
    times.push(performance.now() - t0);
    decisions = [...p.nodes.values()].reduce((n, c) => n + c.pods.length, 0);
  }
  return {
    pods: pods.length,
    nodes: nodes.length,
    strategies: strategies.length,
    decisions,
    planMs: summary(times.slice(5)),
  };
}

async function cgroupLatency() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cpuburst-operator-bench-'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  const cluster = await startDevCluster({ watchWindow: 100_000, kubeconfigPath: kubeconfig });
  await seedCluster(cluster, ['node-a']);
  const tokens = await writeControlTokens(cluster, kubeconfig, path.join(dir, 'tokens'), { node: 'node-a' });
  const broker = await startControlBroker(tokens);
  const url = `mqtt://127.0.0.1:${broker.ports.mqttPort}`;
  const fake = FakeCgroupFs.create({ version: 2 });
  const dirs: string[] = [];
  for (let i = 0; i < ANNOTATIONS; i++) {
    const p = pod(`c-${i}`, { node: 'node-a', uid: `c-${i}` }) as any;
    p.status.qosClass = 'Burstable';
    const created = cluster.store.create(p) as any;
    const added = fake.addPod({
      uid: created.metadata.uid,
      qosClass: 'Burstable',
      containers: [{ id: `containerd://c-${i}-0`, quotaUs: 100_000 }],
    });
    dirs.push(added.containerDirs[0]!);
  }
  const agent = spawnCli([
    'agent',
    '--node-name=node-a',
    `--cgroup-root=${fake.root}`,
    `--state-dir=${path.join(dir, 'state')}`,
    `--proc-root=${fake.procRoot}`,
    `--mqtt-url=${url}`,
    `--mqtt-token-file=${tokens.agentTokenFile}`,
    '--interval=1000',
    '--metrics-port=-1',
    '--log-level=warn',
  ]);
  const op = await startOperator(
    cluster,
    { url, port: broker.ports.mqttPort!, close: async () => {} },
    { identity: 'bench', mqttTokenFile: tokens.operatorTokenFile },
  );
  await waitFor('synced', () => op.controller.synced, 30_000);
  await sleep(1500); // the agent connects and subscribes
  const ms: number[] = [];
  for (let i = 0; i < ANNOTATIONS; i++) {
    const live = cluster.store.get('v1', 'Pod', `c-${i}`, 'default') as any;
    live.metadata.annotations = {
      'cpuburst.io/enabled': 'true',
      'cpuburst.io/config': '{"policy":"cpuBurstOnly","cpuBurstPercent":50}',
    };
    const t0 = performance.now();
    cluster.store.update(live);
    await waitFor(`c-${i} burst`, () => fake.values(dirs[i]!).burstUs === 50_000, 15_000, 1);
    ms.push(performance.now() - t0);
  }
  await op.stop();
  agent.kill('SIGTERM');
  await exited(agent, 10_000);
  tokens.stop();
  await broker.close();
  await cluster.close();
  fake.cleanup();
  rmSync(dir, { recursive: true, force: true });
  return {
    annotateToCgroupWriteMs: summary(ms),
    broker: 'broker/ (real, k8s-token)',
    agent: 'real process, fake cgroupfs v2',
  };
}

const planner = plannerScale();
const lat = await latency();
const cgroup = await cgroupLatency();
const loadavg = os.loadavg().map((x) => Number(x.toFixed(2)));
process.stdout.write(
  `${JSON.stringify({ benchmark: 'operator-latency', node: process.version, loadavg, planner, latency: lat, cgroup }, null, 2)}\n`,
);
process.exit(0);
