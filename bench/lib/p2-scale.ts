// P2 scale: devcluster (own process) with N nodes × M pods and one cluster-wide CpuBurstStrategy, the
// real broker, N simulated agents (several processes, legacy agent-key auth) that ack every document,
// and real operator processes. Convergence = every node acked a document that carries all its pods
// with the expected cpuBurstPercent; timed after operator start, after a global strategy change, and
// after kill -9 of the leader (with a strategy change made right after the kill, so only the new
// leader can converge the nodes).
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { AckRecord, SimSpec } from './p2-agent-sim.js';
import type { SeedSpec } from './p2-devcluster-child.js';
import { alive, benchTempDir, jsonLine, ProcWatcher, spawnScript, tail, waitUntil } from './p2-procs.js';
import {
  heapUsedMiB,
  type Operator,
  ready,
  startBroker,
  startOperator,
  writeCredentials,
} from './p2-stack.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export interface ScaleSpec {
  nodes: number;
  podsPerNode: number;
  namespaces: number;
  agentsPerProcess: number;
  lease: { durationSeconds: number; renewSeconds: number; retryMs: number };
  convergeTimeoutMs: number;
  /** Node flags for the operator processes (e.g. --max-old-space-size, --cpu-prof). */
  operatorNodeFlags: string[];
}

export interface PhaseResult {
  name: string;
  /** Time from the trigger until the last node acked; null when it did not converge in time. */
  convergedSeconds: number | null;
  /** Seconds until 50 % / 90 % of the nodes had acked. */
  p50Seconds: number | null;
  p90Seconds: number | null;
  nodesConverged: number;
  /** Cumulative share of nodes converged at 0.5 s steps (chart). */
  curve: { t: number; share: number }[];
  /** Extra timings of the phase (seconds from the trigger). */
  marks: Record<string, number | null>;
}

export interface ScaleResult {
  phases: PhaseResult[];
  leader: {
    peakRssMiB: number | null;
    cpuSeconds: number | null;
    cpuSecondsStart: number | null;
    /** V8 heap in use after start convergence and after the strategy change. */
    heapMiB: (number | null)[];
  };
  standby: { peakRssMiB: number | null; cpuSeconds: number | null };
  devclusterSeedSeconds: number;
  pods: number;
  leadership: string[];
}

const STRATEGY = 'global';

export async function runScale(spec: ScaleSpec, log: (m: string) => void): Promise<ScaleResult> {
  const dir = benchTempDir('cpuburst-bench-p2-scale-');
  const creds = writeCredentials(dir);
  const kubeconfig = path.join(dir, 'kubeconfig');
  const kill: ChildProcess[] = [];
  try {
    // ---- devcluster with the whole cluster in memory
    const seed: SeedSpec = {
      nodes: spec.nodes,
      podsPerNode: spec.podsPerNode,
      namespaces: spec.namespaces,
      strategy: STRATEGY,
      cpuBurstPercent: 40,
      kubeconfigPath: kubeconfig,
    };
    const dc = spawnScript(
      path.join(HERE, 'p2-devcluster-child.ts'),
      [JSON.stringify(seed)],
      ['--max-old-space-size=16384'],
    );
    kill.push(dc);
    const dcLog = tail(dc);
    const dcReady = await jsonLine(dc, (l) => (l.ready ? l : undefined), 'devcluster seeded', 600_000);
    log(`scale: devcluster up with ${dcReady.pods} pods in ${dcReady.seedSeconds.toFixed(1)} s`);
    const patchStrategy = async (pct: number) => {
      const r = await fetch(`${dcReady.url}/apis/cpuburst.io/v1alpha1/cpuburststrategies/${STRATEGY}`, {
        method: 'PATCH',
        headers: { 'Content-Type': 'application/merge-patch+json' },
        body: JSON.stringify({ spec: { cpuBurstPercent: pct } }),
      });
      if (r.status !== 200) throw new Error(`strategy patch: HTTP ${r.status} ${await r.text()}`);
    };

    // ---- broker and simulated agents
    const broker = await startBroker(dir, creds);
    kill.push(broker.child);
    const latest = new Map<number, AckRecord[]>();
    const sims: ChildProcess[] = [];
    const readyCounts: number[] = [];
    for (let from = 0, k = 0; from < spec.nodes; from += spec.agentsPerProcess, k++) {
      const s: SimSpec = {
        url: broker.url,
        agentKey: creds.agentKey,
        from,
        count: Math.min(spec.agentsPerProcess, spec.nodes - from),
      };
      const sim = spawnScript(path.join(HERE, 'p2-agent-sim.ts'), [JSON.stringify(s)]);
      kill.push(sim);
      sims.push(sim);
      const simLog = tail(sim);
      sim.on('message', (m: { acks?: AckRecord[]; ready?: number }) => {
        if (m.ready !== undefined) readyCounts[k] = m.ready;
        for (const a of m.acks ?? []) {
          let l = latest.get(a[0]);
          if (!l) {
            l = [];
            latest.set(a[0], l);
          }
          l.push(a);
        }
      });
      sim.once('exit', (code) => {
        if (code) log(`agent-sim ${k} exited ${code}: ${simLog()}`);
      });
    }
    await waitUntil(
      'simulated agents connected',
      () => readyCounts.reduce((a, b) => a + (b ?? 0), 0) === spec.nodes,
      300_000,
      100,
    );
    log(`scale: ${spec.nodes} simulated agents connected in ${sims.length} processes`);

    // ---- convergence tracking
    const phase = async (
      name: string,
      pct: number,
      trigger: () => Promise<void>,
      marks: Record<string, () => number | null> = {},
    ) => {
      const t0 = Date.now();
      await trigger();
      const at = (n: number) =>
        latest.get(n)?.find((a) => a[4] >= t0 && a[2] === spec.podsPerNode && a[3] === pct)?.[4];
      const done = await waitUntil(
        `${name} convergence`,
        () => {
          if (!alive(dc)) throw new Error(`devcluster exited: ${dcLog()}`);
          for (let n = 0; n < spec.nodes; n++) if (at(n) === undefined) return false;
          return true;
        },
        spec.convergeTimeoutMs,
        100,
      ).catch((err) => {
        log(`scale: ${(err as Error).message}`);
        return false;
      });
      const times = Array.from({ length: spec.nodes }, (_, n) => at(n))
        .filter((x): x is number => x !== undefined)
        .map((x) => (x - t0) / 1000)
        .sort((a, b) => a - b);
      const q = (p: number) =>
        times.length ? (times[Math.min(times.length - 1, Math.ceil(p * spec.nodes) - 1)] ?? null) : null;
      const end = times.at(-1) ?? 0;
      const curve: { t: number; share: number }[] = [];
      for (let t = 0; t <= Math.ceil(end * 2) / 2 + 0.5; t += 0.5)
        curve.push({ t, share: times.filter((x) => x <= t).length / spec.nodes });
      const r: PhaseResult = {
        name,
        convergedSeconds: done ? end : null,
        p50Seconds: times.length >= spec.nodes * 0.5 ? q(0.5) : null,
        p90Seconds: times.length >= spec.nodes * 0.9 ? q(0.9) : null,
        nodesConverged: times.length,
        curve,
        marks: Object.fromEntries(Object.entries(marks).map(([k, f]) => [k, f()])),
      };
      log(
        `scale: ${name}: ${r.nodesConverged}/${spec.nodes} nodes, converged in ${r.convergedSeconds ?? 'n/a'} s`,
      );
      return { r, t0 };
    };
    const readyAt = (op: Operator, t0: number) => {
      let at: number | null = null;
      const timer = setInterval(async () => {
        if (at === null && (await ready(op))) at = (Date.now() - t0) / 1000;
      }, 100);
      return { get: () => at, stop: () => clearInterval(timer) };
    };

    // Every leadership change of either replica, with the phase it happened in: a leader that cannot
    // renew in time (a stalled event loop) shows up here as a spurious fail-over.
    const leadership: string[] = [];
    let phaseName = 'operator start';
    const watchLeadership = (op: Operator) => {
      let buf = '';
      op.child.stdout?.on('data', (d: Buffer) => {
        buf += d.toString();
        let i = buf.indexOf('\n');
        while (i >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          i = buf.indexOf('\n');
          if (line.includes('"Became leader"') || line.includes('"Lost leadership"'))
            leadership.push(
              `${op.identity} ${line.includes('Became') ? 'became leader' : 'lost leadership'} during "${phaseName}"`,
            );
        }
      });
    };
    const phases: PhaseResult[] = [];
    // 1. operator start (the first replica takes the free Lease at once)
    let a!: Operator;
    let aWatch!: ProcWatcher;
    let aReady!: ReturnType<typeof readyAt>;
    const start = await phase(
      'operator start',
      40,
      async () => {
        const t0 = Date.now();
        a = await startOperator({
          kubeconfig,
          mqttUrl: broker.url,
          creds,
          identity: 'op-a',
          leaderElect: true,
          lease: spec.lease,
          nodeFlags: spec.operatorNodeFlags,
        });
        kill.push(a.child);
        watchLeadership(a);
        aWatch = new ProcWatcher(a.child.pid!);
        aReady = readyAt(a, t0);
      },
      { synced: () => aReady.get() },
    );
    aReady.stop();
    phases.push(start.r);
    const heap = [await heapUsedMiB(a)];
    aWatch.sample();
    const cpuStart = aWatch.last?.cpuSeconds ?? null;

    // 2. the standby replica syncs, then a global strategy change
    const b = await startOperator({
      kubeconfig,
      mqttUrl: broker.url,
      creds,
      identity: 'op-b',
      leaderElect: true,
      lease: spec.lease,
      nodeFlags: spec.operatorNodeFlags,
    });
    kill.push(b.child);
    watchLeadership(b);
    const bWatch = new ProcWatcher(b.child.pid!);
    await waitUntil('standby synced', () => ready(b), spec.convergeTimeoutMs, 200);
    await sleep(1000);
    phaseName = 'global strategy change';
    phases.push((await phase('global strategy change', 60, () => patchStrategy(60))).r);
    phaseName = 'leader kill -9 (fail-over)';
    aWatch.sample();
    heap.push(await heapUsedMiB(a));
    const leader = {
      peakRssMiB: aWatch.last?.peakRssMiB ?? null,
      cpuSeconds: aWatch.last?.cpuSeconds ?? null,
      cpuSecondsStart: cpuStart,
      heapMiB: heap,
    };

    // 3. kill -9 the leader, change the strategy at once: only the standby, once it holds the Lease, converges it
    let tookOver: number | null = null;
    let t2 = 0;
    const onLine = (d: Buffer) => {
      if (t2 && tookOver === null && d.toString().includes('"Became leader"'))
        tookOver = (Date.now() - t2) / 1000;
    };
    b.child.stdout?.on('data', onLine);
    aWatch.stop();
    phases.push(
      (
        await phase(
          'leader kill -9 (fail-over)',
          80,
          async () => {
            t2 = Date.now();
            a.child.kill('SIGKILL');
            await patchStrategy(80);
          },
          { newLeaderSeconds: () => tookOver },
        )
      ).r,
    );
    bWatch.stop();
    return {
      phases,
      leader,
      standby: { peakRssMiB: bWatch.last?.peakRssMiB ?? null, cpuSeconds: bWatch.last?.cpuSeconds ?? null },
      devclusterSeedSeconds: dcReady.seedSeconds,
      leadership,
      pods: dcReady.pods,
    };
  } finally {
    for (const c of kill.reverse()) if (alive(c)) c.kill('SIGTERM');
    // Graceful first (an operator run with --cpu-prof writes its profile on the way out).
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && kill.some(alive)) await sleep(100);
    for (const c of kill) if (alive(c)) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}
