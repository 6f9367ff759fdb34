// --simulate: enforces the fake cgroupfs's CFS values on the real container processes from user
// space (SIGSTOP when the period's runtime is used up, SIGCONT at the refill) and writes the
// fake cpu.stat / cpuacct.usage the agent and the demo read. CPU time comes from
// /proc/<pid>/schedstat (ns on CPU). Coarser than the kernel (a few ms), same shape.
import fs from 'node:fs';
import path from 'node:path';
import type { PodRuntimeInfo } from '../../devcluster/kubelet/kubelet.js';
import { type CfsLimits, type CfsState, formatCpuStat, initialCfs, stepCfs } from './cfs.js';

interface Tracked {
  pid: number;
  cpuNs: number;
  state: CfsState;
  stopped: boolean;
}

function readNum(file: string, dflt: number): number {
  try {
    const v = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isFinite(v) ? v : dflt;
  } catch {
    return dflt;
  }
}

function cpuNsOf(pid: number): number | null {
  try {
    return Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return null;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone
  }
}

export function startBandwidthEmulator(o: { root: string; pods: () => PodRuntimeInfo[]; tickMs?: number }): {
  stop(): void;
} {
  const tracked = new Map<string, Tracked>();
  const nowUs = () => Number(process.hrtime.bigint() / 1000n);
  const tick = () => {
    const seen = new Set<string>();
    for (const pod of o.pods()) {
      for (const c of pod.containers) {
        if (c.exit || c.pid <= 0) continue;
        seen.add(c.cgroup);
        const cpuDir = path.join(o.root, 'cpu', c.cgroup);
        const limits: CfsLimits = {
          quotaUs: readNum(path.join(cpuDir, 'cpu.cfs_quota_us'), -1),
          periodUs: readNum(path.join(cpuDir, 'cpu.cfs_period_us'), 100000),
          burstUs: readNum(path.join(cpuDir, 'cpu.cfs_burst_us'), 0),
        };
        const ns = cpuNsOf(c.pid);
        if (ns === null) continue;
        let t = tracked.get(c.cgroup);
        if (!t) {
          t = { pid: c.pid, cpuNs: ns, state: initialCfs(nowUs(), limits), stopped: false };
          tracked.set(c.cgroup, t);
        }
        t.state = stepCfs(t.state, limits, nowUs(), Math.max(0, (ns - t.cpuNs) / 1000));
        t.cpuNs = ns;
        if (t.state.throttled && !t.stopped) signal(c.pid, 'SIGSTOP');
        if (!t.state.throttled && t.stopped) signal(c.pid, 'SIGCONT');
        t.stopped = t.state.throttled;
        try {
          fs.writeFileSync(path.join(cpuDir, 'cpu.stat'), formatCpuStat(t.state));
          fs.writeFileSync(
            path.join(o.root, 'cpuacct', c.cgroup, 'cpuacct.usage'),
            `${Math.round(t.state.usageUs * 1000)}\n`,
          );
        } catch {
          // the pod is being removed
        }
      }
    }
    for (const [k, t] of tracked) {
      if (seen.has(k)) continue;
      if (t.stopped) signal(t.pid, 'SIGCONT');
      tracked.delete(k);
    }
  };
  const timer = setInterval(tick, o.tickMs ?? 2);
  return {
    stop() {
      clearInterval(timer);
      for (const t of tracked.values()) if (t.stopped) signal(t.pid, 'SIGCONT');
    },
  };
}
