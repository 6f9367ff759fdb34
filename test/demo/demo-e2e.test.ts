// `cpuburst demo --json --keep-running` end to end on REAL cgroups, with every component as its own
// process. Agent and operator log in with ServiceAccount tokens (no control-plane password exists).
// While it runs: an IoT device (paho-mqtt) and mosquitto_sub share the broker and cannot
// touch cpuburst/; once the phases are done: a kubectl-driven scenario against the live stack;
// after Ctrl-C: the JSON proves the pipeline (Ready, acked, written as planned, restored, no cgroup
// left) and that throttled periods dropped. Latency itself is asserted in bench/components/demo-latency.bench.ts.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { decode } from '../../protocol/codec.js';
import { topics } from '../../protocol/topics.js';
import { REPO_ROOT } from '../support/cli.js';
import {
  CG,
  type DemoRun,
  NO_REAL_CGROUPS,
  REAL_CGROUPS,
  removeCgroupTrees,
  spawnDemo,
  stopDemo,
  until,
} from './helpers.js';

const KUBECTL = path.join(REPO_ROOT, '.tools', 'kubectl');
const PY = '/usr/bin/python3';
const skip = !REAL_CGROUPS
  ? NO_REAL_CGROUPS
  : !fs.existsSync(KUBECTL)
    ? 'needs .tools/kubectl (make tools)'
    : false;
const BASE = `cpuburst-test-demo-${process.pid}-e2e`;

function sh(
  bin: string,
  args: string[],
  timeout = 30000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(bin, args, { timeout }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('cpuburst demo end to end', { skip, timeout: 240000 }, () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-demo-e2e-'));
  const outDir = path.join(work, 'out');
  let demo: DemoRun;
  const exited = () => demo.exitCode !== undefined;
  let stack: Record<string, any>;
  const kubectl = (...args: string[]) => sh(KUBECTL, ['--kubeconfig', stack.kubeconfig, ...args]);
  const annotatePod = (...args: string[]) =>
    kubectl('annotate', 'pod', stack.pod, '-n', stack.namespace, ...args);
  const cg = (file: string) =>
    fs.readFileSync(path.join(CG, 'cpu', stack.containerCgroup, file), 'utf8').trim();

  before(() => {
    demo = spawnDemo([
      '--json',
      '--keep-running',
      '--no-neighbour',
      '--duration',
      '8',
      '--warmup',
      '3',
      '--settle-timeout',
      '30',
      '--work-dir',
      work,
      '--out-dir',
      outDir,
      '--parent-base',
      BASE,
    ]);
  });
  after(async () => {
    await stopDemo(demo.child, work);
    removeCgroupTrees(BASE);
    fs.rmSync(work, { recursive: true, force: true });
  });

  test('IoT device and mosquitto_sub use the same broker and cannot read or write cpuburst/', async () => {
    stack = await until(
      () => {
        const f = path.join(work, 'stack.json');
        if (exited()) throw new Error(`demo exited early: ${demo.stderr}`);
        return fs.existsSync(f) && JSON.parse(fs.readFileSync(f, 'utf8'));
      },
      'the demo stack to come up',
      120000,
    );
    const port = String(stack.broker.mqttPort);
    const iot = JSON.parse(fs.readFileSync(path.join(stack.credentials, 'iot-users.json'), 'utf8'));
    // The control plane's identities are ServiceAccount tokens bound to pods on the node.
    assert.equal(stack.identities.agent.identity, `agent:${stack.node}`);
    assert.equal(stack.identities.agent.serviceAccount, `${stack.namespace}/cpuburst-agent`);
    assert.equal(stack.identities.operator.serviceAccount, `${stack.namespace}/cpuburst-operator`);
    assert.deepEqual(
      fs.readdirSync(stack.credentials).sort(),
      ['acl.yaml', 'iot-users.json', 'users.yaml'],
      'no operator password, no agent key',
    );
    // The tokens are the mini-kubelet's projected volumes of the identity pods.
    for (const k of ['agent', 'operator'])
      assert.match(
        stack.identities[k].tokenFile,
        /\/kubelet-pods\/[0-9a-f-]{36}\/volumes\/kubernetes\.io~projected\/cpuburst-broker-token\/token$/,
      );
    const opToken = fs.readFileSync(stack.identities.operator.tokenFile, 'utf8');
    const claims = JSON.parse(Buffer.from(opToken.split('.')[1]!, 'base64url').toString());
    assert.deepEqual(claims.aud, ['cpuburst-broker']);
    assert.equal(claims.sub, `system:serviceaccount:${stack.namespace}:cpuburst-operator`);
    assert.equal(claims['kubernetes.io'].pod.name, stack.identities.operator.pod);
    const agentClaims = JSON.parse(
      Buffer.from(
        fs.readFileSync(stack.identities.agent.tokenFile, 'utf8').split('.')[1]!,
        'base64url',
      ).toString(),
    );
    assert.equal(agentClaims['kubernetes.io'].node.name, stack.node, 'the agent token names its node');
    // A password login as "operator" is refused: that user does not exist.
    const noPw = await sh('mosquitto_sub', [
      '-h',
      '127.0.0.1',
      '-p',
      port,
      '-u',
      'operator',
      '-P',
      'guess',
      '-t',
      'cpuburst/#',
      '-W',
      '3',
    ]);
    assert.notEqual(noPw.code, 0);
    assert.match(noPw.stderr, /not authori[sz]ed|bad user ?name or password|refused/i);

    // mosquitto_sub as the viewer: sees the device's readings, and nothing under cpuburst/.
    const viewerSub = (topic: string) => [
      '-h',
      '127.0.0.1',
      '-p',
      port,
      '-u',
      'viewer',
      '-P',
      iot.viewer,
      '-t',
      topic,
      '-v',
    ];
    const sub = spawn('mosquitto_sub', [...viewerSub('devices/#'), '-C', '1', '-W', '20']);
    let subOut = '';
    sub.stdout.on('data', (d) => {
      subOut += d;
    });
    const subDone = new Promise<number | null>((r) => sub.once('exit', r));
    const ctl = await sh('mosquitto_sub', [...viewerSub('cpuburst/#'), '-W', '3']);
    assert.equal(ctl.stdout, '', 'mosquitto_sub must not receive control-plane messages');
    assert.match(ctl.stderr, /denied/i);
    await new Promise((r) => setTimeout(r, 500));

    const dev = await sh(
      PY,
      [
        path.join(REPO_ROOT, 'test/demo/fixtures/iot_device.py'),
        '127.0.0.1',
        port,
        'device-1',
        iot['device-1'],
        stack.node,
      ],
      60000,
    );
    assert.equal(dev.code, 0, dev.stderr);
    const r = JSON.parse(dev.stdout.trim().split('\n').pop()!);
    assert.equal(r.connected, true);
    assert.equal(r.ownSubGrantedQos, 1);
    assert.equal(r.ownRoundtrip, true, 'the device receives its own reading');
    assert.equal(r.controlSubGrantedQos, 128, 'SUBACK refuses cpuburst/#');
    assert.equal(r.controlMessagesSeen, 0);
    assert.equal(await subDone, 0);
    assert.match(subOut, /^devices\/device-1\/temperature \{"celsius": ?21.5\}/);

    // The forged retained "decision" never reached the topic: whatever is retained is the operator's
    // (read with the operator ServiceAccount's token; the username is informational).
    const op = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
      username: 'anything',
      password: opToken,
      clientId: `e2e-${process.pid}`,
    });
    try {
      const retained: Buffer[] = [];
      op.on('message', (t, p) => {
        if (t === topics.decisions(stack.node)) retained.push(p);
      });
      await op.subscribeAsync(topics.decisions(stack.node), { qos: 1 });
      await new Promise((res) => setTimeout(res, 1500));
      for (const p of retained)
        assert.equal(decode.decisions(p).ok, true, `retained payload is not forged: ${p}`);
    } finally {
      await op.endAsync();
    }
  });

  test('kubectl scenario: apply, edit, delete strategies and annotations; get cbs columns; pod Events', async () => {
    await until(
      () => {
        if (exited()) throw new Error(`demo exited early: ${demo.stderr}`);
        return /The stack is still running/.test(demo.stderr);
      },
      'the demo phases to finish',
      150000,
    );
    const base = String(stack.baseQuotaUs);
    assert.equal(cg('cpu.cfs_quota_us'), base, 'the demo restored the kubelet quota');
    // The printed mosquitto_sub command (operator token) shows the retained decision document.
    const cmd = /decisions:\s+(mosquitto_sub .*)$/m.exec(demo.stderr)?.[1];
    assert.ok(cmd, 'the demo prints a mosquitto_sub command');
    const subbed = await sh('sh', ['-c', `${cmd} -W 4`]); // retained messages, then a timeout (27)
    assert.ok(subbed.code === 27 || subbed.code === 0, subbed.stderr);
    const line = subbed.stdout.split('\n').find((l) => l.startsWith(`${topics.decisions(stack.node)} `));
    assert.ok(line, `the retained decision document is shown: ${subbed.stdout.slice(0, 500)}`);
    assert.equal(decode.decisions(line.slice(line.indexOf(' ') + 1)).ok, true);
    // The metrics URLs the demo prints answer.
    for (const url of [stack.metrics.operator, stack.metrics.agent]) {
      const m = await fetch(url);
      assert.equal(m.status, 200, url);
      assert.match(await m.text(), /^cpuburst_/m, url);
    }
    assert.equal(cg('cpu.cfs_burst_us'), '0');

    const file = path.join(work, 'kubectl-cbs.yaml');
    fs.writeFileSync(
      file,
      [
        'apiVersion: cpuburst.io/v1alpha1',
        'kind: CpuBurstStrategy',
        'metadata: {name: kubectl-burst}',
        'spec:',
        '  policy: cpuBurstOnly',
        '  cpuBurstPercent: 50',
        '  podSelector: {matchLabels: {app: latency-demo}}',
        '',
      ].join('\n'),
    );
    let r = await kubectl('apply', '-f', file);
    assert.equal(r.code, 0, r.stderr);
    r = await annotatePod('cpuburst.io/enabled=true', '--overwrite');
    assert.equal(r.code, 0, r.stderr);
    const row = await until(async () => {
      const g = await kubectl('get', 'cbs', 'kubectl-burst', '--no-headers');
      const cols = g.stdout.trim().split(/\s+/);
      return cols[1] === 'cpuBurstOnly' && cols[3] === '1' && cols[4] === 'True' ? cols : null;
    }, 'kubectl get cbs: Policy cpuBurstOnly, Pods 1, Ready True');
    assert.equal(row[0], 'kubectl-burst');
    const head = (await kubectl('get', 'cbs')).stdout.split('\n')[0]!;
    assert.match(head, /^NAME\s+POLICY\s+NODES\s+PODS\s+READY\s+AGE/);
    // 50 % of a 500m limit = 25 000 µs of kernel burst; cpuBurstOnly leaves the quota alone.
    await until(
      () => cg('cpu.cfs_burst_us') === String(Math.floor(Number(base) / 2)),
      'burst written by the agent',
    );
    assert.equal(cg('cpu.cfs_quota_us'), base);

    // Edit: policy none → POLICY column changes and the agent takes the burst back.
    r = await kubectl('patch', 'cbs', 'kubectl-burst', '--type', 'merge', '-p', '{"spec":{"policy":"none"}}');
    assert.equal(r.code, 0, r.stderr);
    await until(
      async () =>
        (await kubectl('get', 'cbs', 'kubectl-burst', '--no-headers')).stdout.split(/\s+/)[1] === 'none',
      'POLICY none',
    );
    await until(() => cg('cpu.cfs_burst_us') === '0', 'burst restored after the edit');

    // A broken per-pod override → a Warning Event on the pod, visible with kubectl.
    r = await annotatePod('cpuburst.io/config={not json', '--overwrite');
    assert.equal(r.code, 0, r.stderr);
    await until(async () => {
      const ev = await kubectl(
        'get',
        'events',
        '-n',
        stack.namespace,
        '--field-selector',
        `involvedObject.name=${stack.pod}`,
      );
      return /InvalidBurstConfig/.test(ev.stdout);
    }, 'InvalidBurstConfig Event on the pod');
    r = await annotatePod('cpuburst.io/config-', 'cpuburst.io/enabled-');
    assert.equal(r.code, 0, r.stderr);

    // Delete.
    r = await kubectl('delete', 'cbs', 'kubectl-burst');
    assert.equal(r.code, 0, r.stderr);
    await until(
      async () => /No resources found/.test((await kubectl('get', 'cbs')).stderr),
      'no strategies left',
    );
    assert.equal(cg('cpu.cfs_quota_us'), base);
  });

  test('demo --json after Ctrl-C: pipeline worked, throttling dropped, nothing left behind', async () => {
    demo.child.kill('SIGINT');
    await until(exited, 'the demo to exit', 60000);
    assert.equal(demo.exitCode, 0, demo.stderr.slice(-3000));
    const res = JSON.parse(demo.stdout.trim().split('\n').pop()!);
    const p = res.pipeline;
    assert.equal(res.machine.mode, 'real');
    assert.equal(res.phases.length, 2);
    // The broker derived the control-plane identities from the ServiceAccount tokens.
    assert.deepEqual(
      { agent: p.brokerIdentities.agent.identity, operator: p.brokerIdentities.operator.identity },
      { agent: `agent:${stack.node}`, operator: 'operator' },
    );
    assert.equal(p.brokerIdentities.agent.by, 'k8s-token');
    assert.equal(p.brokerIdentities.operator.by, 'k8s-token');
    assert.equal(p.strategy.ready, true);
    assert.equal(p.ack.result, 'Applied');
    assert.ok(p.ack.version >= p.decision.version);
    assert.equal(p.decision.pod.config.policy, 'auto');
    assert.equal(p.applied.asPlanned, true, JSON.stringify(p.applied));
    assert.equal(p.applied.burstUs, p.applied.plannedBurstUs);
    assert.equal(p.restoredBeforeExit, true, p.restoreError);
    assert.deepEqual(p.cgroupsLeftAfterExit, []);
    assert.equal(p.changesVia, 'kubectl');
    assert.ok(p.kubectlCommands.some((c: string) => /apply -f .*strategy\.yaml/.test(c)));
    const [before1, after2] = res.phases;
    assert.ok(before1.latencyMs.count > 50, `phase 1 measured ${before1.latencyMs.count} requests`);
    assert.ok(before1.throttling.nrThrottled > 0, 'phase 1 is throttled (the workload is bursty)');
    assert.ok(
      after2.throttling.throttledRatio < before1.throttling.throttledRatio,
      `throttled periods dropped: ${before1.throttling.throttledRatio} → ${after2.throttling.throttledRatio}`,
    );
    assert.ok(fs.existsSync(path.join(outDir, 'demo-results.json')));
    assert.ok(fs.statSync(path.join(outDir, 'demo-results.png')).size > 10000);
    for (const ctl of ['cpu', 'cpuacct'])
      assert.deepEqual(
        fs.readdirSync(path.join(CG, ctl)).filter((n) => n.startsWith(`${BASE}-`)),
        [],
      );
  });
});
