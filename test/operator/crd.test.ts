// The CRD: structural, conventional, and the examples validate (ajv for the schema, cel-js for CEL).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { parseConfigMapData } from '../../operator/planner/config.js';
import { REPO_ROOT } from '../support/cli.js';
import { applyDefaults, loadCrd, makeValidator, openApiSchema } from './crd-validator.js';

const EXAMPLES = path.join(REPO_ROOT, 'crds/examples');

/** Every node of a structural schema has a type (or is an explicit escape hatch). */
function assertStructural(s: any, at: string): void {
  assert.ok(
    s.type || s['x-kubernetes-int-or-string'] || s['x-kubernetes-preserve-unknown-fields'],
    `${at} has no type`,
  );
  for (const k of ['$ref', 'oneOf', 'anyOf', 'allOf', 'not'].filter((k) => k !== 'not'))
    assert.equal(s[k], undefined, `${at} uses ${k}, not allowed in a structural CRD schema here`);
  for (const [k, sub] of Object.entries<any>(s.properties ?? {})) assertStructural(sub, `${at}.${k}`);
  if (s.items) assertStructural(s.items, `${at}[]`);
  if (typeof s.additionalProperties === 'object') assertStructural(s.additionalProperties, `${at}{}`);
}

describe('CpuBurstStrategy CRD', () => {
  const crd = loadCrd();
  it('is cluster-scoped v1alpha1 with shortName cbs, categories, status subresource', () => {
    assert.equal(crd.metadata.name, 'cpuburststrategies.cpuburst.io');
    assert.equal(crd.spec.scope, 'Cluster');
    assert.deepEqual(crd.spec.names.shortNames, ['cbs']);
    assert.ok(crd.spec.names.categories.includes('cpuburst'));
    const v = crd.spec.versions;
    assert.equal(v.length, 1);
    assert.equal(v[0].name, 'v1alpha1');
    assert.ok(v[0].served && v[0].storage);
    assert.deepEqual(v[0].subresources, { status: {} });
    const cols = v[0].additionalPrinterColumns.map((c: any) => c.name);
    for (const c of ['Policy', 'Nodes', 'Pods', 'Ready', 'Age']) assert.ok(cols.includes(c), c);
  });

  it('has a structural schema with descriptions on spec fields', () => {
    const s = openApiSchema(crd);
    assertStructural(s, 'self');
    for (const [k, sub] of Object.entries<any>(s.properties.spec.properties))
      assert.ok(sub.description, `spec.${k} needs a description`);
  });

  it('defaults match the protocol defaults (burst 100 %, a value mainline kernels accept)', () => {
    const filled = applyDefaults(openApiSchema(crd), { spec: { policy: 'auto' } });
    assert.deepEqual(
      [
        filled.spec.cpuBurstPercent,
        filled.spec.cfsQuotaBurstPercent,
        filled.spec.cfsQuotaBurstPeriodSeconds,
        filled.spec.sharePoolThresholdPercent,
        filled.spec.priority,
        filled.spec.dryRun,
      ],
      [100, 300, -1, 50, 0, false],
    );
  });

  const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml'));
  it('ships examples', () => assert.ok(files.length >= 4));
  const validate = makeValidator();
  for (const f of files)
    it(`example ${f} is valid`, () => {
      const doc = YAML.parse(readFileSync(path.join(EXAMPLES, f), 'utf8'));
      if (doc.kind === 'ConfigMap') {
        const r = parseConfigMapData(doc.data);
        assert.ok(r.ok && r.present, r.ok ? 'key missing' : r.error);
        return;
      }
      assert.equal(doc.kind, 'CpuBurstStrategy');
      assert.deepEqual(validate(doc), []);
    });

  const invalid: Array<{ name: string; spec: any; want: RegExp }> = [
    { name: 'unknown policy', spec: { policy: 'turbo' }, want: /allowed values|must be equal to one of/ },
    { name: 'policy missing', spec: {}, want: /policy/ },
    {
      name: 'cpuBurstPercent above 10000',
      spec: { policy: 'auto', cpuBurstPercent: 10001 },
      want: /cpuBurstPercent/,
    },
    {
      name: 'cfsQuotaBurstPercent below 100',
      spec: { policy: 'none', cfsQuotaBurstPercent: 50 },
      want: /cfsQuotaBurstPercent/,
    },
    {
      name: 'quota burst with no headroom (CEL)',
      spec: { policy: 'auto', cfsQuotaBurstPercent: 100 },
      want: /cfsQuotaBurstPercent must be above 100/,
    },
    {
      name: 'kernel burst of 0 % (CEL)',
      spec: { policy: 'cpuBurstOnly', cpuBurstPercent: 0 },
      want: /cpuBurstPercent must be above 0/,
    },
    {
      name: 'threshold above 100',
      spec: { policy: 'auto', sharePoolThresholdPercent: 101 },
      want: /sharePoolThresholdPercent/,
    },
    {
      name: 'window with both end and duration (CEL)',
      spec: {
        policy: 'auto',
        schedule: { windows: [{ start: '0 8 * * *', end: '0 9 * * *', duration: '1h' }] },
      },
      want: /exactly one of duration or end/,
    },
    {
      name: 'window with neither (CEL)',
      spec: { policy: 'auto', schedule: { windows: [{ start: '0 8 * * *' }] } },
      want: /exactly one of duration or end/,
    },
    {
      name: 'cron with 6 fields',
      spec: { policy: 'auto', schedule: { windows: [{ start: '0 0 8 * * *', duration: '1h' }] } },
      want: /pattern/,
    },
    {
      name: 'In without values (CEL)',
      spec: { policy: 'auto', podSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } },
      want: /at least one value/,
    },
    {
      name: 'bad selector operator',
      spec: {
        policy: 'auto',
        nodeSelector: { matchExpressions: [{ key: 'a', operator: 'Gt', values: ['1'] }] },
      },
      want: /operator/,
    },
  ];
  for (const c of invalid)
    it(`rejects ${c.name}`, () => {
      const errors = validate({
        apiVersion: 'cpuburst.io/v1alpha1',
        kind: 'CpuBurstStrategy',
        metadata: { name: 'x' },
        spec: c.spec,
      });
      assert.ok(errors.length > 0, 'expected a validation error');
      assert.match(errors.join('\n'), c.want);
    });
});
