// Builders for planner and controller tests: pods, nodes, namespaces and strategies as plain JSON.
import type { PodLike } from '../../operator/planner/pods.js';
import type { CpuBurstStrategy, StrategySpec } from '../../operator/types.js';

let uidSeq = 0;

export interface PodOpts {
  ns?: string;
  node?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  cpuLimit?: string | null;
  containers?: number;
  phase?: string;
  uid?: string;
}

export function pod(name: string, o: PodOpts = {}): PodLike & { apiVersion: string; kind: string } {
  const uid = o.uid ?? `uid-${name}-${++uidSeq}`;
  const n = o.containers ?? 1;
  const containers = Array.from({ length: n }, (_, i) => ({
    name: `c${i}`,
    resources:
      o.cpuLimit === null
        ? {}
        : { limits: { cpu: o.cpuLimit ?? '1', memory: '128Mi' }, requests: { cpu: '500m', memory: '128Mi' } },
  }));
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: o.ns ?? 'default',
      uid,
      labels: o.labels ?? {},
      annotations: o.annotations ?? {},
    },
    spec: { nodeName: o.node ?? 'node-a', containers },
    status: {
      phase: o.phase ?? 'Running',
      containerStatuses: containers.map((c, i) => ({
        name: c.name,
        containerID: `containerd://${uid}-${i}`,
        state: { running: { startedAt: '2026-01-01T00:00:00Z' } },
      })),
    },
  };
}

export function node(name: string, labels: Record<string, string> = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } },
  };
}

export function namespace(name: string, labels: Record<string, string> = {}) {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
}

export function strategy(
  name: string,
  spec: Partial<StrategySpec> & { policy?: StrategySpec['policy'] },
  created = '2026-01-01T00:00:00Z',
  generation = 1,
): CpuBurstStrategy {
  return {
    apiVersion: 'cpuburst.io/v1alpha1',
    kind: 'CpuBurstStrategy',
    metadata: { name, generation, creationTimestamp: created },
    spec: { policy: 'auto', ...spec },
  };
}
