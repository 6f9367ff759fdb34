// HA mode from ci/ha-redis-values.yaml, run as processes: the in-chart Redis container's args on the
// real redis-server, two broker replicas sharing it (--redis-url from the chart), two operator
// replicas electing a leader on the chart's Lease, and an agent attached to the *other* broker
// replica than the operator: a decision crossing brokers through Redis reaches the cgroup.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CHART,
  find,
  type K8sObject,
  NAMESPACE,
  name,
  parseManifests,
  portSets,
  templateText,
} from './helm.js';
import { ChartBed, freePorts, httpGet, type Proc, until } from './kubelet.js';

const HAVE_REDIS = spawnSync('redis-server', ['--version']).status === 0;

describe('HA (ci/ha-redis-values.yaml) as processes', {
  skip: !HAVE_REDIS && 'redis-server not installed (Debian package redis-server, installed by make deps)',
  timeout: 400_000,
}, () => {
  let bed: ChartBed;
  let objs: K8sObject[];
  let redisPort = 0;
  let broker1Port = 0;
  let broker1Http = 0;
  let op1Probes = 0;
  let op1Metrics = 0;

  /** Broker and operator pods run with their own ServiceAccount's API token (the chart's RBAC). */
  function start(
    key: string,
    workload: K8sObject,
    extraArgs: string[],
    entrypoint?: string[],
  ): Promise<Proc> {
    return bed.start(key, workload, extraArgs, {
      inCluster: workload.spec.template.spec.automountServiceAccountToken === true,
      dns: [
        [`${name('redis')}.${NAMESPACE}.svc:6379`, `127.0.0.1:${redisPort}`],
        [`${name('broker')}.${NAMESPACE}.svc`, '127.0.0.1'],
      ],
      ...(entrypoint ? { entrypoint } : {}),
    });
  }

  before(async () => {
    bed = new ChartBed('cpuburst-chart-ha-');
    await bed.boot(2);
    const ports = await freePorts(10);
    [redisPort, broker1Port, broker1Http, op1Probes, op1Metrics] = ports.slice(6) as [
      number,
      number,
      number,
      number,
      number,
    ];
    const text = await templateText({
      valuesFiles: [path.join(CHART, 'ci', 'ha-redis-values.yaml')],
      set: portSets(ports),
    });
    await bed.install(parseManifests(text).filter((o) => o.kind !== 'ServiceMonitor'));
    objs = bed.objs;
  });

  after(async () => {
    await bed?.close();
  });

  it('Redis, two brokers, two operators and an agent start from the rendered args', async () => {
    const redis = find(objs, 'Deployment', name('redis'));
    const r = await start(
      'redis',
      redis,
      ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', path.join(bed.dir, 'redis', 'data')],
      ['redis-server'],
    );
    await until(
      () => `redis up (${r.log.slice(-500)})`,
      () => /Ready to accept connections/.test(r.log) || r.child.exitCode !== null,
    );
    const broker = find(objs, 'Deployment', name('broker'));
    assert.equal(broker.spec.replicas, 3);
    await start('broker-0', broker, ['--host=127.0.0.1']);
    // A second replica of the same pod template on this one host: same args, other ports.
    await start('broker-1', broker, [
      '--host=127.0.0.1',
      `--mqtt-port=${broker1Port}`,
      `--http-port=${broker1Http}`,
      '--ws-port=-1',
    ]);
    const op = find(objs, 'Deployment', name('operator'));
    await start('operator-0', op, []);
    // Probe and metrics ports must differ on one host; the pod template is otherwise unchanged.
    await start('operator-1', op, [`--probe-port=${op1Probes}`, `--metrics-port=${op1Metrics}`]);
    await start('agent', find(objs, 'DaemonSet', name('agent')), [
      `--mqtt-url=mqtt://127.0.0.1:${broker1Port}`,
    ]);
    for (const key of ['broker-0', 'operator-0', 'agent']) await bed.untilReady(key);
    await until(
      () => `broker-1 ready (${bed.procs.get('broker-1')!.log.slice(-2000)})`,
      async () => (await httpGet(broker1Http, '/readyz')).status === 200,
    );
    for (const key of ['broker-0', 'broker-1']) assert.match(bed.procs.get(key)!.log, /Redis/);
  });

  it('the operators elect one leader on the chart Lease', async () => {
    await until(
      () => 'a Lease holder',
      () =>
        !!bed.cluster.store.get('coordination.k8s.io/v1', 'Lease', name('operator'), NAMESPACE)?.spec
          ?.holderIdentity,
    );
    const lease = bed.cluster.store.get('coordination.k8s.io/v1', 'Lease', name('operator'), NAMESPACE)!;
    assert.ok(['operator-0', 'operator-1'].includes(lease.spec.holderIdentity), lease.spec.holderIdentity);
  });

  it('a decision published on one broker reaches an agent on the other through Redis', async () => {
    const { containerDir } = bed.addBurstPod({
      name: 'batch-0',
      cpuBurstPercent: 25,
      containerId: 'feedbeef01',
      quotaUs: 100_000,
      container: { name: 'c', resources: { limits: { cpu: '1' } } },
    });
    await until(
      () =>
        `burst via Redis (agent: ${bed.procs.get('agent')!.log.slice(-1500)}\nbroker-1: ${bed.procs.get('broker-1')!.log.slice(-800)})`,
      () => (bed.fake.values(containerDir).burstUs ?? 0) > 0,
    );
    assert.equal(bed.fake.values(containerDir).burstUs, 25_000);
  });
});
