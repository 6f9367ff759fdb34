// Process plumbing for the P2 bench: start cpuburst components from the production build (dist/) or,
// when dist/ is missing, from source through tsx; read peak RSS and CPU seconds from /proc; make sure
// every child dies with the bench (also on SIGINT/SIGTERM and when the bench throws).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DIST_CLI = path.join(REPO_ROOT, 'dist/cli.js');

/** 'dist' when dist/cli.js exists (make build), else 'tsx' (source). */
export const BUILD: 'dist' | 'tsx' = existsSync(DIST_CLI) ? 'dist' : 'tsx';

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

/** A temp dir of the bench: removed by the caller, or on SIGINT/SIGTERM/exit if the caller never got there. */
export function benchTempDir(prefix: string): string {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

/** Also remove `dir` on SIGINT/SIGTERM/exit (e.g. a FakeCgroupFs root). */
export function registerTempDir(dir: string): void {
  tempDirs.add(dir);
}

function removeTempDirs(): void {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

/** Kills every child still running (SIGKILL after `graceMs` of SIGTERM). */
export async function killAll(graceMs = 5_000): Promise<void> {
  const live = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  for (const c of live) c.kill('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && live.some((c) => c.exitCode === null && c.signalCode === null))
    await sleep(50);
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

let hooked = false;
/** SIGINT/SIGTERM end the bench after killing its children. */
export function cleanupOnSignals(extra: () => void = () => {}): void {
  if (hooked) return;
  hooked = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      for (const c of children) c.kill('SIGKILL');
      extra();
      removeTempDirs();
      process.exit(130);
    });
  process.once('exit', () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    removeTempDirs();
  });
}

/** `cpuburst <args>` from dist (node dist/cli.js) or source (tsx). */
export function spawnComponent(args: string[], nodeFlags: string[] = []): ChildProcess {
  const argv =
    BUILD === 'dist'
      ? [...nodeFlags, DIST_CLI, ...args]
      : [...nodeFlags, '--import', 'tsx', path.join(REPO_ROOT, 'cli.ts'), ...args];
  return track(spawn(process.execPath, argv, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** A TypeScript helper script of the bench in its own process (tsx), with an IPC channel. */
export function spawnScript(file: string, args: string[], nodeFlags: string[] = []): ChildProcess {
  return track(
    spawn(process.execPath, [...nodeFlags, '--import', 'tsx', file, ...args], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    }),
  );
}

/** Keeps the last `max` characters of a child's stderr (and stdout) for error messages. */
export function tail(c: ChildProcess, max = 4000): () => string {
  let buf = '';
  const add = (d: Buffer) => {
    buf = (buf + d.toString()).slice(-max);
  };
  c.stderr?.on('data', add);
  c.stdout?.on('data', add);
  return () => buf;
}

/** Resolves with the first JSON line on stdout that satisfies `pick`. */
export function jsonLine<T>(
  c: ChildProcess,
  pick: (o: any) => T | undefined,
  what: string,
  timeoutMs = 120_000,
): Promise<T> {
  const log = tail(c);
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => done(new Error(`timed out waiting for ${what}: ${log()}`)), timeoutMs);
    const onExit = (code: number | null) => done(new Error(`${what}: process exited with ${code}: ${log()}`));
    const onData = (d: Buffer) => {
      buf += d.toString();
      let i = buf.indexOf('\n');
      while (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        i = buf.indexOf('\n');
        try {
          const v = pick(JSON.parse(line));
          if (v !== undefined) return done(undefined, v);
        } catch {
          /* not JSON */
        }
      }
    };
    const done = (err?: Error, v?: T) => {
      clearTimeout(t);
      c.stdout?.off('data', onData);
      c.off('exit', onExit);
      if (err) reject(err);
      else resolve(v as T);
    };
    c.stdout?.on('data', onData);
    c.once('exit', onExit);
  });
}

export function alive(c: ChildProcess): boolean {
  return c.exitCode === null && c.signalCode === null;
}

/** Peak RSS (VmHWM) and current RSS in MiB, CPU seconds (user+sys) of a live process; null when gone. */
export function procStats(pid: number): { peakRssMiB: number; rssMiB: number; cpuSeconds: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
    return {
      peakRssMiB: Math.round((kb('VmHWM') / 1024) * 10) / 10,
      rssMiB: Math.round((kb('VmRSS') / 1024) * 10) / 10,
      cpuSeconds: Math.round((ticks / 100) * 100) / 100, // USER_HZ is 100 on Linux
    };
  } catch {
    return null;
  }
}

/** Samples procStats every `everyMs` so the figures survive a kill -9 (the last sample is kept). */
export class ProcWatcher {
  last: { peakRssMiB: number; rssMiB: number; cpuSeconds: number } | null = null;
  private timer: NodeJS.Timeout;
  constructor(
    readonly pid: number,
    everyMs = 250,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }
  sample(): void {
    const s = procStats(this.pid);
    if (s) this.last = s;
  }
  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }
}

export async function waitUntil<T>(
  what: string,
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs: number,
  everyMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(everyMs);
  }
}

export function percentile(xs: number[], p: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export const round = (x: number | null, digits = 1): number | null =>
  x == null || !Number.isFinite(x) ? null : Math.round(x * 10 ** digits) / 10 ** digits;
