// Ctrl-C in the middle of the demo: every component process, every container process and every
// cgroup of the run is gone, and the demo exits 130. kill -9 of the demo: the next start reaps the
// orphaned components and the stale cgroup trees.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { reapStaleStacks } from '../../demo/stack.js';
import { cleanStaleTrees, destroyTreeSync } from '../../devcluster/kubelet/cgroupfs.js';
import { spawnCli } from '../support/cli.js';
import { stopDemo } from './helpers.js';

const CG = '/sys/fs/cgroup';
const realCgroups = fs.existsSync(`${CG}/cpu/cpu.cfs_quota_us`) && process.getuid?.() === 0;
const skip = realCgroups ? false : 'needs root and a cgroup v1 cpu controller at /sys/fs/cgroup/cpu';
const BASE = `cpuburst-test-demo-${process.pid}-int`;

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const ourTrees = () =>
  ['cpu', 'cpuacct'].flatMap((ctl) =>
    fs.readdirSync(path.join(CG, ctl)).filter((n) => n.startsWith(`${BASE}-`)),
  );

test('Ctrl-C during the demo removes every process and cgroup', { skip, timeout: 150000 }, async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-demo-int-'));
  const demo = spawnCli([
    'demo',
    '--duration',
    '60',
    '--settle-timeout',
    '0',
    '--work-dir',
    work,
    '--out-dir',
    work,
    '--parent-base',
    BASE,
  ]);
  let stderr = '';
  demo.stderr?.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((r) => demo.once('exit', (code) => r(code)));
  after(async () => {
    await stopDemo(demo, work);
    for (const ctl of ['cpu', 'cpuacct'])
      for (const n of ourTrees())
        if (fs.existsSync(path.join(CG, ctl, n))) destroyTreeSync(path.join(CG, ctl, n));
    fs.rmSync(work, { recursive: true, force: true });
  });
  const stackFile = path.join(work, 'stack.json');
  const end = Date.now() + 120000;
  let stack: Record<string, any> | undefined;
  while (!stack) {
    assert.equal(demo.exitCode, null, `demo exited early: ${stderr}`);
    assert.ok(Date.now() < end, `stack.json never appeared: ${stderr.slice(-2000)}`);
    try {
      stack = JSON.parse(fs.readFileSync(stackFile, 'utf8'));
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const pids: number[] = [...Object.values(stack.pids as Record<string, number>), ...stack.containerPids];
  assert.ok(
    pids.length >= 6,
    `devcluster, broker, operator, agent, demo, service: ${JSON.stringify(stack.pids)}`,
  );
  assert.deepEqual(
    pids.filter((p) => !alive(p)),
    [],
    `all alive at start: ${JSON.stringify(stack.pids)}`,
  );
  assert.equal(ourTrees().length, 2);

  demo.kill('SIGINT');
  assert.equal(await exited, 130, stderr.slice(-2000));
  assert.match(stderr, /SIGINT: stopping the stack and removing every cgroup/);
  const deadline = Date.now() + 15000;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(pids.filter(alive), [], 'no component or container process survives');
  assert.deepEqual(ourTrees(), [], stderr.slice(-2000));
});

test('kill -9 of the demo: the next start stops its components and removes its cgroups', {
  skip,
  timeout: 150000,
}, async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-demo-k9-'));
  const base = `${BASE}9`;
  const demo = spawnCli([
    'demo',
    '--duration',
    '60',
    '--settle-timeout',
    '0',
    '--work-dir',
    work,
    '--out-dir',
    work,
    '--parent-base',
    base,
  ]);
  let stderr = '';
  demo.stderr?.on('data', (d) => {
    stderr += d;
  });
  after(async () => {
    await stopDemo(demo, work);
    for (const ctl of ['cpu', 'cpuacct'])
      for (const n of fs.readdirSync(path.join(CG, ctl)))
        if (n.startsWith(`${base}-`)) destroyTreeSync(path.join(CG, ctl, n));
    fs.rmSync(work, { recursive: true, force: true });
  });
  const end = Date.now() + 120000;
  let stack: Record<string, any> | undefined;
  while (!stack) {
    assert.equal(demo.exitCode, null, `demo exited early: ${stderr}`);
    assert.ok(Date.now() < end, `stack.json never appeared: ${stderr.slice(-2000)}`);
    try {
      stack = JSON.parse(fs.readFileSync(path.join(work, 'stack.json'), 'utf8'));
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  demo.kill('SIGKILL');
  await new Promise((r) => demo.once('exit', r));
  const components = Object.entries(stack.pids as Record<string, number>).filter(([n]) => n !== 'demo');
  assert.deepEqual(
    components.filter(([, pid]) => !alive(pid)).map(([n]) => n),
    [],
    'kill -9 leaves the components running',
  );
  // What the next `cpuburst demo` does first: reap the components, then (kubelet) the cgroups.
  const reaped = reapStaleStacks(os.tmpdir());
  assert.deepEqual([...reaped].sort(), components.map(([, pid]) => pid).sort());
  const removed = cleanStaleTrees(CG, base);
  assert.equal(removed.length, 2, 'the cpu and cpuacct trees of the dead run');
  const deadline = Date.now() + 10000;
  while ([...components.map(([, p]) => p), ...stack.containerPids].some(alive) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual([...components.map(([, p]) => p), ...stack.containerPids].filter(alive), []);
});
