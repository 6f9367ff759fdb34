// Measuring another process from outside (bench P4): CPU time from /proc/<pid>/stat (utime+stime,
// clock ticks) and, when a writable cgroup v1 cpuacct hierarchy exists, from a cpuacct "meter" cgroup
// the process is moved into (cpuacct.usage, ns: the precise figure; cpuacct is its own hierarchy here,
// so moving a process there changes nothing about its scheduling). RSS from /proc/<pid>/status.
// Syscalls from `strace -c -f -p` over a window. Parsers are pure and exported for the tests.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const CPUACCT_ROOT = '/sys/fs/cgroup/cpuacct';

let clkTck: number | null = null;
/** USER_HZ (clock ticks per second of utime/stime). */
export function clockTicksPerSecond(): number {
  if (clkTck === null) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** utime + stime (clock ticks, all threads) from the text of /proc/<pid>/stat. */
export function parseProcPidStat(text: string): number {
  // comm may hold spaces and parentheses: fields restart after the LAST ')'.
  const rest = text
    .slice(text.lastIndexOf(')') + 2)
    .trim()
    .split(/\s+/);
  // rest[0] is field 3 (state); utime is field 14, stime field 15.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('unparsable /proc/<pid>/stat');
  return utime + stime;
}

export function cpuTicks(pid: number): number {
  return parseProcPidStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

export interface MemSample {
  vmRssMiB: number;
  vmHwmMiB: number;
}

/** VmRSS and VmHWM (peak) in MiB from the text of /proc/<pid>/status. */
export function parseProcStatus(text: string): MemSample {
  const kb = (k: string) => {
    const m = new RegExp(`^${k}:\\s+(\\d+)\\s+kB`, 'm').exec(text);
    if (!m) throw new Error(`no ${k} in /proc/<pid>/status`);
    return Number(m[1]) / 1024;
  };
  return { vmRssMiB: kb('VmRSS'), vmHwmMiB: kb('VmHWM') };
}

export function memory(pid: number): MemSample {
  return parseProcStatus(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
}

/** A cpuacct cgroup that meters one process (and its threads) in ns. */
export class CpuacctMeter {
  private constructor(readonly dir: string) {}

  /** null when there is no writable cgroup v1 cpuacct hierarchy (then only utime+stime is used). */
  static create(parentDir: string, name: string): CpuacctMeter | null {
    try {
      if (!fs.existsSync(path.join(CPUACCT_ROOT, 'cpuacct.usage'))) return null;
      const dir = path.join(parentDir, name);
      fs.mkdirSync(dir, { recursive: true });
      return new CpuacctMeter(dir);
    } catch {
      return null;
    }
  }

  /** Moves every thread of `pid` here (cgroup.procs moves the whole thread group). */
  add(pid: number): boolean {
    try {
      fs.writeFileSync(path.join(this.dir, 'cgroup.procs'), String(pid));
      return true;
    } catch {
      return false;
    }
  }

  usageNs(): number {
    return Number(fs.readFileSync(path.join(this.dir, 'cpuacct.usage'), 'utf8').trim());
  }
}

export interface StraceSummary {
  /** calls per syscall name over the window. */
  calls: Record<string, number>;
  errors: Record<string, number>;
  total: number;
}

/** Parses the table `strace -c` writes (its -o file). */
export function parseStraceSummary(text: string): StraceSummary {
  const calls: Record<string, number> = {};
  const errors: Record<string, number> = {};
  let total = 0;
  for (const line of text.split('\n')) {
    const t = line.trim().split(/\s+/);
    // "% time  seconds  usecs/call  calls  [errors]  syscall"
    if (t.length < 5 || !/^\d+(\.\d+)?$/.test(t[0]!) || !/^\d+$/.test(t[3]!)) continue;
    const name = t[t.length - 1]!;
    if (name === 'total') continue;
    calls[name] = (calls[name] ?? 0) + Number(t[3]);
    if (t.length >= 6 && /^\d+$/.test(t[4]!)) errors[name] = (errors[name] ?? 0) + Number(t[4]);
    total += Number(t[3]);
  }
  return { calls, errors, total };
}

/** Syscall groups reported per tick. */
export const SYSCALL_GROUPS: Record<string, string[]> = {
  opens: ['open', 'openat', 'openat2'],
  reads: ['read', 'pread64', 'readv', 'preadv', 'preadv2'],
  writes: ['write', 'pwrite64', 'writev', 'pwritev', 'pwritev2'],
  stats: ['stat', 'lstat', 'fstat', 'newfstatat', 'statx', 'access', 'faccessat', 'faccessat2', 'statfs'],
  closes: ['close'],
  dirs: ['getdents64', 'getdents'],
  fsyncs: ['fsync', 'fdatasync', 'rename', 'renameat', 'renameat2'],
};

export function groupSyscalls(s: StraceSummary): Record<string, number> {
  const out: Record<string, number> = {};
  let grouped = 0;
  for (const [g, names] of Object.entries(SYSCALL_GROUPS)) {
    out[g] = names.reduce((sum, n) => sum + (s.calls[n] ?? 0), 0);
    grouped += out[g]!;
  }
  out.other = s.total - grouped;
  out.total = s.total;
  return out;
}

export function straceAvailable(): string | null {
  try {
    execFileSync('strace', ['-V'], { stdio: 'ignore' });
    return null;
  } catch {
    return 'strace is not installed (Debian package strace; make deps installs it)';
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** A time limit in a race: unref'd, so a pending one never keeps the process alive. */
const guard = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/**
 * Attaches `strace -c -f` to every thread of `pid` for `windowMs` and returns the summary with the
 * window actually traced (from attach to detach). Tracing slows the process: never overlap it with
 * a CPU window. `track` registers the strace pid for cleanup.
 */
export async function straceWindow(
  pid: number,
  windowMs: number,
  outFile: string,
  track: (pid: number) => () => void,
): Promise<StraceSummary & { seconds: number }> {
  const st = spawn('strace', ['-c', '-f', '-o', outFile, '-p', String(pid)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const untrack = track(st.pid!);
  let stderr = '';
  const exited = new Promise<number | null>((r) => st.on('exit', (code) => r(code)));
  try {
    const attached = await Promise.race([
      new Promise<boolean>((r) =>
        st.stderr!.on('data', (b: Buffer) => {
          stderr += b.toString();
          if (/attached/.test(stderr)) r(true);
        }),
      ),
      exited.then(() => false),
      guard(10_000).then(() => false),
    ]);
    if (!attached) throw new Error(`strace did not attach to ${pid}: ${stderr.trim() || 'timeout'}`);
    const t0 = performance.now();
    await sleep(windowMs);
    st.kill('SIGINT');
    await Promise.race([exited, guard(10_000)]);
    const seconds = (performance.now() - t0) / 1000;
    return { ...parseStraceSummary(fs.readFileSync(outFile, 'utf8')), seconds };
  } finally {
    if (st.exitCode === null) st.kill('SIGKILL');
    untrack();
  }
}
