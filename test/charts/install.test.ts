// Install simulation on devcluster (the Kubernetes API emulator) with the real kubectl and helm:
// the rendered chart applies cleanly, every object is stored as rendered, the CRD accepts the
// example strategies and refuses a bad one; helm install/upgrade/uninstall keep credentials stable
// and leave only the CRD behind.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type DevCluster, startDevCluster } from '../../devcluster/index.js';
import { REPO_ROOT } from '../support/cli.js';
import {
  CHART,
  helm,
  type K8sObject,
  KUBECTL,
  parseManifests,
  type RunResult,
  requireTool,
  run,
  templateText,
} from './helm.js';

// prometheus-operator and cert-manager CRDs as a cluster that has them would serve them (schemaless).
function foreignCrd(group: string, kind: string, plural: string): object {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${group}` },
    spec: {
      group,
      scope: 'Namespaced',
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
        },
      ],
    },
  };
}

describe('install on devcluster', () => {
  let cluster: DevCluster;
  let dir: string;
  let kubeconfig: string;

  const kubectl = (...args: string[]): Promise<RunResult> => run(KUBECTL, args, { KUBECONFIG: kubeconfig });
  async function ok(r: Promise<RunResult>): Promise<string> {
    const res = await r;
    assert.equal(res.code, 0, `exit ${res.code}\n${res.stdout}\n${res.stderr}`);
    return res.stdout;
  }
  function stored(o: K8sObject, namespace: string) {
    const ns =
      o.kind.startsWith('Cluster') || o.kind === 'CustomResourceDefinition' || o.kind === 'CpuBurstStrategy';
    return cluster.store.get(o.apiVersion, o.kind, o.metadata.name, ns ? undefined : namespace);
  }

  before(async () => {
    requireTool(KUBECTL);
    dir = mkdtempSync(path.join(os.tmpdir(), 'cpuburst-chart-install-'));
    kubeconfig = path.join(dir, 'kubeconfig');
    cluster = await startDevCluster({ kubeconfigPath: kubeconfig });
    // helm installs crds/ before the templates; so do we.
    await ok(kubectl('apply', '-f', path.join(CHART, 'crds')));
    const foreign = [
      foreignCrd('monitoring.coreos.com', 'ServiceMonitor', 'servicemonitors'),
      foreignCrd('cert-manager.io', 'Certificate', 'certificates'),
    ];
    writeFileSync(
      path.join(dir, 'foreign-crds.json'),
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: foreign }),
    );
    await ok(kubectl('apply', '-f', path.join(dir, 'foreign-crds.json')));
  });

  after(async () => {
    await cluster?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const scenarios: Array<[string, string[]]> = [
    ['default', []],
    ...readdirSync(path.join(CHART, 'ci'))
      .filter((f) => f.endsWith('.yaml'))
      .sort()
      .map((f): [string, string[]] => [f.replace(/-values\.yaml$/, ''), [path.join(CHART, 'ci', f)]]),
  ];
  for (const [label, valuesFiles] of scenarios) {
    it(`kubectl apply of the rendered chart (${label}) stores every object as rendered`, async () => {
      const namespace = `cb-${label}`;
      const release = `r-${label}`;
      const text = await templateText({ release, namespace, valuesFiles });
      const file = path.join(dir, `${label}.yaml`);
      writeFileSync(file, text);
      await ok(kubectl('create', 'namespace', namespace));
      const out = await ok(kubectl('apply', '-n', namespace, '-f', file));
      const objs = parseManifests(text);
      assert.equal(out.trim().split('\n').length, objs.length, out);
      for (const o of objs) {
        const live = stored(o, namespace);
        assert.ok(live, `${o.kind}/${o.metadata.name} was not stored`);
        assert.deepEqual(live.metadata.labels, o.metadata.labels, `${o.kind}/${o.metadata.name} labels`);
        if (o.spec)
          assert.deepEqual(live.spec, { ...live.spec, ...o.spec }, `${o.kind}/${o.metadata.name} spec`);
        if (o.data) assert.deepEqual(live.data, o.data, `${o.kind}/${o.metadata.name} data`);
        if (o.rules) assert.deepEqual(live.rules, o.rules);
      }
      // kubectl sees them too (discovery, table printing).
      const ds = JSON.parse(await ok(kubectl('get', 'daemonset', '-n', namespace, '-o', 'json')));
      assert.equal(ds.items.length, 1);
      assert.deepEqual(
        ds.items[0].spec.template.spec.containers[0].lifecycle?.preStop?.exec?.command.slice(0, 3),
        ['cpuburst', 'agent', '--restore-all'],
      );
      // Re-applying the same manifests is a no-op (what a repeated `helm upgrade` of unchanged values does).
      const again = await ok(kubectl('apply', '-n', namespace, '-f', file));
      assert.ok(!/created/.test(again), again);
      // Uninstall: everything the templates created goes away.
      await ok(kubectl('delete', '-n', namespace, '-f', file, '--wait=false'));
      for (const o of objs)
        assert.equal(stored(o, namespace), undefined, `${o.kind}/${o.metadata.name} left behind`);
    });
  }

  it('the CRD accepts every example in crds/examples and refuses an invalid strategy with its message', async () => {
    await ok(kubectl('create', 'namespace', 'cpuburst-system'));
    await ok(kubectl('create', 'namespace', 'koordinator-system'));
    const examples = readdirSync(path.join(REPO_ROOT, 'crds', 'examples')).filter((f) => f.endsWith('.yaml'));
    assert.ok(examples.length > 0);
    for (const f of examples) await ok(kubectl('apply', '-f', path.join(REPO_ROOT, 'crds', 'examples', f)));
    const strategies = examples
      .flatMap((f) => parseManifests(readFileSync(path.join(REPO_ROOT, 'crds', 'examples', f), 'utf8')))
      .filter((o) => o.kind === 'CpuBurstStrategy')
      .map((o) => o.metadata.name)
      .sort();
    const listed = JSON.parse(await ok(kubectl('get', 'cbs', '-o', 'json')));
    assert.deepEqual(listed.items.map((o: K8sObject) => o.metadata.name).sort(), strategies);

    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      'apiVersion: cpuburst.io/v1alpha1\nkind: CpuBurstStrategy\nmetadata:\n  name: bad\nspec:\n  policy: cpuBurstOnly\n  cpuBurstPercent: 20000\n',
    );
    const r = await kubectl('apply', '-f', bad);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /cpuBurstPercent/);
  });

  it('the NOTES printed by helm install are a working copy-paste script', async () => {
    const r = await helm(['install', 'notes', CHART, '-n', 'default', '--dry-run=client'], {
      KUBECONFIG: kubeconfig,
    });
    assert.equal(r.code, 0, r.stderr);
    const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
    const steps = notes.slice(notes.indexOf('1. Apply'), notes.indexOf('Cluster defaults'));
    // What a user pastes: the indented command lines and the heredoc, not the numbered prose.
    let heredoc: string | null = null;
    const script = steps
      .split('\n')
      .filter((l) => !/^\d+\. /.test(l))
      .map((l) => {
        if (heredoc !== null) {
          if (l === heredoc) heredoc = null;
          return l; // heredoc bodies are pasted verbatim
        }
        heredoc = /<<'(\w+)'\s*$/.exec(l)?.[1] ?? null;
        return l.replace(/^ {2}/, '').replaceAll('<pod>', 'web-0');
      })
      .join('\n');
    assert.match(script, /kubectl apply -f -/);
    assert.match(script, /kubectl annotate pod web-0 cpuburst\.io\/enabled="true"/);
    cluster.store.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web-0', namespace: 'default', labels: { app: 'web' } },
      spec: { containers: [{ name: 'web', resources: { limits: { cpu: '1' } } }] },
    } as any);
    const res = await run('bash', ['-euo', 'pipefail', '-c', script], {
      KUBECONFIG: kubeconfig,
      PATH: `${path.dirname(KUBECTL)}:${process.env.PATH}`,
    });
    assert.equal(res.code, 0, `${script}\n---\n${res.stdout}\n${res.stderr}`);
    assert.ok(cluster.store.get('cpuburst.io/v1alpha1', 'CpuBurstStrategy', 'web-burst'));
    const annotated = cluster.store.get('v1', 'Pod', 'web-0', 'default');
    assert.equal(annotated?.metadata.annotations['cpuburst.io/enabled'], 'true');
    assert.equal(annotated?.metadata.annotations['cpuburst.io/config'], '{"cpuBurstPercent":50}');
  });

  it('helm install, upgrade (generated credentials kept via lookup) and uninstall (only the CRD stays)', async () => {
    const env = { KUBECONFIG: kubeconfig };
    await ok(kubectl('create', 'namespace', 'helm-ns'));
    await ok(helm(['install', 'hrel', CHART, '-n', 'helm-ns'], env));
    const secret = async () =>
      JSON.parse(
        await ok(kubectl('get', 'secret', 'hrel-cpuburst-broker-api-key', '-n', 'helm-ns', '-o', 'json')),
      ).data['api-key'];
    const before = await secret();
    await ok(helm(['upgrade', 'hrel', CHART, '-n', 'helm-ns', '--set', 'logLevel=debug'], env));
    assert.equal(await secret(), before, 'upgrade regenerated the broker API key');
    const ds = cluster.store.get('apps/v1', 'DaemonSet', 'hrel-cpuburst-agent', 'helm-ns');
    assert.ok(ds?.spec.template.spec.containers[0].args.includes('--log-level=debug'));
    await ok(helm(['uninstall', 'hrel', '-n', 'helm-ns'], env));
    const left = JSON.parse(
      await ok(kubectl('get', 'all,secrets,configmaps,serviceaccounts', '-n', 'helm-ns', '-o', 'json')),
    );
    assert.deepEqual(
      left.items
        .map((o: K8sObject) => `${o.kind}/${o.metadata.name}`)
        // Every namespace has its `default` ServiceAccount (made by the API server, not by the chart).
        .filter((id: string) => id !== 'ServiceAccount/default'),
      [],
    );
    assert.ok(
      cluster.store.get(
        'apiextensions.k8s.io/v1',
        'CustomResourceDefinition',
        'cpuburststrategies.cpuburst.io',
      ),
    );
  });
});
