// The reflector's big-cluster options: `transform` (slim cached objects) and `watchList` (initial
// state as a sendInitialEvents watch stream, falling back to list on servers without it).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { memoryLogger, silentLogger } from '../../common/log.js';
import { type DevCluster, startDevCluster } from '../../devcluster/index.js';
import { makeApis } from '../../operator/kube/client.js';
import { INITIAL_EVENTS_END, type KubeObject, Reflector } from '../../operator/kube/reflector.js';
import { slimPod } from '../../operator/planner/pods.js';
import { pod } from './fixtures.js';
import { kubeConfigFor, waitFor } from './harness.js';

describe('reflector watch-list against devcluster', () => {
  let cluster: DevCluster;
  const requests: string[] = [];
  let refl: Reflector<KubeObject & { metadata: any; spec?: any }>;
  const changes: string[] = [];

  before(async () => {
    cluster = await startDevCluster({
      bookmarkIntervalMs: 200,
      onRequest: (m, url) => requests.push(`${m} ${url}`),
    });
    for (let i = 0; i < 30; i++) {
      const p = pod(`p-${i}`, { node: 'node-a' }) as any;
      p.metadata.annotations = { 'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(500) };
      p.metadata.managedFields = [{ manager: 'kubectl', operation: 'Update' }];
      cluster.store.create(p);
    }
    const apis = makeApis(kubeConfigFor(cluster));
    refl = new Reflector({
      resource: 'pods',
      path: '/api/v1/pods',
      list: () => {
        requests.push('LIST-CALLED');
        return apis.core.listPodForAllNamespaces() as any;
      },
      watch: apis.watch,
      log: silentLogger('reflector'),
      watchTimeoutSeconds: 60,
      transform: slimPod as any,
      watchList: true,
    });
    refl.on('change', (type: string, o: KubeObject) => changes.push(`${type} ${o.metadata?.name}`));
    refl.start();
    await waitFor('synced', () => refl.synced);
  });
  after(async () => {
    refl?.stop();
    await cluster?.close();
  });

  it('gets the initial state from one sendInitialEvents watch, never a list', async () => {
    assert.equal(refl.cache.size, 30);
    assert.equal(changes.filter((c) => c.startsWith('ADDED')).length, 30);
    assert.ok(!requests.includes('LIST-CALLED'), 'no list request');
    assert.ok(refl.usesWatchList);
    assert.ok(Number(refl.resourceVersion) > 0, 'resourceVersion from the end bookmark');
    cluster.faults.closeWatches();
    const w = await waitFor('watch-list request logged', () =>
      requests.find((r) => r.startsWith('GET /api/v1/pods?') && r.includes('sendInitialEvents=true')),
    );
    const q = new URL(w.split(' ')[1]!, 'http://x').searchParams;
    assert.equal(q.get('resourceVersionMatch'), 'NotOlderThan');
    assert.equal(q.get('allowWatchBookmarks'), 'true');
    assert.equal(q.get('resourceVersion'), null);
  });

  it('caches the transformed objects, from the initial events and from later watch events', async () => {
    const p0 = refl.cache.get('default/p-0')!;
    assert.deepEqual(p0.metadata.annotations, {});
    assert.equal(p0.metadata.managedFields, undefined);
    assert.equal(p0.spec.nodeName, 'node-a');
    const live = cluster.store.get('v1', 'Pod', 'p-1', 'default')!;
    live.metadata.annotations['cpuburst.io/enabled'] = 'true';
    cluster.store.update(live);
    await waitFor(
      'modified',
      () => refl.cache.get('default/p-1')?.metadata.annotations['cpuburst.io/enabled'],
    );
    assert.deepEqual(refl.cache.get('default/p-1')!.metadata.annotations, { 'cpuburst.io/enabled': 'true' });
  });

  it('resumes from its resourceVersion after a dropped watch (no new watch-list)', async () => {
    await waitFor('watch open', () => cluster.faults.watches.size > 0);
    const lists = requests.filter((r) => r.includes('sendInitialEvents=true')).length;
    cluster.faults.dropWatches();
    cluster.store.create(pod('late', { node: 'node-b' }) as any);
    await waitFor('late pod seen', () => refl.cache.has('default/late'), 5000);
    cluster.faults.closeWatches();
    await waitFor('resumed watch logged', () =>
      requests.some((r) => r.startsWith('GET /api/v1/pods?') && /resourceVersion=\d/.test(r)),
    );
    assert.equal(requests.filter((r) => r.includes('sendInitialEvents=true')).length, lists);
  });

  it('a 410 relists through a new watch-list and deletes what vanished meanwhile', async () => {
    await waitFor('watch open', () => cluster.faults.watches.size > 0);
    cluster.faults.stallWatches();
    cluster.store.delete('v1', 'Pod', 'p-2', 'default');
    cluster.store.compact();
    cluster.faults.goneAllWatchesNow();
    await waitFor('p-2 deleted', () => !refl.cache.has('default/p-2'), 5000);
    assert.ok(changes.includes('DELETED p-2'));
    assert.ok(!requests.includes('LIST-CALLED'));
  });
});

/** A scripted stand-in for client-node's Watch: each call runs the next script. */
function fakeWatch(
  scripts: Array<(cb: (type: string, obj: any) => void, done: (err: any) => void, query: any) => void>,
) {
  const calls: Array<Record<string, unknown>> = [];
  return {
    calls,
    watch: async (
      _path: string,
      query: any,
      cb: (type: string, obj: any) => void,
      done: (err: any) => void,
    ) => {
      calls.push(query);
      const script = scripts.shift();
      if (script) setImmediate(() => script(cb, done, query));
      return new AbortController();
    },
  };
}

const obj = (name: string, rv: string) => ({ metadata: { name, namespace: 'ns', resourceVersion: rv } });

describe('reflector watch-list fallbacks', () => {
  it('falls back to list when the server refuses sendInitialEvents (4xx)', async (t) => {
    const { log, lines } = memoryLogger('reflector');
    const w = fakeWatch([
      (_cb, done) => done(Object.assign(new Error('Unprocessable Entity'), { statusCode: 422 })),
      () => {}, // the watch after the list stays open
    ]);
    let lists = 0;
    const r = new Reflector<KubeObject>({
      resource: 'pods',
      path: '/api/v1/pods',
      list: async () => {
        lists++;
        return { items: [obj('a', '5')], metadata: { resourceVersion: '5' } };
      },
      watch: w as any,
      log,
      watchList: true,
    });
    t.after(() => r.stop());
    r.start();
    await waitFor('synced', () => r.synced, 3000);
    assert.equal(lists, 1);
    assert.equal(w.calls[0]!.sendInitialEvents, true);
    await waitFor('watch after list', () => w.calls.length === 2, 3000);
    assert.equal(w.calls[1]!.resourceVersion, '5');
    assert.equal(w.calls[1]!.sendInitialEvents, undefined);
    assert.equal(r.usesWatchList, false);
    assert.ok(lines.some((l) => l.message === 'Watch-list not supported, falling back to list'));
  });

  it('falls back to list when a plain bookmark comes before the end marker (server ignores the option)', async (t) => {
    const w = fakeWatch([
      (cb) => {
        cb('ADDED', obj('a', '3'));
        cb('BOOKMARK', { metadata: { resourceVersion: '4' } });
      },
      () => {},
    ]);
    let lists = 0;
    const r = new Reflector<KubeObject>({
      resource: 'pods',
      path: '/api/v1/pods',
      list: async () => {
        lists++;
        return { items: [obj('a', '3'), obj('b', '4')], metadata: { resourceVersion: '4' } };
      },
      watch: w as any,
      log: silentLogger('reflector'),
      watchList: true,
    });
    t.after(() => r.stop());
    r.start();
    await waitFor('synced', () => r.synced, 3000);
    assert.equal(lists, 1);
    assert.deepEqual([...r.cache.keys()].sort(), ['ns/a', 'ns/b']);
  });

  it('is not synced before the end marker, and a stream broken before it starts over', async (t) => {
    let synced = 0;
    const w = fakeWatch([
      (cb, done) => {
        cb('ADDED', obj('a', '1'));
        done(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
      },
      (cb) => {
        cb('ADDED', obj('a', '1'));
        cb('ADDED', obj('b', '2'));
        cb('BOOKMARK', { metadata: { resourceVersion: '9', annotations: { [INITIAL_EVENTS_END]: 'true' } } });
      },
    ]);
    const r = new Reflector<KubeObject>({
      resource: 'pods',
      path: '/api/v1/pods',
      list: async () => {
        throw new Error('list must not be called');
      },
      watch: w as any,
      log: silentLogger('reflector'),
      watchList: true,
      backoffInitialMs: 10,
      transform: (o: any) => ({ metadata: { ...o.metadata, slim: true } }) as any,
    });
    r.on('synced', () => synced++);
    t.after(() => r.stop());
    r.start();
    await waitFor('second attempt', () => w.calls.length === 2, 3000);
    await waitFor('synced', () => r.synced, 3000);
    assert.equal(synced, 1);
    assert.equal(r.resourceVersion, '9');
    assert.equal(w.calls[1]!.sendInitialEvents, true, 'a broken initial stream is retried as a watch-list');
    assert.deepEqual([...r.cache.keys()].sort(), ['ns/a', 'ns/b']);
    assert.equal((r.cache.get('ns/a')!.metadata as any).slim, true);
  });
});
