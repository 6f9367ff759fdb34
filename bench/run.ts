// The benchmark suite: `node --import tsx bench/run.ts [--smoke] [--only p3[,p1]]` (make bench,
// npm run bench). Runs each part (bench/<part>.bench.ts) in order in its own process, then writes
// the report (bench/report.ts). A missing part, a crash, a timeout or no fresh result file is a
// failed part; the exit code is 1 when any part failed, 2 for bad arguments.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PARTS, type PartFailure } from './lib/report.js';
import { type BenchMode, type BenchResult, RESULTS_DIR } from './lib/results.js';
import { writeReport } from './report.js';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));

export interface RunOptions {
  mode: BenchMode;
  only: string[];
  noReport: boolean;
  /** Where the part files are (tests point this at a temp dir). */
  benchDir?: string;
  /** Results directory (default BENCH_RESULTS_DIR or bench/results). */
  resultsDir?: string;
}

export function parseRunArgs(argv: string[]): RunOptions {
  const o: RunOptions = {
    mode: process.env.BENCH_MODE === 'smoke' ? 'smoke' : 'full',
    only: [],
    noReport: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--smoke') o.mode = 'smoke';
    else if (a === '--no-report') o.noReport = true;
    else if (a === '--only' || a.startsWith('--only=')) {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (!v) throw new Error('--only needs a part, e.g. --only p3');
      o.only.push(...v.split(',').filter(Boolean));
    } else throw new Error(`unknown argument ${a} (use --smoke, --only <part>, --no-report)`);
  }
  return o;
}

/** Pure: which parts run, in suite order; `only` entries match a part name or its prefix (p3). */
export function selectParts(only: string[], parts: readonly string[] = PARTS): string[] {
  if (only.length === 0) return [...parts];
  const unknown = only.filter((o) => !parts.some((p) => p === o || p.startsWith(`${o}-`)));
  if (unknown.length > 0)
    throw new Error(`unknown part(s) ${unknown.join(', ')} (parts: ${parts.join(', ')})`);
  return parts.filter((p) => only.some((o) => p === o || p.startsWith(`${o}-`)));
}

/** A part may take at most this long (full ≤ 7 min by contract; smoke ≈ 30 s). */
const PART_TIMEOUT_MS = { full: 12 * 60_000, smoke: 4 * 60_000 };

let current: ReturnType<typeof spawn> | null = null;

async function runPart(part: string, o: RunOptions, dir: string, since: Date): Promise<PartFailure | null> {
  const file = path.join(o.benchDir ?? BENCH_DIR, `${part}.bench.ts`);
  if (!fs.existsSync(file)) return { part, reason: `bench/${part}.bench.ts does not exist` };
  const started = Date.now();
  process.stderr.write(`\n=== ${part} (${o.mode}) ===\n`);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', file, ...(o.mode === 'smoke' ? ['--smoke'] : [])],
    {
      cwd: path.dirname(BENCH_DIR), // the repo: tsx resolves from here
      // stdout repeats the result JSON the part writes to its file; progress goes to stderr.
      stdio: ['ignore', 'ignore', 'inherit'],
      // Its own process group: a terminal's Ctrl-C reaches only the runner, which forwards exactly
      // one SIGINT (a second one could cut a part's cleanup short).
      detached: true,
      env: { ...process.env, BENCH_MODE: o.mode, BENCH_RESULTS_DIR: dir },
    },
  );
  current = child;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGINT'); // parts clean up their cgroups and processes on SIGINT
    setTimeout(() => child.kill('SIGKILL'), 20_000).unref();
  }, PART_TIMEOUT_MS[o.mode]);
  const code: number | null = await new Promise((resolve) => {
    child.once('exit', (c, sig) => resolve(c ?? (sig ? 128 : null)));
    child.once('error', () => resolve(127));
  });
  clearTimeout(timer);
  current = null;
  const secs = Math.round((Date.now() - started) / 100) / 10;
  process.stderr.write(`=== ${part}: exit ${code} after ${secs} s ===\n`);
  if (timedOut) return { part, reason: `timed out after ${PART_TIMEOUT_MS[o.mode] / 60_000} min` };
  if (code !== 0) return { part, reason: `exited with code ${code}` };
  const result = path.join(dir, `${part}${o.mode === 'smoke' ? '.smoke' : ''}.json`);
  try {
    const r = JSON.parse(fs.readFileSync(result, 'utf8')) as BenchResult;
    if (new Date(r.startedAt) < since)
      return { part, reason: `exited 0 but ${result} is from an earlier run` };
  } catch (err) {
    return {
      part,
      reason: `exited 0 but wrote no readable ${path.basename(result)}: ${(err as Error).message}`,
    };
  }
  return null;
}

export async function runSuite(o: RunOptions): Promise<number> {
  const dir = o.resultsDir ?? process.env.BENCH_RESULTS_DIR ?? RESULTS_DIR;
  const parts = selectParts(o.only);
  const since = new Date();
  const failures: PartFailure[] = [];
  for (const part of parts) {
    const f = await runPart(part, o, dir, since);
    if (f) failures.push(f);
  }
  if (!o.noReport) {
    // A full suite run reports only this run's results; --only refreshes one part and keeps the rest.
    const out = await writeReport({
      dir,
      mode: o.mode,
      ...(o.only.length === 0 ? { since } : {}),
      failures,
      log: (s) => process.stderr.write(`bench/report: ${s}\n`),
    });
    process.stderr.write(`\nsummary: ${out.summaryFile}\n`);
    for (const p of out.pngFiles) process.stderr.write(`chart:   ${p}\n`);
  }
  for (const f of failures) process.stderr.write(`FAILED ${f.part}: ${f.reason}\n`);
  process.stderr.write(`${parts.length - failures.length} of ${parts.length} part(s) passed\n`);
  return failures.length > 0 ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  let o: RunOptions;
  try {
    o = parseRunArgs(process.argv.slice(2));
    selectParts(o.only);
  } catch (err) {
    process.stderr.write(`bench/run: ${(err as Error).message}\n`);
    process.exit(2);
  }
  // A part in its own process group outlives a crashed runner unless told to stop.
  process.on('exit', () => current?.kill('SIGINT'));
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      current?.kill('SIGINT');
      process.stderr.write(`bench/run: ${sig}: stopping\n`);
      setTimeout(() => process.exit(130), 25_000).unref();
      current?.once('exit', () => process.exit(130));
      if (!current) process.exit(130);
    });
  process.exit(await runSuite(o));
}
