// The pure write planner. Input: current and target (period, quota, burst) of a pod cgroup and its
// containers. Output: writes in an order the kernel accepts at EVERY intermediate step, targets
// clamped (with reasons) to what the kernel would refuse, no-op writes skipped.
//
// Kernel rules modelled (mainline tg_set_cfs_bandwidth / tg_cfs_schedulable_down):
//   1 ms ≤ period ≤ 1 s; quota = unlimited or quota ≥ 1 ms; burst ≥ 0;
//   limited quota: burst ≤ quota (unless the kernel accepts more) and burst + quota ≤ MAX;
//   v1 only: a limited child's quota/period ≤ its nearest limited ancestor's (an unlimited child inherits).
// Order: 1. lower bursts  2. lower quotas (and containers going unlimited), children before the
// pod  3. raise quotas, pod before children  4. raise bursts. Every candidate write is checked against the model before it is
// emitted; a write with no safe position is dropped and reported, never emitted.
import type { CgroupVersion } from './layout.js';
import { type CpuValues, FILES, formatCpuMax } from './read.js';

/** max_cfs_runtime: the kernel's MAX_BW in µs (~203 days). */
export const MAX_QUOTA_US = 2 ** 44 - 1;
export const MIN_QUOTA_US = 1000;
export const MIN_PERIOD_US = 1000;
export const MAX_PERIOD_US = 1_000_000;

export interface Triple {
  periodUs: number;
  /** -1 = unlimited */
  quotaUs: number;
  /** null = this cgroup has no burst file */
  burstUs: number | null;
}

export interface PlanNode {
  dir: string;
  current: CpuValues;
  /** Fields left undefined keep their current value. */
  target: { periodUs?: number; quotaUs?: number; burstUs?: number };
}

export interface PlanInput {
  version: CgroupVersion;
  /** Alibaba Cloud Linux accepts burst > quota; mainline does not. */
  burstAboveQuota: boolean;
  /** Effective limit of the pod's parent chain (nearest limited ancestor), null = unlimited. */
  parentLimit: { quotaUs: number; periodUs: number } | null;
  pod: PlanNode;
  containers: PlanNode[];
  /** Children of the pod the agent does not manage (e.g. the sandbox), for the v1 hierarchy rule. */
  others?: CpuValues[];
}

export type WriteField = 'quota' | 'period' | 'burst' | 'max';

export interface PlannedWrite {
  dir: string;
  file: string;
  field: WriteField;
  value: string;
  /** The cgroup's full triple after this write. */
  after: Triple;
}

export interface Clamp {
  dir: string;
  field: 'quota' | 'period' | 'burst';
  requested: number;
  applied: number;
  reason: string;
}

export interface Plan {
  writes: PlannedWrite[];
  clamps: Clamp[];
  /** Targets after clamping, per dir. */
  targets: Map<string, Triple>;
  /** Writes the planner refused to emit because no kernel-safe position existed. */
  unsafe: Array<{ dir: string; field: WriteField; reason: string }>;
}

interface Ratio {
  q: number;
  p: number;
}

/** a ≤ b for quota/period ratios, exact in integers (values stay far below 2^53). */
function ratioLE(a: Ratio, b: Ratio): boolean {
  return a.q * b.p <= b.q * a.p;
}

/** Why the kernel would refuse this triple on its own, or null. */
export function tripleError(t: Triple, burstAboveQuota: boolean): string | null {
  if (!Number.isInteger(t.periodUs) || t.periodUs < MIN_PERIOD_US || t.periodUs > MAX_PERIOD_US)
    return `period ${t.periodUs} outside [${MIN_PERIOD_US}, ${MAX_PERIOD_US}]`;
  if (
    t.quotaUs !== -1 &&
    (!Number.isInteger(t.quotaUs) || t.quotaUs < MIN_QUOTA_US || t.quotaUs > MAX_QUOTA_US)
  )
    return `quota ${t.quotaUs} outside [${MIN_QUOTA_US}, ${MAX_QUOTA_US}]`;
  if (t.burstUs !== null) {
    if (!Number.isInteger(t.burstUs) || t.burstUs < 0 || t.burstUs > MAX_QUOTA_US)
      return `burst ${t.burstUs} invalid`;
    if (t.quotaUs !== -1 && !burstAboveQuota && t.burstUs > t.quotaUs)
      return `burst ${t.burstUs} > quota ${t.quotaUs}`;
    if (t.quotaUs !== -1 && t.burstUs + t.quotaUs > MAX_QUOTA_US)
      return 'burst + quota above the kernel maximum';
  }
  return null;
}

const same = (a: Triple, b: Triple) =>
  a.periodUs === b.periodUs && a.quotaUs === b.quotaUs && a.burstUs === b.burstUs;

const ratioOf = (t: Triple): Ratio | null => (t.quotaUs === -1 ? null : { q: t.quotaUs, p: t.periodUs });

/**
 * The planner. Most rounds change nothing (every target equals the value in place): that case is
 * answered without building the simulation (the agent plans every pod every second).
 */
export function planWrites(input: PlanInput): Plan {
  return steadyPlan(input) ?? planWritesFull(input);
}

const unchanged = (n: PlanNode): boolean =>
  (n.target.periodUs === undefined || n.target.periodUs === n.current.periodUs) &&
  (n.target.quotaUs === undefined || n.target.quotaUs === n.current.quotaUs) &&
  (n.target.burstUs === undefined || n.target.burstUs === n.current.burstUs);

/**
 * The empty plan when no target differs from the current value and the current values already pass
 * every rule the full planner checks (so it would clamp nothing and emit nothing); else null.
 */
export function steadyPlan(input: PlanInput): Plan | null {
  const { pod, containers, version, burstAboveQuota } = input;
  if (!unchanged(pod) || tripleError(pod.current, burstAboveQuota) !== null) return null;
  for (const c of containers)
    if (!unchanged(c) || tripleError(c.current, burstAboveQuota) !== null) return null;
  if (version === 1) {
    const parent = input.parentLimit ? { q: input.parentLimit.quotaUs, p: input.parentLimit.periodUs } : null;
    const podR = ratioOf(pod.current);
    if (podR && parent && !ratioLE(podR, parent)) return null;
    const eff = podR ?? parent;
    if (eff) {
      for (const c of containers) {
        const r = ratioOf(c.current);
        if (r && !ratioLE(r, eff)) return null;
      }
      for (const o of input.others ?? []) {
        const r = ratioOf(o as Triple);
        if (r && !ratioLE(r, eff)) return null;
      }
    }
  }
  const targets = new Map<string, Triple>([[pod.dir, { ...pod.current }]]);
  for (const c of containers) targets.set(c.dir, { ...c.current });
  return { writes: [], clamps: [], targets, unsafe: [] };
}

/** The full planner (clamp, simulate, order); planWrites uses it unless nothing changes. */
export function planWritesFull(input: PlanInput): Plan {
  const { version, burstAboveQuota } = input;
  const clamps: Clamp[] = [];
  const unsafe: Plan['unsafe'] = [];
  const writes: PlannedWrite[] = [];
  const podDir = input.pod.dir;
  const nodes = [input.pod, ...input.containers];
  const others: Triple[] = (input.others ?? []).map((o) => ({ ...o }));

  // ---- 1. clamp targets to what the kernel accepts --------------------------------------------
  const targets = new Map<string, Triple>();
  const clampTarget = (node: PlanNode, parent: Ratio | null, minRatio: Ratio | null): Triple => {
    const cur = node.current;
    let periodUs = node.target.periodUs ?? cur.periodUs;
    let quotaUs = node.target.quotaUs ?? cur.quotaUs;
    let burstUs: number | null = cur.burstUs === null ? null : (node.target.burstUs ?? cur.burstUs);
    const clamp = (field: Clamp['field'], requested: number, applied: number, reason: string) => {
      clamps.push({ dir: node.dir, field, requested, applied, reason });
      return applied;
    };
    if (cur.burstUs === null && (node.target.burstUs ?? 0) > 0)
      clamp('burst', node.target.burstUs!, 0, 'BurstUnsupported');
    if (periodUs < MIN_PERIOD_US) periodUs = clamp('period', periodUs, MIN_PERIOD_US, 'PeriodBelowMinimum');
    if (periodUs > MAX_PERIOD_US) periodUs = clamp('period', periodUs, MAX_PERIOD_US, 'PeriodAboveMaximum');
    periodUs = Math.round(periodUs);
    if (quotaUs < 0) quotaUs = -1;
    else {
      quotaUs = Math.round(quotaUs);
      if (quotaUs < MIN_QUOTA_US) quotaUs = clamp('quota', quotaUs, MIN_QUOTA_US, 'QuotaBelowMinimum');
      if (quotaUs > MAX_QUOTA_US) quotaUs = clamp('quota', quotaUs, MAX_QUOTA_US, 'QuotaAboveMaximum');
      // v1: the kernel refuses a child above its parent (v2 silently caps, nothing to order).
      if (version === 1 && parent && !ratioLE({ q: quotaUs, p: periodUs }, parent)) {
        const capped = Math.floor((parent.q * periodUs) / parent.p);
        quotaUs = clamp('quota', quotaUs, Math.max(capped, MIN_QUOTA_US), 'AboveParentQuota');
      }
      if (version === 1 && minRatio && !ratioLE(minRatio, { q: quotaUs, p: periodUs })) {
        quotaUs = clamp('quota', quotaUs, Math.ceil((minRatio.q * periodUs) / minRatio.p), 'BelowChildQuota');
      }
    }
    if (burstUs !== null) {
      burstUs = Math.round(burstUs);
      if (burstUs < 0) burstUs = clamp('burst', burstUs, 0, 'BurstNegative');
      if (quotaUs !== -1 && !burstAboveQuota && burstUs > quotaUs)
        burstUs = clamp('burst', burstUs, quotaUs, 'BurstAboveQuota');
      if (quotaUs !== -1 && burstUs + quotaUs > MAX_QUOTA_US)
        burstUs = clamp('burst', burstUs, MAX_QUOTA_US - quotaUs, 'BurstAboveMaximum');
    }
    return { periodUs, quotaUs, burstUs };
  };
  const parentRatio: Ratio | null = input.parentLimit
    ? { q: input.parentLimit.quotaUs, p: input.parentLimit.periodUs }
    : null;
  // Unmanaged limited children force the pod's ratio up to theirs.
  let maxOther: Ratio | null = null;
  for (const o of others) {
    const r = ratioOf(o);
    if (r && (!maxOther || !ratioLE(r, maxOther))) maxOther = r;
  }
  const podTarget = clampTarget(input.pod, parentRatio, maxOther);
  targets.set(podDir, podTarget);
  const podEff = ratioOf(podTarget) ?? parentRatio;
  for (const c of input.containers) targets.set(c.dir, clampTarget(c, podEff, null));

  // ---- 2. simulate and emit in a safe order ----------------------------------------------------
  const sim = new Map<string, Triple>(nodes.map((n) => [n.dir, { ...n.current }]));
  const childDirs = input.containers.map((c) => c.dir);

  const hierarchyOk = (dir: string, t: Triple): boolean => {
    if (version !== 1) return true;
    const r = ratioOf(t);
    if (dir === podDir) {
      if (r && parentRatio && !ratioLE(r, parentRatio)) return false;
      const eff = r ?? parentRatio;
      if (!eff) return true;
      for (const cd of childDirs) {
        const cr = ratioOf(sim.get(cd)!);
        if (cr && !ratioLE(cr, eff)) return false;
      }
      for (const o of others) {
        const or = ratioOf(o);
        if (or && !ratioLE(or, eff)) return false;
      }
      return true;
    }
    const eff = ratioOf(sim.get(podDir)!) ?? parentRatio;
    return !r || !eff || ratioLE(r, eff);
  };

  const check = (dir: string, t: Triple): string | null =>
    tripleError(t, burstAboveQuota) ?? (hierarchyOk(dir, t) ? null : 'child quota above parent quota');

  /** Applies one field change if safe; returns false (and records why) if the kernel would refuse it. */
  const emit = (dir: string, field: WriteField, next: Triple, dryRun = false): boolean => {
    const cur = sim.get(dir)!;
    if (same(cur, next)) return true;
    const err = check(dir, next);
    if (err) {
      if (!dryRun) unsafe.push({ dir, field, reason: err });
      return false;
    }
    if (dryRun) return true;
    sim.set(dir, next);
    let file: string;
    let value: string;
    if (field === 'burst') {
      file = version === 1 ? FILES[1].burst : FILES[2].burst;
      value = String(next.burstUs);
    } else if (field === 'max') {
      file = FILES[2].max;
      value = formatCpuMax(next.quotaUs, next.periodUs);
    } else {
      file = FILES[1][field];
      value = String(field === 'quota' ? next.quotaUs : next.periodUs);
    }
    writes.push({ dir, file, field, value, after: { ...next } });
    return true;
  };

  const lowerBurst = (dir: string) => {
    const cur = sim.get(dir)!;
    const t = targets.get(dir)!;
    if (cur.burstUs !== null && t.burstUs !== null && t.burstUs < cur.burstUs)
      emit(dir, 'burst', { ...cur, burstUs: t.burstUs });
  };
  const raiseBurst = (dir: string) => {
    const cur = sim.get(dir)!;
    const t = targets.get(dir)!;
    if (cur.burstUs !== null && t.burstUs !== null && t.burstUs > cur.burstUs)
      emit(dir, 'burst', { ...cur, burstUs: t.burstUs });
  };
  const setBandwidth = (dir: string) => {
    const cur = sim.get(dir)!;
    const t = targets.get(dir)!;
    if (cur.quotaUs === t.quotaUs && cur.periodUs === t.periodUs) return;
    const full = { ...cur, quotaUs: t.quotaUs, periodUs: t.periodUs };
    if (version === 2) {
      emit(dir, 'max', full);
      return;
    }
    if (cur.periodUs === t.periodUs) return void emit(dir, 'quota', full);
    if (cur.quotaUs === t.quotaUs) return void emit(dir, 'period', full);
    // Both change on v1: two writes; use the order whose intermediate state is valid.
    const viaQuota = { ...cur, quotaUs: t.quotaUs };
    const viaPeriod = { ...cur, periodUs: t.periodUs };
    if (emit(dir, 'quota', viaQuota, true) && check(dir, full) === null) {
      emit(dir, 'quota', viaQuota);
      emit(dir, 'period', full);
    } else if (emit(dir, 'period', viaPeriod, true)) {
      emit(dir, 'period', viaPeriod);
      emit(dir, 'quota', full);
    } else unsafe.push({ dir, field: 'period', reason: 'no kernel-safe order for the period change' });
  };
  const lowers = (dir: string): boolean => {
    const cur = sim.get(dir)!;
    const t = targets.get(dir)!;
    const cr = ratioOf(cur);
    const tr = ratioOf(t);
    if (!tr) return false; // becoming (or staying) unlimited never lowers
    if (!cr) return true;
    if (!ratioLE(cr, tr)) return true;
    return ratioLE(tr, cr) && t.quotaUs < cur.quotaUs;
  };

  for (const dir of [...childDirs, podDir]) lowerBurst(dir);
  // A container becoming unlimited drops its own constraint (it has no children), so it goes early
  // too: before a pod that becomes limited.
  const early = (dir: string) => lowers(dir) || (dir !== podDir && targets.get(dir)!.quotaUs === -1);
  for (const dir of [...childDirs, podDir]) if (early(dir)) setBandwidth(dir);
  for (const dir of [podDir, ...childDirs]) if (!early(dir)) setBandwidth(dir);
  for (const dir of [podDir, ...childDirs]) raiseBurst(dir);

  return { writes, clamps, targets, unsafe };
}

/** Applies planned writes to a triple map (for callers that keep a model, e.g. tests). */
export function finalValues(input: PlanInput, plan: Plan): Map<string, Triple> {
  const out = new Map<string, Triple>([input.pod, ...input.containers].map((n) => [n.dir, { ...n.current }]));
  for (const w of plan.writes) out.set(w.dir, { ...w.after });
  return out;
}
