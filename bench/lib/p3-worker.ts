// One load-generator process of the broker bench (P3), driven over IPC by bench/lib/p3-loadgen.ts.
// It holds raw MQTT clients (bench/lib/p3-mqtt.ts) and runs one of: connect, subscribe, publish
// (flood or fixed rate), receive/collect (arrival counts per time bucket and latencies), close.
import { setImmediate as yieldLoop } from 'node:timers/promises';
import { nowUs, type PublishTemplate, publishTemplate, RawClient, stampBatch } from './p3-mqtt.js';

export interface ClientSpec {
  clientId: string;
  username?: string;
  password?: string;
}

export type WorkerCommand =
  | {
      op: 'connect';
      host: string;
      port: number;
      localAddress?: string;
      clients: ClientSpec[];
      clean: boolean;
      keepalive: number;
      concurrency: number;
      deadlineMs: number;
    }
  | { op: 'subscribe'; topic: string; qos: 0 | 1 }
  | { op: 'receive'; t0Us: number; bucketMs: number; maxMs: number; latency: boolean }
  | { op: 'collect' }
  | { op: 'count' }
  | {
      op: 'publish';
      t0Us: number;
      durationMs: number;
      qos: 0 | 1;
      /** `{id}` is replaced by the client id. */
      topic: string;
      payloadBytes: number;
      /** flood: as fast as the socket (QoS 0) or the in-flight window (QoS 1) allows. */
      mode: 'flood' | 'rate';
      ratePerClient: number;
      window: number;
    }
  | { op: 'cpu' }
  | { op: 'close'; reset: boolean };

export interface ConnectReply {
  connected: number;
  failed: number;
  errors: Record<string, number>;
  seconds: number;
}
export interface PublishReply {
  sent: number;
  acked: number;
}
export interface CollectReply {
  received: number;
  buckets: number[];
  latencyUs: Float64Array;
}

const clients: RawClient[] = [];
const ids: string[] = [];
let receiving: {
  t0Us: number;
  bucketUs: number;
  buckets: Uint32Array;
  lat: number[] | null;
  n: number;
} | null = null;

async function connect(c: Extract<WorkerCommand, { op: 'connect' }>): Promise<ConnectReply> {
  const start = Date.now();
  const errors: Record<string, number> = {};
  let next = 0;
  let failed = 0;
  const lane = async () => {
    while (next < c.clients.length && Date.now() - start < c.deadlineMs) {
      const spec = c.clients[next++]!;
      try {
        const client = await RawClient.connect({
          host: c.host,
          port: c.port,
          localAddress: c.localAddress,
          clientId: spec.clientId,
          username: spec.username,
          password: spec.password,
          clean: c.clean,
          keepalive: c.keepalive,
          timeoutMs: Math.max(5000, c.deadlineMs - (Date.now() - start)),
        });
        clients.push(client);
        ids.push(spec.clientId);
      } catch (err) {
        failed++;
        const key = (err as Error).message.slice(0, 80);
        errors[key] = (errors[key] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(c.concurrency, c.clients.length) }, lane));
  failed += c.clients.length - next; // never attempted: deadline passed
  return { connected: clients.length, failed, errors, seconds: (Date.now() - start) / 1000 };
}

async function subscribe(topic: string, qos: 0 | 1): Promise<{ granted: number[] }> {
  const granted = await Promise.all(clients.map((c) => c.subscribe(topic, qos)));
  return { granted: granted.map((g) => g[0] ?? 0x80) };
}

function receive(c: Extract<WorkerCommand, { op: 'receive' }>): void {
  const r = {
    t0Us: c.t0Us,
    bucketUs: c.bucketMs * 1000,
    buckets: new Uint32Array(Math.ceil(c.maxMs / c.bucketMs)),
    lat: c.latency ? ([] as number[]) : null,
    n: 0,
  };
  receiving = r;
  const onPublish = (sentUs: number) => {
    const t = nowUs();
    r.n++;
    const b = Math.floor((t - r.t0Us) / r.bucketUs);
    if (b >= 0 && b < r.buckets.length) r.buckets[b]!++;
    r.lat?.push(t - sentUs);
  };
  for (const client of clients) client.onPublish = onPublish;
}

function collect(): CollectReply {
  const r = receiving;
  receiving = null;
  for (const client of clients) client.onPublish = null;
  if (!r) return { received: 0, buckets: [], latencyUs: new Float64Array(0) };
  return { received: r.n, buckets: [...r.buckets], latencyUs: Float64Array.from(r.lat ?? []) };
}

async function sleepUntil(us: number): Promise<void> {
  const ms = (us - nowUs()) / 1000;
  if (ms > 0) await new Promise((res) => setTimeout(res, ms));
}

async function publish(c: Extract<WorkerCommand, { op: 'publish' }>): Promise<PublishReply> {
  const endUs = c.t0Us + c.durationMs * 1000;
  let sent = 0;
  let acked = 0;
  await sleepUntil(c.t0Us);
  const runs = clients.map(async (client, k) => {
    const tpl: PublishTemplate = publishTemplate(c.topic.replace('{id}', ids[k]!), c.payloadBytes, c.qos);
    let id = 0;
    const nextId = () => (id = (id % 65535) + 1);
    let inflight = 0;
    let drained: (() => void) | null = null;
    client.onPuback = () => {
      inflight--;
      acked++;
      if (c.mode === 'flood') pump();
      if (inflight === 0 && drained) drained();
    };
    let pumpQueued = false;
    // QoS 1 flood: refill the in-flight window once per received chunk of PUBACKs.
    const pump = () => {
      if (pumpQueued) return;
      pumpQueued = true;
      process.nextTick(() => {
        pumpQueued = false;
        if (client.closed || nowUs() >= endUs) return;
        const k2 = c.window - inflight;
        if (k2 <= 0) return;
        inflight += k2;
        sent += k2;
        client.sock.write(stampBatch(tpl, k2, nextId));
      });
    };
    if (c.mode === 'flood' && c.qos === 1) {
      pump();
    } else if (c.mode === 'flood') {
      const batch = 50;
      while (nowUs() < endUs && !client.closed) {
        sent += batch;
        if (!client.sock.write(stampBatch(tpl, batch, nextId))) {
          await new Promise<void>((res) => {
            const done = () => {
              client.sock.off('drain', done);
              client.sock.off('close', done);
              res();
            };
            client.sock.on('drain', done);
            client.sock.on('close', done);
          });
        } else await yieldLoop();
      }
    } else {
      // Fixed rate, each client phase-shifted so the clients of one worker do not fire together.
      const phaseUs = (k / Math.max(1, clients.length)) * (1e6 / c.ratePerClient);
      let mine = 0;
      while (!client.closed) {
        const t = nowUs();
        if (t >= endUs) break;
        const due = Math.floor(((t - c.t0Us + phaseUs) / 1e6) * c.ratePerClient) - mine;
        if (due > 0) {
          mine += due;
          sent += due;
          inflight += c.qos ? due : 0;
          client.sock.write(stampBatch(tpl, due, nextId));
        }
        await new Promise((res) => setTimeout(res, 1));
      }
    }
    await sleepUntil(endUs);
    if (c.qos === 1 && inflight > 0 && !client.closed) {
      await Promise.race([
        new Promise<void>((res) => {
          drained = res;
        }),
        new Promise((res) => setTimeout(res, 5000)),
      ]);
    }
    client.onPuback = null;
  });
  await Promise.all(runs);
  return { sent, acked };
}

function close(reset: boolean): { closed: number } {
  const n = clients.length;
  for (const c of clients) {
    c.onPublish = null;
    c.onPuback = null;
    if (reset) c.reset();
    else c.end();
  }
  clients.length = 0;
  ids.length = 0;
  return { closed: n };
}

async function handle(cmd: WorkerCommand): Promise<unknown> {
  switch (cmd.op) {
    case 'connect':
      return connect(cmd);
    case 'subscribe':
      return subscribe(cmd.topic, cmd.qos);
    case 'receive':
      receive(cmd);
      return { ok: true };
    case 'collect':
      return collect();
    case 'count':
      return { received: receiving?.n ?? 0 };
    case 'publish':
      return publish(cmd);
    case 'cpu': {
      const u = process.cpuUsage();
      return { cpuUs: u.user + u.system, atUs: nowUs() };
    }
    case 'close':
      return close(cmd.reset);
  }
}

process.on('message', (msg: { reqId: number; cmd: WorkerCommand }) => {
  handle(msg.cmd).then(
    (value) => process.send?.({ reqId: msg.reqId, ok: true, value }),
    (err: Error) => process.send?.({ reqId: msg.reqId, ok: false, error: err.message }),
  );
});
// The parent going away (even killed) ends this worker: no orphan holding thousands of sockets.
process.on('disconnect', () => process.exit(0));
process.send?.({ ready: true });
