// Pure pieces of the emulator: patches, selectors, JSONPath printer columns, schema admission.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ApiError } from '../../devcluster/errors.js';
import { jsonPatch, mergePatch, strategicMergePatch } from '../../devcluster/patch.js';
import { fieldMatcher, labelMatcher } from '../../devcluster/selectors.js';
import { humanDuration, jsonPath } from '../../devcluster/table.js';
import { applyDefaults, prune } from '../../devcluster/validation.js';

describe('merge patch (RFC 7386)', () => {
  it('matches the RFC appendix vectors', () => {
    const cases: [unknown, unknown, unknown][] = [
      [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
      [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
      [{ a: 'b' }, { a: null }, {}],
      [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
      [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
      [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
      [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
      [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
      [
        ['a', 'b'],
        ['c', 'd'],
        ['c', 'd'],
      ],
      [{ a: 'b' }, ['c'], ['c']],
      [{ a: 'foo' }, null, null],
      [{ a: 'foo' }, 'bar', 'bar'],
      [{ e: null }, { a: 1 }, { e: null, a: 1 }],
      [[1, 2], { a: 'b', c: null }, { a: 'b' }],
      [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
    ];
    for (const [target, patch, want] of cases) assert.deepEqual(mergePatch(target, patch), want);
  });

  it('is idempotent and never mutates its inputs', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), (target, patch) => {
        const t = structuredClone(target);
        const p = structuredClone(patch);
        const once = mergePatch(target, patch);
        assert.deepEqual(target, t);
        assert.deepEqual(patch, p);
        assert.deepEqual(mergePatch(once, patch), once);
      }),
    );
  });
});

describe('JSON patch (RFC 6902)', () => {
  it('add/remove/replace/move/copy/test', () => {
    const doc = { foo: ['bar', 'baz'], x: { y: 1 } };
    assert.deepEqual(jsonPatch(doc, [{ op: 'add', path: '/foo/1', value: 'qux' }]).foo, [
      'bar',
      'qux',
      'baz',
    ]);
    assert.deepEqual(jsonPatch(doc, [{ op: 'add', path: '/foo/-', value: 'end' }]).foo, [
      'bar',
      'baz',
      'end',
    ]);
    assert.deepEqual(jsonPatch(doc, [{ op: 'remove', path: '/foo/0' }]).foo, ['baz']);
    assert.deepEqual(jsonPatch(doc, [{ op: 'replace', path: '/x/y', value: 2 }]).x, { y: 2 });
    assert.deepEqual(jsonPatch(doc, [{ op: 'move', from: '/x/y', path: '/z' }]), {
      foo: ['bar', 'baz'],
      x: {},
      z: 1,
    });
    assert.deepEqual(jsonPatch(doc, [{ op: 'copy', from: '/x', path: '/w' }]).w, { y: 1 });
    assert.deepEqual(jsonPatch({ 'a/b': 1 }, [{ op: 'replace', path: '/a~1b', value: 2 }]), { 'a/b': 2 });
    assert.throws(() => jsonPatch(doc, [{ op: 'test', path: '/x/y', value: 5 }]), ApiError);
    assert.throws(() => jsonPatch(doc, [{ op: 'remove', path: '/nope' }]), ApiError);
    assert.throws(() => jsonPatch(doc, [{ op: 'replace', path: '/a/b/c', value: 1 }]), ApiError);
    assert.throws(() => jsonPatch(doc, { op: 'add' }), ApiError);
    assert.deepEqual(doc, { foo: ['bar', 'baz'], x: { y: 1 } }, 'input untouched');
  });
});

describe('strategic merge patch', () => {
  const pod = {
    metadata: { finalizers: ['a'] },
    spec: {
      containers: [
        { name: 'a', image: '1', ports: [{ containerPort: 80 }] },
        { name: 'b', image: '2' },
      ],
    },
  };
  it('merges keyed lists, deletes with $patch, keeps set lists unique', () => {
    const out = strategicMergePatch(pod, {
      metadata: { finalizers: ['a', 'b'] },
      spec: {
        containers: [
          { name: 'a', ports: [{ containerPort: 81 }] },
          { name: 'b', $patch: 'delete' },
          { name: 'c', image: '3' },
        ],
      },
    });
    assert.deepEqual(out.metadata.finalizers, ['a', 'b']);
    assert.deepEqual(
      out.spec.containers.map((c: any) => [
        c.name,
        c.image,
        (c.ports ?? []).map((p: any) => p.containerPort),
      ]),
      [
        ['a', '1', [80, 81]],
        ['c', '3', []],
      ],
    );
    const replaced = strategicMergePatch(pod, { spec: { $patch: 'replace', containers: [] } });
    assert.deepEqual(replaced.spec, { containers: [] });
    const ordered = strategicMergePatch(pod, {
      spec: {
        '$setElementOrder/containers': [{ name: 'b' }, { name: 'a' }],
        containers: [{ name: 'a', image: 'x' }],
      },
    });
    assert.deepEqual(
      ordered.spec.containers.map((c: any) => c.name),
      ['b', 'a'],
    );
    const prim = strategicMergePatch(pod, { metadata: { '$deleteFromPrimitiveList/finalizers': ['a'] } });
    assert.deepEqual(prim.metadata.finalizers, []);
  });
});

describe('selectors', () => {
  const o = (labels: Record<string, string>, nodeName?: string) => ({
    metadata: { name: 'x', labels },
    spec: { nodeName },
  });
  it('label selector operators and parse errors', () => {
    assert.ok(labelMatcher('a=1,b in (2, 3),!c,d')(o({ a: '1', b: '3', d: '' })));
    assert.ok(!labelMatcher('a=1,b in (2, 3),!c,d')(o({ a: '1', b: '3', c: 'x', d: '' })));
    assert.ok(labelMatcher('a notin (1)')(o({})), 'notin matches absent keys');
    assert.ok(!labelMatcher('a!=1')(o({ a: '1' })));
    assert.ok(labelMatcher('a==1')(o({ a: '1' })));
    assert.throws(
      () => labelMatcher('a in 1'),
      (e: unknown) => e instanceof ApiError && e.code === 400,
    );
    assert.throws(() => labelMatcher('=x'), ApiError);
  });
  it('field selectors', () => {
    assert.ok(fieldMatcher('spec.nodeName=n1,metadata.name=x')(o({}, 'n1')));
    assert.ok(fieldMatcher('spec.nodeName=')(o({})), 'empty matches unset, like unscheduled pods');
    assert.ok(fieldMatcher('spec.nodeName!=n1')(o({}, 'n2')));
    assert.throws(() => fieldMatcher('spec.nodeName'), ApiError);
  });
});

describe('printer columns', () => {
  it('JSONPath subset and kubectl ages', () => {
    const obj = {
      status: {
        conditions: [
          { type: 'A', status: 'False' },
          { type: 'Ready', status: 'True' },
        ],
      },
      spec: { l: [1, 2, 3] },
    };
    assert.deepEqual(jsonPath(obj, '.status.conditions[?(@.type=="Ready")].status'), ['True']);
    assert.deepEqual(jsonPath(obj, '{.spec.l[-1]}'), [3]);
    assert.deepEqual(jsonPath(obj, '.spec.l[*]'), [1, 2, 3]);
    assert.deepEqual(jsonPath(obj, '.missing.x'), []);
    assert.equal(humanDuration(5_000), '5s');
    assert.equal(humanDuration(185_000), '3m5s');
    assert.equal(humanDuration(3 * 3600_000 + 60_000), '3h1m');
    assert.equal(humanDuration(3 * 86400_000), '3d');
  });
});

describe('schema admission helpers', () => {
  const schema = {
    type: 'object',
    properties: {
      spec: {
        type: 'object',
        properties: {
          a: { type: 'integer', default: 5 },
          nested: { type: 'object', default: {}, properties: { b: { type: 'string', default: 'x' } } },
          free: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
          m: {
            type: 'object',
            additionalProperties: { type: 'object', properties: { k: { type: 'string' } } },
          },
        },
      },
    },
  };
  it('prunes unknown fields (reporting their paths) and applies nested defaults', () => {
    const obj: any = {
      apiVersion: 'v',
      kind: 'K',
      metadata: { name: 'n', anything: 1 },
      spec: { zz: 1, free: { q: 1 }, m: { x: { k: 'v', extra: 1 } } },
      top: 1,
    };
    assert.deepEqual(prune(schema, obj).sort(), ['spec.m.x.extra', 'spec.zz', 'top']);
    assert.deepEqual(obj.metadata, { name: 'n', anything: 1 });
    applyDefaults(schema, obj);
    assert.deepEqual(obj.spec, { a: 5, nested: { b: 'x' }, free: { q: 1 }, m: { x: { k: 'v' } } });
  });
});

describe('CEL rules of the shipped CRDs', () => {
  it('every x-kubernetes-validations rule parses with @marcbachmann/cel-js', async () => {
    const { parse } = await import('@marcbachmann/cel-js');
    const { readdirSync, readFileSync } = await import('node:fs');
    const YAML = (await import('yaml')).default;
    const path = await import('node:path');
    const { REPO_ROOT } = await import('../support/cli.js');
    const files = [
      ...readdirSync(path.join(REPO_ROOT, 'crds'))
        .filter((f) => f.endsWith('.yaml'))
        .map((f) => path.join(REPO_ROOT, 'crds', f)),
      path.join(REPO_ROOT, 'test/devcluster/fixtures/widgets.yaml'),
    ];
    const rules: string[] = [];
    const walk = (s: any): void => {
      if (!s || typeof s !== 'object') return;
      for (const v of s['x-kubernetes-validations'] ?? []) rules.push(v.rule);
      for (const v of Object.values(s)) walk(v);
    };
    for (const f of files)
      for (const doc of YAML.parseAllDocuments(readFileSync(f, 'utf8'))) walk(doc.toJSON());
    assert.ok(rules.length >= 2, 'found the rules');
    for (const r of new Set(rules)) assert.doesNotThrow(() => parse(r), `rule does not parse: ${r}`);
  });
});
