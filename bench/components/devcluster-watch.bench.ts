// Watch fan-out benchmark for the devcluster API emulator: a real `cpuburst devcluster` process,
// N raw watchers and M writes; prints one JSON object (events/s, fan-out latency, server RSS).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runWatchLoad } from '../../test/devcluster/watch-load.js';
import { spawnCli } from '../../test/support/cli.js';

const watchers = Number(process.env.WATCHERS ?? 1000);
const writes = Number(process.env.WRITES ?? 10_000);
const concurrency = Number(process.env.CONCURRENCY ?? 64);

function cpuSeconds(pid: number): number {
  // utime + stime (fields 14 and 15 of /proc/<pid>/stat), in clock ticks of 1/100 s.
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

function rssKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

const dir = mkdtempSync(path.join(tmpdir(), 'devcluster-bench-'));
const portsFile = path.join(dir, 'ports.json');
const child = spawnCli(['devcluster', '--port', '0', '--ports-file', portsFile, '--log-level', 'warn']);
try {
  let url = '';
  const deadline = Date.now() + 30_000;
  while (!url) {
    try {
      url = JSON.parse(readFileSync(portsFile, 'utf8')).url;
    } catch {
      if (Date.now() > deadline) throw new Error('devcluster did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const idleRss = rssKb(child.pid!, 'VmRSS');
  const cpu0 = cpuSeconds(child.pid!);
  const clientCpu0 = process.cpuUsage();
  const r = await runWatchLoad({ url, watchers, writes, concurrency, timeoutMs: 110_000 });
  process.stdout.write(
    `${JSON.stringify({
      bench: 'devcluster-watch',
      watchers,
      writes,
      writeConcurrency: concurrency,
      durationMs: r.durationMs,
      writesPerSec: r.writesPerSec,
      eventsDelivered: r.eventsDelivered,
      eventsPerSec: r.eventsPerSec,
      fanoutLatencyMs: { p50: r.fanoutP50Ms, p99: r.fanoutP99Ms, max: r.fanoutMaxMs },
      serverCpuSeconds: Number((cpuSeconds(child.pid!) - cpu0).toFixed(1)),
      clientCpuSeconds: Number(
        ((process.cpuUsage(clientCpu0).user + process.cpuUsage(clientCpu0).system) / 1e6).toFixed(1),
      ),
      serverRssBytes: { idle: idleRss * 1024, peak: rssKb(child.pid!, 'VmHWM') * 1024 },
      clientRssBytes: process.memoryUsage().rss,
      allInOrder: r.problems.length === 0,
      problems: r.problems.slice(0, 5),
    })}\n`,
  );
} finally {
  child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
