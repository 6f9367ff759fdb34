// The kubelet's cgroup adapter: one demo parent (`<base>-<pid>`) in the cpu and cpuacct
// hierarchies, kubepods below it in the cgroupfs-driver layout. Every directory it creates is
// recorded so a crash (process 'exit') can still kill the members and rmdir leaf → root.
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_PERIOD_US } from './resources.js';

export const CONTROLLERS = ['cpu', 'cpuacct'] as const;
export type Controller = (typeof CONTROLLERS)[number];

export interface CgroupFsOptions {
  /** Mount root holding cpu/ and cpuacct/ (real: /sys/fs/cgroup). */
  root: string;
  /** Name of the parent dir; the kubelet uses `<base>-<pid>` so stale trees can be found. */
  parent: string;
  /** Fake mode: the root is a plain directory; control files are created and removed by us. */
  fake?: boolean;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function readPids(dir: string): number[] {
  try {
    return fs
      .readFileSync(path.join(dir, 'cgroup.procs'), 'utf8')
      .split('\n')
      .map((l) => Number.parseInt(l, 10))
      .filter((n) => n > 0);
  } catch {
    return [];
  }
}

/** Sub-directories first (deepest first), then the dir itself. */
function walkLeafFirst(dir: string): string[] {
  const out: string[] = [];
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) if (e.isDirectory()) out.push(...walkLeafFirst(path.join(dir, e.name)));
  out.push(dir);
  return out;
}

/**
 * Kills every process in a real cgroup tree and removes it leaf → root; synchronous so it also
 * works from process.on('exit'). Returns the dirs it could not remove.
 */
export function destroyTreeSync(dir: string, fake = false, timeoutMs = 3000): string[] {
  if (!fs.existsSync(dir)) return [];
  if (fake) {
    for (const d of walkLeafFirst(dir)) for (const pid of readPids(d)) killQuiet(pid);
    fs.rmSync(dir, { recursive: true, force: true });
    return [];
  }
  const deadline = Date.now() + timeoutMs;
  let left: string[] = [];
  for (;;) {
    const dirs = walkLeafFirst(dir);
    for (const d of dirs) for (const pid of readPids(d)) killQuiet(pid);
    left = [];
    for (const d of dirs) {
      try {
        fs.rmdirSync(d);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') left.push(d);
      }
    }
    if (left.length === 0 || Date.now() > deadline) return left;
    sleepSync(20); // killed tasks leave the cgroup when they finish exiting
  }
}

function killQuiet(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes `<base>-<pid>` trees whose owning process is gone (an earlier run that crashed). */
export function cleanStaleTrees(root: string, base: string, fake = false): string[] {
  const removed: string[] = [];
  const re = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(\\d+)$`);
  for (const ctl of CONTROLLERS) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(path.join(root, ctl));
    } catch {
      continue;
    }
    for (const name of names) {
      const m = re.exec(name);
      if (!m || pidAlive(Number(m[1])) || Number(m[1]) === process.pid) continue;
      const dir = path.join(root, ctl, name);
      if (destroyTreeSync(dir, fake).length === 0) removed.push(dir);
    }
  }
  return removed;
}

export class CgroupFs {
  readonly root: string;
  readonly parent: string;
  readonly fake: boolean;

  constructor(opts: CgroupFsOptions) {
    this.root = opts.root;
    this.parent = opts.parent;
    this.fake = opts.fake ?? false;
  }

  /** `<parent>/kubepods`, relative to a controller mount: the agent's --kubepods-dir. */
  get kubepodsRel(): string {
    return path.join(this.parent, 'kubepods');
  }

  dir(ctl: Controller, rel = ''): string {
    return path.join(this.root, ctl, this.kubepodsRel, rel);
  }

  parentDir(ctl: Controller): string {
    return path.join(this.root, ctl, this.parent);
  }

  /** Creates dir `rel` (and ancestors up to the demo parent) in both controllers. */
  ensure(rel: string): void {
    for (const ctl of CONTROLLERS) {
      const d = this.dir(ctl, rel);
      fs.mkdirSync(d, { recursive: true });
      if (this.fake) this.seedFake(ctl, d);
    }
  }

  /** A fake cgroup dir gets the control files the kernel would create. */
  private seedFake(ctl: Controller, d: string): void {
    const files: Record<string, string> =
      ctl === 'cpu'
        ? {
            'cpu.cfs_period_us': `${DEFAULT_PERIOD_US}\n`,
            'cpu.cfs_quota_us': '-1\n',
            'cpu.cfs_burst_us': '0\n',
            'cpu.shares': '1024\n',
            'cpu.stat': 'nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n',
            'cgroup.procs': '',
          }
        : { 'cpuacct.usage': '0\n', 'cgroup.procs': '' };
    for (const [f, v] of Object.entries(files)) {
      const p = path.join(d, f);
      if (!fs.existsSync(p)) fs.writeFileSync(p, v);
    }
  }

  write(rel: string, file: string, value: string | number): void {
    fs.writeFileSync(path.join(this.dir('cpu', rel), file), `${value}`);
  }

  /** Writes a control file of the demo parent itself (above kubepods). */
  writeParent(file: string, value: string | number): void {
    fs.writeFileSync(path.join(this.parentDir('cpu'), file), `${value}`);
  }

  read(ctl: Controller, rel: string, file: string): string {
    return fs.readFileSync(path.join(this.dir(ctl, rel), file), 'utf8').trim();
  }

  periodUs(rel: string): number {
    try {
      const v = Number.parseInt(this.read('cpu', rel, 'cpu.cfs_period_us'), 10);
      return v > 0 ? v : DEFAULT_PERIOD_US;
    } catch {
      return DEFAULT_PERIOD_US;
    }
  }

  /** Kills members and removes `rel` in both controllers. */
  remove(rel: string): string[] {
    return CONTROLLERS.flatMap((ctl) => destroyTreeSync(this.dir(ctl, rel), this.fake));
  }

  /** Removes the whole demo parent in both controllers. */
  destroyAll(): string[] {
    return CONTROLLERS.flatMap((ctl) => destroyTreeSync(this.parentDir(ctl), this.fake));
  }
}
