// The demo's latency benchmark: runs `cpuburst demo --json` on real cgroups and asserts what the
// demo claims — with a CpuBurstStrategy the service's p99 drops and throttled periods drop.
// Prints one JSON object (the figures); exits 1 when the claims do not hold. Bounded: ~90 s.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const duration = Number(process.env.DEMO_BENCH_DURATION ?? 20);

if (!fs.existsSync('/sys/fs/cgroup/cpu/cpu.cfs_quota_us') || process.getuid?.() !== 0) {
  process.stdout.write(
    `${JSON.stringify({ bench: 'demo-latency', skipped: 'needs root and a cgroup v1 cpu controller' })}\n`,
  );
  process.exit(0);
}

const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-demo-bench-'));
const child = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    path.join(ROOT, 'cli.ts'),
    'demo',
    '--json',
    '--no-neighbour',
    '--duration',
    String(duration),
    '--warmup',
    '5',
    '--out-dir',
    out,
    '--work-dir',
    path.join(out, 'work'),
  ],
  { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
);
let stdout = '';
child.stdout.on('data', (d) => {
  stdout += d;
});
const killer = setTimeout(() => child.kill('SIGINT'), 110000);
const code: number | null = await new Promise((r) => child.once('exit', r));
clearTimeout(killer);
if (code !== 0) {
  fs.rmSync(out, { recursive: true, force: true });
  process.stdout.write(`${JSON.stringify({ bench: 'demo-latency', error: `demo exited with ${code}` })}\n`);
  process.exit(1);
}
const res = JSON.parse(stdout.trim().split('\n').pop()!);
const [a, b] = res.phases;
const figures = {
  bench: 'demo-latency',
  machine: res.machine,
  loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
  workload: res.workload,
  before: { ...a.latencyMs, throttledRatio: a.throttling.throttledRatio, meanCpuCores: a.meanCpuCores },
  after: { ...b.latencyMs, throttledRatio: b.throttling.throttledRatio, meanCpuCores: b.meanCpuCores },
  p99ChangePercent: Math.round(((b.latencyMs.p99 - a.latencyMs.p99) / a.latencyMs.p99) * 1000) / 10,
};
fs.rmSync(out, { recursive: true, force: true });
const checks = {
  p99Dropped: b.latencyMs.p99 < a.latencyMs.p99,
  throttlingDropped: b.throttling.throttledRatio < a.throttling.throttledRatio,
};
process.stdout.write(`${JSON.stringify({ ...figures, checks })}\n`);
process.exit(Object.values(checks).every(Boolean) ? 0 : 1);
