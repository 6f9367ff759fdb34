// The pure planner: (strategies, ConfigMap config, nodes, namespaces, pods, now) → per-node decision
// content + per-strategy status facts + pod issues to report. No I/O, no clock of its own.
//
// Precedence for a pod's effective config (highest first): pod annotation cpuburst.io/config >
// highest-priority matching CpuBurstStrategy > ConfigMap node strategy > ConfigMap cluster strategy >
// built-in defaults. Strategies of equal priority: the older one wins, then the smaller name.
import type { ExcludedPod, NodeBurstConfig, PodDecision } from '../../protocol/index.js';
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
  plan: StrategyPlan;
  nodeMatch: Map<string, boolean>;
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

function tieReason(w: Ranked, l: Ranked): string {
  return w.created !== l.created ? 'it is older' : 'its name sorts first';
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

export function plan(input: PlanInput): Plan {
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

  // Strategies in rank order, with their schedule state and node matches.
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
      const p: StrategyPlan = {
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
      if (sched.error) p.scheduleError = sched.error;
      return {
        s,
        name: s.metadata.name,
        priority: s.spec.priority ?? 0,
        created: createdMs(s),
        dryRun: p.dryRun,
        plan: p,
        nodeMatch,
      };
    })
    .sort(compareRank);

  const nodes = new Map<string, NodeContent>();
  const nodeStrategyOf = new Map<string, { ns: NodeStrategy; index: number } | null>();
  const nodeWinner = new Map<string, Ranked>();
  for (const node of nodeLabels.keys()) {
    nodes.set(node, { node, nodeConfig: { sharePoolThresholdPercent: 0 }, pods: [], excludedPods: [] });
    const idx = cm
      ? cm.nodeStrategies.findIndex((ns) => matchesSelector(ns.nodeSelector, nodeLabels.get(node)))
      : -1;
    nodeStrategyOf.set(node, idx >= 0 ? { ns: cm!.nodeStrategies[idx]!, index: idx } : null);
  }

  const podIssues: PodIssue[] = [];
  const podSources = new Map<string, { node: string; source: string; strategy?: string }>();
  // Equal-priority overlaps: winner → loser → count, reported in both strategies' conditions.
  const ties = new Map<string, Map<string, { count: number; w: Ranked; l: Ranked }>>();

  for (const pod of input.pods) {
    const md = pod.metadata ?? {};
    const node = pod.spec?.nodeName;
    if (!node || !md.uid || !md.name || !md.namespace) continue;
    const content = nodes.get(node);
    if (!content) continue; // node not (yet) known: nothing to publish to
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
    const nsl = nsLabels.get(md.namespace) ?? { 'kubernetes.io/metadata.name': md.namespace };
    const matching: Ranked[] = [];
    for (const r of ranked) {
      if (!r.plan.active || !r.nodeMatch.get(node)) continue;
      if (!matchesSelector(r.s.spec.namespaceSelector, nsl)) continue;
      if (!matchesSelector(r.s.spec.podSelector, labels)) continue;
      matching.push(r);
    }
    const real = matching.filter((r) => !r.dryRun);
    const winner = real[0];
    const shadow = matching[0]; // what would win if dryRun strategies were live
    const exclude = (reason: string, message: string) => {
      for (const r of matching) r.plan.exclusions.push({ ...ident, node, reason, message });
    };

    const optIn = optInOf(pod);
    if (optIn.value === 'invalid')
      podIssues.push({
        ...ident,
        type: 'Warning',
        reason: 'InvalidBurstConfig',
        message: `annotation cpuburst.io/enabled must be "true" or "false", got ${JSON.stringify(optIn.raw)}; ignored`,
      });
    if (optIn.value === 'false') {
      exclude('OptedOut', 'annotation cpuburst.io/enabled is "false"');
      continue;
    }
    const nodeStrategy = nodeStrategyOf.get(node) ?? null;
    const cmCfg = cm ? mergeConfig<FullBurstConfig>(clusterCfg, nodeStrategy?.ns) : null;
    const selected =
      optIn.value === 'true' || matching.length > 0 || (cmCfg !== null && cmCfg.policy !== 'none');
    if (!selected) continue;

    const override = overrideOf(pod);
    if (override.present && !override.ok) {
      podIssues.push({
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
        podIssues.push({ ...ident, type: 'Normal', reason: 'BurstExcluded', message: exclusion.message });
      continue;
    }

    // Strategy bookkeeping: who decides, who is overridden, equal-priority ties.
    for (const [set, top] of [
      [real, winner],
      [matching.filter((r) => r.dryRun), shadow],
    ] as const) {
      for (const r of set) {
        if (r === top) r.plan.pods.push({ ...ident, node });
        else r.plan.podsOverridden++;
      }
    }
    for (const set of [real, matching]) {
      const [w, l] = set;
      if (w && l && w.priority === l.priority && (set === real || w.dryRun || l.dryRun)) {
        const m = ties.get(w.name) ?? new Map();
        ties.set(w.name, m);
        const t = m.get(l.name) ?? { count: 0, w, l };
        t.count++;
        m.set(l.name, t);
      }
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
      const prev = nodeWinner.get(node);
      if (!prev || compareRank(winner, prev) < 0) nodeWinner.set(node, winner);
    }
    const strategySource = source;
    if (override.present && override.ok) {
      layers.push(override.value);
      source = `annotation (over ${strategySource})`;
    }
    const cfg = mergeConfig<FullBurstConfig>(DEFAULT_FULL_CONFIG, ...layers);
    content.pods.push({
      ...ident,
      qosClass: qosClassOf(pod),
      config: toBurstConfig(cfg),
      source,
      containers: containersOf(pod),
    });
    const src: { node: string; source: string; strategy?: string } = { node, source };
    if (winner) src.strategy = winner.name;
    podSources.set(md.uid, src);
  }

  for (const [node, content] of nodes) {
    const ns = nodeStrategyOf.get(node)?.ns;
    const w = nodeWinner.get(node);
    const cfg = mergeConfig<FullBurstConfig>(clusterCfg, ns, w ? strategyOverrides(w.s) : undefined);
    content.nodeConfig = { sharePoolThresholdPercent: cfg.sharePoolThresholdPercent };
    const byName = (a: { namespace: string; name: string }, b: { namespace: string; name: string }) =>
      a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name);
    content.pods.sort(byName);
    content.excludedPods.sort(byName);
  }

  const byName = new Map(ranked.map((r) => [r.name, r]));
  for (const [wName, losers] of ties)
    for (const [lName, t] of losers) {
      const why = tieReason(t.w, t.l);
      byName
        .get(wName)!
        .plan.ties.push(
          `won ${t.count} pod(s) over ${lName} at equal priority ${t.w.priority} because ${why}`,
        );
      const lwhy = t.w.created !== t.l.created ? `${wName} is older` : `${wName} sorts first by name`;
      byName
        .get(lName)!
        .plan.ties.push(
          `lost ${t.count} pod(s) to ${wName} at equal priority ${t.w.priority} because ${lwhy}`,
        );
    }

  const strategies = new Map<string, StrategyPlan>();
  for (const r of ranked) strategies.set(r.name, r.plan);
  return { nodes, strategies, podIssues, podSources };
}

/** Stable serialisation of the publishable content, for "did this node change" checks. */
export function contentKey(c: NodeContent): string {
  return JSON.stringify([c.nodeConfig, c.pods, c.excludedPods]);
}
