// The DaemonSet's preStop as processes: `cpuburst agent --restore-all` while `cpuburst agent` still
// runs on the same state dir with a retained decision. The restore quiesces the running agent,
// the values stay restored for many intervals, the agent reports it (log, /readyz, /debug/state,
// metric) and keeps running until SIGTERM; a freshly started agent re-applies the decision.
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

const INTERVAL_MS = 200;

async function until<T>(
  what: () => string,
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Proc {
  child: ChildProcess;
  out: string;
  lines(): Array<Record<string, any>>;
  exited: Promise<number | null>;
}

function start(args: string[]): Proc {
  const child = spawnCli(args);
  const p: Proc = {
    child,
    out: '',
    lines: () =>
      p.out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, any>),
    exited: new Promise((r) => child.once('exit', (code) => r(code))),
  };
  child.stdout?.on('data', (d) => {
    p.out += d;
  });
  child.stderr?.on('data', (d) => {
    p.out += d;
  });
  return p;
}

describe('--restore-all while the agent still runs (preStop before SIGTERM)', { timeout: 240_000 }, () => {
  const fake = FakeCgroupFs.create({ version: 1 });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-restore-running-'));
  const file = path.join(tmp, 'decisions.json');
  const stateDir = path.join(tmp, 'state');
  const procs: Proc[] = [];
  after(() => {
    for (const p of procs)
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    fake.cleanup();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  const { podDir, containerDirs } = fake.addPod({
    uid: 'r-1',
    qosClass: 'Burstable',
    containers: [{ id: 'containerd://r1', quotaUs: 200000 }],
  });
  const c1 = containerDirs[0]!;
  const original = { pod: fake.values(podDir), c1: fake.values(c1) };
  const args = [
    'agent',
    '--node-name=node-a',
    `--cgroup-root=${fake.root}`,
    `--state-dir=${stateDir}`,
    `--proc-root=${fake.procRoot}`,
    `--interval=${INTERVAL_MS}`,
  ];
  fs.writeFileSync(
    file,
    encode(document(1, [podDecision('r-1', [container('app', 'containerd://r1', 2000)])])),
  );

  it('restores, the running agent stays quiesced until SIGTERM, a fresh agent re-applies', async () => {
    const agent = start([...args, `--decisions-file=${file}`, '--metrics-port=0']);
    procs.push(agent);
    await until(
      () => `burst written (agent: ${agent.out.slice(-2000)})`,
      () => fake.values(c1).burstUs === 200000,
    );
    const port = (await until(
      () => 'probe port',
      () => agent.lines().find((l) => l.message === 'Serving metrics and probes'),
    ))!.port as number;
    const get = async (p: string) => {
      const r = await fetch(`http://127.0.0.1:${port}${p}`);
      return { status: r.status, body: await r.text() };
    };
    await until(
      () => 'ready',
      async () => (await get('/readyz')).status === 200,
    );

    const writesOk = async () =>
      Number(
        /cpuburst_agent_cgroup_writes_total\{result="ok"\} (\d+)/.exec((await get('/metrics')).body)?.[1],
      );
    const writesBefore = await writesOk();
    assert.ok(writesBefore > 0);

    // The preStop hook: same state dir and cgroup root, no decision source.
    const hook = await runCli([...args, '--restore-all', '--metrics-port=-1']);
    assert.equal(hook.code, 0, hook.stdout + hook.stderr);
    assert.match(hook.stdout, /Restored all original cgroup values/);
    assert.deepEqual(fake.values(c1), original.c1);
    assert.deepEqual(fake.values(podDir), original.pod);

    // Many intervals later the agent is still running and has written nothing back.
    const until10 = Date.now() + 10 * INTERVAL_MS;
    while (Date.now() < until10) {
      assert.deepEqual(fake.values(c1), original.c1, agent.out.slice(-2000));
      assert.deepEqual(fake.values(podDir), original.pod);
      await new Promise((r) => setTimeout(r, INTERVAL_MS / 4));
    }
    assert.equal(agent.child.exitCode, null, 'the agent keeps running until SIGTERM');
    assert.match(hook.stdout, /Running agent acknowledged the quiesce request/);
    assert.ok(
      agent.lines().some((l) => String(l.message).startsWith('Quiesced by cpuburst agent --restore-all')),
    );
    assert.equal(await writesOk(), writesBefore, 'the running agent wrote nothing after the hook');
    const ready = await get('/readyz');
    assert.equal(ready.status, 503);
    assert.match(ready.body, /quiesced/);
    const live = await get('/healthz');
    assert.equal(live.status, 200, `still live, the kubelet must not restart it: ${live.body}`);
    assert.equal(JSON.parse((await get('/debug/state')).body).quiesced, true);
    assert.match((await get('/metrics')).body, /cpuburst_agent_quiesced 1/);

    // A new decision document is not applied either.
    fs.writeFileSync(
      file,
      encode(
        document(2, [
          podDecision('r-1', [container('app', 'containerd://r1', 2000)], { cpuBurstPercent: 50 }),
        ]),
      ),
    );
    await new Promise((r) => setTimeout(r, 5 * INTERVAL_MS));
    assert.deepEqual(fake.values(c1), original.c1);

    agent.child.kill('SIGTERM');
    assert.equal(await agent.exited, 0, agent.out.slice(-2000));
    assert.deepEqual(fake.values(c1), original.c1);

    // The next pod of a rolling update: the stale marker is cleared and the retained decision re-applied.
    const next = start([...args, '--metrics-port=-1']);
    procs.push(next);
    await until(
      () => `burst re-applied (next agent: ${next.out.slice(-2000)})`,
      () => fake.values(c1).burstUs === 200000,
    );
    assert.ok(next.lines().some((l) => l.message === 'Cleared a stale quiesce marker; resuming enforcement'));
    next.child.kill('SIGTERM');
    assert.equal(await next.exited, 0, next.out.slice(-2000));

    // With no agent running, restore-all does not wait for one.
    const started = Date.now();
    const alone = await runCli([...args, '--restore-all', '--metrics-port=-1']);
    assert.equal(alone.code, 0, alone.stdout + alone.stderr);
    assert.match(alone.stdout, /No running agent on this state dir/);
    assert.deepEqual(fake.values(c1), original.c1);
    assert.ok(Date.now() - started < 30_000);
  });
});
