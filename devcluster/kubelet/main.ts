// `cpuburst demo kubelet`: the mini-kubelet as its own process (the demo can run it in-process too).
import os from 'node:os';
import path from 'node:path';
import { type FlagSpec, formatHelp, parseFlags } from '../../common/flags.js';
import { createLogger } from '../../common/log.js';
import { startMiniKubelet } from './kubelet.js';

const specs: FlagSpec[] = [
  { name: 'kubeconfig', env: 'KUBECONFIG', type: 'string', help: 'kubeconfig of the API server' },
  {
    name: 'node-name',
    env: 'NODE_NAME',
    type: 'string',
    default: os.hostname().toLowerCase(),
    help: 'node to run pods for',
  },
  {
    name: 'cgroup-root',
    type: 'string',
    default: '/sys/fs/cgroup',
    help: 'cgroup v1 mount root (cpu/ and cpuacct/ below)',
  },
  {
    name: 'parent-base',
    type: 'string',
    default: 'cpuburst-demo',
    help: 'cgroup parent is <base>-<pid>; stale ones are removed',
  },
  {
    name: 'fake-cgroups',
    type: 'bool',
    default: false,
    help: 'the cgroup root is a fake cgroupfs directory',
  },
  {
    name: 'log-dir',
    type: 'string',
    default: path.join(os.tmpdir(), 'cpuburst-kubelet-logs'),
    help: 'container logs',
  },
  {
    name: 'pods-dir',
    type: 'string',
    default: '',
    help: 'pod volumes (projected tokens, emptyDir) under <dir>/<uid>/volumes (default: a temp dir)',
  },
  {
    name: 'ready-file',
    type: 'string',
    default: '',
    help: 'write {pid,parent,kubepodsDir} JSON here once synced',
  },
];

export async function main(argv: string[]): Promise<number> {
  const { values: v, help } = parseFlags(specs, argv);
  if (help) {
    process.stdout.write(
      formatHelp('cpuburst demo kubelet [flags]', 'Mini-kubelet: pods → processes in real cgroups.', specs),
    );
    return 0;
  }
  if (!v.kubeconfig) {
    process.stderr.write('cpuburst demo kubelet: --kubeconfig is required\n');
    return 2;
  }
  const node = String(v.nodeName);
  const log = createLogger({ component: 'kubelet', node });
  // Signals are handled from the first moment: a stop before the first sync still cleans up.
  let onStop: () => void = () => {};
  const stopRequested = new Promise<void>((resolve) => {
    onStop = resolve;
  });
  const onSignal = (sig: string) => {
    log.info('Received signal; stopping', { signal: sig });
    onStop();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const kubelet = await startMiniKubelet({
    kubeconfig: String(v.kubeconfig),
    node,
    cgroupRoot: String(v.cgroupRoot),
    parentBase: String(v.parentBase),
    fake: Boolean(v.fakeCgroups),
    logDir: String(v.logDir),
    podsDir: v.podsDir ? String(v.podsDir) : undefined,
    log,
  });
  await Promise.race([kubelet.ready, stopRequested]);
  if (v.readyFile) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(
      String(v.readyFile),
      JSON.stringify({
        pid: process.pid,
        parent: kubelet.cgroups.parent,
        kubepodsDir: kubelet.cgroups.kubepodsRel,
      }),
    );
  }
  await stopRequested;
  await kubelet.stop();
  return 0;
}
