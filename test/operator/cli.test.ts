// `cpuburst operator` as a real process: flags, then against devcluster + the real broker (operator
// and agent with ServiceAccount tokens from devcluster; one legacy agent-key login), driven with the real kubectl: apply a strategy, annotate a pod, see the decision and
// the CR turn Ready; invalid CRs are rejected with the CEL message; SIGTERM releases the lease.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningBroker } from '../../broker/server.js';
import { type DevCluster, startDevCluster } from '../../devcluster/index.js';
import { deriveAgentPassword } from '../../protocol/index.js';
import { runCli, spawnCli } from '../support/cli.js';
import { startTokenBroker, type TokenBroker } from '../support/token-broker.js';
import { pod } from './fixtures.js';
import {
  CM_NS,
  type ControlTokens,
  exited,
  FakeAgent,
  HAVE_KUBECTL,
  jsonLines,
  kubectl,
  podNames,
  seedCluster,
  startControlBroker,
  waitFor,
  writeControlCredentials,
  writeControlTokens,
} from './harness.js';

describe('cpuburst operator flags', () => {
  it('--help lists the flags and exits 0', async () => {
    const r = await runCli(['operator', '--help']);
    assert.equal(r.code, 0);
    for (const f of [
      '--kubeconfig',
      '--mqtt-url',
      '--mqtt-password-file',
      '--mqtt-token-file',
      '--config-map-name',
      '--leader-elect',
      '--probe-port',
      '--metrics-port',
      '--resync-seconds',
    ])
      assert.ok(r.stdout.includes(f), f);
  });
  it('a bad flag exits 2 with a message', async () => {
    const r = await runCli(['operator', '--no-such-flag']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown flag --no-such-flag/);
    const r2 = await runCli(['operator', '--log-level=loud']);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /--log-level/);
  });
});

describe('cpuburst operator process with kubectl, devcluster and the real broker', () => {
  let cluster: DevCluster;
  let broker: RunningBroker;
  let dir: string;
  let kubeconfig: string;
  let agent: FakeAgent;
  let tokens: ControlTokens;
  let url: string;
  let child: ReturnType<typeof spawnCli> | undefined;
  let logs: Array<Record<string, any>> = [];

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'cpuburst-operator-cli-'));
    kubeconfig = path.join(dir, 'kubeconfig');
    cluster = await startDevCluster({ kubeconfigPath: kubeconfig });
    await seedCluster(cluster, ['node-a']);
    tokens = await writeControlTokens(cluster, kubeconfig, path.join(dir, 'tokens'), { node: 'node-a' });
    // k8s-token for the control plane; the legacy users file + agent key stay available.
    const legacy = writeControlCredentials(dir, 'agent-key-123');
    broker = await startControlBroker(tokens, { legacyToo: legacy });
    url = `mqtt://127.0.0.1:${broker.ports.mqttPort}`;
    agent = new FakeAgent(url, 'node-a', tokens.agentToken());
    await agent.start();
    child = spawnCli([
      'operator',
      `--kubeconfig=${kubeconfig}`,
      `--mqtt-url=${url}`,
      `--mqtt-token-file=${tokens.operatorTokenFile}`,
      `--config-map-namespace=${CM_NS}`,
      '--identity=op-cli',
      '--probe-port=0',
      '--metrics-port=0',
      '--lease-duration-seconds=3',
      '--renew-deadline-seconds=2',
      '--retry-period-ms=300',
    ]);
    logs = jsonLines(child);
  });
  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited(child);
    }
    await agent?.stop();
    tokens?.stop();
    await broker?.close();
    await cluster?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves probes and metrics on the ports it logs, and becomes leader', async () => {
    const started = await waitFor(
      'Started operator',
      () => logs.find((l) => l.message === 'Started operator'),
      60_000,
    );
    await waitFor('Became leader', () => logs.find((l) => l.message === 'Became leader'), 30_000);
    await waitFor(
      '/readyz 200',
      async () => (await fetch(`http://127.0.0.1:${started.probePort}/readyz`)).status === 200,
      10_000,
    );
    assert.equal((await fetch(`http://127.0.0.1:${started.probePort}/healthz`)).status, 200);
    const m = await (await fetch(`http://127.0.0.1:${started.metricsPort}/metrics`)).text();
    assert.match(m, /cpuburst_leader_is_leader 1/);
    assert.match(m, /process_cpu_seconds_total/);
  });

  it('kubectl apply + annotate → decision on the node topic → CR Ready', {
    skip: !HAVE_KUBECTL && 'kubectl not installed (run `make tools`)',
  }, async () => {
    cluster.store.create(pod('web-0', { labels: { app: 'web' } }) as any);
    cluster.store.create(pod('solo') as any);
    const home = dir;
    const apply = await kubectl(
      kubeconfig,
      home,
      ['apply', '-f', '-'],
      [
        'apiVersion: cpuburst.io/v1alpha1',
        'kind: CpuBurstStrategy',
        'metadata: {name: web}',
        'spec: {policy: auto, cfsQuotaBurstPercent: 250, podSelector: {matchLabels: {app: web}}}',
      ].join('\n'),
    );
    assert.equal(apply.code, 0, apply.stderr);
    const ann = await kubectl(kubeconfig, home, [
      'annotate',
      'pod',
      'solo',
      'cpuburst.io/enabled=true',
      'cpuburst.io/config={"policy":"cpuBurstOnly","cpuBurstPercent":40}',
    ]);
    assert.equal(ann.code, 0, ann.stderr);
    const doc = await waitFor('both pods published', () => {
      const d = agent.latest;
      return podNames(d).includes('default/web-0') && podNames(d).includes('default/solo') && d;
    });
    assert.equal(doc.pods.find((p) => p.name === 'solo')!.config.cpuBurstPercent, 40);
    assert.equal(doc.pods.find((p) => p.name === 'web-0')!.config.cfsQuotaBurstPercent, 250);
    await waitFor(
      'Ready',
      async () => {
        const r = await kubectl(kubeconfig, home, [
          'get',
          'cbs',
          'web',
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ]);
        return r.stdout === 'True';
      },
      10_000,
      200,
    );
    const table = await kubectl(kubeconfig, home, ['get', 'cbs']);
    assert.match(table.stdout, /NAME\s+POLICY\s+NODES\s+PODS\s+READY\s+AGE/);
    assert.match(table.stdout, /web\s+auto\s+1\s+1\s+True/);
  });

  it('legacy: an agent logging in with the shared agent key (HMAC password) still gets its decisions', async () => {
    const legacyAgent = new FakeAgent(
      url,
      'node-a',
      deriveAgentPassword('agent-key-123', 'node-a'),
      `legacy-agent-${process.pid}`,
    );
    await legacyAgent.start();
    try {
      // The operator's retained document for node-a (whatever it holds by now).
      const doc = await waitFor('retained decision for node-a', () => legacyAgent.latest);
      assert.equal(doc.node, 'node-a');
    } finally {
      await legacyAgent.stop();
    }
  });

  it('kubectl apply of an invalid strategy is rejected with the CEL message', {
    skip: !HAVE_KUBECTL && 'kubectl not installed (run `make tools`)',
  }, async () => {
    const r = await kubectl(
      kubeconfig,
      dir,
      ['apply', '-f', '-'],
      [
        'apiVersion: cpuburst.io/v1alpha1',
        'kind: CpuBurstStrategy',
        'metadata: {name: bad}',
        'spec: {policy: auto, cfsQuotaBurstPercent: 100}',
      ].join('\n'),
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /cfsQuotaBurstPercent must be above 100/);
    const r2 = await kubectl(
      kubeconfig,
      dir,
      ['apply', '-f', '-'],
      'apiVersion: cpuburst.io/v1alpha1\nkind: CpuBurstStrategy\nmetadata: {name: bad2}\nspec: {policy: turbo}\n',
    );
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /policy/);
  });

  it('legacy password flag: a wrong MQTT password exits 1 with a clear log line', async () => {
    writeFileSync(path.join(dir, 'wrong.pw'), 'nope');
    const r = await runCli([
      'operator',
      `--kubeconfig=${kubeconfig}`,
      `--mqtt-url=mqtt://127.0.0.1:${broker.ports.mqttPort}`,
      `--mqtt-password-file=${path.join(dir, 'wrong.pw')}`,
      '--identity=op-wrong',
      '--no-leader-elect',
      '--probe-port=0',
      '--metrics-port=0',
    ]);
    assert.equal(r.code, 1, r.stderr);
    const line = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .find((l) => l.message === 'Cannot connect to the MQTT broker');
    assert.ok(line, r.stdout);
    assert.match(line.error, /bad user ?name or password|not authorized/i);
  });

  it('token rotation: the operator reconnects with the rotated token before the old one expires (no broker DISCONNECT)', async () => {
    const file = path.join(dir, 'op-expiry.token');
    const issue = (expirationSeconds: number) =>
      cluster.tokens.issue({
        namespace: CM_NS,
        serviceAccount: 'cpuburst-operator',
        audiences: ['cpuburst-broker'],
        expirationSeconds,
        boundPod: tokens.operatorPod,
      }).token;
    writeFileSync(file, issue(20)); // long enough for start-up on a loaded machine
    // A second replica: a standby (op-cli holds the Lease), connected to the broker all the same.
    const standby = spawnCli([
      'operator',
      `--kubeconfig=${kubeconfig}`,
      `--mqtt-url=${url}`,
      `--mqtt-token-file=${file}`,
      `--config-map-namespace=${CM_NS}`,
      '--identity=op-expiry',
      '--probe-port=0',
      '--metrics-port=0',
    ]);
    const sl = jsonLines(standby);
    try {
      await waitFor('connected', () => sl.find((l) => l.message === 'Connected to the MQTT broker'), 60_000);
      writeFileSync(file, issue(600)); // the kubelet's refresh
      await waitFor(
        'renewed before expiry',
        () => sl.find((l) => /Reconnecting with the rotated MQTT token/.test(l.message)),
        40_000,
      );
      await waitFor(
        'reconnected with the rotated token',
        () =>
          sl.filter((l) => l.message === 'Connected to the MQTT broker').length >= 2 &&
          sl.some((l) => l.message === 'Read the MQTT token file' && l.rotated === true),
        30_000,
      );
      assert.ok(!sl.some((l) => l.message === 'MQTT broker sent DISCONNECT'), 'not cut by the broker');
    } finally {
      standby.kill('SIGTERM');
      assert.equal(await exited(standby), 0);
    }
  });

  it('SIGTERM shuts down cleanly and releases the lease', async () => {
    child!.kill('SIGTERM');
    assert.equal(await exited(child!), 0);
    const lease = cluster.store.get('coordination.k8s.io/v1', 'Lease', 'cpuburst-operator', CM_NS) as any;
    assert.equal(lease.spec.holderIdentity ?? '', '');
  });
});

describe('cpuburst operator with --mqtt-token-file', { timeout: 120_000 }, () => {
  let cluster: DevCluster;
  let broker: TokenBroker;
  let dir: string;
  let kubeconfig: string;
  const children: Array<ReturnType<typeof spawnCli>> = [];
  const spawnOperator = (tokenFile: string, identity: string) => {
    const child = spawnCli([
      'operator',
      `--kubeconfig=${kubeconfig}`,
      `--mqtt-url=${broker.url}`,
      `--mqtt-token-file=${tokenFile}`,
      `--config-map-namespace=${CM_NS}`,
      `--identity=${identity}`,
      '--no-leader-elect',
      '--probe-port=0',
      '--metrics-port=0',
    ]);
    children.push(child);
    return { child, logs: jsonLines(child) };
  };

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'cpuburst-operator-token-'));
    kubeconfig = path.join(dir, 'kubeconfig');
    cluster = await startDevCluster({ kubeconfigPath: kubeconfig });
    await seedCluster(cluster, ['node-a']);
    broker = await startTokenBroker();
  });
  after(async () => {
    for (const c of children)
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGKILL');
        await exited(c);
      }
    await broker?.close();
    await cluster?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a token flag plus a password flag exits 2', async () => {
    const r = await runCli(['operator', '--mqtt-token-file=/t', '--mqtt-password=x']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--mqtt-token-file cannot be combined/);
  });

  it('a missing token file is logged and retried (not an exit); SIGTERM still stops it with 0', async () => {
    const { child, logs } = spawnOperator(path.join(dir, 'never'), 'op-missing');
    await waitFor(
      'missing file logged',
      () => logs.find((l) => /Cannot read the MQTT token file/.test(l.message)),
      60_000,
    );
    await waitFor('refusal logged', () => logs.find((l) => /refused the token; retrying/.test(l.message)));
    assert.equal(child.exitCode, null, 'keeps retrying');
    child.kill('SIGTERM');
    assert.equal(await exited(child), 0);
  });

  it('connects once the file appears; a token rotated on disk is used on the next reconnect', async () => {
    const file = path.join(dir, 'token');
    const { child, logs } = spawnOperator(file, 'op-token');
    await waitFor('missing file logged', () => logs.find((l) => /Cannot read/.test(l.message)), 60_000);
    writeFileSync(file, 'op-token-1');
    broker.valid = new Set(['op-token-1']);
    await waitFor('connected', () => broker.accepted().includes('op-token-1'), 40_000);
    const started = await waitFor('Started operator', () =>
      logs.find((l) => l.message === 'Started operator'),
    );
    await waitFor(
      '/readyz 200',
      async () => (await fetch(`http://127.0.0.1:${started.probePort}/readyz`)).status === 200,
      20_000,
    );
    writeFileSync(file, 'op-token-2');
    broker.valid = new Set(['op-token-2']);
    broker.kick();
    await waitFor(
      'reconnected with op-token-2',
      () => broker.accepted().at(-1) === 'op-token-2',
      40_000,
    ).catch((err: Error) => {
      const tail = logs.slice(-15).map((l) => JSON.stringify(l));
      throw new Error(`${err.message}\nattempts: ${JSON.stringify(broker.attempts)}\n${tail.join('\n')}`);
    });
    assert.ok(!broker.attempts.some((a) => a.password === 'op-token-1' && !a.ok), 'old token not resent');
    assert.equal(broker.attempts.find((a) => a.ok)!.username, 'operator');
    child.kill('SIGTERM');
    assert.equal(await exited(child), 0);
  });
});
