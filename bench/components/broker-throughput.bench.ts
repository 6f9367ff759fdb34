// Broker throughput and latency: QoS 0 and QoS 1 messages/s (one publisher, one subscriber), p50/p99
// end-to-end latency at a steady rate, and 1,000 concurrent connections (connect time, fan-out).
// The broker runs as a real `cpuburst broker` process; prints one JSON object.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { cliArgv } from '../../test/support/cli.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'cpuburst-broker-bench-'));
const portsFile = path.join(dir, 'ports.json');
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
  '-1',
  '--data-dir',
  'memory',
  '--conn-rate',
  '0',
  '--flapping-max-count',
  '0',
  '--log-level',
  'warn',
  '--ports-file',
  portsFile,
]);
const broker = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });

async function waitPorts(): Promise<number> {
  for (let i = 0; i < 600; i++) {
    try {
      return (JSON.parse(readFileSync(portsFile, 'utf8')) as { mqttPort: number }).mqttPort;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error('broker did not start');
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function throughput(url: string, qos: 0 | 1, n: number, deadlineMs: number) {
  const sub = await mqtt.connectAsync(url, { clientId: `bench-sub-${qos}` });
  const pub = await mqtt.connectAsync(url, { clientId: `bench-pub-${qos}` });
  await sub.subscribeAsync(`bench/q${qos}`, { qos });
  let got = 0;
  const done = new Promise<void>((resolve) => {
    sub.on('message', () => {
      if (++got === n) resolve();
    });
  });
  const payload = Buffer.alloc(64, 1);
  const t0 = performance.now();
  if (qos === 0) {
    for (let i = 0; i < n; i++) {
      pub.publish(`bench/q${qos}`, payload, { qos });
      if (i % 500 === 0) await new Promise((r) => setImmediate(r)); // let the socket drain
    }
  } else {
    const window = 200; // in-flight QoS 1 publishes
    let next = 0;
    await Promise.all(
      Array.from({ length: window }, async () => {
        while (next < n) {
          next++;
          await pub.publishAsync(`bench/q${qos}`, payload, { qos });
        }
      }),
    );
  }
  await Promise.race([done, new Promise((r) => setTimeout(r, deadlineMs))]);
  const secs = (performance.now() - t0) / 1000;
  await Promise.all([sub.endAsync(true), pub.endAsync(true)]);
  return { messages: n, received: got, seconds: Number(secs.toFixed(2)), msgsPerSec: Math.round(got / secs) };
}

async function latency(url: string, n: number, perSecond: number) {
  const sub = await mqtt.connectAsync(url, { clientId: 'lat-sub' });
  const pub = await mqtt.connectAsync(url, { clientId: 'lat-pub' });
  await sub.subscribeAsync('bench/lat', { qos: 1 });
  const lat: number[] = [];
  sub.on('message', (_t, p) => lat.push(performance.now() - p.readDoubleLE(0)));
  for (let i = 0; i < n; i++) {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(performance.now());
    pub.publish('bench/lat', b, { qos: 1 });
    await new Promise((r) => setTimeout(r, 1000 / perSecond));
  }
  await new Promise((r) => setTimeout(r, 500));
  await Promise.all([sub.endAsync(true), pub.endAsync(true)]);
  lat.sort((a, b) => a - b);
  return {
    messages: n,
    received: lat.length,
    ratePerSec: perSecond,
    p50Ms: Number(pct(lat, 50).toFixed(2)),
    p99Ms: Number(pct(lat, 99).toFixed(2)),
    maxMs: Number(lat[lat.length - 1]!.toFixed(2)),
  };
}

async function manyConnections(url: string, count: number) {
  const clients: MqttClient[] = [];
  const t0 = performance.now();
  const batch = 100;
  for (let i = 0; i < count; i += batch) {
    const group = await Promise.all(
      Array.from({ length: Math.min(batch, count - i) }, (_, j) =>
        mqtt.connectAsync(url, { clientId: `many-${i + j}`, reconnectPeriod: 0, keepalive: 120 }),
      ),
    );
    clients.push(...group);
  }
  const connectSecs = (performance.now() - t0) / 1000;
  await Promise.all(clients.map((c) => c.subscribeAsync('bench/fanout', { qos: 0 })));
  let got = 0;
  const all = new Promise<void>((resolve) => {
    for (const c of clients) {
      c.on('message', () => {
        if (++got === count) resolve();
      });
    }
  });
  const t1 = performance.now();
  clients[0]!.publish('bench/fanout', 'x', { qos: 0 });
  await Promise.race([all, new Promise((r) => setTimeout(r, 20_000))]);
  const fanoutMs = performance.now() - t1;
  await Promise.all(clients.map((c) => c.endAsync(true)));
  return {
    connections: clients.length,
    connectSeconds: Number(connectSecs.toFixed(2)),
    fanoutDelivered: got,
    fanoutMs: Number(fanoutMs.toFixed(1)),
  };
}

try {
  const port = await waitPorts();
  const url = `mqtt://127.0.0.1:${port}`;
  const qos0 = await throughput(url, 0, 50_000, 30_000);
  const qos1 = await throughput(url, 1, 20_000, 30_000);
  const lat = await latency(url, 2000, 500);
  const many = await manyConnections(url, 1000);
  process.stdout.write(
    `${JSON.stringify({ bench: 'broker-throughput', node: process.version, cpus: os.cpus().length, qos0, qos1, latencyQos1: lat, many })}\n`,
  );
} finally {
  broker.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
