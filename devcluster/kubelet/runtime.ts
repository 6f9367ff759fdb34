// The container runtime of the mini-kubelet: a container is one process tree started through
// `sh`, which moves itself into the container's cpu and cpuacct cgroups before exec'ing the
// command, so not one instruction of the workload runs outside its limits.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';

const ENTER_CGROUPS =
  'echo $$ > "$CPUBURST_CG_CPU/cgroup.procs" && echo $$ > "$CPUBURST_CG_CPUACCT/cgroup.procs" && exec "$@"';

export interface ContainerProcessSpec {
  argv: string[];
  env: Record<string, string>;
  cwd?: string;
  cpuDir: string;
  cpuacctDir: string;
  logFile: string;
}

export interface RunningContainer {
  pid: number;
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

export function startContainerProcess(spec: ContainerProcessSpec): RunningContainer {
  const log = fs.openSync(spec.logFile, 'a');
  const child = spawn('sh', ['-c', ENTER_CGROUPS, 'sh', ...spec.argv], {
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
