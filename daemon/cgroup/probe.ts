// Per-node capability probe: is there a burst file, and does the kernel accept burst > quota
// (Alibaba Cloud Linux does, mainline refuses with EINVAL)? Probed in a scratch child cgroup that
// is created and removed here, never on a pod.
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../../common/log.js';
import type { CgroupFs } from './fs.js';
import type { CgroupLayout } from './layout.js';
import { burstFile, FILES, formatCpuMax } from './read.js';

export interface CgroupCapabilities {
  burstSupported: boolean;
  burstAboveQuota: boolean;
  kernel: string;
  cpus: number;
}

export function probeCapabilities(fs: CgroupFs, layout: CgroupLayout, log: Logger): CgroupCapabilities {
  const base = { kernel: os.release(), cpus: os.availableParallelism?.() ?? os.cpus().length };
  const kubepods = path.join(layout.cpuRoot, layout.kubepodsDir);
  if (!fs.exists(path.join(kubepods, burstFile(layout.version))))
    return { ...base, burstSupported: false, burstAboveQuota: false };
  const scratch = path.join(kubepods, `cpuburst-probe-${process.pid}`);
  let burstAboveQuota = false;
  try {
    if (fs.exists(scratch)) fs.rmdir(scratch);
    fs.mkdir(scratch);
    if (layout.version === 2) fs.write(path.join(scratch, FILES[2].max), formatCpuMax(2000, 100000));
    else fs.write(path.join(scratch, FILES[1].quota), '2000');
    try {
      fs.write(path.join(scratch, burstFile(layout.version)), '4000');
      burstAboveQuota = true;
    } catch {
      burstAboveQuota = false; // EINVAL: mainline's burst ≤ quota
    }
  } catch (err) {
    log.warn('Capability probe failed, assuming burst ≤ quota', {
      dir: scratch,
      error: (err as Error).message,
    });
  } finally {
    try {
      if (fs.exists(scratch)) fs.rmdir(scratch);
    } catch (err) {
      log.warn('Could not remove probe cgroup', { dir: scratch, error: (err as Error).message });
    }
  }
  return { ...base, burstSupported: true, burstAboveQuota };
}
