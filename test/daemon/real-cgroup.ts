// Helpers for tests on the REAL cgroup v1 cpu controller: one parent of our own
// (cpuburst-test-daemon-<pid>) under cpu (and cpuacct), always removed leaf → root.
import fs from 'node:fs';
import path from 'node:path';

export const V1_ROOT = '/sys/fs/cgroup';
export const CPU = path.join(V1_ROOT, 'cpu');
export const CPUACCT = path.join(V1_ROOT, 'cpuacct');

/** null when usable, else why the real-kernel tests must skip. */
export function realCgroupSkipReason(): string | null {
  if (!fs.existsSync(path.join(CPU, 'cpu.cfs_quota_us'))) return `no cgroup v1 cpu controller at ${CPU}`;
  if (!fs.existsSync(path.join(CPU, 'cpu.cfs_burst_us')))
    return `${CPU} has no cpu.cfs_burst_us (kernel < 5.14)`;
  try {
    fs.accessSync(CPU, fs.constants.W_OK);
    const probe = path.join(CPU, testParentName());
    if (!fs.existsSync(probe)) {
      fs.mkdirSync(probe);
      fs.rmdirSync(probe);
    }
  } catch (err) {
    return `${CPU} is not writable: ${(err as Error).message}`;
  }
  return null;
}

/** The one test parent of this process (test files run in separate processes, so pids differ). */
export function testParentName(): string {
  return `cpuburst-test-daemon-${process.pid}`;
}

export { removeTree } from '../support/cgroup-tree.js';
