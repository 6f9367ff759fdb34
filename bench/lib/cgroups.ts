// Real cgroup v1 trees for benchmarks: one parent per run, /sys/fs/cgroup/{cpu,cpuacct}/
// cpuburst-bench-<part>-<pid>/kubepods/…, laid out like the kubelet's cgroupfs driver so the real
// agent finds the pods. Everything is removed leaf → root (member processes killed first).
import fs from 'node:fs';
import path from 'node:path';
import { removeTree } from '../../test/support/cgroup-tree.js';

export const V1_ROOT = '/sys/fs/cgroup';
export const CPU = path.join(V1_ROOT, 'cpu');
export const CPUACCT = path.join(V1_ROOT, 'cpuacct');
export const PERIOD_US = 100_000;

/** null when a writable v1 cpu controller with cpu.cfs_burst_us exists, else why not. */
export function realCgroupProblem(): string | null {
  if (!fs.existsSync(path.join(CPU, 'cpu.cfs_quota_us'))) return `no cgroup v1 cpu controller at ${CPU}`;
  if (!fs.existsSync(path.join(CPU, 'cpu.cfs_burst_us')))
    return `${CPU} has no cpu.cfs_burst_us (kernel < 5.14)`;
  if (!fs.existsSync(path.join(CPUACCT, 'cpuacct.usage'))) return `no cpuacct hierarchy at ${CPUACCT}`;
  const probe = path.join(CPU, `cpuburst-bench-probe-${process.pid}`);
  try {
    fs.mkdirSync(probe);
    fs.rmdirSync(probe);
  } catch (err) {
    return `${CPU} is not writable: ${(err as Error).message}`;
  }
  return null;
}

export type Qos = 'burstable' | 'besteffort';

export interface BenchPodCgroup {
  uid: string;
  containerId: string;
  /** Container cgroup relative to the controller mounts (cpu/ and cpuacct/). */
  containerRel: string;
  podRel: string;
}

export class BenchCgroups {
  /** e.g. cpuburst-bench-p1-burst-1234 */
  readonly parent: string;
  /** the --kubepods-dir the agent gets */
  readonly kubepodsRel: string;

  constructor(part: string) {
    this.parent = `cpuburst-bench-${part}-${process.pid}`;
    this.kubepodsRel = `${this.parent}/kubepods`;
    for (const root of [CPU, CPUACCT]) fs.mkdirSync(path.join(root, this.kubepodsRel), { recursive: true });
  }

  /**
   * cpu.shares of the run's parent against everything else on the machine (v1 root weight 1024 per
   * task or group): a high weight makes the pods behave as on a dedicated node under unrelated load.
   */
  setParentShares(shares: number): void {
    fs.writeFileSync(path.join(CPU, this.parent, 'cpu.shares'), String(shares));
  }

  /** A cgroup beside kubepods (e.g. for the agent, as a system slice): its path relative to the mounts. */
  createSystem(name: string): string {
    const rel = `${this.parent}/${name}`;
    for (const root of [CPU, CPUACCT]) fs.mkdirSync(path.join(root, rel), { recursive: true });
    return rel;
  }

  /**
   * A pod with one container as the kubelet makes it: burstable → quota = limit on the pod and the
   * container; besteffort → no quota, cpu.shares 2.
   */
  createPod(uid: string, containerId: string, qos: Qos, limitMilli: number | null): BenchPodCgroup {
    const podRel = `${this.kubepodsRel}/${qos}/pod${uid}`;
    const containerRel = `${podRel}/${containerId}`;
    for (const root of [CPU, CPUACCT]) fs.mkdirSync(path.join(root, containerRel), { recursive: true });
    if (qos === 'besteffort') {
      fs.writeFileSync(path.join(CPU, this.kubepodsRel, qos, 'cpu.shares'), '2');
      fs.writeFileSync(path.join(CPU, podRel, 'cpu.shares'), '2');
      fs.writeFileSync(path.join(CPU, containerRel, 'cpu.shares'), '2');
    } else if (limitMilli != null) {
      const quota = String(quotaUsFor(limitMilli));
      fs.writeFileSync(path.join(CPU, podRel, 'cpu.cfs_quota_us'), quota);
      fs.writeFileSync(path.join(CPU, containerRel, 'cpu.cfs_quota_us'), quota);
    }
    return { uid, containerId, containerRel, podRel };
  }

  /** The shell prefix that puts a process into the container's cgroups before it execs. */
  joinScript(containerRel: string): string {
    return ['cpu', 'cpuacct']
      .map((c) => `echo $$ > ${path.join(V1_ROOT, c, containerRel, 'cgroup.procs')}`)
      .join(' && ');
  }

  removePod(pod: BenchPodCgroup): void {
    for (const root of [CPU, CPUACCT]) removeTree(path.join(root, pod.podRel), root);
  }

  /** Removes the whole run's tree (idempotent). */
  removeAll(): void {
    for (const root of [CPU, CPUACCT]) removeTree(path.join(root, this.parent), root);
  }
}

export function quotaUsFor(limitMilli: number): number {
  return Math.max(1000, Math.floor((limitMilli * PERIOD_US) / 1000));
}

export { removeTree };

/** cpuacct.usage of a cgroup in ns (NaN when unreadable). */
export function usageNs(rel: string): number {
  try {
    return Number(fs.readFileSync(path.join(CPUACCT, rel, 'cpuacct.usage'), 'utf8').trim());
  } catch {
    return Number.NaN;
  }
}

export function readQuotaUs(rel: string): number {
  try {
    return Number(fs.readFileSync(path.join(CPU, rel, 'cpu.cfs_quota_us'), 'utf8').trim());
  } catch {
    return Number.NaN;
  }
}
