// A devcluster with the cpuburst ServiceAccounts, two nodes and a bound agent pod per node, plus
// brokers whose k8s-token authenticator reads that cluster through a real kubeconfig.
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { BrokerConfig } from '../../broker/config.js';
import { type RunningBroker, startBroker } from '../../broker/server.js';
import { memoryLogger } from '../../common/log.js';
import { type DevCluster, startDevCluster } from '../../devcluster/index.js';
import { connectError, tempDir } from './helpers.js';

type After = (fn: () => unknown) => void;

export const NS = 'cpuburst-system';
export const AGENT_SA = 'cpuburst-agent';
export const OPERATOR_SA = 'cpuburst-operator';
export const AUDIENCE = 'cpuburst-broker';

export interface Bed {
  dc: DevCluster;
  kubeconfig: string;
  dir: string;
  /** uid of a pod created now */
  addPod(name: string, nodeName?: string, sa?: string, namespace?: string): string;
  /** a token through the real TokenRequest endpoint (POST .../serviceaccounts/<sa>/token) */
  requestToken(
    sa: string,
    pod?: string,
    opts?: { audiences?: string[]; namespace?: string; expirationSeconds?: number },
  ): Promise<string>;
}

export async function startBed(after: After): Promise<Bed> {
  const dir = tempDir(after, 'cpuburst-k8s-token-');
  const kubeconfig = path.join(dir, 'kubeconfig');
  const dc = await startDevCluster({ kubeconfigPath: kubeconfig });
  after(() => dc.close());
  const create = (obj: Record<string, unknown>) => dc.store.create(obj as never);
  create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'iot' } });
  for (const n of ['node-a', 'node-b']) create({ apiVersion: 'v1', kind: 'Node', metadata: { name: n } });
  for (const [ns, sa] of [
    [NS, AGENT_SA],
    [NS, OPERATOR_SA],
    ['iot', 'sensor'],
  ] as const) {
    create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa, namespace: ns } });
  }
  const addPod: Bed['addPod'] = (name, nodeName, sa = AGENT_SA, namespace = NS) => {
    const pod = create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace },
      spec: {
        serviceAccountName: sa,
        ...(nodeName ? { nodeName } : {}),
        containers: [{ name: 'c', image: 'busybox' }],
      },
    });
    return pod.metadata.uid as string;
  };
  const requestToken: Bed['requestToken'] = async (sa, pod, opts = {}) => {
    const ns = opts.namespace ?? NS;
    const spec: Record<string, unknown> = {
      audiences: opts.audiences ?? [AUDIENCE],
      expirationSeconds: opts.expirationSeconds ?? 3600,
    };
    if (pod) {
      const live = dc.store.get('v1', 'Pod', pod, ns);
      if (!live) throw new Error(`no pod ${ns}/${pod}`);
      spec.boundObjectRef = { kind: 'Pod', apiVersion: 'v1', name: pod, uid: live.metadata.uid };
    }
    const res = await fetch(`${dc.url}/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec }),
    });
    const body = (await res.json()) as { status?: { token?: string }; message?: string };
    if (!res.ok || !body.status?.token) throw new Error(`TokenRequest ${res.status}: ${body.message}`);
    return body.status.token;
  };
  writeFileSync(path.join(dir, 'ready'), '');
  return { dc, kubeconfig, dir, addPod, requestToken };
}

export interface TokenBroker {
  b: RunningBroker;
  port: number;
  lines: Array<Record<string, any>>;
  refusals(reason: string): Promise<number>;
}

export async function tokenBroker(
  after: After,
  bed: Bed,
  cfg: Partial<BrokerConfig> = {},
): Promise<TokenBroker> {
  const mem = memoryLogger('broker');
  const b = await startBroker(
    {
      host: '127.0.0.1',
      mqttPort: 0,
      tlsPort: -1,
      wsPort: -1,
      wssPort: -1,
      httpPort: -1,
      flappingMaxCount: 0,
      authChain: ['k8s-token'],
      kubeconfig: bed.kubeconfig,
      saAgent: `${NS}/${AGENT_SA}`,
      saOperator: `${NS}/${OPERATOR_SA}`,
      saJwksRefreshSeconds: 1,
      saPodCacheSeconds: 1,
      ...cfg,
    },
    { log: mem.log },
  );
  after(() => b.close());
  return {
    b,
    port: b.ports.mqttPort!,
    lines: mem.lines,
    refusals: async (reason) =>
      (await b.metrics.authRefusals.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0,
  };
}

/** Connects with a token expecting refusal; returns the CONNACK code (MQTT 5 reason code or 3.1.1 return code). */
export function refusedWith(
  port: number,
  token: string,
  opts: IClientOptions = {},
): Promise<number | undefined> {
  return connectError(port, {
    username: 'whoever',
    password: token,
    clientId: `r-${Math.random()}`,
    ...opts,
  });
}

/** Like helpers.connect, but a connection closed before CONNACK rejects instead of hanging. */
export function connectOk(after: After, port: number, opts: IClientOptions): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    // mqtt-packet (like MQTT 3.1.1) sends no password without a username; the broker ignores it.
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      username: 'ignored',
      ...opts,
    });
    after(() => c.endAsync(true));
    c.once('connect', () => resolve(c));
    c.once('error', reject);
    c.once('close', () =>
      reject(new Error(`connection closed before CONNACK (${JSON.stringify(opts.clientId)})`)),
    );
  });
}

/**
 * A kubeconfig whose server is a proxy to the devcluster that answers 404 for OIDC discovery and
 * the JWKS (as an API server without ServiceAccountIssuerDiscovery access does); the rest passes.
 */
export async function kubeconfigWithoutOidc(after: After, bed: Bed): Promise<string> {
  const target = new URL(bed.dc.url);
  const server = http.createServer((req, res) => {
    if (/^\/(\.well-known|openid)\//.test(req.url ?? '')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"kind":"Status","message":"the server could not find the requested resource"}');
      return;
    }
    const up = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  after(() => new Promise<void>((r) => server.close(() => r())));
  server.unref();
  const file = path.join(bed.dir, `kubeconfig-no-oidc-${(server.address() as AddressInfo).port}`);
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  writeFileSync(file, bed.dc.kubeConfig().replace(bed.dc.url, url));
  return file;
}
