// A real busy process in a container cgroup with a small quota (100m) on the REAL kernel: the loop
// (200 ms interval) raises the quota while it throttles, gives it back after the load stops, and
// restore leaves the original values. cpu.stat and cpuacct.usage are the kernel's; only
// /proc/stat is synthetic (an idle node), so concurrent tests on this 2-core box cannot flip the
// node into overload and make the test flaky.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { silentLogger } from '../../common/log.js';
import { Agent } from '../../daemon/agent.js';
import { nodeFs } from '../../daemon/cgroup/fs.js';
import { detectLayout } from '../../daemon/cgroup/layout.js';
import { probeCapabilities } from '../../daemon/cgroup/probe.js';
import { readCpu, readStat } from '../../daemon/cgroup/read.js';
import { createAgentMetrics } from '../../daemon/metrics.js';
import { StateStore } from '../../daemon/state/store.js';
import { container, document, podDecision } from './harness.js';
import { CPU, CPUACCT, realCgroupSkipReason, removeTree, testParentName, V1_ROOT } from './real-cgroup.js';

const skip = realCgroupSkipReason();

async function until(what: string, fn: () => boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('real kernel: a throttled workload', { skip: skip ?? false, timeout: 120_000 }, () => {
  const name = testParentName();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-work-'));
  let busy: ChildProcess | null = null;
  let timer: NodeJS.Timeout | null = null;
  after(() => {
    if (timer) clearInterval(timer);
    if (busy && busy.exitCode === null) busy.kill('SIGKILL');
    removeTree(path.join(CPU, name), CPU);
    removeTree(path.join(CPUACCT, name), CPUACCT);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('raises the quota while throttled, returns to the limit after, restore leaves the originals', async (t) => {
    const rel = `${name}/kubepods/burstable/podwork-1/ctr1`;
    for (const root of [CPU, CPUACCT]) fs.mkdirSync(path.join(root, rel), { recursive: true });
    const podDir = path.join(CPU, path.dirname(rel));
    const ctrDir = path.join(CPU, rel);
    // The kubelet's values: limit 100m → quota 10000 of 100000 on the container and the pod (small,
    // so the loop is throttled even when other tests load this 2-core machine).
    nodeFs.write(path.join(podDir, 'cpu.cfs_quota_us'), '10000');
    nodeFs.write(path.join(ctrDir, 'cpu.cfs_quota_us'), '10000');
    const original = { pod: readCpu(nodeFs, 1, podDir), ctr: readCpu(nodeFs, 1, ctrDir) };

    const procRoot = path.join(tmp, 'proc');
    fs.mkdirSync(procRoot);
    let jiffies = 0;
    const idleNode = () => {
      jiffies += 100;
      fs.writeFileSync(
        path.join(procRoot, 'stat'),
        `cpu  ${jiffies / 10} 0 0 ${jiffies * 2} 0 0 0 0 0 0\ncpu0 0\ncpu1 0\n`,
      );
    };
    idleNode();
    const log = silentLogger();
    const layout = detectLayout(nodeFs, { root: V1_ROOT, kubepodsDir: `${name}/kubepods` });
    assert.equal(layout.cpuacctRoot, CPUACCT, 'usage comes from the separate cpuacct hierarchy');
    const agent = new Agent({
      node: 'node-a',
      fs: nodeFs,
      layout,
      caps: probeCapabilities(nodeFs, layout, log),
      store: new StateStore(path.join(tmp, 'state'), log),
      log,
      metrics: createAgentMetrics(),
      procRoot,
      intervalMs: 200,
    });
    const pod = podDecision('work-1', [container('app', 'containerd://ctr1', 100)], {
      policy: 'auto',
      cpuBurstPercent: 50,
      cfsQuotaBurstPercent: 300,
    });
    agent.apply(document(1, [pod], { nodeConfig: { sharePoolThresholdPercent: 100 } }));
    assert.deepEqual(readCpu(nodeFs, 1, ctrDir), { periodUs: 100000, quotaUs: 10000, burstUs: 5000 });
    const quotas: number[] = [];
    timer = setInterval(() => {
      idleNode();
      agent.round();
      quotas.push(readCpu(nodeFs, 1, ctrDir).quotaUs);
    }, 200);

    busy = spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' });
    for (const root of [CPU, CPUACCT])
      fs.writeFileSync(path.join(root, rel, 'cgroup.procs'), String(busy.pid));
    await until('quota raised to the 300 % ceiling', () => readCpu(nodeFs, 1, ctrDir).quotaUs === 30000);
    const stat = readStat(nodeFs, layout, ctrDir);
    assert.ok(stat.nrThrottled > 0, 'the kernel throttled it');
    assert.ok(readCpu(nodeFs, 1, podDir).quotaUs >= 30000, 'pod quota follows its container');
    t.diagnostic(`while throttled: ${quotas.join(' → ')}`);

    busy.kill('SIGKILL');
    await new Promise((r) => busy!.once('exit', r));
    const mark = quotas.length;
    await until('quota back to the limit', () => readCpu(nodeFs, 1, ctrDir).quotaUs === 10000);
    await until('pod back to the limit', () => readCpu(nodeFs, 1, podDir).quotaUs === 10000);
    t.diagnostic(`after the load: ${quotas.slice(mark).join(' → ')}`);

    clearInterval(timer);
    timer = null;
    agent.apply(document(2, [], { nodeConfig: { sharePoolThresholdPercent: 100 } }));
    assert.deepEqual(readCpu(nodeFs, 1, ctrDir), original.ctr);
    assert.deepEqual(readCpu(nodeFs, 1, podDir), original.pod);
  });
});

if (skip) describe('real kernel workload', () => it(`skipped: ${skip}`, { skip }, () => {}));
