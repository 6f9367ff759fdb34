// Pure: benchmark results → the markdown summary (bench/results/summary.md). One table per part
// (case, metric, cpuburst, reference, ratio, goal, met), the machine and setup, then the notes.
import type { BenchMode, BenchResult, BenchRow } from './results.js';

/** The parts in suite order: name → file stem of bench/<stem>.bench.ts and the result. */
export const PARTS = ['p1-burst', 'p2-propagation', 'p3-broker', 'p4-agent'] as const;

/** A part that did not produce a result in this run (missing file, crash, non-zero exit). */
export interface PartFailure {
  part: string;
  reason: string;
}

export function fmtNumber(n: number | null | undefined): string {
  if (n == null) return '—';
  if (!Number.isFinite(n)) return String(n);
  const a = Math.abs(n);
  if (Number.isInteger(n)) return String(n);
  if (a >= 100) return String(Math.round(n));
  if (a >= 10) return (Math.round(n * 10) / 10).toString();
  if (a >= 1) return (Math.round(n * 100) / 100).toString();
  return Number(n.toPrecision(3)).toString();
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function metCell(r: BenchRow): string {
  if (r.met === undefined) return '';
  return r.met ? '✅ yes' : '❌ no';
}

/** The rows table of one part. */
export function rowsTable(rows: BenchRow[]): string {
  const head =
    '| case | metric | cpuburst | reference | ratio | goal | met |\n|---|---|---:|---:|---:|---|---|';
  const lines = rows.map((r) => {
    const value = r.value == null && r.note ? `— (${r.note})` : fmtNumber(r.value);
    const ref =
      r.reference === undefined
        ? ''
        : `${fmtNumber(r.reference)}${r.referenceName ? ` (${r.referenceName})` : ''}`;
    const ratio = r.ratio === undefined ? '' : r.ratio == null ? '—' : `${fmtNumber(r.ratio)}×`;
    return `| ${[r.case, r.metric, value, ref, ratio, r.goal ?? '', metCell(r)].map(cell).join(' | ')} |`;
  });
  return [head, ...lines].join('\n');
}

function setupValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return `\`${JSON.stringify(v)}\``;
}

export function machineLine(r: BenchResult): string {
  const m = r.machine;
  return `${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, kernel ${m.kernel}, node ${m.node}, load average ${m.loadAverage1m} at the end, nofile hard limit ${m.hardNofile ?? '?'}`;
}

/** One part's section: title, when/how, the table, notes, setup, chart. */
export function partMarkdown(r: BenchResult, pngFile?: string): string {
  const out = [
    `## ${r.part} — ${r.title}`,
    '',
    `${r.mode} run, started ${r.startedAt}, ${fmtNumber(r.durationSeconds)} s. Machine: ${machineLine(r)}.`,
    '',
    rowsTable(r.rows),
  ];
  const goals = r.rows.filter((x) => x.met !== undefined);
  if (goals.length > 0) out.push('', `Goals met: ${goals.filter((x) => x.met).length} of ${goals.length}.`);
  const notes = [
    ...r.notes,
    ...r.rows.filter((x) => x.note && x.value != null).map((x) => `${x.case} / ${x.metric}: ${x.note}`),
  ];
  if (notes.length > 0) out.push('', 'Notes:', '', ...notes.map((n) => `- ${cell(n)}`));
  const setup = Object.entries(r.setup);
  if (setup.length > 0)
    out.push('', 'Setup:', '', ...setup.map(([k, v]) => `- **${k}**: ${cell(setupValue(v))}`));
  if (pngFile) out.push('', `![${r.part}](${pngFile})`);
  return `${out.join('\n')}\n`;
}

/** Every row with a goal, across parts: the one-glance table. */
export function goalsTable(results: BenchResult[]): string {
  const rows = results.flatMap((r) =>
    r.rows.filter((x) => x.met !== undefined).map((x) => ({ part: r.part, ...x })),
  );
  if (rows.length === 0) return '_No goal rows._';
  const head =
    '| part | case | metric | cpuburst | reference | goal | met |\n|---|---|---|---:|---:|---|---|';
  return [
    head,
    ...rows.map(
      (x) =>
        `| ${[x.part, x.case, x.metric, fmtNumber(x.value), x.reference === undefined ? '' : `${fmtNumber(x.reference)}${x.referenceName ? ` (${x.referenceName})` : ''}`, x.goal ?? '', metCell(x)].map(cell).join(' | ')} |`,
    ),
  ].join('\n');
}

/** The whole summary.md. `pngs` maps part → PNG file name next to the summary. */
export function summaryMarkdown(
  results: BenchResult[],
  opts: { mode: BenchMode; failures?: PartFailure[]; pngs?: Record<string, string>; generatedAt?: string },
): string {
  const order = (p: string) => {
    const i = (PARTS as readonly string[]).indexOf(p);
    return i < 0 ? PARTS.length : i;
  };
  const sorted = [...results].sort((a, b) => order(a.part) - order(b.part) || a.part.localeCompare(b.part));
  const failures = opts.failures ?? [];
  const out = [
    `# cpuburst benchmark summary (${opts.mode})`,
    '',
    `Generated ${opts.generatedAt ?? new Date().toISOString()} from bench/results/*${opts.mode === 'smoke' ? '.smoke' : ''}.json by bench/report.ts. ` +
      'Each figure is measured next to its reference in the same run; ratio = cpuburst / reference.',
    '',
  ];
  if (failures.length > 0)
    out.push(
      '**Failed or missing parts:**',
      '',
      ...failures.map((f) => `- ${f.part}: ${cell(f.reason)}`),
      '',
    );
  out.push('## Goals', '', goalsTable(sorted), '');
  for (const r of sorted) out.push(partMarkdown(r, opts.pngs?.[r.part]));
  return `${out.join('\n').trimEnd()}\n`;
}

/** Pure shape check of a result file (the report refuses files that are not the contract). */
export function resultProblem(x: unknown): string | null {
  if (typeof x !== 'object' || x === null) return 'not an object';
  const r = x as Partial<BenchResult>;
  if (typeof r.part !== 'string' || !r.part) return 'no part';
  if (typeof r.title !== 'string') return 'no title';
  if (r.mode !== 'full' && r.mode !== 'smoke') return 'mode is not full|smoke';
  if (!Array.isArray(r.rows)) return 'rows is not an array';
  if (!Array.isArray(r.charts)) return 'charts is not an array';
  if (typeof r.machine !== 'object' || r.machine === null) return 'no machine';
  for (const [i, row] of r.rows.entries())
    if (typeof row?.case !== 'string' || typeof row.metric !== 'string' || !('value' in row))
      return `row ${i} lacks case/metric/value`;
  for (const [i, c] of r.charts.entries())
    if (!Array.isArray(c?.x) || !Array.isArray(c.series)) return `chart ${i} lacks x/series`;
  return null;
}
