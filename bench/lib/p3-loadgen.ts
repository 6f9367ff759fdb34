// The broker bench's load generator (P3): several Node processes (bench/lib/p3-worker.ts) with raw
// MQTT sockets, so the generator is not the bottleneck; the same generator drives both brokers.
// This side forks the workers, sends them commands and turns their replies into figures.
import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nowUs } from './p3-mqtt.js';
import type { ClientSpec, CollectReply, ConnectReply, PublishReply, WorkerCommand } from './p3-worker.js';

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'p3-worker.ts');

export class GenWorker {
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private constructor(readonly child: ChildProcess) {
    child.on('message', (m: { reqId?: number; ok?: boolean; value?: unknown; error?: string }) => {
      if (m.reqId === undefined) return;
      const p = this.pending.get(m.reqId);
      this.pending.delete(m.reqId);
      if (m.ok) p?.resolve(m.value);
      else p?.reject(new Error(`load generator: ${m.error}`));
    });
    child.on('exit', (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`load generator exited (${code ?? signal})`));
      this.pending.clear();
    });
  }

  static start(): Promise<GenWorker> {
    const child = fork(WORKER, [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`load generator exited at start (${code})`)));
      child.once('message', () => resolve(new GenWorker(child)));
    });
  }

  call<T>(cmd: WorkerCommand): Promise<T> {
    const reqId = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(reqId, { resolve, reject });
      this.child.send({ reqId, cmd });
    });
  }

  connect(o: {
    host: string;
    port: number;
    clients: ClientSpec[];
    clean?: boolean;
    keepalive?: number;
    localAddress?: string;
    concurrency?: number;
    deadlineMs?: number;
  }): Promise<ConnectReply> {
    return this.call({
      op: 'connect',
      host: o.host,
      port: o.port,
      clients: o.clients,
      clean: o.clean ?? true,
      keepalive: o.keepalive ?? 300,
      localAddress: o.localAddress,
      concurrency: o.concurrency ?? 32,
      deadlineMs: o.deadlineMs ?? 30_000,
    });
  }

  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/** CPU used by each worker between two snapshots, as a fraction of one core. */
export class CpuMeter {
  private before: { cpuUs: number; atUs: number }[] = [];
  constructor(private readonly workers: GenWorker[]) {}
  async start(): Promise<void> {
    this.before = await Promise.all(
      this.workers.map((w) => w.call<{ cpuUs: number; atUs: number }>({ op: 'cpu' })),
    );
  }
  async stop(): Promise<number[]> {
    const after = await Promise.all(
      this.workers.map((w) => w.call<{ cpuUs: number; atUs: number }>({ op: 'cpu' })),
    );
    return after.map((a, i) => {
      const b = this.before[i]!;
      return (a.cpuUs - b.cpuUs) / Math.max(1, a.atUs - b.atUs);
    });
  }
}

export interface FlowResult {
  sent: number;
  acked: number;
  received: number;
  /** Deliveries per second at the subscribers, counted inside the measuring window. */
  msgsPerSec: number;
  latencyUs: Float64Array;
  generatorCpu: number[];
}

/**
 * One flow: the publisher workers publish for `durationMs` (flood or fixed rate) while the
 * subscriber workers count arrivals; arrivals inside [warmupMs, durationMs) make msgs/s.
 */
export async function runFlow(o: {
  pubs: GenWorker[];
  subs: GenWorker[];
  qos: 0 | 1;
  topic: string;
  mode: 'flood' | 'rate';
  ratePerClient?: number;
  window?: number;
  payloadBytes?: number;
  durationMs: number;
  warmupMs: number;
  latency: boolean;
  /** Longest wait for deliveries still in the broker or in socket buffers after publishing ends. */
  drainMs?: number;
}): Promise<FlowResult> {
  const bucketMs = 50;
  const t0Us = nowUs() + 100_000;
  const all = [...new Set([...o.pubs, ...o.subs])];
  await Promise.all(
    o.subs.map((w) =>
      w.call({ op: 'receive', t0Us, bucketMs, maxMs: o.durationMs + 60_000, latency: o.latency }),
    ),
  );
  const cpu = new CpuMeter(all);
  await cpu.start();
  const pubReplies = await Promise.all(
    o.pubs.map((w) =>
      w.call<PublishReply>({
        op: 'publish',
        t0Us,
        durationMs: o.durationMs,
        qos: o.qos,
        topic: o.topic,
        payloadBytes: o.payloadBytes ?? 64,
        mode: o.mode,
        ratePerClient: o.ratePerClient ?? 0,
        window: o.window ?? 20,
      }),
    ),
  );
  const generatorCpu = await cpu.stop();
  // Let deliveries still queued (broker, socket buffers) arrive until the count stops moving.
  const drainEnd = Date.now() + (o.drainMs ?? 5000);
  let last = -1;
  while (Date.now() < drainEnd) {
    await new Promise((r) => setTimeout(r, 150));
    const counts = await Promise.all(o.subs.map((w) => w.call<{ received: number }>({ op: 'count' })));
    const n = counts.reduce((a, c) => a + c.received, 0);
    if (n === last) break;
    last = n;
  }
  const got = await Promise.all(o.subs.map((w) => w.call<CollectReply>({ op: 'collect' })));
  const from = Math.floor(o.warmupMs / bucketMs);
  const to = Math.floor(o.durationMs / bucketMs);
  let windowCount = 0;
  for (const g of got) for (let b = from; b < to && b < g.buckets.length; b++) windowCount += g.buckets[b]!;
  const latency = new Float64Array(got.reduce((n, g) => n + g.latencyUs.length, 0));
  let at = 0;
  for (const g of got) {
    latency.set(g.latencyUs, at);
    at += g.latencyUs.length;
  }
  latency.sort();
  return {
    sent: pubReplies.reduce((n, r) => n + r.sent, 0),
    acked: pubReplies.reduce((n, r) => n + r.acked, 0),
    received: got.reduce((n, g) => n + g.received, 0),
    msgsPerSec: windowCount / ((to - from) * (bucketMs / 1000)),
    latencyUs: latency,
    generatorCpu,
  };
}

/** Percentile of an ascending array (nearest rank). */
export function percentile(sorted: ArrayLike<number>, p: number): number | null {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
