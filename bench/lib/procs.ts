// Child processes of a benchmark: the production build (dist/) when it exists, else the sources
// through tsx (recorded in the result's setup). Every process started here is killed when the
// benchmark exits, however it exits.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DIST_CLI = path.join(REPO_ROOT, 'dist', 'cli.js');

export type Build = 'dist' | 'tsx';

/** Which build child processes run: dist/ (make build) unless it is missing. */
export function build(): Build {
  return fs.existsSync(DIST_CLI) ? 'dist' : 'tsx';
}

/** argv of `cpuburst <args>`. */
export function cpuburstArgv(args: string[], b: Build = build()): string[] {
  return b === 'dist'
    ? [process.execPath, DIST_CLI, ...args]
    : [process.execPath, '--import', 'tsx', path.join(REPO_ROOT, 'cli.ts'), ...args];
}

/**
 * dist/<dir> is current when every .ts in the source dir is no newer than its compiled .js (a dev
 * loop without `make build` must not run an old copy).
 */
export function distCurrent(relDir: string): boolean {
  const src = path.join(REPO_ROOT, relDir);
  try {
    for (const f of fs.readdirSync(src)) {
      if (!f.endsWith('.ts')) continue;
      const js = path.join(REPO_ROOT, 'dist', relDir, f.replace(/\.ts$/, '.js'));
      if (!fs.existsSync(js) || fs.statSync(js).mtimeMs < fs.statSync(path.join(src, f)).mtimeMs)
        return false;
    }
    return true;
  } catch {
    return false;
  }
}

/** argv of a script under the repo given without extension, e.g. `demo/workload/main`. */
export function scriptArgv(rel: string, args: string[], b: Build = build()): string[] {
  const js = path.join(REPO_ROOT, 'dist', `${rel}.js`);
  return b === 'dist' && fs.existsSync(js) && distCurrent(path.dirname(rel))
    ? [process.execPath, js, ...args]
    : [process.execPath, '--import', 'tsx', path.join(REPO_ROOT, `${rel}.ts`), ...args];
}

export interface Proc {
  name: string;
  child: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<void>;
}

const live = new Set<Proc>();
let exitHook = false;

/**
 * Starts `argv` with stdout+stderr in `logFile`. `shellPrefix` (e.g. joining a cgroup) runs in a
 * shell that then execs the command, so the process is placed before it does any work.
 */
export function startProc(name: string, argv: string[], logFile: string, shellPrefix?: string): Proc {
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const p of live) p.child.kill('SIGKILL');
    });
  }
  const fd = fs.openSync(logFile, 'a');
  const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = shellPrefix
    ? spawn('sh', ['-c', `${shellPrefix} && exec ${quoted}`], { cwd: REPO_ROOT, stdio: ['ignore', fd, fd] })
    : spawn(argv[0]!, argv.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  let code: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (c, sig) => {
      code = c ?? (sig ? 128 : null);
      resolve(code);
    });
    child.once('error', () => {
      code = 127;
      resolve(127);
    });
  });
  const p: Proc = {
    name,
    child,
    logFile,
    exited,
    async stop(timeoutMs = 8000) {
      if (code === undefined) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        await exited;
        clearTimeout(t);
      }
      live.delete(p);
    },
  };
  live.add(p);
  void exited.then(() => live.delete(p));
  return p;
}

/** Stops every process still running (cleanup paths). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop(3000)));
}

/** A field of the first JSON log line containing `message` (e.g. the port a component chose). */
export function logField(file: string, message: string, field: string): unknown {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    if (!line.includes(message)) continue;
    try {
      const v = (JSON.parse(line) as Record<string, unknown>)[field];
      if (v !== undefined) return v;
    } catch {
      // not JSON
    }
  }
  return undefined;
}

export function tail(file: string, lines = 15): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Polls `check` until truthy; fails with the log tail when `proc` dies first. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  opts: { timeoutMs?: number; proc?: Proc; intervalMs?: number } = {},
): Promise<T> {
  const end = Date.now() + (opts.timeoutMs ?? 30_000);
  let dead: number | null | undefined;
  void opts.proc?.exited.then((c) => {
    dead = c;
  });
  let lastErr = '';
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      lastErr = (err as Error).message;
    }
    if (dead !== undefined && opts.proc)
      throw new Error(`${opts.proc.name} exited (${dead}) while ${what}:\n${tail(opts.proc.logFile)}`);
    if (Date.now() > end) throw new Error(`timed out ${what}${lastErr ? ` (${lastErr})` : ''}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
