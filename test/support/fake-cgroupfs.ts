// A temp-dir cgroupfs for cgroup v1 and v2 whose write() ENFORCES the kernel's rules, so the agent's
// real planner + writer run against it unchanged (inject it as the CgroupFs). Written from the
// kernel's tg_set_cfs_bandwidth / tg_cfs_schedulable_down independently of daemon/cgroup/plan.ts,
// so a planner bug is caught here rather than mirrored.
//
// Reused by the operator e2e and the demo's --simulate:
//   const fake = FakeCgroupFs.create({ version: 1 });
//   const { podDir, containerDirs } = fake.addPod({ uid, qosClass: 'Burstable', containers: [{ id: 'containerd://abc', quotaUs: 200000 }] });
//   fake.values(containerDirs[0]); fake.setStat(dir, { nrPeriods: 10, nrThrottled: 5 }); fake.removeCgroup(podDir); fake.cleanup();
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CgroupFs } from '../../daemon/cgroup/fs.js';
import type { QosClass } from '../../protocol/index.js';

export interface FakeOptions {
  version: 1 | 2;
  driver?: 'cgroupfs' | 'systemd';
  /** Burst files exist (kernel ≥ 5.14). Default true. */
  burst?: boolean;
  /** Alibaba-Cloud-Linux semantics: burst may exceed quota. Default false (mainline). */
  burstAboveQuota?: boolean;
  /** kubepods dir relative to the cpu controller; default kubepods.slice (systemd) or kubepods. */
  kubepodsDir?: string;
  /** Logical CPUs written to the fake /proc/stat. Default 4. */
  cpus?: number;
  /** Parent directory for the temp dir (default os.tmpdir()). */
  baseDir?: string;
}

export interface FakeValues {
  periodUs: number;
  quotaUs: number;
  burstUs: number | null;
}

export interface FakeStat {
  nrPeriods?: number;
  nrThrottled?: number;
  throttledUs?: number;
  nrBursts?: number;
  burstUs?: number;
  usageUs?: number;
}

export interface FakeContainer {
  /** `<runtime>://<id>` as in pod status. */
  id: string;
  quotaUs?: number;
  periodUs?: number;
  burstUs?: number;
}

export interface FakePod {
  uid: string;
  qosClass: QosClass;
  /** Default: sum of container quotas (unlimited if any container is). */
  quotaUs?: number;
  periodUs?: number;
  burstUs?: number;
  containers: FakeContainer[];
}

const MAX_BW_US = 2 ** 44 - 1;

export class FakeCgroupFs implements CgroupFs {
  readonly root: string;
  readonly cpuRoot: string;
  readonly procRoot: string;
  readonly kubepodsDir: string;
  readonly version: 1 | 2;
  readonly driver: 'cgroupfs' | 'systemd';
  readonly burst: boolean;
  readonly burstAboveQuota: boolean;
  /** Every attempted bandwidth write, with the errno it got (null = accepted). */
  readonly writeLog: Array<{ path: string; value: string; error: string | null }> = [];
  einvalCount = 0;
  /** Test hook run before each write (e.g. remove a cgroup mid-plan). */
  beforeWrite: ((file: string, value: string) => void) | null = null;

  static create(opts: FakeOptions): FakeCgroupFs {
    return new FakeCgroupFs(opts);
  }

  private constructor(opts: FakeOptions) {
    this.version = opts.version;
    this.driver = opts.driver ?? 'cgroupfs';
    this.burst = opts.burst ?? true;
    this.burstAboveQuota = opts.burstAboveQuota ?? false;
    this.root = fs.mkdtempSync(path.join(opts.baseDir ?? os.tmpdir(), 'cpuburst-fakecg-'));
    this.cpuRoot = this.version === 1 ? path.join(this.root, 'cpu') : this.root;
    this.procRoot = path.join(this.root, '.proc');
    this.kubepodsDir = opts.kubepodsDir ?? (this.driver === 'systemd' ? 'kubepods.slice' : 'kubepods');
    if (this.version === 2)
      fs.writeFileSync(path.join(this.root, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
    else fs.mkdirSync(this.cpuRoot);
    this.makeCgroupFiles(this.cpuRoot);
    let p = this.cpuRoot;
    for (const seg of this.kubepodsDir.split('/')) {
      p = path.join(p, seg);
      this.mkdir(p);
    }
    fs.mkdirSync(this.procRoot);
    this.setProcStat(opts.cpus ?? 4, 0, 0);
  }

  // ---- CgroupFs ---------------------------------------------------------------------------------
  read(p: string): string {
    return fs.readFileSync(p, 'utf8');
  }

  exists(p: string): boolean {
    return fs.existsSync(p);
  }

  isCgroup2(p: string): boolean {
    return fs.existsSync(path.join(p, 'cgroup.controllers'));
  }

  listDirs(p: string): string[] {
    try {
      return fs
        .readdirSync(p, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name);
    } catch {
      return [];
    }
  }

  mkdir(p: string): void {
    if (!fs.existsSync(path.dirname(p))) throw errno('ENOENT', `mkdir ${p}`);
    if (fs.existsSync(p)) throw errno('EEXIST', `mkdir ${p}`);
    fs.mkdirSync(p);
    this.makeCgroupFiles(p);
  }

  rmdir(p: string): void {
    if (!fs.existsSync(p)) throw errno('ENOENT', `rmdir ${p}`);
    if (this.listDirs(p).length > 0) throw errno('EBUSY', `rmdir ${p}: has children`);
    fs.rmSync(p, { recursive: true, force: true });
  }

  write(file: string, value: string): void {
    this.beforeWrite?.(file, value);
    const dir = path.dirname(file);
    const name = path.basename(file);
    const record = (error: string | null) => this.writeLog.push({ path: file, value, error });
    if (!fs.existsSync(dir) || !fs.existsSync(file)) {
      record('ENOENT');
      throw errno('ENOENT', `open ${file}`);
    }
    if (!BANDWIDTH_FILES.has(name)) {
      fs.writeFileSync(file, value);
      return;
    }
    const next = this.parseWrite(dir, name, value);
    const why = next ? this.kernelRefusal(dir, next) : `unparsable value ${JSON.stringify(value)}`;
    if (why) {
      this.einvalCount++;
      record('EINVAL');
      throw errno('EINVAL', `write ${file} ${JSON.stringify(value)}: ${why}`);
    }
    record(null);
    this.store(dir, next!);
  }

  // ---- tree building and inspection ---------------------------------------------------------------
  get kubepodsPath(): string {
    return path.join(this.cpuRoot, this.kubepodsDir);
  }

  podDir(qosClass: QosClass, uid: string): string {
    const kp = this.kubepodsPath;
    if (this.driver === 'systemd') {
      const prefix = path.basename(this.kubepodsDir).replace(/\.slice$/, '');
      const u = uid.replace(/-/g, '_');
      if (qosClass === 'Guaranteed') return path.join(kp, `${prefix}-pod${u}.slice`);
      const q = qosClass === 'Burstable' ? 'burstable' : 'besteffort';
      return path.join(kp, `${prefix}-${q}.slice`, `${prefix}-${q}-pod${u}.slice`);
    }
    if (qosClass === 'Guaranteed') return path.join(kp, `pod${uid}`);
    return path.join(kp, qosClass === 'Burstable' ? 'burstable' : 'besteffort', `pod${uid}`);
  }

  containerDir(podDir: string, containerID: string): string {
    const m = /^([a-z0-9.-]+):\/\/(.+)$/.exec(containerID);
    const runtime = m?.[1] ?? 'containerd';
    const id = m?.[2] ?? containerID;
    if (this.driver === 'cgroupfs') return path.join(podDir, id);
    const prefix = runtime === 'containerd' ? 'cri-containerd' : runtime === 'cri-o' ? 'crio' : runtime;
    return path.join(podDir, `${prefix}-${id}.scope`);
  }

  /** Creates a pod (and its QoS parent) with containers, as the kubelet would. */
  addPod(pod: FakePod): { podDir: string; containerDirs: string[] } {
    const podDir = this.podDir(pod.qosClass, pod.uid);
    let p = this.kubepodsPath;
    for (const seg of path.relative(this.kubepodsPath, podDir).split(path.sep)) {
      p = path.join(p, seg);
      if (!fs.existsSync(p)) this.mkdir(p);
    }
    const period = pod.periodUs ?? 100000;
    const unlimited = pod.containers.some((c) => c.quotaUs === undefined || c.quotaUs < 0);
    const sum = pod.containers.reduce((s, c) => s + Math.max(0, c.quotaUs ?? 0), 0);
    const podQuota = pod.quotaUs ?? (unlimited || pod.containers.length === 0 ? -1 : sum);
    this.store(podDir, {
      periodUs: period,
      quotaUs: podQuota,
      burstUs: this.burst ? (pod.burstUs ?? 0) : null,
    });
    const containerDirs = pod.containers.map((c) => {
      const dir = this.containerDir(podDir, c.id);
      this.mkdir(dir);
      this.store(dir, {
        periodUs: c.periodUs ?? period,
        quotaUs: c.quotaUs ?? -1,
        burstUs: this.burst ? (c.burstUs ?? 0) : null,
      });
      return dir;
    });
    return { podDir, containerDirs };
  }

  /** Sets values without the kernel checks (another writer, e.g. the kubelet, did it). */
  setRaw(dir: string, v: Partial<FakeValues>): void {
    this.store(dir, { ...this.values(dir), ...v });
  }

  values(dir: string): FakeValues {
    if (this.version === 2) {
      const [q, p] = fs.readFileSync(path.join(dir, 'cpu.max'), 'utf8').trim().split(/\s+/);
      const bf = path.join(dir, 'cpu.max.burst');
      return {
        quotaUs: q === 'max' ? -1 : Number(q),
        periodUs: Number(p),
        burstUs: fs.existsSync(bf) ? Number(fs.readFileSync(bf, 'utf8')) : null,
      };
    }
    const bf = path.join(dir, 'cpu.cfs_burst_us');
    return {
      quotaUs: Number(fs.readFileSync(path.join(dir, 'cpu.cfs_quota_us'), 'utf8')),
      periodUs: Number(fs.readFileSync(path.join(dir, 'cpu.cfs_period_us'), 'utf8')),
      burstUs: fs.existsSync(bf) ? Number(fs.readFileSync(bf, 'utf8')) : null,
    };
  }

  /** Overwrites cpu.stat (and cpuacct.usage on v1) with the given counters (missing ones keep their value). */
  setStat(dir: string, s: FakeStat): void {
    this.writeStat(dir, { ...this.stat(dir), ...s });
  }

  private writeStat(dir: string, n: Required<FakeStat>): void {
    if (this.version === 2) {
      fs.writeFileSync(
        path.join(dir, 'cpu.stat'),
        `usage_usec ${n.usageUs}\nuser_usec ${n.usageUs}\nsystem_usec 0\nnr_periods ${n.nrPeriods}\nnr_throttled ${n.nrThrottled}\nthrottled_usec ${n.throttledUs}\nnr_bursts ${n.nrBursts}\nburst_usec ${n.burstUs}\n`,
      );
    } else {
      fs.writeFileSync(
        path.join(dir, 'cpu.stat'),
        `nr_periods ${n.nrPeriods}\nnr_throttled ${n.nrThrottled}\nthrottled_time ${n.throttledUs * 1000}\nnr_bursts ${n.nrBursts}\nburst_time ${n.burstUs * 1000}\n`,
      );
      fs.writeFileSync(path.join(dir, 'cpuacct.usage'), `${n.usageUs * 1000}\n`);
    }
  }

  stat(dir: string): Required<FakeStat> {
    const kv: Record<string, number> = {};
    for (const line of fs.readFileSync(path.join(dir, 'cpu.stat'), 'utf8').split('\n')) {
      const [k, v] = line.split(' ');
      if (k && v) kv[k] = Number(v);
    }
    const v1 = this.version === 1;
    return {
      nrPeriods: kv.nr_periods ?? 0,
      nrThrottled: kv.nr_throttled ?? 0,
      throttledUs: v1 ? (kv.throttled_time ?? 0) / 1000 : (kv.throttled_usec ?? 0),
      nrBursts: kv.nr_bursts ?? 0,
      burstUs: v1 ? (kv.burst_time ?? 0) / 1000 : (kv.burst_usec ?? 0),
      usageUs: v1
        ? Number(fs.readFileSync(path.join(dir, 'cpuacct.usage'), 'utf8')) / 1000
        : (kv.usage_usec ?? 0),
    };
  }

  /** Node-wide /proc/stat: cumulative busy and idle seconds across all CPUs. */
  setProcStat(cpus: number, busySeconds: number, idleSeconds: number): void {
    const hz = 100;
    const busy = Math.round(busySeconds * hz);
    const idle = Math.round(idleSeconds * hz);
    const lines = [`cpu  ${busy} 0 0 ${idle} 0 0 0 0 0 0`];
    for (let i = 0; i < cpus; i++)
      lines.push(`cpu${i} ${Math.round(busy / cpus)} 0 0 ${Math.round(idle / cpus)} 0 0 0 0 0 0`);
    fs.writeFileSync(path.join(this.procRoot, 'stat'), `${lines.join('\n')}\nintr 0\n`);
  }

  /** Removes a cgroup and everything below it (pod deletion, or a container exiting mid-plan). */
  removeCgroup(dir: string): void {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  cleanup(): void {
    fs.rmSync(this.root, { recursive: true, force: true });
  }

  // ---- the kernel model -----------------------------------------------------------------------------
  private makeCgroupFiles(dir: string): void {
    const w = (f: string, v: string) => fs.writeFileSync(path.join(dir, f), v);
    if (this.version === 2) {
      w('cpu.max', 'max 100000\n');
      if (this.burst) w('cpu.max.burst', '0\n');
    } else {
      w('cpu.cfs_period_us', '100000\n');
      w('cpu.cfs_quota_us', '-1\n');
      if (this.burst) w('cpu.cfs_burst_us', '0\n');
      w('cpuacct.usage', '0\n');
      w('tasks', '');
    }
    w('cgroup.procs', '');
    this.writeStat(dir, {
      nrPeriods: 0,
      nrThrottled: 0,
      throttledUs: 0,
      nrBursts: 0,
      burstUs: 0,
      usageUs: 0,
    });
  }

  private store(dir: string, v: FakeValues): void {
    if (this.version === 2) {
      fs.writeFileSync(path.join(dir, 'cpu.max'), `${v.quotaUs < 0 ? 'max' : v.quotaUs} ${v.periodUs}\n`);
      if (v.burstUs !== null && this.burst)
        fs.writeFileSync(path.join(dir, 'cpu.max.burst'), `${v.burstUs}\n`);
      return;
    }
    fs.writeFileSync(path.join(dir, 'cpu.cfs_period_us'), `${v.periodUs}\n`);
    fs.writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), `${v.quotaUs < 0 ? -1 : v.quotaUs}\n`);
    if (v.burstUs !== null && this.burst)
      fs.writeFileSync(path.join(dir, 'cpu.cfs_burst_us'), `${v.burstUs}\n`);
  }

  private parseWrite(dir: string, name: string, raw: string): FakeValues | null {
    const cur = this.values(dir);
    const v = raw.trim();
    const u64 = (s: string) => (/^\d+$/.test(s) ? Number(s) : null);
    switch (name) {
      case 'cpu.cfs_quota_us': {
        if (!/^-?\d+$/.test(v)) return null;
        const q = Number(v);
        return { ...cur, quotaUs: q < 0 ? -1 : q };
      }
      case 'cpu.cfs_period_us': {
        const p = u64(v);
        return p === null ? null : { ...cur, periodUs: p };
      }
      case 'cpu.cfs_burst_us':
      case 'cpu.max.burst': {
        const b = u64(v);
        return b === null ? null : { ...cur, burstUs: b };
      }
      case 'cpu.max': {
        const [q, p] = v.split(/\s+/);
        const quota = q === 'max' ? -1 : u64(q ?? '');
        const period = p === undefined ? cur.periodUs : u64(p);
        if (quota === null || period === null) return null;
        return { ...cur, quotaUs: quota, periodUs: period };
      }
      default:
        return null;
    }
  }

  /** The reason the kernel would answer EINVAL, or null when it accepts. */
  private kernelRefusal(dir: string, next: FakeValues): string | null {
    if (path.resolve(dir) === path.resolve(this.cpuRoot)) return 'the root cgroup has no bandwidth limit';
    const { periodUs: p, quotaUs: q } = next;
    const b = next.burstUs ?? 0;
    if (p < 1000 || p > 1_000_000) return `period ${p} outside 1ms..1s`;
    if (q !== -1 && q < 1000) return `quota ${q} below 1ms`;
    if (q !== -1 && q > MAX_BW_US) return 'quota above max_cfs_runtime';
    if (b > MAX_BW_US) return 'burst above max_cfs_runtime';
    if (q !== -1 && ((!this.burstAboveQuota && b > q) || b + q > MAX_BW_US)) return `burst ${b} > quota ${q}`;
    if (this.version === 1) return this.hierarchyRefusal(dir, next);
    return null; // v2 caps children silently
  }

  /** v1 tg_cfs_schedulable_down over the subtree of `dir`, with `dir` at its new values. */
  private hierarchyRefusal(dir: string, next: FakeValues): string | null {
    const ratio = (v: FakeValues) => (v.quotaUs === -1 ? Number.POSITIVE_INFINITY : v.quotaUs / v.periodUs);
    // Effective limit of the parent chain: the nearest limited ancestor.
    let parentEff = Number.POSITIVE_INFINITY;
    for (let d = path.dirname(dir); d.startsWith(this.cpuRoot) && d !== this.cpuRoot; d = path.dirname(d)) {
      const r = ratio(this.values(d));
      if (r !== Number.POSITIVE_INFINITY) {
        parentEff = r;
        break;
      }
    }
    const walk = (d: string, v: FakeValues, parent: number): string | null => {
      const r = ratio(v);
      if (r !== Number.POSITIVE_INFINITY && r > parent + 1e-12)
        return `${path.relative(this.cpuRoot, d)} quota ratio ${r} above parent's ${parent}`;
      const eff = r === Number.POSITIVE_INFINITY ? parent : r;
      for (const child of this.listDirs(d)) {
        const err = walk(path.join(d, child), this.values(path.join(d, child)), eff);
        if (err) return err;
      }
      return null;
    };
    return walk(dir, next, parentEff);
  }
}

const BANDWIDTH_FILES = new Set([
  'cpu.cfs_quota_us',
  'cpu.cfs_period_us',
  'cpu.cfs_burst_us',
  'cpu.max',
  'cpu.max.burst',
]);

function errno(code: string, message: string): NodeJS.ErrnoException {
  const err = new Error(`${code}: ${message}`) as NodeJS.ErrnoException;
  err.code = code;
  return err;
}
