// Agent benchmarks (prints one JSON object):
//  - one control-loop round for 100 and 1,000 pods (2 containers each) on the kernel-enforcing
//    fake cgroupfs: steady state (nothing to write) and a round where every container throttles;
//  - the real-kernel write rate of planner + writer and of the whole agent (apply), writes/s.
import fs from 'node:fs';
import path from 'node:path';
import { silentLogger } from '../../common/log.js';
import { Agent } from '../../daemon/agent.js';
import { nodeFs } from '../../daemon/cgroup/fs.js';
import { detectLayout } from '../../daemon/cgroup/layout.js';
import { planWrites } from '../../daemon/cgroup/plan.js';
import { probeCapabilities } from '../../daemon/cgroup/probe.js';
import { readCpu } from '../../daemon/cgroup/read.js';
import { executePlan } from '../../daemon/cgroup/write.js';
import { createAgentMetrics } from '../../daemon/metrics.js';
import { StateStore } from '../../daemon/state/store.js';
import { container, document, makeHarness, podDecision } from '../../test/daemon/harness.js';
import {
  CPU,
  realCgroupSkipReason,
  removeTree,
  testParentName,
  V1_ROOT,
} from '../../test/daemon/real-cgroup.js';

const shm = fs.existsSync('/dev/shm') ? '/dev/shm' : undefined;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function fakeRounds(pods: number) {
  const h = makeHarness({ version: 1, baseDir: shm });
  try {
    const decisions = [];
    const dirs: string[] = [];
    for (let i = 0; i < pods; i++) {
      const uid = `bench-${i}`;
      const { containerDirs } = h.fake.addPod({
        uid,
        qosClass: 'Burstable',
        containers: [
          { id: `containerd://a${i}`, quotaUs: 100000 },
          { id: `containerd://b${i}`, quotaUs: 50000 },
        ],
      });
      dirs.push(...containerDirs);
      decisions.push(
        podDecision(uid, [
          container('a', `containerd://a${i}`, 1000),
          container('b', `containerd://b${i}`, 500),
        ]),
      );
    }
    let t = performance.now();
    h.agent.apply(document(1, decisions));
    const applyMs = performance.now() - t;
    let busy = 0;
    const tick = (throttle: boolean) => {
      h.clock.now += 1000;
      busy += 0.5;
      h.fake.setProcStat(64, busy, busy * 20);
      if (throttle)
        for (const d of dirs) {
          const s = h.fake.stat(d);
          h.fake.setStat(d, {
            nrPeriods: s.nrPeriods + 10,
            nrThrottled: s.nrThrottled + 5,
            usageUs: s.usageUs + 1e6,
          });
        }
    };
    tick(false);
    h.agent.round();
    const steady: number[] = [];
    for (let i = 0; i < 5; i++) {
      tick(false);
      t = performance.now();
      h.agent.round();
      steady.push(performance.now() - t);
    }
    const busyRounds: number[] = [];
    let writes = 0;
    for (let i = 0; i < 3; i++) {
      tick(true);
      t = performance.now();
      writes += h.agent.round().writes;
      busyRounds.push(performance.now() - t);
    }
    return {
      pods,
      containers: dirs.length,
      applyMs: +applyMs.toFixed(1),
      steadyRoundMs: +median(steady).toFixed(1),
      throttledRoundMs: +median(busyRounds).toFixed(1),
      writesInThrottledRounds: writes,
      einval: h.fake.einvalCount,
      rssBytes: process.memoryUsage().rss,
    };
  } finally {
    h.cleanup();
  }
}

function realKernelRates() {
  const skip = realCgroupSkipReason();
  if (skip) return { skipped: skip };
  const parent = path.join(CPU, testParentName());
  const log = silentLogger();
  const tmp = fs.mkdtempSync(path.join(shm ?? '/tmp', 'cpuburst-bench-'));
  try {
    const podDir = path.join(parent, 'kubepods', 'burstable', 'podbench');
    const ctr = ['ca', 'cb'].map((c) => path.join(podDir, c));
    for (const d of ctr) fs.mkdirSync(d, { recursive: true });
    nodeFs.write(path.join(podDir, 'cpu.cfs_quota_us'), '300000');
    nodeFs.write(path.join(ctr[0]!, 'cpu.cfs_quota_us'), '200000');
    nodeFs.write(path.join(ctr[1]!, 'cpu.cfs_quota_us'), '100000');
    // 1. planner + writer alone, alternating between a scaled-up and a base state.
    let writes = 0;
    let einval = 0;
    let flip = false;
    let t0 = performance.now();
    while (performance.now() - t0 < 3000) {
      flip = !flip;
      const k = flip ? 3 : 1;
      const plan = planWrites({
        version: 1,
        burstAboveQuota: false,
        parentLimit: null,
        pod: {
          dir: podDir,
          current: readCpu(nodeFs, 1, podDir),
          target: { quotaUs: 300000 * k, burstUs: 150000 * k },
        },
        containers: ctr.map((d, i) => ({
          dir: d,
          current: readCpu(nodeFs, 1, d),
          target: { quotaUs: (i ? 100000 : 200000) * k, burstUs: (i ? 50000 : 100000) * k },
        })),
      });
      const r = executePlan(nodeFs, 1, plan, log);
      writes += r.applied.length;
      if (r.failure?.code === 'EINVAL') einval++;
    }
    const plannerWriter = { writesPerSecond: Math.round(writes / ((performance.now() - t0) / 1000)), einval };
    // 2. the whole agent: alternate documents (static burst 50 % ↔ 100 %) through apply().
    const layout = detectLayout(nodeFs, { root: V1_ROOT, kubepodsDir: `${path.basename(parent)}/kubepods` });
    const agent = new Agent({
      node: 'node-a',
      fs: nodeFs,
      layout,
      caps: probeCapabilities(nodeFs, layout, log),
      store: new StateStore(path.join(tmp, 'state'), log),
      log,
      metrics: createAgentMetrics(),
      procRoot: '/proc',
      intervalMs: 1000,
    });
    writes = 0;
    let v = 0;
    t0 = performance.now();
    while (performance.now() - t0 < 3000) {
      v++;
      const pct = v % 2 ? 50 : 100;
      agent.apply(
        document(v, [
          podDecision(
            'bench',
            [container('a', 'containerd://ca', 2000), container('b', 'containerd://cb', 1000)],
            {
              policy: 'cpuBurstOnly',
              cpuBurstPercent: pct,
            },
          ),
        ]),
      );
      writes += agent.lastReport!.writes;
    }
    const agentApply = {
      writesPerSecond: Math.round(writes / ((performance.now() - t0) / 1000)),
      appliesPerSecond: Math.round(v / ((performance.now() - t0) / 1000)),
    };
    return { plannerWriter, agentApply };
  } finally {
    removeTree(parent, CPU);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

const result = {
  bench: 'agent-loop',
  node: process.version,
  fake: [fakeRounds(100), fakeRounds(1000)],
  realKernel: realKernelRates(),
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
