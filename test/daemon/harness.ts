// Builds an in-process Agent on a kernel-enforcing fake cgroupfs with an injected clock.
// (test/daemon and the bench share it.)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Logger, silentLogger } from '../../common/log.js';
import { Agent, type AgentDeps } from '../../daemon/agent.js';
import { detectLayout } from '../../daemon/cgroup/layout.js';
import { probeCapabilities } from '../../daemon/cgroup/probe.js';
import { createAgentMetrics } from '../../daemon/metrics.js';
import { StateStore } from '../../daemon/state/store.js';
import {
  type BurstConfig,
  type ContainerDecision,
  DEFAULT_BURST_CONFIG,
  type DecisionDocument,
  type PodDecision,
} from '../../protocol/index.js';
import { FakeCgroupFs, type FakeOptions } from '../support/fake-cgroupfs.js';

export interface Harness {
  fake: FakeCgroupFs;
  agent: Agent;
  store: StateStore;
  stateDir: string;
  metrics: ReturnType<typeof createAgentMetrics>;
  clock: { now: number };
  /** A fresh Agent on the same fake + state dir (an agent restart); `deps` replace the harness extras. */
  restart(deps?: Partial<AgentDeps>): Agent;
  cleanup(): void;
}

export function makeHarness(
  opts: FakeOptions,
  log: Logger = silentLogger(),
  extra: Partial<AgentDeps> = {},
): Harness {
  const fake = FakeCgroupFs.create(opts);
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-agent-state-'));
  const clock = { now: 1_700_000_000_000 };
  const metrics = createAgentMetrics();
  const build = (deps: Partial<AgentDeps> = extra) => {
    const layout = detectLayout(fake, { root: fake.root, kubepodsDir: fake.kubepodsDir });
    const caps = probeCapabilities(fake, layout, log);
    const store = new StateStore(stateDir, log);
    store.load();
    const agent = new Agent({
      node: 'node-a',
      fs: fake,
      layout,
      caps,
      store,
      log,
      metrics,
      procRoot: fake.procRoot,
      intervalMs: 1000,
      clock: () => clock.now,
      ...deps,
    });
    fake.einvalCount = 0; // the capability probe's burst > quota write is refused on purpose
    return { agent, store };
  };
  const first = build();
  const h: Harness = {
    fake,
    agent: first.agent,
    store: first.store,
    stateDir,
    metrics,
    clock,
    restart(deps?: Partial<AgentDeps>) {
      const b = build(deps);
      h.agent = b.agent;
      h.store = b.store;
      b.agent.loadPersisted();
      return b.agent;
    },
    cleanup() {
      fake.cleanup();
      fs.rmSync(stateDir, { recursive: true, force: true });
    },
  };
  return h;
}

export function container(
  name: string,
  id: string,
  cpuLimitMilli: number | null,
  extra: Partial<ContainerDecision> = {},
) {
  return { name, containerID: id, cpuLimitMilli, kind: 'app', running: true, ...extra } as ContainerDecision;
}

export function podDecision(
  uid: string,
  containers: ContainerDecision[],
  config: Partial<BurstConfig> = {},
  qosClass: PodDecision['qosClass'] = 'Burstable',
): PodDecision {
  return {
    uid,
    namespace: 'default',
    name: `pod-${uid}`,
    qosClass,
    config: { ...DEFAULT_BURST_CONFIG, policy: 'auto', ...config },
    source: 'test',
    containers,
  };
}

export function document(
  version: number,
  pods: PodDecision[],
  extra: Partial<DecisionDocument> = {},
): DecisionDocument {
  return {
    apiVersion: 'cpuburst.io/v1',
    kind: 'NodeDecisions',
    node: 'node-a',
    version,
    generatedAt: new Date(0).toISOString(),
    operator: 'test',
    nodeConfig: { sharePoolThresholdPercent: 50 },
    pods,
    excludedPods: [],
    ...extra,
  };
}
