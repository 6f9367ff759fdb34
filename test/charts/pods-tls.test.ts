// TLS as the chart wires it, run as processes: a CA and a broker certificate (openssl) in the Secret
// named by tls.existingSecret; the broker serves mqtts from tls.crt/tls.key; the operator and the
// agent see only ca.crt (the chart projects that one key) and reach the broker over mqtts, verifying
// it against that CA; an annotated pod gets its burst through the TLS path. Then agent.mtls: the
// agent logs in with its node's client certificate from the host directory (CN agent:<node>), the
// operator with its token, and certificates of another CA or naming the operator get nothing.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { identities } from '../../protocol/index.js';
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
import { brokerLogins, ChartBed, freePorts, httpGet, NODE, until } from './kubelet.js';
import { brokerPki, clientCert, HAVE_OPENSSL, makeCa } from './pki.js';

describe('TLS (tls.enabled + tls.existingSecret) as processes', {
  skip: !HAVE_OPENSSL && 'openssl not installed',
  timeout: 400_000,
}, () => {
  let bed: ChartBed;
  let objs: K8sObject[];

  before(async () => {
    bed = new ChartBed('cpuburst-chart-tls-');
    // What cert-manager (or the user) puts in the Secret: a CA and a server certificate for the Service.
    const tlsSecret = brokerPki(path.join(bed.dir, 'pki'), name('broker'), NAMESPACE, 'broker-tls');
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
    objs = [...parseManifests(text), tlsSecret];
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

describe('agent mTLS (agent.mtls.enabled) as processes', {
  skip: !HAVE_OPENSSL && 'openssl not installed',
  timeout: 400_000,
}, () => {
  let bed: ChartBed;
  let objs: K8sObject[];
  let pki = '';
  let mqttsPort = 0;
  /** The node's certificate directory, as the admin provisioned it on the host. */
  let hostTls = '';

  before(async () => {
    bed = new ChartBed('cpuburst-chart-mtls-');
    pki = path.join(bed.dir, 'pki');
    const tlsSecret = brokerPki(pki, name('broker'), NAMESPACE, 'broker-tls');
    clientCert(pki, 'agent', identities.agent(NODE));
    clientCert(pki, 'operator-cert', identities.operator);
    makeCa(pki, 'rogue-ca');
    clientCert(pki, 'rogue', identities.agent(NODE), 'rogue-ca');
    hostTls = path.join(bed.dir, 'host-agent-tls');
    mkdirSync(hostTls);
    copyFileSync(path.join(pki, 'agent.crt'), path.join(hostTls, 'tls.crt'));
    copyFileSync(path.join(pki, 'agent.key'), path.join(hostTls, 'tls.key'));

    await bed.boot(1);
    const ports = await freePorts(8);
    mqttsPort = ports[6]!;
    const text = await templateText({
      valuesFiles: [path.join(CHART, 'ci', 'agent-mtls-values.yaml')],
      set: [
        'tls.existingSecret=broker-tls',
        ...portSets(ports),
        `broker.ports.mqtts=${mqttsPort}`,
        `broker.ports.wss=${ports[7]}`,
      ],
    });
    objs = [...parseManifests(text), tlsSecret];
    await bed.install(objs);
  });

  after(async () => {
    await bed?.close();
  });

  it("the agent logs in with its node's certificate from the host directory, the operator with its token", async () => {
    await bed.start('broker', find(objs, 'Deployment', name('broker')), ['--host=127.0.0.1'], {
      inCluster: true,
    });
    await bed.start('operator', find(objs, 'Deployment', name('operator')), [], { inCluster: true });
    await bed.start('agent', find(objs, 'DaemonSet', name('agent')), [], {
      hostPaths: { '/etc/cpuburst/agent-tls': hostTls },
    });
    for (const key of bed.procs.keys()) await bed.untilReady(key);
    const broker = bed.procs.get('broker')!;
    await until(
      () => `both logged in (${broker.log.slice(-2000)})`,
      () => {
        const logins = brokerLogins(broker);
        return logins.includes('operator by k8s-token') && logins.includes(`agent:${NODE} by tls-cert`);
      },
    );
    const agent = bed.procs.get('agent')!;
    assert.ok(!agent.mounts.some(([m]) => m === '/var/run/secrets/cpuburst'), 'the mTLS agent has no token');
  });

  it('an annotated pod gets its burst with the certificate identity', async () => {
    const { containerDir } = bed.addBurstPod({
      name: 'mtls-0',
      cpuBurstPercent: 30,
      containerId: '5eedc0de01',
      quotaUs: 100_000,
      container: { name: 'c', resources: { limits: { cpu: '1' } } },
    });
    await until(
      () => `burst over mTLS (agent: ${bed.procs.get('agent')!.log.slice(-1500)})`,
      () => (bed.fake.values(containerDir).burstUs ?? 0) > 0,
    );
    assert.equal(bed.fake.values(containerDir).burstUs, 30_000);
  });

  it('a certificate of another CA is refused; CN=operator gives no operator identity', async () => {
    const tryConnect = (certName: string) =>
      new Promise<{ ok: boolean; code?: number; client: MqttClient }>((resolve) => {
        const client = mqtt.connect(`mqtts://127.0.0.1:${mqttsPort}`, {
          protocolVersion: 5,
          ca: readFileSync(path.join(pki, 'ca.crt')),
          cert: readFileSync(path.join(pki, `${certName}.crt`)),
          key: readFileSync(path.join(pki, `${certName}.key`)),
          username: identities.operator,
          clientId: `probe-${certName}`,
          reconnectPeriod: 0,
          connectTimeout: 20_000,
        });
        client.once('connect', () => resolve({ ok: true, client }));
        client.once('error', (err) => resolve({ ok: false, code: (err as { code?: number }).code, client }));
      });
    const rogue = await tryConnect('rogue');
    rogue.client.end(true);
    assert.equal(rogue.ok, false, 'a certificate from an unknown CA was accepted');
    assert.ok([0x86, 0x87].includes(rogue.code!), `CONNACK ${rogue.code}`);
    // CN=operator without --tls-operator-cert: ignored by tls-cert; no token or password follows.
    const op = await tryConnect('operator-cert');
    op.client.end(true);
    assert.equal(op.ok, false, 'a CN=operator certificate logged in');
    const refusals = await httpGet(bed.procs.get('broker')!.ports.get('http')!, '/metrics');
    assert.match(
      refusals.body,
      /cpuburst_broker_auth_refusals_total\{[^}]*reason="cert_invalid"[^}]*\} [1-9]/,
    );
  });
});
