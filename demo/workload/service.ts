// The demo's latency-sensitive service: Poisson arrivals, each request a CPU-bound burst of work
// measured in CPU time (process.cpuUsage), so throttling shows up as latency and not as less work.
// Latency = scheduled arrival → completion, queueing included (no coordinated omission).
// One JSON line per second: {ts, count, p50, p90, p99, max, mean, latenciesMs}.
import fs from 'node:fs';
import { type FlagSpec, parseFlags } from '../../common/flags.js';
import { poissonGapMs, summarize } from './stats.js';

export const workloadFlags: FlagSpec[] = [
  { name: 'rate', type: 'string', default: '20', help: 'mean request arrivals per second (Poisson)' },
  { name: 'work-ms', type: 'string', default: '12', help: 'CPU time each request burns, ms' },
  { name: 'out', type: 'string', default: '', help: 'append JSON lines here (default stdout)' },
  { name: 'duration', type: 'int', default: 0, help: 'stop after this many seconds (0 = forever)' },
  {
    name: 'seed',
    type: 'int',
    default: 0,
    help: 'seed of the arrival times (0 = random); the same seed replays the same arrivals (benchmarks)',
  },
];

/** mulberry32: a small seeded PRNG in [0,1), so runs with one seed see the same arrivals. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function burnCpu(ms: number): void {
  const start = process.cpuUsage();
  let x = 0;
  for (;;) {
    for (let i = 0; i < 20000; i++) x = (x * 1664525 + 1013904223) % 4294967296;
    const d = process.cpuUsage(start);
    if ((d.user + d.system) / 1000 >= ms) break;
  }
  if (x === -1) process.stdout.write(''); // keeps the loop from being optimised away
}

export async function runService(argv: string[]): Promise<void> {
  const { values: v } = parseFlags(workloadFlags, argv);
  const rate = Number(v.rate);
  const workMs = Number(v.workMs);
  const durationS = Number(v.duration);
  if (!(rate > 0) || !(workMs > 0)) throw new Error('--rate and --work-ms must be positive numbers');
  const random = Number(v.seed) ? seededRandom(Number(v.seed)) : Math.random;
  const out = v.out ? String(v.out) : '';
  const emit = (line: object) => {
    const s = `${JSON.stringify(line)}\n`;
    if (out) fs.appendFileSync(out, s);
    else process.stdout.write(s);
  };
  // JIT warm-up before the arrival clock starts, so the first requests do not queue behind it.
  for (let i = 0; i < 5; i++) burnCpu(workMs);
  const t0 = performance.now();
  const epoch0 = Date.now();
  let nextArrival = t0 + poissonGapMs(rate, random());
  let window: number[] = [];
  let windowStart = t0;
  const flush = (now: number) => {
    const s = summarize(window);
    emit({
      ts: Math.round(epoch0 + (now - t0)),
      ...s,
      latenciesMs: window.map((x) => Math.round(x * 100) / 100),
    });
    window = [];
    windowStart = now;
  };
  let stop = false;
  process.once('SIGTERM', () => {
    stop = true;
  });
  process.once('SIGINT', () => {
    stop = true;
  });
  // Single server, FIFO: serve every arrival that is due, then sleep until the next one.
  while (!stop) {
    const now = performance.now();
    if (durationS > 0 && now - t0 > durationS * 1000) break;
    if (now >= nextArrival) {
      burnCpu(workMs);
      const done = performance.now();
      window.push(done - nextArrival);
      nextArrival += poissonGapMs(rate, random());
    } else {
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(nextArrival - now, 50))));
    }
    const t = performance.now();
    if (t - windowStart >= 1000) flush(t);
  }
  flush(performance.now());
}
