// The objects the demo creates (pure builders).
import type { V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_ENABLED } from '../protocol/defaults.js';

export const DEMO_NAMESPACE = 'cpuburst-demo';
export const SERVICE_POD = 'latency-demo';
export const NEIGHBOUR_POD = 'neighbour';
export const STRATEGY_NAME = 'demo-latency';

export function servicePod(o: { node: string; cpuLimit: string; argv: string[]; cwd: string }): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: SERVICE_POD, namespace: DEMO_NAMESPACE, labels: { app: SERVICE_POD } },
    spec: {
      nodeName: o.node,
      restartPolicy: 'Never',
      containers: [
        {
          name: 'service',
          image: 'cpuburst.io/demo-workload:local',
          command: o.argv,
          workingDir: o.cwd,
          resources: { limits: { cpu: o.cpuLimit } },
        },
      ],
    },
  };
}

/** A CPU hog without limits: it loads the node so the share pool is over its threshold. */
export function neighbourPod(node: string, busyLoops: number): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: NEIGHBOUR_POD, namespace: DEMO_NAMESPACE, labels: { app: NEIGHBOUR_POD } },
    spec: {
      nodeName: node,
      restartPolicy: 'Never',
      containers: Array.from({ length: busyLoops }, (_, i) => ({
        name: `busy-${i}`,
        image: 'busybox',
        command: ['sh', '-c', 'while :; do :; done'],
      })),
    },
  };
}

export function strategy(o: { cpuBurstPercent: number; cfsQuotaBurstPercent: number }): Record<string, any> {
  return {
    apiVersion: 'cpuburst.io/v1alpha1',
    kind: 'CpuBurstStrategy',
    metadata: { name: STRATEGY_NAME },
    spec: {
      policy: 'auto',
      cpuBurstPercent: o.cpuBurstPercent,
      cfsQuotaBurstPercent: o.cfsQuotaBurstPercent,
      cfsQuotaBurstPeriodSeconds: -1,
      podSelector: { matchLabels: { app: SERVICE_POD } },
    },
  };
}

export const ENABLE_ANNOTATION = { [ANNOTATION_ENABLED]: 'true' };
export const DISABLE_ANNOTATION = { [ANNOTATION_ENABLED]: null };
