// `cpuburst agent` as a process: flags, --decisions-file (valid, malformed, policy none), probes
// and metrics, SIGTERM leaves cgroups alone, --restore-all puts the originals back.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { encode } from '../../protocol/index.js';
import { runCli, spawnCli } from '../support/cli.js';
import { FakeCgroupFs } from '../support/fake-cgroupfs.js';
import { container, document, podDecision } from './harness.js';

async function until<T>(
  what: string,
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('cpuburst agent CLI', { timeout: 120_000 }, () => {
  it('documents its flags and refuses a missing node name', async () => {
    const help = await runCli(['agent', '--help']);
    assert.equal(help.code, 0);
    for (const f of [
      '--node-name',
      '--cgroup-root',
      '--kubepods-dir',
      '--cgroup-driver',
      '--state-dir',
      '--proc-root',
      '--decisions-file',
      '--mqtt-url',
      '--mqtt-agent-key-file',
      '--mqtt-ca-file',
      '--mqtt-token-file',
      '--mqtt-tls-cert',
      '--mqtt-tls-key',
      '--mqtt-tls-ca',
      '--interval',
      '--metrics-port',
      '--restore-all',
      '--log-level',
    ])
      assert.ok(help.stdout.includes(f), f);
    const bad = await runCli(['agent'], { env: { ...process.env, NODE_NAME: '' } });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--node-name/);
    const noTree = await runCli([
      'agent',
      '--node-name=n1',
      '--cgroup-root=/nonexistent-cgroup',
      '--metrics-port=-1',
    ]);
    assert.equal(noTree.code, 1);
    assert.match(noTree.stdout, /Cannot find the kubelet cgroup tree/);
  });

  it('refuses contradictory MQTT credential flags with exit 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--mqtt-token-file=/t', '--mqtt-agent-key-file=/k'], /--mqtt-token-file cannot be combined/],
      [['--mqtt-token-file=/t', '--mqtt-password=x'], /--mqtt-token-file cannot be combined/],
      [['--mqtt-tls-cert=/c'], /--mqtt-tls-cert and --mqtt-tls-key must be given together/],
      [
        ['--mqtt-url=mqtt://127.0.0.1:1', '--mqtt-tls-cert=/c', '--mqtt-tls-key=/k'],
        /needs an mqtts:\/\/ or wss:\/\//,
      ],
      [['--mqtt-tls-ca=/a', '--mqtt-ca-file=/b'], /give the broker CA once/],
    ];
    for (const [flags, re] of cases) {
      const r = await runCli(['agent', '--node-name=n1', '--metrics-port=-1', ...flags]);
      assert.equal(r.code, 2, `${flags.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
  });

  describe('with a decisions file', () => {
    const fake = FakeCgroupFs.create({ version: 1, kubepodsDir: 'cpuburst-demo-1/kubepods' });
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-cli-'));
    const file = path.join(tmp, 'decisions.json');
    const stateDir = path.join(tmp, 'state');
    let agent: ChildProcess | null = null;
    let out = '';
    after(() => {
      if (agent && agent.exitCode === null) agent.kill('SIGKILL');
      fake.cleanup();
      fs.rmSync(tmp, { recursive: true, force: true });
    });
    const { podDir, containerDirs } = fake.addPod({
      uid: 'f-1',
      qosClass: 'Guaranteed',
      containers: [{ id: 'containerd://f1', quotaUs: 150000 }],
    });
    const c1 = containerDirs[0]!;
    const pod = podDecision('f-1', [container('app', 'containerd://f1', 1500)], {}, 'Guaranteed');
    const args = [
      'agent',
      '--node-name=node-a',
      `--cgroup-root=${fake.root}`,
      '--kubepods-dir=cpuburst-demo-1/kubepods',
      `--state-dir=${stateDir}`,
      `--proc-root=${fake.procRoot}`,
      '--interval=100',
    ];
    const lines = () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, any>);

    it('applies the file, survives a malformed one, serves probes and metrics', async () => {
      fs.writeFileSync(file, encode(document(1, [pod])));
      agent = spawnCli([...args, `--decisions-file=${file}`, '--metrics-port=0']);
      agent.stdout?.on('data', (d) => {
        out += d;
      });
      agent.stderr?.on('data', (d) => {
        out += d;
      });
      await until('burst written', () => fake.values(c1).burstUs === 150000);
      assert.equal(fake.values(podDir).burstUs, 150000);
      const port = (await until('probe port', () =>
        lines().find((l) => l.message === 'Serving metrics and probes'),
      ))!.port as number;
      const get = async (p: string) => {
        const r = await fetch(`http://127.0.0.1:${port}${p}`);
        return { status: r.status, body: await r.text() };
      };
      assert.equal((await get('/healthz')).status, 200);
      await until('readyz', async () => (await get('/readyz')).status === 200);
      const metrics = (await get('/metrics')).body;
      assert.match(
        metrics,
        /cpuburst_agent_pod_burst_seconds\{namespace="default",pod="pod-f-1",uid="f-1"\} 0.15/,
      );
      assert.match(metrics, /cpuburst_agent_applied_version 1/);
      assert.match(metrics, /cpuburst_agent_cgroup_writes_total\{result="ok"\} \d/);
      const state = JSON.parse((await get('/debug/state')).body);
      assert.equal(state.pods[0].phase, 'Applied');

      fs.writeFileSync(file, '{"apiVersion": "cpuburst.io/v1", "kind": "NodeDecisions", broken');
      await until('rejection logged', () =>
        lines().find(
          (l) =>
            l.message === 'Decision file rejected, keeping the last good document' && l.reason === 'Invalid',
        ),
      );
      fs.writeFileSync(file, encode({ ...document(2, [pod]), node: 'other-node' }));
      await until('wrong node logged', () => lines().find((l) => l.reason === 'WrongNode'));
      assert.equal(fake.values(c1).burstUs, 150000, 'last good document still enforced');
      assert.equal(agent.exitCode, null);
      assert.match(
        (await get('/metrics')).body,
        /cpuburst_agent_decisions_rejected_total\{source="file",reason="Invalid"\} 1/,
      );
    });

    it('SIGTERM exits 0 and leaves the cgroups as they are', async () => {
      agent!.kill('SIGTERM');
      const code = await new Promise<number | null>((r) => agent!.once('exit', (c) => r(c)));
      assert.equal(code, 0, out);
      assert.equal(fake.values(c1).burstUs, 150000);
    });

    it('--restore-all restores everything recorded (state survived the restart) and exits 0', async () => {
      const r = await runCli([...args, '--restore-all', '--metrics-port=-1']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /Restored all original cgroup values/);
      assert.deepEqual(fake.values(c1), { periodUs: 100000, quotaUs: 150000, burstUs: 0 });
      assert.deepEqual(fake.values(podDir), { periodUs: 100000, quotaUs: 150000, burstUs: 0 });
    });
  });
});
