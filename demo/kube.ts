// The demo's Kubernetes adapter: the real kubectl against devcluster when present (each command is
// printed so the user can repeat it), the API (client-node) otherwise or for reads.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  ApiException,
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import YAML from 'yaml';

export const CBS = { group: 'cpuburst.io', version: 'v1alpha1', plural: 'cpuburststrategies' } as const;

export interface DemoKube {
  /** How changes are made: 'kubectl' or 'api'. */
  readonly via: 'kubectl' | 'api';
  readonly commands: string[];
  apply(name: string, obj: Record<string, any>): Promise<void>;
  annotatePod(namespace: string, pod: string, annotations: Record<string, string | null>): Promise<void>;
  deleteStrategy(name: string): Promise<void>;
  getStrategy(name: string): Promise<Record<string, any> | null>;
  createPod(pod: V1Pod): Promise<void>;
  getPod(namespace: string, name: string): Promise<V1Pod | null>;
  deletePod(namespace: string, name: string): Promise<void>;
  ensureNamespace(name: string): Promise<void>;
  crdEstablished(name: string): Promise<boolean>;
}

function run(bin: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: 30000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(bin)} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

const is404 = (e: unknown) => e instanceof ApiException && e.code === 404;
const is409 = (e: unknown) => e instanceof ApiException && e.code === 409;
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export function demoKube(opts: {
  kc: KubeConfig;
  kubeconfigFile: string;
  kubectl: string | null;
  manifestDir: string;
  onCommand?: (cmd: string) => void;
}): DemoKube {
  const core = opts.kc.makeApiClient(CoreV1Api);
  const co = opts.kc.makeApiClient(CustomObjectsApi);
  const ext = opts.kc.makeApiClient(ApiextensionsV1Api);
  const commands: string[] = [];
  const kubectl = async (args: string[]) => {
    const shown = `kubectl --kubeconfig ${opts.kubeconfigFile} ${args.join(' ')}`;
    commands.push(shown);
    opts.onCommand?.(shown);
    return run(opts.kubectl!, ['--kubeconfig', opts.kubeconfigFile, ...args]);
  };
  const apiApply = async (obj: Record<string, any>) => {
    if (obj.kind === 'CustomResourceDefinition') {
      try {
        await ext.createCustomResourceDefinition({ body: obj as any });
      } catch (e) {
        if (!is409(e)) throw e;
      }
      return;
    }
    if (obj.kind === 'CpuBurstStrategy') {
      try {
        await co.createClusterCustomObject({ ...CBS, body: obj });
      } catch (e) {
        if (!is409(e)) throw e;
        await co.patchClusterCustomObject(
          { ...CBS, name: obj.metadata.name, body: { spec: obj.spec } },
          merge,
        );
      }
      return;
    }
    throw new Error(`cannot apply kind ${obj.kind} through the API`);
  };
  return {
    via: opts.kubectl ? 'kubectl' : 'api',
    commands,
    async apply(name, obj) {
      if (!opts.kubectl) return apiApply(obj);
      const file = path.join(opts.manifestDir, `${name}.yaml`);
      fs.writeFileSync(file, YAML.stringify(obj));
      await kubectl(['apply', '-f', file]);
    },
    async annotatePod(namespace, pod, annotations) {
      if (opts.kubectl) {
        const kv = Object.entries(annotations).map(([k, v]) => (v === null ? `${k}-` : `${k}=${v}`));
        await kubectl(['annotate', 'pod', pod, '-n', namespace, '--overwrite', ...kv]);
        return;
      }
      await core.patchNamespacedPod({ namespace, name: pod, body: { metadata: { annotations } } }, merge);
    },
    async deleteStrategy(name) {
      if (opts.kubectl) {
        await kubectl(['delete', 'cpuburststrategy', name, '--ignore-not-found']);
        return;
      }
      try {
        await co.deleteClusterCustomObject({ ...CBS, name });
      } catch (e) {
        if (!is404(e)) throw e;
      }
    },
    async getStrategy(name) {
      try {
        return (await co.getClusterCustomObject({ ...CBS, name })) as Record<string, any>;
      } catch (e) {
        if (is404(e)) return null;
        throw e;
      }
    },
    async createPod(pod) {
      await core.createNamespacedPod({ namespace: pod.metadata!.namespace!, body: pod });
    },
    async getPod(namespace, name) {
      try {
        return await core.readNamespacedPod({ namespace, name });
      } catch (e) {
        if (is404(e)) return null;
        throw e;
      }
    },
    async deletePod(namespace, name) {
      try {
        await core.deleteNamespacedPod({ namespace, name });
      } catch (e) {
        if (!is404(e)) throw e;
      }
    },
    async ensureNamespace(name) {
      try {
        await core.createNamespace({ body: { metadata: { name } } });
      } catch (e) {
        if (!is409(e)) throw e;
      }
    },
    async crdEstablished(name) {
      try {
        const crd = await ext.readCustomResourceDefinition({ name });
        const c = crd.status?.conditions?.find((x) => x.type === 'Established');
        // An emulator may not report conditions; then serving the list endpoint is the proof.
        if (c) return c.status === 'True';
        await co.listClusterCustomObject({ ...CBS });
        return true;
      } catch {
        return false;
      }
    },
  };
}
