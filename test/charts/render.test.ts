// helm lint --strict and helm template for the default values and every ci/*.yaml, and every rendered
// object validated against the Kubernetes schemas (unknown fields included).
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ciValuesFiles, lint, parseManifests, templateText } from './helm.js';
import { validateObject } from './k8s-validate.js';

const scenarios: Array<{ label: string; valuesFiles: string[] }> = [
  { label: 'default values', valuesFiles: [] },
  ...ciValuesFiles().map((f) => ({ label: `ci/${path.basename(f)}`, valuesFiles: [f] })),
];

describe('chart renders and lints', () => {
  it('has the four ci values files the issue asks for', () => {
    const names = ciValuesFiles().map((f) => path.basename(f));
    for (const want of ['ha-redis', 'tls', 'minimal', 'privileged-agent']) {
      assert.ok(
        names.some((n) => n.startsWith(want)),
        `ci/${want}*.yaml missing (have ${names.join(', ')})`,
      );
    }
  });

  for (const s of scenarios) {
    it(`helm lint --strict passes: ${s.label}`, async () => {
      const r = await lint({ valuesFiles: s.valuesFiles });
      assert.equal(r.code, 0, `helm lint failed:\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
      assert.doesNotMatch(r.stdout, /\[(WARNING|ERROR)\]/);
    });

    it(`every rendered object is valid Kubernetes: ${s.label}`, async () => {
      const objs = parseManifests(await templateText({ valuesFiles: s.valuesFiles, includeCrds: true }));
      assert.ok(objs.length >= 20, `only ${objs.length} objects rendered`);
      const errors = (await Promise.all(objs.map((o) => validateObject(o)))).flat();
      assert.deepEqual(errors, []);
      const ids = objs.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
      assert.equal(new Set(ids).size, ids.length, `duplicate objects: ${ids.join(', ')}`);
      for (const o of objs)
        assert.ok(o.metadata.name.length <= 63, `${o.kind}/${o.metadata.name} name too long`);
    });
  }

  it('the validator itself rejects broken objects (so a green run means something)', async () => {
    const [ds] = parseManifests(
      await templateText({ set: ['operator.enabled=false', 'broker.enabled=false'] }),
    ).filter((o) => o.kind === 'DaemonSet');
    assert.ok(ds);
    const typo = structuredClone(ds);
    typo.spec.template.spec.containers[0].securityContxt = {};
    assert.match(
      (await validateObject(typo)).join('\n'),
      /unknown field spec\.template\.spec\.containers\[0\]\.securityContxt/,
    );
    const badType = structuredClone(ds);
    badType.spec.template.spec.containers[0].ports[0].containerPort = 'nine';
    assert.match((await validateObject(badType)).join('\n'), /containerPort must be integer/);
  });

  it('declares Kubernetes >= 1.25 (policy/v1, seccompProfile) and renders up to current versions', async () => {
    const { helm, CHART } = await import('./helm.js');
    const old = await helm(['template', 'rel', CHART, '--kube-version', '1.24.9']);
    assert.notEqual(old.code, 0);
    assert.match(old.stderr, /chart requires kubeVersion: >=1\.25\.0-0/);
    for (const v of ['1.25.0', '1.32.3', '1.35.0']) {
      const r = await helm(['template', 'rel', CHART, '--kube-version', v]);
      assert.equal(r.code, 0, `${v}: ${r.stderr}`);
    }
  });

  it('a long release name still yields names of at most 63 characters', async () => {
    const { helm, CHART } = await import('./helm.js');
    const rel = 'a-very-long-release-name-that-goes-on-and-on-and-on-x';
    const r = await helm(['template', rel, CHART, '--namespace', 'ns']);
    assert.equal(r.code, 0, r.stderr);
    for (const o of parseManifests(r.stdout)) assert.ok(o.metadata.name.length <= 63, o.metadata.name);
  });
});
