// P2 — decision propagation and operator scale (issue 9). Writes bench/results/p2-propagation.json.
//   node --import tsx bench/p2-propagation.bench.ts [--smoke]
// Latency: pod annotation / strategy change in devcluster → cgroup write by the real agent (fake
// cgroupfs), next to Koordinator's design (informer + 1 s tick) measured in the same run.
// Scale: N nodes × M pods, N simulated agents, real broker and operators: convergence after start,
// after a global strategy change and after a leader kill -9; operator peak RSS and CPU.
import { performance } from 'node:perf_hooks';
import { type LatencySpec, runLatency } from './lib/p2-latency.js';
import { BUILD, cleanupOnSignals, killAll, percentile, round } from './lib/p2-procs.js';
import { runScale, type ScaleSpec } from './lib/p2-scale.js';
import { type BenchChart, type BenchRow, benchMode, machineInfo, row, writeResult } from './lib/results.js';

const mode = benchMode();
const smoke = mode === 'smoke';
const only = process.env.BENCH_P2_ONLY; // 'latency' | 'scale' (development aid)
const startedAt = new Date().toISOString();
const t0 = performance.now();
const log = (m: string) => process.stderr.write(`[p2] ${m}\n`);
cleanupOnSignals();

const latencySpec: LatencySpec = smoke
  ? {
      changes: 60,
      strategyEvery: 30,
      intervalMs: 50,
      annotatedPods: 20,
      strategyPods: 5,
      backgroundNodes: 4,
      backgroundPodsPerNode: 10,
    }
  : {
      changes: 1200,
      strategyEvery: 30,
      intervalMs: 50,
      annotatedPods: 60,
      strategyPods: 10,
      backgroundNodes: 49,
      backgroundPodsPerNode: 20,
    };
const scaleSpec: ScaleSpec = smoke
  ? {
      nodes: 50,
      podsPerNode: 20,
      namespaces: 5,
      agentsPerProcess: 25,
      lease: { durationSeconds: 4, renewSeconds: 3, retryMs: 500 },
      convergeTimeoutMs: 60_000,
      operatorNodeFlags: [],
    }
  : {
      nodes: Number(process.env.BENCH_P2_NODES ?? 5000),
      podsPerNode: Number(process.env.BENCH_P2_PODS_PER_NODE ?? 110),
      namespaces: 100,
      agentsPerProcess: 1000,
      lease: { durationSeconds: 4, renewSeconds: 3, retryMs: 500 },
      convergeTimeoutMs: 300_000,
      operatorNodeFlags: (process.env.BENCH_P2_OPERATOR_NODE_FLAGS ?? '').split(' ').filter(Boolean),
    };

const rows: BenchRow[] = [];
const charts: BenchChart[] = [];
const notes: string[] = [];
const setup: Record<string, unknown> = {
  build: BUILD === 'dist' ? 'node dist/cli.js (production build)' : 'tsx from source (dist/ missing)',
  cgroups: 'fake cgroupfs v2 (temp dir enforcing the kernel rules), no real kernel',
  brokerAuth: 'legacy shared agent key (HMAC per node) for agents, users file for the operator',
  broker: 'cpuburst broker, level session store in a temp dir (the CLI default store)',
};

const ms = (x: number | null) => round(x, 1);

if (only !== 'scale') {
  try {
    const lat = await runLatency(latencySpec, log);
    setup.latency = {
      ...latencySpec,
      devcluster: 'in the bench process (store writes time t0)',
      reference: 'client-node informers (pods of the node + strategies) and a 1 s apply tick, like koordlet',
    };
    const all = [...lat.annotationMs, ...lat.strategyMs];
    const allRef = [...lat.annotationRefMs, ...lat.strategyRefMs];
    const pair = (what: string, xs: number[], ref: number[], p: number, goal?: string) => {
      const v = ms(percentile(xs, p));
      const r = ms(percentile(ref, p));
      rows.push(
        row({
          case: what,
          metric: `p${p} latency ms`,
          value: v,
          reference: r,
          referenceName: 'koordinator-style watch + 1 s tick',
          ...(goal ? { goal, met: v !== null && v <= 100 } : {}),
          note: `n=${xs.length} (reference n=${ref.length})`,
        }),
      );
    };
    pair('all changes → cgroup write', all, allRef, 50);
    pair('all changes → cgroup write', all, allRef, 99, '≤ 100 ms');
    pair('pod annotation → cgroup write', lat.annotationMs, lat.annotationRefMs, 50);
    pair('pod annotation → cgroup write', lat.annotationMs, lat.annotationRefMs, 99, '≤ 100 ms');
    pair('strategy change → cgroup write (all its pods)', lat.strategyMs, lat.strategyRefMs, 50);
    pair('strategy change → cgroup write (all its pods)', lat.strategyMs, lat.strategyRefMs, 99, '≤ 100 ms');
    if (lat.missed.cpuburst || lat.missed.reference)
      notes.push(
        `latency: ${lat.missed.cpuburst} change(s) never reached the agent's cgroup and ${lat.missed.reference} the reference's within 15 s`,
      );
    const ps = [50, 75, 90, 95, 99, 100];
    charts.push({
      title: 'Change → cgroup write latency',
      unit: 'ms',
      kind: 'bar',
      x: ps.map((p) => (p === 100 ? 'max' : `p${p}`)),
      series: [
        { name: 'cpuburst (watch → MQTT → agent)', values: ps.map((p) => ms(percentile(all, p))) },
        { name: 'koordinator-style 1 s tick', values: ps.map((p) => ms(percentile(allRef, p))) },
      ],
      logY: true,
    });
  } catch (err) {
    log(`latency failed: ${(err as Error).stack}`);
    rows.push(
      row({
        case: 'all changes → cgroup write',
        metric: 'p99 latency ms',
        value: null,
        goal: '≤ 100 ms',
        met: false,
        note: `failed: ${(err as Error).message.slice(0, 300)}`,
      }),
    );
    notes.push(`latency part failed: ${(err as Error).message.slice(0, 500)}`);
  }
  await killAll();
}

if (only !== 'latency') {
  try {
    const sc = await runScale(scaleSpec, log);
    setup.scale = {
      nodes: scaleSpec.nodes,
      podsPerNode: scaleSpec.podsPerNode,
      pods: sc.pods,
      agents: `${scaleSpec.nodes} MQTT clients in ${Math.ceil(scaleSpec.nodes / scaleSpec.agentsPerProcess)} processes (ack every document at QoS 1)`,
      operators: '2 replicas with leader election (the second starts after the first converged)',
      lease: scaleSpec.lease,
      devcluster:
        'own process, pods loaded into its store (snapshot-style), seeded in ' +
        `${sc.devclusterSeedSeconds.toFixed(1)} s`,
      operatorNodeFlags: scaleSpec.operatorNodeFlags,
    };
    for (const p of sc.phases) {
      rows.push(
        row({
          case: `${scaleSpec.nodes} nodes × ${scaleSpec.podsPerNode} pods: ${p.name}`,
          metric: 'full convergence s',
          value: round(p.convergedSeconds, 2),
          goal: '≤ 10 s',
          met: p.convergedSeconds !== null && p.convergedSeconds <= 10,
          note: `${p.nodesConverged}/${scaleSpec.nodes} nodes acked; p50 ${round(p.p50Seconds, 2)} s, p90 ${round(p.p90Seconds, 2)} s${Object.entries(
            p.marks,
          )
            .map(([k, v]) => `; ${k} ${round(v, 2)} s`)
            .join('')}`,
        }),
      );
    }
    rows.push(
      row({
        case: `${scaleSpec.nodes} nodes × ${scaleSpec.podsPerNode} pods: leader operator`,
        metric: 'peak RSS MiB',
        value: sc.leader.peakRssMiB,
        goal: '≤ 1024 MiB',
        met: sc.leader.peakRssMiB !== null && sc.leader.peakRssMiB <= 1024,
        note: `V8 heap in use ${sc.leader.heapMiB[0] ?? '?'} MiB after start, ${sc.leader.heapMiB[1] ?? '?'} MiB after the strategy change`,
      }),
      row({
        case: `${scaleSpec.nodes} nodes × ${scaleSpec.podsPerNode} pods: standby → leader operator`,
        metric: 'peak RSS MiB',
        value: sc.standby.peakRssMiB,
        goal: '≤ 1024 MiB',
        met: sc.standby.peakRssMiB !== null && sc.standby.peakRssMiB <= 1024,
      }),
      row({
        case: `${scaleSpec.nodes} nodes × ${scaleSpec.podsPerNode} pods: leader operator, start → converged`,
        metric: 'CPU s',
        value: sc.leader.cpuSecondsStart,
      }),
      row({
        case: `${scaleSpec.nodes} nodes × ${scaleSpec.podsPerNode} pods: leader operator, start → strategy change converged`,
        metric: 'CPU s',
        value: sc.leader.cpuSeconds,
      }),
      row({
        case: `${scaleSpec.nodes} nodes × ${scaleSpec.podsPerNode} pods: standby operator, whole run`,
        metric: 'CPU s',
        value: sc.standby.cpuSeconds,
      }),
    );
    const longest = sc.phases.reduce((m, p) => Math.max(m, p.curve.length), 0);
    charts.push({
      title: `Nodes converged after each trigger (${scaleSpec.nodes} nodes × ${scaleSpec.podsPerNode} pods)`,
      unit: '% of nodes acked',
      kind: 'line',
      xTitle: 's after the trigger',
      x: Array.from({ length: longest }, (_, i) => i * 0.5),
      series: sc.phases.map((p) => ({
        name: p.name,
        values: Array.from({ length: longest }, (_, i) => round((p.curve[i]?.share ?? 1) * 100, 1)),
      })),
    });
    for (const p of sc.phases)
      if (p.convergedSeconds === null || p.convergedSeconds > 10)
        notes.push(
          `scale: "${p.name}" ${p.convergedSeconds === null ? 'did not converge' : `took ${p.convergedSeconds} s`} (goal ≤ 10 s)`,
        );
    setup.leadership = sc.leadership;
    if (sc.leadership.length !== 2)
      notes.push(
        `unexpected leadership changes (want op-a at start, op-b at the kill): ${sc.leadership.join('; ')}`,
      );
    notes.push(
      `fail-over includes the Lease expiry: lease ${scaleSpec.lease.durationSeconds} s / renew ${scaleSpec.lease.renewSeconds} s / retry ${scaleSpec.lease.retryMs} ms (client-go defaults 15/10/2 would add ~11 s)`,
    );
  } catch (err) {
    log(`scale failed: ${(err as Error).stack}`);
    rows.push(
      row({
        case: `${scaleSpec.nodes} nodes: operator start`,
        metric: 'full convergence s',
        value: null,
        goal: '≤ 10 s',
        met: false,
        note: `failed: ${(err as Error).message.slice(0, 300)}`,
      }),
    );
    notes.push(`scale part failed: ${(err as Error).message.slice(0, 500)}`);
  }
  await killAll();
}

writeResult({
  part: 'p2-propagation',
  title: 'Decision propagation and operator scale',
  mode,
  startedAt,
  durationSeconds: Math.round((performance.now() - t0) / 100) / 10,
  machine: machineInfo(),
  setup,
  rows,
  charts,
  notes,
});
process.exit(0);
