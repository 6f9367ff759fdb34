// The shared control plane of the P2 bench: credentials, the real broker (`cpuburst broker`) and
// operator processes (`cpuburst operator`), from dist/ when built.
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { jsonLine, spawnComponent, tail, waitUntil } from './p2-procs.js';

export interface Credentials {
  usersFile: string;
  agentKeyFile: string;
  operatorPasswordFile: string;
  agentKey: string;
}

export function writeCredentials(dir: string): Credentials {
  const c: Credentials = {
    usersFile: path.join(dir, 'users.yaml'),
    agentKeyFile: path.join(dir, 'agent.key'),
    operatorPasswordFile: path.join(dir, 'operator.pw'),
    agentKey: 'p2-bench-agent-key-0123456789abcdef',
  };
  writeFileSync(c.usersFile, 'users:\n  - username: operator\n    password: p2-bench-operator\n');
  writeFileSync(c.agentKeyFile, c.agentKey);
  writeFileSync(c.operatorPasswordFile, 'p2-bench-operator\n');
  return c;
}

export interface Broker {
  child: ChildProcess;
  url: string;
}

/** `cpuburst broker` on an ephemeral loopback port; agents log in with the legacy shared agent key. */
export async function startBroker(dir: string, c: Credentials): Promise<Broker> {
  const portsFile = path.join(dir, 'broker-ports.json');
  const child = spawnComponent([
    'broker',
    '--host=127.0.0.1',
    '--mqtt-port=0',
    '--tls-port=-1',
    '--ws-port=-1',
    '--wss-port=-1',
    '--http-port=-1',
    `--users-file=${c.usersFile}`,
    `--agent-key-file=${c.agentKeyFile}`,
    '--conn-rate=0',
    '--flapping-max-count=0',
    // The CLI's default session store (level, ./data/broker) but in the bench's temp dir.
    `--data-dir=${path.join(dir, 'broker-data')}`,
    '--log-level=warn',
    `--ports-file=${portsFile}`,
  ]);
  const log = tail(child);
  const port = await waitUntil(
    'broker ports file',
    () => {
      if (child.exitCode !== null) throw new Error(`broker exited: ${log()}`);
      return JSON.parse(readFileSync(portsFile, 'utf8')).mqttPort as number;
    },
    60_000,
    50,
  );
  return { child, url: `mqtt://127.0.0.1:${port}` };
}

export interface Operator {
  child: ChildProcess;
  identity: string;
  probePort: number;
  metricsPort: number;
  log: () => string;
}

export interface OperatorOpts {
  kubeconfig: string;
  mqttUrl: string;
  creds: Credentials;
  identity: string;
  leaderElect: boolean;
  lease?: { durationSeconds: number; renewSeconds: number; retryMs: number };
  nodeFlags?: string[];
  /** info (default) at least: the start line names the probe port. */
  logLevel?: 'info' | 'debug';
}

/** `cpuburst operator`; resolves once it logged its probe port. */
export async function startOperator(o: OperatorOpts): Promise<Operator> {
  const lease = o.lease ?? { durationSeconds: 15, renewSeconds: 10, retryMs: 2000 };
  const child = spawnComponent(
    [
      'operator',
      `--kubeconfig=${o.kubeconfig}`,
      `--mqtt-url=${o.mqttUrl}`,
      `--mqtt-password-file=${o.creds.operatorPasswordFile}`,
      `--identity=${o.identity}`,
      o.leaderElect ? '--leader-elect' : '--no-leader-elect',
      `--lease-duration-seconds=${lease.durationSeconds}`,
      `--renew-deadline-seconds=${lease.renewSeconds}`,
      `--retry-period-ms=${lease.retryMs}`,
      '--probe-port=0',
      '--metrics-port=0',
      `--log-level=${o.logLevel ?? 'info'}`,
    ],
    o.nodeFlags ?? [],
  );
  const log = tail(child, 20_000);
  // "Started operator" (an info line) names the ephemeral probe port.
  const { probePort, metricsPort } = await jsonLine(
    child,
    (l) =>
      l.message === 'Started operator'
        ? { probePort: l.probePort as number, metricsPort: l.metricsPort as number }
        : undefined,
    'operator start',
  );
  return { child, identity: o.identity, probePort, metricsPort, log };
}

/** The operator's V8 heap in use (MiB) from its /metrics (prom-client default metrics); null if unreachable. */
export async function heapUsedMiB(op: Operator): Promise<number | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${op.metricsPort}/metrics`, {
      signal: AbortSignal.timeout(10_000),
    });
    const m = /^nodejs_heap_size_used_bytes (\S+)$/m.exec(await r.text());
    return m ? Math.round(Number(m[1]) / 2 ** 20) : null;
  } catch {
    return null;
  }
}

/** True once the operator's /readyz answers 200 (caches synced, broker connected). */
export async function ready(op: Operator): Promise<boolean> {
  if (op.probePort < 0) return false;
  try {
    const r = await fetch(`http://127.0.0.1:${op.probePort}/readyz`);
    return r.status === 200;
  } catch {
    return false;
  }
}
