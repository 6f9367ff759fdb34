import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_BURST_CONFIG,
  type DecisionDocument,
  decode,
  encode,
  identities,
  nextVersion,
  parseNodeTopic,
  topics,
  validate,
} from '../../protocol/index.js';

const doc: DecisionDocument = {
  apiVersion: 'cpuburst.io/v1',
  kind: 'NodeDecisions',
  node: 'node-a',
  version: 7,
  generatedAt: new Date(0).toISOString(),
  operator: 'cpuburst-operator-0',
  nodeConfig: { sharePoolThresholdPercent: 50 },
  pods: [
    {
      uid: '0b1c',
      namespace: 'default',
      name: 'web',
      qosClass: 'Burstable',
      config: { ...DEFAULT_BURST_CONFIG, policy: 'auto' },
      source: 'CpuBurstStrategy/web',
      containers: [
        { name: 'app', containerID: 'containerd://abc', cpuLimitMilli: 2000, kind: 'app', running: true },
        { name: 'init', containerID: '', cpuLimitMilli: null, kind: 'init', running: false },
      ],
    },
  ],
  excludedPods: [
    { uid: 'x', namespace: 'd', name: 'db', qos: 'LSR', qosClass: 'Guaranteed', cpuRequestMilli: 8000 },
  ],
};

describe('protocol topics', () => {
  it('builds and parses node topics', () => {
    assert.equal(topics.decisions('node-a'), 'cpuburst/v1/nodes/node-a/decisions');
    assert.equal(topics.ack('node-a'), 'cpuburst/v1/nodes/node-a/agent/ack');
    assert.deepEqual(parseNodeTopic(topics.status('n1')), { node: 'n1', kind: 'status' });
    assert.deepEqual(parseNodeTopic(topics.decisions('n1')), { node: 'n1', kind: 'decisions' });
    assert.equal(parseNodeTopic('cpuburst/v1/nodes/N_1/decisions'), null);
    assert.equal(parseNodeTopic('cpuburst/v1/nodes/n1/agent/other'), null);
  });

  it('refuses node names that would break the topic tree', () => {
    for (const bad of ['a/b', '+', '#', '', 'UPPER', 'x'.repeat(300)]) {
      assert.throws(() => topics.decisions(bad), /invalid node name/);
    }
  });

  it('maps agent identities to nodes', () => {
    assert.equal(identities.agent('n1'), 'agent:n1');
    assert.equal(identities.agentNode('agent:n1'), 'n1');
    assert.equal(identities.agentNode('agent:n/1'), null);
    assert.equal(identities.agentNode('operator'), null);
  });
});

describe('protocol payloads', () => {
  it('round-trips a valid decision document', () => {
    const r = decode.decisions(encode(doc));
    assert.ok(r.ok);
    assert.deepEqual(r.value, doc);
  });

  const invalid: Array<[string, unknown, RegExp]> = [
    [
      'policy outside the enum',
      { ...doc, pods: [{ ...doc.pods[0], config: { ...doc.pods[0]!.config, policy: 'max' } }] },
      /policy/,
    ],
    ['negative version', { ...doc, version: -1 }, /version/],
    [
      'burst percent out of range',
      { ...doc, pods: [{ ...doc.pods[0], config: { ...doc.pods[0]!.config, cpuBurstPercent: 10001 } }] },
      /cpuBurstPercent/,
    ],
    ['unknown field', { ...doc, extra: 1 }, /additional/],
    ['wrong kind', { ...doc, kind: 'Other' }, /kind/],
  ];
  for (const [name, value, re] of invalid) {
    it(`rejects ${name}`, () => {
      const r = decode.decisions(JSON.stringify(value));
      assert.equal(r.ok, false);
      assert.match((r as { error: string }).error, re);
    });
  }

  it('rejects garbage and oversized payloads with a reason', () => {
    const r1 = decode.status('{not json');
    assert.equal(r1.ok, false);
    assert.match((r1 as { error: string }).error, /invalid JSON/);
    const r2 = decode.ack(Buffer.alloc(5 * 1024 * 1024, 32));
    assert.match((r2 as { error: string }).error, /exceeds/);
  });

  it('validates pod overrides as partial configs', () => {
    assert.ok(validate.podOverride({ policy: 'auto' }));
    assert.ok(validate.podOverride({}));
    assert.equal(validate.podOverride({ sharePoolThresholdPercent: 10 }), false);
    assert.equal(validate.podOverride({ cfsQuotaBurstPercent: 50 }), false);
  });
});

describe('decision versions', () => {
  it('move forward even when the clock goes back', () => {
    assert.equal(nextVersion(0, 1000), 1000);
    assert.equal(nextVersion(5000, 1000), 5001);
    let v = 0;
    for (const now of [10, 10, 9, 11, 3]) {
      const n = nextVersion(v, now);
      assert.ok(n > v);
      v = n;
    }
  });
});

describe('agent credentials', () => {
  it('derive per-node passwords that only verify for their own identity', async () => {
    const { deriveAgentPassword, verifyAgentPassword } = await import('../../protocol/index.js');
    const p = deriveAgentPassword('k3y', 'node-a');
    assert.ok(verifyAgentPassword('k3y', 'agent:node-a', p));
    assert.equal(verifyAgentPassword('k3y', 'agent:node-b', p), false);
    assert.equal(verifyAgentPassword('other', 'agent:node-a', p), false);
    assert.equal(verifyAgentPassword('k3y', 'operator', p), false);
  });
});
