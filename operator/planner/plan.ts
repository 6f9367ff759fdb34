// The pure planner: (strategies, ConfigMap config, nodes, namespaces, pods, now) → per-node decision
// content + per-strategy status facts + pod issues to report. No I/O, no clock of its own.
//
// Precedence for a pod's effective config (highest first): pod annotation cpuburst.io/config >
// highest-priority matching CpuBurstStrategy > ConfigMap node strategy > ConfigMap cluster strategy >
// built-in defaults. Strategies of equal priority: the older one wins, then the smaller name.
import { createHash } from 'node:crypto';
import type { BurstConfig, ExcludedPod, NodeBurstConfig, PodDecision } from '../../protocol/index.js';
import type { CpuBurstStrategy, PodReason } from '../types.js';
import {
  type ClusterBurstConfig,
  DEFAULT_FULL_CONFIG,
  type FullBurstConfig,
  mergeConfig,
  type NodeStrategy,
  type PartialBurstConfig,
  toBurstConfig,
} from './config.js';
import {
  containersOf,
  cpuRequestMilli,
  exclusionOf,
  koordQos,
  optInOf,
  overrideOf,
  type PodLike,
  qosClassOf,
} from './pods.js';
import { scheduleState } from './schedule.js';
import { matchesSelector } from './selectors.js';

export interface ObjectLike {
  metadata?: { name?: string; labels?: Record<string, string> };
}

export interface PlanInput {
  strategies: CpuBurstStrategy[];
  /** Parsed ConfigMap (the last good one); null when there is none. */
  clusterConfig: ClusterBurstConfig | null;
  nodes: ObjectLike[];
  namespaces: ObjectLike[];
  pods: PodLike[];
  now: Date;
}

/** What is published for a node, minus version/generatedAt/operator (those change on every publish). */
export interface NodeContent {
  node: string;
  nodeConfig: NodeBurstConfig;
  pods: PodDecision[];
  excludedPods: ExcludedPod[];
}

export interface PlannedPod {
  uid: string;
  namespace: string;
  name: string;
  node: string;
}

export interface StrategyPlan {
  name: string;
  generation: number;
  dryRun: boolean;
  active: boolean;
  scheduleMessage: string;
  scheduleError?: string;
  nodesMatched: number;
  /** Pods this strategy decides for (dryRun: would decide for). */
  pods: PlannedPod[];
  exclusions: PodReason[];
  podsOverridden: number;
  /** Human-readable explanations of equal-priority overlaps. */
  ties: string[];
}

export interface PodIssue {
  uid: string;
  namespace: string;
  name: string;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface Plan {
  nodes: Map<string, NodeContent>;
  strategies: Map<string, StrategyPlan>;
  podIssues: PodIssue[];
  /** uid → where the pod's decision comes from, for status and Events. */
  podSources: Map<string, { node: string; source: string; strategy?: string }>;
}

interface Ranked {
  s: CpuBurstStrategy;
  name: string;
  priority: number;
  created: number;
  dryRun: boolean;
  active: boolean;
  nodeMatch: Map<string, boolean>;
  base: StrategyPlan;
}

function createdMs(s: CpuBurstStrategy): number {
  const t = s.metadata.creationTimestamp;
  const ms = t ? new Date(t).getTime() : Number.NaN;
  return Number.isFinite(ms) ? ms : Number.MAX_SAFE_INTEGER;
}

/** Negative when a ranks before (wins over) b. */
function compareRank(a: Ranked, b: Ranked): number {
  return b.priority - a.priority || a.created - b.created || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

function strategyOverrides(s: CpuBurstStrategy): PartialBurstConfig {
  const {
    policy,
    cpuBurstPercent,
    cfsQuotaBurstPercent,
    cfsQuotaBurstPeriodSeconds,
    sharePoolThresholdPercent,
  } = s.spec;
  return {
    policy,
    cpuBurstPercent,
    cfsQuotaBurstPercent,
    cfsQuotaBurstPeriodSeconds,
    sharePoolThresholdPercent,
  };
}

const byName = (a: { namespace: string; name: string }, b: { namespace: string; name: string }) =>
  a.namespace < b.namespace
    ? -1
    : a.namespace > b.namespace
      ? 1
      : a.name < b.name
        ? -1
        : a.name > b.name
          ? 1
          : 0;

/**
 * Everything of a plan that does not depend on pods: ranked strategies with schedule state and node
 * matches, node and namespace labels, the ConfigMap layers. Rebuilt when any of those change; pods
 * are then planned node by node against it (so one pod's change re-plans one node).
 */
export interface PlanContext {
  ranked: Ranked[];
  nodeLabels: Map<string, Record<string, string>>;
  nsLabels: Map<string, Record<string, string>>;
  cm: ClusterBurstConfig | null;
  clusterCfg: FullBurstConfig;
  nodeStrategyOf: Map<string, { ns: NodeStrategy; index: number } | null>;
}

export function planContext(input: Omit<PlanInput, 'pods'>): PlanContext {
  const nodeLabels = new Map<string, Record<string, string>>();
  for (const n of input.nodes) if (n.metadata?.name) nodeLabels.set(n.metadata.name, n.metadata.labels ?? {});
  const nsLabels = new Map<string, Record<string, string>>();
  for (const ns of input.namespaces)
    if (ns.metadata?.name)
      nsLabels.set(ns.metadata.name, {
        'kubernetes.io/metadata.name': ns.metadata.name,
        ...ns.metadata.labels,
      });
  const cm = input.clusterConfig;
  const clusterCfg = mergeConfig<FullBurstConfig>(DEFAULT_FULL_CONFIG, cm?.clusterStrategy);
  const ranked: Ranked[] = input.strategies
    .filter((s) => s?.metadata?.name && s.spec)
    .map((s) => {
      const sched = scheduleState(s.spec.schedule, input.now);
      const nodeMatch = new Map<string, boolean>();
      let nodesMatched = 0;
      for (const [node, labels] of nodeLabels) {
        const m = matchesSelector(s.spec.nodeSelector, labels);
        nodeMatch.set(node, m);
        if (m) nodesMatched++;
      }
      const base: StrategyPlan = {
        name: s.metadata.name,
        generation: s.metadata.generation ?? 0,
        dryRun: s.spec.dryRun === true,
        active: sched.active,
        scheduleMessage: sched.message,
        nodesMatched,
        pods: [],
        exclusions: [],
        podsOverridden: 0,
        ties: [],
      };
      if (sched.error) base.scheduleError = sched.error;
      return {
        s,
        name: s.metadata.name,
        priority: s.spec.priority ?? 0,
        created: createdMs(s),
        dryRun: base.dryRun,
        active: sched.active,
        nodeMatch,
        base,
      };
    })
    .sort(compareRank);
  const nodeStrategyOf = new Map<string, { ns: NodeStrategy; index: number } | null>();
  for (const [node, labels] of nodeLabels) {
    const idx = cm ? cm.nodeStrategies.findIndex((ns) => matchesSelector(ns.nodeSelector, labels)) : -1;
    nodeStrategyOf.set(node, idx >= 0 ? { ns: cm!.nodeStrategies[idx]!, index: idx } : null);
  }
  return { ranked, nodeLabels, nsLabels, cm, clusterCfg, nodeStrategyOf };
}

interface StrategyPart {
  pods: PlannedPod[];
  exclusions: PodReason[];
  overridden: number;
}

/** One node's share of a plan. */
export interface NodePart {
  content: NodeContent;
  strategies: Map<string, StrategyPart>;
  /** winner → loser → pods decided at equal priority. */
  ties: Map<string, Map<string, number>>;
  podIssues: PodIssue[];
}

// 550,000 decisions repeat a handful of configs and source strings: share one object per distinct
// value (decisions are never mutated once planned). Bounded: annotations could make them many.
const configs = new Map<string, BurstConfig>();
const strings = new Map<string, string>();
const INTERN_MAX = 10_000;

function internConfig(c: BurstConfig): BurstConfig {
  const k = `${c.policy}|${c.cpuBurstPercent}|${c.cfsQuotaBurstPercent}|${c.cfsQuotaBurstPeriodSeconds}`;
  const hit = configs.get(k);
  if (hit) return hit;
  if (configs.size >= INTERN_MAX) configs.clear();
  configs.set(k, c);
  return c;
}

function intern(s: string): string {
  const hit = strings.get(s);
  if (hit !== undefined) return hit;
  if (strings.size >= INTERN_MAX) strings.clear();
  strings.set(s, s);
  return s;
}

/** The winning strategy named in a decision's source ("CpuBurstStrategy/x", "annotation (over CpuBurstStrategy/x)"). */
function strategyOfSource(source: string): string | undefined {
  return /CpuBurstStrategy\/([^)]+)\)?$/.exec(source)?.[1];
}

export function planNode(ctx: PlanContext, node: string, pods: Iterable<PodLike>): NodePart {
  const content: NodeContent = {
    node,
    nodeConfig: { sharePoolThresholdPercent: 0 },
    pods: [],
    excludedPods: [],
  };
  const part: NodePart = {
    content,
    strategies: new Map(),
    ties: new Map(),
    podIssues: [],
  };
  const sp = (r: Ranked): StrategyPart => {
    let x = part.strategies.get(r.name);
    if (!x) {
      x = { pods: [], exclusions: [], overridden: 0 };
      part.strategies.set(r.name, x);
    }
    return x;
  };
  const { cm, clusterCfg } = ctx;
  const nodeStrategy = ctx.nodeStrategyOf.get(node) ?? null;
  const cmCfg = cm ? mergeConfig<FullBurstConfig>(clusterCfg, nodeStrategy?.ns) : null;
  const candidates = ctx.ranked.filter((r) => r.active && r.nodeMatch.get(node));
  let nodeWinner: Ranked | undefined;
  const anyDryRun = candidates.some((r) => r.dryRun);
  const excludeAll = (
    matching: Ranked[],
    md: { namespace?: string; name?: string },
    reason: string,
    message: string,
  ) => {
    for (const r of matching)
      sp(r).exclusions.push({ namespace: md.namespace!, name: md.name!, node, reason, message });
  };
  // Equal-priority overlaps between the top two; the set with dryRun strategies only counts ties
  // that involve one (the live set already counted the others).
  const countTie = (set: Ranked[], live: boolean) => {
    const [w, l] = set;
    if (!w || !l || w.priority !== l.priority || (!live && !w.dryRun && !l.dryRun)) return;
    let m = part.ties.get(w.name);
    if (!m) {
      m = new Map();
      part.ties.set(w.name, m);
    }
    m.set(l.name, (m.get(l.name) ?? 0) + 1);
  };

  for (const pod of pods) {
    const md = pod.metadata ?? {};
    if (pod.spec?.nodeName !== node || !md.uid || !md.name || !md.namespace) continue;
    const ident = { uid: md.uid, namespace: md.namespace, name: md.name };
    const exclusion = exclusionOf(pod);

    // Pods outside the share pool are reported for node-state accounting whatever else happens.
    const kq = koordQos(pod);
    if ((kq === 'LSR' || kq === 'LSE' || kq === 'BE') && exclusion?.reason === 'QoSClassExcluded')
      content.excludedPods.push({
        ...ident,
        qos: kq,
        qosClass: qosClassOf(pod),
        cpuRequestMilli: cpuRequestMilli(pod),
      });

    const labels = md.labels ?? {};
    let nsl: Record<string, string> | undefined;
    const matching: Ranked[] = [];
    for (const r of candidates) {
      if (r.s.spec.namespaceSelector) {
        nsl ??= ctx.nsLabels.get(md.namespace) ?? { 'kubernetes.io/metadata.name': md.namespace };
        if (!matchesSelector(r.s.spec.namespaceSelector, nsl)) continue;
      }
      if (!matchesSelector(r.s.spec.podSelector, labels)) continue;
      matching.push(r);
    }
    const real = anyDryRun ? matching.filter((r) => !r.dryRun) : matching;
    const winner = real[0];
    const shadow = matching[0]; // what would win if dryRun strategies were live
    const exclude = (reason: string, message: string) => excludeAll(matching, md, reason, message);

    const optIn = optInOf(pod);
    if (optIn.value === 'invalid')
      part.podIssues.push({
        ...ident,
        type: 'Warning',
        reason: 'InvalidBurstConfig',
        message: `annotation cpuburst.io/enabled must be "true" or "false", got ${JSON.stringify(optIn.raw)}; ignored`,
      });
    if (optIn.value === 'false') {
      exclude('OptedOut', 'annotation cpuburst.io/enabled is "false"');
      continue;
    }
    const selected =
      optIn.value === 'true' || matching.length > 0 || (cmCfg !== null && cmCfg.policy !== 'none');
    if (!selected) continue;

    const override = overrideOf(pod);
    if (override.present && !override.ok) {
      part.podIssues.push({
        ...ident,
        type: 'Warning',
        reason: 'InvalidBurstConfig',
        message: `${override.error}; no decision published for this pod`,
      });
      exclude('InvalidAnnotation', override.error);
      continue;
    }
    if (exclusion) {
      exclude(exclusion.reason, exclusion.message);
      if (
        optIn.value === 'true' &&
        exclusion.reason !== 'PodTerminated' &&
        exclusion.reason !== 'PodTerminating'
      )
        part.podIssues.push({
          ...ident,
          type: 'Normal',
          reason: 'BurstExcluded',
          message: exclusion.message,
        });
      continue;
    }

    // Strategy bookkeeping: who decides, who is overridden, equal-priority ties.
    for (const r of matching) {
      const top = r.dryRun ? shadow : winner;
      if (r === top) sp(r).pods.push({ uid: ident.uid, namespace: ident.namespace, name: ident.name, node });
      else sp(r).overridden++;
    }
    if (matching.length > 1) {
      countTie(real, true);
      if (anyDryRun) countTie(matching, false);
    }

    if (!winner && optIn.value !== 'true' && (cmCfg === null || cmCfg.policy === 'none')) continue; // only dryRun matched
    const layers: PartialBurstConfig[] = [];
    let source = 'default';
    if (cm) {
      layers.push(cm.clusterStrategy);
      source = 'ConfigMap/clusterStrategy';
      if (nodeStrategy) {
        layers.push(nodeStrategy.ns);
        source = `ConfigMap/nodeStrategies/${nodeStrategy.ns.name ?? nodeStrategy.index}`;
      }
    }
    if (winner) {
      layers.push(strategyOverrides(winner.s));
      source = `CpuBurstStrategy/${winner.name}`;
      if (!nodeWinner || compareRank(winner, nodeWinner) < 0) nodeWinner = winner;
    }
    if (override.present && override.ok) {
      layers.push(override.value);
      source = `annotation (over ${source})`;
    }
    const cfg = mergeConfig<FullBurstConfig>(DEFAULT_FULL_CONFIG, ...layers);
    // An explicit literal (not a spread): 550,000 of these stay in memory, in the compact shape.
    content.pods.push({
      uid: ident.uid,
      namespace: ident.namespace,
      name: ident.name,
      qosClass: qosClassOf(pod),
      config: internConfig(toBurstConfig(cfg)),
      source: intern(source),
      containers: containersOf(pod),
    });
  }

  const cfg = mergeConfig<FullBurstConfig>(
    clusterCfg,
    nodeStrategy?.ns,
    nodeWinner ? strategyOverrides(nodeWinner.s) : undefined,
  );
  content.nodeConfig = { sharePoolThresholdPercent: cfg.sharePoolThresholdPercent };
  content.pods.sort(byName);
  content.excludedPods.sort(byName);
  return part;
}

/** Combines per-node parts (in any order) into the plan: nodes, strategy totals, ties, issues. */
export function mergeParts(ctx: PlanContext, parts: Iterable<NodePart>): Plan {
  const strategies = new Map<string, StrategyPlan>();
  for (const r of ctx.ranked)
    strategies.set(r.name, { ...r.base, pods: [], exclusions: [], ties: [], podsOverridden: 0 });
  const nodes = new Map<string, NodeContent>();
  const podIssues: PodIssue[] = [];
  const ties = new Map<string, Map<string, number>>();
  for (const part of parts) {
    nodes.set(part.content.node, part.content);
    for (const [name, x] of part.strategies) {
      const p = strategies.get(name);
      if (!p) continue;
      for (const pod of x.pods) p.pods.push(pod);
      for (const e of x.exclusions) p.exclusions.push(e);
      p.podsOverridden += x.overridden;
    }
    for (const [w, losers] of part.ties) {
      let m = ties.get(w);
      if (!m) {
        m = new Map();
        ties.set(w, m);
      }
      for (const [l, n] of losers) m.set(l, (m.get(l) ?? 0) + n);
    }
    for (const i of part.podIssues) podIssues.push(i);
  }
  const rankedByName = new Map(ctx.ranked.map((r) => [r.name, r]));
  for (const [wName, losers] of [...ties].sort(([a], [b]) => (a < b ? -1 : 1)))
    for (const [lName, count] of [...losers].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const w = rankedByName.get(wName)!;
      const l = rankedByName.get(lName)!;
      const older = w.created !== l.created;
      strategies
        .get(wName)!
        .ties.push(
          `won ${count} pod(s) over ${lName} at equal priority ${w.priority} because ${older ? 'it is older' : 'its name sorts first'}`,
        );
      strategies
        .get(lName)!
        .ties.push(
          `lost ${count} pod(s) to ${wName} at equal priority ${w.priority} because ${older ? `${wName} is older` : `${wName} sorts first by name`}`,
        );
    }
  for (const p of strategies.values()) {
    p.pods.sort(byName);
    p.exclusions.sort(byName);
  }
  // podSources is derived from the decisions on first use (nothing on the hot path reads it).
  let sources: Plan['podSources'] | undefined;
  const out = { nodes, strategies, podIssues } as Plan;
  Object.defineProperty(out, 'podSources', {
    enumerable: true,
    get: () => {
      if (!sources) {
        sources = new Map();
        for (const [node, c] of nodes)
          for (const d of c.pods) {
            const src: { node: string; source: string; strategy?: string } = { node, source: d.source };
            const strategy = strategyOfSource(d.source);
            if (strategy) src.strategy = strategy;
            sources.set(d.uid, src);
          }
      }
      return sources;
    },
  });
  return out;
}

export function plan(input: PlanInput): Plan {
  const ctx = planContext(input);
  const byNode = new Map<string, PodLike[]>();
  for (const node of ctx.nodeLabels.keys()) byNode.set(node, []);
  for (const pod of input.pods) {
    const n = pod.spec?.nodeName;
    if (n) byNode.get(n)?.push(pod);
  }
  return mergeParts(
    ctx,
    [...byNode].map(([node, pods]) => planNode(ctx, node, pods)),
  );
}

const contentKeys = new WeakMap<NodeContent, string>();

/**
 * A digest of the publishable content, for "did this node change" checks (a digest, not the JSON
 * itself: 5,000 nodes × 110 pods would otherwise keep ~200 MB of keys). Memoised per content object,
 * which the planner never mutates once planNode returned it.
 */
export function contentKey(c: NodeContent): string {
  let k = contentKeys.get(c);
  if (k === undefined) {
    k = createHash('sha1')
      .update(JSON.stringify([c.nodeConfig, c.pods, c.excludedPods]))
      .digest('base64');
    contentKeys.set(c, k);
  }
  return k;
}
