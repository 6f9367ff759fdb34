// The real kubectl (v1.32.3, <repo>/.tools/kubectl) against the emulator, for every verb the issue lists,
// with the real CRD from crds/ and its examples.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type DevCluster, startDevCluster } from '../../devcluster/index.js';
import { REPO_ROOT } from '../support/cli.js';
import { kubectl, kubectlPath, waitFor } from './helpers.js';

const CRD = path.join(REPO_ROOT, 'crds/cpuburststrategies.cpuburst.io.yaml');
const EXAMPLES = path.join(REPO_ROOT, 'crds/examples');
const skip = existsSync(CRD)
  ? false
  : 'crds/cpuburststrategies.cpuburst.io.yaml is missing (written by the operator work)';

let dc: DevCluster;
let home: string;
let kcPath: string;
const children: ChildProcess[] = [];
const k = (...args: string[]) => kubectl(kcPath, home, args);
const kEnv = (env: Record<string, string>, ...args: string[]) => kubectl(kcPath, home, args, env);
const ok = async (...args: string[]) => {
  const r = await k(...args);
  assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
};

before(async () => {
  if (skip) return;
  kubectlPath(); // fails with "run `make tools`" when the binary is absent
  home = mkdtempSync(path.join(tmpdir(), 'devcluster-kubectl-'));
  kcPath = path.join(home, 'kubeconfig');
  dc = await startDevCluster({ kubeconfigPath: kcPath });
});
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await dc?.close();
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('kubectl', { skip }, () => {
  it('apply: the real CRD, then every example (CRs and ConfigMaps)', async () => {
    assert.match(
      await ok('apply', '-f', CRD),
      /customresourcedefinition.apiextensions.k8s.io\/cpuburststrategies.cpuburst.io created/,
    );
    assert.match(
      await ok('wait', '--for=condition=Established', 'crd/cpuburststrategies.cpuburst.io', '--timeout=20s'),
      /condition met/,
    );
    for (const ns of ['cpuburst-system', 'koordinator-system']) await ok('create', 'namespace', ns);
    const out = await ok('apply', '-f', EXAMPLES);
    const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml'));
    assert.equal(out.trim().split('\n').length, files.length, out);
    assert.match(out, /cpuburststrategy.cpuburst.io\/web-auto created/);
    // Re-applying unchanged files is a no-op; a changed one is patched (merge patch for CRs).
    assert.match(await ok('apply', '-f', path.join(EXAMPLES, 'web-auto.yaml')), /web-auto unchanged/);
  });

  it('apply rejects invalid CRs with the schema and CEL messages', async () => {
    const bad = path.join(home, 'bad.yaml');
    writeFileSync(
      bad,
      'apiVersion: cpuburst.io/v1alpha1\nkind: CpuBurstStrategy\nmetadata: {name: bad}\nspec: {policy: auto, cpuBurstPercent: 20000}\n',
    );
    let r = await k('apply', '-f', bad);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /spec.cpuBurstPercent: Invalid value: 20000: spec.cpuBurstPercent in body should be less than or equal to 10000/,
    );
    writeFileSync(
      bad,
      'apiVersion: cpuburst.io/v1alpha1\nkind: CpuBurstStrategy\nmetadata: {name: bad}\nspec: {policy: auto, cfsQuotaBurstPercent: 100}\n',
    );
    r = await k('apply', '-f', bad);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /cfsQuotaBurstPercent must be above 100 when the policy scales the CFS quota/);
    writeFileSync(
      bad,
      'apiVersion: cpuburst.io/v1alpha1\nkind: CpuBurstStrategy\nmetadata: {name: bad}\nspec: {policy: sometimes}\n',
    );
    r = await k('apply', '-f', bad);
    assert.match(r.stderr, /spec.policy: Unsupported value: "sometimes"/);
    writeFileSync(
      bad,
      'apiVersion: cpuburst.io/v1alpha1\nkind: CpuBurstStrategy\nmetadata: {name: bad}\nspec: {policy: none, typo: 1}\n',
    );
    r = await k('apply', '-f', bad);
    assert.match(r.stderr, /strict decoding error: unknown field "spec.typo"/);
  });

  it('get: printer columns, -o wide, -o yaml, -o json, short name', async () => {
    const table = await ok('get', 'cbs');
    const header = table.split('\n')[0]!.split(/\s{2,}/);
    assert.deepEqual(header, ['NAME', 'POLICY', 'NODES', 'PODS', 'READY', 'AGE']);
    assert.match(table, /web-auto\s+auto/);
    const wide = (await ok('get', 'cpuburststrategies', '-o', 'wide')).split('\n')[0]!;
    assert.match(wide, /PRIORITY\s+DRYRUN/);
    const json = JSON.parse(await ok('get', 'cbs', 'web-auto', '-o', 'json'));
    assert.equal(json.spec.cpuBurstPercent, 100);
    assert.equal(json.spec.sharePoolThresholdPercent, 50, 'schema default applied');
    assert.match(await ok('get', 'cbs', 'web-auto', '-o', 'yaml'), /policy: auto/);
    assert.match(await ok('get', 'configmaps', '-A'), /cpuburst-system/);
    assert.match(await ok('get', 'ns'), /kube-system\s+Active/);
  });

  it('describe, label, annotate, patch (merge and json), edit', async () => {
    assert.match(await ok('describe', 'cbs', 'web-auto'), /Policy:\s+auto/);
    await ok('label', 'cbs', 'web-auto', 'tier=gold');
    await ok('annotate', 'cbs', 'web-auto', 'owner=team-a');
    await ok('patch', 'cbs', 'web-auto', '--type', 'merge', '-p', '{"spec":{"priority":20}}');
    await ok(
      'patch',
      'cbs',
      'web-auto',
      '--type',
      'json',
      '-p',
      '[{"op":"replace","path":"/spec/cpuBurstPercent","value":150}]',
    );
    const r = await k('patch', 'cbs', 'web-auto', '-p', '{"spec":{"priority":21}}');
    assert.notEqual(r.code, 0, 'strategic merge patch is refused for custom resources');
    const editor = path.join(home, 'editor.sh');
    writeFileSync(editor, '#!/bin/sh\nsed -i "s/priority: 20/priority: 30/" "$1"\n', { mode: 0o755 });
    await kEnv({ KUBE_EDITOR: editor }, 'edit', 'cbs', 'web-auto');
    const o = JSON.parse(await ok('get', 'cbs', 'web-auto', '-o', 'json'));
    assert.equal(o.metadata.labels.tier, 'gold');
    assert.equal(o.metadata.annotations.owner, 'team-a');
    assert.equal(o.spec.cpuBurstPercent, 150);
    assert.equal(o.spec.priority, 30);
    assert.equal(o.metadata.generation, 4);
    const bad = await k('patch', 'cbs', 'web-auto', '--type', 'merge', '-p', '{"spec":{"priority":5000}}');
    assert.match(bad.stderr, /spec.priority in body should be less than or equal to 1000/);
  });

  it('wait --for=condition=Ready, get --watch, delete, wait --for=delete', async () => {
    const waiter = k('wait', '--for=condition=Ready', 'cbs/web-auto', '--timeout=30s');
    await new Promise((r) => setTimeout(r, 300));
    dc.store.update(
      {
        ...dc.store.get('cpuburst.io/v1alpha1', 'CpuBurstStrategy', 'web-auto')!,
        status: {
          conditions: [
            {
              type: 'Ready',
              status: 'True',
              reason: 'Applied',
              message: 'ok',
              lastTransitionTime: '2026-01-01T00:00:00Z',
            },
          ],
        },
      },
      { subresource: 'status' },
    );
    const w = await waiter;
    assert.equal(w.code, 0, w.stderr);
    assert.match(w.stdout, /condition met/);
    assert.match(await ok('get', 'cbs', 'web-auto'), /web-auto\s+auto\s+True/);

    const watcher = spawn(
      kubectlPath(),
      [
        `--kubeconfig=${kcPath}`,
        `--cache-dir=${home}/cache`,
        'get',
        'cbs',
        '--watch',
        '--output-watch-events',
      ],
      {
        env: { PATH: process.env.PATH ?? '', HOME: home },
      },
    );
    children.push(watcher);
    let out = '';
    watcher.stdout.on('data', (d) => {
      out += d;
    });
    await waitFor(() => out.includes('web-auto'), 'initial watch rows', 20_000);
    const gone = k('wait', '--for=delete', 'cbs/dry-run-everything', '--timeout=30s');
    assert.match(await ok('delete', 'cbs', 'dry-run-everything'), /deleted/);
    await waitFor(
      () => /DELETED\s+dry-run-everything/.test(out),
      'DELETED row in kubectl get --watch',
      20_000,
    );
    await ok('label', 'cbs', 'business-hours', 'seen=yes');
    await waitFor(() => /MODIFIED\s+business-hours/.test(out), 'MODIFIED row', 20_000);
    watcher.kill();
    const gr = await gone;
    assert.equal(gr.code, 0, gr.stderr);
  });

  it('built-ins: apply twice (strategic merge), run, get -o wide, describe pod, delete', async () => {
    const dep = path.join(home, 'dep.yaml');
    const manifest = (img: string, v: string) =>
      `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - {name: a, image: nginx, env: [{name: X, value: "${v}"}]}\n      - {name: b, image: ${img}}\n`;
    writeFileSync(dep, manifest('busybox', '1'));
    await ok('apply', '-f', dep);
    writeFileSync(dep, manifest('alpine', '2'));
    assert.match(await ok('apply', '-f', dep), /configured/);
    const d = JSON.parse(await ok('get', 'deploy', 'web', '-o', 'json'));
    assert.deepEqual(
      d.spec.template.spec.containers.map((c: any) => c.image),
      ['nginx', 'alpine'],
    );
    assert.equal(d.spec.template.spec.containers[0].env[0].value, '2');
    assert.match(await ok('scale', 'deploy', 'web', '--replicas=4'), /scaled/);
    assert.equal(await ok('get', 'deploy', 'web', '-o', 'jsonpath={.spec.replicas}'), '4');
    const stale = await k('scale', 'deploy', 'web', '--replicas=2', '--current-replicas=3');
    assert.match(stale.stderr, /Expected replicas to be 3, was 4/);
    await ok('run', 'pod1', '--image=nginx', '--labels=app=x');
    dc.store.update({
      ...dc.store.get('v1', 'Pod', 'pod1', 'default')!,
      spec: { ...dc.store.get('v1', 'Pod', 'pod1', 'default')!.spec, nodeName: 'node-1' },
    });
    assert.match(await ok('get', 'pods', '-o', 'wide'), /pod1\s+0\/1\s+Pending\s+0\s+\S+\s+<none>\s+node-1/);
    assert.match(await ok('describe', 'pod', 'pod1'), /Node:\s+node-1/);
    assert.match(await ok('delete', 'pod', 'pod1'), /pod "pod1" deleted/);
    assert.match(await ok('get', 'pods'), /^$/);
  });
});

describe('kubectl RBAC checks (impersonation and access reviews)', { skip }, () => {
  it('auth can-i --as answers from Roles/ClusterRoles and their bindings; --as requests are enforced', async () => {
    const rbac = path.join(home, 'rbac.yaml');
    writeFileSync(
      rbac,
      [
        'apiVersion: v1\nkind: Namespace\nmetadata: {name: ops}',
        'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: op, namespace: ops}',
        'apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: op}\nrules:\n- {apiGroups: [cpuburst.io], resources: [cpuburststrategies], verbs: [get, list, watch]}\n- {apiGroups: [cpuburst.io], resources: [cpuburststrategies/status], verbs: [patch]}\n- {apiGroups: [""], resources: [pods], verbs: [list]}',
        'apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: op}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: op}\nsubjects: [{kind: ServiceAccount, name: op, namespace: ops}]',
        'apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: leases, namespace: ops}\nrules:\n- {apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, update], resourceNames: [leader]}',
        'apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: leases, namespace: ops}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: leases}\nsubjects: [{kind: ServiceAccount, name: op, namespace: ops}]',
      ].join('\n---\n'),
    );
    await ok('apply', '-f', rbac);
    const as = '--as=system:serviceaccount:ops:op';
    const can = async (...args: string[]) => (await k('auth', 'can-i', ...args, as)).stdout.trim();
    assert.equal(await can('list', 'pods', '-A'), 'yes');
    assert.equal(await can('delete', 'pods'), 'no');
    assert.equal(await can('patch', 'cpuburststrategies', '--subresource=status'), 'yes');
    assert.equal(await can('patch', 'cpuburststrategies'), 'no');
    assert.equal(await can('update', 'leases/leader', '-n', 'ops'), 'yes');
    assert.equal(await can('update', 'leases/other', '-n', 'ops'), 'no');
    assert.equal(await can('update', 'leases/leader', '-n', 'default'), 'no');
    assert.equal(
      (await k('auth', 'can-i', 'delete', 'nodes')).stdout.trim(),
      'yes',
      'no impersonation: admin',
    );
    assert.match(await ok('get', 'cbs', as), /web-auto|NAME/);
    const denied = await k('get', 'secrets', '-n', 'ops', as);
    assert.notEqual(denied.code, 0);
    assert.match(
      denied.stderr,
      /secrets is forbidden: User "system:serviceaccount:ops:op" cannot list resource "secrets" in API group "" in the namespace "ops"/,
    );
  });
});
