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
    const key = `${cf.functionName || '(anonymous)'} ${where}${where ? `:${cf.lineNumber + 1}` : ''}`;
    byFrame.set(key, (byFrame.get(key) ?? 0) + t);
  }
  return [...byFrame]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([frame, t]) => ({ share: Math.round((1000 * t) / Math.max(1, total)) / 10, frame }));
}

async function main(): Promise<void> {
  const load = (process.argv[2] ?? 'q0') as 'q0' | 'q1' | 'connect';
  const seconds = Number(process.argv[3] ?? 4);
  const level = process.argv[4] === 'level';
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cpuburst-p3-profile-'));
  const workers: GenWorker[] = [];
  try {
    const b = await startCpuburst({
      dir,
      name: 'profiled',
      dataDir: level ? path.join(dir, 'db') : 'memory',
      nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir],
    });
    workers.push(...(await Promise.all([0, 1, 2].map(() => GenWorker.start()))));
    const [w0, w1, w2] = workers as [GenWorker, GenWorker, GenWorker];
    const conn = { host: '127.0.0.1', port: b.port, clean: !level };
    if (load === 'connect') {
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
      process.stderr.write(`connected ${r.reduce((n, x) => n + x.connected, 0)}\n`);
    } else {
      const qos = load === 'q1' ? 1 : 0;
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
      await w0.call({ op: 'receive', t0Us, bucketMs: 50, maxMs: seconds * 1000 + 30_000, latency: false });
      await Promise.all(
        [w1, w2].map((w) =>
          w.call({
            op: 'publish',
            t0Us,
            durationMs: seconds * 1000,
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
      process.stderr.write(`delivered ${received} in ${seconds} s\n`);
    }
    for (const w of workers) await w.call({ op: 'close', reset: true });
    await b.stop(); // the profile is written at a clean exit
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error('no .cpuprofile written');
    for (const f of topFrames(path.join(dir, file))) {
      process.stdout.write(`${f.share.toFixed(1).padStart(5)} %  ${f.frame}\n`);
    }
  } finally {
    for (const w of workers) w.stop();
    killAllBrokers();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) await main();
