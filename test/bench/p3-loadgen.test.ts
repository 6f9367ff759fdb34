// The broker bench's load generator (bench/lib/p3-*) against a real `cpuburst broker`: exact
// delivery counts and latencies at a fixed rate, and a QoS 0 flood whose only subscriber leaves
// mid-backlog — which used to overflow the stack in aedes' message queue and kill the broker.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { type BrokerProcess, killAllBrokers, startCpuburst } from '../../bench/lib/p3-brokers.js';
import { GenWorker, percentile, runFlow } from '../../bench/lib/p3-loadgen.js';
import { nowUs, RawClient } from '../../bench/lib/p3-mqtt.js';

let dir: string;
let broker: BrokerProcess;
let workers: GenWorker[] = [];

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'cpuburst-test-p3gen-'));
  broker = await startCpuburst({ dir, name: 'gen-test', dataDir: 'memory' });
  workers = await Promise.all([GenWorker.start(), GenWorker.start(), GenWorker.start()]);
});

after(async () => {
  for (const w of workers) w.stop();
  await broker?.stop();
  killAllBrokers();
  rmSync(dir, { recursive: true, force: true });
});

const conn = () => ({ host: '127.0.0.1', port: broker.port });

test('a fixed-rate QoS 1 fan-out delivers every message to every subscriber, with latencies', {
  timeout: 60_000,
}, async () => {
  const [w0, w1, w2] = workers as [GenWorker, GenWorker, GenWorker];
  for (const [w, k] of [
    [w0, 0],
    [w1, 1],
  ] as const) {
    const r = await w.connect({
      ...conn(),
      clients: [0, 1, 2].map((i) => ({ clientId: `rate-sub-${k}-${i}` })),
    });
    assert.equal(r.connected, 3);
    const { granted } = await w.call<{ granted: number[] }>({ op: 'subscribe', topic: 'gen/out', qos: 1 });
    assert.deepEqual(granted, [1, 1, 1]);
  }
  assert.equal((await w2.connect({ ...conn(), clients: [{ clientId: 'rate-pub' }] })).connected, 1);
  const t0 = nowUs();
  const res = await runFlow({
    pubs: [w2],
    subs: [w0, w1],
    qos: 1,
    topic: 'gen/out',
    mode: 'rate',
    ratePerClient: 100,
    durationMs: 1000,
    warmupMs: 0,
    latency: true,
    drainMs: 3000,
  });
  assert.ok(res.sent >= 80 && res.sent <= 100, `sent ${res.sent}`);
  assert.equal(res.acked, res.sent, 'every QoS 1 publish acknowledged');
  assert.equal(res.received, res.sent * 6);
  assert.equal(res.latencyUs.length, res.received);
  const p50 = percentile(res.latencyUs, 50)!;
  const p100 = percentile(res.latencyUs, 100)!;
  assert.ok(p50 > 0 && p50 <= p100 && p100 < nowUs() - t0, `p50 ${p50} max ${p100}`);
  await Promise.all(workers.map((w) => w.call({ op: 'close', reset: true })));
});

test('the broker survives a QoS 0 flood whose only subscriber leaves mid-backlog', {
  timeout: 60_000,
}, async () => {
  const [w0, w1, w2] = workers as [GenWorker, GenWorker, GenWorker];
  await w0.connect({ ...conn(), clients: [{ clientId: 'flood-sub' }] });
  await w0.call({ op: 'subscribe', topic: 'gen/in/#', qos: 0 });
  await w1.connect({ ...conn(), clients: [0, 1].map((i) => ({ clientId: `flood-a${i}` })) });
  await w2.connect({ ...conn(), clients: [0, 1].map((i) => ({ clientId: `flood-b${i}` })) });
  const t0Us = nowUs() + 50_000;
  await w0.call({ op: 'receive', t0Us, bucketMs: 50, maxMs: 10_000, latency: false });
  await Promise.all(
    [w1, w2].map((w) =>
      w.call({
        op: 'publish',
        t0Us,
        durationMs: 1500,
        qos: 0,
        topic: 'gen/in/{id}',
        payloadBytes: 64,
        mode: 'flood',
        ratePerClient: 0,
        window: 0,
      }),
    ),
  );
  const { received } = await w0.call<{ received: number }>({ op: 'count' });
  assert.ok(received > 0, 'the flood reached the subscriber');
  // leave while the broker and the socket buffers still hold the backlog
  await w0.call({ op: 'close', reset: true });
  await new Promise((r) => setTimeout(r, 2000));
  assert.ok(broker.rssBytes() > 0, 'broker process still running');
  const probe = await RawClient.connect({ ...conn(), clientId: 'after-flood', clean: true, keepalive: 30 });
  probe.reset();
  await Promise.all([w1, w2].map((w) => w.call({ op: 'close', reset: true })));
});
