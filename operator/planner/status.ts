// Pure: a strategy's status from its plan and what the agents reported. Conditions follow
// metav1.Condition: lastTransitionTime moves only when status flips; observedGeneration is the
// generation this status describes.
import type { AckMessage, StatusReport } from '../../protocol/index.js';
import type { Condition, PodReason, StrategyStatus } from '../types.js';
import type { StrategyPlan } from './plan.js';

export interface NodeFeedback {
  /** The version last published to the node (undefined: nothing published yet). */
  published?: number;
  /** Per pod uid: the version in which its decision last changed (an unrelated pod's change on the
   * same node does not make it pending again). Falls back to `published`. */
  podVersion?: (uid: string) => number | undefined;
  ack?: AckMessage;
  status?: StatusReport;
  /** From the agent's presence topic; false = its Last Will fired (agent down or cut off). */
  agentOnline?: boolean;
}

const MAX_LISTED = 20;

function setCondition(
  prev: Condition[] | undefined,
  c: Omit<Condition, 'lastTransitionTime'>,
  now: string,
): Condition {
  const old = prev?.find((p) => p.type === c.type);
  return { ...c, lastTransitionTime: old && old.status === c.status ? old.lastTransitionTime : now };
}

export function computeStatus(
  p: StrategyPlan,
  feedback: (node: string) => NodeFeedback,
  prevConditions: Condition[] | undefined,
  now: Date,
): StrategyStatus {
  let applied = 0;
  const failures: PodReason[] = [];
  const pendingNodes = new Set<string>();
  const perNode = new Map<string, NodeFeedback>();
  if (!p.dryRun)
    for (const pod of p.pods) {
      let f = perNode.get(pod.node);
      if (!f) {
        f = feedback(pod.node);
        perNode.set(pod.node, f);
      }
      const v = f.podVersion?.(pod.uid) ?? f.published;
      const ackDone = v !== undefined && f.ack !== undefined && f.ack.version >= v;
      const statusDone = v !== undefined && f.status !== undefined && f.status.appliedVersion >= v;
      if (!ackDone && !statusDone) {
        pendingNodes.add(f.agentOnline === false ? `${pod.node} (agent offline)` : pod.node);
        continue;
      }
      const ackErr = ackDone ? f.ack!.errors.find((e) => e.uid === pod.uid) : undefined;
      const st = statusDone ? f.status!.pods.find((s) => s.uid === pod.uid) : undefined;
      if (ackErr || st?.phase === 'Failed' || (ackDone && f.ack!.result === 'Rejected')) {
        failures.push({
          namespace: pod.namespace,
          name: pod.name,
          node: pod.node,
          reason: ackErr?.reason ?? st?.reason ?? 'Rejected',
          message: (ackErr?.message ?? st?.message ?? 'the agent rejected the decision document').slice(
            0,
            1024,
          ),
        });
      } else applied++;
    }

  const total = p.pods.length;
  const ties = p.ties.length ? `; ${p.ties.join('; ')}` : '';
  let ready: Omit<Condition, 'lastTransitionTime'>;
  let degraded: Omit<Condition, 'lastTransitionTime'>;
  const g = p.generation;
  if (p.scheduleError) {
    ready = {
      type: 'Ready',
      status: 'False',
      reason: 'InvalidSchedule',
      message: p.scheduleError,
      observedGeneration: g,
    };
  } else if (!p.active) {
    ready = {
      type: 'Ready',
      status: 'True',
      reason: 'OutsideSchedule',
      message: `${p.scheduleMessage}; selected pods fall back to lower-precedence config`,
      observedGeneration: g,
    };
  } else if (p.dryRun) {
    ready = {
      type: 'Ready',
      status: 'True',
      reason: 'DryRun',
      message: `would apply to ${total} pod(s) on ${new Set(p.pods.map((x) => x.node)).size} node(s); nothing published${ties}`,
      observedGeneration: g,
    };
  } else if (pendingNodes.size > 0) {
    ready = {
      type: 'Ready',
      status: 'False',
      reason: 'Pending',
      message: `${applied} of ${total} pod(s) applied; waiting for the agents on ${[...pendingNodes].sort().slice(0, 5).join(', ')}${pendingNodes.size > 5 ? ', …' : ''}${ties}`,
      observedGeneration: g,
    };
  } else if (failures.length > 0) {
    ready = {
      type: 'Ready',
      status: 'False',
      reason: 'ApplyFailed',
      message: `${failures.length} of ${total} pod(s) failed, first: ${failures[0]!.namespace}/${failures[0]!.name}: ${failures[0]!.reason}${ties}`,
      observedGeneration: g,
    };
  } else {
    ready = {
      type: 'Ready',
      status: 'True',
      reason: total === 0 ? 'NoPodsSelected' : 'Applied',
      message: `${applied} pod(s) applied on ${new Set(p.pods.map((x) => x.node)).size} node(s)${ties}`,
      observedGeneration: g,
    };
  }
  if (p.scheduleError)
    degraded = {
      type: 'Degraded',
      status: 'True',
      reason: 'InvalidSchedule',
      message: p.scheduleError,
      observedGeneration: g,
    };
  else if (failures.length > 0)
    degraded = {
      type: 'Degraded',
      status: 'True',
      reason: 'ApplyFailed',
      message:
        `${failures.length} pod(s) could not be applied, e.g. ${failures[0]!.namespace}/${failures[0]!.name}: ${failures[0]!.message}`.slice(
          0,
          2048,
        ),
      observedGeneration: g,
    };
  else
    degraded = {
      type: 'Degraded',
      status: 'False',
      reason: 'AsExpected',
      message: 'no failures reported',
      observedGeneration: g,
    };

  const ts = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return {
    observedGeneration: g,
    active: p.active,
    nodesMatched: p.nodesMatched,
    podsMatched: total,
    podsApplied: applied,
    podsFailed: failures.length,
    podsExcluded: p.exclusions.length,
    podsOverridden: p.podsOverridden,
    exclusions: p.exclusions
      .slice(0, MAX_LISTED)
      .map(({ namespace, name, node, reason, message }) => ({ namespace, name, node, reason, message })),
    failures: failures.slice(0, MAX_LISTED),
    conditions: [setCondition(prevConditions, ready, ts), setCondition(prevConditions, degraded, ts)],
  };
}

/** JSON with sorted keys and undefined dropped, so objects from the API compare with ours. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/** Equal ignoring condition timestamps: decides whether a status patch is needed. */
export function sameStatus(a: StrategyStatus | undefined, b: StrategyStatus): boolean {
  if (!a) return false;
  const strip = (s: StrategyStatus) =>
    canonical({ ...s, conditions: (s.conditions ?? []).map(({ lastTransitionTime: _, ...c }) => c) });
  return strip(a) === strip(b);
}
