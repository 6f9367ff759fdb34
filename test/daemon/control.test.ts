// Table tests of the pure control functions, including Koordinator's own vectors.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { koordinatorBucket, stepBucket } from '../../daemon/control/bucket.js';
import { nodeState } from '../../daemon/control/nodestate.js';
import {
  baseQuotaUs,
  type ContainerInput,
  ceilQuotaUs,
  controlRound,
  koordinatorScaleUp,
  podQuotaTarget,
  proportionalScaleUp,
  scaleDown,
  staticBurstUs,
} from '../../daemon/control/round.js';
import { parseProcStat, usageCores } from '../../daemon/procstat.js';
import { type BurstConfig, DEFAULT_BURST_CONFIG } from '../../protocol/index.js';

describe('node state from share-pool usage (Koordinator getNodeStateForBurst)', () => {
  const cases: Array<[string, Parameters<typeof nodeState>[0], string]> = [
    [
      'Koordinator vector: 16 CPUs, LSR requests 8 uses 5, node usage 10 → 5/8 ≥ 50 %',
      { cpus: 16, nodeUsageCores: 10, excludedRequestCores: 8, excludedUsageCores: 5, thresholdPercent: 50 },
      'overload',
    ],
    [
      'idle: 16 CPUs, LSR 8/5, node 8 → 3/8',
      { cpus: 16, nodeUsageCores: 8, excludedRequestCores: 8, excludedUsageCores: 5, thresholdPercent: 50 },
      'idle',
    ],
    [
      'cooling: ratio 0.46 in [0.45, 0.5)',
      { cpus: 10, nodeUsageCores: 4.6, excludedRequestCores: 0, excludedUsageCores: 0, thresholdPercent: 50 },
      'cooling',
    ],
    [
      'unknown: no node metric',
      {
        cpus: 16,
        nodeUsageCores: null,
        excludedRequestCores: 0,
        excludedUsageCores: 0,
        thresholdPercent: 50,
      },
      'unknown',
    ],
    [
      'unknown: no CPU info',
      { cpus: null, nodeUsageCores: 3, excludedRequestCores: 0, excludedUsageCores: 0, thresholdPercent: 50 },
      'unknown',
    ],
    [
      'share pool of size ≤ 0 counts as full',
      { cpus: 4, nodeUsageCores: 0, excludedRequestCores: 4, excludedUsageCores: 0, thresholdPercent: 50 },
      'overload',
    ],
  ];
  for (const [name, input, want] of cases)
    it(name, () => {
      assert.equal(nodeState(input).state, want);
    });
  it('reports the excess to free under overload', () => {
    const r = nodeState({
      cpus: 16,
      nodeUsageCores: 10,
      excludedRequestCores: 8,
      excludedUsageCores: 5,
      thresholdPercent: 50,
    });
    assert.equal(r.ratio, 5 / 8);
    assert.equal(r.excessCores, 1); // usage 5 − 0.5 × 8
  });
});

describe('dynamic quota steps', () => {
  const base = baseQuotaUs(2000, 100000);
  const ceil = ceilQuotaUs(base, 300);
  it("Koordinator's fixed ×1.2: 2 cores at 300 % climbs 240000 → … → 600000 in 7 rounds", () => {
    const seen: number[] = [];
    for (let q = base; q < ceil; ) {
      q = koordinatorScaleUp(q, base, ceil);
      seen.push(q);
    }
    assert.deepEqual(seen, [240000, 288000, 345600, 414720, 497664, 597196, 600000]);
  });
  it('ours, proportional to the throttle ratio: fully throttled reaches the ceiling in 2 rounds', () => {
    const climb = (ratio: number) => {
      const seen: number[] = [];
      for (let q = base; q < ceil && seen.length < 50; ) {
        q = proportionalScaleUp(q, base, ceil, ratio);
        seen.push(q);
      }
      return seen;
    };
    assert.deepEqual(climb(1), [400000, 600000]);
    assert.deepEqual(climb(0.5), [300000, 450000, 600000]);
    assert.deepEqual(climb(0.2), [240000, 288000, 345600, 414720, 497664, 597196, 600000]); // = Koordinator
    assert.equal(climb(0.02)[0], 204000, 'barely throttled: a small step');
    assert.ok(climb(0.02).length > 7);
  });
  it('scale-down ×0.8 to the base: 480000 → 200000 in 4 steps', () => {
    const seen: number[] = [];
    for (let q = 480000; q > base; ) {
      q = scaleDown(q, base);
      seen.push(q);
    }
    assert.deepEqual(seen, [384000, 307200, 245760, 200000]);
  });
  it('static burst uses the real period and the percentage', () => {
    assert.equal(staticBurstUs(2000, 100, 100000), 200000);
    assert.equal(staticBurstUs(2000, 1000, 100000), 2000000); // the planner clamps it to the quota
    assert.equal(staticBurstUs(500, 50, 50000), 12500);
    assert.equal(baseQuotaUs(1, 100000), 1000, 'floored at 1 ms');
  });
  it('pod target is derived from containers, never a delta', () => {
    const c = (quotaUs: number, running = true) => ({ quotaUs, periodUs: 100000, running });
    assert.equal(podQuotaTarget([c(400000), c(100000)], 300000, 100000), 500000);
    assert.equal(podQuotaTarget([c(200000), c(100000)], 300000, 100000), 300000);
    assert.equal(podQuotaTarget([c(200000), c(-1)], 300000, 100000), -1);
    assert.equal(
      podQuotaTarget([c(900000, false), c(100000)], 300000, 100000),
      300000,
      'exited init ignored',
    );
    assert.equal(podQuotaTarget([c(200000)], null, 100000), -1);
  });
});

describe('token bucket', () => {
  const cfg = { ...DEFAULT_BURST_CONFIG, cfsQuotaBurstPeriodSeconds: 60, cfsQuotaBurstPercent: 300 };
  it('starts full and drains above 100 % with sub-second accounting', () => {
    let b = stepBucket(undefined, cfg, null, 0);
    assert.equal(b.bucket!.capacity, 12000);
    assert.equal(b.bucket!.tokens, 12000);
    b = stepBucket(b.bucket!, cfg, 250, 500); // half a second at 250 %: Koordinator counts 0
    assert.equal(b.bucket!.tokens, 12000 - 75);
    assert.equal(koordinatorBucket(12000, 12000, 250, 0.5), 12000);
  });
  it('refills between 60 and 100 % too (Koordinator does not)', () => {
    const b = stepBucket({ capacity: 12000, tokens: 100, lastMs: 0 }, cfg, 80, 1000);
    assert.equal(b.bucket!.tokens, 120);
    assert.equal(koordinatorBucket(100, 12000, 80, 1), 100);
  });
  it('denies when empty, always for period 0, never for −1', () => {
    assert.equal(stepBucket({ capacity: 12000, tokens: 10, lastMs: 0 }, cfg, 300, 1000).allowed, false);
    assert.equal(stepBucket(undefined, { ...cfg, cfsQuotaBurstPeriodSeconds: 0 }, 50, 0).allowed, false);
    assert.equal(stepBucket(undefined, { ...cfg, cfsQuotaBurstPeriodSeconds: -1 }, 900, 0).allowed, true);
    assert.equal(stepBucket(undefined, { ...cfg, cfsQuotaBurstPercent: 100 }, 50, 0).allowed, false);
  });
  it('re-initializes when the capacity changes', () => {
    const b = stepBucket(
      { capacity: 12000, tokens: -5, lastMs: 0 },
      { ...cfg, cfsQuotaBurstPeriodSeconds: 30 },
      200,
      1000,
    );
    assert.equal(b.bucket!.tokens, 6000);
  });
});

describe('control round', () => {
  const auto: BurstConfig = { ...DEFAULT_BURST_CONFIG, policy: 'auto' };
  const ctr = (
    key: string,
    cur: number,
    throttle: number | null,
    usage: number | null,
    config = auto,
  ): ContainerInput => ({
    key,
    limitMilli: 2000,
    periodUs: 100000,
    currentQuotaUs: cur,
    config,
    throttleRatio: throttle,
    usageCores: usage,
  });
  const run = (state: 'idle' | 'cooling' | 'overload' | 'unknown', cs: ContainerInput[], excess = 0) =>
    controlRound({ nowMs: 0, nodeState: state, excessCores: excess, containers: cs, buckets: new Map() })
      .targets;

  it('scales up only on an idle node', () => {
    for (const [state, want] of [
      ['idle', 400000],
      ['cooling', 200000],
      ['unknown', 200000],
    ] as const)
      assert.equal(run(state, [ctr('a', 200000, 1, 2)]).get('a')!.quotaUs, want, state);
  });

  it('overload scales down the least-need pods first, only as many as needed (#2164)', () => {
    const t = run(
      'overload',
      [ctr('busy', 600000, 0.9, 6), ctr('lazy', 600000, 0, 3), ctr('mid', 600000, 0.3, 5)],
      1, // free one core
    );
    assert.equal(t.get('lazy')!.quotaUs, 480000);
    assert.equal(t.get('lazy')!.op, 'scaleDown');
    assert.equal(t.get('mid')!.quotaUs, 600000, 'one step already freed 1.2 cores');
    assert.equal(t.get('busy')!.quotaUs, 600000);
    const more = run(
      'overload',
      [ctr('busy', 600000, 0.9, 6), ctr('lazy', 600000, 0, 3), ctr('mid', 600000, 0.3, 5)],
      2,
    );
    assert.equal(more.get('mid')!.quotaUs, 480000);
    assert.equal(more.get('busy')!.quotaUs, 600000);
  });

  it('gives unused extra quota back, keeps the burst static, resets for policies without quota burst', () => {
    const t = run('idle', [
      ctr('unused', 600000, 0, 0.1),
      ctr('only', 200000, 1, 2, { ...auto, policy: 'cpuBurstOnly' }),
    ]);
    assert.equal(t.get('unused')!.quotaUs, 480000);
    assert.equal(t.get('unused')!.burstUs, 200000);
    assert.equal(t.get('only')!.quotaUs, undefined, 'not the agent’s to set');
    assert.equal(t.get('only')!.op, 'reset');
    assert.equal(t.get('only')!.burstUs, 200000);
  });

  it('an empty bucket scales down even while throttled', () => {
    const out = controlRound({
      nowMs: 1000,
      nodeState: 'idle',
      excessCores: 0,
      containers: [ctr('a', 600000, 1, 6, { ...auto, cfsQuotaBurstPeriodSeconds: 10 })],
      buckets: new Map([['a', { capacity: 2000, tokens: 100, lastMs: 0 }]]),
    });
    assert.equal(out.targets.get('a')!.quotaUs, 480000);
    assert.equal(out.targets.get('a')!.reason, 'burst time budget used up');
  });
});

describe('/proc/stat', () => {
  it('parses busy/total jiffies and CPU count; usage in cores', () => {
    const a = parseProcStat('cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 0 0 1\ncpu1 1 0 0 1\n')!;
    const b = parseProcStat('cpu  200 0 200 1000 0 0 0 0 0 0\ncpu0 1 0 0 1\ncpu1 1 0 0 1\n')!;
    assert.equal(a.cpus, 2);
    assert.equal(usageCores(a, b), (200 / 400) * 2);
    assert.equal(parseProcStat('garbage'), null);
  });
});
