// The node bench P4 runs the agent over: N burst-enabled Burstable pods, each with an app container,
// a sidecar and an unmanaged sandbox (pause) cgroup, built on the real cgroup v1 tree (cpu + the
// separate cpuacct hierarchy, as the kubelet's cgroupfs driver lays it out) or on the fake cgroupfs.
// A few pods are "busy": their app container has a small limit and a CPU-bound process in it
// (real), or cpu.stat counters that advance as if it were throttled (fake).
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { DecisionDocument } from '../../protocol/index.js';
import { container, document, podDecision } from '../../test/daemon/harness.js';
import type { FakeCgroupFs } from '../../test/support/fake-cgroupfs.js';

export const NODE = 'p4-node';
const PERIOD_US = 100_000;

export interface CtrSpec {
  name: string;
  /** `<runtime>://<id>`; the cgroupfs driver's dir name is the bare id. */
  id: string;
  /** null = unmanaged (the sandbox): unlimited, not in the decision. */
  limitMilli: number | null;
}

export interface PodSpec {
  uid: string;
  busy: boolean;
  containers: CtrSpec[];
}

export function podSpecs(pods: number, busy: number): PodSpec[] {
  return Array.from({ length: pods }, (_, i) => ({
    uid: `p4-${String(i).padStart(4, '0')}`,
    busy: i < busy,
    containers: [
      { name: 'app', id: `containerd://p4app${i}`, limitMilli: i < busy ? 100 : 500 },
      { name: 'sidecar', id: `containerd://p4side${i}`, limitMilli: 200 },
      { name: 'pause', id: `containerd://p4pause${i}`, limitMilli: null },
    ],
  }));
}

/** The decision file: every pod burst-enabled with policy auto (static burst + dynamic quota). */
export function decisionDoc(specs: PodSpec[], version = 1): DecisionDocument {
  return document(
    version,
    specs.map((p) =>
      podDecision(
        p.uid,
        p.containers.filter((c) => c.limitMilli !== null).map((c) => container(c.name, c.id, c.limitMilli)),
        { policy: 'auto', cpuBurstPercent: 100, cfsQuotaBurstPercent: 300 },
      ),
    ),
    { node: NODE },
  );
}

const bareId = (id: string) => id.replace(/^[a-z0-9.-]+:\/\//, '');
const quotaOf = (limitMilli: number | null) => (limitMilli === null ? -1 : (limitMilli * PERIOD_US) / 1000);

export interface RealTree {
  /** --kubepods-dir relative to /sys/fs/cgroup/cpu. */
  kubepodsDir: string;
  busyPids: number[];
  /** Kills the busy processes (the tree itself is removed with the bench's parent cgroups). */
  stop(): void;
}

/**
 * Builds `<cpuParent>/kubepods/burstable/pod<uid>/<id>` with the kubelet's quotas (containers first,
 * then the pod = Σ limits) and the same dirs under `<acctParent>` so cpuacct.usage is readable.
 */
export function buildRealTree(cpuParent: string, acctParent: string, specs: PodSpec[]): RealTree {
  const w = (dir: string, file: string, v: string | number) =>
    fs.writeFileSync(path.join(dir, file), String(v));
  const procs: ChildProcess[] = [];
  for (const p of specs) {
    const rel = path.join('kubepods', 'burstable', `pod${p.uid}`);
    const podDir = path.join(cpuParent, rel);
    fs.mkdirSync(podDir, { recursive: true });
    fs.mkdirSync(path.join(acctParent, rel), { recursive: true });
    let sum = 0;
    for (const c of p.containers) {
      const dir = path.join(podDir, bareId(c.id));
      fs.mkdirSync(dir);
      fs.mkdirSync(path.join(acctParent, rel, bareId(c.id)));
      if (c.limitMilli !== null) {
        w(dir, 'cpu.cfs_quota_us', quotaOf(c.limitMilli));
        sum += quotaOf(c.limitMilli);
      }
    }
    w(podDir, 'cpu.cfs_quota_us', sum);
    if (p.busy) {
      // A CPU-bound process in the app container: throttled at its 100m limit until the agent scales up.
      const proc = spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' });
      procs.push(proc);
      const app = bareId(p.containers[0]!.id);
      w(path.join(podDir, app), 'cgroup.procs', proc.pid!);
      w(path.join(acctParent, rel, app), 'cgroup.procs', proc.pid!);
    }
  }
  return {
    kubepodsDir: path.join(path.basename(cpuParent), 'kubepods'),
    busyPids: procs.map((p) => p.pid!),
    stop() {
      for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    },
  };
}

export function buildFakeTree(fake: FakeCgroupFs, specs: PodSpec[]): string[] {
  const busyDirs: string[] = [];
  for (const p of specs) {
    const { containerDirs } = fake.addPod({
      uid: p.uid,
      qosClass: 'Burstable',
      quotaUs: p.containers.reduce((s, c) => s + Math.max(0, quotaOf(c.limitMilli)), 0),
      containers: p.containers.map((c) => ({
        id: c.id,
        ...(c.limitMilli === null ? {} : { quotaUs: quotaOf(c.limitMilli) }),
      })),
    });
    if (p.busy) busyDirs.push(containerDirs[0]!);
  }
  return busyDirs;
}

/**
 * Returns a tick that advances the fake by one second of a busy node: busy app containers use their
 * whole quota and are throttled in 80 % of their periods; the node is otherwise idle (so the agent
 * may scale their quota up). /proc/stat is cumulative, kept here.
 */
export function fakeTicker(fake: FakeCgroupFs, busyDirs: string[], cpus: number): () => void {
  let busyTotal = 0;
  let idleTotal = 0;
  return () => {
    let busyCores = 0.05 * cpus;
    for (const dir of busyDirs) {
      const s = fake.stat(dir);
      const v = fake.values(dir);
      const cores = v.quotaUs > 0 ? v.quotaUs / v.periodUs : 1;
      busyCores += cores;
      fake.setStat(dir, {
        nrPeriods: s.nrPeriods + 10,
        nrThrottled: s.nrThrottled + 8,
        throttledUs: s.throttledUs + 8 * 20_000,
        usageUs: s.usageUs + Math.round(cores * 1e6),
      });
    }
    busyTotal += Math.min(cpus, busyCores);
    idleTotal += Math.max(0, cpus - busyCores);
    fake.setProcStat(cpus, busyTotal, idleTotal);
  };
}
