// The mini-kubelet's only adapter to the Kubernetes API (client-node 1.4.0): list + watch of the
// node's pods, pod status patches, final pod deletion, the Node object and pod-bound TokenRequests.
import os from 'node:os';
import {
  ApiException,
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Node,
  type V1Pod,
  type V1PodStatus,
  Watch,
} from '@kubernetes/client-node';

export { allowPlainHttp, loadKubeConfig } from '../../common/kubeconfig.js';

export type WatchEvent = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface KubeletApi {
  listPods(node: string): Promise<{ pods: V1Pod[]; resourceVersion?: string }>;
  watchPods(
    node: string,
    resourceVersion: string | undefined,
    onEvent: (type: WatchEvent, pod: V1Pod) => void,
    onDone: (err: unknown) => void,
  ): Promise<{ abort(): void }>;
  patchPodStatus(namespace: string, name: string, status: V1PodStatus): Promise<void>;
  deletePod(namespace: string, name: string, uid?: string): Promise<void>;
  registerNode(node: string, labels: Record<string, string>): Promise<void>;
  /** TokenRequest bound to a pod (projected serviceAccountToken volumes); optional for test fakes. */
  requestToken?(
    namespace: string,
    serviceAccount: string,
    spec: { audiences?: string[]; expirationSeconds: number; pod: { name: string; uid: string } },
  ): Promise<{ token: string; expirationTimestamp: Date }>;
  /** A core/v1 Event on the pod, as the kubelet records them (Started, Killing, …). */
  podEvent(
    pod: PodRef,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
    node: string,
  ): Promise<void>;
}

export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
}

function isCode(err: unknown, code: number): boolean {
  return err instanceof ApiException && err.code === code;
}

/** The Status message of a failed API call (client-node puts the raw body in the exception). */
function statusMessage(err: unknown): string {
  if (err instanceof ApiException) {
    try {
      const body = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
      if (body?.message) return `${body.message} (${err.code})`;
    } catch {
      // not JSON
    }
    return `HTTP ${err.code}`;
  }
  return (err as Error)?.message ?? String(err);
}

export function kubeletApi(kc: KubeConfig): KubeletApi {
  const core = kc.makeApiClient(CoreV1Api);
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  return {
    async listPods(node) {
      const list = await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` });
      // Filter here too: a server that ignores the field selector must not hand us other nodes' pods.
      return {
        pods: list.items.filter((p) => p.spec?.nodeName === node),
        resourceVersion: list.metadata?.resourceVersion,
      };
    },
    async watchPods(node, resourceVersion, onEvent, onDone) {
      const w = new Watch(kc);
      const ctl = await w.watch(
        '/api/v1/pods',
        { fieldSelector: `spec.nodeName=${node}`, resourceVersion, allowWatchBookmarks: true },
        (type, obj) => {
          const pod = obj as V1Pod;
          if (type === 'ERROR' || type === 'BOOKMARK' || pod?.spec?.nodeName === node) {
            onEvent(type as WatchEvent, pod);
          }
        },
        onDone,
      );
      return { abort: () => ctl.abort() };
    },
    async patchPodStatus(namespace, name, status) {
      try {
        await core.patchNamespacedPodStatus({ namespace, name, body: { status } }, merge);
      } catch (err) {
        if (!isCode(err, 404) && !isCode(err, 405)) throw err;
        // A server without the status subresource takes status on the main resource.
        await core.patchNamespacedPod({ namespace, name, body: { status } }, merge);
      }
    },
    async deletePod(namespace, name, uid) {
      try {
        await core.deleteNamespacedPod({
          namespace,
          name,
          gracePeriodSeconds: 0,
          body: { gracePeriodSeconds: 0, preconditions: uid ? { uid } : undefined },
        });
      } catch (err) {
        if (!isCode(err, 404) && !isCode(err, 409)) throw err;
      }
    },
    async podEvent(pod, type, reason, message, node) {
      const now = new Date();
      await core.createNamespacedEvent({
        namespace: pod.namespace,
        body: {
          metadata: { generateName: `${pod.name}.`, namespace: pod.namespace },
          involvedObject: {
            apiVersion: 'v1',
            kind: 'Pod',
            namespace: pod.namespace,
            name: pod.name,
            uid: pod.uid,
          },
          type,
          reason,
          message,
          source: { component: 'kubelet', host: node },
          reportingComponent: 'kubelet',
          reportingInstance: node,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    },
    async requestToken(namespace, serviceAccount, spec) {
      const r = await core
        .createNamespacedServiceAccountToken({
          namespace,
          name: serviceAccount,
          body: {
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenRequest',
            spec: {
              audiences: spec.audiences ?? [],
              expirationSeconds: spec.expirationSeconds,
              boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: spec.pod.name, uid: spec.pod.uid },
            },
          },
        })
        .catch((err: unknown) => {
          throw new Error(`TokenRequest for ${namespace}/${serviceAccount}: ${statusMessage(err)}`);
        });
      const token = r.status?.token;
      if (!token) throw new Error('TokenRequest answered without a token');
      return { token, expirationTimestamp: new Date(r.status!.expirationTimestamp) };
    },
    async registerNode(node, labels) {
      const body: V1Node = {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: {
          name: node,
          labels: {
            'kubernetes.io/hostname': node,
            'kubernetes.io/os': 'linux',
            'kubernetes.io/arch': process.arch === 'x64' ? 'amd64' : process.arch,
            ...labels,
          },
        },
        spec: {},
      };
      const cpus = String(os.cpus().length);
      const memory = `${Math.floor(os.totalmem() / 1024)}Ki`;
      const status = {
        capacity: { cpu: cpus, memory, pods: '110' },
        allocatable: { cpu: cpus, memory, pods: '110' },
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'KubeletReady',
            message: 'cpuburst mini-kubelet is posting ready status',
            lastHeartbeatTime: new Date(),
            lastTransitionTime: new Date(),
          },
        ],
        nodeInfo: {
          architecture: body.metadata!.labels!['kubernetes.io/arch']!,
          bootID: '',
          containerRuntimeVersion: 'cpuburst-mini-kubelet://0.1.0',
          kernelVersion: os.release(),
          kubeProxyVersion: '',
          kubeletVersion: 'v1.32.0-cpuburst',
          machineID: '',
          operatingSystem: 'linux',
          osImage: os.type(),
          systemUUID: '',
        },
      };
      try {
        await core.createNode({ body });
      } catch (err) {
        if (!isCode(err, 409)) throw err;
      }
      try {
        await core.patchNodeStatus({ name: node, body: { status } }, merge);
      } catch (err) {
        if (!isCode(err, 404) && !isCode(err, 405)) throw err;
        await core.patchNode({ name: node, body: { status } }, merge);
      }
    },
  };
}
