// A tiny kubelet for chart tests: starts a rendered workload's container as a local process the way
// the kubelet would run it: Secret volumes written out from the rendered Secrets (items and
// defaultMode honoured), projected ServiceAccount tokens from the API server's TokenRequest bound to
// the pod (rewritten at 80 % of their lifetime), emptyDirs as temp dirs, hostPaths mapped to what the
// test provides, downward-API env, $(VAR) expansion in args, and cluster DNS names rewritten to
// loopback. `ChartBed` is the node those containers share: devcluster as the API server (with an
// admin token, so ServiceAccount callers go through RBAC), a fake cgroupfs.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { type DevCluster, startDevCluster } from '../../devcluster/index.js';
import { kubeconfigYaml } from '../../devcluster/kubeconfig.js';
import { cliArgv } from '../support/cli.js';
import { FakeCgroupFs } from '../support/fake-cgroupfs.js';
import { CHART, find, type K8sObject, KUBECTL, NAMESPACE, name, type RunResult, run } from './helm.js';

/** The one node the chart tests schedule on. */
export const NODE = 'node-a';

/** devcluster's admin bearer token (the test's kubectl and the operator's --kubeconfig use it). */
const ADMIN_TOKEN = 'chart-test-admin';

/** The bootstrap ClusterRoles of kube-apiserver that the chart binds (same rules as upstream). */
const BOOTSTRAP_CLUSTER_ROLES = [
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'system:auth-delegator', labels: { 'kubernetes.io/bootstrapping': 'rbac-defaults' } },
    rules: [
      { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
      { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
    ],
  },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: {
      name: 'system:service-account-issuer-discovery',
      labels: { 'kubernetes.io/bootstrapping': 'rbac-defaults' },
    },
    rules: [{ nonResourceURLs: ['/.well-known/openid-configuration', '/openid/v1/jwks'], verbs: ['get'] }],
  },
];

export interface Proc {
  child: ChildProcess;
  /** The Pod object this process runs as in the API (its uid binds the projected tokens). */
  pod: { name: string; uid: string };
  /** Token refresh timers (cleared when the bed closes). */
  timers: NodeJS.Timeout[];
  log: string;
  /** containerPort by port name. */
  ports: Map<string, number>;
  workload: K8sObject;
  /** container path → local path, for the hook and for assertions. */
  mounts: Array<[string, string]>;
}

export interface PodOptions {
  /** The rendered objects (Secrets are read from here). */
  objs: K8sObject[];
  /** Where this pod's volumes live. */
  dir: string;
  node: string;
  namespace: string;
  podName: string;
  /** hostPath path → local directory. */
  hostPaths?: Record<string, string>;
  /** Other container paths that point somewhere local (e.g. /proc). */
  paths?: Record<string, string>;
  /** Substring rewrites applied to every argument (cluster DNS → 127.0.0.1:port). */
  dns?: Array<[string, string]>;
  extraArgs?: string[];
  /** The image entrypoint; default `cpuburst` from source. */
  entrypoint?: string[];
  /** The Pod object in the API; required when the pod has projected ServiceAccount tokens. */
  pod?: { name: string; uid: string };
  /** TokenRequest for this pod's ServiceAccount, bound to `pod` (projected serviceAccountToken). */
  requestToken?: (audience: string | undefined, expirationSeconds: number) => Promise<IssuedToken>;
}

export interface IssuedToken {
  token: string;
  expirationTimestamp: string;
}

/** Written as the kubelet does: the new file appears whole (rename), never half-written. */
function writeAtomic(file: string, data: string | Buffer, mode: number): void {
  const tmp = path.join(path.dirname(file), `..${path.basename(file)}.tmp`);
  writeFileSync(tmp, data, { mode });
  renameSync(tmp, file);
}

/**
 * A projected volume's serviceAccountToken sources: one TokenRequest each now, and again at 80 % of
 * the token's lifetime (the kubelet's rule), so a rotating file is what the container sees.
 */
async function projectTokens(
  vol: any,
  local: string,
  o: PodOptions,
  timers: NodeJS.Timeout[],
): Promise<void> {
  for (const src of vol.projected.sources ?? []) {
    const t = src.serviceAccountToken;
    if (!t)
      throw new Error(`projected source ${Object.keys(src).join(',')} is not supported by this kubelet`);
    if (!o.requestToken) throw new Error('a projected serviceAccountToken needs requestToken');
    const expirationSeconds = t.expirationSeconds ?? 3600;
    const file = path.join(local, t.path);
    const refresh = async (): Promise<void> => {
      const issued = await o.requestToken!(t.audience, expirationSeconds);
      writeAtomic(file, issued.token, vol.projected.defaultMode ?? 0o644);
      const ttlMs = Date.parse(issued.expirationTimestamp) - Date.now();
      const timer = setTimeout(
        () => {
          refresh().catch(() => {}); // the API server went away with the test: nothing to rotate
        },
        Math.max(1000, ttlMs * 0.8),
      );
      timer.unref();
      timers.push(timer);
    };
    await refresh();
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** `n` distinct free loopback ports, taken at once so none of them is handed out twice. */
export function freePorts(n: number): Promise<number[]> {
  return Promise.all(Array.from({ length: n }, () => freePort()));
}

/** Rewrites one argument: $(VAR) from env (when `expand`), then at most one mount, longest first. */
export function translateArg(
  a: string,
  env: Record<string, string>,
  mounts: Array<[string, string]>,
  expand: boolean,
): string {
  const out = expand ? a.replace(/\$\((\w+)\)/g, (_, k: string) => env[k] ?? '') : a;
  for (const [from, to] of [...mounts].sort((x, y) => y[0].length - x[0].length)) {
    const re = new RegExp(`(^|=)${from.replace(/\//g, '\\/')}(?=/|$)`);
    if (re.test(out)) return out.replace(re, `$1${to}`);
  }
  return out;
}

export async function startContainer(
  workload: K8sObject,
  o: PodOptions,
): Promise<Proc & { env: Record<string, string> }> {
  const spec = workload.spec.template.spec;
  const c = spec.containers[0];
  const mounts: Array<[string, string]> = [];
  const timers: NodeJS.Timeout[] = [];
  for (const vm of c.volumeMounts ?? []) {
    const vol = spec.volumes.find((v: any) => v.name === vm.name);
    let local = path.join(o.dir, vm.name);
    if (vol.hostPath) {
      const mapped = o.hostPaths?.[vol.hostPath.path];
      if (!mapped) throw new Error(`no local directory for hostPath ${vol.hostPath.path}`);
      if (vol.hostPath.type === 'DirectoryOrCreate') mkdirSync(mapped, { recursive: true });
      local = mapped;
    } else if (vol.secret) {
      mkdirSync(local, { recursive: true });
      const secret = find(o.objs, 'Secret', vol.secret.secretName);
      const items: Array<{ key: string; path: string }> =
        vol.secret.items ?? Object.keys(secret.data).map((k) => ({ key: k, path: k }));
      for (const it of items) {
        writeFileSync(path.join(local, it.path), Buffer.from(secret.data[it.key], 'base64'), {
          mode: vol.secret.defaultMode ?? 0o644,
        });
      }
    } else if (vol.projected) {
      mkdirSync(local, { recursive: true });
      await projectTokens(vol, local, o, timers);
    } else mkdirSync(local, { recursive: true });
    mounts.push([vm.mountPath, local]);
  }
  for (const [from, to] of Object.entries(o.paths ?? {})) mounts.push([from, to]);
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    const f = e.valueFrom?.fieldRef?.fieldPath;
    if (f === 'metadata.name') env[e.name] = o.podName;
    else if (f === 'metadata.namespace') env[e.name] = o.namespace;
    else if (f === 'spec.nodeName') env[e.name] = o.node;
    else if (e.value !== undefined) env[e.name] = e.value;
  }
  const args = ((c.args ?? []) as string[]).map((a) => {
    let out = translateArg(a, env, mounts, true);
    for (const [from, to] of o.dns ?? []) out = out.replace(from, to);
    return out;
  });
  const [cmd, argv] = o.entrypoint
    ? [o.entrypoint[0]!, [...o.entrypoint.slice(1), ...args, ...(o.extraArgs ?? [])]]
    : cliArgv([...args, ...(o.extraArgs ?? [])]);
  const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const p = {
    child,
    pod: o.pod ?? { name: o.podName, uid: '' },
    timers,
    log: '',
    ports: new Map<string, number>((c.ports ?? []).map((x: any) => [x.name, x.containerPort])),
    workload,
    mounts,
    env,
  };
  child.stdout!.on('data', (d) => {
    p.log += d;
  });
  child.stderr!.on('data', (d) => {
    p.log += d;
  });
  child.once('exit', (code, signal) => {
    p.log += `\n[exited ${code ?? signal}]`;
  });
  return p;
}

export async function httpGet(port: number, p: string): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${p}`, { signal: AbortSignal.timeout(10_000) });
    return { status: res.status, body: await res.text() };
  } catch {
    return { status: 0, body: '' };
  }
}

/** The JSON log lines of a process with this message. */
export function logEntries(p: Proc, message: string): Array<Record<string, any>> {
  return p.log.split('\n').flatMap((l) => {
    try {
      const j = JSON.parse(l);
      return j.message === message ? [j] : [];
    } catch {
      return [];
    }
  });
}

/** The broker's log lines with this message as `<identity> by <authenticator>`. */
export function brokerLogins(broker: Proc, message = 'Client connected'): string[] {
  return logEntries(broker, message).map((j) => `${j.identity} by ${j.by}`);
}

/** Runs the container's httpGet probe of that kind; status 0 when nothing answers. */
export function probe(p: Proc, kind: 'readinessProbe' | 'livenessProbe') {
  const h = p.workload.spec.template.spec.containers[0][kind].httpGet;
  const port = typeof h.port === 'number' ? h.port : p.ports.get(h.port)!;
  return httpGet(port, h.path);
}

export async function until(what: () => string, cond: () => boolean | Promise<boolean>, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stop(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(t);
}

/** A pod the operator should burst: annotated, Running on NODE, one container. */
export interface BurstPod {
  name: string;
  cpuBurstPercent: number;
  /** Without the `containerd://` prefix. */
  containerId: string;
  quotaUs: number;
  container: { name: string; resources: Record<string, unknown> };
  startedAt?: string;
}

export interface StartOptions {
  /** Default: the key. */
  podName?: string;
  /**
   * Run with the pod's own API credentials, as in-cluster config would: a kubeconfig holding a
   * TokenRequest token of the pod's ServiceAccount (default audience, bound to the pod), so every
   * API call goes through the chart's RBAC. Needs automountServiceAccountToken in the pod spec.
   */
  inCluster?: boolean;
  /** More hostPath → local directory mappings (besides the cgroup root and the state dir). */
  hostPaths?: Record<string, string>;
  /** Default: the broker Service → loopback. */
  dns?: Array<[string, string]>;
  entrypoint?: string[];
}

/**
 * The node a rendered chart runs on: a temp dir, devcluster as the API server (kubeconfig in the
 * dir), a fake cgroupfs for the hostPaths, and the processes started from the rendered workloads.
 */
export class ChartBed {
  readonly dir: string;
  readonly kubeconfig: string;
  readonly chartFile: string;
  readonly procs = new Map<string, Proc>();
  objs: K8sObject[] = [];
  cluster!: DevCluster;
  fake!: FakeCgroupFs;

  constructor(tmpPrefix: string) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), tmpPrefix));
    this.kubeconfig = path.join(this.dir, 'kubeconfig');
    this.chartFile = path.join(this.dir, 'chart.yaml');
  }

  /** `minTokenSeconds`: TokenRequest's lower bound (kube-apiserver: 600), lowered for rotation tests. */
  async boot(cgroupVersion: 1 | 2, minTokenSeconds = 600): Promise<void> {
    // With an admin token, ServiceAccount callers are authorized by RBAC (kubectl stays admin). TLS,
    // because kubectl sends no bearer token over plain http.
    this.cluster = await startDevCluster({
      kubeconfigPath: this.kubeconfig,
      token: ADMIN_TOKEN,
      tls: true,
      saMinExpirationSeconds: minTokenSeconds,
    });
    // kube-apiserver bootstraps these; the chart only binds them.
    for (const role of BOOTSTRAP_CLUSTER_ROLES) this.cluster.store.apply(role as any);
    this.fake = FakeCgroupFs.create({ version: cgroupVersion });
  }

  kubectl(...args: string[]): Promise<RunResult> {
    return run(KUBECTL, args, { KUBECONFIG: this.kubeconfig });
  }

  /** `kubectl apply`s the CRDs and these objects (as `text` when given), then registers NODE. */
  async install(objs: K8sObject[], text = objs.map((o) => stringify(o)).join('---\n')): Promise<void> {
    this.objs = objs;
    writeFileSync(this.chartFile, text);
    for (const args of [
      ['apply', '-f', path.join(CHART, 'crds')],
      ['create', 'namespace', NAMESPACE],
      ['apply', '-n', NAMESPACE, '-f', this.chartFile],
    ]) {
      const r = await this.kubectl(...args);
      assert.equal(r.code, 0, r.stderr);
    }
    this.cluster.store.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE, labels: {} } } as any);
  }

  /**
   * POST serviceaccounts/<sa>/token: a token bound to the pod, as the kubelet asks for one. Without
   * an audience the token is for the API server itself.
   */
  async requestToken(
    sa: string,
    pod: { name: string; uid: string },
    audience: string | undefined,
    expirationSeconds: number,
  ): Promise<IssuedToken> {
    const res = await this.api('POST', `/api/v1/namespaces/${NAMESPACE}/serviceaccounts/${sa}/token`, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        ...(audience ? { audiences: [audience] } : {}),
        expirationSeconds,
        boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod.name, uid: pod.uid },
      },
    });
    if (res.status !== 201 && res.status !== 200)
      throw new Error(
        `TokenRequest for ${sa} bound to ${pod.name}: ${res.status} ${JSON.stringify(res.body)}`,
      );
    return res.body.status;
  }

  /** One JSON request to devcluster as the admin, trusting its CA. */
  api(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = https.request(
        `${this.cluster.url}${p}`,
        {
          method,
          ca: this.cluster.caPem,
          headers: {
            authorization: `Bearer ${ADMIN_TOKEN}`,
            ...(data ? { 'content-type': 'application/json' } : {}),
          },
          timeout: 30_000,
        },
        (res) => {
          let text = '';
          res.on('data', (d) => {
            text += d;
          });
          res.on('end', () => {
            try {
              resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
            } catch {
              resolve({ status: res.statusCode ?? 0, body: text });
            }
          });
        },
      );
      req.once('error', reject);
      req.end(data);
    });
  }

  /** The Pod object of a started workload: scheduled on NODE, Running, with the template's spec. */
  private createPod(podName: string, workload: K8sObject): { name: string; uid: string } {
    const tpl = workload.spec.template;
    const created = this.cluster.store.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: podName, namespace: NAMESPACE, labels: tpl.metadata.labels ?? {} },
      spec: { ...tpl.spec, nodeName: NODE },
      status: { phase: 'Running' },
    } as any);
    return { name: podName, uid: created.metadata.uid };
  }

  /** Starts the workload's container as pod `key`, its hostPaths on the fake cgroupfs and a state dir. */
  async start(key: string, workload: K8sObject, extraArgs: string[], o: StartOptions = {}): Promise<Proc> {
    const podName = o.podName ?? key;
    const pod = this.createPod(podName, workload);
    const sa: string = workload.spec.template.spec.serviceAccountName ?? 'default';
    const args = [...extraArgs];
    if (o.inCluster) {
      assert.equal(workload.spec.template.spec.automountServiceAccountToken, true, `${key} has no API token`);
      const { token } = await this.requestToken(sa, pod, undefined, 3600);
      const file = path.join(this.dir, `${key}.in-cluster.kubeconfig`);
      const kc = kubeconfigYaml({
        server: this.cluster.url,
        token,
        caPem: this.cluster.caPem,
        namespace: NAMESPACE,
      });
      writeFileSync(file, kc, { mode: 0o600 });
      args.push(`--kubeconfig=${file}`);
    }
    const p = await startContainer(workload, {
      objs: this.objs,
      dir: path.join(this.dir, key),
      node: NODE,
      namespace: NAMESPACE,
      podName,
      pod,
      requestToken: (audience, exp) => this.requestToken(sa, pod, audience, exp),
      hostPaths: {
        '/sys/fs/cgroup': this.fake.root,
        '/var/lib/cpuburst': path.join(this.dir, key, 'state'),
        ...o.hostPaths,
      },
      paths: { '/proc': this.fake.procRoot },
      // Cluster DNS: the broker Service resolves to the broker process on loopback.
      dns: o.dns ?? [[`${name('broker')}.${NAMESPACE}.svc`, '127.0.0.1']],
      extraArgs: args,
      ...(o.entrypoint ? { entrypoint: o.entrypoint } : {}),
    });
    this.procs.set(key, p);
    return p;
  }

  /** Waits for the readiness probe; the process must still run. `tail`: log characters in messages. */
  async untilReady(key: string, tail = 2000): Promise<Proc> {
    const p = this.procs.get(key)!;
    await until(
      () => `${key} ready (${p.log.slice(-tail)})`,
      async () => (await probe(p, 'readinessProbe')).status === 200 || p.child.exitCode !== null,
    );
    assert.equal(p.child.exitCode, null, `${key}: ${p.log.slice(-tail)}`);
    return p;
  }

  /** Creates the pod in the API (which assigns the uid), then its cgroup as the kubelet would. */
  addBurstPod(pod: BurstPod): { uid: string; containerDir: string } {
    const containerID = `containerd://${pod.containerId}`;
    const created = this.cluster.store.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: pod.name,
        namespace: 'default',
        annotations: {
          'cpuburst.io/enabled': 'true',
          'cpuburst.io/config': JSON.stringify({
            policy: 'cpuBurstOnly',
            cpuBurstPercent: pod.cpuBurstPercent,
          }),
        },
      },
      spec: { nodeName: NODE, containers: [pod.container] },
      status: {
        phase: 'Running',
        qosClass: 'Burstable',
        containerStatuses: [
          {
            name: pod.container.name,
            containerID,
            state: { running: pod.startedAt ? { startedAt: pod.startedAt } : {} },
          },
        ],
      },
    } as any);
    const uid: string = created.metadata.uid;
    const { containerDirs } = this.fake.addPod({
      uid,
      qosClass: 'Burstable',
      containers: [{ id: containerID, quotaUs: pod.quotaUs }],
    });
    return { uid, containerDir: containerDirs[0]! };
  }

  /** Last started first; safe after a partial `boot`. */
  async close(): Promise<void> {
    for (const p of [...this.procs.values()].reverse()) {
      for (const t of p.timers) clearTimeout(t);
      await stop(p.child);
    }
    await this.cluster?.close();
    this.fake?.cleanup();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
