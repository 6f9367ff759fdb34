// The real agent process (spawned through the CLI) against the real broker (in-process, auth chain
// k8s-token) with ServiceAccount tokens from an in-process devcluster (TokenRequest bound to pods on
// the node, --mqtt-token-file); retained
// decision → applied to a fake cgroupfs → ack, status, capabilities, presence; garbage ignored;
// keeps enforcing while the broker is down; reconnects; Last Will fires when it is killed.
// With --mqtt-token-file: a missing file is logged and retried, and a token rotated on disk is the
// one sent on the next reconnect (the broker drops the connection when a token expires).
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { type RunningBroker, startBroker as startBrokerInProcess } from '../../broker/server.js';
import { type DevCluster, startDevCluster } from '../../devcluster/index.js';
import { encode, topics } from '../../protocol/index.js';
import {
  CM_NS,
  type ControlTokens,
  seedCluster,
  startControlBroker,
  writeControlTokens,
} from '../operator/harness.js';
import { spawnCli } from '../support/cli.js';
import { FakeCgroupFs } from '../support/fake-cgroupfs.js';
import { startTokenBroker } from '../support/token-broker.js';
import { container, document, podDecision } from './harness.js';

const NODE = 'node-a';

interface Msg {
  topic: string;
  body: any;
  retain: boolean;
}

async function until<T>(
  what: string,
  fn: () => T | undefined | null | false,
  timeoutMs = 20_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('agent over MQTT (spawned process, real broker, ServiceAccount tokens)', {
  timeout: 120_000,
}, () => {
  let cluster: DevCluster;
  let tokens: ControlTokens;
  let broker: RunningBroker;
  let port = 0;
  const startBroker = async (p = 0) => {
    broker = await startControlBroker(tokens, { port: p });
    port = broker.ports.mqttPort!;
  };
  let op: MqttClient;
  let agent: ChildProcess | null = null;
  let agentLog = '';
  const msgs: Msg[] = [];
  const fake = FakeCgroupFs.create({ version: 2 });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-mqtt-'));
  const { containerDirs } = fake.addPod({
    uid: 'mq-1',
    qosClass: 'Burstable',
    containers: [{ id: 'containerd://m1', quotaUs: 100000 }],
  });
  const c1 = containerDirs[0]!;
  const connectOperator = (port: number) => {
    op = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      username: 'operator',
      password: tokens.operatorToken(),
      clientId: 'test-operator',
      reconnectPeriod: 200,
    });
    op.on('message', (topic, payload, packet) => {
      let body: any = null;
      try {
        body = payload.length ? JSON.parse(payload.toString()) : null;
      } catch {
        body = payload.toString();
      }
      msgs.push({ topic, body, retain: packet.retain });
    });
    return new Promise<void>((r) =>
      op.on('connect', () => op.subscribe(topics.allAgentsFilter, { qos: 1 }, () => r())),
    );
  };
  const spawnAgent = (port: number) => {
    agentLog = '';
    agent = spawnCli([
      'agent',
      `--node-name=${NODE}`,
      `--cgroup-root=${fake.root}`,
      `--state-dir=${path.join(tmp, 'state')}`,
      `--proc-root=${fake.procRoot}`,
      `--mqtt-url=mqtt://127.0.0.1:${port}`,
      `--mqtt-token-file=${tokens.agentTokenFile}`,
      '--interval=200',
      '--metrics-port=-1',
    ]);
    agent.stdout?.on('data', (d) => {
      agentLog += d;
    });
    agent.stderr?.on('data', (d) => {
      agentLog += d;
    });
  };
  const last = (kind: string) =>
    msgs.filter((m) => m.topic === `cpuburst/v1/nodes/${NODE}/agent/${kind}`).at(-1);

  before(async () => {
    cluster = await startDevCluster({ kubeconfigPath: path.join(tmp, 'kubeconfig') });
    await seedCluster(cluster, [NODE]);
    tokens = await writeControlTokens(cluster, path.join(tmp, 'kubeconfig'), path.join(tmp, 'tokens'), {
      node: NODE,
    });
    await startBroker();
    await connectOperator(port);
  });
  after(async () => {
    if (agent && agent.exitCode === null) agent.kill('SIGKILL');
    op?.end(true);
    await broker?.close().catch(() => {});
    tokens?.stop();
    await cluster?.close();
    fake.cleanup();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('applies a retained decision, acks the version, publishes presence, capabilities and status', async () => {
    const doc = document(10, [podDecision('mq-1', [container('app', 'containerd://m1', 1000)])]);
    await op.publishAsync(topics.decisions(NODE), encode(doc), { qos: 1, retain: true });
    spawnAgent(port);
    const ack = await until('ack v10', () =>
      msgs.find((m) => m.topic === topics.ack(NODE) && m.body?.version === 10),
    );
    assert.equal(ack.body.result, 'Applied', agentLog);
    assert.equal(fake.values(c1).burstUs, 100000);
    await until('presence online', () => last('presence')?.body?.online === true);
    const caps = await until('capabilities', () => last('capabilities'));
    assert.equal(caps.body.cgroupVersion, 2);
    assert.equal(caps.body.burstSupported, true);
    assert.equal(caps.body.burstAboveQuota, false);
    const st = await until('status', () =>
      msgs.find((m) => m.topic === topics.status(NODE) && m.body?.appliedVersion === 10),
    );
    assert.equal(st.body.pods[0].phase, 'Applied');
  });

  it('ignores garbage and stale payloads; acks Rejected when the version is readable', async () => {
    await op.publishAsync(topics.decisions(NODE), Buffer.from('{not json'), { qos: 1 });
    await op.publishAsync(topics.decisions(NODE), encode({ version: 11, pods: 'nope' }), { qos: 1 });
    const rej = await until('rejected ack', () =>
      msgs.find((m) => m.topic === topics.ack(NODE) && m.body?.version === 11),
    );
    assert.equal(rej.body.result, 'Rejected');
    assert.equal(rej.body.errors[0].reason, 'InvalidDocument');
    await op.publishAsync(topics.decisions(NODE), encode(document(9, [])), { qos: 1 }); // stale: must not restore
    const doc12 = document(12, [
      podDecision('mq-1', [container('app', 'containerd://m1', 1000)], { cpuBurstPercent: 50 }),
    ]);
    await op.publishAsync(topics.decisions(NODE), encode(doc12), { qos: 1, retain: true });
    await until('ack v12', () => msgs.find((m) => m.topic === topics.ack(NODE) && m.body?.version === 12));
    assert.equal(fake.values(c1).burstUs, 50000);
    assert.ok(!msgs.some((m) => m.topic === topics.ack(NODE) && m.body?.version === 9));
    assert.match(agentLog, /Rejected invalid decision document/);
    assert.equal(agent!.exitCode, null, 'still running');
  });

  it('keeps enforcing while the broker is down, and reconnects', async () => {
    const was = port;
    op.end(true);
    await broker.close();
    await until('agent notices', () => /Disconnected from MQTT broker/.test(agentLog));
    // The container throttles on an idle node: the loop must raise its quota with no broker.
    let busy = 0;
    await until('quota raised without a broker', () => {
      const s = fake.stat(c1);
      fake.setStat(c1, {
        nrPeriods: s.nrPeriods + 10,
        nrThrottled: s.nrThrottled + 10,
        usageUs: s.usageUs + 200_000,
      });
      busy += 0.2;
      fake.setProcStat(4, busy, busy * 10);
      return fake.values(c1).quotaUs > 100000;
    });
    await startBroker(was);
    msgs.length = 0;
    await connectOperator(port);
    await until('presence online after reconnect', () => last('presence')?.body?.online === true, 40_000);
  });

  it('the Last Will marks the agent offline when it is killed', async () => {
    agent!.kill('SIGKILL');
    await until('will', () => last('presence')?.body?.online === false, 40_000);
  });

  it('restarts without a broker decision and stops cleanly on SIGTERM, leaving cgroups as they are', async () => {
    spawnAgent(port);
    await until(
      'online again',
      () => last('presence')?.body?.online === true && last('presence')!.retain === false,
      40_000,
    );
    assert.equal(fake.values(c1).burstUs, 50000, 'the persisted decision is enforced');
    agent!.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => agent!.once('exit', (c) => r(c)));
    assert.equal(code, 0, agentLog);
    // Not restored (the kubelet's burst was 0); the dynamic quota may have moved in the last round
    // before the signal, so the values are compared from the exit on.
    const atExit = fake.values(c1);
    assert.equal(atExit.burstUs, 50000, 'SIGTERM leaves the burst in place');
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(fake.values(c1), atExit);
    await until('offline on graceful stop', () => last('presence')?.body?.online === false);
  });

  it('token rotation: renewed before expiry without going offline; an unrotated token is cut by the broker (0xA0) and the reconnect reads the new file', async () => {
    // Tokens bound to the agent's pod, as the kubelet writes them: t1 expires in 20 s (start-up on a
    // loaded machine fits), t2 in 35 s; then a fresh 10-minute one.
    const issue = (expirationSeconds: number) =>
      cluster.tokens.issue({
        namespace: CM_NS,
        serviceAccount: 'cpuburst-agent',
        audiences: ['cpuburst-broker'],
        expirationSeconds,
        boundPod: tokens.agentPod,
      });
    const t1 = issue(20);
    const t2 = issue(35);
    fs.writeFileSync(tokens.agentTokenFile, t1.token);
    msgs.length = 0;
    spawnAgent(port);
    await until('online with t1', () => last('presence')?.body?.online === true, 40_000);
    fs.writeFileSync(tokens.agentTokenFile, t2.token); // the kubelet's rewrite
    const lines = () =>
      agentLog.split('\n').flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, any>];
        } catch {
          return [];
        }
      });
    const presence = () =>
      msgs.filter((m) => m.topic === topics.presence(NODE)).map((m) => m.body?.online as boolean);
    // 1. Renewed about 2 s before t1 expires: a clean reconnect, so no Last Will and no DISCONNECT.
    await until(
      'renewed before expiry',
      () => lines().some((l) => /Reconnecting with the rotated MQTT token/.test(l.message)),
      40_000,
    );
    assert.ok(Date.now() < t1.expirationTimestamp.getTime(), 'before t1 expired');
    await until('online again', () => presence().filter((p) => p).length >= 2);
    assert.ok(!presence().includes(false), `never offline: ${JSON.stringify(presence())}`);
    assert.ok(!lines().some((l) => l.message === 'MQTT broker sent DISCONNECT'));
    // 2. t2 is not rotated in time: the broker ends the connection when it expires.
    const disc = await until(
      'DISCONNECT at expiry',
      () => lines().find((l) => l.message === 'MQTT broker sent DISCONNECT'),
      40_000,
    );
    assert.equal(disc.reasonCode, 0xa0, 'maximum connect time');
    await tokens.refresh(); // the kubelet catches up (a fresh 10-minute token)
    // online → Last Will offline (the server ended the session) → online with the new token
    await until(
      'online again after the Last Will',
      () => {
        const p = presence();
        const off = p.indexOf(false);
        return off > 0 && p.lastIndexOf(true) > off;
      },
      60_000,
    );
    agent!.kill('SIGTERM');
    assert.equal(await new Promise<number | null>((r) => agent!.once('exit', (c) => r(c))), 0, agentLog);
  });
});

describe('agent with --mqtt-token-file (spawned process)', { timeout: 120_000 }, () => {
  const fake = FakeCgroupFs.create({ version: 2 });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-mqtt-token-'));
  const tokenFile = path.join(tmp, 'token');
  let broker: Awaited<ReturnType<typeof startTokenBroker>>;
  let agent: ChildProcess | null = null;
  let agentLog = '';
  const logLines = () =>
    agentLog
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, any>);
  after(async () => {
    if (agent && agent.exitCode === null) agent.kill('SIGKILL');
    await broker?.close();
    fake.cleanup();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('logs a missing token file and retries; connects once it appears; a rotated token is used on reconnect', async () => {
    broker = await startTokenBroker(['token-1']);
    agent = spawnCli([
      'agent',
      `--node-name=${NODE}`,
      `--cgroup-root=${fake.root}`,
      `--state-dir=${path.join(tmp, 'state')}`,
      `--proc-root=${fake.procRoot}`,
      `--mqtt-url=${broker.url}`,
      `--mqtt-token-file=${tokenFile}`,
      '--interval=200',
      '--metrics-port=-1',
    ]);
    agent.stdout?.on('data', (d) => {
      agentLog += d;
    });
    agent.stderr?.on('data', (d) => {
      agentLog += d;
    });
    const missing = await until('missing token file logged', () =>
      logLines().find((l) => /Cannot read the MQTT token file/.test(l.message)),
    );
    assert.equal(missing.file, tokenFile);
    assert.equal(missing.error, 'the file does not exist');
    await until('a refused attempt without a token', () =>
      broker.attempts.some((a) => a.password === '' && !a.ok),
    );
    assert.equal(agent.exitCode, null, 'still running');
    fs.writeFileSync(tokenFile, 'token-1\n');
    await until('connected with token-1', () => broker.accepted().includes('token-1'), 60_000);
    assert.equal(broker.attempts.find((a) => a.ok)!.username, `agent:${NODE}`);
    // Rotation on disk, then the broker drops the connection as the old token expires.
    fs.writeFileSync(tokenFile, 'token-2\n');
    broker.valid = new Set(['token-2']);
    broker.kick();
    await until('reconnected with token-2', () => broker.accepted().at(-1) === 'token-2', 60_000);
    assert.deepEqual(broker.accepted(), ['token-1', 'token-2']);
    assert.ok(
      logLines().some((l) => l.message === 'Read the MQTT token file' && l.rotated === true),
      agentLog,
    );
    assert.ok(!agentLog.includes('token-2'), 'the token is never logged');
    agent.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => agent!.once('exit', (c) => r(c)));
    assert.equal(code, 0, agentLog);
  });
});

/** A CA, a server certificate for 127.0.0.1 and a client certificate with subject CN `cn` (openssl CLI). */
function makeAgentCerts(dir: string, cn: string) {
  const f = (n: string) => path.join(dir, n);
  fs.writeFileSync(f('san.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  ssl(
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
  );
  for (const [name, subj, ext] of [
    ['server', '/CN=localhost', ['-extfile', f('san.cnf')]],
    ['client', `/CN=${cn}`, []],
  ] as const) {
    ssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.csr`),
      '-subj',
      subj,
    );
    ssl(
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-out',
      f(`${name}.pem`),
      '-days',
      '2',
      ...ext,
    );
  }
  return {
    ca: f('ca.pem'),
    cert: f('server.pem'),
    key: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
  };
}

describe('agent with an mTLS client certificate (spawned process, real broker, auth chain tls-cert)', {
  timeout: 120_000,
}, () => {
  const fake = FakeCgroupFs.create({ version: 2 });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-mqtt-mtls-'));
  let broker: RunningBroker | undefined;
  let agent: ChildProcess | null = null;
  let agentLog = '';
  after(async () => {
    if (agent && agent.exitCode === null) agent.kill('SIGKILL');
    await broker?.close();
    fake.cleanup();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('connects over mqtts with --mqtt-tls-cert/--mqtt-tls-key/--mqtt-tls-ca and is agent:<node> from the certificate', async () => {
    const certs = makeAgentCerts(tmp, `agent:${NODE}`);
    broker = await startBrokerInProcess({
      host: '127.0.0.1',
      mqttPort: -1,
      tlsPort: 0,
      wsPort: -1,
      wssPort: -1,
      httpPort: -1,
      tlsCert: certs.cert,
      tlsKey: certs.key,
      tlsCa: certs.ca,
      authChain: ['tls-cert'],
    });
    agent = spawnCli([
      'agent',
      `--node-name=${NODE}`,
      `--cgroup-root=${fake.root}`,
      `--state-dir=${path.join(tmp, 'state')}`,
      `--proc-root=${fake.procRoot}`,
      `--mqtt-url=mqtts://127.0.0.1:${broker.ports.tlsPort}`,
      `--mqtt-tls-cert=${certs.clientCert}`,
      `--mqtt-tls-key=${certs.clientKey}`,
      `--mqtt-tls-ca=${certs.ca}`,
      '--interval=200',
      '--metrics-port=-1',
    ]);
    agent.stdout?.on('data', (d) => {
      agentLog += d;
    });
    agent.stderr?.on('data', (d) => {
      agentLog += d;
    });
    const b = broker;
    const info = await until(
      'the agent connected',
      () => [...b.clients.values()].find((c) => c.by === 'tls-cert'),
      60_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${agentLog.slice(-2000)}`);
    });
    assert.equal(info.identity, `agent:${NODE}`);
    await until('connected log line', () => /Connected to MQTT broker/.test(agentLog));
    assert.doesNotMatch(agentLog, /Subscription to decisions refused/);
    agent.kill('SIGTERM');
    assert.equal(await new Promise<number | null>((r) => agent!.once('exit', (c) => r(c))), 0, agentLog);
  });
});
