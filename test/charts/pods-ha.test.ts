// HA mode from ci/ha-redis-values.yaml, run as processes: the in-chart Redis container's args on the
// real redis-server, two broker replicas sharing it (--redis-url from the chart), two operator
// replicas electing a leader on the chart's Lease, and an agent attached to the *other* broker
// replica than the operator: a decision crossing brokers through Redis reaches the cgroup.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { type DevCluster, startDevCluster } from '../../devcluster/index.js';
import { FakeCgroupFs } from '../support/fake-cgroupfs.js';
import {
  CHART,
  find,
  type K8sObject,
  KUBECTL,
  NAMESPACE,
  name,
  parseManifests,
  run,
  templateText,
} from './helm.js';
import { freePort, httpGet, type Proc, probe, startContainer, stop, until } from './kubelet.js';

const NODE = 'node-a';
const HAVE_REDIS = spawnSync('redis-server', ['--version']).status === 0;

describe('HA (ci/ha-redis-values.yaml) as processes', {
  skip: !HAVE_REDIS && 'redis-server not installed (Debian package redis-server, installed by make deps)',
  timeout: 400_000,
}, () => {
  let cluster: DevCluster;
  let dir: string;
  let kubeconfig: string;
  let fake: FakeCgroupFs;
  let objs: K8sObject[];
  const procs = new Map<string, Proc>();
  let redisPort = 0;
  let broker1Port = 0;
  let broker1Http = 0;
  let op1Probes = 0;
  let op1Metrics = 0;

  function start(key: string, workload: K8sObject, extraArgs: string[], entrypoint?: string[]) {
    const p = startContainer(workload, {
      objs,
      dir: path.join(dir, key),
      node: NODE,
      namespace: NAMESPACE,
      podName: key,
      hostPaths: { '/sys/fs/cgroup': fake.root, '/var/lib/cpuburst': path.join(dir, key, 'state') },
      paths: { '/proc': fake.procRoot },
      dns: [
        [`${name('redis')}.${NAMESPACE}.svc:6379`, `127.0.0.1:${redisPort}`],
        [`${name('broker')}.${NAMESPACE}.svc`, '127.0.0.1'],
      ],
      extraArgs,
      ...(entrypoint ? { entrypoint } : {}),
    });
    procs.set(key, p);
    return p;
  }

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'cpuburst-chart-ha-'));
    kubeconfig = path.join(dir, 'kubeconfig');
    cluster = await startDevCluster({ kubeconfigPath: kubeconfig });
    fake = FakeCgroupFs.create({ version: 2 });
    const ports = await Promise.all(Array.from({ length: 10 }, () => freePort()));
    const [mqtt, ws, http, probes, opMetrics, agentMetrics] = ports;
    [redisPort, broker1Port, broker1Http, op1Probes, op1Metrics] = ports.slice(6) as number[] as [
      number,
      number,
      number,
      number,
      number,
    ];
    const text = await templateText({
      valuesFiles: [path.join(CHART, 'ci', 'ha-redis-values.yaml')],
      set: [
        `broker.ports.mqtt=${mqtt}`,
        `broker.ports.ws=${ws}`,
        `broker.ports.http=${http}`,
        `operator.probePort=${probes}`,
        `operator.metricsPort=${opMetrics}`,
        `agent.metricsPort=${agentMetrics}`,
      ],
    });
    objs = parseManifests(text).filter((o) => o.kind !== 'ServiceMonitor');
    writeFileSync(path.join(dir, 'chart.yaml'), objs.map((o) => stringify(o)).join('---\n'));
    for (const args of [
      ['apply', '-f', path.join(CHART, 'crds')],
      ['create', 'namespace', NAMESPACE],
      ['apply', '-n', NAMESPACE, '-f', path.join(dir, 'chart.yaml')],
    ]) {
      const r = await run(KUBECTL, args, { KUBECONFIG: kubeconfig });
      assert.equal(r.code, 0, r.stderr);
    }
    cluster.store.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE, labels: {} } } as any);
  });

  after(async () => {
    for (const p of [...procs.values()].reverse()) await stop(p.child);
    await cluster?.close();
    fake?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('Redis, two brokers, two operators and an agent start from the rendered args', async () => {
    const redis = find(objs, 'Deployment', name('redis'));
    const r = start(
      'redis',
      redis,
      ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', path.join(dir, 'redis', 'data')],
      ['redis-server'],
    );
    await until(
      () => `redis up (${r.log.slice(-500)})`,
      () => /Ready to accept connections/.test(r.log) || r.child.exitCode !== null,
    );
    const broker = find(objs, 'Deployment', name('broker'));
    assert.equal(broker.spec.replicas, 3);
    start('broker-0', broker, ['--host=127.0.0.1']);
    // A second replica of the same pod template on this one host: same args, other ports.
    start('broker-1', broker, [
      '--host=127.0.0.1',
      `--mqtt-port=${broker1Port}`,
      `--http-port=${broker1Http}`,
      '--ws-port=-1',
    ]);
    const op = find(objs, 'Deployment', name('operator'));
    start('operator-0', op, [`--kubeconfig=${kubeconfig}`]);
    // Probe and metrics ports must differ on one host; the pod template is otherwise unchanged.
    start('operator-1', op, [
      `--kubeconfig=${kubeconfig}`,
      `--probe-port=${op1Probes}`,
      `--metrics-port=${op1Metrics}`,
    ]);
    start('agent', find(objs, 'DaemonSet', name('agent')), [`--mqtt-url=mqtt://127.0.0.1:${broker1Port}`]);
    for (const key of ['broker-0', 'operator-0', 'agent']) {
      const p = procs.get(key)!;
      await until(
        () => `${key} ready (${p.log.slice(-2000)})`,
        async () => (await probe(p, 'readinessProbe')).status === 200 || p.child.exitCode !== null,
      );
      assert.equal(p.child.exitCode, null, `${key}: ${p.log.slice(-2000)}`);
    }
    await until(
      () => `broker-1 ready (${procs.get('broker-1')!.log.slice(-2000)})`,
      async () => (await httpGet(broker1Http, '/readyz')).status === 200,
    );
    for (const key of ['broker-0', 'broker-1']) assert.match(procs.get(key)!.log, /Redis/);
  });

  it('the operators elect one leader on the chart Lease', async () => {
    await until(
      () => 'a Lease holder',
      () =>
        !!cluster.store.get('coordination.k8s.io/v1', 'Lease', name('operator'), NAMESPACE)?.spec
          ?.holderIdentity,
    );
    const lease = cluster.store.get('coordination.k8s.io/v1', 'Lease', name('operator'), NAMESPACE)!;
    assert.ok(['operator-0', 'operator-1'].includes(lease.spec.holderIdentity), lease.spec.holderIdentity);
  });

  it('a decision published on one broker reaches an agent on the other through Redis', async () => {
    const created = cluster.store.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'batch-0',
        namespace: 'default',
        annotations: {
          'cpuburst.io/enabled': 'true',
          'cpuburst.io/config': '{"policy":"cpuBurstOnly","cpuBurstPercent":25}',
        },
      },
      spec: { nodeName: NODE, containers: [{ name: 'c', resources: { limits: { cpu: '1' } } }] },
      status: {
        phase: 'Running',
        qosClass: 'Burstable',
        containerStatuses: [{ name: 'c', containerID: 'containerd://feedbeef01', state: { running: {} } }],
      },
    } as any);
    const { containerDirs } = fake.addPod({
      uid: created.metadata.uid,
      qosClass: 'Burstable',
      containers: [{ id: 'containerd://feedbeef01', quotaUs: 100_000 }],
    });
    await until(
      () =>
        `burst via Redis (agent: ${procs.get('agent')!.log.slice(-1500)}\nbroker-1: ${procs.get('broker-1')!.log.slice(-800)})`,
      () => (fake.values(containerDirs[0]!).burstUs ?? 0) > 0,
    );
    assert.equal(fake.values(containerDirs[0]!).burstUs, 25_000);
  });
});
