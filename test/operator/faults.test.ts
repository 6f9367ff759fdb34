// Faults: the reflector against devcluster's fault injection (dropped watch, 410, API 500s, stalled
// watch), and the whole operator through a broker restart and a leader crash — decisions converge
// within 5 s and none are lost.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { memoryLogger } from '../../common/log.js';
import { type DevCluster, startDevCluster } from '../../devcluster/index.js';
import { makeApis } from '../../operator/kube/client.js';
import { type KubeObject, Reflector } from '../../operator/kube/reflector.js';
import { pod } from './fixtures.js';
import {
  FakeAgent,
  kubeConfigFor,
  type OperatorUnderTest,
  podNames,
  seedCluster,
  startAedes,
  startOperator,
  type TestBroker,
  waitFor,
} from './harness.js';

const CONVERGE_MS = 5_000;

describe('reflector under API faults', () => {
  let cluster: DevCluster;
  let refl: Reflector<KubeObject>;
  const { log, lines } = memoryLogger('reflector');
  const metrics: string[] = [];
  let n = 0;
  const requests: string[] = [];

  before(async () => {
    cluster = await startDevCluster({
      bookmarkIntervalMs: 200,
      onRequest: (m, url) => requests.push(`${m} ${url}`),
    });
    const apis = makeApis(kubeConfigFor(cluster));
    refl = new Reflector<KubeObject>({
      resource: 'configmaps',
      path: '/api/v1/namespaces/default/configmaps',
      list: () => apis.core.listNamespacedConfigMap({ namespace: 'default' }) as any,
      watch: apis.watch,
      log,
      backoffInitialMs: 50,
      backoffMaxMs: 1000,
      staleMs: 1500,
      watchTimeoutSeconds: 60,
      onMetric: (what, detail) => metrics.push(detail ? `${what}:${detail}` : what),
    });
    refl.start();
    await waitFor('synced', () => refl.synced);
  });
  after(async () => {
    refl?.stop();
    await cluster?.close();
  });

  const createCm = () => {
    const name = `cm-${++n}`;
    cluster.store.create({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace: 'default' },
      data: {},
    } as any);
    return `default/${name}`;
  };
  const seen = (key: string) => refl.cache.has(key);

  it('watches from the list resourceVersion with bookmarks and a server timeout', async () => {
    await waitFor('watch open', () => cluster.faults.watches.size > 0);
    cluster.faults.closeWatches(); // the request log records a watch when it ends
    const w = await waitFor('watch request logged', () =>
      requests.find(
        (r) => r.startsWith('GET /api/v1/namespaces/default/configmaps?') && r.includes('watch=true'),
      ),
    );
    const q = new URL(w.split(' ')[1]!, 'http://x').searchParams;
    assert.equal(q.get('allowWatchBookmarks'), 'true');
    assert.ok(Number(q.get('timeoutSeconds')) >= 60 && Number(q.get('timeoutSeconds')) <= 120);
    assert.ok(Number(q.get('resourceVersion')) > 0);
  });

  it('advances its resourceVersion from bookmarks when its own objects do not change', async () => {
    const before = Number(refl.resourceVersion);
    cluster.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bookmark-bump' } } as any);
    await waitFor('bookmark', () => Number(refl.resourceVersion) > before, 5000);
  });

  it('sees changes made while its watch was dropped', async () => {
    await waitFor('watch open', () => cluster.faults.watches.size > 0);
    assert.ok(cluster.faults.dropWatches() > 0);
    const k = createCm();
    const t0 = Date.now();
    await waitFor('object after drop', () => seen(k), CONVERGE_MS);
    assert.ok(Date.now() - t0 < CONVERGE_MS);
  });

  it('relists on 410 Gone and still sees every object', async () => {
    const before410 = metrics.filter((m) => m === 'relist410').length;
    const lists = metrics.filter((m) => m === 'list').length;
    await waitFor('watch open', () => cluster.faults.watches.size > 0);
    const k1 = createCm();
    cluster.store.compact();
    cluster.faults.goneAllWatchesNow();
    const k2 = createCm();
    await waitFor('objects after 410', () => seen(k1) && seen(k2), CONVERGE_MS);
    await waitFor('410 counted', () => metrics.filter((m) => m === 'relist410').length > before410);
    assert.ok(metrics.filter((m) => m === 'list').length > lists, 'relisted');
  });

  it('deletes objects that vanished while it was relisting', async () => {
    const k = createCm();
    await waitFor('created', () => seen(k));
    await waitFor('watch open', () => cluster.faults.watches.size > 0);
    cluster.faults.stallWatches();
    cluster.store.delete('v1', 'ConfigMap', k.split('/')[1]!, 'default');
    cluster.store.compact();
    cluster.faults.goneAllWatchesNow();
    await waitFor('deleted after relist', () => !seen(k), CONVERGE_MS);
  });

  it('backs off exponentially on API 500s and recovers', async () => {
    const before = lines.filter(
      (l) => l.message === 'Watch failed, retrying' || l.message === 'List failed, retrying',
    ).length;
    cluster.faults.reset();
    cluster.faults.failRequests({ share: 1, code: 500, path: /configmaps/, count: 4 });
    cluster.faults.dropWatches();
    const k = createCm();
    await waitFor('object after 500s', () => seen(k), CONVERGE_MS);
    const retries = lines
      .filter((l) => l.message === 'Watch failed, retrying' || l.message === 'List failed, retrying')
      .slice(before);
    assert.ok(retries.length >= 3, `expected retries, got ${retries.length}`);
    assert.ok(cluster.faults.injected >= 3);
    const delays = retries.map((r) => r.retryInMs as number);
    assert.ok(delays[2]! > delays[0]!, `delays grow: ${delays.join(',')}`);
    assert.ok(retries.some((r) => r.code === 500));
  });

  it('resyncs a stalled (silent) watch', async () => {
    cluster.faults.reset();
    await waitFor('watch open', () => cluster.faults.watches.size > 0);
    cluster.faults.stallWatches();
    const k = createCm();
    await waitFor('object after stale resync', () => seen(k), CONVERGE_MS);
    assert.ok(metrics.includes('stale'));
    cluster.faults.reset();
  });
});

describe('operator under broker restart and leader crash', () => {
  let cluster: DevCluster;
  let broker: TestBroker;
  let a: OperatorUnderTest;
  let b: OperatorUnderTest | undefined;
  let agent: FakeAgent;

  before(async () => {
    cluster = await startDevCluster();
    await seedCluster(cluster, ['node-a']);
    broker = await startAedes();
    agent = new FakeAgent(broker.url, 'node-a');
    await agent.start();
    a = await startOperator(cluster, broker, { identity: 'op-a', leaderElect: true });
    await waitFor('op-a leads', () => a.controller.isLeader);
    b = await startOperator(cluster, broker, { identity: 'op-b', leaderElect: true });
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await agent?.stop();
    await broker?.close();
    await cluster?.close();
  });

  const annotate = (name: string) =>
    cluster.store.create(pod(name, { annotations: { 'cpuburst.io/enabled': 'true' } }) as any);

  it('only the leader publishes', async () => {
    annotate('p1');
    await waitFor('p1', () => podNames(agent.latest).includes('default/p1'));
    assert.equal(agent.latest!.operator, 'op-a');
    assert.equal(b!.controller.isLeader, false);
    assert.equal(b!.published.length, 0);
    const lease = cluster.store.get(
      'coordination.k8s.io/v1',
      'Lease',
      'cpuburst-operator',
      'cpuburst-system',
    ) as any;
    assert.equal(lease.spec.holderIdentity, 'op-a');
    assert.match(lease.spec.renewTime, /\.\d{6}Z$/, 'MicroTime with 6 fractional digits');
  });

  it('converges after a broker restart (retained state lost) within 5 s', async () => {
    const port = broker.port;
    await broker.close();
    annotate('during-outage');
    broker = await startAedes(port);
    const t0 = Date.now();
    await waitFor(
      'decision after restart',
      () => podNames(agent.latest).includes('default/during-outage'),
      CONVERGE_MS + 3000,
    );
    const ms = Date.now() - t0;
    assert.ok(ms < CONVERGE_MS, `converged in ${ms} ms`);
    assert.deepEqual(podNames(agent.latest), ['default/during-outage', 'default/p1'], 'nothing lost');
  });

  it('a standby takes over after the leader crashes and loses nothing, versions keep rising', async () => {
    const lastVersion = agent.latest!.version;
    await a.stop({ release: false }); // crash: the lease is not released
    const t0 = Date.now();
    annotate('after-crash');
    await waitFor(
      'standby publishes',
      () => podNames(agent.latest).includes('default/after-crash'),
      CONVERGE_MS + 3000,
    );
    const ms = Date.now() - t0;
    assert.ok(ms < CONVERGE_MS, `took over and published in ${ms} ms`);
    assert.equal(agent.latest!.operator, 'op-b');
    assert.ok(agent.latest!.version > lastVersion);
    assert.deepEqual(podNames(agent.latest), ['default/after-crash', 'default/during-outage', 'default/p1']);
    assert.equal(b!.controller.isLeader, true);
  });

  it('a graceful stop releases the lease so the next replica leads at once', async () => {
    const c = await startOperator(cluster, broker, {
      identity: 'op-c',
      leaderElect: true,
      leaseMs: 10_000,
      renewMs: 8000,
    });
    try {
      await b!.stop({ release: true });
      b = undefined;
      const t0 = Date.now();
      await waitFor('op-c leads', () => c.controller.isLeader, 8000);
      assert.ok(Date.now() - t0 < 6000, 'no wait for the 15 s lease to expire');
      annotate('after-release');
      await waitFor(
        'op-c publishes',
        () => podNames(agent.latest).includes('default/after-release'),
        CONVERGE_MS,
      );
      assert.equal(agent.latest!.operator, 'op-c');
    } finally {
      await c.stop();
    }
  });
});
