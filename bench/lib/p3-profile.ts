// Profiles `cpuburst broker` (node --cpu-prof) under one P3 load and prints the top self-time
// frames, so a missed P3 goal comes with what the broker spends its CPU on.
//   node --import tsx bench/lib/p3-profile.ts [q0|q1|connect] [seconds] [memory|level]
// `level` = LevelDB store and persistent sessions (clean=false), as the bench's persistence rows.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { killAllBrokers, startCpuburst } from './p3-brokers.js';
import { GenWorker } from './p3-loadgen.js';
import { nowUs } from './p3-mqtt.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** Self time per function (share of all samples), largest first. */
export function topFrames(file: string, n = 25): { share: number; frame: string }[] {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
  };
  const self = new Map<number, number>();
  prof.samples.forEach((id, i) => {
    self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
  });
  const byFrame = new Map<string, number>();
  let total = 0;
  for (const node of prof.nodes) {
    const t = self.get(node.id) ?? 0;
    total += t;
    const cf = node.callFrame;
    const where = cf.url.replace(/.*node_modules\//, '').replace(/.*\/(dist|work\/main)\//, '');
    const key = where ? `${cf.functionName || '(anonymous)'} ${where}:${cf.lineNumber + 1}` : cf.functionName;
    byFrame.set(key, (byFrame.get(key) ?? 0) + t);
  }
  return [...byFrame]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([frame, t]) => ({ share: Math.round((1000 * t) / Math.max(1, total)) / 10, frame }));
}

export type ProfileLoad = 'q0' | 'q1' | 'connect';

/**
 * Runs one load against a `cpuburst broker --cpu-prof` and returns what it did and its top
 * self-time frames. Uses the given (idle) generator workers, or starts three of its own.
 */
export async function profileBroker(o: {
  load: ProfileLoad;
  seconds: number;
  level?: boolean;
  workers?: GenWorker[];
}): Promise<{ summary: string; frames: { share: number; frame: string }[] }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cpuburst-p3-profile-'));
  const own: GenWorker[] = [];
  let b: Awaited<ReturnType<typeof startCpuburst>> | undefined;
  try {
    b = await startCpuburst({
      dir,
      name: 'profiled',
      dataDir: o.level ? path.join(dir, 'db') : 'memory',
      nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir],
    });
    if (!o.workers) own.push(...(await Promise.all([0, 1, 2].map(() => GenWorker.start()))));
    const [w0, w1, w2] = (o.workers ?? own) as [GenWorker, GenWorker, GenWorker];
    const conn = { host: '127.0.0.1', port: b.port, clean: !o.level };
    let summary: string;
    if (o.load === 'connect') {
      const t0 = Date.now();
      const r = await Promise.all(
        [w0, w1].map((w, k) =>
          w.connect({
            ...conn,
            localAddress: `127.0.${200 + k}.${1 + (process.pid % 250)}`,
            clients: Array.from({ length: 3000 }, (_, i) => ({ clientId: `c${k}-${i}` })),
            concurrency: 50,
          }),
        ),
      );
      const held = r.reduce((n, x) => n + x.connected, 0);
      summary = `${held} connects in ${((Date.now() - t0) / 1000).toFixed(1)} s`;
    } else {
      const qos = o.load === 'q1' ? 1 : 0;
      await w0.connect({ ...conn, clients: [{ clientId: 'sub' }] });
      await w0.call({ op: 'subscribe', topic: 'bench/in/#', qos });
      for (const [w, p] of [
        [w1, 'a'],
        [w2, 'b'],
      ] as const) {
        await w.connect({
          ...conn,
          clients: Array.from({ length: 10 }, (_, i) => ({ clientId: `${p}${i}` })),
        });
      }
      const t0Us = nowUs() + 50_000;
      await w0.call({ op: 'receive', t0Us, bucketMs: 50, maxMs: o.seconds * 1000 + 30_000, latency: false });
      await Promise.all(
        [w1, w2].map((w) =>
          w.call({
            op: 'publish',
            t0Us,
            durationMs: o.seconds * 1000,
            qos,
            topic: 'bench/in/{id}',
            payloadBytes: 64,
            mode: 'flood',
            ratePerClient: 0,
            window: 20,
          }),
        ),
      );
      const { received } = await w0.call<{ received: number }>({ op: 'count' });
      summary = `QoS ${qos} fan-in flood, 20 publishers${o.level ? ', LevelDB, persistent sessions' : ''}: ${received} delivered in ${o.seconds} s`;
    }
    // publishers first: their unread backlog dies with them instead of being written to a closed subscriber
    for (const w of [w1, w2, w0]) await w.call({ op: 'close', reset: true });
    await b.stop(); // the profile is written at a clean exit
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error('no .cpuprofile written');
    return { summary, frames: topFrames(path.join(dir, file)) };
  } finally {
    for (const w of own) w.stop();
    await b?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const res = await profileBroker({
    load: (process.argv[2] ?? 'q0') as ProfileLoad,
    seconds: Number(process.argv[3] ?? 4),
    level: process.argv[4] === 'level',
  });
  process.stderr.write(`${res.summary}\n`);
  for (const f of res.frames) process.stdout.write(`${f.share.toFixed(1).padStart(5)} %  ${f.frame}\n`);
  killAllBrokers();
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) await main();
