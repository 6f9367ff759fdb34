// Fuzzes the TCP listener for a bounded time (BROKER_FUZZ_SECONDS, default 20) with random bytes
// and mutated valid MQTT frames from several sockets at once, while a well-behaved client keeps
// publishing and receiving QoS 1: the broker must stay up and the client must lose nothing.
import assert from 'node:assert/strict';
import net from 'node:net';
import { it, after as rootAfter } from 'node:test';
import { connectFrame, gen } from './frames.js';
import { cleanupList, collect, connect, testBroker, waitFor } from './helpers.js';

const after = cleanupList(rootAfter);
const SECONDS = Number(process.env.BROKER_FUZZ_SECONDS ?? 20);
const SEED = Number(process.env.BROKER_FUZZ_SEED ?? Date.now() % 2 ** 31);

/** mulberry32: a seeded PRNG so a failing run can be replayed with BROKER_FUZZ_SEED. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function valid(rand: () => number, v: number): Buffer[] {
  const topic = ['a/b', 'x', 'fuzz/+/y', '#', '$SYS/x', 'cpuburst/v1/nodes/n1/decisions'][
    Math.floor(rand() * 6)
  ]!;
  const pubTopic = topic.replace(/[+#]/g, 'z');
  const id = 1 + Math.floor(rand() * 65000);
  return [
    gen(
      {
        cmd: 'publish',
        topic: pubTopic,
        payload: Buffer.alloc(Math.floor(rand() * 200), 7),
        qos: Math.floor(rand() * 3),
        messageId: id,
        retain: rand() < 0.1,
      },
      v,
    ),
    gen({ cmd: 'subscribe', messageId: id, subscriptions: [{ topic, qos: Math.floor(rand() * 3) }] }, v),
    gen({ cmd: 'unsubscribe', messageId: id, unsubscriptions: [topic] }, v),
    gen({ cmd: 'pingreq' }, v),
    gen({ cmd: 'pubrel', messageId: id }, v),
    gen({ cmd: 'puback', messageId: id }, v),
    connectFrame(`dup-${id}`, v),
  ];
}

function mutate(rand: () => number, frame: Buffer): Buffer {
  const b = Buffer.from(frame);
  switch (Math.floor(rand() * 5)) {
    case 0: // flip bits
      for (let i = 0; i < 1 + rand() * 4; i++)
        b[Math.floor(rand() * b.length)]! ^= 1 << Math.floor(rand() * 8);
      return b;
    case 1: // truncate
      return b.subarray(0, Math.floor(rand() * b.length));
    case 2: // lie about the remaining length
      if (b.length > 1) b[1] = Math.floor(rand() * 256);
      return b;
    case 3: // random packet type / flags
      b[0] = Math.floor(rand() * 256);
      return b;
    default: // splice random bytes in
      return Buffer.concat([
        b.subarray(0, 2),
        Buffer.from(Array.from({ length: Math.floor(rand() * 32) }, () => Math.floor(rand() * 256))),
        b.subarray(2),
      ]);
  }
}

async function fuzzSocket(
  port: number,
  rand: () => number,
  counts: { packets: number; connections: number },
): Promise<void> {
  const sock = net.connect(port, '127.0.0.1');
  counts.connections++;
  await new Promise<void>((resolve) => {
    sock.once('connect', () => resolve());
    sock.once('error', () => resolve());
  });
  sock.on('error', () => undefined);
  sock.on('data', () => undefined);
  const v = rand() < 0.5 ? 4 : 5;
  const mode = rand();
  const frames: Buffer[] = [];
  if (mode < 0.2) {
    frames.push(
      Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 512) }, () => Math.floor(rand() * 256))),
    );
  } else {
    frames.push(
      mode < 0.35
        ? mutate(rand, connectFrame(`fz${Math.floor(rand() * 1e9)}`, v))
        : connectFrame(`fz${Math.floor(rand() * 1e9)}`, v),
    );
    const n = 1 + Math.floor(rand() * 20);
    for (let i = 0; i < n; i++) {
      const pool = valid(rand, v);
      const f = pool[Math.floor(rand() * pool.length)]!;
      frames.push(rand() < 0.6 ? mutate(rand, f) : f);
    }
  }
  for (const f of frames) {
    if (sock.destroyed) break;
    sock.write(f);
    counts.packets++;
  }
  await new Promise((r) => setTimeout(r, rand() * 20));
  sock.destroy();
}

it(`survives ${SECONDS} s of random and mutated MQTT frames (seed ${SEED})`, {
  timeout: (SECONDS + 60) * 1000,
}, async () => {
  const b = await testBroker(after, { allowAnonymous: true, connRate: 0, httpPort: -1, wsPort: -1 });
  const port = b.ports.mqttPort!;
  const good = await connect(after, port, { clientId: 'well-behaved', protocolVersion: 5 });
  const got = collect(good);
  await good.subscribeAsync('good/#', { qos: 1 });
  const rand = prng(SEED);
  const counts = { packets: 0, connections: 0 };
  const end = Date.now() + SECONDS * 1000;
  let sent = 0;
  const goodLoop = (async () => {
    while (Date.now() < end) {
      await good.publishAsync(`good/${sent}`, String(sent), { qos: 1 });
      sent++;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const workers = Array.from({ length: 4 }, async () => {
    while (Date.now() < end) await fuzzSocket(port, rand, counts);
  });
  await Promise.all([goodLoop, ...workers]);
  await waitFor('all good messages', () => got.length >= sent, 20_000);
  assert.deepEqual(
    got.map((m) => m.payload),
    Array.from({ length: sent }, (_, i) => String(i)),
  );
  assert.ok(good.connected, 'the well-behaved client is still connected');
  // The broker still accepts fresh clients.
  const fresh = await connect(after, port, { clientId: 'after-fuzz' });
  assert.ok(fresh.connected);
  console.log(
    JSON.stringify({
      fuzzSeconds: SECONDS,
      seed: SEED,
      packets: counts.packets,
      connections: counts.connections,
      goodMessages: sent,
    }),
  );
  assert.ok(counts.packets > 1000, `only ${counts.packets} frames sent`);
});
