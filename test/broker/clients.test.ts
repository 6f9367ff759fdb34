// Real clients no one here wrote — mosquitto_pub/sub and Debian's paho-mqtt — plus the mqtt npm
// client, against one broker over TCP, TLS and WebSocket (mosquitto's clients have no WebSocket
// support, so WebSocket is covered by paho and mqtt.js).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it, after as rootAfter } from 'node:test';
import type { RunningBroker } from '../../broker/server.js';
import {
  cleanupList,
  collect,
  connect,
  makeCerts,
  paho,
  run,
  start,
  tempDir,
  testBroker,
  waitFor,
  writeFile,
} from './helpers.js';

const after = cleanupList(rootAfter);
const USER = ['-u', 'alice', '-P', 'alice-pw'];
let b: RunningBroker;
let certs: Awaited<ReturnType<typeof makeCerts>>;
let tcp: string[];
let tlsArgs: string[];

before(async () => {
  const dir = tempDir(after);
  certs = await makeCerts(dir);
  const users = writeFile(
    dir,
    'users.yaml',
    'users:\n  - {username: alice, password: alice-pw}\n  - {username: bob, password: bob-pw}\n',
  );
  b = await testBroker(after, {
    usersFile: users,
    tlsPort: 0,
    wssPort: 0,
    tlsCert: certs.cert,
    tlsKey: certs.key,
    brokerId: 'itest',
    sysIntervalSeconds: 1,
  });
  tcp = ['-h', '127.0.0.1', '-p', String(b.ports.mqttPort)];
  tlsArgs = ['-h', '127.0.0.1', '-p', String(b.ports.tlsPort), '--cafile', certs.ca];
});

/** mosquitto_sub in the background; resolves its output once it exits. */
function sub(args: string[]) {
  const child = start(after, 'mosquitto_sub', [...args, '-v']);
  const done = new Promise<string>((resolve) => child.once('close', () => resolve(child.out())));
  return { child, done };
}

/** mosquitto_sub gives no "subscribed" signal; the broker's own subscription table does. */
function subscribed(clientId: string) {
  return waitFor(`subscription of ${clientId}`, () => {
    const c = (b.aedes as unknown as { clients: Record<string, { subscriptions: object }> }).clients[
      clientId
    ];
    return c && Object.keys(c.subscriptions ?? {}).length > 0;
  });
}

const lines = (out: string, prefix: string) =>
  out
    .trim()
    .split('\n')
    .filter((l) => l.startsWith(prefix));

describe('mosquitto clients', () => {
  it('refuses a wrong password and an anonymous client', async () => {
    const bad = await run('mosquitto_pub', [...tcp, '-u', 'alice', '-P', 'nope', '-t', 't', '-m', 'x']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /bad user name or password|not authori[sz]ed/i);
    const anon = await run('mosquitto_pub', [...tcp, '-t', 't', '-m', 'x']);
    assert.notEqual(anon.code, 0);
    assert.match(anon.stderr, /not authori[sz]ed|bad user name or password/i);
  });

  for (const via of ['tcp', 'tls'] as const) {
    it(`publishes and subscribes with QoS 2 over ${via}`, async () => {
      const net = via === 'tcp' ? tcp : tlsArgs;
      const s = sub([
        ...net,
        ...USER,
        '-i',
        `q2-${via}`,
        '-t',
        `m/${via}/q2`,
        '-q',
        '2',
        '-C',
        '1',
        '-W',
        '20',
      ]);
      await subscribed(`q2-${via}`);
      const p = await run('mosquitto_pub', [
        ...net,
        ...USER,
        '-t',
        `m/${via}/q2`,
        '-q',
        '2',
        '-m',
        `hello-${via}`,
      ]);
      assert.equal(p.code, 0, p.stderr);
      assert.deepEqual(lines(await s.done, 'm/'), [`m/${via}/q2 hello-${via}`]);
    });
  }

  it('keeps retained messages for later subscribers', async () => {
    const p = await run('mosquitto_pub', [
      ...tcp,
      ...USER,
      '-t',
      'm/retained',
      '-r',
      '-q',
      '1',
      '-m',
      'kept',
    ]);
    assert.equal(p.code, 0, p.stderr);
    const r = await run('mosquitto_sub', [
      ...tlsArgs,
      ...USER,
      '-t',
      'm/retained',
      '-C',
      '1',
      '-W',
      '10',
      '-v',
    ]);
    assert.equal(r.stdout.trim(), 'm/retained kept');
  });

  it('publishes the Last Will when a client dies', async () => {
    const watcher = sub([...tcp, ...USER, '-i', 'will-watcher', '-t', 'm/will', '-C', '1', '-W', '20']);
    await subscribed('will-watcher');
    const victim = start(after, 'mosquitto_sub', [
      ...tcp,
      '-u',
      'bob',
      '-P',
      'bob-pw',
      '-t',
      'm/nothing',
      '--will-topic',
      'm/will',
      '--will-payload',
      'bob-died',
      '-i',
      'victim',
    ]);
    await subscribed('victim');
    victim.kill('SIGKILL');
    assert.deepEqual(lines(await watcher.done, 'm/'), ['m/will bob-died']);
  });

  it('load-balances a shared subscription', async () => {
    const s1 = sub([...tcp, ...USER, '-i', 'worker-1', '-t', '$share/workers/m/jobs/#', '-W', '8']);
    const s2 = sub([...tcp, ...USER, '-i', 'worker-2', '-t', '$share/workers/m/jobs/#', '-W', '8']);
    await subscribed('worker-1');
    await subscribed('worker-2');
    for (let i = 0; i < 10; i++) {
      const p = await run('mosquitto_pub', [
        ...tcp,
        ...USER,
        '-t',
        `m/jobs/${i}`,
        '-q',
        '1',
        '-m',
        String(i),
      ]);
      assert.equal(p.code, 0);
    }
    const [o1, o2] = await Promise.all([s1.done, s2.done]);
    const l1 = lines(o1, 'm/jobs/');
    const l2 = lines(o2, 'm/jobs/');
    assert.equal(l1.length + l2.length, 10, `${o1} | ${o2}`);
    assert.ok(l1.length > 0 && l2.length > 0, 'both members get work');
  });

  it('reads $SYS/brokers/<id>/ topics', async () => {
    const r = await run('mosquitto_sub', [
      ...tcp,
      ...USER,
      '-t',
      '$SYS/brokers/itest/uptime',
      '-t',
      '$SYS/brokers/itest/stats/connections/count',
      '-C',
      '2',
      '-W',
      '10',
      '-v',
    ]);
    assert.match(r.stdout, /\$SYS\/brokers\/itest\/uptime \d+/);
    assert.match(r.stdout, /\$SYS\/brokers\/itest\/stats\/connections\/count [1-9]\d*/);
  });
});

describe('paho-mqtt (python3) client', () => {
  const pahoNet = (via: string) =>
    via === 'tcp'
      ? ['--port', String(b.ports.mqttPort)]
      : via === 'tls'
        ? ['--port', String(b.ports.tlsPort), '--tls-ca', certs.ca, '--host', 'localhost']
        : ['--port', String(b.ports.wsPort), '--transport', 'websockets'];

  for (const via of ['tcp', 'tls', 'ws']) {
    it(`connects, subscribes, publishes QoS 2 and gets retained messages over ${via}`, async () => {
      const retained = await paho([
        ...pahoNet(via),
        '--username',
        'alice',
        '--password',
        'alice-pw',
        '--pub',
        `p/${via}/r:1:true:ret-${via}`,
      ]);
      assert.equal(retained.rc, 0);
      const out = await paho([
        ...pahoNet(via),
        ...[
          '--username',
          'alice',
          '--password',
          'alice-pw',
          '--sub',
          `p/${via}/#:2`,
          '--pub',
          `p/${via}/x:2:false:hi-${via}`,
          '--expect',
          '2',
        ],
      ]);
      assert.equal(out.rc, 0);
      assert.deepEqual(out.granted, [2]);
      const byTopic = Object.fromEntries(out.messages.map((m: { topic: string }) => [m.topic, m]));
      assert.deepEqual(byTopic[`p/${via}/r`], {
        topic: `p/${via}/r`,
        payload: `ret-${via}`,
        qos: 1,
        retain: true,
      });
      assert.deepEqual(byTopic[`p/${via}/x`], {
        topic: `p/${via}/x`,
        payload: `hi-${via}`,
        qos: 2,
        retain: false,
      });
    });

    it(`is refused with a wrong password over ${via}`, async () => {
      const out = await paho([...pahoNet(via), '--username', 'alice', '--password', 'wrong']);
      assert.equal(out.rc, 4, JSON.stringify(out)); // bad user name or password
    });
  }

  it('fires a will over WebSocket and reads $SYS', async () => {
    const watcher = paho([
      '--port',
      String(b.ports.mqttPort),
      '--username',
      'alice',
      '--password',
      'alice-pw',
      '--sub',
      'p/will:1',
      '--sub',
      '$SYS/brokers/itest/version:0',
      '--expect',
      '2',
      '--timeout',
      '20',
      '--client-id',
      'paho-watcher',
    ]);
    await waitFor('watcher subscribed', () => {
      const c = (b.aedes as unknown as { clients: Record<string, { subscriptions: object }> }).clients[
        'paho-watcher'
      ];
      return c && Object.keys(c.subscriptions).length === 2;
    });
    const victim = await paho([
      ...pahoNet('ws'),
      '--username',
      'bob',
      '--password',
      'bob-pw',
      '--will',
      'p/will:1:false:gone',
      '--abort',
    ]);
    assert.equal(victim.rc, 0);
    const out = await watcher;
    const topics = out.messages.map((m: { topic: string }) => m.topic).sort();
    assert.deepEqual(topics, ['$SYS/brokers/itest/version', 'p/will']);
  });
});

describe('mqtt npm client (MQTT 5 and 3.1.1)', () => {
  for (const via of ['mqtt', 'ws', 'mqtts', 'wss'] as const) {
    it(`MQTT 5 over ${via}: QoS 2, retained, shared subscription`, async () => {
      const ports = {
        mqtt: b.ports.mqttPort,
        ws: b.ports.wsPort,
        mqtts: b.ports.tlsPort,
        wss: b.ports.wssPort,
      };
      const port = ports[via]!;
      const ca = via === 'mqtts' || via === 'wss' ? [readFileSync(certs.ca)] : undefined;
      const opts = {
        protocolVersion: 5 as const,
        username: 'alice',
        password: 'alice-pw',
        ca,
        servername: 'localhost',
      };
      const c1 = await connect(after, port, opts, via);
      const c2 = await connect(after, port, opts, via);
      const got1 = collect(c1);
      const got2 = collect(c2);
      await c1.subscribeAsync(`$share/g/n/${via}/jobs/+`, { qos: 1 });
      const granted = await c2.subscribeAsync(`$share/g/n/${via}/jobs/+`, { qos: 1 });
      assert.equal(granted[0]!.qos, 1);
      for (let i = 0; i < 6; i++) await c1.publishAsync(`n/${via}/jobs/${i}`, String(i), { qos: 1 });
      await waitFor('6 shared deliveries', () => got1.length + got2.length === 6);
      assert.ok(got1.length > 0 && got2.length > 0);
      await c1.publishAsync(`n/${via}/ret`, 'r', { qos: 2, retain: true });
      await c2.subscribeAsync(`n/${via}/ret`, { qos: 2 });
      await waitFor('retained', () => got2.find((m) => m.topic === `n/${via}/ret` && m.retain));
    });
  }

  it('MQTT 5 properties: user properties, request/response, subscription ids, no-local, topic alias', async () => {
    const opts = { protocolVersion: 5 as const, username: 'alice', password: 'alice-pw' };
    const s = await connect(after, b.ports.mqttPort!, { ...opts, properties: { sessionExpiryInterval: 30 } });
    const p = await connect(after, b.ports.mqttPort!, opts);
    const got: Array<{ topic: string; properties?: Record<string, unknown> }> = [];
    s.on('message', (topic, _payload, packet) =>
      got.push({ topic, properties: packet.properties as Record<string, unknown> }),
    );
    await s.subscribeAsync('v5/#', { qos: 1, properties: { subscriptionIdentifier: 42 } });
    await s.subscribeAsync('own/#', { qos: 1, nl: true });
    await s.publishAsync('own/x', 'not for me', { qos: 1 });
    await p.publishAsync('v5/req', 'q', {
      qos: 1,
      properties: {
        userProperties: { k: 'v' },
        responseTopic: 'v5/resp',
        correlationData: Buffer.from('c1'),
        contentType: 'text/plain',
      },
    });
    await p.publishAsync('v5/aliased', 'a', { qos: 1, properties: { topicAlias: 1 } });
    await waitFor('both messages', () => got.length >= 2);
    const req = got.find((m) => m.topic === 'v5/req')!;
    assert.deepEqual({ ...(req.properties?.userProperties as object) }, { k: 'v' });
    assert.equal(req.properties?.responseTopic, 'v5/resp');
    assert.equal(String(req.properties?.correlationData), 'c1');
    assert.equal(req.properties?.subscriptionIdentifier, 42);
    assert.ok(got.find((m) => m.topic === 'v5/aliased'));
    assert.ok(!got.some((m) => m.topic === 'own/x'), 'no-local honoured');
  });

  it('publishes client connected/disconnected events under $SYS/brokers/<id>/clients/', async () => {
    const watcher = await connect(after, b.ports.mqttPort!, { username: 'alice', password: 'alice-pw' });
    const got = collect(watcher);
    await watcher.subscribeAsync('$SYS/brokers/itest/clients/+/+', { qos: 0 });
    const c = await connect(after, b.ports.mqttPort!, {
      username: 'bob',
      password: 'bob-pw',
      clientId: 'evented',
    });
    await c.endAsync();
    await waitFor('connected event', () =>
      got.find(
        (m) =>
          m.topic === '$SYS/brokers/itest/clients/evented/connected' &&
          JSON.parse(m.payload).username === 'bob',
      ),
    );
    await waitFor('disconnected event', () =>
      got.find((m) => m.topic === '$SYS/brokers/itest/clients/evented/disconnected'),
    );
  });

  it('a persistent shared-subscription member that reconnects keeps its seat (no duplicates)', async () => {
    const o = (id: string) => ({ clientId: id, clean: false, username: 'alice', password: 'alice-pw' });
    const s1 = await connect(after, b.ports.mqttPort!, o('seat-1'));
    const s2 = await connect(after, b.ports.mqttPort!, o('seat-2'));
    await s1.subscribeAsync('$share/seats/seat/+', { qos: 1 });
    await s2.subscribeAsync('$share/seats/seat/+', { qos: 1 });
    await s1.endAsync();
    const again = await connect(after, b.ports.mqttPort!, o('seat-1'));
    const got1 = collect(again);
    const got2 = collect(s2);
    const pub = await connect(after, b.ports.mqttPort!, { username: 'bob', password: 'bob-pw' });
    for (let i = 0; i < 6; i++) await pub.publishAsync(`seat/${i}`, String(i), { qos: 1 });
    await waitFor('6 deliveries', () => got1.length + got2.length >= 6);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(got1.length + got2.length, 6, `${got1.length} + ${got2.length}`);
    assert.ok(got1.length > 0 && got2.length > 0);
  });

  it('MQTT 3.1.1 client connects and round-trips', async () => {
    const c = await connect(after, b.ports.mqttPort!, {
      protocolVersion: 4,
      username: 'bob',
      password: 'bob-pw',
    });
    const got = collect(c);
    await c.subscribeAsync('v4/#', { qos: 2 });
    await c.publishAsync('v4/x', 'y', { qos: 2 });
    await waitFor('message', () => got.find((m) => m.topic === 'v4/x' && m.payload === 'y'));
  });
});

describe('TLS client certificates', () => {
  it('requires a client certificate signed by the CA when configured', async () => {
    const mtls = await testBroker(after, {
      mqttPort: -1,
      wsPort: -1,
      httpPort: -1,
      tlsPort: 0,
      tlsCert: certs.cert,
      tlsKey: certs.key,
      tlsCa: certs.ca,
      tlsRequireClientCert: true,
      allowAnonymous: true,
    });
    const net = ['-h', '127.0.0.1', '-p', String(mtls.ports.tlsPort), '--cafile', certs.ca];
    const without = await run('mosquitto_pub', [...net, '-t', 'x', '-m', 'y']);
    assert.notEqual(without.code, 0);
    const withCert = await run('mosquitto_pub', [
      ...net,
      '--cert',
      certs.clientCert,
      '--key',
      certs.clientKey,
      '-t',
      'x',
      '-m',
      'y',
    ]);
    assert.equal(withCert.code, 0, withCert.stderr);
  });
});
