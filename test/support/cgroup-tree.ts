// Removing a real cgroup v1 subtree that tests and benches created: shared by the daemon's
// real-kernel tests and the benches, so the kill → move → rmdir order is written once.
import fs from 'node:fs';
import path from 'node:path';

/**
 * Removes `dir` and everything under it, leaf → root: member tasks are killed and moved to the
 * hierarchy root first (a cgroup with tasks cannot be removed), then rmdir is retried while they exit.
 */
export function removeTree(dir: string, hierarchyRoot: string): void {
  if (!fs.existsSync(dir)) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true }))
    if (e.isDirectory()) removeTree(path.join(dir, e.name), hierarchyRoot);
  try {
    for (const pid of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* gone */
      }
      try {
        fs.writeFileSync(path.join(hierarchyRoot, 'cgroup.procs'), pid);
      } catch {
        /* exited already */
      }
    }
  } catch {
    /* no procs file */
  }
  for (let i = 0; i < 100; i++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20); // tasks still exiting
    }
  }
  fs.rmdirSync(dir);
}
