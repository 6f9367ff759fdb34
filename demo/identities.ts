// The control plane's broker identities, the Kubernetes way: ServiceAccounts cpuburst-agent and
// cpuburst-operator, and a pod of each bound to the node (as the DaemonSet / Deployment pod would be)
// with a projected serviceAccountToken volume (audience cpuburst-broker). In the demo the mini-kubelet
// projects the token (TokenRequest bound to the pod, atomic writes, refresh at 80 % of its lifetime)
// and the agent and operator processes read that file (--mqtt-token-file); the broker maps the tokens
// to agent:<node> and operator. No passwords. Where no kubelet runs (tests, benches),
// startControlIdentities plays the kubelet's part with the same TokenRequest.
import fs from 'node:fs';
import path from 'node:path';
import { ApiException, CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../common/log.js';

export const BROKER_AUDIENCE = 'cpuburst-broker';
export const AGENT_SERVICE_ACCOUNT = 'cpuburst-agent';
export const OPERATOR_SERVICE_ACCOUNT = 'cpuburst-operator';
/** The projected volume holding the broker token (file `token` in it). */
export const TOKEN_VOLUME = 'cpuburst-broker-token';
export const TOKEN_PATH = 'token';

export interface IdentityPod {
  /** ServiceAccount namespace/name, as the broker's --sa-agent / --sa-operator take it. */
  serviceAccount: string;
  pod: { name: string; uid: string };
  /** The identity the broker gives this ServiceAccount's tokens. */
  identity: string;
}

export interface BoundToken extends IdentityPod {
  tokenFile: string;
  expiresAt: Date;
  /** How many times the file was written (1 after start). */
  writes: number;
}

export interface ControlIdentities {
  agent: BoundToken;
  operator: BoundToken;
  /** Re-issues both tokens now (what the kubelet does at 80 % of the lifetime). */
  refresh(): Promise<void>;
  stop(): void;
}

const is409 = (e: unknown) => e instanceof ApiException && e.code === 409;

/**
 * A pod that carries an identity: on the node, with the ServiceAccount and a projected token volume,
 * no CPU limits, no work (the kubelet runs it as `sleep`).
 */
export function identityPod(o: {
  name: string;
  namespace: string;
  node: string;
  sa: string;
  expirationSeconds?: number;
}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: o.name,
      namespace: o.namespace,
      labels: { 'app.kubernetes.io/name': 'cpuburst', 'app.kubernetes.io/component': o.sa },
    },
    spec: {
      nodeName: o.node,
      serviceAccountName: o.sa,
      restartPolicy: 'Never',
      containers: [{ name: 'identity', image: 'cpuburst.io/identity:local', command: ['sleep', 'infinity'] }],
      volumes: [
        {
          name: TOKEN_VOLUME,
          projected: {
            sources: [
              {
                serviceAccountToken: {
                  audience: BROKER_AUDIENCE,
                  expirationSeconds: o.expirationSeconds ?? 600,
                  path: TOKEN_PATH,
                },
              },
            ],
          },
        },
      ],
    },
  };
}

/** Creates (or finds) the ServiceAccounts and their pods on `node`. */
export async function ensureIdentityPods(o: {
  kc: KubeConfig;
  namespace: string;
  node: string;
  expirationSeconds?: number;
}): Promise<{ agent: IdentityPod; operator: IdentityPod }> {
  const core = o.kc.makeApiClient(CoreV1Api);
  const make = async (sa: string, podName: string, identity: string): Promise<IdentityPod> => {
    try {
      await core.createNamespacedServiceAccount({
        namespace: o.namespace,
        body: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa, namespace: o.namespace } },
      });
    } catch (e) {
      if (!is409(e)) throw e;
    }
    let pod: V1Pod;
    try {
      pod = await core.createNamespacedPod({
        namespace: o.namespace,
        body: identityPod({
          name: podName,
          namespace: o.namespace,
          node: o.node,
          sa,
          expirationSeconds: o.expirationSeconds,
        }),
      });
    } catch (e) {
      if (!is409(e)) throw e;
      pod = await core.readNamespacedPod({ name: podName, namespace: o.namespace });
    }
    return {
      serviceAccount: `${o.namespace}/${sa}`,
      pod: { name: podName, uid: pod.metadata!.uid! },
      identity,
    };
  };
  return {
    agent: await make(AGENT_SERVICE_ACCOUNT, `${AGENT_SERVICE_ACCOUNT}-${o.node}`, `agent:${o.node}`),
    operator: await make(OPERATOR_SERVICE_ACCOUNT, OPERATOR_SERVICE_ACCOUNT, 'operator'),
  };
}

function writeAtomic(file: string, data: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/**
 * For tests and benches without a kubelet: the identity pods plus what the kubelet's projection does —
 * a TokenRequest bound to each pod (audience cpuburst-broker), written atomically to
 * `<dir>/<sa>.token` and requested again at 80 % of its lifetime (failures retried every 5 s).
 */
export async function startControlIdentities(o: {
  kc: KubeConfig;
  namespace: string;
  node: string;
  dir: string;
  /** Token lifetime; Kubernetes' minimum is 600 s (default 600). */
  expirationSeconds?: number;
  log?: Logger;
}): Promise<ControlIdentities> {
  const core = o.kc.makeApiClient(CoreV1Api);
  const ttl = o.expirationSeconds ?? 600;
  fs.mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const pods = await ensureIdentityPods(o);
  const bound = (p: IdentityPod): BoundToken => ({
    ...p,
    tokenFile: path.join(o.dir, `${p.serviceAccount.split('/')[1]}.token`),
    expiresAt: new Date(0),
    writes: 0,
  });
  const agent = bound(pods.agent);
  const operator = bound(pods.operator);

  const issue = async (t: BoundToken) => {
    const r = await core.createNamespacedServiceAccountToken({
      name: t.serviceAccount.split('/')[1]!,
      namespace: o.namespace,
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: {
          audiences: [BROKER_AUDIENCE],
          expirationSeconds: ttl,
          boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: t.pod.name, uid: t.pod.uid },
        },
      },
    });
    const token = r.status?.token;
    if (!token) throw new Error(`TokenRequest for ${t.serviceAccount} returned no token`);
    writeAtomic(t.tokenFile, token);
    t.expiresAt = new Date(r.status!.expirationTimestamp ?? Date.now() + ttl * 1000);
    t.writes++;
    o.log?.info('Wrote ServiceAccount token', {
      serviceAccount: t.serviceAccount,
      pod: t.pod.name,
      file: t.tokenFile,
      expiresAt: t.expiresAt.toISOString(),
    });
  };
  const refresh = async () => {
    await issue(agent);
    await issue(operator);
  };
  await refresh();

  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      refresh().then(
        () => schedule(ttl * 800),
        (err) => {
          o.log?.warn('Cannot refresh the ServiceAccount tokens; retrying', {
            error: (err as Error).message,
          });
          schedule(5000);
        },
      );
    }, ms);
    timer.unref();
  };
  schedule(ttl * 800);
  return {
    agent,
    operator,
    refresh,
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
