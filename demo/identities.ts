// The control plane's broker identities, the Kubernetes way: ServiceAccounts cpuburst-agent and
// cpuburst-operator, a pod object for each bound to the node (as a DaemonSet / Deployment pod would
// be), and a projected-style token per pod: TokenRequest (audience cpuburst-broker, bound to the pod),
// written atomically to a file and rewritten at 80 % of its lifetime, as the kubelet does for a
// projected serviceAccountToken volume. The agent and operator processes read these files
// (--mqtt-token-file); the broker maps the tokens to agent:<node> and operator. No passwords.
import fs from 'node:fs';
import path from 'node:path';
import { ApiException, CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../common/log.js';

export const BROKER_AUDIENCE = 'cpuburst-broker';
export const AGENT_SERVICE_ACCOUNT = 'cpuburst-agent';
export const OPERATOR_SERVICE_ACCOUNT = 'cpuburst-operator';

export interface BoundToken {
  /** ServiceAccount namespace/name, as the broker's --sa-agent / --sa-operator take it. */
  serviceAccount: string;
  pod: { name: string; uid: string };
  tokenFile: string;
  /** The identity the broker gives this token. */
  identity: string;
  expiresAt: Date;
  /** How many times the file was written (1 after start). */
  writes: number;
}

export interface ControlIdentities {
  agent: BoundToken;
  operator: BoundToken;
  /** Re-issues both tokens now (what happens at 80 % of the lifetime). */
  refresh(): Promise<void>;
  stop(): void;
}

export interface ControlIdentityOptions {
  kc: KubeConfig;
  namespace: string;
  node: string;
  /** Directory for the token files (created 0700; files 0600). */
  dir: string;
  /** Token lifetime; Kubernetes' minimum is 600 s (default 600). */
  expirationSeconds?: number;
  log?: Logger;
  /**
   * The pod objects (placeholders the node's kubelet runs as `sleep`): default true. False when the
   * caller creates them (then they must exist, with these names and ServiceAccounts).
   */
  createPods?: boolean;
}

const is409 = (e: unknown) => e instanceof ApiException && e.code === 409;

/** A pod that carries an identity: on the node, with the ServiceAccount, no CPU limits, no work. */
export function identityPod(o: { name: string; namespace: string; node: string; sa: string }): V1Pod {
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
    },
  };
}

/** Writes a file atomically (temp + rename), as the kubelet updates projected volumes. */
function writeAtomic(file: string, data: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export async function startControlIdentities(o: ControlIdentityOptions): Promise<ControlIdentities> {
  const core = o.kc.makeApiClient(CoreV1Api);
  const ttl = o.expirationSeconds ?? 600;
  fs.mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const make = async (sa: string, podName: string, identity: string): Promise<BoundToken> => {
    try {
      await core.createNamespacedServiceAccount({
        namespace: o.namespace,
        body: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa, namespace: o.namespace } },
      });
    } catch (e) {
      if (!is409(e)) throw e;
    }
    let pod: V1Pod;
    if (o.createPods ?? true) {
      try {
        pod = await core.createNamespacedPod({
          namespace: o.namespace,
          body: identityPod({ name: podName, namespace: o.namespace, node: o.node, sa }),
        });
      } catch (e) {
        if (!is409(e)) throw e;
        pod = await core.readNamespacedPod({ name: podName, namespace: o.namespace });
      }
    } else pod = await core.readNamespacedPod({ name: podName, namespace: o.namespace });
    return {
      serviceAccount: `${o.namespace}/${sa}`,
      pod: { name: podName, uid: pod.metadata!.uid! },
      tokenFile: path.join(o.dir, `${sa}.token`),
      identity,
      expiresAt: new Date(0),
      writes: 0,
    };
  };
  const agent = await make(AGENT_SERVICE_ACCOUNT, `${AGENT_SERVICE_ACCOUNT}-${o.node}`, `agent:${o.node}`);
  const operator = await make(OPERATOR_SERVICE_ACCOUNT, OPERATOR_SERVICE_ACCOUNT, 'operator');

  const issue = async (t: BoundToken) => {
    const sa = t.serviceAccount.split('/')[1]!;
    const r = await core.createNamespacedServiceAccountToken({
      name: sa,
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

  // Refresh at 80 % of the lifetime; a failed request is retried every 5 s (the old token stays).
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
