// mTLS identities: the tls-cert authenticator maps a client certificate signed by --tls-ca to
// agent:<node> (CN `agent:<node>` or SAN URI `cpuburst://agent/<node>`), never to operator unless
// --tls-operator-cert, and refuses an untrusted certificate with cert_invalid.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it, after as rootAfter } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { type RunningBroker, startBroker } from '../../broker/server.js';
import { memoryLogger } from '../../common/log.js';
import { identities, topics } from '../../protocol/topics.js';
import { cleanupList, collect, makeCerts, run, tempDir, waitFor, writeFile } from './helpers.js';

const after = cleanupList(rootAfter);
let dir: string;
let certs: Awaited<ReturnType<typeof makeCerts>>;
let b: RunningBroker;
let lines: Array<Record<string, any>>;

/** A client certificate signed by `caName` (ca = the broker's CA, other = an untrusted one). */
async function clientCert(
  name: string,
  subj: string,
  san?: string,
  caName = 'ca',
): Promise<{ cert: string; key: string }> {
  const f = (n: string) => path.join(dir, n);
  const steps = [
    [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.csr`),
      '-subj',
      subj,
    ],
    [
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f(`${caName}.pem`),
      '-CAkey',
      f(`${caName}.key`),
      '-CAcreateserial',
      '-out',
      f(`${name}.pem`),
      '-days',
      '2',
      ...(san ? ['-extfile', writeFile(dir, `${name}.ext`, `subjectAltName=${san}\n`)] : []),
    ],
  ];
  for (const args of steps) {
    const r = await run('openssl', args);
    if (r.code !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
  }
  return { cert: f(`${name}.pem`), key: f(`${name}.key`) };
}

async function tlsBroker(tlsOperatorCert: boolean) {
  const mem = memoryLogger('broker');
  const broker = await startBroker(
    {
      host: '127.0.0.1',
      mqttPort: -1,
      tlsPort: 0,
      wsPort: -1,
      wssPort: 0,
      httpPort: -1,
      flappingMaxCount: 0,
      tlsCert: certs.cert,
      tlsKey: certs.key,
      tlsCa: certs.ca,
      authChain: ['tls-cert'],
      tlsOperatorCert,
    },
    { log: mem.log },
  );
  after(() => broker.close());
  return { broker, lines: mem.lines };
}

function tlsConnect(
  broker: RunningBroker,
  who: { cert: string; key: string } | null,
  opts: IClientOptions = {},
): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(`mqtts://127.0.0.1:${broker.ports.tlsPort}`, {
      ca: readFileSync(certs.ca),
      ...(who ? { cert: readFileSync(who.cert), key: readFileSync(who.key) } : {}),
      rejectUnauthorized: true,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      protocolVersion: 5,
      ...opts,
    });
    after(() => c.endAsync(true));
    c.once('connect', () => resolve(c));
    c.once('error', reject);
    c.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

const refusedCode = (p: Promise<MqttClient>) =>
  p.then(
    () => 0,
    (err: { code?: number }) => err.code ?? -1,
  );

let agentA: { cert: string; key: string };
let sanB: { cert: string; key: string };
let op: { cert: string; key: string };

before(async () => {
  dir = tempDir(after, 'cpuburst-broker-mtls-');
  certs = await makeCerts(dir);
  agentA = await clientCert('agent-a', '/CN=agent:node-a');
  sanB = await clientCert('san-b', '/CN=node-b-agent', 'URI:cpuburst://agent/node-b');
  op = await clientCert('operator', '/CN=operator');
  ({ broker: b, lines } = await tlsBroker(true));
  const operator = await tlsConnect(b, op, { clientId: 'op' });
  await operator.publishAsync(topics.decisions('node-a'), 'doc-a', { qos: 1, retain: true });
  await operator.publishAsync(topics.decisions('node-b'), 'doc-b', { qos: 1, retain: true });
});

describe('tls-cert: identities from client certificates', () => {
  it('CN agent:node-a is agent:node-a whatever the username; it reads A and not B', async () => {
    for (const protocolVersion of [4, 5] as const) {
      const c = await tlsConnect(b, agentA, {
        protocolVersion,
        clientId: `a-${protocolVersion}`,
        username: 'operator',
      });
      const info = [...b.clients.entries()].find(([cl]) => cl.id === `a-${protocolVersion}`)?.[1];
      assert.equal(info?.identity, identities.agent('node-a'));
      assert.equal(info?.by, 'tls-cert');
      const got = collect(c);
      await c.subscribeAsync(topics.decisions('node-a'), { qos: 1 });
      await waitFor('retained A', () => got.find((m) => m.payload === 'doc-a'));
      const g = await c
        .subscribeAsync(topics.decisions('node-b'), { qos: 1 })
        .catch((err: { packet?: { granted?: number[] } }) => [{ qos: err.packet?.granted?.[0] ?? 128 }]);
      assert.ok(g[0]!.qos >= 128, 'node-b decisions granted to node-a certificate');
      await c.endAsync();
    }
  });

  it('works on the WSS listener too (the certificate of the upgraded TLS socket)', async () => {
    const c = await mqtt.connectAsync(`wss://127.0.0.1:${b.ports.wssPort}/mqtt`, {
      ca: readFileSync(certs.ca),
      cert: readFileSync(agentA.cert),
      key: readFileSync(agentA.key),
      rejectUnauthorized: true,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      clientId: 'wss-a',
      username: 'agent:node-b',
    });
    after(() => c.endAsync(true));
    const info = [...b.clients.entries()].find(([cl]) => cl.id === 'wss-a')?.[1];
    assert.equal(info?.identity, identities.agent('node-a'));
    await c.endAsync();
  });

  it('a SAN URI cpuburst://agent/node-b names the node', async () => {
    const c = await tlsConnect(b, sanB, { clientId: 'san-b' });
    const info = [...b.clients.entries()].find(([cl]) => cl.id === 'san-b')?.[1];
    assert.equal(info?.identity, identities.agent('node-b'));
    await c.endAsync();
  });

  it('refuses a certificate from another CA with cert_invalid (reason code, log line, metric)', async () => {
    const other = path.join(dir, 'other');
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `${other}.key`,
      '-out',
      `${other}.pem`,
      '-days',
      '2',
      '-subj',
      '/CN=evil-ca',
    ]);
    const forged = await clientCert('forged-a', '/CN=agent:node-a', undefined, 'other');
    assert.equal(await refusedCode(tlsConnect(b, forged, { clientId: 'forged' })), 0x86);
    assert.equal(
      await refusedCode(tlsConnect(b, forged, { clientId: 'forged4', protocolVersion: 4, username: 'x' })),
      4,
    );
    const line = lines.findLast((l) => l.message === 'Refused connection' && l.reason === 'cert_invalid');
    assert.ok(line, 'no log line with reason cert_invalid');
    assert.match(line.detail, /not trusted/);
    const v = (await b.metrics.authRefusals.get()).values.find((x) => x.labels.reason === 'cert_invalid');
    assert.equal(v?.value, 2);
  });

  it('CN operator is operator only with --tls-operator-cert; no certificate is anonymous (refused)', async () => {
    const strict = await tlsBroker(false);
    assert.notEqual(
      await refusedCode(tlsConnect(strict.broker, op, { clientId: 'op2', username: 'operator' })),
      0,
    );
    assert.notEqual(await refusedCode(tlsConnect(strict.broker, null, { clientId: 'nocert' })), 0);
    const c = await tlsConnect(strict.broker, agentA, { clientId: 'a-strict' });
    await c.endAsync();
  });
});
