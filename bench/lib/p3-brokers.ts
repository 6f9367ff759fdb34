// The processes the broker bench (P3) measures: Mosquitto 2.0 (Debian) with its own temp config,
// `cpuburst broker` from the production build (dist/cli.js; tsx from source only when dist/ is
// missing) and a throwaway redis-server. Every process started here is killed on exit.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MOSQUITTO = process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';
export const REDIS = process.env.REDIS_SERVER_BIN ?? 'redis-server';
const CLK_TCK = 100;

const running = new Set<ChildProcess>();
function killAll(): void {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
process.on('exit', killAll);

export interface BrokerProcess {
  name: string;
  pid: number;
  port: number;
  log: string;
  /** Resident set size in bytes (/proc/<pid>/status VmRSS). */
  rssBytes(): number;
  /** user+system CPU seconds so far. */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

export function mosquittoVersion(): string | null {
  if (!existsSync(MOSQUITTO)) return null;
  try {
    execFileSync(MOSQUITTO, ['-h'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    // `mosquitto -h` exits 3 after printing its version
    const out = String((err as { stdout?: string }).stdout ?? '');
    const m = /mosquitto version (\S+)/.exec(out);
    if (m) return m[1]!;
  }
  return 'unknown';
}

export function redisAvailable(): boolean {
  try {
    execFileSync(REDIS, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function procRss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function procCpu(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime
  } catch {
    return 0;
  }
}

async function waitTcp(port: number, child: ChildProcess, log: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}: ${tail(log)}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`not listening on ${port} after ${ms} ms: ${tail(log)}`);
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-5).join(' | ');
  } catch {
    return '';
  }
}

function launch(name: string, cmd: string, args: string[], log: string): ChildProcess {
  const fd = openSync(log, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], cwd: REPO });
  running.add(child);
  child.once('exit', () => running.delete(child));
  child.once('error', () => running.delete(child));
  void name;
  return child;
}

function handle(name: string, child: ChildProcess, port: number, log: string): BrokerProcess {
  const pid = child.pid!;
  return {
    name,
    pid,
    port,
    log,
    rssBytes: () => procRss(pid),
    cpuSeconds: () => procCpu(pid),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const force = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(force);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

export interface MosquittoOptions {
  dir: string;
  name: string;
  persistence?: boolean;
  /** username → password; with it anonymous clients are refused. */
  users?: Record<string, string>;
  /** ACL file text (mosquitto syntax). */
  acl?: string;
}

export async function startMosquitto(o: MosquittoOptions): Promise<BrokerProcess> {
  const port = await freePort();
  const conf = path.join(o.dir, `${o.name}.conf`);
  const lines = [`listener ${port} 127.0.0.1`, 'max_connections -1'];
  // As root, mosquitto 2.0 drops to the `mosquitto` user, which cannot use our 0700 temp dir.
  if (process.getuid?.() === 0) lines.push('user root');
  if (o.persistence) {
    lines.push('persistence true', `persistence_location ${o.dir}/${o.name}-data/`);
    execFileSync('mkdir', ['-p', `${o.dir}/${o.name}-data`]);
  } else lines.push('persistence false');
  if (o.users) {
    const pw = path.join(o.dir, `${o.name}.passwd`);
    writeFileSync(pw, '');
    for (const [u, p] of Object.entries(o.users)) execFileSync('mosquitto_passwd', ['-b', pw, u, p]);
    lines.push('allow_anonymous false', `password_file ${pw}`);
  } else lines.push('allow_anonymous true');
  if (o.acl) {
    const acl = path.join(o.dir, `${o.name}.acl`);
    writeFileSync(acl, o.acl);
    lines.push(`acl_file ${acl}`);
  }
  writeFileSync(conf, `${lines.join('\n')}\n`);
  const log = path.join(o.dir, `${o.name}.log`);
  const child = launch(o.name, MOSQUITTO, ['-c', conf], log);
  await waitTcp(port, child, log);
  return handle(o.name, child, port, log);
}

/** argv of `cpuburst`: the production build, or the sources through tsx when dist/ is missing. */
export function cpuburstCommand(): { cmd: string; args: string[]; build: 'dist' | 'tsx' } {
  // P3_CPUBURST_CLI points at another build's cli.js (e.g. to compare a change)
  const dist = process.env.P3_CPUBURST_CLI ?? path.join(REPO, 'dist/cli.js');
  if (existsSync(dist)) return { cmd: process.execPath, args: [dist], build: 'dist' };
  return { cmd: process.execPath, args: ['--import', 'tsx', path.join(REPO, 'cli.ts')], build: 'tsx' };
}

export interface CpuburstOptions {
  dir: string;
  name: string;
  /** 'memory', a LevelDB directory, or unset with redisUrl. */
  dataDir?: string;
  redisUrl?: string;
  usersFile?: string;
  acl?: string;
  nodeArgs?: string[];
  extra?: string[];
}

export async function startCpuburst(o: CpuburstOptions): Promise<BrokerProcess> {
  const portsFile = path.join(o.dir, `${o.name}.ports.json`);
  const log = path.join(o.dir, `${o.name}.log`);
  const { cmd, args } = cpuburstCommand();
  const argv = [
    ...(o.nodeArgs ?? []),
    ...args,
    'broker',
    '--host',
    '127.0.0.1',
    '--mqtt-port',
    '0',
    '--ws-port',
    '-1',
    '--tls-port',
    '-1',
    '--http-port',
    '-1',
    '--conn-rate',
    '0',
    '--flapping-max-count',
    '0',
    '--broker-id',
    o.name,
    '--ports-file',
    portsFile,
  ];
  if (o.redisUrl) argv.push('--redis-url', o.redisUrl);
  else argv.push('--data-dir', o.dataDir ?? 'memory');
  if (o.usersFile) argv.push('--users-file', o.usersFile);
  else argv.push('--allow-anonymous');
  if (o.acl) argv.push('--acl', o.acl);
  argv.push(...(o.extra ?? []));
  const child = launch(o.name, cmd, argv, log);
  const end = Date.now() + 30_000;
  while (!existsSync(portsFile) || !readFileSync(portsFile, 'utf8').trim()) {
    if (child.exitCode !== null) throw new Error(`${o.name} exited with ${child.exitCode}: ${tail(log)}`);
    if (Date.now() > end) throw new Error(`${o.name} did not start: ${tail(log)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const port = (JSON.parse(readFileSync(portsFile, 'utf8')) as { mqttPort: number }).mqttPort;
  return handle(o.name, child, port, log);
}

export async function startRedis(dir: string, name = 'redis'): Promise<BrokerProcess & { url: string }> {
  const port = await freePort();
  const log = path.join(dir, `${name}.log`);
  const child = launch(
    name,
    REDIS,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    log,
  );
  await waitTcp(port, child, log);
  return { ...handle(name, child, port, log), url: `redis://127.0.0.1:${port}` };
}

/** Kills every process this module started (also done on process exit). */
export function killAllBrokers(): void {
  killAll();
}
