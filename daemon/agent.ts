// The agent's I/O shell: each round reads the cgroups of the pods in the decision document, runs
// the pure control round, plans kernel-safe writes, records ownership, executes, and restores
// what it owns for pods that left (policy none, opt-out, deletion). All decisions are in
// control/ and cgroup/plan.ts; this file only gathers inputs and carries out outputs.
import path from 'node:path';
import type { Logger } from '../common/log.js';
import type {
  AckMessage,
  AckResult,
  DecisionDocument,
  NodeState,
  PodDecision,
  PodError,
  PodStatus,
  StatusReport,
} from '../protocol/index.js';
import { PROTOCOL_API_VERSION } from '../protocol/index.js';
import type { CgroupFs } from './cgroup/fs.js';
import { type CgroupLayout, LayoutError, resolveContainerDir, resolvePodDir } from './cgroup/layout.js';
import { type Plan, type PlanNode, planWrites, type Triple } from './cgroup/plan.js';
import type { CgroupCapabilities } from './cgroup/probe.js';
import { type CpuStat, type CpuValues, readCpu, readStat, readUsageUs } from './cgroup/read.js';
import { executePlan } from './cgroup/write.js';
import type { Bucket } from './control/bucket.js';
import { type NodeStateResult, nodeState, windowMs } from './control/nodestate.js';
import { type ContainerInput, controlRound } from './control/round.js';
import { type AgentMetrics, NODE_STATES } from './metrics.js';
import { type ProcStatSample, readProcStat, usageCores } from './procstat.js';
import { isOurs, type OwnedFieldName, type StateStore } from './state/store.js';

export interface AgentDeps {
  node: string;
  fs: CgroupFs;
  layout: CgroupLayout;
  caps: CgroupCapabilities;
  store: StateStore;
  log: Logger;
  metrics: AgentMetrics;
  procRoot: string;
  intervalMs: number;
  clock?: () => number;
  /**
   * True once `--restore-all` has asked this agent to stop (state/quiesce.ts). Checked before every
   * round and every apply; while true the agent performs no cgroup write at all.
   */
  quiesced?: () => boolean;
}

interface Sample {
  tMs: number;
  stat: CpuStat;
}

interface CtrWork {
  name: string;
  dir: string;
  limitMilli: number;
  cur: CpuValues;
  stat: CpuStat;
  throttleRatio: number | null;
  usageCores: number | null;
}

interface PodWork {
  pod: PodDecision;
  podDir: string;
  podCur: CpuValues;
  containers: CtrWork[];
  st: PodStatus;
  plan?: Plan;
  nodes?: PlanNode[];
  /** Owned container dirs no longer managed, restored by this pod's plan. */
  stale?: string[];
}

export interface RoundReport {
  errors: PodError[];
  statuses: PodStatus[];
  nodeState: NodeState;
  writes: number;
  /** Final values planned for every cgroup whose plan ran to completion (for verification). */
  planned: Map<string, Triple>;
}

interface Series {
  labels: Record<string, string>;
  /** Last value set per gauge: prom-client hashes the labels on every set, and most stay the same. */
  last: Map<object, number>;
}

function setGauge(
  s: Series,
  g: { set(labels: Record<string, string>, value: number): void },
  v: number,
): void {
  if (s.last.get(g) === v) return;
  s.last.set(g, v);
  g.set(s.labels, v);
}

const FIELD_OF = (v: CpuValues, f: OwnedFieldName): number | null =>
  f === 'quota' ? v.quotaUs : f === 'period' ? v.periodUs : v.burstUs;

export class Agent {
  doc: DecisionDocument | null = null;
  appliedVersion = 0;
  lastReport: RoundReport | null = null;
  rounds = 0;
  private samples = new Map<string, Sample>();
  private buckets = new Map<string, Bucket>();
  private ring: Array<{ tMs: number; ps: ProcStatSample; exclUs: number }> = [];
  private node: NodeStateResult = { state: 'unknown', ratio: null, excessCores: 0 };
  /** Metric series of pods (pod|uid) and containers (ctr|uid|name) seen recently. */
  private labelKeys = new Map<string, Series>();
  /** Resolved container dirs (podDir|containerID → dir), re-resolved only when reading them fails. */
  private ctrDirs = new Map<string, string>();
  /** Resolved pod dirs (qosClass|uid → dir), re-resolved only when reading them fails. */
  private podDirs = new Map<string, string>();
  private readonly clock: () => number;
  private quiescedSeen = false;

  constructor(private readonly d: AgentDeps) {
    this.clock = d.clock ?? Date.now;
  }

  /** Resumes enforcing the last applied document after a restart (no broker needed). */
  loadPersisted(): void {
    const doc = this.d.store.loadDocument();
    if (doc && doc.node === this.d.node) {
      this.doc = doc;
      this.appliedVersion = doc.version;
      this.d.metrics.appliedVersion.set(doc.version);
      this.d.log.info('Loaded persisted decision document', { version: doc.version, pods: doc.pods.length });
    }
  }

  /** Applies a new document now; the ack carries the outcome. */
  apply(doc: DecisionDocument): { result: AckResult; errors: PodError[] } {
    if (this.isQuiesced()) {
      this.d.log.info('Ignoring decision document: the agent is quiesced by --restore-all', {
        version: doc.version,
      });
      return {
        result: 'Rejected',
        errors: [
          { uid: '', reason: 'Quiesced', message: 'agent quiesced by --restore-all until it restarts' },
        ],
      };
    }
    this.doc = doc;
    this.appliedVersion = doc.version;
    this.d.metrics.appliedVersion.set(doc.version);
    try {
      this.d.store.saveDocument(doc);
    } catch (err) {
      this.d.log.error('Could not persist decision document', { error: (err as Error).message });
    }
    const report = this.round({ sample: false });
    const hard = report.errors.filter((e) => e.reason !== 'Clamped');
    this.d.log.info('Applied decision document', {
      version: doc.version,
      pods: doc.pods.length,
      writes: report.writes,
      errors: report.errors.length,
    });
    return { result: hard.length === 0 ? 'Applied' : 'PartiallyApplied', errors: report.errors };
  }

  ack(version: number, result: AckResult, errors: PodError[]): AckMessage {
    return {
      apiVersion: PROTOCOL_API_VERSION,
      kind: 'DecisionAck',
      node: this.d.node,
      version,
      result,
      time: new Date(this.clock()).toISOString(),
      errors,
    };
  }

  statusReport(): StatusReport {
    const st: StatusReport = {
      apiVersion: PROTOCOL_API_VERSION,
      kind: 'AgentStatus',
      node: this.d.node,
      appliedVersion: this.appliedVersion,
      time: new Date(this.clock()).toISOString(),
      nodeState: this.node.state,
      pods: this.lastReport?.statuses ?? [],
    };
    if (this.quiescedSeen) st.quiesced = true;
    return st;
  }

  /** Asks the quiesce gate (reads the state dir); sticky once true. */
  isQuiesced(): boolean {
    if (this.quiescedSeen) return true;
    if (!this.d.quiesced?.()) return false;
    this.quiescedSeen = true;
    this.d.metrics.quiesced.set(1);
    return true;
  }

  /**
   * One round. sample=false (a round triggered by a new document) applies policy changes without
   * stepping the dynamic quota, so an extra round cannot double a control step.
   */
  round(opts: { sample?: boolean } = {}): RoundReport {
    const sample = opts.sample ?? true;
    if (this.isQuiesced()) {
      // restore-all owns the cgroups now: no reads that could adopt its values, no writes, no saves.
      this.lastReport = {
        errors: [],
        statuses: this.lastReport?.statuses ?? [],
        nodeState: this.node.state,
        writes: 0,
        planned: new Map(),
      };
      return this.lastReport;
    }
    const end = this.d.metrics.roundDuration.startTimer();
    const now = this.clock();
    const { fs, layout, store, log } = this.d;
    const errors: PodError[] = [];
    const statuses: PodStatus[] = [];
    const doc = this.doc;
    if (sample) this.updateNodeState(now, doc);
    const inDoc = new Set<string>();
    const work: PodWork[] = [];
    const seenLabels = new Set<string>();
    const sampled = new Set<string>();
    /** Dirs read successfully this round: known to exist, no existence check needed below. */
    const readOk = new Set<string>();
    const err = (pod: PodDecision, reason: string, message: string) =>
      errors.push({ uid: pod.uid, namespace: pod.namespace, name: pod.name, reason, message });

    for (const pod of doc?.pods ?? []) {
      if (inDoc.has(pod.uid)) {
        // Two plans for one cgroup would each start from the same stale reading.
        err(pod, 'InvalidDecision', `pod uid ${pod.uid} appears more than once; the first entry is used`);
        continue;
      }
      inDoc.add(pod.uid);
      const st: PodStatus = { uid: pod.uid, namespace: pod.namespace, name: pod.name, phase: 'Applied' };
      statuses.push(st);
      if (pod.config.policy === 'none') {
        // Hands-off: restore what we wrote (once), then never touch the pod (Koordinator rewrites it every second).
        const r = this.restorePod(pod.uid, 'policy-none');
        st.phase = r.restored ? 'Restored' : 'Skipped';
        st.reason = 'PolicyNone';
        if (r.error) {
          st.phase = 'Failed';
          err(pod, r.error.reason, r.error.message);
        }
        continue;
      }
      // Last round's pod dir is read directly; only a failed read looks for it again (an existence
      // check per pod and container every round was a tenth of the agent's syscalls).
      const podKey = `${pod.qosClass}|${pod.uid}`;
      let podDir: string | null = this.podDirs.get(podKey) ?? null;
      let podCur: CpuValues | null = podDir ? this.tryRead(podDir) : null;
      if (!podCur) {
        this.podDirs.delete(podKey);
        try {
          podDir = resolvePodDir(fs, layout, pod.qosClass, pod.uid);
        } catch (e) {
          st.phase = 'Failed';
          st.reason = 'InvalidDecision';
          st.message = (e as Error).message;
          err(pod, 'InvalidDecision', (e as Error).message);
          continue;
        }
        if (!podDir) {
          if (pod.containers.some((c) => c.running)) {
            st.phase = 'Failed';
            st.reason = 'CgroupNotFound';
            st.message = `no cgroup for pod ${pod.uid} under ${path.join(layout.cpuRoot, layout.kubepodsDir)}`;
            err(pod, 'CgroupNotFound', st.message);
            log.info('Pod cgroup not found', { pod: `${pod.namespace}/${pod.name}`, uid: pod.uid });
          } else st.phase = 'Pending';
          continue;
        }
        try {
          podCur = readCpu(fs, layout.version, podDir);
        } catch (e) {
          st.phase = 'Failed';
          st.reason = 'CgroupNotFound';
          err(pod, 'CgroupNotFound', (e as Error).message);
          continue;
        }
        this.podDirs.set(podKey, podDir);
      }
      if (!podDir) continue; // (narrowing only: a pod with values has a dir)
      readOk.add(podDir);
      const w: PodWork = { pod, podDir, podCur, containers: [], st };
      const skipped: string[] = [];
      for (const c of pod.containers) {
        if (!c.running || !c.containerID) continue;
        if (c.cpuLimitMilli === null || c.cpuLimitMilli <= 0) {
          skipped.push(`${c.name}: no CPU limit`);
          continue;
        }
        const ctrKey = `${podDir}|${c.containerID}`;
        let dir: string | null = this.ctrDirs.get(ctrKey) ?? null;
        let cur: CpuValues | null = null;
        let stat: CpuStat | null = null;
        if (dir) {
          // Read last round's dir directly; a dir that has gone is resolved again below.
          try {
            cur = readCpu(fs, layout.version, dir);
            stat = readStat(fs, layout, dir);
          } catch {
            this.ctrDirs.delete(ctrKey);
            dir = null;
          }
        }
        if (!dir) {
          try {
            dir = resolveContainerDir(fs, layout, podDir, c.containerID);
          } catch {
            dir = null;
          }
          if (dir) this.ctrDirs.set(ctrKey, dir);
        }
        if (dir && w.containers.some((x) => x.dir === dir)) {
          err(pod, 'InvalidDecision', `container ${c.name} repeats container ID ${c.containerID}`);
          continue;
        }
        if (!dir) {
          err(pod, 'CgroupNotFound', `container ${c.name} (${c.containerID}) has no cgroup in ${podDir}`);
          log.info('Container cgroup not found', { pod: `${pod.namespace}/${pod.name}`, container: c.name });
          continue;
        }
        try {
          if (!cur || !stat) {
            cur = readCpu(fs, layout.version, dir);
            stat = readStat(fs, layout, dir);
          }
          readOk.add(dir);
          const prev = this.samples.get(dir);
          let throttleRatio: number | null = null;
          let usage: number | null = null;
          if (sample) {
            if (prev) {
              const dp = stat.nrPeriods - prev.stat.nrPeriods;
              const dthr = stat.nrThrottled - prev.stat.nrThrottled;
              throttleRatio = dp > 0 ? Math.min(1, Math.max(0, dthr / dp)) : dp === 0 ? 0 : null;
              const dt = (now - prev.tMs) * 1000;
              if (stat.usageUs !== null && prev.stat.usageUs !== null && dt > 0)
                usage = Math.max(0, (stat.usageUs - prev.stat.usageUs) / dt);
              this.countStatDeltas(pod, c.name, prev.stat, stat, throttleRatio, seenLabels);
            }
            this.samples.set(dir, { tMs: now, stat });
            sampled.add(dir);
          }
          w.containers.push({
            name: c.name,
            dir,
            limitMilli: c.cpuLimitMilli,
            cur,
            stat,
            throttleRatio,
            usageCores: usage,
          });
        } catch (e) {
          err(pod, 'CgroupNotFound', `container ${c.name}: ${(e as Error).message}`);
        }
      }
      if (w.containers.length === 0) {
        // Nothing left to manage (limits removed, containers stopped): put back what we changed.
        const r = this.restorePod(pod.uid, 'unmanaged');
        st.phase = r.restored ? 'Restored' : 'Skipped';
        st.reason = skipped.length ? 'NoCpuLimit' : 'NoRunningContainers';
        if (skipped.length) st.message = skipped.join('; ');
        if (r.error) {
          st.phase = 'Failed';
          err(pod, r.error.reason, r.error.message);
        }
        continue;
      }
      // Someone else changed a value we wrote: leave it this round, make it the new baseline.
      const conflicts = this.detectConflicts([
        [podDir, podCur],
        ...w.containers.map((c) => [c.dir, c.cur] as [string, CpuValues]),
      ]);
      if (conflicts.length) {
        st.conflicts = conflicts;
        err(pod, 'Conflict', `changed by another writer since the agent wrote them: ${conflicts.join(', ')}`);
        st.phase = 'Applied';
        st.reason = 'Conflict';
        continue;
      }
      work.push(w);
    }

    // ---- the pure control round over every managed container of the node ----
    const inputs: ContainerInput[] = work.flatMap((w) =>
      w.containers.map((c) => ({
        key: c.dir,
        limitMilli: c.limitMilli,
        periodUs: c.cur.periodUs,
        currentQuotaUs: c.cur.quotaUs,
        config: w.pod.config,
        throttleRatio: c.throttleRatio,
        usageCores: c.usageCores,
      })),
    );
    const out = controlRound({
      nowMs: now,
      nodeState: this.node.state,
      excessCores: this.node.excessCores,
      containers: inputs,
      buckets: this.buckets,
    });
    if (sample) this.buckets = out.buckets;

    // ---- plan every pod, claim ownership (persisted BEFORE any write), then execute ----
    const parentCache = new Map<string, { quotaUs: number; periodUs: number } | null>();
    for (const w of work) {
      const ctrNodes: PlanNode[] = w.containers.map((c) => {
        const t = out.targets.get(c.dir)!;
        const owned = store.get(c.dir);
        return {
          dir: c.dir,
          current: c.cur,
          target: {
            quotaUs: t.quotaUs ?? owned?.fields.quota?.original,
            burstUs: t.burstUs ?? owned?.fields.burst?.original,
          },
        };
      });
      // Containers we changed that are no longer managed (left the document, lost their limit,
      // stopped running): restored within the pod's plan.
      const managed = new Set(w.containers.map((c) => c.dir));
      const staleConflicts: string[] = [];
      for (const dir of store.ownedDirs(w.pod.uid)) {
        if (managed.has(dir) || store.get(dir)?.role !== 'container') continue;
        const n = this.restoreNode(dir, staleConflicts);
        if (n) {
          ctrNodes.push(n);
          w.stale = [...(w.stale ?? []), dir];
        }
      }
      if (staleConflicts.length) w.st.conflicts = staleConflicts;
      const podOwned = store.get(w.podDir);
      const podOrig = podOwned?.fields.quota?.original ?? w.podCur.quotaUs;
      let podQuota: number | undefined;
      if (podOrig !== -1) {
        let sum = 0;
        for (const n of ctrNodes) {
          const q = n.target.quotaUs ?? n.current.quotaUs;
          if (q > 0) sum += (q * w.podCur.periodUs) / n.current.periodUs;
        }
        podQuota = Math.max(podOrig, Math.ceil(sum));
      }
      // Pod burst = Σ container bursts (Koordinator's rule); the planner clamps it to the pod quota.
      const burstEnabled = w.containers.some((c) => out.targets.get(c.dir)!.burstUs !== undefined);
      const podBurst = burstEnabled
        ? ctrNodes.reduce((sum, n) => sum + (n.target.burstUs ?? n.current.burstUs ?? 0), 0)
        : podOwned?.fields.burst?.original;
      const podNode: PlanNode = {
        dir: w.podDir,
        current: w.podCur,
        target: { quotaUs: podQuota, burstUs: podBurst },
      };
      w.nodes = [podNode, ...ctrNodes];
      w.plan = this.plan(podNode, ctrNodes, parentCache);
      this.claim(w.pod.uid, w.podDir, w.plan, w.nodes);
    }
    store.save();
    let writes = 0;
    const planned = new Map<string, Triple>();
    for (const w of work) {
      const { pod, st, plan } = w;
      if (!plan) continue;
      const res = this.execute(plan);
      writes += res.applied;
      const clamps = plan.clamps.map((c) => `${this.rel(c.dir)}:${c.field}:${c.reason}`);
      if (clamps.length) {
        st.clamps = clamps;
        err(pod, 'Clamped', clamps.join(', '));
      }
      if (plan.unsafe.length) {
        st.phase = 'Failed';
        st.reason = 'NoSafeOrder';
        err(
          pod,
          'KernelRefused',
          plan.unsafe.map((u) => `${this.rel(u.dir)}:${u.field}: ${u.reason}`).join('; '),
        );
      }
      if (!res.failure && !plan.unsafe.length) {
        plan.targets.forEach((t, dir) => {
          planned.set(dir, t);
        });
        for (const dir of w.stale ?? []) store.forget(dir);
      }
      if (res.failure) {
        st.phase = 'Failed';
        st.reason = res.failure.reason;
        st.message = res.failure.message;
        err(pod, res.failure.reason, res.failure.message);
      }
      const final = res.failure ? this.tryRead(w.podDir) : plan.targets.get(w.podDir)!;
      if (final) {
        st.periodUs = final.periodUs;
        st.quotaUs = final.quotaUs;
        if (final.burstUs !== null) st.burstUs = final.burstUs;
        const ps = this.series(`pod|${pod.uid}`, seenLabels, () => ({
          namespace: pod.namespace,
          pod: pod.name,
          uid: pod.uid,
        }));
        setGauge(ps, this.d.metrics.podQuota, final.quotaUs < 0 ? -1 : final.quotaUs / 1e6);
        if (final.burstUs !== null) setGauge(ps, this.d.metrics.podBurst, final.burstUs / 1e6);
      }
      const ratios = w.containers.map((c) => c.throttleRatio).filter((r): r is number => r !== null);
      if (ratios.length) st.throttleRatio = Math.max(...ratios);
      for (const c of w.containers) {
        const cs = this.ctrSeries(pod, c.name, seenLabels);
        const t = plan.targets.get(c.dir);
        if (t) setGauge(cs, this.d.metrics.containerQuota, t.quotaUs < 0 ? -1 : t.quotaUs / 1e6);
        const tok = out.targets.get(c.dir)?.bucketTokens;
        if (tok !== null && tok !== undefined) setGauge(cs, this.d.metrics.tokens, tok);
      }
    }

    // ---- pods that left: opt-out (not in the document) or deleted (cgroup gone) ----
    for (const uid of store.podUids()) if (!inDoc.has(uid)) this.restorePod(uid, 'opt-out');
    for (const dir of store.dirs())
      if (!readOk.has(dir) && !fs.exists(dir)) {
        store.forget(dir);
        log.info('Forgot ownership of a removed cgroup', { dir });
      }
    store.save();
    // A sample not refreshed this round is stale (pod left, policy none): a later delta would span the gap.
    if (sample)
      this.samples.forEach((_, k) => {
        if (!sampled.has(k)) this.samples.delete(k);
      });
    if (this.ctrDirs.size > 4 * (sampled.size + 16)) this.ctrDirs.clear();
    if (this.podDirs.size > inDoc.size)
      for (const k of this.podDirs.keys())
        if (!inDoc.has(k.slice(k.indexOf('|') + 1))) this.podDirs.delete(k);
    fs.sweep?.();
    this.dropStaleLabels(seenLabels);
    this.rounds++;
    end();
    this.lastReport = { errors, statuses, nodeState: this.node.state, writes, planned };
    return this.lastReport;
  }

  /** Puts back the original values of every field the agent owns for a pod. */
  restorePod(
    uid: string,
    trigger: string,
  ): { restored: boolean; conflicts: string[]; error?: { reason: string; message: string } } {
    const { fs, store, log } = this.d;
    const owned = store.dirsOfPod(uid);
    if (owned.length === 0) return { restored: false, conflicts: [] };
    const podDir = owned[0]![1].podDir;
    if (!fs.exists(podDir)) {
      for (const [dir] of owned) store.forget(dir);
      log.info('Pod cgroup gone, forgot its ownership state', { uid, podDir });
      return { restored: false, conflicts: [] };
    }
    const conflicts: string[] = [];
    const nodeFor = (dir: string) => this.restoreNode(dir, conflicts);
    const podNode = nodeFor(podDir);
    if (!podNode) return { restored: false, conflicts };
    const ctrNodes = owned
      .filter(([dir]) => dir !== podDir)
      .map(([dir]) => nodeFor(dir))
      .filter((n): n is PlanNode => n !== null);
    const plan = this.plan(podNode, ctrNodes, new Map());
    const res = this.execute(plan);
    if (res.failure || plan.unsafe.length) {
      const message = res.failure?.message ?? plan.unsafe.map((u) => u.reason).join('; ');
      log.error('Failed to restore original cgroup values', { uid, trigger, error: message });
      return {
        restored: false,
        conflicts,
        error: { reason: res.failure?.reason ?? 'KernelRefused', message },
      };
    }
    for (const [dir] of owned) store.forget(dir);
    store.save();
    this.d.metrics.restores.inc({ trigger });
    log.info('Restored original cgroup values', { uid, trigger, writes: res.applied, conflicts });
    return { restored: true, conflicts };
  }

  /** --restore-all: every pod the agent owns anything of. */
  restoreAll(): { pods: number; restored: number; failed: number; conflicts: number } {
    let restored = 0;
    let failed = 0;
    let conflicts = 0;
    const uids = [...this.d.store.podUids()];
    for (const uid of uids) {
      const r = this.restorePod(uid, 'restore-all');
      if (r.restored) restored++;
      if (r.error) failed++;
      conflicts += r.conflicts.length;
    }
    this.d.store.save();
    return { pods: uids.length, restored, failed, conflicts };
  }

  // ---- helpers ---------------------------------------------------------------------------------

  /** Plan node putting back the originals of the fields we own; foreign values are left (conflict). */
  private restoreNode(dir: string, conflicts: string[]): PlanNode | null {
    const cur = this.tryRead(dir);
    if (!cur) return null;
    const target: PlanNode['target'] = {};
    const o = this.d.store.get(dir);
    for (const f of ['quota', 'period', 'burst'] as const) {
      const of = o?.fields[f];
      if (!of) continue;
      const now = FIELD_OF(cur, f);
      if (now === null) continue;
      if (isOurs(of, now)) target[`${f}Us` as 'quotaUs'] = of.original;
      else {
        conflicts.push(`${this.rel(dir)}:${f}`);
        this.d.metrics.conflicts.inc({ field: f });
        this.d.store.forgetField(dir, f);
        this.d.log.warn('Cgroup value changed by another writer, leaving it', {
          dir,
          field: f,
          value: now,
          lastWritten: of.written,
        });
      }
    }
    return { dir, current: cur, target };
  }

  private plan(
    podNode: PlanNode,
    ctrNodes: PlanNode[],
    parentCache: Map<string, { quotaUs: number; periodUs: number } | null>,
  ): Plan {
    const { fs, layout, caps } = this.d;
    const managed = new Set(ctrNodes.map((n) => path.basename(n.dir)));
    const others: CpuValues[] = [];
    // Unmanaged children only constrain a change of the pod's own quota/period (v1 hierarchy rule).
    const podBandwidthChanges =
      (podNode.target.quotaUs !== undefined && podNode.target.quotaUs !== podNode.current.quotaUs) ||
      (podNode.target.periodUs !== undefined && podNode.target.periodUs !== podNode.current.periodUs);
    if (layout.version === 1 && podBandwidthChanges)
      for (const name of fs.listDirs(podNode.dir)) {
        if (managed.has(name)) continue;
        const v = this.tryRead(path.join(podNode.dir, name));
        if (v) others.push(v);
      }
    const plan = planWrites({
      version: layout.version,
      burstAboveQuota: caps.burstAboveQuota,
      parentLimit: layout.version === 1 ? this.parentLimit(path.dirname(podNode.dir), parentCache) : null,
      pod: podNode,
      containers: ctrNodes,
      others,
    });
    // Count a clamp when a clamped value is written, not every round it stays in force.
    for (const c of plan.clamps)
      if (
        plan.writes.some(
          (w) => w.dir === c.dir && (w.field === c.field || (w.field === 'max' && c.field !== 'burst')),
        )
      )
        this.d.metrics.clamps.inc({ reason: c.reason });
    return plan;
  }

  /** Nearest limited ancestor (v1 hierarchy rule), up to the controller root. */
  private parentLimit(
    dir: string,
    cache: Map<string, { quotaUs: number; periodUs: number } | null>,
  ): { quotaUs: number; periodUs: number } | null {
    const root = this.d.layout.cpuRoot;
    if (cache.has(dir)) return cache.get(dir)!;
    let result: { quotaUs: number; periodUs: number } | null = null;
    if (dir.startsWith(root) && dir !== root && dir.length > root.length) {
      const v = this.tryRead(dir);
      result =
        v && v.quotaUs !== -1
          ? { quotaUs: v.quotaUs, periodUs: v.periodUs }
          : this.parentLimit(path.dirname(dir), cache);
    }
    cache.set(dir, result);
    return result;
  }

  private claim(uid: string, podDir: string, plan: Plan, nodes: PlanNode[]): void {
    for (const n of nodes) {
      const t = plan.targets.get(n.dir);
      if (!t || !plan.writes.some((w) => w.dir === n.dir)) continue;
      const role = n.dir === podDir ? 'pod' : 'container';
      for (const f of ['quota', 'period', 'burst'] as const) {
        const cur = FIELD_OF(n.current, f);
        const next = FIELD_OF(t, f);
        if (cur === null || next === null || cur === next) continue;
        this.d.store.claim(n.dir, { podUid: uid, podDir, role }, f, cur, next);
      }
    }
  }

  private execute(plan: Plan): { applied: number; failure: ReturnType<typeof executePlan>['failure'] } {
    const res = executePlan(this.d.fs, this.d.layout.version, plan, this.d.log, (_w, outcome) =>
      this.d.metrics.writes.inc({ result: outcome }),
    );
    for (const w of res.applied) {
      if (w.field === 'max') {
        this.d.store.wrote(w.dir, 'quota', w.after.quotaUs);
        this.d.store.wrote(w.dir, 'period', w.after.periodUs);
      } else {
        const v = FIELD_OF(w.after, w.field);
        if (v !== null) this.d.store.wrote(w.dir, w.field, v);
      }
    }
    return { applied: res.applied.length, failure: res.failure };
  }

  private detectConflicts(dirs: Array<[string, CpuValues]>): string[] {
    const out: string[] = [];
    for (const [dir, cur] of dirs) {
      const o = this.d.store.get(dir);
      if (!o) continue;
      for (const f of ['quota', 'period', 'burst'] as const) {
        const of = o.fields[f];
        const now = FIELD_OF(cur, f);
        if (!of || now === null || isOurs(of, now)) continue;
        out.push(`${this.rel(dir)}:${f}`);
        this.d.metrics.conflicts.inc({ field: f });
        this.d.log.warn('Cgroup value changed by another writer, adopting it as the baseline', {
          dir,
          field: f,
          value: now,
          lastWritten: of.written,
        });
        this.d.store.adopt(dir, f, now);
      }
    }
    return out;
  }

  private tryRead(dir: string): CpuValues | null {
    try {
      return readCpu(this.d.fs, this.d.layout.version, dir);
    } catch {
      return null;
    }
  }

  private rel(dir: string): string {
    return path.relative(path.join(this.d.layout.cpuRoot, this.d.layout.kubepodsDir), dir) || '.';
  }

  private updateNodeState(now: number, doc: DecisionDocument | null): void {
    const { fs, layout, metrics } = this.d;
    const ps = readProcStat(this.d.procRoot);
    let result: NodeStateResult = { state: 'unknown', ratio: null, excessCores: 0 };
    if (ps && doc) {
      let reqCores = 0;
      let exclUs = 0;
      for (const p of doc.excludedPods) {
        if (p.qos !== 'BE') reqCores += p.cpuRequestMilli / 1000;
        try {
          const dir = resolvePodDir(fs, layout, p.qosClass, p.uid);
          const u = dir ? readUsageUs(fs, layout, dir) : null;
          if (u !== null) exclUs += u;
        } catch (e) {
          if (!(e instanceof LayoutError)) throw e;
        }
      }
      this.ring.push({ tMs: now, ps, exclUs });
      const win = windowMs(this.d.intervalMs);
      while (this.ring.length > 2 && now - this.ring[1]!.tMs >= win) this.ring.shift();
      const first = this.ring[0]!;
      if (this.ring.length >= 2 && now > first.tMs) {
        const cores = usageCores(first.ps, ps);
        const exclCores = Math.max(0, (exclUs - first.exclUs) / ((now - first.tMs) * 1000));
        result = nodeState({
          cpus: ps.cpus,
          nodeUsageCores: cores,
          excludedRequestCores: reqCores,
          excludedUsageCores: exclCores,
          thresholdPercent: doc.nodeConfig.sharePoolThresholdPercent,
        });
      }
    }
    this.node = result;
    for (const s of NODE_STATES) metrics.nodeState.set({ state: s }, s === result.state ? 1 : 0);
    if (result.ratio !== null) metrics.sharePoolRatio.set(result.ratio);
  }

  private countStatDeltas(
    pod: PodDecision,
    container: string,
    prev: CpuStat,
    cur: CpuStat,
    ratio: number | null,
    seen: Set<string>,
  ): void {
    const m = this.d.metrics;
    const cs = this.ctrSeries(pod, container, seen);
    if (ratio !== null) setGauge(cs, m.throttleRatio, ratio);
    const pos = (x: number) => Math.max(x, 0);
    const thr = pos(cur.throttledUs - prev.throttledUs);
    const nb = pos(cur.nrBursts - prev.nrBursts);
    const bt = pos(cur.burstUs - prev.burstUs);
    if (thr) m.throttledSeconds.inc(cs.labels, thr / 1e6);
    if (nb) m.bursts.inc(cs.labels, nb);
    if (bt) m.burstSeconds.inc(cs.labels, bt / 1e6);
  }

  /** A series, created on first use (labels built once), marked seen this round. */
  private series(key: string, seen: Set<string>, labels: () => Record<string, string>): Series {
    let s = this.labelKeys.get(key);
    if (!s) {
      s = { labels: labels(), last: new Map() };
      this.labelKeys.set(key, s);
    }
    seen.add(key);
    return s;
  }

  private ctrSeries(pod: PodDecision, container: string, seen: Set<string>): Series {
    return this.series(`ctr|${pod.uid}|${container}`, seen, () => ({
      namespace: pod.namespace,
      pod: pod.name,
      uid: pod.uid,
      container,
    }));
  }

  /** Pods and containers that went away must not linger as series. */
  private dropStaleLabels(seen: Set<string>): void {
    const m = this.d.metrics;
    this.labelKeys.forEach(({ labels: lbl }, key) => {
      if (seen.has(key)) return;
      if (key.startsWith('pod|')) {
        m.podQuota.remove(lbl);
        m.podBurst.remove(lbl);
      } else
        for (const g of [
          m.throttleRatio,
          m.containerQuota,
          m.tokens,
          m.throttledSeconds,
          m.bursts,
          m.burstSeconds,
        ])
          g.remove(lbl);
      this.labelKeys.delete(key);
    });
  }
}
