// The rendered chart, run as a kubelet would run it: the broker, operator and agent processes start
// from their rendered container args and env, with their volumes materialised from the rendered
// Secrets (the chart's generated credentials and file formats), hostPaths on a fake cgroupfs, the
// Service DNS name pointing at loopback, and the operator on devcluster. Their probes and metrics
// answer on the rendered ports, and an annotated pod gets its burst written through the whole chain;
// then `kubectl delete` + the preStop hook put the cgroup back.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type DevCluster, startDevCluster } from '../../devcluster/index.js';
import { cliArgv } from '../support/cli.js';
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
import { freePort, httpGet, type Proc, probe, startContainer, stop, translateArg, until } from './kubelet.js';

const NODE = 'node-a';
const CONTAINER_ID = '4b1d0c7e9a2f';

describe('rendered pods run as the kubelet would run them', { timeout: 400_000 }, () => {
  let cluster: DevCluster;
  let dir: string;
  let kubeconfig: string;
  let fake: FakeCgroupFs;
  let objs: K8sObject[];
  let manifests: string;
  const procs = new Map<string, Proc>();
  let podUid = '';

  const kubectl = (...args: string[]) => run(KUBECTL, args, { KUBECONFIG: kubeconfig });

  function startPod(component: string, workload: K8sObject, extraArgs: string[]) {
    const p = startContainer(workload, {
      objs,
      dir: path.join(dir, component),
      node: NODE,
      namespace: NAMESPACE,
      podName: `${workload.metadata.name}-0`,
      hostPaths: { '/sys/fs/cgroup': fake.root, '/var/lib/cpuburst': path.join(dir, component, 'state') },
      paths: { '/proc': fake.procRoot },
      // Cluster DNS: the broker Service resolves to the broker process on loopback.
      dns: [[`${name('broker')}.${NAMESPACE}.svc`, '127.0.0.1']],
      extraArgs,
    });
    procs.set(component, p);
    return p;
  }

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'cpuburst-chart-pods-'));
    kubeconfig = path.join(dir, 'kubeconfig');
    cluster = await startDevCluster({ kubeconfigPath: kubeconfig });
    fake = FakeCgroupFs.create({ version: 1 });
    const [mqtt, ws, http, probes, opMetrics, agentMetrics] = await Promise.all(
      Array.from({ length: 6 }, () => freePort()),
    );
    manifests = await templateText({
      set: [
        `broker.ports.mqtt=${mqtt}`,
        `broker.ports.ws=${ws}`,
        `broker.ports.http=${http}`,
        `operator.probePort=${probes}`,
        `operator.metricsPort=${opMetrics}`,
        `agent.metricsPort=${agentMetrics}`,
      ],
    });
    objs = parseManifests(manifests);
    writeFileSync(path.join(dir, 'chart.yaml'), manifests);
    for (const args of [
      ['apply', '-f', path.join(CHART, 'crds')],
      ['create', 'namespace', NAMESPACE],
      ['apply', '-n', NAMESPACE, '-f', path.join(dir, 'chart.yaml')],
    ]) {
      const r = await kubectl(...args);
      assert.equal(r.code, 0, r.stderr);
    }
    cluster.store.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE, labels: {} } } as any);
  });

  after(async () => {
    for (const p of procs.values()) await stop(p.child);
    await cluster?.close();
    fake?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('broker, operator and agent start from the rendered args and turn ready', async () => {
    // Loopback instead of a pod IP: the test machine's other interfaces stay closed.
    startPod('broker', find(objs, 'Deployment', name('broker')), ['--host=127.0.0.1']);
    // An in-cluster ServiceAccount token becomes a kubeconfig for devcluster.
    startPod('operator', find(objs, 'Deployment', name('operator')), [`--kubeconfig=${kubeconfig}`]);
    startPod('agent', find(objs, 'DaemonSet', name('agent')), []);
    for (const [component, p] of procs) {
      await until(
        () => `${component} ready (log: ${p.log.slice(-2500)})`,
        async () => (await probe(p, 'readinessProbe')).status === 200 || p.child.exitCode !== null,
      );
      assert.equal(p.child.exitCode, null, `${component} exited: ${p.log.slice(-2500)}`);
      assert.equal((await probe(p, 'livenessProbe')).status, 200, component);
    }
  });

  it('the ServiceMonitor ports serve cpuburst_ metrics, and the dashboard queries only metrics they export', async () => {
    const exported = new Set<string>();
    for (const [component, portName, prefix] of [
      ['operator', 'metrics', 'cpuburst_reconcile_'],
      ['agent', 'metrics', 'cpuburst_agent_'],
      ['broker', 'http', 'cpuburst_broker_'],
    ] as const) {
      const p = procs.get(component)!;
      // Retried: on a loaded machine one scrape can time out, as Prometheus would simply retry.
      let r = { status: 0, body: '' };
      await until(
        () => `${component} /metrics (last status ${r.status})`,
        async () => {
          r = await httpGet(p.ports.get(portName)!, '/metrics');
          return r.status === 200;
        },
        30_000,
      );
      assert.ok(r.body.includes(prefix), `${component} /metrics has no ${prefix}*`);
      for (const m of r.body.matchAll(/^# TYPE (\S+) (\w+)/gm)) {
        exported.add(m[1]!);
        if (m[2] === 'histogram')
          for (const sfx of ['_bucket', '_sum', '_count']) exported.add(`${m[1]}${sfx}`);
      }
    }
    const dash = JSON.parse(find(objs, 'ConfigMap', name('dashboard')).data['cpuburst.json']);
    const queried = new Set<string>();
    for (const panel of dash.panels) {
      for (const t of panel.targets ?? [])
        for (const m of t.expr.matchAll(/\bcpuburst_[a-z_]+/g)) queried.add(m[0]);
    }
    assert.ok(queried.size >= 10);
    assert.deepEqual(
      [...queried].filter((q) => !exported.has(q)),
      [],
      'dashboard queries metrics nobody exports',
    );
  });

  it('an annotated pod gets its burst through operator → broker → agent, with the chart credentials', async () => {
    // The API server assigns the uid; the kubelet then creates the pod's cgroup under it.
    const created = cluster.store.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'web-0',
        namespace: 'default',
        annotations: {
          'cpuburst.io/enabled': 'true',
          'cpuburst.io/config': '{"policy":"cpuBurstOnly","cpuBurstPercent":50}',
        },
      },
      spec: {
        nodeName: NODE,
        containers: [{ name: 'web', resources: { limits: { cpu: '2' }, requests: { cpu: '1' } } }],
      },
      status: {
        phase: 'Running',
        qosClass: 'Burstable',
        containerStatuses: [
          {
            name: 'web',
            containerID: `containerd://${CONTAINER_ID}`,
            state: { running: { startedAt: '2026-01-01T00:00:00Z' } },
          },
        ],
      },
    } as any);
    podUid = created.metadata.uid;
    const { containerDirs } = fake.addPod({
      uid: podUid,
      qosClass: 'Burstable',
      containers: [{ id: `containerd://${CONTAINER_ID}`, quotaUs: 200_000 }],
    });
    const c0 = containerDirs[0]!;
    await until(
      () =>
        `burst on the pod's cgroup (operator: ${procs.get('operator')!.log.slice(-1500)}\nagent: ${procs.get('agent')!.log.slice(-1500)})`,
      () => (fake.values(c0).burstUs ?? 0) > 0,
    );
    assert.equal(fake.values(c0).burstUs, 100_000, '50 % of a 2-core quota');
  });

  it('the broker HTTP API takes the chart-generated API key and lists the operator and agent identities', async () => {
    const port = procs.get('broker')!.ports.get('http')!;
    const key = Buffer.from(
      find(objs, 'Secret', name('broker-api-key')).data['api-key'],
      'base64',
    ).toString();
    const denied = await fetch(`http://127.0.0.1:${port}/api/v5/clients`);
    assert.equal(denied.status, 401);
    const res = await fetch(`http://127.0.0.1:${port}/api/v5/clients`, {
      headers: { authorization: `Bearer ${key}` },
    });
    assert.equal(res.status, 200);
    const body = await res.text();
    assert.match(body, /"operator"/);
    assert.match(body, new RegExp(`"agent:${NODE}"`));
  });

  it('`helm test` passes: the rendered test pod runs against the live broker', async () => {
    const testPod = find(objs, 'Pod', name('test'));
    assert.equal(testPod.metadata.annotations?.['helm.sh/hook'], 'test');
    const c = testPod.spec.containers[0];
    const env = Object.fromEntries(
      c.env.map((e: any) => [
        e.name,
        String(e.value).replace(`${name('broker-api')}.${NAMESPACE}.svc`, '127.0.0.1'),
      ]),
    );
    const [cmd, ...rest] = c.command as string[];
    assert.equal(cmd, 'node');
    const r = await run(process.execPath, [...rest, ...c.args], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /broker ready at .*; the HTTP API requires its key/);
  });

  it('uninstall: kubectl delete, then the preStop hook restores the cgroup', async () => {
    const r = await kubectl('delete', '-n', NAMESPACE, '-f', path.join(dir, 'chart.yaml'), '--wait=false');
    assert.equal(r.code, 0, r.stderr);
    const agent = procs.get('agent')!;
    const c = agent.workload.spec.template.spec.containers[0];
    const hook: string[] = c.lifecycle.preStop.exec.command;
    // exec hooks get no $(VAR) expansion; only the mounts are translated.
    const argv = hook.slice(1).map((a) => translateArg(a, {}, agent.mounts, false));
    const [node, args] = cliArgv(argv);
    const h = spawn(node, args, {
      env: { ...process.env, NODE_NAME: NODE },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    h.stdout!.on('data', (d) => {
      out += d;
    });
    h.stderr!.on('data', (d) => {
      out += d;
    });
    const code = await new Promise<number | null>((resolve) => h.once('exit', resolve));
    assert.equal(code, 0, out);
    const c0 = fake.containerDir(fake.podDir('Burstable', podUid), `containerd://${CONTAINER_ID}`);
    assert.equal(fake.values(c0).burstUs, 0, out);
  });

  it('the agent, still running between preStop and SIGTERM, does not write the burst back', async () => {
    const agent = procs.get('agent')!;
    const c0 = fake.containerDir(fake.podDir('Burstable', podUid), `containerd://${CONTAINER_ID}`);
    // The kubelet sends SIGTERM only after preStop returns; a few control-loop rounds fit in between.
    await new Promise((r) => setTimeout(r, 3500));
    agent.child.kill('SIGTERM');
    await new Promise((r) => agent.child.once('exit', r));
    assert.equal(fake.values(c0).burstUs, 0, `burst written back after the hook: ${agent.log.slice(-1500)}`);
  });
});
