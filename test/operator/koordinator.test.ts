// A Koordinator user switches without rewriting config: the operator reads slo-controller-config in
// koordinator-system (crds/examples/configmap-koordinator.yaml, applied unchanged) and every eligible
// pod gets the cluster strategy, pods on matching nodes the node strategy; LSR pods are excluded.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import { type DevCluster, startDevCluster } from '../../devcluster/index.js';
import { REPO_ROOT } from '../support/cli.js';
import { namespace, node, pod } from './fixtures.js';
import {
  FakeAgent,
  type OperatorUnderTest,
  seedCluster,
  startAedes,
  startOperator,
  type TestBroker,
  waitFor,
} from './harness.js';

describe("Koordinator's slo-controller-config, as is", () => {
  let cluster: DevCluster;
  let broker: TestBroker;
  let op: OperatorUnderTest;
  const agents: FakeAgent[] = [];

  before(async () => {
    cluster = await startDevCluster();
    await seedCluster(cluster, ['plain-node']);
    cluster.store.apply(node('alios-node', { 'kubernetes.io/kernel': 'alios' }) as any);
    cluster.store.apply(namespace('koordinator-system') as any);
    cluster.store.create(
      YAML.parse(readFileSync(path.join(REPO_ROOT, 'crds/examples/configmap-koordinator.yaml'), 'utf8')),
    );
    broker = await startAedes();
    for (const n of ['plain-node', 'alios-node']) {
      const a = new FakeAgent(broker.url, n);
      await a.start();
      agents.push(a);
    }
    op = await startOperator(cluster, broker, {
      configMapName: 'slo-controller-config',
      configMapNamespace: 'koordinator-system',
    });
  });
  after(async () => {
    await op?.stop();
    for (const a of agents) await a.stop();
    await broker?.close();
    await cluster?.close();
  });

  it('applies clusterStrategy and the matching nodeStrategies entry to unannotated pods', async () => {
    cluster.store.create(pod('app-1', { node: 'plain-node' }) as any);
    cluster.store.create(pod('app-2', { node: 'alios-node' }) as any);
    cluster.store.create(
      pod('lsr', { node: 'plain-node', labels: { 'koordinator.sh/qosClass': 'LSR' } }) as any,
    );
    const plain = await waitFor('plain-node doc', () =>
      agents[0]!.docs.find((d) => d.pods.some((p) => p.name === 'app-1')),
    );
    const alios = await waitFor('alios-node doc', () =>
      agents[1]!.docs.find((d) => d.pods.some((p) => p.name === 'app-2')),
    );
    const a1 = plain.pods.find((p) => p.name === 'app-1')!;
    assert.deepEqual(a1.config, {
      policy: 'auto',
      cpuBurstPercent: 100,
      cfsQuotaBurstPercent: 300,
      cfsQuotaBurstPeriodSeconds: -1,
    });
    assert.equal(a1.source, 'ConfigMap/clusterStrategy');
    const a2 = alios.pods.find((p) => p.name === 'app-2')!;
    assert.equal(a2.config.policy, 'cfsQuotaBurstOnly');
    assert.equal(a2.config.cfsQuotaBurstPercent, 400);
    assert.equal(a2.source, 'ConfigMap/nodeStrategies/alios');
    await waitFor('LSR listed, not decided', () => {
      const d = agents[0]!.latest!;
      return d.excludedPods.some((e) => e.name === 'lsr') && !d.pods.some((p) => p.name === 'lsr');
    });
    assert.equal(plain.nodeConfig.sharePoolThresholdPercent, 50);
  });
});
