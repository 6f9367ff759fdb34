// The REAL agent process (`cpuburst agent`) driven through its file decision source: the bench
// writes a DecisionDocument (tmp + rename), the agent polls it every round, and /debug/state says
// which version it applied and the node state it sees. Optionally the node is pinned idle with a
// synthetic /proc/stat (--proc-root) so other load on the machine cannot gate the dynamic quota.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  type BurstConfig,
  DEFAULT_BURST_CONFIG,
  type DecisionDocument,
  type ExcludedPod,
  type PodDecision,
  PROTOCOL_API_VERSION,
  type StatusReport,
} from '../../protocol/index.js';
import { V1_ROOT } from './cgroups.js';
import { type Build, cpuburstArgv, logField, type Proc, startProc, waitFor } from './procs.js';

export interface BenchAgentOptions {
  node: string;
  kubepodsRel: string;
  workDir: string;
  /** 'idle': synthetic /proc/stat with a 5 %-busy node; 'real': the machine's /proc. */
  nodeUsage: 'idle' | 'real';
  intervalMs?: number;
  build?: Build;
  /** Shell prefix run before exec (e.g. joining a cgroup). */
  shellPrefix?: string;
}

export interface BenchAgent {
  proc: Proc;
  /** Writes the document and waits until the agent reports it applied. */
  apply(pods: PodDecision[], opts?: { threshold?: number; excluded?: ExcludedPod[] }): Promise<number>;
  state(): Promise<StatusReport>;
  stop(): Promise<void>;
}

export function podDecision(
  uid: string,
  containerId: string,
  limitMilli: number,
  config: Partial<BurstConfig>,
): PodDecision {
  return {
    uid,
    namespace: 'bench',
    name: `pod-${uid}`,
    qosClass: 'Burstable',
    config: { ...DEFAULT_BURST_CONFIG, ...config },
    source: 'bench',
    containers: [
      {
        name: 'app',
        containerID: `containerd://${containerId}`,
        cpuLimitMilli: limitMilli,
        kind: 'app',
        running: true,
      },
    ],
  };
}

export function bestEffortPod(uid: string): ExcludedPod {
  return {
    uid,
    namespace: 'bench',
    name: `pod-${uid}`,
    qos: 'BE',
    qosClass: 'BestEffort',
    cpuRequestMilli: 0,
  };
}

export async function startBenchAgent(o: BenchAgentOptions): Promise<BenchAgent> {
  const decisionsFile = path.join(o.workDir, 'decisions.json');
  let procRoot = '/proc';
  let ticker: NodeJS.Timeout | undefined;
  if (o.nodeUsage === 'idle') {
    procRoot = path.join(o.workDir, 'proc');
    fs.mkdirSync(procRoot, { recursive: true });
    const cpus = os.cpus().length;
    let busy = 0;
    let idle = 0;
    const write = () => {
      busy += 5 * cpus;
      idle += 95 * cpus;
      const per = Array.from({ length: cpus }, (_, i) => `cpu${i} 0 0 0 0 0 0 0 0 0 0`).join('\n');
      const tmp = path.join(procRoot, 'stat.tmp');
      fs.writeFileSync(tmp, `cpu  ${busy} 0 0 ${idle} 0 0 0 0 0 0\n${per}\n`);
      fs.renameSync(tmp, path.join(procRoot, 'stat'));
    };
    write();
    ticker = setInterval(write, 1000);
  }
  const logFile = path.join(o.workDir, `agent-${o.node}.log`);
  const proc = startProc(
    'agent',
    cpuburstArgv(
      [
        'agent',
        '--node-name',
        o.node,
        '--cgroup-root',
        V1_ROOT,
        '--kubepods-dir',
        o.kubepodsRel,
        '--cgroup-driver',
        'cgroupfs',
        '--state-dir',
        path.join(o.workDir, `state-${o.node}`),
        '--decisions-file',
        decisionsFile,
        '--proc-root',
        procRoot,
        '--interval',
        String(o.intervalMs ?? 1000),
        '--metrics-port',
        '0',
      ],
      o.build,
    ),
    logFile,
    o.shellPrefix,
  );
  const stop = async () => {
    if (ticker) clearInterval(ticker);
    await proc.stop();
  };
  try {
    const port = await waitFor(
      'waiting for the agent metrics port',
      () => logField(logFile, 'Serving metrics', 'port') as number | undefined,
      { proc, timeoutMs: 30_000 },
    );
    const state = async () => {
      const res = await fetch(`http://127.0.0.1:${port}/debug/state`);
      if (!res.ok) throw new Error(`/debug/state: HTTP ${res.status}`);
      return (await res.json()) as StatusReport;
    };
    let version = 0;
    const apply: BenchAgent['apply'] = async (pods, opts = {}) => {
      version++;
      const doc: DecisionDocument = {
        apiVersion: PROTOCOL_API_VERSION,
        kind: 'NodeDecisions',
        node: o.node,
        version,
        generatedAt: new Date().toISOString(),
        operator: 'bench',
        nodeConfig: { sharePoolThresholdPercent: opts.threshold ?? 50 },
        pods,
        excludedPods: opts.excluded ?? [],
      };
      fs.writeFileSync(`${decisionsFile}.tmp`, JSON.stringify(doc));
      fs.renameSync(`${decisionsFile}.tmp`, decisionsFile);
      const v = version;
      await waitFor(
        `waiting for the agent to apply decisions v${v}`,
        async () => (await state()).appliedVersion >= v,
        {
          proc,
          timeoutMs: 30_000,
          intervalMs: 100,
        },
      );
      return v;
    };
    return { proc, apply, state, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
