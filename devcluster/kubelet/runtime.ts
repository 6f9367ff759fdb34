// The container runtime of the mini-kubelet: a container is one process tree started through
// `sh`, which moves itself into the container's cpu and cpuacct cgroups before exec'ing the
// command, so not one instruction of the workload runs outside its limits.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';

const ENTER_CGROUPS =
  'echo $$ > "$CPUBURST_CG_CPU/cgroup.procs" && echo $$ > "$CPUBURST_CG_CPUACCT/cgroup.procs" && exec "$@"';

export interface ContainerMount {
  hostPath: string;
  mountPath: string;
  readOnly: boolean;
}

export interface ContainerProcessSpec {
  argv: string[];
  env: Record<string, string>;
  cwd?: string;
  cpuDir: string;
  cpuacctDir: string;
  logFile: string;
  /**
   * Bind mounts made in a private mount namespace (`unshare -m`), so the container sees its
   * volumes at their mountPath and nothing changes on the host. The mountPath must exist.
   */
  mounts?: ContainerMount[];
}

const shq = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** The shell lines that bind the volumes at their mount paths (run inside the new mount namespace). */
export function mountScript(mounts: ContainerMount[]): string {
  return mounts
    .map(
      (m) =>
        `mount --bind ${shq(m.hostPath)} ${shq(m.mountPath)}${m.readOnly ? ` && mount -o remount,bind,ro ${shq(m.mountPath)}` : ''} && `,
    )
    .join('');
}

/** Can this process give containers their own mount namespace (root and util-linux unshare)? */
export function canIsolateMounts(): boolean {
  if (process.getuid?.() !== 0) return false;
  return ['/usr/bin/unshare', '/bin/unshare'].some((p) => fs.existsSync(p));
}

export interface RunningContainer {
  pid: number;
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

export function startContainerProcess(spec: ContainerProcessSpec): RunningContainer {
  const log = fs.openSync(spec.logFile, 'a');
  const mounts = spec.mounts ?? [];
  // unshare execs sh in place (same pid), so the process group and kill(-pid) work the same.
  const [cmd, ...args] =
    mounts.length > 0
      ? ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', mountScript(mounts) + ENTER_CGROUPS]
      : ['sh', '-c', ENTER_CGROUPS];
  const child = spawn(cmd!, [...args, 'sh', ...spec.argv], {
    cwd: spec.cwd,
    env: { ...process.env, ...spec.env, CPUBURST_CG_CPU: spec.cpuDir, CPUBURST_CG_CPUACCT: spec.cpuacctDir },
    stdio: ['ignore', log, log],
    detached: true, // its own process group: a terminal Ctrl-C reaches the kubelet, which cleans up
  });
  fs.closeSync(log);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: 127, signal: null }));
  });
  const pid = child.pid ?? -1;
  return {
    pid,
    child,
    exited,
    kill(signal: NodeJS.Signals = 'SIGKILL') {
      try {
        if (pid > 0) process.kill(-pid, signal);
      } catch {
        try {
          child.kill(signal);
        } catch {
          // already gone
        }
      }
    },
  };
}
