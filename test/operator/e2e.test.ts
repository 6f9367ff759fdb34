// End to end: devcluster + the real broker + two real operator processes (leader election) + a real
// agent process on a fake cgroupfs (v2). kubectl applies a strategy and annotates pods, and the cgroup
// files change; the CR turns Ready; changing and deleting the strategy changes and restores values.
// Then faults — watch dropped, 410, API 500s, broker restarted, leader killed — and after each a new
// annotation reaches the cgroup within 5 s, with nothing lost.
// Identities: agent and operator log in with ServiceAccount tokens from devcluster (TokenRequest bound
// to their pods, --mqtt-token-file); the broker accepts nothing else (auth chain k8s-token only).
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningBroker } from '../../broker/server.js';
import { type DevCluster, startDevCluster } from '../../devcluster/index.js';
import { spawnCli } from '../support/cli.js';
import { FakeCgroupFs } from '../support/fake-cgroupfs.js';
import { pod } from './fixtures.js';
import {
  CM_NS,
  type ControlTokens,
  exited,
  HAVE_KUBECTL,
  jsonLines,
  kubectl,
  seedCluster,
  startControlBroker,
  waitFor,
  writeControlTokens,
} from './harness.js';

const CONVERGE_MS = 5_000;
const NODE = 'node-a';

describe('e2e: kubectl → operator → broker → agent → cgroup files', {
  skip: !HAVE_KUBECTL && 'kubectl not installed (run `make tools`)',
  timeout: 170_000,
}, () => {
  let cluster: DevCluster;
  let broker: RunningBroker;
  let brokerPort = 0;
  let dir: string;
  let kubeconfig: string;
  let fake: FakeCgroupFs;
  let agent: ChildProcess;
  let agentOut = '';
  const ops = new Map<string, { child: ChildProcess; logs: Array<Record<string, any>> }>();
  const containerDir = new Map<string, string>();
  let seq = 0;
  let creds: ControlTokens;

  const startBrokerOn = async (port: number) => {
    broker = await startControlBroker(creds, { port, flappingMaxCount: 0 });
    brokerPort = broker.ports.mqttPort!;
  };
  const startOperator = (identity: string) => {
    const child = spawnCli([
      'operator',
      `--kubeconfig=${kubeconfig}`,
      `--mqtt-url=mqtt://127.0.0.1:${brokerPort}`,
      `--mqtt-token-file=${creds.operatorTokenFile}`,
      `--config-map-namespace=${CM_NS}`,
      `--identity=${identity}`,
      '--probe-port=0',
      '--metrics-port=0',
      '--lease-duration-seconds=2',
      '--renew-deadline-seconds=1',
      '--retry-period-ms=250',
      '--stale-watch-seconds=3',
    ]);
    ops.set(identity, { child, logs: jsonLines(child) });
    return child;
  };
  const leader = () => {
    const lease = cluster.store.get('coordination.k8s.io/v1', 'Lease', 'cpuburst-operator', CM_NS) as any;
    return lease?.spec?.holderIdentity as string | undefined;
  };
  /** A pod on node-a whose cgroup exists in the fake cgroupfs (the kubelet's part). */
  const addPod = (name: string, labels: Record<string, string> = {}) => {
    const tag = `e2e-${name}-${++seq}`;
    const p = pod(name, { uid: tag, node: NODE, labels, cpuLimit: '1' }) as any;
    p.status.qosClass = 'Burstable';
    const created = cluster.store.create(p) as any; // the API server assigns the real uid
    const { containerDirs } = fake.addPod({
      uid: created.metadata.uid,
      qosClass: 'Burstable',
      containers: [{ id: `containerd://${tag}-0`, quotaUs: 100_000 }],
    });
    containerDir.set(name, containerDirs[0]!);
  };
  const burst = (name: string) => fake.values(containerDir.get(name)!).burstUs;
  const k = (args: string[], stdin?: string) => kubectl(kubeconfig, dir, args, stdin);
  const annotate = async (name: string, cfg?: string) => {
    const args = ['annotate', '--overwrite', 'pod', name, 'cpuburst.io/enabled=true'];
    if (cfg) args.push(`cpuburst.io/config=${cfg}`);
    const r = await k(args);
    assert.equal(r.code, 0, r.stderr);
  };
  /** Annotates a fresh pod and returns how long until its cgroup burst was written. */
  const annotateAndTime = async (name: string): Promise<number> => {
    addPod(name);
    const t0 = Date.now();
    await annotate(name, '{"policy":"cpuBurstOnly","cpuBurstPercent":20}');
    await waitFor(`${name} burst written`, () => burst(name) === 20_000, 20_000, 25);
    return Date.now() - t0;
  };

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'cpuburst-operator-e2e-'));
    kubeconfig = path.join(dir, 'kubeconfig');
    cluster = await startDevCluster({ kubeconfigPath: kubeconfig });
    await seedCluster(cluster, [NODE]);
    creds = await writeControlTokens(cluster, kubeconfig, path.join(dir, 'tokens'), { node: NODE });
    await startBrokerOn(0);
    fake = FakeCgroupFs.create({ version: 2 });
    agent = spawnCli([
      'agent',
      `--node-name=${NODE}`,
      `--cgroup-root=${fake.root}`,
      `--state-dir=${path.join(dir, 'agent-state')}`,
      `--proc-root=${fake.procRoot}`,
      `--mqtt-url=mqtt://127.0.0.1:${brokerPort}`,
      `--mqtt-token-file=${creds.agentTokenFile}`,
      '--interval=200',
      '--metrics-port=-1',
    ]);
    agent.stdout?.on('data', (d) => {
      agentOut += d;
    });
    agent.stderr?.on('data', (d) => {
      agentOut += d;
    });
    startOperator('op-1');
    await waitFor('op-1 leads', () => leader() === 'op-1', 30_000, 100);
    startOperator('op-2');
  });
  after(async () => {
    for (const { child } of ops.values())
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited(child, 10_000);
      }
    if (agent && agent.exitCode === null && agent.signalCode === null) {
      agent.kill('SIGTERM');
      await exited(agent, 10_000);
    }
    creds?.stop();
    await broker?.close();
    await cluster?.close();
    fake?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('kubectl apply strategy → cgroup burst written → CR Ready', async () => {
    addPod('web-1', { app: 'web' });
    addPod('db-1', { app: 'db' });
    const r = await k(
      ['apply', '-f', '-'],
      [
        'apiVersion: cpuburst.io/v1alpha1',
        'kind: CpuBurstStrategy',
        'metadata: {name: web}',
        'spec: {policy: cpuBurstOnly, cpuBurstPercent: 50, podSelector: {matchLabels: {app: web}}}',
      ].join('\n'),
    );
    assert.equal(r.code, 0, r.stderr);
    await waitFor('web-1 burst', () => burst('web-1') === 50_000, 20_000, 50).catch((e) => {
      throw new Error(`${e.message}\nagent output:\n${agentOut.slice(-3000)}`);
    });
    assert.equal(burst('db-1'), 0, 'unselected pod untouched');
    await waitFor(
      'Ready',
      async () => {
        const g = await k([
          'get',
          'cbs',
          'web',
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}/{.status.podsApplied}',
        ]);
        return g.stdout === 'True/1';
      },
      20_000,
      200,
    );
  });

  it('kubectl annotate pod → its own values', async () => {
    await annotate('db-1', '{"policy":"cpuBurstOnly","cpuBurstPercent":30}');
    await waitFor('db-1 burst', () => burst('db-1') === 30_000, 20_000, 25);
  });

  it('changing the strategy changes the value; deleting it restores the original', async () => {
    const p = await k(['patch', 'cbs', 'web', '--type=merge', '-p', '{"spec":{"cpuBurstPercent":80}}']);
    assert.equal(p.code, 0, p.stderr);
    await waitFor('web-1 burst 80 %', () => burst('web-1') === 80_000, 20_000, 25);
    const d = await k(['delete', 'cbs', 'web']);
    assert.equal(d.code, 0, d.stderr);
    await waitFor('web-1 restored', () => burst('web-1') === 0, 20_000, 25);
    assert.equal(burst('db-1'), 30_000, 'the annotated pod keeps its value');
  });

  it('watch dropped: converges within 5 s', async () => {
    assert.ok(cluster.faults.dropWatches() > 0);
    const ms = await annotateAndTime('after-drop');
    assert.ok(ms < CONVERGE_MS, `${ms} ms`);
  });

  it('410 Gone: relists and converges within 5 s', async () => {
    cluster.store.compact();
    cluster.faults.goneAllWatchesNow();
    const ms = await annotateAndTime('after-410');
    assert.ok(ms < CONVERGE_MS, `${ms} ms`);
  });

  it('API 500s: backs off, recovers, converges within 5 s', async () => {
    cluster.faults.failRequests({ share: 1, code: 500, path: /\/api\/v1\/pods/, count: 4 });
    cluster.faults.dropWatches();
    const ms = await annotateAndTime('after-500');
    assert.ok(cluster.faults.injected > 0, 'the fault was exercised');
    assert.ok(ms < CONVERGE_MS, `${ms} ms`);
    cluster.faults.reset();
  });

  it('broker restarted (retained state lost) after the tokens rotated on disk: reconnects with the new tokens, converges within 5 s, nothing lost', async () => {
    const port = brokerPort;
    await creds.refresh(); // what the kubelet does at 80 % of the lifetime
    await broker.close();
    await startBrokerOn(port);
    const ms = await annotateAndTime('after-broker');
    assert.ok(ms < CONVERGE_MS, `${ms} ms`);
    assert.equal(burst('db-1'), 30_000);
    assert.equal(burst('after-drop'), 20_000);
    const rotated = (lines: Array<Record<string, any>>) =>
      lines.some((l) => l.message === 'Read the MQTT token file' && l.rotated === true);
    const agentLines = agentOut.split('\n').flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, any>];
      } catch {
        return [];
      }
    });
    assert.ok(rotated(agentLines), 'the agent re-read its rotated token');
    assert.ok(
      [...ops.values()].some((o) => rotated(o.logs)),
      'an operator re-read its rotated token',
    );
  });

  it('leader killed: the standby takes over and converges within 5 s, nothing lost', async () => {
    const old = leader()!;
    const standby = old === 'op-1' ? 'op-2' : 'op-1';
    ops.get(old)!.child.kill('SIGKILL');
    await exited(ops.get(old)!.child);
    const ms = await annotateAndTime('after-leader-kill');
    assert.ok(ms < CONVERGE_MS, `${ms} ms`);
    assert.equal(leader(), standby);
    for (const name of ['db-1', 'after-drop', 'after-410', 'after-500', 'after-broker'])
      assert.ok(burst(name)! > 0, `${name} kept its value`);
  });
});
