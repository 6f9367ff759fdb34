// The operator's one adapter to the Kubernetes API: config loading, typed clients, list functions
// for the reflectors, status patches and Events. Everything else talks to these functions.
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  Watch,
} from '@kubernetes/client-node';

export { allowPlainHttp, loadKubeConfig } from '../../common/kubeconfig.js';

import { CRD_GROUP, CRD_PLURAL, CRD_VERSION, type StrategyStatus } from '../types.js';

export const FIELD_MANAGER = 'cpuburst-operator';

export interface KubeApis {
  kc: KubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  coordination: CoordinationV1Api;
  watch: Watch;
}

export function makeApis(kc: KubeConfig): KubeApis {
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    coordination: kc.makeApiClient(CoordinationV1Api),
    watch: new Watch(kc),
  };
}

/** Merge-patches /status (client-node 1.x defaults to json-patch, which the API server refuses here). */
export async function patchStrategyStatus(
  apis: KubeApis,
  name: string,
  status: StrategyStatus,
): Promise<void> {
  await apis.custom.patchClusterCustomObjectStatus(
    {
      group: CRD_GROUP,
      version: CRD_VERSION,
      plural: CRD_PLURAL,
      name,
      body: { status },
      fieldManager: FIELD_MANAGER,
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

export interface EventTarget {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  uid?: string;
}

export interface EventInput {
  target: EventTarget;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  action?: string;
}

/** A core/v1 Event; cluster-scoped targets (our CRs) get their Events in `defaultNamespace`. */
export async function createEvent(
  apis: KubeApis,
  e: EventInput,
  instance: string,
  defaultNamespace = 'default',
): Promise<void> {
  const namespace = e.target.namespace ?? defaultNamespace;
  const now = new Date();
  await apis.core.createNamespacedEvent({
    namespace,
    body: {
      metadata: { generateName: `${e.target.name}.`, namespace },
      involvedObject: {
        apiVersion: e.target.apiVersion,
        kind: e.target.kind,
        name: e.target.name,
        namespace: e.target.namespace,
        uid: e.target.uid,
      },
      type: e.type,
      reason: e.reason,
      message: e.message.slice(0, 1024),
      action: e.action,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
      source: { component: FIELD_MANAGER },
      reportingComponent: FIELD_MANAGER,
      reportingInstance: instance,
    },
  });
}
