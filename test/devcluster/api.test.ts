// The emulator's HTTP semantics, checked with raw requests (what any client sees on the wire).
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { type DevCluster, startDevCluster } from '../../devcluster/index.js';
import { FIXTURES, loadYaml, openWatch, request, waitFor } from './helpers.js';

let dc: DevCluster;
let u: string;
const cm = (name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, ...extra },
  data: { a: '1' },
});
const W = '/apis/test.devcluster.io/v1/namespaces/default/widgets';

before(async () => {
  dc = await startDevCluster({ watchWindow: 50, bookmarkIntervalMs: 100 });
  u = dc.url;
  const r = await request(
    u,
    'POST',
    '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
    loadYaml(`${FIXTURES}/widgets.yaml`),
  );
  assert.equal(r.status, 201, JSON.stringify(r.body));
});
after(() => dc.close());

describe('discovery', () => {
  it('serves /version, /api, /apis and resource lists including CRD types', async () => {
    assert.equal((await request(u, 'GET', '/version')).body.major, '1');
    assert.deepEqual((await request(u, 'GET', '/api')).body.versions, ['v1']);
    const groups = (await request(u, 'GET', '/apis')).body.groups.map((g: any) => g.name);
    for (const g of [
      'apps',
      'coordination.k8s.io',
      'events.k8s.io',
      'apiextensions.k8s.io',
      'test.devcluster.io',
    ])
      assert.ok(groups.includes(g), g);
    const v1 = (await request(u, 'GET', '/api/v1')).body.resources.map((r: any) => r.name);
    assert.ok(v1.includes('pods') && v1.includes('pods/status') && v1.includes('configmaps'));
    const w = (await request(u, 'GET', '/apis/test.devcluster.io/v1')).body.resources;
    assert.deepEqual(
      w.map((r: any) => r.name),
      ['widgets', 'widgets/status'],
    );
    assert.equal(w[0].namespaced, true);
  });
});

describe('CRUD semantics', () => {
  it('creates, conflicts, replaces with optimistic concurrency, deletes', async () => {
    const base = '/api/v1/namespaces/default/configmaps';
    const c = await request(u, 'POST', base, cm('crud'));
    assert.equal(c.status, 201);
    assert.match(c.body.metadata.uid, /^[0-9a-f-]{36}$/);
    assert.match(c.body.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const dup = await request(u, 'POST', base, cm('crud'));
    assert.equal(dup.status, 409);
    assert.equal(dup.body.reason, 'AlreadyExists');
    assert.equal(dup.body.kind, 'Status');
    const rv1 = c.body.metadata.resourceVersion;
    const ok = await request(u, 'PUT', `${base}/crud`, { ...c.body, data: { a: '2' } });
    assert.equal(ok.status, 200);
    assert.ok(Number(ok.body.metadata.resourceVersion) > Number(rv1));
    const stale = await request(u, 'PUT', `${base}/crud`, { ...c.body, data: { a: '3' } });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.reason, 'Conflict');
    assert.match(stale.body.message, /the object has been modified/);
    assert.equal((await request(u, 'DELETE', `${base}/crud`)).status, 200);
    const gone = await request(u, 'GET', `${base}/crud`);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.message, 'configmaps "crud" not found');
  });

  it('refuses objects in a namespace that does not exist', async () => {
    const r = await request(u, 'POST', '/api/v1/namespaces/nope/configmaps', cm('x'));
    assert.equal(r.status, 404);
    assert.equal(r.body.message, 'namespaces "nope" not found');
  });

  it('generateName, finalizers and deletionTimestamp', async () => {
    const base = '/api/v1/namespaces/default/configmaps';
    const c = await request(u, 'POST', base, {
      ...cm(''),
      metadata: { generateName: 'gen-', finalizers: ['x.io/keep'] },
    });
    const name = c.body.metadata.name;
    assert.match(name, /^gen-[a-z0-9]{5}$/);
    const d = await request(u, 'DELETE', `${base}/${name}`);
    assert.equal(d.status, 200);
    assert.ok(d.body.metadata.deletionTimestamp);
    assert.equal((await request(u, 'GET', `${base}/${name}`)).status, 200);
    const p = await request(
      u,
      'PATCH',
      `${base}/${name}`,
      { metadata: { finalizers: null } },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    assert.equal(p.status, 200);
    assert.equal((await request(u, 'GET', `${base}/${name}`)).status, 404);
  });
});

describe('patches', () => {
  it('merge patch, JSON patch (with a failing test op), strategic merge patch by container name', async () => {
    const base = '/api/v1/namespaces/default/pods';
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'patchme', labels: { a: '1' } },
      spec: {
        containers: [
          { name: 'a', image: 'x' },
          { name: 'b', image: 'y', env: [{ name: 'E', value: '1' }] },
        ],
      },
    };
    assert.equal((await request(u, 'POST', base, pod)).status, 201);
    const m = await request(
      u,
      'PATCH',
      `${base}/patchme`,
      { metadata: { labels: { a: null, b: '2' } } },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    assert.deepEqual(m.body.metadata.labels, { b: '2' });
    const j = await request(
      u,
      'PATCH',
      `${base}/patchme`,
      [{ op: 'add', path: '/metadata/annotations', value: { x: 'y' } }],
      {
        'Content-Type': 'application/json-patch+json',
      },
    );
    assert.deepEqual(j.body.metadata.annotations, { x: 'y' });
    const jf = await request(
      u,
      'PATCH',
      `${base}/patchme`,
      [{ op: 'test', path: '/metadata/name', value: 'other' }],
      {
        'Content-Type': 'application/json-patch+json',
      },
    );
    assert.equal(jf.status, 500);
    const s = await request(
      u,
      'PATCH',
      `${base}/patchme`,
      { spec: { containers: [{ name: 'b', image: 'z', env: [{ name: 'F', value: '2' }] }] } },
      { 'Content-Type': 'application/strategic-merge-patch+json' },
    );
    assert.equal(s.status, 200);
    assert.deepEqual(
      s.body.spec.containers.map((c: any) => [c.name, c.image, (c.env ?? []).map((e: any) => e.name).join()]),
      [
        ['a', 'x', ''],
        ['b', 'z', 'E,F'],
      ],
    );
    const bad = await request(u, 'PATCH', `${base}/patchme`, {}, { 'Content-Type': 'text/plain' });
    assert.equal(bad.status, 415);
  });
});

describe('custom resources', () => {
  it('validates against the schema with the real message shape, applies defaults, runs CEL', async () => {
    const bad = await request(u, 'POST', W, {
      apiVersion: 'test.devcluster.io/v1',
      kind: 'Widget',
      metadata: { name: 'w' },
      spec: { size: 200 },
    });
    assert.equal(bad.status, 422);
    assert.equal(bad.body.reason, 'Invalid');
    assert.equal(
      bad.body.message,
      'Widget.test.devcluster.io "w" is invalid: spec.size: Invalid value: 200: spec.size in body should be less than or equal to 100',
    );
    assert.equal(bad.body.details.causes[0].field, 'spec.size');
    const en = await request(u, 'POST', W, {
      apiVersion: 'test.devcluster.io/v1',
      kind: 'Widget',
      metadata: { name: 'w' },
      spec: { size: 1, color: 'pink' },
    });
    assert.match(
      en.body.message,
      /spec.color: Unsupported value: "pink": supported values: "red", "green", "blue"/,
    );
    const cel = await request(u, 'POST', W, {
      apiVersion: 'test.devcluster.io/v1',
      kind: 'Widget',
      metadata: { name: 'w' },
      spec: { size: 2, color: 'red' },
    });
    assert.equal(cel.status, 422);
    assert.match(
      cel.body.message,
      /spec.size: Invalid value: "object": red widgets must have size of at least 10/,
    );
    const ok = await request(u, 'POST', W, {
      apiVersion: 'test.devcluster.io/v1',
      kind: 'Widget',
      metadata: { name: 'w' },
      spec: { size: 3, immutableId: 'a', unknown: 1, free: { any: { thing: 1 } } },
    });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    assert.equal(ok.body.spec.color, 'green');
    assert.equal(ok.body.spec.unknown, undefined, 'unknown fields are pruned');
    assert.deepEqual(ok.body.spec.free, { any: { thing: 1 } });
    const tr = await request(
      u,
      'PATCH',
      `${W}/w`,
      { spec: { immutableId: 'b' } },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    assert.equal(tr.status, 422);
    assert.match(tr.body.message, /immutableId is immutable/);
    const strict = await request(u, 'POST', `${W}?fieldValidation=Strict`, {
      apiVersion: 'test.devcluster.io/v1',
      kind: 'Widget',
      metadata: { name: 'w2' },
      spec: { size: 3, bogus: true },
    });
    assert.equal(strict.status, 400);
    assert.match(strict.body.message, /strict decoding error: unknown field "spec.bogus"/);
  });

  it('bumps generation on spec changes only and keeps spec and status apart', async () => {
    const c = await request(u, 'POST', W, {
      apiVersion: 'test.devcluster.io/v1',
      kind: 'Widget',
      metadata: { name: 'gen' },
      spec: { size: 5 },
      status: { phase: 'ignored' },
    });
    assert.equal(c.body.metadata.generation, 1);
    assert.equal(c.body.status, undefined);
    const st = await request(
      u,
      'PATCH',
      `${W}/gen/status`,
      { status: { phase: 'Ready' }, spec: { size: 99 } },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    assert.equal(st.status, 200);
    assert.equal(st.body.status.phase, 'Ready');
    assert.equal(st.body.spec.size, 5, 'spec via /status is ignored');
    assert.equal(st.body.metadata.generation, 1);
    const lab = await request(
      u,
      'PATCH',
      `${W}/gen`,
      { metadata: { labels: { x: 'y' } }, status: { phase: 'Hacked' } },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    assert.equal(lab.body.metadata.generation, 1, 'metadata changes do not bump generation');
    assert.equal(lab.body.status.phase, 'Ready', 'status via the main resource is ignored');
    const sp = await request(
      u,
      'PATCH',
      `${W}/gen`,
      { spec: { size: 6 } },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    assert.equal(sp.body.metadata.generation, 2);
    const put = await request(u, 'PUT', `${W}/gen/status`, { ...sp.body, status: { phase: 'Done' } });
    assert.equal(put.body.status.phase, 'Done');
    const stale = await request(u, 'PUT', `${W}/gen/status`, { ...sp.body, status: { phase: 'Stale' } });
    assert.equal(stale.status, 409);
  });

  it('serves Table responses with the CRD printer columns', async () => {
    const r = await request(u, 'GET', W, undefined, {
      Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json',
    });
    assert.equal(r.body.kind, 'Table');
    assert.deepEqual(
      r.body.columnDefinitions.map((c: any) => c.name),
      ['Name', 'Size', 'Ready', 'Color', 'Age'],
    );
    const row = r.body.rows.find((x: any) => x.cells[0] === 'gen');
    assert.equal(row.cells[1], 6);
  });
});

describe('selectors and pagination', () => {
  before(async () => {
    for (const [name, node, tier] of [
      ['s1', 'n1', 'web'],
      ['s2', 'n2', 'db'],
      ['s3', 'n1', 'cache'],
    ])
      await request(u, 'POST', '/api/v1/namespaces/kube-public/pods', {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, labels: { tier: tier!, ...(name === 's3' ? { canary: 'true' } : {}) } },
        spec: { nodeName: node, containers: [{ name: 'c', image: 'i' }] },
      });
  });
  const names = async (q: string) =>
    (await request(u, 'GET', `/api/v1/namespaces/kube-public/pods?${q}`)).body.items
      .map((p: any) => p.metadata.name)
      .join(',');

  it('label selectors: =, !=, in, notin, exists, !', async () => {
    assert.equal(await names('labelSelector=tier%3Dweb'), 's1');
    assert.equal(await names('labelSelector=tier!%3Dweb'), 's2,s3');
    assert.equal(await names(`labelSelector=${encodeURIComponent('tier in (web,db)')}`), 's1,s2');
    assert.equal(await names(`labelSelector=${encodeURIComponent('tier notin (web,db)')}`), 's3');
    assert.equal(await names('labelSelector=canary'), 's3');
    assert.equal(await names('labelSelector=!canary'), 's1,s2');
  });

  it('field selectors: spec.nodeName, metadata.name, metadata.namespace', async () => {
    assert.equal(await names('fieldSelector=spec.nodeName%3Dn1'), 's1,s3');
    assert.equal(await names('fieldSelector=metadata.name%3Ds2'), 's2');
    const all = await request(u, 'GET', '/api/v1/pods?fieldSelector=metadata.namespace%3Dkube-public');
    assert.deepEqual(
      all.body.items.map((p: any) => p.metadata.name),
      ['s1', 's2', 's3'],
    );
  });

  it('limit and continue page through a list', async () => {
    const p1 = await request(u, 'GET', '/api/v1/namespaces/kube-public/pods?limit=2');
    assert.equal(p1.body.items.length, 2);
    assert.equal(p1.body.metadata.remainingItemCount, 1);
    const p2 = await request(
      u,
      'GET',
      `/api/v1/namespaces/kube-public/pods?limit=2&continue=${p1.body.metadata.continue}`,
    );
    assert.deepEqual(
      p2.body.items.map((p: any) => p.metadata.name),
      ['s3'],
    );
    assert.equal(p2.body.metadata.continue, undefined);
  });
});

describe('watch', () => {
  const base = '/api/v1/namespaces/default/configmaps';

  it('streams events from a resourceVersion in order, then live', async () => {
    const start = (await request(u, 'GET', base)).body.metadata.resourceVersion;
    await request(u, 'POST', base, cm('w1'));
    await request(
      u,
      'PATCH',
      `${base}/w1`,
      { data: { b: '2' } },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    const w = openWatch(u, `${base}?watch=true&resourceVersion=${start}`);
    await waitFor(() => w.events.length >= 2, 'replayed events');
    await request(u, 'DELETE', `${base}/w1`);
    await waitFor(() => w.events.length >= 3, 'live delete');
    w.close();
    assert.deepEqual(
      w.events.map((e) => `${e.type}:${e.object.metadata.name}`),
      ['ADDED:w1', 'MODIFIED:w1', 'DELETED:w1'],
    );
    const rvs = w.events.map((e) => Number(e.object.metadata.resourceVersion));
    assert.deepEqual(
      rvs,
      [...rvs].sort((a, b) => a - b),
    );
  });

  it('answers 410 Gone beyond the retained window', async () => {
    const old = (await request(u, 'GET', base)).body.metadata.resourceVersion;
    for (let i = 0; i < 60; i++) await request(u, 'POST', base, cm(`flood-${i}`));
    dc.store.compact(10);
    const w = openWatch(u, `${base}?watch=true&resourceVersion=${old}`);
    await w.ended;
    assert.equal(w.events.length, 1);
    assert.equal(w.events[0].type, 'ERROR');
    assert.equal(w.events[0].object.code, 410);
    const list = await request(u, 'GET', `${base}?limit=1`);
    const cont = list.body.metadata.continue;
    await request(u, 'POST', base, cm('after-compact'));
    dc.store.compact(0);
    const stale = await request(u, 'GET', `${base}?limit=1&continue=${cont}`);
    assert.equal(stale.status, 410);
  });

  it('bookmarks, timeoutSeconds, label selector transitions', async () => {
    const w = openWatch(
      u,
      `${base}?watch=true&allowWatchBookmarks=true&timeoutSeconds=1&labelSelector=sel%3Dyes&resourceVersion=${dc.store.resourceVersion}`,
    );
    await request(u, 'POST', base, cm('sel', { labels: { sel: 'yes' } }));
    await request(
      u,
      'PATCH',
      `${base}/sel`,
      { metadata: { labels: { sel: 'no' } } },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    await w.ended;
    const types = w.events.filter((e) => e.type !== 'BOOKMARK').map((e) => e.type);
    assert.deepEqual(types, ['ADDED', 'DELETED']);
    assert.ok(w.events.some((e) => e.type === 'BOOKMARK' && Number(e.object.metadata.resourceVersion) > 0));
  });

  it('programmatic store writes notify watchers', async () => {
    const w = openWatch(u, `${base}?watch=true&resourceVersion=${dc.store.resourceVersion}`);
    await waitFor(() => w.status === 200, 'watch open');
    dc.store.create({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'direct', namespace: 'default' },
    });
    await waitFor(() => w.events.length >= 1, 'event');
    w.close();
    assert.equal(w.events[0].object.metadata.name, 'direct');
  });
});

describe('faults', () => {
  it('fails a share of requests, adds latency, forces 410 and drops watches', async () => {
    dc.faults.failRequests({ share: 1, code: 429, path: /configmaps/, count: 2 });
    const a = await request(u, 'GET', '/api/v1/namespaces/default/configmaps');
    assert.equal(a.status, 429);
    assert.equal(a.headers['retry-after'], '1');
    assert.equal((await request(u, 'GET', '/api/v1/namespaces/default/pods')).status, 200);
    assert.equal((await request(u, 'GET', '/api/v1/namespaces/default/configmaps')).status, 429);
    assert.equal((await request(u, 'GET', '/api/v1/namespaces/default/configmaps')).status, 200);
    dc.faults.addLatency(300, /secrets/);
    const t0 = Date.now();
    await request(u, 'GET', '/api/v1/namespaces/default/secrets');
    assert.ok(Date.now() - t0 >= 280);
    dc.faults.reset();
    dc.faults.goneOnNextWatch();
    const g = openWatch(u, '/api/v1/namespaces/default/configmaps?watch=true');
    await g.ended;
    assert.equal(g.events[0].object.code, 410);
    const d = openWatch(
      u,
      `/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=${dc.store.resourceVersion}`,
    );
    await waitFor(() => dc.faults.watches.size > 0, 'watch registered');
    assert.ok(dc.faults.dropWatches() >= 1);
    await d.ended;
  });
});

describe('leases and events', () => {
  it('requires MicroTime with 6 fractional digits', async () => {
    const base = '/apis/coordination.k8s.io/v1/namespaces/default/leases';
    const bad = await request(u, 'POST', base, {
      metadata: { name: 'l' },
      spec: { holderIdentity: 'a', renewTime: '2026-01-01T00:00:00.123Z' },
    });
    assert.equal(bad.status, 400);
    const ok = await request(u, 'POST', base, {
      metadata: { name: 'l' },
      spec: { holderIdentity: 'a', renewTime: '2026-01-01T00:00:00.123000Z' },
    });
    assert.equal(ok.status, 201);
    const ev = await request(u, 'POST', '/apis/events.k8s.io/v1/namespaces/default/events', {
      metadata: { generateName: 'e-' },
      eventTime: '2026-01-01T00:00:00.000001Z',
      reason: 'Tested',
      action: 'Test',
      reportingController: 'x',
      reportingInstance: 'y',
    });
    assert.equal(ev.status, 201);
  });
});

describe('server-side apply (approximate)', () => {
  const base = '/api/v1/namespaces/default/configmaps';
  const apply = (body: unknown, manager: string, force = false) =>
    request(u, 'PATCH', `${base}/ssa?fieldManager=${manager}${force ? '&force=true' : ''}`, body, {
      'Content-Type': 'application/apply-patch+yaml',
    });
  const cfg = (data: Record<string, string>) => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'ssa' },
    data,
  });

  it('creates, tracks managedFields, conflicts on fields another manager changed, removes dropped fields', async () => {
    const c = await apply(cfg({ x: '1', z: '2' }), 'm1');
    assert.equal(c.status, 201, JSON.stringify(c.body));
    assert.deepEqual(c.body.metadata.managedFields[0].fieldsV1, { 'f:data': { 'f:x': {}, 'f:z': {} } });
    const again = await apply(cfg({ x: '1', z: '2' }), 'm1');
    assert.equal(
      again.body.metadata.resourceVersion,
      c.body.metadata.resourceVersion,
      'a no-op apply is a no-op',
    );
    await request(
      u,
      'PATCH',
      `${base}/ssa?fieldManager=editor`,
      { data: { x: '9' } },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    const conflict = await apply(cfg({ x: '1', z: '2' }), 'm1');
    assert.equal(conflict.status, 409);
    assert.match(
      conflict.body.message,
      /Apply failed with 1 conflict: conflict with "editor" using v1: \.data\.x/,
    );
    const forced = await apply(cfg({ x: '1' }), 'm1', true);
    assert.equal(forced.status, 200);
    assert.deepEqual(
      forced.body.data,
      { x: '1' },
      'z dropped from the applied config and owned by nobody else → removed',
    );
    const noManager = await request(u, 'PATCH', `${base}/ssa`, cfg({}), {
      'Content-Type': 'application/apply-patch+yaml',
    });
    assert.equal(noManager.status, 400);
  });
});

describe('bad input', () => {
  it('gets clear 4xx Status answers, never a hang or a crash', async () => {
    const base = '/api/v1/namespaces/default/configmaps';
    const badJson = await request(u, 'POST', base, '{"metadata":');
    assert.equal(badJson.status, 400);
    assert.match(badJson.body.message, /could not be decoded/);
    const badRv = await request(u, 'GET', `${base}?watch=true&resourceVersion=abc`);
    assert.equal(badRv.status, 400);
    const badSel = await request(u, 'GET', `${base}?labelSelector=${encodeURIComponent('a in b')}`);
    assert.equal(badSel.status, 400);
    const wrongKind = await request(u, 'POST', base, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'k' },
    });
    assert.equal(wrongKind.status, 400);
    const unknown = await request(u, 'GET', '/apis/nope.io/v1/things');
    assert.equal(unknown.status, 404);
    const labels = await request(u, 'POST', base, { metadata: { name: 'lbl', labels: { a: 1 } } });
    assert.equal(labels.status, 400);
    const sub = await request(u, 'GET', `${base}/x/scale`);
    assert.equal(sub.status, 404);
    const dup = await request(u, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', {
      metadata: { name: 'wrong.name' },
      spec: { group: 'g.io', scope: 'Nowhere', names: { plural: 'ps', kind: 'P' }, versions: [] },
    });
    assert.equal(dup.status, 422);
    assert.match(dup.body.message, /spec.scope: Unsupported value: "Nowhere"/);
  });
});

describe('watch window', () => {
  it('keeps exactly --watch-window events: one older than that → 410, the oldest kept → replayed', async () => {
    const small = await startDevCluster({ watchWindow: 5 });
    try {
      const base = '/api/v1/namespaces/default/configmaps';
      const rv0 = small.store.resourceVersion;
      for (let i = 0; i < 12; i++) await request(small.url, 'POST', base, cm(`win-${i}`));
      const newest = small.store.resourceVersion;
      const ok = openWatch(small.url, `${base}?watch=true&resourceVersion=${newest - 5}`);
      await waitFor(() => ok.events.length >= 5, 'five replayed events');
      ok.close();
      assert.deepEqual(
        ok.events.map((e) => e.object.metadata.name),
        ['win-7', 'win-8', 'win-9', 'win-10', 'win-11'],
      );
      for (const from of [newest - 6, rv0]) {
        const gone = openWatch(small.url, `${base}?watch=true&resourceVersion=${from}`);
        await gone.ended;
        assert.equal(gone.events[0]?.object?.code, 410, `from ${from}`);
      }
    } finally {
      await small.close();
    }
  });
});

describe('metadata validation', () => {
  it('rejects bad names and label values with the real messages; body size limit', async () => {
    const base = '/api/v1/namespaces/default/configmaps';
    const name = await request(u, 'POST', base, cm('Bad_Name'));
    assert.equal(name.status, 422);
    assert.match(
      name.body.message,
      /metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/,
    );
    const ns = await request(u, 'POST', '/api/v1/namespaces', { metadata: { name: 'has.dot' } });
    assert.match(ns.body.message, /a lowercase RFC 1123 label must consist/);
    const lv = await request(u, 'POST', base, cm('lv', { labels: { ok: 'bad value' } }));
    assert.equal(lv.status, 422);
    assert.match(
      lv.body.message,
      /metadata.labels: Invalid value: "bad value": a valid label must be an empty string/,
    );
    const lk = await request(u, 'POST', base, cm('lk', { annotations: { 'Bad Prefix/x': 'v' } }));
    assert.equal(lk.status, 422);
    const good = await request(
      u,
      'POST',
      base,
      cm('good.name-1', { labels: { 'cpuburst.io/enabled': 'true', e: '' } }),
    );
    assert.equal(good.status, 201);
    const wrongUid = await request(u, 'PUT', `${base}/good.name-1`, {
      ...good.body,
      metadata: { ...good.body.metadata, uid: 'x' },
    });
    assert.equal(wrongUid.status, 409);
    const big = await request(u, 'POST', base, { ...cm('big'), data: { a: 'x'.repeat(4 * 1024 * 1024) } });
    assert.equal(big.status, 413);
  });
});

describe('metrics', () => {
  it('serves Prometheus metrics on /metrics', async () => {
    const w = openWatch(
      u,
      `/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=${dc.store.resourceVersion}`,
    );
    await waitFor(() => dc.faults.watches.size > 0, 'watch open');
    const r = await request(u, 'GET', '/metrics', undefined, { Accept: 'text/plain' });
    w.close();
    assert.equal(r.status, 200);
    assert.match(r.body, /cpuburst_devcluster_requests_total\{method="POST",code="201"\} [1-9]/);
    assert.match(r.body, /cpuburst_devcluster_watchers [1-9]/);
    assert.match(r.body, /cpuburst_devcluster_resource_version \d+/);
  });
});

describe('one object, several views', () => {
  it('events.k8s.io/v1 Events are core/v1 Events with converted field names (both ways, watches too)', async () => {
    const coreBase = '/api/v1/namespaces/kube-node-lease/events';
    const evBase = '/apis/events.k8s.io/v1/namespaces/kube-node-lease/events';
    const rv = dc.store.resourceVersion;
    const coreWatch = openWatch(u, `${coreBase}?watch=true&resourceVersion=${rv}`);
    const evWatch = openWatch(u, `${evBase}?watch=true&resourceVersion=${rv}`);
    const created = await request(u, 'POST', evBase, {
      metadata: { name: 'e1' },
      eventTime: '2026-01-01T00:00:00.000001Z',
      regarding: { kind: 'Pod', name: 'p', namespace: 'kube-node-lease' },
      note: 'hello',
      reason: 'Tested',
      action: 'Test',
      type: 'Normal',
      reportingController: 'ctl',
      reportingInstance: 'i',
    });
    assert.equal(created.status, 201);
    assert.equal(created.body.apiVersion, 'events.k8s.io/v1');
    assert.equal(created.body.note, 'hello');
    const core = await request(u, 'GET', `${coreBase}/e1`);
    assert.equal(core.body.apiVersion, 'v1');
    assert.equal(core.body.message, 'hello');
    assert.equal(core.body.involvedObject.name, 'p');
    assert.equal(core.body.reportingComponent, 'ctl');
    assert.equal(core.body.metadata.uid, created.body.metadata.uid);
    const sel = await request(u, 'GET', `${coreBase}?fieldSelector=involvedObject.name%3Dp`);
    assert.equal(sel.body.items.length, 1);
    await request(u, 'POST', coreBase, {
      metadata: { name: 'e2' },
      involvedObject: { kind: 'Node', name: 'n' },
      message: 'from core',
      reason: 'R',
    });
    const viaEvents = await request(u, 'GET', `${evBase}/e2`);
    assert.equal(viaEvents.body.note, 'from core');
    assert.equal(viaEvents.body.regarding.name, 'n');
    await waitFor(
      () => coreWatch.events.length >= 2 && evWatch.events.length >= 2,
      'both watches see both events',
    );
    coreWatch.close();
    evWatch.close();
    assert.deepEqual(
      coreWatch.events.map((e) => `${e.object.apiVersion} ${e.object.message}`),
      ['v1 hello', 'v1 from core'],
    );
    assert.deepEqual(
      evWatch.events.map((e) => `${e.object.apiVersion} ${e.object.note}`),
      ['events.k8s.io/v1 hello', 'events.k8s.io/v1 from core'],
    );
  });

  it('a CRD version that is not the storage version serves the same objects (conversion None)', async () => {
    const crd = loadYaml(`${FIXTURES}/widgets.yaml`);
    crd.metadata.name = 'gadgets.test.devcluster.io';
    crd.spec.names = { kind: 'Gadget', listKind: 'GadgetList', plural: 'gadgets', singular: 'gadget' };
    const v2 = { ...structuredClone(crd.spec.versions[0]), name: 'v2', storage: false };
    crd.spec.versions.push(v2);
    assert.equal(
      (await request(u, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd)).status,
      201,
    );
    const v1 = '/apis/test.devcluster.io/v1/namespaces/default/gadgets';
    const v2p = '/apis/test.devcluster.io/v2/namespaces/default/gadgets';
    const w = openWatch(u, `${v2p}?watch=true&resourceVersion=${dc.store.resourceVersion}`);
    const c = await request(u, 'POST', v2p, {
      apiVersion: 'test.devcluster.io/v2',
      kind: 'Gadget',
      metadata: { name: 'g' },
      spec: { size: 2 },
    });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    assert.equal(c.body.apiVersion, 'test.devcluster.io/v2');
    const g1 = await request(u, 'GET', `${v1}/g`);
    assert.equal(g1.body.apiVersion, 'test.devcluster.io/v1');
    assert.equal(g1.body.metadata.uid, c.body.metadata.uid);
    assert.equal(g1.body.spec.color, 'green');
    const p = await request(
      u,
      'PATCH',
      `${v1}/g`,
      { spec: { size: 3 } },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    assert.equal(p.status, 200);
    await waitFor(() => w.events.length >= 2, 'ADDED + MODIFIED on the v2 watch');
    w.close();
    assert.deepEqual(
      w.events.map((e) => `${e.type} ${e.object.apiVersion} ${e.object.spec.size}`),
      ['ADDED test.devcluster.io/v2 2', 'MODIFIED test.devcluster.io/v2 3'],
    );
    const l2 = await request(u, 'GET', v2p);
    assert.deepEqual(
      l2.body.items.map((o: any) => `${o.apiVersion}/${o.metadata.name}`),
      ['test.devcluster.io/v2/g'],
    );
  });
});

describe('faults on watches only', () => {
  it('failRequests can target watches by query; sticky stall holds new watches until resume', async () => {
    const base = '/api/v1/namespaces/default/configmaps';
    dc.faults.failRequests({ share: 1, code: 500, path: /watch=true/, count: 1 });
    assert.equal((await request(u, 'GET', base)).status, 200, 'lists are untouched');
    assert.equal((await request(u, 'GET', `${base}?watch=true`)).status, 500);
    dc.faults.stallWatches(true);
    const w = openWatch(u, `${base}?watch=true&resourceVersion=${dc.store.resourceVersion}`);
    await waitFor(() => w.status === 200, 'watch open');
    await request(u, 'POST', base, cm('stalled-1'));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(w.events.length, 0, 'nothing delivered while stalled');
    dc.faults.resumeWatches();
    await waitFor(() => w.events.length === 1, 'held event delivered on resume');
    w.close();
    assert.equal(w.events[0].object.metadata.name, 'stalled-1');
    dc.faults.reset();
  });
});

describe('CRD and list-type checks', () => {
  it('rejects duplicate keys in x-kubernetes-list-type: map lists', async () => {
    await request(u, 'POST', W, {
      apiVersion: 'test.devcluster.io/v1',
      kind: 'Widget',
      metadata: { name: 'dupes' },
      spec: { size: 1 },
    });
    const r = await request(
      u,
      'PATCH',
      `${W}/dupes/status`,
      {
        status: {
          conditions: [
            { type: 'Ready', status: 'True' },
            { type: 'Ready', status: 'False' },
          ],
        },
      },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    assert.equal(r.status, 422);
    assert.match(
      r.body.message,
      /status.conditions\[1\]: Duplicate value: map\[string\]interface \{\}\{"type":"Ready"\}/,
    );
  });

  it('rejects non-structural schemas and CEL rules that do not compile', async () => {
    const crd = loadYaml(`${FIXTURES}/widgets.yaml`);
    crd.metadata.name = 'broken.test.devcluster.io';
    crd.spec.names = { kind: 'Broken', plural: 'broken' };
    crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.untyped = {
      description: 'no type',
    };
    crd.spec.versions[0].schema.openAPIV3Schema.properties.spec['x-kubernetes-validations'].push({
      rule: 'self.size >',
    });
    const r = await request(u, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
    assert.equal(r.status, 422);
    assert.match(
      r.body.message,
      /properties\[spec\]\.properties\[untyped\]\.type: Required value: must not be empty/,
    );
    assert.match(
      r.body.message,
      /x-kubernetes-validations\[2\]\.rule: Invalid value: "self.size >": compilation failed/,
    );
  });
});

describe('malformed objects', () => {
  it('arrays, non-object metadata and patches that break metadata are 400s', async () => {
    const base = '/api/v1/namespaces/default/configmaps';
    assert.equal((await request(u, 'POST', base, [{ metadata: { name: 'a' } }])).status, 400);
    assert.equal((await request(u, 'POST', base, { metadata: 'x' })).status, 400);
    assert.equal(
      (await request(u, 'POST', base, { metadata: { name: 'm', annotations: ['x'] } })).status,
      400,
    );
    await request(u, 'POST', base, cm('mp'));
    const p = await request(
      u,
      'PATCH',
      `${base}/mp`,
      { metadata: 'oops' },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    assert.equal(p.status, 400);
    const kind = await request(
      u,
      'PATCH',
      `${base}/mp`,
      { kind: 'Secret' },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    assert.equal(kind.status, 400);
    assert.equal((await request(u, 'GET', `${base}/mp`)).body.kind, 'ConfigMap');
  });
});

describe('openapi', () => {
  it('v3 per group-version documents declare fieldValidation on PATCH and carry CRD schemas; v2 in JSON or protobuf', async () => {
    const root = await request(u, 'GET', '/openapi/v3');
    const ref = root.body.paths['apis/test.devcluster.io/v1'].serverRelativeURL;
    assert.match(ref, /^\/openapi\/v3\/apis\/test.devcluster.io\/v1\?hash=[0-9A-F]+$/);
    const doc = (await request(u, 'GET', ref)).body;
    const item = doc.paths['/apis/test.devcluster.io/v1/namespaces/{namespace}/widgets/{name}'];
    assert.deepEqual(item.patch['x-kubernetes-group-version-kind'], {
      group: 'test.devcluster.io',
      version: 'v1',
      kind: 'Widget',
    });
    assert.ok(item.patch.parameters.some((p: any) => p.name === 'fieldValidation' && p.in === 'query'));
    assert.equal(
      doc.components.schemas['io.devcluster.test.v1.Widget'].properties.spec.properties.size.maximum,
      100,
    );
    const v2 = await request(u, 'GET', '/openapi/v2');
    assert.equal(v2.body.swagger, '2.0');
    const pb = await new Promise<Buffer>((resolve, reject) => {
      http
        .get(
          `${u}/openapi/v2`,
          { headers: { Accept: 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf' } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => resolve(Buffer.concat(chunks)));
          },
        )
        .on('error', reject);
    });
    assert.equal(pb[0], 0x0a, 'field 1 (swagger), length-delimited');
    assert.equal(pb.subarray(2, 2 + pb[1]!).toString(), '2.0');
  });
});

describe('slow watchers', () => {
  it('a watcher that stops reading is disconnected once its backlog passes maxWatchBufferedBytes', async () => {
    const small = await startDevCluster({ maxWatchBufferedBytes: 256 * 1024 });
    try {
      const base = '/api/v1/namespaces/default/configmaps';
      const req = http.get(
        `${small.url}${base}?watch=true&resourceVersion=${small.store.resourceVersion}`,
        (res) => {
          res.pause(); // never read: the socket buffers fill up
        },
      );
      req.on('error', () => {});
      await waitFor(() => small.faults.watches.size === 1, 'watch open');
      const big = 'x'.repeat(64 * 1024);
      for (let i = 0; i < 200 && small.faults.watches.size > 0; i++) {
        small.store.create({
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: `slow-${i}`, namespace: 'default' },
          data: { big },
        });
        await new Promise((r) => setImmediate(r));
      }
      await waitFor(() => small.faults.watches.size === 0, 'slow watcher dropped', 20_000);
      req.destroy();
    } finally {
      await small.close();
    }
  });
});
