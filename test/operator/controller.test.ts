// The operator against devcluster + an in-process aedes broker + fake agents: strategies, annotations,
// status, Events, bad input (annotation, ConfigMap, agent garbage), dryRun.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type DevCluster, startDevCluster } from '../../devcluster/index.js';
import { contentKey, plan } from '../../operator/planner/plan.js';
import { topics } from '../../protocol/index.js';
import { pod, strategy } from './fixtures.js';
import {
  CM_NAME,
  CM_NS,
  FakeAgent,
  type OperatorUnderTest,
  podNames,
  seedCluster,
  startAedes,
  startOperator,
  type TestBroker,
  waitFor,
} from './harness.js';

describe('operator controller against devcluster', () => {
  let cluster: DevCluster;
  let broker: TestBroker;
  let op: OperatorUnderTest;
  const agents: Record<string, FakeAgent> = {};

  const cr = (name: string) => cluster.store.get('cpuburst.io/v1alpha1', 'CpuBurstStrategy', name) as any;
  const ready = (name: string) => cr(name)?.status?.conditions?.find((c: any) => c.type === 'Ready');
  const events = (ns: string) => cluster.store.list('v1', 'Event', ns) as any[];

  before(async () => {
    cluster = await startDevCluster();
    await seedCluster(cluster);
    broker = await startAedes();
    for (const n of ['node-a', 'node-b']) {
      agents[n] = new FakeAgent(broker.url, n);
      await agents[n].start();
    }
    op = await startOperator(cluster, broker, { memoryLog: true });
    await waitFor('caches synced', () => op.controller.synced);
  });
  after(async () => {
    await op?.stop();
    for (const a of Object.values(agents)) await a.stop();
    await broker?.close();
    await cluster?.close();
  });

  it('publishes an opted-in pod to its node, with the defaults, and nothing for others', async () => {
    cluster.store.create(pod('opted', { annotations: { 'cpuburst.io/enabled': 'true' } }) as any);
    cluster.store.create(pod('plain') as any);
    const doc = await waitFor(
      'decision for opted',
      () => podNames(agents['node-a']!.latest).includes('default/opted') && agents['node-a']!.latest,
    );
    assert.deepEqual(podNames(doc), ['default/opted']);
    assert.equal(doc.pods[0]!.config.policy, 'none');
    assert.equal(doc.pods[0]!.config.cpuBurstPercent, 100);
    assert.equal(doc.operator, 'op-1');
    assert.equal(doc.pods[0]!.containers[0]!.cpuLimitMilli, 1000);
  });

  it('a strategy selects pods, turns Ready after the agents ack, and changes/deletes propagate', async () => {
    cluster.store.create(pod('web-1', { ns: 'shop', node: 'node-b', labels: { app: 'web' } }) as any);
    cluster.store.create(
      strategy('web', {
        policy: 'auto',
        cfsQuotaBurstPercent: 200,
        podSelector: { matchLabels: { app: 'web' } },
      }) as any,
    );
    const doc = await waitFor('web-1 on node-b', () =>
      agents['node-b']!.docs.find((d) => podNames(d).includes('shop/web-1')),
    );
    const d = doc.pods.find((p) => p.name === 'web-1')!;
    assert.equal(d.config.policy, 'auto');
    assert.equal(d.config.cfsQuotaBurstPercent, 200);
    assert.equal(d.source, 'CpuBurstStrategy/web');
    await waitFor('Ready=True', () => ready('web')?.status === 'True');
    const st = cr('web').status;
    assert.equal(st.podsMatched, 1);
    assert.equal(st.podsApplied, 1);
    assert.equal(st.nodesMatched, 2);
    assert.equal(st.observedGeneration, cr('web').metadata.generation);
    assert.equal(ready('web').observedGeneration, cr('web').metadata.generation);

    const before = agents['node-b']!.latest!.version;
    const live = cr('web');
    live.spec.cfsQuotaBurstPercent = 400;
    cluster.store.update(live);
    await waitFor(
      'new value on node-b',
      () =>
        agents['node-b']!.latest?.pods.find((p) => p.name === 'web-1')?.config.cfsQuotaBurstPercent === 400,
    );
    assert.ok(agents['node-b']!.latest!.version > before, 'versions increase');

    cluster.store.delete('cpuburst.io/v1alpha1', 'CpuBurstStrategy', 'web');
    await waitFor('web-1 dropped', () => !podNames(agents['node-b']!.latest).includes('shop/web-1'));
  });

  it('republishes only nodes whose content changed', async () => {
    const a = agents['node-a']!.docs.length;
    const b = agents['node-b']!.docs.length;
    cluster.store.create(
      pod('only-b', { node: 'node-b', annotations: { 'cpuburst.io/enabled': 'true' } }) as any,
    );
    await waitFor('only-b', () => podNames(agents['node-b']!.latest).includes('default/only-b'));
    await op.controller.queue.idle();
    assert.equal(agents['node-a']!.docs.length, a, 'node-a was not republished');
    assert.equal(agents['node-b']!.docs.length, b + 1);
  });

  it('invalid annotation JSON: Warning Event on the pod and no decision for it', async () => {
    cluster.store.create(
      pod('bad-json', {
        annotations: { 'cpuburst.io/enabled': 'true', 'cpuburst.io/config': '{"policy": auto' },
      }) as any,
    );
    const ev = await waitFor('Event', () =>
      events('default').find(
        (e) => e.involvedObject?.name === 'bad-json' && e.reason === 'InvalidBurstConfig',
      ),
    );
    assert.equal(ev.type, 'Warning');
    assert.match(ev.message, /not valid JSON/);
    await op.controller.queue.idle();
    assert.ok(!podNames(agents['node-a']!.latest).includes('default/bad-json'));
  });

  it('kernel refusals reported by an agent become pod Events and CR failures', async () => {
    agents['node-a']!.ackErrors = (doc) =>
      doc.pods
        .filter((p) => p.name === 'refused')
        .map((p) => ({
          uid: p.uid,
          namespace: p.namespace,
          name: p.name,
          reason: 'KernelRefused',
          message: 'write cpu.cfs_burst_us: invalid argument',
        }));
    cluster.store.create(pod('refused', { labels: { tier: 'x' } }) as any);
    cluster.store.create(
      strategy('tier-x', { policy: 'cpuBurstOnly', podSelector: { matchLabels: { tier: 'x' } } }) as any,
    );
    await waitFor('Degraded', () =>
      cr('tier-x')?.status?.conditions?.find((c: any) => c.type === 'Degraded' && c.status === 'True'),
    );
    assert.equal(cr('tier-x').status.podsFailed, 1);
    assert.equal(cr('tier-x').status.failures[0].reason, 'KernelRefused');
    assert.equal(ready('tier-x').status, 'False');
    const ev = await waitFor('pod Event', () =>
      events('default').find((e) => e.involvedObject?.name === 'refused' && e.reason === 'KernelRefused'),
    );
    assert.equal(ev.type, 'Warning');
    agents['node-a']!.ackErrors = () => [];
  });

  it('a broken ConfigMap keeps the previous config and raises a Warning Event', async () => {
    cluster.store.create({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: CM_NAME, namespace: CM_NS },
      data: { 'cpu-burst-config': '{"clusterStrategy":{"policy":"none","cpuBurstPercent":60}}' },
    } as any);
    await waitFor(
      'cm applied',
      () => agents['node-a']!.latest?.pods.find((p) => p.name === 'opted')?.config.cpuBurstPercent === 60,
    );
    const live = cluster.store.get('v1', 'ConfigMap', CM_NAME, CM_NS) as any;
    live.data['cpu-burst-config'] = '{"clusterStrategy": {"policy": ';
    cluster.store.update(live);
    const ev = await waitFor('Warning Event', () =>
      events(CM_NS).find((e) => e.involvedObject?.kind === 'ConfigMap' && e.reason === 'InvalidConfig'),
    );
    assert.equal(ev.type, 'Warning');
    assert.match(ev.message, /not valid JSON.*keeping the previous configuration/);
    assert.ok(op.lines.some((l) => l.message === 'Rejected ConfigMap, keeping the previous configuration'));
    await op.controller.queue.idle();
    assert.equal(
      agents['node-a']!.latest?.pods.find((p) => p.name === 'opted')?.config.cpuBurstPercent,
      60,
      'old config kept',
    );
  });

  it('garbage on agent topics is counted, logged and ignored', async () => {
    const c = agents['node-a']!.client;
    await c.publishAsync(topics.status('node-a'), 'not json{', { qos: 1 });
    await c.publishAsync(topics.ack('node-a'), JSON.stringify({ kind: 'DecisionAck', version: -3 }), {
      qos: 1,
    });
    await waitFor('invalid counted', async () => {
      const m = await op.metrics.registry.getSingleMetricAsString('cpuburst_agent_messages_total');
      return /kind="status",result="invalid"} 1/.test(m) && /kind="ack",result="invalid"} 1/.test(m);
    });
    assert.ok(op.lines.some((l) => l.message === 'Dropped an invalid agent message' && l.kind === 'status'));
    // still working afterwards
    cluster.store.create(pod('after-garbage', { annotations: { 'cpuburst.io/enabled': 'true' } }) as any);
    await waitFor('still publishing', () =>
      podNames(agents['node-a']!.latest).includes('default/after-garbage'),
    );
  });

  it('dryRun publishes nothing but shows what would be in status', async () => {
    cluster.store.create(pod('dry-1', { labels: { dry: 'yes' } }) as any);
    cluster.store.create(
      strategy('shadow', {
        policy: 'auto',
        dryRun: true,
        podSelector: { matchLabels: { dry: 'yes' } },
      }) as any,
    );
    await waitFor(
      'DryRun status',
      () => ready('shadow')?.reason === 'DryRun' && cr('shadow').status.podsMatched === 1,
    );
    assert.match(ready('shadow').message, /would apply to 1 pod/);
    await op.controller.queue.idle();
    assert.ok(!podNames(agents['node-a']!.latest).includes('default/dry-1'));
  });

  it('excluded pods are listed with a reason in status', async () => {
    cluster.store.create(pod('lsr-1', { labels: { grp: 'e', 'koordinator.sh/qosClass': 'LSR' } }) as any);
    cluster.store.create(pod('nolimit', { labels: { grp: 'e' }, cpuLimit: null }) as any);
    cluster.store.create(
      strategy('excl', { policy: 'auto', podSelector: { matchLabels: { grp: 'e' } } }) as any,
    );
    await waitFor('exclusions', () => cr('excl')?.status?.podsExcluded === 2);
    const reasons = cr('excl')
      .status.exclusions.map((e: any) => `${e.name}:${e.reason}`)
      .sort();
    assert.deepEqual(reasons, ['lsr-1:QoSClassExcluded', 'nolimit:NoCPULimit']);
    await waitFor('LSR pod listed for node accounting', () =>
      agents['node-a']!.latest!.excludedPods.some((e) => e.name === 'lsr-1' && e.qos === 'LSR'),
    );
  });

  it('incremental per-node planning equals a full plan of the same caches', async () => {
    for (let i = 0; i < 20; i++)
      cluster.store.create(
        pod(`churn-${i}`, {
          node: i % 2 ? 'node-a' : 'node-b',
          labels: { app: i % 3 ? 'web' : 'x' },
          annotations: i % 4 ? {} : { 'cpuburst.io/enabled': 'true' },
        }) as any,
      );
    for (let i = 0; i < 20; i += 3) cluster.store.delete('v1', 'Pod', `churn-${i}`, 'default');
    for (let i = 1; i < 20; i += 3) {
      const live = cluster.store.get('v1', 'Pod', `churn-${i}`, 'default') as any;
      live.metadata.annotations = {
        'cpuburst.io/enabled': 'true',
        'cpuburst.io/config': '{"cpuBurstPercent":7}',
      };
      cluster.store.update(live);
    }
    await waitFor(
      'caught up',
      () =>
        op.controller.pods.cache.size === cluster.store.list('v1', 'Pod').length &&
        op.controller.pods.cache.get('default/churn-19')?.metadata?.annotations?.['cpuburst.io/config'],
    );
    await op.controller.queue.idle();
    const c = op.controller;
    const full = plan({
      strategies: [...c.strategies.cache.values()],
      clusterConfig: c.clusterConfigInUse, // the last good ConfigMap (the current one is broken)
      nodes: [...c.nodes.cache.values()],
      namespaces: [...c.namespaces.cache.values()],
      pods: [...c.pods.cache.values()] as any,
      now: new Date(),
    });
    for (const [node, content] of full.nodes)
      assert.equal(contentKey(c.plan!.nodes.get(node)!), contentKey(content), node);
    assert.ok(
      c.plan!.nodes.get('node-a')!.pods.some((p) => p.name === 'churn-1' && p.config.cpuBurstPercent === 7),
    );
  });
});
