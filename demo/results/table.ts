// The before/after table printed at the end of the demo (pure: results in, text out).
import type { DemoResults } from './types.js';

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

export function formatTable(r: DemoResults): string {
  const head = ['phase', 'requests', 'p50 ms', 'p90 ms', 'p99 ms', 'throttled', 'mean CPU', 'quota/burst µs', 'node'];
  const rows = r.phases.map((p) => [
    p.name,
    String(p.latencyMs.count),
    fmt(p.latencyMs.p50),
    fmt(p.latencyMs.p90),
    fmt(p.latencyMs.p99),
    `${fmt(p.throttling.throttledRatio * 100)}% (${p.throttling.nrThrottled}/${p.throttling.nrPeriods})`,
    `${fmt(p.meanCpuCores, 2)} cores`,
    `${p.cgroup.quotaUs}/${p.cgroup.burstUs}`,
    p.nodeState ?? '-',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const sep = widths.map((w) => '─'.repeat(w)).join('  ');
  const out = [line(head), sep, ...rows.map(line)];
  const [a, b] = r.phases;
  if (a && b && Number.isFinite(a.latencyMs.p99) && a.latencyMs.p99 > 0) {
    const d = ((b.latencyMs.p99 - a.latencyMs.p99) / a.latencyMs.p99) * 100;
    out.push(
      '',
      `p99 ${fmt(a.latencyMs.p99)} → ${fmt(b.latencyMs.p99)} ms (${d <= 0 ? '' : '+'}${fmt(d)}%), ` +
        `throttled periods ${fmt(a.throttling.throttledRatio * 100)}% → ${fmt(b.throttling.throttledRatio * 100)}%`,
    );
  }
  return `${out.join('\n')}\n`;
}
