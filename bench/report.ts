// `node --import tsx bench/report.ts [--smoke] [--dir D] [--since ISO] [--failed part=reason …]`
// Reads bench/results/<part>.json (smoke: <part>.smoke.json), writes summary.md (smoke:
// summary.smoke.md) and one PNG per part with charts (<part>.png / <part>.smoke.png).
// --since drops results started before it (stale files of parts that did not run now);
// --failed lists parts the runner saw fail, shown at the top of the summary.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { haveSystemFonts } from '../demo/results/chart.js';
import { renderPartPng } from './lib/chart.js';
import { type PartFailure, resultProblem, summaryMarkdown } from './lib/report.js';
import { type BenchMode, type BenchResult, RESULTS_DIR } from './lib/results.js';

export interface ReportOptions {
  dir: string;
  mode: BenchMode;
  since?: Date;
  failures?: PartFailure[];
  log?: (s: string) => void;
}

export interface ReportOutput {
  summaryFile: string;
  pngFiles: string[];
  parts: string[];
  failures: PartFailure[];
}

export function parseReportArgs(argv: string[]): ReportOptions {
  const o: ReportOptions = {
    dir: process.env.BENCH_RESULTS_DIR ?? RESULTS_DIR,
    mode: argv.includes('--smoke') || process.env.BENCH_MODE === 'smoke' ? 'smoke' : 'full',
    failures: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--smoke') continue;
    else if (a === '--dir') o.dir = path.resolve(val());
    else if (a === '--since') {
      const d = new Date(val());
      if (Number.isNaN(d.getTime())) throw new Error('--since needs an ISO time');
      o.since = d;
    } else if (a === '--failed') {
      const [part, ...reason] = val().split('=');
      o.failures!.push({ part: part!, reason: reason.join('=') || 'failed' });
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

export async function writeReport(o: ReportOptions): Promise<ReportOutput> {
  const log = o.log ?? (() => {});
  const suffix = o.mode === 'smoke' ? '.smoke' : '';
  const failures = [...(o.failures ?? [])];
  const results: BenchResult[] = [];
  const files = fs.existsSync(o.dir) ? fs.readdirSync(o.dir).sort() : [];
  for (const f of files) {
    if (!f.endsWith('.json') || f.startsWith('summary')) continue;
    if ((o.mode === 'smoke') !== f.endsWith('.smoke.json')) continue;
    let r: BenchResult;
    try {
      r = JSON.parse(fs.readFileSync(path.join(o.dir, f), 'utf8')) as BenchResult;
    } catch (err) {
      failures.push({ part: f, reason: `unreadable result: ${(err as Error).message}` });
      continue;
    }
    const problem = resultProblem(r);
    if (problem) {
      failures.push({ part: f, reason: `not a bench result: ${problem}` });
      continue;
    }
    if (o.since && new Date(r.startedAt) < o.since) {
      if (!failures.some((x) => x.part === r.part))
        failures.push({ part: r.part, reason: `no result from this run (stale file from ${r.startedAt})` });
      continue;
    }
    results.push(r);
  }
  const pngs: Record<string, string> = {};
  const pngFiles: string[] = [];
  if (!haveSystemFonts()) log('no system fonts: the PNGs have no text (install fonts-dejavu-core)');
  for (const r of results) {
    try {
      const out = await renderPartPng(r);
      if (!out) continue;
      const name = `${r.part}${suffix}.png`;
      fs.writeFileSync(path.join(o.dir, name), out.png);
      pngs[r.part] = name;
      pngFiles.push(path.join(o.dir, name));
    } catch (err) {
      log(`${r.part}: chart not rendered: ${(err as Error).message}`);
    }
  }
  fs.mkdirSync(o.dir, { recursive: true });
  const summaryFile = path.join(o.dir, `summary${suffix}.md`);
  fs.writeFileSync(summaryFile, summaryMarkdown(results, { mode: o.mode, failures, pngs }));
  return { summaryFile, pngFiles, parts: results.map((r) => r.part), failures };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  let o: ReportOptions;
  try {
    o = parseReportArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench/report: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const out = await writeReport({ ...o, log: (s) => process.stderr.write(`bench/report: ${s}\n`) });
  process.stderr.write(
    `bench/report: ${out.parts.length} part(s) [${out.parts.join(', ')}] → ${out.summaryFile}${out.pngFiles.length ? `, ${out.pngFiles.map((f) => path.basename(f)).join(', ')}` : ''}\n`,
  );
  process.exit(out.parts.length > 0 ? 0 : 1);
}
