// Shared helpers of the broker tests: in-process brokers, real client processes, temp dirs,
// throwaway TLS material and private redis-server instances. Everything registers its cleanup.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { BrokerConfig } from '../../broker/config.js';
import { type RunningBroker, startBroker } from '../../broker/server.js';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const PAHO = path.join(HERE, 'clients', 'paho_client.py');
export const PYTHON = '/usr/bin/python3';

type After = (fn: () => unknown) => void;

export function tempDir(after: After, prefix = 'cpuburst-broker-test-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function writeFile(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** A broker on ephemeral loopback ports, in memory unless the test says otherwise. */
export async function testBroker(after: After, cfg: Partial<BrokerConfig> = {}): Promise<RunningBroker> {
  const b = await startBroker({
    host: '127.0.0.1',
    mqttPort: 0,
    tlsPort: -1,
    wsPort: 0,
    wssPort: -1,
    httpPort: 0,
    flappingMaxCount: 0,
    ...cfg,
  });
  after(() => b.close());
  return b;
}

export async function connect(
  after: After,
  port: number,
  opts: IClientOptions = {},
  proto = 'mqtt',
): Promise<MqttClient> {
  const c = await mqtt.connectAsync(`${proto}://127.0.0.1:${port}${proto.startsWith('ws') ? '/mqtt' : ''}`, {
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ...opts,
  });
  after(() => c.endAsync(true));
  return c;
}

/** Connect expecting refusal; resolves to the CONNACK return/reason code. */
export function connectError(port: number, opts: IClientOptions = {}): Promise<number | undefined> {
  return new Promise((resolve) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      ...opts,
    });
    c.once('connect', () => {
      c.end(true);
      resolve(0);
    });
    c.once('error', (err: Error & { code?: number }) => {
      c.end(true);
      resolve(err.code);
    });
    c.once('close', () => setTimeout(() => resolve(-1), 50));
  });
}

/** Collects messages arriving on a client. */
export function collect(
  c: MqttClient,
): Array<{ topic: string; payload: string; retain: boolean; qos: number }> {
  const got: Array<{ topic: string; payload: string; retain: boolean; qos: number }> = [];
  c.on('message', (topic, payload, packet) =>
    got.push({ topic, payload: payload.toString(), retain: packet.retain, qos: packet.qos }),
  );
  return got;
}

export async function waitFor<T>(
  what: string,
  fn: () => T | Promise<T>,
  timeoutMs = 15_000,
): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last as NonNullable<T>;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a process to completion (with a hard timeout) and returns its output. */
export function run(cmd: string, args: string[], timeoutMs = 30_000, input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Starts a long-running process; it is killed after the test. */
export function start(
  after: After,
  cmd: string,
  args: string[],
): ChildProcess & { out: () => string; closed: () => boolean } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }) as ChildProcess & {
    out: () => string;
    closed: () => boolean;
  };
  // 'close' (not 'exit') means stdout/stderr are fully read.
  let isClosed = false;
  child.once('close', () => {
    isClosed = true;
  });
  child.closed = () => isClosed;
  let out = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    out += d;
  });
  child.out = () => out;
  after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

export function paho(args: string[], timeoutMs = 30_000): Promise<Record<string, any>> {
  return run(PYTHON, [PAHO, ...args], timeoutMs).then((r) => {
    try {
      return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as Record<string, any>;
    } catch {
      throw new Error(`paho client failed (code ${r.code}): ${r.stdout}${r.stderr}`);
    }
  });
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

/** A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate. */
export async function makeCerts(
  dir: string,
): Promise<{ ca: string; cert: string; key: string; clientCert: string; clientKey: string }> {
  const f = (n: string) => path.join(dir, n);
  const steps: string[][] = [
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      f('ca.key'),
      '-out',
      f('ca.pem'),
      '-days',
      '2',
      '-subj',
      '/CN=cpuburst-test-ca',
    ],
    [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      f('server.key'),
      '-out',
      f('server.csr'),
      '-subj',
      '/CN=localhost',
    ],
    [
      'x509',
      '-req',
      '-in',
      f('server.csr'),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-out',
      f('server.pem'),
      '-days',
      '2',
      '-extfile',
      f('san.cnf'),
    ],
    [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      f('client.key'),
      '-out',
      f('client.csr'),
      '-subj',
      '/CN=device-1',
    ],
    [
      'x509',
      '-req',
      '-in',
      f('client.csr'),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-out',
      f('client.pem'),
      '-days',
      '2',
    ],
  ];
  writeFileSync(f('san.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  for (const args of steps) {
    const r = await run('openssl', args);
    if (r.code !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
  }
  return {
    ca: f('ca.pem'),
    cert: f('server.pem'),
    key: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
  };
}

/** A private redis-server on a free port, without persistence. */
export async function startRedis(after: After): Promise<string> {
  const port = await freePort();
  const dir = tempDir(after, 'cpuburst-redis-');
  const child = start(after, 'redis-server', [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
  ]);
  await waitFor('redis-server', () => child.out().includes('Ready to accept connections'), 15_000);
  return `redis://127.0.0.1:${port}`;
}

/**
 * Cleanups collected during a test file and run (in reverse) by one root `after` hook: calling
 * node:test's `after` from inside `before` or a test does not attach it to the file.
 */
export function cleanupList(after: (fn: () => Promise<void>) => void): After {
  const fns: Array<() => unknown> = [];
  after(async () => {
    for (const fn of fns.reverse()) {
      try {
        await fn();
      } catch {
        // keep cleaning up
      }
    }
  });
  return (fn) => {
    fns.push(fn);
  };
}
