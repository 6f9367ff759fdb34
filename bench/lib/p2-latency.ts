// P2 latency: a pod annotation (or a strategy change) in devcluster → the cgroup write on the node, by
// the real agent (fake cgroupfs v2: a temp dir with the kernel's rules, no real kernel) through the
// real broker and operator; and by the reference (Koordinator's watch + 1 s tick) into its own copy
// of the same fake tree, in the same run. Changes are paced (one every `intervalMs` ± 25 %) so every
// one is seen by both; each is timed from the store write to the moment its value is in the cgroup file.
import { watch as fsWatch, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import YAML from 'yaml';
import { allowPlainHttp } from '../../common/kubeconfig.js';
import { startDevCluster } from '../../devcluster/index.js';
import { FakeCgroupFs } from '../../test/support/fake-cgroupfs.js';
import {
  alive,
  benchTempDir,
  REPO_ROOT,
  registerTempDir,
  spawnComponent,
  tail,
  waitUntil,
} from './p2-procs.js';
import { ReferenceApplier } from './p2-reference-applier.js';
import { startBroker, startOperator, writeCredentials } from './p2-stack.js';

export interface LatencySpec {
  /** Total changes (annotation + strategy). */
  changes: number;
  /** Every n-th change is a strategy change (it moves all strategy pods at once). */
  strategyEvery: number;
  intervalMs: number;
  annotatedPods: number;
  strategyPods: number;
  backgroundNodes: number;
  backgroundPodsPerNode: number;
}

export interface LatencyResult {
  annotationMs: number[];
  annotationRefMs: number[];
  strategyMs: number[];
  strategyRefMs: number[];
  /** Changes whose value one side never wrote before the next change (should be 0). */
  missed: { cpuburst: number; reference: number };
  referenceTicks: number;
}

const NODE = 'node-a';
const QUOTA = 100_000;

interface Target {
  uid: string;
  name: string;
  dirs: { agent: string; ref: string };
}

interface Pending {
  t0: number;
  burst: number;
  targets: Target[];
  kind: 'annotation' | 'strategy';
  done: { agent: number | null; ref: number | null };
}

export async function runLatency(spec: LatencySpec, log: (m: string) => void): Promise<LatencyResult> {
  const dir = benchTempDir('cpuburst-bench-p2-lat-');
  const creds = writeCredentials(dir);
  const kubeconfig = path.join(dir, 'kubeconfig');
  const cluster = await startDevCluster({ watchWindow: 100_000, kubeconfigPath: kubeconfig });
  const agentFs = FakeCgroupFs.create({ version: 2 });
  const refFs = FakeCgroupFs.create({ version: 2 });
  registerTempDir(agentFs.root);
  registerTempDir(refFs.root);
  const cleanups: Array<() => Promise<void> | void> = [
    () => cluster.close(),
    () => agentFs.cleanup(),
    () => refFs.cleanup(),
    () => rmSync(dir, { recursive: true, force: true }),
  ];
  try {
    cluster.store.apply(
      YAML.parse(readFileSync(path.join(REPO_ROOT, 'crds/cpuburststrategies.cpuburst.io.yaml'), 'utf8')),
    );
    for (const ns of ['cpuburst-system', 'bench'])
      cluster.store.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    const nodes = [NODE, ...Array.from({ length: spec.backgroundNodes }, (_, i) => `bg-${i}`)];
    for (const n of nodes)
      cluster.store.create({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: n, labels: { 'kubernetes.io/hostname': n } },
      });
    const mkPod = (name: string, node: string, labels: Record<string, string>) => {
      const uid = `lat-${name}`;
      return cluster.store.create({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: 'bench', labels },
        spec: {
          nodeName: node,
          containers: [{ name: 'app', resources: { limits: { cpu: '1' }, requests: { cpu: '500m' } } }],
        },
        status: {
          phase: 'Running',
          qosClass: 'Burstable',
          containerStatuses: [
            {
              name: 'app',
              containerID: `containerd://${uid}-c`,
              state: { running: { startedAt: '2026-01-01T00:00:00Z' } },
            },
          ],
        },
      });
    };
    const target = (name: string, labels: Record<string, string>): Target => {
      const p = mkPod(name, NODE, labels);
      const uid = p.metadata.uid as string; // the store assigns its own
      const id = p.status.containerStatuses[0].containerID as string;
      const add = (fs: FakeCgroupFs) =>
        fs.addPod({ uid, qosClass: 'Burstable', containers: [{ id, quotaUs: QUOTA }] }).containerDirs[0]!;
      return { uid, name, dirs: { agent: add(agentFs), ref: add(refFs) } };
    };
    const annotated = Array.from({ length: spec.annotatedPods }, (_, i) =>
      target(`ann-${i}`, { role: 'ann' }),
    );
    const stratPods = Array.from({ length: spec.strategyPods }, (_, i) =>
      target(`str-${i}`, { role: 'str' }),
    );
    for (let i = 0; i < spec.backgroundNodes; i++)
      for (let j = 0; j < spec.backgroundPodsPerNode; j++) mkPod(`bg-${i}-${j}`, `bg-${i}`, { role: 'str' });
    let strategyPct = 50;
    cluster.store.create({
      apiVersion: 'cpuburst.io/v1alpha1',
      kind: 'CpuBurstStrategy',
      metadata: { name: 'lat' },
      spec: {
        policy: 'cpuBurstOnly',
        cpuBurstPercent: strategyPct,
        podSelector: { matchLabels: { role: 'str' } },
      },
    });

    const broker = await startBroker(dir, creds);
    cleanups.unshift(() => void broker.child.kill('SIGKILL'));
    const agent = spawnComponent([
      'agent',
      `--node-name=${NODE}`,
      `--cgroup-root=${agentFs.root}`,
      `--state-dir=${path.join(dir, 'agent-state')}`,
      `--proc-root=${agentFs.procRoot}`,
      `--mqtt-url=${broker.url}`,
      `--mqtt-agent-key-file=${creds.agentKeyFile}`,
      '--interval=1000',
      '--metrics-port=-1',
      '--log-level=warn',
    ]);
    const agentLog = tail(agent);
    cleanups.unshift(() => void agent.kill('SIGKILL'));
    const op = await startOperator({
      kubeconfig,
      mqttUrl: broker.url,
      creds,
      identity: 'p2-latency',
      leaderElect: false,
    });
    cleanups.unshift(() => void op.child.kill('SIGKILL'));
    const kc = allowPlainHttp(
      (() => {
        const k = new KubeConfig();
        k.loadFromString(cluster.kubeConfig());
        return k;
      })(),
    );
    const ref = new ReferenceApplier(kc, NODE, refFs);
    await ref.start();
    cleanups.unshift(() => ref.stop());

    const burstOf = (fs: FakeCgroupFs, d: string) => {
      try {
        return fs.values(d).burstUs;
      } catch {
        return null;
      }
    };
    log('latency: waiting for the initial strategy burst on both sides');
    await waitUntil(
      'initial strategy burst (agent and reference)',
      () => {
        if (!alive(agent)) throw new Error(`agent exited: ${agentLog()}`);
        if (!alive(op.child)) throw new Error(`operator exited: ${op.log()}`);
        return stratPods.every(
          (t) => burstOf(agentFs, t.dirs.agent) === QUOTA / 2 && burstOf(refFs, t.dirs.ref) === QUOTA / 2,
        );
      },
      60_000,
      50,
    ).catch((err) => {
      const v = (fs: FakeCgroupFs, d: string) => burstOf(fs, d);
      throw new Error(
        `${(err as Error).message}; agent ${stratPods.map((t) => v(agentFs, t.dirs.agent))}, reference ${stratPods.map((t) => v(refFs, t.dirs.ref))} (${ref.ticks} ticks); agent log: ${agentLog().slice(-1500)}; operator log: ${op.log().slice(-1500)}`,
      );
    });

    // Completion detection: inotify on every target's container dir, plus a slow poll as a safety net.
    const pending: Pending[] = [];
    const all: Pending[] = [];
    // Both sides are level-based: a change superseded before a side applied it counts as applied when
    // its successor is (the value written is p's or that of a later change to the same target).
    const accepts = (p: Pending, uid: string, burst: number | null | undefined, at: number) => {
      if (burst === p.burst) return true;
      for (let i = all.length - 1; i >= 0 && all[i] !== p; i--) {
        const q = all[i]!;
        if (q.t0 <= at && q.burst === burst && q.targets.some((t) => t.uid === uid)) return true;
      }
      return false;
    };
    const check = (now: number) => {
      for (const p of pending) {
        if (
          p.done.agent === null &&
          p.targets.every((t) => accepts(p, t.uid, burstOf(agentFs, t.dirs.agent), now))
        )
          p.done.agent = now;
        if (
          p.done.ref === null &&
          p.targets.every((t) => {
            const w = ref.lastWrite.get(t.uid);
            return w !== undefined && w.at >= p.t0 && accepts(p, t.uid, w.burst, w.at);
          })
        )
          p.done.ref = Math.max(...p.targets.map((t) => ref.lastWrite.get(t.uid)!.at));
      }
    };
    // (The reference runs in this process and records its own write times.)
    const watchers = [...annotated, ...stratPods].map((t) =>
      fsWatch(t.dirs.agent, () => check(performance.now())),
    );
    cleanups.unshift(() => {
      for (const w of watchers) w.close();
    });
    const poll = setInterval(() => check(performance.now()), 25);
    cleanups.unshift(() => clearInterval(poll));

    const annPct = new Map<string, number>();
    log(`latency: ${spec.changes} changes, one every ${spec.intervalMs} ms`);
    for (let k = 0; k < spec.changes; k++) {
      const at = performance.now();
      let p: Pending;
      if (k % spec.strategyEvery === spec.strategyEvery - 1) {
        strategyPct = strategyPct >= 90 ? 20 : strategyPct + 7;
        const live = cluster.store.get('cpuburst.io/v1alpha1', 'CpuBurstStrategy', 'lat')!;
        live.spec.cpuBurstPercent = strategyPct;
        p = {
          t0: 0,
          burst: (QUOTA * strategyPct) / 100,
          targets: stratPods,
          kind: 'strategy',
          done: { agent: null, ref: null },
        };
        p.t0 = performance.now();
        cluster.store.update(live);
      } else {
        const t = annotated[k % annotated.length]!;
        const prev = annPct.get(t.uid) ?? 0;
        const pct = 10 + ((prev + 13) % 90);
        annPct.set(t.uid, pct);
        const live = cluster.store.get('v1', 'Pod', t.name, 'bench')!;
        live.metadata.annotations = {
          'cpuburst.io/enabled': 'true',
          'cpuburst.io/config': JSON.stringify({ policy: 'cpuBurstOnly', cpuBurstPercent: pct }),
        };
        p = {
          t0: 0,
          burst: (QUOTA * pct) / 100,
          targets: [t],
          kind: 'annotation',
          done: { agent: null, ref: null },
        };
        p.t0 = performance.now();
        cluster.store.update(live);
      }
      pending.push(p);
      all.push(p);
      // A change is settled once both sides wrote it; drop it from the hot list.
      for (let i = pending.length - 1; i >= 0; i--)
        if (pending[i]!.done.agent !== null && pending[i]!.done.ref !== null) pending.splice(i, 1);
      // ±25 % jitter: change times must not be in step with the reference's 1 s tick (strategy
      // changes every 30 × 50 ms would hit only two tick phases and bias its figures).
      const wait = spec.intervalMs * (0.75 + Math.random() / 2) - (performance.now() - at);
      if (wait > 0) await sleep(wait);
    }
    await waitUntil(
      'every change written by both sides',
      () => pending.every((p) => p.done.agent !== null && p.done.ref !== null),
      15_000,
      50,
    ).catch(() => undefined);
    const ms = (ps: Pending[], side: 'agent' | 'ref') =>
      ps.filter((p) => p.done[side] !== null).map((p) => p.done[side]! - p.t0);
    const ann = all.filter((p) => p.kind === 'annotation');
    const str = all.filter((p) => p.kind === 'strategy');
    return {
      annotationMs: ms(ann, 'agent'),
      annotationRefMs: ms(ann, 'ref'),
      strategyMs: ms(str, 'agent'),
      strategyRefMs: ms(str, 'ref'),
      missed: {
        cpuburst: all.filter((p) => p.done.agent === null).length,
        reference: all.filter((p) => p.done.ref === null).length,
      },
      referenceTicks: ref.ticks,
    };
  } finally {
    for (const c of cleanups) await Promise.resolve(c()).catch(() => undefined);
  }
}
