// Strategy status from plan + agent feedback: counts, Ready/Degraded, transitions, ties, dryRun.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../../common/log.js';
import type { EventInput } from '../../operator/kube/client.js';
import { EventRecorder } from '../../operator/kube/events.js';
import type { StrategyPlan } from '../../operator/planner/plan.js';
import { computeStatus, type NodeFeedback, sameStatus } from '../../operator/planner/status.js';

const T0 = new Date('2026-11-25T10:00:00Z');
const T1 = new Date('2026-11-25T10:05:00Z');

function sp(over: Partial<StrategyPlan> = {}): StrategyPlan {
  return {
    name: 's',
    generation: 3,
    dryRun: false,
    active: true,
    scheduleMessage: 'no schedule',
    nodesMatched: 2,
    pods: [
      { uid: 'u1', namespace: 'ns', name: 'p1', node: 'n1' },
      { uid: 'u2', namespace: 'ns', name: 'p2', node: 'n2' },
    ],
    exclusions: [{ namespace: 'ns', name: 'x', node: 'n1', reason: 'NoCPULimit', message: 'm' }],
    podsOverridden: 0,
    ties: [],
    ...over,
  };
}

const ack = (node: string, version: number, errors: any[] = []) => ({
  apiVersion: 'cpuburst.io/v1' as const,
  kind: 'DecisionAck' as const,
  node,
  version,
  result: errors.length ? ('PartiallyApplied' as const) : ('Applied' as const),
  time: T0.toISOString(),
  errors,
});

describe('computeStatus', () => {
  it('is Pending until every node acked the published version', () => {
    const fb: Record<string, NodeFeedback> = {
      n1: { published: 5, ack: ack('n1', 5) },
      n2: { published: 7, ack: ack('n2', 6) },
    };
    const s = computeStatus(sp(), (n) => fb[n] ?? {}, undefined, T0);
    const ready = s.conditions!.find((c) => c.type === 'Ready')!;
    assert.equal(ready.status, 'False');
    assert.equal(ready.reason, 'Pending');
    assert.match(ready.message, /1 of 2 pod\(s\) applied; waiting for the agents on n2/);
    assert.equal(ready.observedGeneration, 3);
    assert.equal(s.observedGeneration, 3);
    assert.equal(s.podsApplied, 1);
    assert.equal(s.podsExcluded, 1);
  });

  it('is Ready once all acked, and keeps lastTransitionTime while the status does not flip', () => {
    const fb: Record<string, NodeFeedback> = {
      n1: { published: 5, ack: ack('n1', 5) },
      n2: { published: 7, ack: ack('n2', 7) },
    };
    const a = computeStatus(sp(), (n) => fb[n] ?? {}, undefined, T0);
    assert.equal(a.conditions![0]!.status, 'True');
    assert.equal(a.conditions![0]!.reason, 'Applied');
    const b = computeStatus(sp(), (n) => fb[n] ?? {}, a.conditions, T1);
    assert.equal(b.conditions![0]!.lastTransitionTime, a.conditions![0]!.lastTransitionTime);
    assert.ok(sameStatus(a, b));
  });

  it('reports agent failures in Ready, Degraded and the failures list', () => {
    const fb: Record<string, NodeFeedback> = {
      n1: {
        published: 5,
        ack: ack('n1', 5, [
          { uid: 'u1', reason: 'KernelRefused', message: 'EINVAL writing cpu.cfs_burst_us' },
        ]),
      },
      n2: { published: 7, ack: ack('n2', 7) },
    };
    const s = computeStatus(sp(), (n) => fb[n] ?? {}, undefined, T0);
    assert.equal(s.podsFailed, 1);
    assert.equal(s.podsApplied, 1);
    assert.deepEqual(s.failures![0], {
      namespace: 'ns',
      name: 'p1',
      node: 'n1',
      reason: 'KernelRefused',
      message: 'EINVAL writing cpu.cfs_burst_us',
    });
    const [ready, degraded] = s.conditions!;
    assert.equal(ready!.reason, 'ApplyFailed');
    assert.equal(degraded!.status, 'True');
    assert.match(degraded!.message, /EINVAL/);
  });

  it('counts status reports with appliedVersion as applied too', () => {
    const rep = (node: string, v: number) => ({
      apiVersion: 'cpuburst.io/v1' as const,
      kind: 'AgentStatus' as const,
      node,
      appliedVersion: v,
      time: '',
      nodeState: 'idle' as const,
      pods: [],
    });
    const fb: Record<string, NodeFeedback> = {
      n1: { published: 5, status: rep('n1', 5) },
      n2: { published: 7, status: rep('n2', 9) },
    };
    assert.equal(computeStatus(sp(), (n) => fb[n] ?? {}, undefined, T0).podsApplied, 2);
  });

  it('dryRun is Ready with what would be applied', () => {
    const s = computeStatus(sp({ dryRun: true }), () => ({}), undefined, T0);
    assert.equal(s.conditions![0]!.reason, 'DryRun');
    assert.match(s.conditions![0]!.message, /would apply to 2 pod\(s\) on 2 node\(s\); nothing published/);
    assert.equal(s.podsMatched, 2);
  });

  it('explains equal-priority ties in the Ready message', () => {
    const s = computeStatus(
      sp({ pods: [], ties: ['lost 2 pod(s) to a at equal priority 0 because a is older'] }),
      () => ({}),
      undefined,
      T0,
    );
    assert.match(s.conditions![0]!.message, /lost 2 pod\(s\) to a at equal priority 0 because a is older/);
  });

  it('an invalid schedule is not Ready and Degraded', () => {
    const s = computeStatus(
      sp({ active: false, scheduleError: 'unknown time zone "X"' }),
      () => ({}),
      undefined,
      T0,
    );
    assert.deepEqual(
      s.conditions!.map((c) => [c.type, c.status, c.reason]),
      [
        ['Ready', 'False', 'InvalidSchedule'],
        ['Degraded', 'True', 'InvalidSchedule'],
      ],
    );
  });

  it('flipping status moves lastTransitionTime', () => {
    const pending = computeStatus(sp(), () => ({ published: 1 }), undefined, T0);
    const done = computeStatus(sp(), (n) => ({ published: 1, ack: ack(n, 1) }), pending.conditions, T1);
    assert.notEqual(done.conditions![0]!.lastTransitionTime, pending.conditions![0]!.lastTransitionTime);
    assert.equal(
      done.conditions![1]!.lastTransitionTime,
      pending.conditions![1]!.lastTransitionTime,
      'Degraded did not flip',
    );
  });
});

describe('EventRecorder', () => {
  it('dedupes the same event and rate-limits the rest', async () => {
    const sent: EventInput[] = [];
    let now = 0;
    const results: string[] = [];
    const r = new EventRecorder({
      send: async (e) => {
        sent.push(e);
      },
      log: silentLogger(),
      dedupeMs: 1000,
      perMinute: 3,
      now: () => now,
      onResult: (x) => results.push(x),
    });
    const ev = (msg: string): EventInput => ({
      target: { apiVersion: 'v1', kind: 'Pod', name: 'p', namespace: 'ns', uid: 'u' },
      type: 'Warning',
      reason: 'InvalidBurstConfig',
      message: msg,
    });
    r.record(ev('a'));
    r.record(ev('a'));
    now = 1500;
    r.record(ev('a'));
    r.record(ev('b'));
    r.record(ev('c'));
    await new Promise((res) => setImmediate(res));
    assert.deepEqual(
      sent.map((e) => e.message),
      ['a', 'a', 'b'],
    );
    assert.ok(results.includes('deduped') && results.includes('dropped'));
  });
});

describe('computeStatus per-pod versions', () => {
  it('a pod whose decision did not change stays applied while the node acks a newer version', () => {
    // node n1 published v9 for an unrelated pod; p1's decision dates from v5 and v5+ was acked
    const fb: NodeFeedback = {
      published: 9,
      podVersion: (uid) => (uid === 'u1' ? 5 : 9),
      ack: {
        apiVersion: 'cpuburst.io/v1',
        kind: 'DecisionAck',
        node: 'n1',
        version: 6,
        result: 'Applied',
        time: '',
        errors: [],
      },
    };
    const plan = sp({ pods: [{ uid: 'u1', namespace: 'ns', name: 'p1', node: 'n1' }] });
    const s = computeStatus(plan, () => fb, undefined, T0);
    assert.equal(s.podsApplied, 1);
    assert.equal(s.conditions![0]!.status, 'True');
    const s2 = computeStatus(
      sp({ pods: [{ uid: 'u2', namespace: 'ns', name: 'p2', node: 'n1' }] }),
      () => fb,
      undefined,
      T0,
    );
    assert.equal(s2.conditions![0]!.reason, 'Pending', 'a pod changed in v9 waits for the v9 ack');
  });
});

describe('computeStatus with agent presence', () => {
  it('names nodes whose agent is offline in the Pending message', () => {
    const s = computeStatus(sp(), (n) => ({ published: 3, agentOnline: n !== 'n2' }), undefined, T0);
    assert.match(s.conditions![0]!.message, /waiting for the agents on n1, n2 \(agent offline\)/);
  });
});
