// @kubernetes/client-node 1.4.0 flows against the emulator, as the operator uses them.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
  Watch,
} from '@kubernetes/client-node';
import { type DevCluster, startDevCluster } from '../../devcluster/index.js';
import { FIXTURES, loadYaml, waitFor } from './helpers.js';

let dc: DevCluster;
let kc: KubeConfig;
const requests: string[] = [];

before(async () => {
  dc = await startDevCluster({ onRequest: (m, url) => requests.push(`${m} ${url}`) });
  kc = new KubeConfig();
  kc.loadFromString(dc.kubeConfig());
  dc.store.create(loadYaml(`${FIXTURES}/widgets.yaml`));
});
after(() => dc.close());

describe('client-node 1.4.0', () => {
  it('lists pods with a field selector and reads typed objects', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    for (const [name, node] of [
      ['p1', 'node-a'],
      ['p2', 'node-b'],
    ])
      await core.createNamespacedPod({
        namespace: 'default',
        body: { metadata: { name }, spec: { nodeName: node, containers: [{ name: 'c', image: 'i' }] } },
      });
    const list = await core.listNamespacedPod({
      namespace: 'default',
      fieldSelector: 'spec.nodeName=node-b',
    });
    assert.deepEqual(
      list.items.map((p) => p.metadata?.name),
      ['p2'],
    );
    assert.ok(list.metadata?.resourceVersion);
    const p = await core.readNamespacedPod({ namespace: 'default', name: 'p1' });
    assert.ok(p.metadata?.creationTimestamp instanceof Date);
    await assert.rejects(
      core.readNamespacedPod({ namespace: 'default', name: 'nope' }),
      (e: unknown) => e instanceof ApiException && e.code === 404,
    );
  });

  it('patches a custom resource and its /status with merge patch', async () => {
    const co = kc.makeApiClient(CustomObjectsApi);
    const g = { group: 'test.devcluster.io', version: 'v1', namespace: 'default', plural: 'widgets' };
    await co.createNamespacedCustomObject({
      ...g,
      body: {
        apiVersion: 'test.devcluster.io/v1',
        kind: 'Widget',
        metadata: { name: 'w' },
        spec: { size: 1 },
      },
    });
    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    const st = await co.patchNamespacedCustomObjectStatus(
      {
        ...g,
        name: 'w',
        body: { status: { phase: 'Ready', conditions: [{ type: 'Ready', status: 'True' }] } },
        fieldManager: 'test',
      },
      merge,
    );
    assert.equal(st.status.phase, 'Ready');
    assert.equal(st.metadata.generation, 1);
    const sp = await co.patchNamespacedCustomObject({ ...g, name: 'w', body: { spec: { size: 7 } } }, merge);
    assert.equal(sp.spec.size, 7);
    assert.equal(sp.metadata.generation, 2);
    // Without the header client-node sends json-patch+json: a merge-style body is then rejected, like a real server.
    await assert.rejects(
      co.patchNamespacedCustomObject({ ...g, name: 'w', body: { spec: { size: 8 } } }),
      (e: unknown) => e instanceof ApiException && e.code >= 400,
    );
    const invalid = await co
      .patchNamespacedCustomObject({ ...g, name: 'w', body: { spec: { size: 1000 } } }, merge)
      .catch((e) => e);
    assert.ok(invalid instanceof ApiException);
    assert.equal(invalid.code, 422);
    assert.match(String(invalid.body), /spec.size in body should be less than or equal to 100/);
  });

  it('creates and replaces a Lease with MicroTime and optimistic concurrency', async () => {
    const coord = kc.makeApiClient(CoordinationV1Api);
    const created = await coord.createNamespacedLease({
      namespace: 'default',
      body: {
        metadata: { name: 'leader' },
        spec: { holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: new V1MicroTime() },
      },
    });
    assert.match(String(created.spec?.renewTime), /\.\d{6}Z$/);
    const renewed = await coord.replaceNamespacedLease({
      namespace: 'default',
      name: 'leader',
      body: { ...created, spec: { ...created.spec, renewTime: new V1MicroTime() } },
    });
    assert.notEqual(renewed.metadata?.resourceVersion, created.metadata?.resourceVersion);
    await assert.rejects(
      coord.replaceNamespacedLease({
        namespace: 'default',
        name: 'leader',
        body: { ...created, spec: { ...created.spec, holderIdentity: 'b' } },
      }),
      (e: unknown) => e instanceof ApiException && e.code === 409,
    );
    // A plain Date serialises with 3 digits: rejected with 400 like the real API server.
    await assert.rejects(
      coord.createNamespacedLease({
        namespace: 'default',
        body: { metadata: { name: 'ms' }, spec: { renewTime: new Date() as V1MicroTime } },
      }),
      (e: unknown) => e instanceof ApiException && e.code === 400,
    );
  });

  it('KubernetesObjectApi finds resources through discovery (built-in and custom)', async () => {
    const api = KubernetesObjectApi.makeApiClient(kc);
    await api.create({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'koa', namespace: 'default' },
      data: { a: '1' },
    } as any);
    const r: any = await api.read({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'koa', namespace: 'default' },
    });
    assert.equal(r.data.a, '1');
    const w: any = await api.read({
      apiVersion: 'test.devcluster.io/v1',
      kind: 'Widget',
      metadata: { name: 'w', namespace: 'default' },
    });
    assert.equal(w.spec.size, 7);
    const p: any = await api.patch(
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'koa', namespace: 'default' },
        data: { b: '2' },
      } as any,
      undefined,
      undefined,
      'test',
      undefined,
      PatchStrategy.MergePatch,
    );
    assert.deepEqual(p.data, { a: '1', b: '2' });
    const ssa: any = await api.patch(
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'ssa', namespace: 'default' },
        data: { c: '3' },
      } as any,
      undefined,
      undefined,
      'test',
      true,
      PatchStrategy.ServerSideApply,
    );
    assert.equal(ssa.data.c, '3');
    await api.delete({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'koa', namespace: 'default' },
    } as any);
  });

  it('raw Watch receives ADDED/MODIFIED/DELETED', async () => {
    const seen: string[] = [];
    const watch = new Watch(kc);
    const rv = String(dc.store.resourceVersion);
    const req = await watch.watch(
      '/api/v1/namespaces/default/configmaps',
      { resourceVersion: rv },
      (type, obj) => seen.push(`${type} ${obj.metadata.name}`),
      () => {},
    );
    dc.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'rw', namespace: 'default' } });
    dc.store.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'rw', namespace: 'default' },
      data: { x: 'y' },
    });
    dc.store.delete('v1', 'ConfigMap', 'rw', 'default');
    await waitFor(() => seen.length >= 3, 'three events');
    req.abort();
    assert.deepEqual(seen, ['ADDED rw', 'MODIFIED rw', 'DELETED rw']);
  });

  it('makeInformer relists after a 410 Gone and keeps receiving events', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    const path = '/api/v1/namespaces/kube-system/configmaps';
    const informer = makeInformer(kc, path, () => core.listNamespacedConfigMap({ namespace: 'kube-system' }));
    const events: string[] = [];
    const errors: unknown[] = [];
    informer.on('add', (o) => events.push(`add ${o.metadata?.name}`));
    informer.on('delete', (o) => events.push(`delete ${o.metadata?.name}`));
    informer.on('error', (e) => errors.push(e));
    dc.store.create({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'a', namespace: 'kube-system' },
    });
    await informer.start();
    await waitFor(() => events.includes('add a'), 'add a');
    const lists = () => requests.filter((r) => r.startsWith(`GET ${path}`) && !r.includes('watch=')).length;
    assert.equal(lists(), 1);
    await waitFor(() => dc.faults.watches.size > 0, 'informer watch open');
    // Objects deleted while the informer's history is gone must disappear from its cache on relist.
    dc.faults.stallWatches();
    dc.store.delete('v1', 'ConfigMap', 'a', 'kube-system');
    dc.store.compact(0);
    dc.faults.goneAllWatchesNow();
    await waitFor(() => lists() >= 2, 'relist after 410');
    dc.store.create({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'b', namespace: 'kube-system' },
    });
    await waitFor(() => events.includes('add b'), 'add b after relist');
    assert.deepEqual(errors, [], 'no informer error before stop()');
    await informer.stop(); // 1.4.0 reports its own abort as an 'error' event
    assert.ok(events.includes('delete a'), events.join());
    assert.deepEqual(
      informer.list().map((o) => o.metadata?.name),
      ['b'],
    );
  });
});
