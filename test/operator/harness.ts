// Test harness: devcluster + in-process aedes + an operator Controller (in-process) + fake agents.
import { type ChildProcess, execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import YAML from 'yaml';
import type { BrokerConfig } from '../../broker/config.js';
import { type RunningBroker, startBroker } from '../../broker/server.js';
import { type Logger, memoryLogger, silentLogger } from '../../common/log.js';
import { startControlIdentities } from '../../demo/identities.js';
import type { DevCluster } from '../../devcluster/index.js';
import type { DecisionBus } from '../../operator/bus.js';
import type { Controller } from '../../operator/controller.js';
import { allowPlainHttp, type KubeApis, makeApis } from '../../operator/kube/client.js';
import { LeaderElector } from '../../operator/kube/leader.js';
import { createOperatorMetrics, type OperatorMetrics } from '../../operator/metrics.js';
import { wireOperator } from '../../operator/wiring.js';
import { type DecisionDocument, decode, encode, topics } from '../../protocol/index.js';
import { REPO_ROOT } from '../support/cli.js';
import { CRD_PATH } from './crd-validator.js';
import { node as nodeObj, namespace as nsObj } from './fixtures.js';

export const CM_NS = 'cpuburst-system';

/** The control plane's broker credentials in `dir`: users file with the operator, shared agent key, operator password file. */
export interface ControlCredentials {
  usersFile: string;
  agentKeyFile: string;
  operatorPasswordFile: string;
  operatorPassword: string;
  agentKey: string;
}

export function writeControlCredentials(
  dir: string,
  agentKey: string,
  operatorPassword = 'op-secret',
): ControlCredentials {
  const c: ControlCredentials = {
    usersFile: path.join(dir, 'users.yaml'),
    agentKeyFile: path.join(dir, 'agent.key'),
    operatorPasswordFile: path.join(dir, 'op.pw'),
    operatorPassword,
    agentKey,
  };
  writeFileSync(c.usersFile, `users:\n  - username: operator\n    password: ${operatorPassword}\n`);
  writeFileSync(c.agentKeyFile, agentKey);
  writeFileSync(c.operatorPasswordFile, `${operatorPassword}\n`);
  return c;
}

/**
 * The control plane's ServiceAccount identities in devcluster, the Kubernetes way (demo/identities.ts):
 * ServiceAccounts cpuburst-agent and cpuburst-operator in `namespace`, a pod of each bound to `node`,
 * and TokenRequest tokens (audience cpuburst-broker) bound to those pods, written to files.
 */
export interface ControlTokens {
  kubeconfig: string;
  saAgent: string;
  saOperator: string;
  agentTokenFile: string;
  operatorTokenFile: string;
  /** The pods the tokens are bound to. */
  agentPod: { name: string; uid: string };
  operatorPod: { name: string; uid: string };
  /** The token now in the file (tokens rotate; read it when you connect). */
  agentToken(): string;
  operatorToken(): string;
  /** Re-issues both tokens (a kubelet refresh). */
  refresh(): Promise<void>;
  stop(): void;
}

export async function writeControlTokens(
  cluster: DevCluster,
  kubeconfig: string,
  dir: string,
  o: { node: string; namespace?: string },
): Promise<ControlTokens> {
  const ids = await startControlIdentities({
    kc: kubeConfigFor(cluster),
    namespace: o.namespace ?? CM_NS,
    node: o.node,
    dir,
  });
  return {
    kubeconfig,
    saAgent: ids.agent.serviceAccount,
    saOperator: ids.operator.serviceAccount,
    agentTokenFile: ids.agent.tokenFile,
    operatorTokenFile: ids.operator.tokenFile,
    agentPod: ids.agent.pod,
    operatorPod: ids.operator.pod,
    agentToken: () => readFileSync(ids.agent.tokenFile, 'utf8'),
    operatorToken: () => readFileSync(ids.operator.tokenFile, 'utf8'),
    refresh: ids.refresh,
    stop: ids.stop,
  };
}

/**
 * The real broker (TCP only, on loopback). With ControlTokens: auth chain k8s-token only, verified
 * against devcluster (discovery + JWKS, bound pod read through the API). With ControlCredentials: the
 * legacy users file + shared agent key.
 */
export function startControlBroker(
  c: ControlCredentials | ControlTokens,
  opts: { port?: number; flappingMaxCount?: number; legacyToo?: ControlCredentials } = {},
): Promise<RunningBroker> {
  const legacy = 'saAgent' in c ? opts.legacyToo : c;
  const cfg: Partial<BrokerConfig> = {
    host: '127.0.0.1',
    mqttPort: opts.port ?? 0,
    tlsPort: -1,
    wsPort: -1,
    wssPort: -1,
    httpPort: -1,
    ...(legacy ? { usersFile: legacy.usersFile, agentKeyFile: legacy.agentKeyFile } : {}),
    ...(opts.flappingMaxCount === undefined ? {} : { flappingMaxCount: opts.flappingMaxCount }),
  };
  if ('saAgent' in c) {
    // k8s-token first: agent-key denies every agent:* username whose password is not its HMAC, and
    // token clients send agent:<node> as the (informational) username; k8s-token ignores non-JWTs.
    cfg.authChain = legacy ? ['k8s-token', 'password', 'agent-key'] : ['k8s-token'];
    cfg.kubeconfig = c.kubeconfig;
    cfg.saAgent = c.saAgent;
    cfg.saOperator = c.saOperator;
  }
  return startBroker(cfg);
}
export const CM_NAME = 'cpu-burst-config';

export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 20_000,
  everyMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(everyMs);
  }
}

export interface TestBroker {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startAedes(port = 0): Promise<TestBroker> {
  const broker = await Aedes.createBroker();
  const server = net.createServer(broker.handle as any);
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    s.setNoDelay(true);
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  const p = (server.address() as AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${p}`,
    port: p,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => broker.close(() => r()));
    },
  };
}

export function kubeConfigFor(cluster: DevCluster): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(cluster.kubeConfig());
  return allowPlainHttp(kc);
}

export async function seedCluster(cluster: DevCluster, nodes = ['node-a', 'node-b']): Promise<void> {
  cluster.store.apply(YAML.parse(readFileSync(CRD_PATH, 'utf8')));
  for (const ns of ['default', CM_NS, 'shop'])
    cluster.store.apply(nsObj(ns, ns === 'shop' ? { team: 'shop' } : {}) as any);
  for (const n of nodes) cluster.store.apply(nodeObj(n) as any);
}

export interface OperatorUnderTest {
  controller: Controller;
  bus: DecisionBus;
  elector?: LeaderElector;
  metrics: OperatorMetrics;
  apis: KubeApis;
  log: Logger;
  lines: Array<Record<string, any>>;
  published: DecisionDocument[];
  stop(opts?: { release?: boolean }): Promise<void>;
}

export interface OperatorOpts {
  identity?: string;
  leaderElect?: boolean;
  leaseMs?: number;
  renewMs?: number;
  retryMs?: number;
  staleMs?: number;
  resyncMs?: number;
  memoryLog?: boolean;
  /** MQTT password of the operator identity (legacy password login). */
  mqttPassword?: string;
  /** The operator ServiceAccount's token file (k8s-token login; re-read on every reconnect). */
  mqttTokenFile?: string;
  configMapName?: string;
  configMapNamespace?: string;
}

export async function startOperator(
  cluster: DevCluster,
  broker: TestBroker,
  o: OperatorOpts = {},
): Promise<OperatorUnderTest> {
  const identity = o.identity ?? 'op-1';
  const { log, lines } = o.memoryLog
    ? memoryLogger('operator')
    : { log: silentLogger('operator'), lines: [] };
  const apis = makeApis(kubeConfigFor(cluster));
  const metrics = createOperatorMetrics();
  // The same wiring as the binary (operator/main.ts).
  const { bus, controller, lead } = wireOperator({
    apis,
    log,
    metrics,
    identity,
    mqtt: { url: broker.url, password: o.mqttPassword, tokenFile: o.mqttTokenFile },
    configMapName: o.configMapName ?? CM_NAME,
    configMapNamespace: o.configMapNamespace ?? CM_NS,
    resyncMs: o.resyncMs ?? 0,
    staleMs: o.staleMs ?? 0,
    watchTimeoutSeconds: 60,
    scheduleCheckMs: 1000,
  });
  const published: DecisionDocument[] = [];
  controller.onPublished = (d) => published.push(d);
  controller.start();
  await bus.connect();
  let elector: LeaderElector | undefined;
  if (o.leaderElect) {
    elector = new LeaderElector({
      api: apis.coordination,
      name: 'cpuburst-operator',
      namespace: CM_NS,
      identity,
      leaseDurationMs: o.leaseMs ?? 2000,
      renewDeadlineMs: o.renewMs ?? 1500,
      retryPeriodMs: o.retryMs ?? 200,
      log,
      onStartedLeading: () => void lead(),
      onStoppedLeading: () => controller.setLeader(false),
    });
    elector.start();
  } else {
    await lead();
  }
  return {
    controller,
    bus,
    elector,
    metrics,
    apis,
    log,
    lines,
    published,
    stop: async ({ release = true } = {}) => {
      if (elector) {
        if (release) await elector.stop();
        else (elector as any).stopped = true; // a crash: no release, timers just stop
      }
      await controller.stop();
      await bus.close();
    },
  };
}

/** A fake agent: keeps the latest decision document per node and acks (optionally with errors). */
export class FakeAgent {
  readonly docs: DecisionDocument[] = [];
  /** performance.now() when each doc arrived (before decoding), parallel to docs. */
  readonly receivedAt: number[] = [];
  client!: MqttClient;
  ackErrors: (doc: DecisionDocument) => Array<{ uid: string; reason: string; message: string }> = () => [];
  autoAck = true;

  constructor(
    readonly url: string,
    readonly node: string,
    /** A ServiceAccount token (k8s-token) or a legacy derived agent password. */
    readonly password?: string,
    readonly clientId = `agent-${node}-${process.pid}`,
  ) {}

  async start(): Promise<void> {
    this.client = await mqtt.connectAsync(this.url, {
      clientId: this.clientId,
      username: `agent:${this.node}`,
      password: this.password,
      reconnectPeriod: 200,
    });
    this.client.on('message', (_t, payload) => {
      const at = performance.now();
      if (payload.length === 0) return;
      const d = decode.decisions(payload);
      if (!d.ok) return;
      this.docs.push(d.value);
      this.receivedAt.push(at);
      if (this.autoAck) void this.ack(d.value);
    });
    await this.client.subscribeAsync(topics.decisions(this.node), { qos: 1 });
  }

  get latest(): DecisionDocument | undefined {
    return this.docs.at(-1);
  }

  async ack(doc: DecisionDocument): Promise<void> {
    const errors = this.ackErrors(doc);
    await this.client.publishAsync(
      topics.ack(this.node),
      encode({
        apiVersion: 'cpuburst.io/v1',
        kind: 'DecisionAck',
        node: this.node,
        version: doc.version,
        result: errors.length ? 'PartiallyApplied' : 'Applied',
        time: new Date().toISOString(),
        errors,
      }),
      { qos: 1 },
    );
  }

  async stop(): Promise<void> {
    await this.client?.endAsync(true);
  }
}

export function podNames(doc: DecisionDocument | undefined): string[] {
  return (doc?.pods ?? []).map((p) => `${p.namespace}/${p.name}`);
}

export const KUBECTL = path.join(REPO_ROOT, '.tools/kubectl');
export const HAVE_KUBECTL = existsSync(KUBECTL);

/** Runs the real kubectl (v1.32.3 from `make tools`) against a kubeconfig file. */
export function kubectl(
  kubeconfig: string,
  home: string,
  args: string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      KUBECTL,
      [`--kubeconfig=${kubeconfig}`, `--cache-dir=${path.join(home, 'cache')}`, ...args],
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home }, timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as any).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) }),
    );
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

/** Collects a child's JSON log lines (stdout) so tests can find e.g. the ephemeral ports it logged. */
export function jsonLines(child: ChildProcess): Array<Record<string, any>> {
  const out: Array<Record<string, any>> = [];
  let buf = '';
  child.stdout?.on('data', (d) => {
    buf += d;
    let i = buf.indexOf('\n');
    while (i >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        out.push(JSON.parse(line));
      } catch {
        /* not JSON */
      }
      i = buf.indexOf('\n');
    }
  });
  return out;
}

export function exited(child: ChildProcess, timeoutMs = 15_000): Promise<number | null> {
  // A child killed by a signal keeps exitCode null (signalCode is set instead).
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      setTimeout(() => resolve(null), 2000).unref();
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}
