// TLS as the chart wires it, run as processes: a CA and a broker certificate (openssl) in the Secret
// named by tls.existingSecret; the broker serves mqtts from tls.crt/tls.key; the operator and the
// agent see only ca.crt (the chart projects that one key) and reach the broker over mqtts, verifying
// it against that CA; an annotated pod gets its burst through the TLS path.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { find, type K8sObject, NAMESPACE, name, parseManifests, portSets, templateText } from './helm.js';
import { ChartBed, freePorts, until } from './kubelet.js';

const HAVE_OPENSSL = spawnSync('openssl', ['version']).status === 0;

function openssl(cwd: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

describe('TLS (tls.enabled + tls.existingSecret) as processes', {
  skip: !HAVE_OPENSSL && 'openssl not installed',
  timeout: 400_000,
}, () => {
  let bed: ChartBed;
  let objs: K8sObject[];

  before(async () => {
    bed = new ChartBed('cpuburst-chart-tls-');
    // What cert-manager (or the user) puts in the Secret: a CA and a server certificate for the Service.
    const pki = path.join(bed.dir, 'pki');
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

    await bed.boot(1);
    const ports = await freePorts(8);
    const [mqtts, wss] = ports.slice(6);
    const text = await templateText({
      set: [
        'tls.enabled=true',
        'tls.existingSecret=broker-tls',
        ...portSets(ports),
        `broker.ports.mqtts=${mqtts}`,
        `broker.ports.wss=${wss}`,
      ],
    });
    objs = [...parseManifests(text), tlsSecret as unknown as K8sObject];
    await bed.install(objs);
  });

  after(async () => {
    await bed?.close();
  });

  it('the broker serves mqtts; operator and agent connect over TLS with only ca.crt mounted', async () => {
    await bed.start('broker', find(objs, 'Deployment', name('broker')), ['--host=127.0.0.1'], {
      inCluster: true,
    });
    await bed.start('operator', find(objs, 'Deployment', name('operator')), [], { inCluster: true });
    await bed.start('agent', find(objs, 'DaemonSet', name('agent')), []);
    for (const key of bed.procs.keys()) await bed.untilReady(key);
    for (const key of ['operator', 'agent']) {
      const p = bed.procs.get(key)!;
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
    const { containerDir } = bed.addBurstPod({
      name: 'tls-0',
      cpuBurstPercent: 40,
      containerId: '7a5c0ffee1',
      quotaUs: 100_000,
      container: { name: 'c', resources: { limits: { cpu: '1' } } },
    });
    await until(
      () => `burst over TLS (agent: ${bed.procs.get('agent')!.log.slice(-1500)})`,
      () => (bed.fake.values(containerDir).burstUs ?? 0) > 0,
    );
    assert.equal(bed.fake.values(containerDir).burstUs, 40_000);
  });
});
