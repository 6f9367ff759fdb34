// Runs one benchmark part with --smoke into a temp results dir and hands back its result, so each
// part's smoke test only asserts what is specific to that part.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import type { BenchResult } from '../../bench/lib/results.js';
import { REPO_ROOT } from '../support/cli.js';

export interface SmokeRun {
  result: BenchResult;
  /** The bench process's pid (parts name their cgroups after it). */
  pid: number;
  /** The last 8 kB of its stderr (progress lines), for assertion messages. */
  stderr: string;
}

/** Spawns `bench/<part>.bench.ts --smoke`; SIGINTs it if the test ends first; asserts exit 0. */
export async function runSmoke(t: TestContext, part: string): Promise<SmokeRun> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `cpuburst-test-${part}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(REPO_ROOT, `bench/${part}.bench.ts`), '--smoke'],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, BENCH_RESULTS_DIR: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-8000);
  });
  child.stdout.resume();
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  assert.equal(code, 0, stderr);
  const result = JSON.parse(readFileSync(path.join(dir, `${part}.smoke.json`), 'utf8')) as BenchResult;
  assert.equal(result.part, part);
  assert.equal(result.mode, 'smoke');
  return { result, pid: child.pid!, stderr };
}
