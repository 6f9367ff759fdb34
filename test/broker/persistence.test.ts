// Persistence and clustering: a persistent QoS 1 subscriber loses nothing across a broker restart
// (embedded LevelDB store), and two broker processes sharing a real redis-server deliver across
// each other.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it, after as rootAfter } from 'node:test';
import mqtt from 'mqtt';
import { startBroker } from '../../broker/server.js';
import { cliArgv } from '../support/cli.js';
import { cleanupList, collect, connect, freePort, start, startRedis, tempDir, waitFor } from './helpers.js';

const after = cleanupList(rootAfter);

describe('embedded store', () => {
  it('a persistent QoS 1 subscriber loses nothing across a broker restart', {
    timeout: 120_000,
  }, async () => {
    const dir = tempDir(after);
    const port = await freePort();
    const cfg = {
      host: '127.0.0.1',
      mqttPort: port,
      wsPort: -1,
      tlsPort: -1,
      httpPort: -1,
      allowAnonymous: true,
      dataDir: path.join(dir, 'store'),
      flappingMaxCount: 0,
    };
    let broker = await startBroker(cfg);
    after(() => broker.close());
    const url = `mqtt://127.0.0.1:${port}`;
    const subOpts = {
      clientId: 'persistent-sub',
      clean: false,
      reconnectPeriod: 200,
      protocolVersion: 4 as const,
    };
    let sub = await mqtt.connectAsync(url, subOpts);
    const got = new Set<number>();
    const listen = (c: mqtt.MqttClient) => c.on('message', (_t, p) => got.add(Number(p.toString())));
    listen(sub);
    await sub.subscribeAsync('stream/#', { qos: 1 });
    const pub = await mqtt.connectAsync(url, { clientId: 'publisher', reconnectPeriod: 200 });
    after(() => pub.endAsync(true));
    const N = 150;
    for (let i = 1; i <= N; i++) {
      if (i === 50) {
        // restart mid-stream: the subscriber is online, the publisher keeps going
        await broker.close();
        broker = await startBroker(cfg);
      }
      if (i === 100) {
        // the subscriber goes away; its session (and queue) must survive the next restart
        await sub.endAsync();
      }
      if (i === 120) {
        await broker.close();
        broker = await startBroker(cfg);
      }
      await pub.publishAsync(`stream/${i}`, String(i), { qos: 1 });
    }
    sub = await mqtt.connectAsync(url, subOpts);
    after(() => sub.endAsync(true));
    listen(sub);
    await waitFor(`all ${N} messages`, () => got.size === N, 30_000).catch((err) => {
      const missing = Array.from({ length: N }, (_, i) => i + 1).filter((i) => !got.has(i));
      throw new Error(`${(err as Error).message}; missing ${missing.join(',')}`);
    });
  });
});

describe('redis cluster', () => {
  it('two broker processes on one redis-server deliver across each other', { timeout: 120_000 }, async () => {
    const redisUrl = await startRedis(after);
    const dir = tempDir(after);
    const replicas = [];
    for (const id of ['replica-a', 'replica-b']) {
      const portsFile = path.join(dir, `${id}.json`);
      const [cmd, args] = cliArgv([
        'broker',
        '--allow-anonymous',
        '--host',
        '127.0.0.1',
        '--mqtt-port',
        '0',
        '--ws-port',
        '-1',
        '--tls-port',
        '-1',
        '--http-port',
        '0',
        '--redis-url',
        redisUrl,
        '--broker-id',
        id,
        '--ports-file',
        portsFile,
      ]);
      const child = start(after, cmd, args);
      const ports = await waitFor(
        `${id} ports`,
        () => {
          try {
            return JSON.parse(readFileSync(portsFile, 'utf8')) as { mqttPort: number; httpPort: number };
          } catch {
            return null;
          }
        },
        60_000,
      );
      replicas.push({ child, ports });
    }
    const [a, b] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
    const onA = await connect(after, a.ports.mqttPort, { clientId: 'on-a' });
    const onB = await connect(after, b.ports.mqttPort, { clientId: 'on-b' });
    const gotA = collect(onA);
    const gotB = collect(onB);
    await onA.subscribeAsync('cluster/#', { qos: 1 });
    await onB.subscribeAsync('cluster/#', { qos: 1 });
    // the subscription is announced over redis; retry until the other replica routes to it
    await waitFor(
      'B → A',
      async () => {
        await onB.publishAsync('cluster/from-b', 'hi', { qos: 1 });
        return gotA.find((m) => m.topic === 'cluster/from-b');
      },
      30_000,
    );
    await onA.publishAsync('cluster/from-a', 'hello', { qos: 1 });
    await waitFor(
      'A → B',
      () => gotB.find((m) => m.topic === 'cluster/from-a' && m.payload === 'hello'),
      30_000,
    );
    // retained messages live in redis, visible from the other replica
    await onA.publishAsync('retained/r', 'kept', { qos: 1, retain: true });
    const late = await connect(after, b.ports.mqttPort, { clientId: 'late' });
    const gotLate = collect(late);
    await late.subscribeAsync('retained/#', { qos: 1 });
    await waitFor('retained via redis', () => gotLate.find((m) => m.payload === 'kept' && m.retain), 30_000);
    for (const r of replicas) r.child.kill('SIGTERM');
    await Promise.all(replicas.map((r) => waitFor('replica exit', () => r.child.closed(), 20_000)));
    assert.deepEqual(
      replicas.map((r) => r.child.exitCode),
      [0, 0],
    );
  });
});
