// The slim projections the reflectors cache (slimPod, slimMeta) must plan exactly like the full objects.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfigMapData } from '../../operator/planner/config.js';
import { plan } from '../../operator/planner/plan.js';
import { slimMeta, slimPod } from '../../operator/planner/pods.js';
import { namespace, node, pod, strategy } from './fixtures.js';

function fatten<T extends Record<string, any>>(p: T): T {
  // What a real API object carries and the planner never reads.
  const o = structuredClone(p) as any;
  o.metadata.managedFields = [{ manager: 'kubectl', operation: 'Update', fieldsV1: { 'f:spec': {} } }];
  o.metadata.resourceVersion = '42';
  o.metadata.annotations = {
    ...o.metadata.annotations,
    'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(p),
  };
  for (const c of o.spec.containers ?? []) {
    c.image = 'registry.k8s.io/pause:3.10';
    c.env = [{ name: 'A', value: 'b' }];
    c.resources = { ...c.resources, limits: { ...c.resources?.limits, 'ephemeral-storage': '1Gi' } };
  }
  o.spec.volumes = [{ name: 'v', emptyDir: {} }];
  o.status.conditions = [{ type: 'Ready', status: 'True' }];
  o.status.podIP = '10.0.0.1';
  for (const s of o.status.containerStatuses ?? []) {
    s.image = 'pause';
    s.restartCount = 3;
  }
  return o;
}

const pods = [
  pod('plain', { node: 'node-a', labels: { app: 'web' } }),
  pod('two', { node: 'node-a', labels: { app: 'web' }, containers: 2 }),
  pod('opt-in', { node: 'node-b', annotations: { 'cpuburst.io/enabled': 'true' } }),
  pod('opt-out', { node: 'node-b', labels: { app: 'web' }, annotations: { 'cpuburst.io/enabled': 'false' } }),
  pod('override', {
    node: 'node-a',
    labels: { app: 'web' },
    annotations: { 'cpuburst.io/config': '{"policy":"cpuBurstOnly","cpuBurstPercent":50}' },
  }),
  pod('bad-override', {
    node: 'node-a',
    annotations: { 'cpuburst.io/enabled': 'true', 'cpuburst.io/config': '{' },
  }),
  pod('no-limit', { node: 'node-a', labels: { app: 'web' }, cpuLimit: null }),
  pod('done', { node: 'node-b', labels: { app: 'web' }, phase: 'Succeeded' }),
  pod('lsr', { node: 'node-b', labels: { app: 'web', 'koordinator.sh/qosClass': 'LSR' } }),
  pod('other-ns', { ns: 'shop', node: 'node-b', labels: { app: 'web' } }),
];
const withInit = pod('init', { node: 'node-a', labels: { app: 'web' } }) as any;
withInit.spec.initContainers = [
  { name: 'setup', resources: { limits: { cpu: '200m' } } },
  { name: 'sidecar', restartPolicy: 'Always', resources: { limits: { cpu: '100m', memory: '64Mi' } } },
];
withInit.status.initContainerStatuses = [
  { name: 'sidecar', containerID: 'containerd://side', state: { running: { startedAt: 'x' } } },
];
const terminating = pod('terminating', { node: 'node-a', labels: { app: 'web' } }) as any;
terminating.metadata.deletionTimestamp = '2026-01-01T00:00:00Z';
const guaranteed = pod('guaranteed', { node: 'node-a', labels: { app: 'web' } }) as any;
guaranteed.spec.containers[0].resources = { limits: { cpu: '2', memory: '1Gi' } }; // requests default to limits
pods.push(withInit, terminating, guaranteed);

describe('slim projections', () => {
  it('slimPod drops what the planner never reads', () => {
    const s = slimPod(fatten(withInit));
    assert.equal((s.metadata as any).managedFields, undefined);
    assert.deepEqual(s.metadata.annotations, {});
    assert.equal(s.metadata.resourceVersion, '42');
    assert.deepEqual(s.spec!.containers![0], {
      name: 'c0',
      resources: { limits: { cpu: '1', memory: '128Mi' }, requests: { cpu: '500m', memory: '128Mi' } },
    });
    assert.equal(s.spec!.initContainers![1]!.restartPolicy, 'Always');
    assert.ok(JSON.stringify(s).length * 2 < JSON.stringify(fatten(withInit)).length);
  });

  it('planning slim objects gives the same plan as the full objects', () => {
    const cm = parseConfigMapData({
      'cpu-burst-config': JSON.stringify({
        clusterStrategy: { policy: 'auto' },
        nodeStrategies: [
          { name: 'big', nodeSelector: { matchLabels: { pool: 'big' } }, policy: 'cfsQuotaBurstOnly' },
        ],
      }),
    });
    assert.ok(cm.ok);
    const nodes = [node('node-a'), node('node-b', { pool: 'big' })].map((n) => ({
      ...n,
      metadata: { ...n.metadata, resourceVersion: '7', annotations: { 'node.alpha.kubernetes.io/ttl': '0' } },
      status: { images: [{ names: ['pause'], sizeBytes: 1 }], capacity: { cpu: '4' } },
    }));
    const namespaces = [namespace('default'), namespace('shop', { team: 'shop' })];
    const strategies = [
      strategy('web', { policy: 'cpuBurstOnly', podSelector: { matchLabels: { app: 'web' } } }),
      strategy('shop', {
        policy: 'auto',
        priority: 5,
        namespaceSelector: { matchLabels: { team: 'shop' } },
        nodeSelector: { matchLabels: { pool: 'big' } },
      }),
    ];
    const now = new Date('2026-11-25T10:00:00Z');
    const full = plan({
      strategies,
      clusterConfig: cm.config,
      nodes,
      namespaces,
      pods: pods.map(fatten),
      now,
    });
    const slim = plan({
      strategies,
      clusterConfig: cm.config,
      nodes: nodes.map(slimMeta),
      namespaces: namespaces.map(slimMeta),
      pods: pods.map(fatten).map(slimPod),
      now,
    });
    assert.deepEqual(slim, full);
    // and the plan is not trivial: decisions, exclusions and issues all appear
    const decided = [...full.nodes.values()].flatMap((n) => n.pods.map((p) => p.name));
    assert.ok(decided.includes('init') && decided.includes('override') && decided.includes('guaranteed'));
    assert.ok(full.podIssues.length > 0);
    assert.ok(full.strategies.get('web')!.exclusions.length > 0);
  });
});

describe('hash52 (per-pod decision keys)', () => {
  it('is stable, stays below 2^53 and tells near-identical decisions apart', async () => {
    const { hash52 } = await import('../../operator/controller.js');
    const a = JSON.stringify({ uid: 'u', config: { cpuBurstPercent: 40 } });
    const b = JSON.stringify({ uid: 'u', config: { cpuBurstPercent: 41 } });
    assert.equal(hash52(a), hash52(a));
    assert.notEqual(hash52(a), hash52(b));
    const seen = new Set<number>();
    for (let i = 0; i < 20_000; i++) {
      const h = hash52(`{"uid":"pod-${i}","pct":${i % 100}}`);
      assert.ok(Number.isSafeInteger(h) && h >= 0);
      seen.add(h);
    }
    assert.equal(seen.size, 20_000);
  });
});
