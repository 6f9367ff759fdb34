// Can this machine run the real-cgroup demo? Detects root and a writable cgroup v1 cpu controller
// (with a separate cpuacct) and says exactly what is missing and what to run instead.
import fs from 'node:fs';
import path from 'node:path';

export interface PreflightFacts {
  uid: number;
  cpuControllerExists: boolean;
  cpuQuotaFileExists: boolean;
  cpuWritable: boolean;
  cpuacctExists: boolean;
  unifiedOnly: boolean;
  burstFileExists: boolean;
}

export function gatherFacts(root: string): PreflightFacts {
  const cpu = path.join(root, 'cpu');
  let cpuWritable = false;
  try {
    fs.accessSync(cpu, fs.constants.W_OK);
    cpuWritable = true;
  } catch {
    // not writable
  }
  return {
    uid: process.getuid?.() ?? -1,
    cpuControllerExists: fs.existsSync(cpu),
    cpuQuotaFileExists: fs.existsSync(path.join(cpu, 'cpu.cfs_quota_us')),
    cpuWritable,
    cpuacctExists: fs.existsSync(path.join(root, 'cpuacct', 'cpuacct.usage')),
    unifiedOnly: fs.existsSync(path.join(root, 'cgroup.controllers')),
    burstFileExists: fs.existsSync(path.join(cpu, 'cpu.cfs_burst_us')),
  };
}

/** Pure: null when the real demo can run, else the message to print. */
export function preflightProblem(f: PreflightFacts, root: string): string | null {
  const problems: string[] = [];
  if (f.uid !== 0)
    problems.push(
      `not running as root (uid ${f.uid}); the demo creates cgroups and moves processes into them`,
    );
  if (f.unifiedOnly)
    problems.push(
      `${root} is cgroup v2 only; the demo's mini-kubelet needs the cgroup v1 cpu and cpuacct controllers`,
    );
  else if (!f.cpuControllerExists || !f.cpuQuotaFileExists)
    problems.push(`no cgroup v1 cpu controller with CFS quota at ${path.join(root, 'cpu')}`);
  else if (!f.cpuWritable)
    problems.push(`the cgroup cpu controller at ${path.join(root, 'cpu')} is not writable`);
  if (!f.unifiedOnly && f.cpuControllerExists && !f.cpuacctExists)
    problems.push(`no cpuacct controller at ${path.join(root, 'cpuacct')} (CPU usage cannot be measured)`);
  if (problems.length === 0) return null;
  return [
    'cpuburst demo: this machine cannot run the real-cgroup demo:',
    ...problems.map((p) => `  - ${p}`),
    'Run the fake-cgroupfs mode instead (every component still runs; cgroups are simulated):',
    '  cpuburst demo --simulate        (or: make demo DEMO_ARGS=--simulate)',
  ].join('\n');
}
