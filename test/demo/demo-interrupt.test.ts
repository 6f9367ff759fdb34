// Ctrl-C in the middle of the demo: every component process, every container process and every
// cgroup of the run is gone, and the demo exits 130. kill -9 of the demo: the next start reaps the
// orphaned components and the stale cgroup trees.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { reapStaleStacks } from '../../demo/stack.js';
import { cleanStaleTrees } from '../../devcluster/kubelet/cgroupfs.js';
import {
  alive,
  CG,
  cgroupTrees,
  NO_REAL_CGROUPS,
  REAL_CGROUPS,
  removeCgroupTrees,
  spawnDemo,
  stopDemo,
  waitForStack,
} from './helpers.js';

const skip = REAL_CGROUPS ? false : NO_REAL_CGROUPS;
const BASE = `cpuburst-test-demo-${process.pid}-int`;
const ourTrees = () => cgroupTrees(BASE);

/** A demo that runs long enough to be interrupted, everything of it under `work` and `base`. */
const longDemo = (work: string, base: string) =>
  spawnDemo([
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

test('Ctrl-C during the demo removes every process and cgroup', { skip, timeout: 150000 }, async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-demo-int-'));
  const run = longDemo(work, BASE);
  const demo = run.child;
  const exited = new Promise<number | null>((r) => demo.once('exit', (code) => r(code)));
  after(async () => {
    await stopDemo(demo, work);
    removeCgroupTrees(BASE);
    fs.rmSync(work, { recursive: true, force: true });
  });
  const stack = await waitForStack(run, work);
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
  assert.equal(await exited, 130, run.stderr.slice(-2000));
  assert.match(run.stderr, /SIGINT: stopping the stack and removing every cgroup/);
  const deadline = Date.now() + 15000;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(pids.filter(alive), [], 'no component or container process survives');
  assert.deepEqual(ourTrees(), [], run.stderr.slice(-2000));
});

test('kill -9 of the demo: the next start stops its components and removes its cgroups', {
  skip,
  timeout: 150000,
}, async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-demo-k9-'));
  const base = `${BASE}9`;
  const run = longDemo(work, base);
  const demo = run.child;
  after(async () => {
    await stopDemo(demo, work);
    removeCgroupTrees(base);
    fs.rmSync(work, { recursive: true, force: true });
  });
  const stack = await waitForStack(run, work);
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
