// TLS as the chart wires it, run as processes: a CA and a broker certificate (openssl) in the Secret
// named by tls.existingSecret; the broker serves mqtts from tls.crt/tls.key; the operator and the
// agent see only ca.crt (the chart projects that one key) and reach the broker over mqtts, verifying
// it against that CA; an annotated pod gets its burst through the TLS path.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
import { freePort, type Proc, probe, startContainer, stop, until } from './kubelet.js';

const NODE = 'node-a';
const HAVE_OPENSSL = spawnSync('openssl', ['version']).status === 0;

function openssl(cwd: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

describe('TLS (tls.enabled + tls.existingSecret) as processes', {
  skip: !HAVE_OPENSSL && 'openssl not installed',
  timeout: 400_000,
}, () => {
  let cluster: DevCluster;
  let dir: string;
  let kubeconfig: string;
  let fake: FakeCgroupFs;
  let objs: K8sObject[];
  const procs = new Map<string, Proc>();

  function start(key: string, workload: K8sObject, extraArgs: string[]) {
    const p = startContainer(workload, {
      objs,
      dir: path.join(dir, key),
      node: NODE,
      namespace: NAMESPACE,
      podName: key,
      hostPaths: { '/sys/fs/cgroup': fake.root, '/var/lib/cpuburst': path.join(dir, key, 'state') },
      paths: { '/proc': fake.procRoot },
      dns: [[`${name('broker')}.${NAMESPACE}.svc`, '127.0.0.1']],
      extraArgs,
    });
    procs.set(key, p);
    return p;
  }

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'cpuburst-chart-tls-'));
    kubeconfig = path.join(dir, 'kubeconfig');
    // What cert-manager (or the user) puts in the Secret: a CA and a server certificate for the Service.
    const pki = path.join(dir, 'pki');
    mkdirSync(pki);
    const svc = name('broker');
    openssl(pki, [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=cpuburst-test-ca',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
    ]);
    openssl(pki, [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      `/CN=${svc}`,
      '-keyout',
      'tls.key',
      '-out',
      'tls.csr',
    ]);
    writeFileSync(
      path.join(pki, 'san.ext'),
      `subjectAltName=DNS:${svc},DNS:${svc}.${NAMESPACE},DNS:${svc}.${NAMESPACE}.svc,IP:127.0.0.1\n`,
    );
    openssl(pki, [
      'x509',
      '-req',
      '-in',
      'tls.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      'san.ext',
      '-out',
      'tls.crt',
    ]);
    const tlsSecret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name: 'broker-tls', namespace: NAMESPACE, labels: {} },
      data: Object.fromEntries(
        ['tls.crt', 'tls.key', 'ca.crt'].map((k) => [k, readFileSync(path.join(pki, k)).toString('base64')]),
      ),
    };

    cluster = await startDevCluster({ kubeconfigPath: kubeconfig });
    fake = FakeCgroupFs.create({ version: 1 });
    const [mqtt, mqtts, ws, wss, http, probes, opMetrics, agentMetrics] = await Promise.all(
      Array.from({ length: 8 }, () => freePort()),
    );
    const text = await templateText({
      set: [
        'tls.enabled=true',
        'tls.existingSecret=broker-tls',
        `broker.ports.mqtt=${mqtt}`,
        `broker.ports.mqtts=${mqtts}`,
        `broker.ports.ws=${ws}`,
        `broker.ports.wss=${wss}`,
        `broker.ports.http=${http}`,
        `operator.probePort=${probes}`,
        `operator.metricsPort=${opMetrics}`,
        `agent.metricsPort=${agentMetrics}`,
      ],
    });
    objs = [...parseManifests(text), tlsSecret as unknown as K8sObject];
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

  it('the broker serves mqtts; operator and agent connect over TLS with only ca.crt mounted', async () => {
    start('broker', find(objs, 'Deployment', name('broker')), ['--host=127.0.0.1']);
    start('operator', find(objs, 'Deployment', name('operator')), [`--kubeconfig=${kubeconfig}`]);
    start('agent', find(objs, 'DaemonSet', name('agent')), []);
    for (const [key, p] of procs) {
      await until(
        () => `${key} ready (${p.log.slice(-2000)})`,
        async () => (await probe(p, 'readinessProbe')).status === 200 || p.child.exitCode !== null,
      );
      assert.equal(p.child.exitCode, null, `${key}: ${p.log.slice(-2000)}`);
    }
    for (const key of ['operator', 'agent']) {
      const p = procs.get(key)!;
      const url = (p.workload.spec.template.spec.containers[0].args as string[]).find((a) =>
        a.startsWith('--mqtt-url='),
      );
      assert.match(url!, /^--mqtt-url=mqtts:\/\//);
      const caDir = p.mounts.find(([m]) => m === '/etc/cpuburst/tls')![1];
      assert.deepEqual(readdirSync(caDir), ['ca.crt'], `${key} sees more than the CA`);
      await until(
        () => `${key} connected over TLS (${p.log.slice(-1500)})`,
        () => /Connected to (the )?MQTT broker/.test(p.log),
      );
    }
  });

  it('an annotated pod gets its burst through the TLS path', async () => {
    const created = cluster.store.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'tls-0',
        namespace: 'default',
        annotations: {
          'cpuburst.io/enabled': 'true',
          'cpuburst.io/config': '{"policy":"cpuBurstOnly","cpuBurstPercent":40}',
        },
      },
      spec: { nodeName: NODE, containers: [{ name: 'c', resources: { limits: { cpu: '1' } } }] },
      status: {
        phase: 'Running',
        qosClass: 'Burstable',
        containerStatuses: [{ name: 'c', containerID: 'containerd://7a5c0ffee1', state: { running: {} } }],
      },
    } as any);
    const { containerDirs } = fake.addPod({
      uid: created.metadata.uid,
      qosClass: 'Burstable',
      containers: [{ id: 'containerd://7a5c0ffee1', quotaUs: 100_000 }],
    });
    await until(
      () => `burst over TLS (agent: ${procs.get('agent')!.log.slice(-1500)})`,
      () => (fake.values(containerDirs[0]!).burstUs ?? 0) > 0,
    );
    assert.equal(fake.values(containerDirs[0]!).burstUs, 40_000);
  });
});
