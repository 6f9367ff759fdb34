// The chart ships the operator's CRD from the top-level crds/ byte for byte (scripts/sync-chart-crds.sh).
import assert from 'node:assert/strict';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { REPO_ROOT } from '../support/cli.js';
import { CHART, parseManifests, run, templateText } from './helm.js';

const SOURCE = path.join(REPO_ROOT, 'crds', 'cpuburststrategies.cpuburst.io.yaml');
const COPY = path.join(CHART, 'crds', 'cpuburststrategies.cpuburst.io.yaml');

describe('chart CRDs', () => {
  it('the operator CRD exists at crds/ and its chart copy is byte-identical', () => {
    assert.ok(existsSync(SOURCE), `${SOURCE} is missing (written by the operator; the chart copies it)`);
    assert.ok(existsSync(COPY), `${COPY} is missing: run scripts/sync-chart-crds.sh`);
    assert.ok(
      readFileSync(SOURCE).equals(readFileSync(COPY)),
      'charts/cpuburst/crds is stale: run scripts/sync-chart-crds.sh',
    );
    const chartCrds = readdirSync(path.join(CHART, 'crds')).sort();
    const topCrds = readdirSync(path.join(REPO_ROOT, 'crds'))
      .filter((f) => f.endsWith('.yaml'))
      .sort();
    assert.deepEqual(chartCrds, topCrds);
  });

  it('scripts/sync-chart-crds.sh --check agrees', async () => {
    const r = await run('bash', [path.join(REPO_ROOT, 'scripts', 'sync-chart-crds.sh'), '--check']);
    assert.equal(r.code, 0, r.stderr);
  });

  it('the sync script detects stale and extra copies, and fixes them', async () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'cpuburst-crd-sync-'));
    try {
      mkdirSync(path.join(tmp, 'scripts'));
      mkdirSync(path.join(tmp, 'charts', 'cpuburst'), { recursive: true });
      cpSync(
        path.join(REPO_ROOT, 'scripts', 'sync-chart-crds.sh'),
        path.join(tmp, 'scripts', 'sync-chart-crds.sh'),
      );
      cpSync(path.join(REPO_ROOT, 'crds'), path.join(tmp, 'crds'), { recursive: true });
      cpSync(path.join(CHART, 'crds'), path.join(tmp, 'charts', 'cpuburst', 'crds'), { recursive: true });
      const script = path.join(tmp, 'scripts', 'sync-chart-crds.sh');
      const copy = path.join(tmp, 'charts', 'cpuburst', 'crds', path.basename(COPY));
      writeFileSync(copy, `${readFileSync(copy, 'utf8')}# drift\n`);
      writeFileSync(
        path.join(tmp, 'charts', 'cpuburst', 'crds', 'old.yaml'),
        'kind: CustomResourceDefinition\n',
      );
      const check = await run('bash', [script, '--check']);
      assert.equal(check.code, 1);
      assert.match(check.stderr, /stale: charts\/cpuburst\/crds\/cpuburststrategies\.cpuburst\.io\.yaml/);
      assert.match(check.stderr, /extra: charts\/cpuburst\/crds\/old\.yaml/);
      const sync = await run('bash', [script]);
      assert.equal(sync.code, 0, sync.stderr);
      assert.ok(readFileSync(copy).equals(readFileSync(SOURCE)));
      assert.ok(!existsSync(path.join(tmp, 'charts', 'cpuburst', 'crds', 'old.yaml')));
      assert.equal((await run('bash', [script, '--check'])).code, 0);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('the CRD is what the chart templates rely on', async () => {
    const crd = parse(readFileSync(COPY, 'utf8'));
    assert.equal(crd.kind, 'CustomResourceDefinition');
    assert.equal(crd.metadata.name, 'cpuburststrategies.cpuburst.io');
    assert.equal(crd.spec.scope, 'Cluster');
    assert.ok(crd.spec.names.shortNames.includes('cbs'));
    assert.ok(crd.spec.versions.some((v: any) => v.name === 'v1alpha1' && v.served && v.storage));
    // Installed by helm from crds/ (--include-crds shows it), never templated.
    const objs = parseManifests(await templateText({ includeCrds: true }));
    assert.equal(objs.filter((o) => o.kind === 'CustomResourceDefinition').length, 1);
    assert.equal(
      parseManifests(await templateText()).filter((o) => o.kind === 'CustomResourceDefinition').length,
      0,
    );
  });
});
