// Starts each component as its own `cpuburst <cmd>` process from the same entry point as the demo
// (tsx from source, plain node from dist), with logs in files, ports learnt from --ports-file, and
// a clear error naming the component when one is missing or dies during start-up.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** true when running from the TypeScript sources (tsx), false from dist/. */
export const FROM_SOURCE = import.meta.url.endsWith('.ts');
export const REPO_ROOT = FROM_SOURCE ? path.resolve(HERE, '..') : path.resolve(HERE, '../..');
const EXT = FROM_SOURCE ? 'ts' : 'js';

/** argv that runs a script of this code base with the current node (tsx when from source). */
export function nodeScriptArgv(scriptFromDemoDir: string, args: string[]): string[] {
  const script = path.resolve(HERE, `${scriptFromDemoDir}.${EXT}`);
  return [process.execPath, ...(FROM_SOURCE ? ['--import', 'tsx'] : []), script, ...args];
}

export function cliArgv(args: string[]): string[] {
  return nodeScriptArgv('../cli', args);
}

export class ComponentError extends Error {}

export interface Component {
  name: string;
  child: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
  stop(timeoutMs?: number): Promise<void>;
}

function tail(file: string, lines = 15): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export function startComponent(
  name: string,
  args: string[],
  logDir: string,
  env: NodeJS.ProcessEnv = {},
): Component {
  const logFile = path.join(logDir, `${name}.log`);
  const fd = fs.openSync(logFile, 'a');
  const [cmd, ...argv] = cliArgv(args);
  const child = spawn(cmd!, argv, {
    cwd: REPO_ROOT,
    stdio: ['ignore', fd, fd],
    env: { ...process.env, ...env },
  });
  fs.closeSync(fd);
  let code: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (c, sig) => {
      code = c ?? (sig ? 128 : null);
      resolve(code);
    });
    child.once('error', () => resolve(127));
  });
  return {
    name,
    child,
    logFile,
    exited,
    async stop(timeoutMs = 8000) {
      if (code !== undefined) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Explains why a component could not start: flag error or crash, with its log tail. */
export function componentFailure(c: Component, code: number | null, what: string): ComponentError {
  const log = tail(c.logFile);
  const head = `cpuburst demo: ${c.name} exited with code ${code} while ${what}`;
  return new ComponentError(`${head}\n--- last lines of ${c.logFile} ---\n${log}`);
}

/** Polls for a JSON file the component writes once it listens; fails fast if the process dies. */
export async function waitForJsonFile<T>(
  c: Component,
  file: string,
  what: string,
  timeoutMs = 60000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let code: number | null | undefined;
  void c.exited.then((x) => {
    code = x;
  });
  for (;;) {
    try {
      const text = fs.readFileSync(file, 'utf8').trim();
      if (text) return JSON.parse(text.split('\n')[0]!) as T;
    } catch {
      // not there yet
    }
    if (code !== undefined) throw componentFailure(c, code, what);
    if (Date.now() > end)
      throw new ComponentError(
        `cpuburst demo: timed out after ${timeoutMs / 1000}s ${what} (log: ${c.logFile})`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Polls `check` until it returns a truthy value; fails fast if the component dies. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  opts: { timeoutMs?: number; components?: Component[]; intervalMs?: number } = {},
): Promise<T> {
  const end = Date.now() + (opts.timeoutMs ?? 60000);
  const dead = new Map<Component, number | null>();
  for (const c of opts.components ?? []) void c.exited.then((x) => dead.set(c, x));
  let lastErr = '';
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      lastErr = (err as Error).message;
    }
    for (const [c, code] of dead) throw componentFailure(c, code, what);
    if (Date.now() > end) {
      throw new ComponentError(
        `cpuburst demo: timed out ${what}${lastErr ? ` (last error: ${lastErr})` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 200));
  }
}

/** Every JSON log line of the component whose message is exactly `message`. */
export function logLines(c: Component, message: string): Array<Record<string, unknown>> {
  let text = '';
  try {
    text = fs.readFileSync(c.logFile, 'utf8');
  } catch {
    return [];
  }
  const out: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (!line.includes(message)) continue;
    try {
      const l = JSON.parse(line) as Record<string, unknown>;
      if (l.message === message) out.push(l);
    } catch {
      // not JSON
    }
  }
  return out;
}

/** A numeric field of the first JSON log line with `message` (e.g. the port a component chose). */
export function logField(c: Component, message: string, field: string): number | null {
  let text = '';
  try {
    text = fs.readFileSync(c.logFile, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    if (!line.includes(message)) continue;
    try {
      const v = JSON.parse(line)[field];
      if (typeof v === 'number') return v;
    } catch {
      // not JSON
    }
  }
  return null;
}

/**
 * Components of a demo that was killed with -9 keep running; the next demo stops them. Only demo
 * work dirs in `tmp` are scanned, and a pid is killed only if its command line names that work dir
 * (so a recycled pid is never hit).
 */
export function reapStaleStacks(tmp: string): number[] {
  const killed: number[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync(tmp).filter((n) => n.startsWith('cpuburst-demo-'));
  } catch {
    return killed;
  }
  for (const n of names) {
    const dir = path.join(tmp, n);
    let stack: { pids?: Record<string, number> };
    try {
      stack = JSON.parse(fs.readFileSync(path.join(dir, 'stack.json'), 'utf8'));
    } catch {
      continue;
    }
    const demoPid = stack.pids?.demo;
    if (!demoPid || demoPid === process.pid || isAlive(demoPid)) continue;
    for (const [name, pid] of Object.entries(stack.pids ?? {})) {
      if (name === 'demo' || !isAlive(pid)) continue;
      let cmdline = '';
      try {
        cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        continue;
      }
      if (!cmdline.includes(dir)) continue;
      try {
        process.kill(pid, 'SIGKILL');
        killed.push(pid);
      } catch {
        // gone
      }
    }
  }
  return killed;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
