// Table tests of the pure planner: precedence, Koordinator ConfigMaps, exclusions, dryRun, schedules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfigMapData } from '../../operator/planner/config.js';
import { type PlanInput, plan } from '../../operator/planner/plan.js';
import type { CpuBurstStrategy } from '../../operator/types.js';
import { namespace, node, pod, strategy } from './fixtures.js';

// Koordinator's documented example, byte for byte the shape of slo-controller-config/cpu-burst-config.
const KOORD_JSON = JSON.stringify({
  clusterStrategy: {
    policy: 'auto',
    cpuBurstPercent: 1000,
    cfsQuotaBurstPercent: 300,
    cfsQuotaBurstPeriodSeconds: -1,
    sharePoolThresholdPercent: 50,
  },
  nodeStrategies: [
    {
      name: 'alios',
      nodeSelector: { matchLabels: { 'kubernetes.io/kernel': 'alios' } },
      policy: 'cfsQuotaBurstOnly',
      cfsQuotaBurstPercent: 400,
    },
  ],
});

function cmConfig(json: string) {
  const r = parseConfigMapData({ 'cpu-burst-config': json });
  assert.ok(r.ok, r.ok ? '' : r.error);
  return r.config;
}

const NOW = new Date('2026-11-25T10:00:00Z'); // a Wednesday

function run(partial: Partial<PlanInput>) {
  return plan({
    strategies: [],
    clusterConfig: null,
    nodes: [node('node-a'), node('node-b', { 'kubernetes.io/kernel': 'alios', pool: 'big' })],
    namespaces: [namespace('default'), namespace('shop', { team: 'shop' })],
    pods: [],
    now: NOW,
    ...partial,
  });
}

function decisionOf(p: ReturnType<typeof plan>, name: string) {
  for (const c of p.nodes.values()) for (const d of c.pods) if (d.name === name) return d;
  return undefined;
}

const ENABLED = { 'cpuburst.io/enabled': 'true' };

describe('planner precedence', () => {
  const cases: Array<{
    name: string;
    input: Partial<PlanInput>;
    pod: string;
    want: {
      policy?: string;
      cpuBurstPercent?: number;
      cfsQuotaBurstPercent?: number;
      period?: number;
      source?: RegExp;
    } | null;
  }> = [
    {
      name: 'opted-in pod with nothing configured gets the built-in defaults',
      input: { pods: [pod('p', { annotations: ENABLED })] },
      pod: 'p',
      want: {
        policy: 'none',
        cpuBurstPercent: 100,
        cfsQuotaBurstPercent: 300,
        period: -1,
        source: /^default$/,
      },
    },
    {
      name: 'pod without opt-in, strategy or ConfigMap policy gets no decision',
      input: { pods: [pod('p')] },
      pod: 'p',
      want: null,
    },
    {
      name: 'Koordinator clusterStrategy applies to every eligible pod, as in Koordinator',
      input: { clusterConfig: cmConfig(KOORD_JSON), pods: [pod('p', { node: 'node-a' })] },
      pod: 'p',
      want: {
        policy: 'auto',
        cpuBurstPercent: 1000,
        cfsQuotaBurstPercent: 300,
        source: /^ConfigMap\/clusterStrategy$/,
      },
    },
    {
      name: 'Koordinator nodeStrategies entry overrides the cluster strategy on matching nodes',
      input: { clusterConfig: cmConfig(KOORD_JSON), pods: [pod('p', { node: 'node-b' })] },
      pod: 'p',
      want: {
        policy: 'cfsQuotaBurstOnly',
        cpuBurstPercent: 1000,
        cfsQuotaBurstPercent: 400,
        source: /nodeStrategies\/alios/,
      },
    },
    {
      name: 'ConfigMap policy none selects nobody, but an opted-in pod still gets its values',
      input: {
        clusterConfig: cmConfig('{"clusterStrategy":{"policy":"none","cpuBurstPercent":70}}'),
        pods: [pod('p', { annotations: ENABLED })],
      },
      pod: 'p',
      want: { policy: 'none', cpuBurstPercent: 70, source: /^ConfigMap\/clusterStrategy$/ },
    },
    {
      name: 'a matching strategy beats the ConfigMap node strategy',
      input: {
        clusterConfig: cmConfig(KOORD_JSON),
        strategies: [strategy('s', { policy: 'cpuBurstOnly', cpuBurstPercent: 50 })],
        pods: [pod('p', { node: 'node-b' })],
      },
      pod: 'p',
      want: {
        policy: 'cpuBurstOnly',
        cpuBurstPercent: 50,
        cfsQuotaBurstPercent: 400,
        source: /^CpuBurstStrategy\/s$/,
      },
    },
    {
      name: 'the higher-priority strategy wins',
      input: {
        strategies: [
          strategy('low', { policy: 'cpuBurstOnly', priority: 1 }, '2020-01-01T00:00:00Z'),
          strategy('high', { policy: 'cfsQuotaBurstOnly', cfsQuotaBurstPercent: 250, priority: 5 }),
        ],
        pods: [pod('p')],
      },
      pod: 'p',
      want: { policy: 'cfsQuotaBurstOnly', cfsQuotaBurstPercent: 250, source: /^CpuBurstStrategy\/high$/ },
    },
    {
      name: 'the pod annotation overrides only the fields it names',
      input: {
        strategies: [strategy('s', { policy: 'auto', cpuBurstPercent: 80, cfsQuotaBurstPercent: 200 })],
        pods: [pod('p', { annotations: { 'cpuburst.io/config': '{"cpuBurstPercent":30}' } })],
      },
      pod: 'p',
      want: {
        policy: 'auto',
        cpuBurstPercent: 30,
        cfsQuotaBurstPercent: 200,
        source: /^annotation \(over CpuBurstStrategy\/s\)$/,
      },
    },
    {
      name: 'a strategy selects pods by label and namespace label only',
      input: {
        strategies: [
          strategy('shop', {
            podSelector: { matchLabels: { app: 'web' } },
            namespaceSelector: { matchLabels: { team: 'shop' } },
          }),
        ],
        pods: [
          pod('in', { ns: 'shop', labels: { app: 'web' } }),
          pod('wrong-ns', { labels: { app: 'web' } }),
        ],
      },
      pod: 'wrong-ns',
      want: null,
    },
    {
      name: 'matchExpressions on nodes: NotIn excludes node-b',
      input: {
        strategies: [
          strategy('s', {
            nodeSelector: { matchExpressions: [{ key: 'pool', operator: 'NotIn', values: ['big'] }] },
          }),
        ],
        pods: [pod('p', { node: 'node-b' })],
      },
      pod: 'p',
      want: null,
    },
    {
      name: 'a dryRun strategy publishes nothing (the pod falls back to lower precedence)',
      input: { strategies: [strategy('dry', { dryRun: true })], pods: [pod('p')] },
      pod: 'p',
      want: null,
    },
  ];
  for (const c of cases)
    it(c.name, () => {
      const d = decisionOf(run(c.input), c.pod);
      if (c.want === null) return assert.equal(d, undefined, 'expected no decision');
      assert.ok(d, 'expected a decision');
      if (c.want.policy) assert.equal(d.config.policy, c.want.policy);
      if (c.want.cpuBurstPercent !== undefined)
        assert.equal(d.config.cpuBurstPercent, c.want.cpuBurstPercent);
      if (c.want.cfsQuotaBurstPercent !== undefined)
        assert.equal(d.config.cfsQuotaBurstPercent, c.want.cfsQuotaBurstPercent);
      if (c.want.period !== undefined) assert.equal(d.config.cfsQuotaBurstPeriodSeconds, c.want.period);
      if (c.want.source) assert.match(d.source, c.want.source);
    });

  it('equal priority: the older strategy wins and both explain the tie', () => {
    const p = run({
      strategies: [
        strategy('young', { policy: 'cpuBurstOnly' }, '2026-02-01T00:00:00Z'),
        strategy('old', { policy: 'cfsQuotaBurstOnly' }, '2026-01-01T00:00:00Z'),
      ],
      pods: [pod('p1'), pod('p2')],
    });
    assert.equal(decisionOf(p, 'p1')?.source, 'CpuBurstStrategy/old');
    assert.deepEqual(p.strategies.get('old')?.ties, [
      'won 2 pod(s) over young at equal priority 0 because it is older',
    ]);
    assert.deepEqual(p.strategies.get('young')?.ties, [
      'lost 2 pod(s) to old at equal priority 0 because old is older',
    ]);
    assert.equal(p.strategies.get('young')?.podsOverridden, 2);
    assert.equal(p.strategies.get('old')?.pods.length, 2);
  });

  it('equal priority and age: the smaller name wins', () => {
    const p = run({ strategies: [strategy('b', {}), strategy('a', {})], pods: [pod('p')] });
    assert.equal(decisionOf(p, 'p')?.source, 'CpuBurstStrategy/a');
    assert.match(p.strategies.get('b')!.ties[0]!, /a sorts first by name/);
  });

  it('dryRun status shows what would be, even when a live strategy also matches', () => {
    const p = run({
      strategies: [strategy('dry', { dryRun: true, priority: 9 }), strategy('live', { priority: 1 })],
      pods: [pod('p1'), pod('p2', { node: 'node-b' })],
    });
    assert.equal(p.strategies.get('dry')?.pods.length, 2);
    assert.equal(p.strategies.get('dry')?.nodesMatched, 2);
    assert.equal(p.strategies.get('live')?.pods.length, 2, 'the live strategy still decides');
    assert.equal(decisionOf(p, 'p1')?.source, 'CpuBurstStrategy/live');
  });

  it('node threshold comes from the winning strategy on the node, else the ConfigMap', () => {
    const p = run({
      clusterConfig: cmConfig(
        '{"clusterStrategy":{"sharePoolThresholdPercent":40},"nodeStrategies":[{"nodeSelector":{"matchLabels":{"pool":"big"}},"sharePoolThresholdPercent":70}]}',
      ),
      strategies: [
        strategy('s', { sharePoolThresholdPercent: 90, nodeSelector: { matchLabels: { pool: 'big' } } }),
      ],
      pods: [pod('p', { node: 'node-b' })],
    });
    assert.equal(p.nodes.get('node-a')?.nodeConfig.sharePoolThresholdPercent, 40);
    assert.equal(p.nodes.get('node-b')?.nodeConfig.sharePoolThresholdPercent, 90);
  });
});

describe('planner exclusions and bad input', () => {
  const s = strategy('all', {});
  const cases: Array<{ name: string; pod: ReturnType<typeof pod>; reason: string; event?: string }> = [
    {
      name: 'LSR pods',
      pod: pod('x', { labels: { 'koordinator.sh/qosClass': 'LSR' } }),
      reason: 'QoSClassExcluded',
    },
    {
      name: 'LSE pods',
      pod: pod('x', { labels: { 'koordinator.sh/qosClass': 'LSE' } }),
      reason: 'QoSClassExcluded',
    },
    {
      name: 'BE pods',
      pod: pod('x', { labels: { 'koordinator.sh/qosClass': 'BE' } }),
      reason: 'QoSClassExcluded',
    },
    { name: 'pods without CPU limits', pod: pod('x', { cpuLimit: null }), reason: 'NoCPULimit' },
    { name: 'succeeded pods', pod: pod('x', { phase: 'Succeeded' }), reason: 'PodTerminated' },
    { name: 'failed pods', pod: pod('x', { phase: 'Failed' }), reason: 'PodTerminated' },
    {
      name: 'opted-out pods',
      pod: pod('x', { annotations: { 'cpuburst.io/enabled': 'false' } }),
      reason: 'OptedOut',
    },
    {
      name: 'invalid annotation JSON',
      pod: pod('x', { annotations: { 'cpuburst.io/config': '{"policy": auto' } }),
      reason: 'InvalidAnnotation',
      event: 'InvalidBurstConfig',
    },
    {
      name: 'annotation value out of range',
      pod: pod('x', { annotations: { 'cpuburst.io/config': '{"cpuBurstPercent": 20000}' } }),
      reason: 'InvalidAnnotation',
      event: 'InvalidBurstConfig',
    },
    {
      name: 'annotation with an unknown field',
      pod: pod('x', { annotations: { 'cpuburst.io/config': '{"sharePoolThresholdPercent": 20}' } }),
      reason: 'InvalidAnnotation',
      event: 'InvalidBurstConfig',
    },
  ];
  for (const c of cases)
    it(`${c.name} get no decision and a visible reason`, () => {
      const p = run({ strategies: [s], pods: [c.pod] });
      assert.equal(decisionOf(p, 'x'), undefined);
      const ex = p.strategies.get('all')!.exclusions;
      assert.equal(ex.length, 1);
      assert.equal(ex[0]!.reason, c.reason);
      if (c.event) {
        assert.equal(p.podIssues.length, 1);
        assert.equal(p.podIssues[0]!.reason, c.event);
        assert.equal(p.podIssues[0]!.type, 'Warning');
      }
    });

  it('LSR/LSE/BE pods are listed for node-state accounting', () => {
    const p = run({
      pods: [
        pod('lsr', { labels: { 'koordinator.sh/qosClass': 'LSR' } }),
        pod('ls', { labels: { 'koordinator.sh/qosClass': 'LS' } }),
      ],
    });
    const ex = p.nodes.get('node-a')!.excludedPods;
    assert.deepEqual(
      ex.map((e) => [e.name, e.qos, e.cpuRequestMilli]),
      [['lsr', 'LSR', 500]],
    );
  });

  it('an opted-in but excluded pod gets a Normal Event with the reason', () => {
    const p = run({ pods: [pod('x', { cpuLimit: null, annotations: ENABLED })] });
    assert.deepEqual(
      p.podIssues.map((i) => [i.type, i.reason]),
      [['Normal', 'BurstExcluded']],
    );
  });

  it('an invalid cpuburst.io/enabled value is reported', () => {
    const p = run({ pods: [pod('x', { annotations: { 'cpuburst.io/enabled': 'yes please' } })] });
    assert.equal(p.podIssues[0]?.reason, 'InvalidBurstConfig');
  });

  it('containers carry limits, IDs and kinds; decisions are sorted and deterministic', () => {
    const a = pod('b', { containers: 2, cpuLimit: '1500m', annotations: ENABLED });
    (a.spec as any).initContainers = [
      { name: 'side', restartPolicy: 'Always', resources: { limits: { cpu: '250m' } } },
    ];
    const p = run({ pods: [a, pod('a', { annotations: ENABLED })] });
    const pods = p.nodes.get('node-a')!.pods;
    assert.deepEqual(
      pods.map((d) => d.name),
      ['a', 'b'],
    );
    assert.deepEqual(
      pods[1]!.containers.map((c) => [c.name, c.kind, c.cpuLimitMilli, c.running]),
      [
        ['side', 'sidecar', 250, false],
        ['c0', 'app', 1500, true],
        ['c1', 'app', 1500, true],
      ],
    );
    assert.equal(pods[1]!.qosClass, 'Burstable');
  });
});

describe('schedules in the planner', () => {
  const sched = (windows: any[], timeZone = 'UTC'): CpuBurstStrategy =>
    strategy('timed', { schedule: { timeZone, windows } });
  const cases: Array<{ name: string; s: CpuBurstStrategy; now: string; active: boolean; error?: RegExp }> = [
    {
      name: 'inside a duration window',
      s: sched([{ start: '0 9 * * *', duration: '2h' }]),
      now: '2026-11-25T10:59:00Z',
      active: true,
    },
    {
      name: 'just after a duration window',
      s: sched([{ start: '0 9 * * *', duration: '2h' }]),
      now: '2026-11-25T11:00:00Z',
      active: false,
    },
    {
      name: 'inside start/end on a weekday',
      s: sched([{ start: '0 8 * * 1-5', end: '0 18 * * 1-5' }]),
      now: '2026-11-25T17:59:00Z',
      active: true,
    },
    {
      name: 'after end on a weekday',
      s: sched([{ start: '0 8 * * 1-5', end: '0 18 * * 1-5' }]),
      now: '2026-11-25T18:00:00Z',
      active: false,
    },
    {
      name: 'weekend is outside',
      s: sched([{ start: '0 8 * * 1-5', end: '0 18 * * 1-5' }]),
      now: '2026-11-28T12:00:00Z',
      active: false,
    },
    {
      name: 'time zone shifts the window (Berlin is UTC+1 in November)',
      s: sched([{ start: '0 8 * * *', end: '0 9 * * *' }], 'Europe/Berlin'),
      now: '2026-11-25T07:30:00Z',
      active: true,
    },
    {
      name: 'time zone shifts the window (outside)',
      s: sched([{ start: '0 8 * * *', end: '0 9 * * *' }], 'Europe/Berlin'),
      now: '2026-11-25T08:30:00Z',
      active: false,
    },
    {
      name: 'overnight window across midnight',
      s: sched([{ start: '0 22 * * *', end: '0 6 * * *' }]),
      now: '2026-11-25T03:00:00Z',
      active: true,
    },
    {
      name: 'second window matches',
      s: sched([
        { start: '0 1 * * *', duration: '1h' },
        { start: '30 9 * * 3', duration: '45m' },
      ]),
      now: '2026-11-25T10:14:00Z',
      active: true,
    },
    {
      name: 'invalid cron is inactive with an error',
      s: sched([{ start: '61 * * * *', duration: '1h' }]),
      now: '2026-11-25T10:00:00Z',
      active: false,
      error: /minute/,
    },
    {
      name: 'unknown time zone is an error',
      s: sched([{ start: '0 8 * * *', duration: '1h' }], 'Mars/Olympus'),
      now: '2026-11-25T10:00:00Z',
      active: false,
      error: /time zone/,
    },
    {
      name: 'bad duration is an error',
      s: sched([{ start: '0 8 * * *', duration: '1d' }]),
      now: '2026-11-25T10:00:00Z',
      active: false,
      error: /duration/,
    },
  ];
  for (const c of cases)
    it(c.name, () => {
      const p = run({ strategies: [c.s], pods: [pod('p')], now: new Date(c.now) });
      const sp = p.strategies.get('timed')!;
      assert.equal(sp.active, c.active, sp.scheduleMessage);
      assert.equal(decisionOf(p, 'p') !== undefined, c.active);
      if (c.error) assert.match(sp.scheduleError ?? '', c.error);
      else assert.equal(sp.scheduleError, undefined);
    });
});

describe('ConfigMap parsing', () => {
  const cases: Array<{ name: string; data: Record<string, string> | undefined; ok: boolean; err?: RegExp }> =
    [
      { name: 'missing ConfigMap', data: undefined, ok: true },
      { name: 'missing key', data: { other: 'x' }, ok: true },
      { name: "Koordinator's example", data: { 'cpu-burst-config': KOORD_JSON }, ok: true },
      {
        name: 'unknown extra fields are tolerated',
        data: { 'cpu-burst-config': '{"clusterStrategy":{"policy":"auto","futureField":1}}' },
        ok: true,
      },
      {
        name: 'broken JSON',
        data: { 'cpu-burst-config': '{"clusterStrategy": {' },
        ok: false,
        err: /not valid JSON/,
      },
      {
        name: 'unknown policy',
        data: { 'cpu-burst-config': '{"clusterStrategy":{"policy":"turbo"}}' },
        ok: false,
        err: /policy/,
      },
      {
        name: 'out of range',
        data: { 'cpu-burst-config': '{"clusterStrategy":{"cfsQuotaBurstPercent":50}}' },
        ok: false,
        err: /cfsQuotaBurstPercent/,
      },
      {
        name: 'empty node selector',
        data: { 'cpu-burst-config': '{"nodeStrategies":[{"nodeSelector":{}}]}' },
        ok: false,
        err: /empty nodeSelector/,
      },
    ];
  for (const c of cases)
    it(c.name, () => {
      const r = parseConfigMapData(c.data);
      assert.equal(r.ok, c.ok);
      if (!r.ok && c.err) assert.match(r.error, c.err);
    });
});
