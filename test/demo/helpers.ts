// Shared pieces of the tests that run the demo on REAL cgroups: the skip condition, polling, the
// cgroup trees a run leaves under its parent base, and teardown that stops the demo the way a user
// would (SIGINT) and, if that fails, makes sure none of its component processes outlives the test.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { destroyTreeSync } from '../../devcluster/kubelet/cgroupfs.js';
import { spawnCli } from '../support/cli.js';

export const CG = '/sys/fs/cgroup';
export const REAL_CGROUPS = fs.existsSync(`${CG}/cpu/cpu.cfs_quota_us`) && process.getuid?.() === 0;
export const NO_REAL_CGROUPS = 'needs root and a cgroup v1 cpu controller at /sys/fs/cgroup/cpu';

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export type Poll<T> = () => Promise<T | undefined | null | false> | T | undefined | null | false;

/** Polls `fn` until it returns something truthy; a throw counts as "not yet" and ends up in the message. */
export async function until<T>(fn: Poll<T>, what: string, ms = 60000, everyMs = 200): Promise<T> {
  const end = Date.now() + ms;
  let last = '';
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} ${last}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The cpu and cpuacct trees (full paths) of runs whose parent base is `base`. */
export function cgroupTrees(base: string): string[] {
  return ['cpu', 'cpuacct'].flatMap((ctl) =>
    fs
      .readdirSync(path.join(CG, ctl))
      .filter((n) => n.startsWith(`${base}-`))
      .map((n) => path.join(CG, ctl, n)),
  );
}

export function removeCgroupTrees(base: string): void {
  for (const t of cgroupTrees(base)) destroyTreeSync(t);
}

/** A `cpuburst demo` process with its output collected. */
export interface DemoRun {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  /** undefined while it runs. */
  exitCode: number | null | undefined;
}

export function spawnDemo(args: string[]): DemoRun {
  const child = spawnCli(['demo', ...args]);
  const run: DemoRun = { child, stdout: '', stderr: '', exitCode: undefined };
  child.stdout?.on('data', (d) => {
    run.stdout += d;
  });
  child.stderr?.on('data', (d) => {
    run.stderr += d;
  });
  child.once('exit', (code) => {
    run.exitCode = code;
  });
  return run;
}

/** Waits for the demo's stack.json; the demo must keep running meanwhile. */
export async function waitForStack(run: DemoRun, workDir: string, ms = 120000): Promise<Record<string, any>> {
  const end = Date.now() + ms;
  let stack: Record<string, any> | undefined;
  while (!stack) {
    assert.equal(run.child.exitCode, null, `demo exited early: ${run.stderr}`);
    assert.ok(Date.now() < end, `stack.json never appeared: ${run.stderr.slice(-2000)}`);
    try {
      stack = JSON.parse(fs.readFileSync(path.join(workDir, 'stack.json'), 'utf8'));
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return stack;
}

export async function stopDemo(demo: ChildProcess, workDir: string, timeoutMs = 40000): Promise<void> {
  const running = () => demo.exitCode === null && demo.signalCode === null;
  if (running()) {
    demo.kill('SIGINT');
    const end = Date.now() + timeoutMs;
    while (running() && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    if (running()) demo.kill('SIGKILL');
  }
  let pids: number[] = [];
  try {
    const stack = JSON.parse(fs.readFileSync(path.join(workDir, 'stack.json'), 'utf8'));
    pids = [...Object.values(stack.pids as Record<string, number>), ...(stack.containerPids as number[])];
  } catch {
    return; // the stack never came up
  }
  for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
}
