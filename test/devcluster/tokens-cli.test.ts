// `cpuburst devcluster` token flags as a process: --sa-* flags, SIGHUP rotation, the key file, and
// the real kubectl over TLS creating a token and then using it (RBAC applies to it).
import assert from 'node:assert/strict';
import { type ChildProcess, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { decodeJwt } from '../../devcluster/index.js';
import { REPO_ROOT, runCli, spawnCli } from '../support/cli.js';
import { waitFor } from './helpers.js';

const KUBECTL = path.join(REPO_ROOT, '.tools/kubectl');
const dir = mkdtempSync(path.join(tmpdir(), 'devcluster-tokens-cli-'));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function get(
  url: string,
  ca: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, headers }, (res) => {
        let s = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          s += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: s ? JSON.parse(s) : undefined }));
      })
      .on('error', reject);
  });
}

test('a bad --sa-signing-alg exits 2', async () => {
  const r = await runCli(['devcluster', '--port', '0', '--sa-signing-alg', 'HS256']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--sa-signing-alg must be RS256 or ES256/);
});

test('devcluster process: kubectl create token over TLS, SA bearer + RBAC, SIGHUP rotation, key file', {
  skip: !existsSync(KUBECTL) && 'needs .tools/kubectl (make tools)',
  timeout: 90_000,
}, async () => {
  const kc = path.join(dir, 'kc');
  const keyFile = path.join(dir, 'sa.key');
  const child = spawnCli([
    'devcluster',
    '--port',
    '0',
    '--tls',
    '--token',
    'admin-token',
    '--kubeconfig',
    kc,
    '--sa-signing-key-file',
    keyFile,
    '--sa-min-expiration-seconds',
    '1',
    '--sa-issuer',
    'https://kubernetes.default.svc.cluster.local',
  ]);
  children.push(child);
  let out = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const line = await waitFor(
    () => out.split('\n').find((l) => l.includes('"API server listening"')),
    `listening (output: ${out})`,
    30_000,
  );
  const { url, issuer } = JSON.parse(line);
  assert.equal(issuer, 'https://kubernetes.default.svc.cluster.local');
  assert.match(readFileSync(keyFile, 'utf8'), /BEGIN PRIVATE KEY/);
  const ca = Buffer.from(
    YAML.parse(readFileSync(kc, 'utf8')).clusters[0].cluster['certificate-authority-data'],
    'base64',
  ).toString('utf8');
  const k = (args: string[]) =>
    promisify(execFile)(KUBECTL, ['--kubeconfig', kc, ...args]).then(
      (r) => ({ ok: true, out: r.stdout }),
      (e: { stderr: string }) => ({ ok: false, out: e.stderr }),
    );

  // Discovery documents without credentials.
  const oidc = await get(`${url}/.well-known/openid-configuration`, ca);
  assert.equal(oidc.status, 200);
  assert.equal(oidc.body.issuer, 'https://kubernetes.default.svc.cluster.local');
  assert.equal(oidc.body.jwks_uri, `${url}/openid/v1/jwks`);
  const before = (await get(`${url}/openid/v1/jwks`, ca)).body.keys.map((x: any) => x.kid);
  assert.equal(before.length, 1);
  assert.equal((await get(`${url}/api/v1/namespaces`, ca)).status, 401);

  // kubectl (admin token over TLS) creates a short token; the server honours the lowered minimum.
  const created = await k(['create', 'token', 'default', '-n', 'kube-system', '--duration', '5s']);
  assert.ok(created.ok, created.out);
  const token = created.out.trim();
  const { header, claims } = decodeJwt(token);
  assert.equal(header.kid, before[0]);
  assert.equal(claims.exp - claims.iat, 5);
  assert.equal(claims.sub, 'system:serviceaccount:kube-system:default');

  // kubectl with that token is that ServiceAccount: RBAC says no, then yes.
  let r = await k(['--token', token, 'get', 'pods', '-n', 'kube-system']);
  assert.equal(r.ok, false);
  assert.match(r.out, /User "system:serviceaccount:kube-system:default" cannot list resource "pods"/);
  const roles = [
    'apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: pod-reader}\nrules:\n- {apiGroups: [""], resources: [pods], verbs: [get, list]}',
    'apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: pod-reader, namespace: kube-system}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: pod-reader}\nsubjects:\n- {kind: ServiceAccount, name: default, namespace: kube-system}',
  ].join('\n---\n');
  writeFileSync(path.join(dir, 'roles.yaml'), roles);
  r = await k(['apply', '-f', path.join(dir, 'roles.yaml')]);
  assert.ok(r.ok, r.out);
  r = await k(['--token', token, 'get', 'pods', '-n', 'kube-system']);
  assert.ok(r.ok, r.out);
  r = await k(['--token', token, 'get', 'pods', '-n', 'default']);
  assert.equal(r.ok, false);
  r = await k(['--token', token, 'auth', 'whoami', '-o', 'json']);
  assert.ok(r.ok, r.out);
  assert.equal(JSON.parse(r.out).status.userInfo.username, 'system:serviceaccount:kube-system:default');

  // SIGHUP: a new signing key, the old one kept in the JWKS; the key file holds the new key.
  const keyBefore = readFileSync(keyFile, 'utf8');
  child.kill('SIGHUP');
  let after: string[] = [];
  for (const end = Date.now() + 15_000; after.length !== 2; ) {
    assert.ok(Date.now() < end, 'timed out waiting for a second key in the JWKS');
    await new Promise((res) => setTimeout(res, 50));
    after = (await get(`${url}/openid/v1/jwks`, ca)).body.keys.map((x: any) => x.kid);
  }
  assert.equal(after[1], before[0]);
  assert.notEqual(readFileSync(keyFile, 'utf8'), keyBefore);
  assert.ok(out.includes('Rotated ServiceAccount signing key'));
  const fresh = await k(['create', 'token', 'default', '-n', 'kube-system']);
  assert.equal(decodeJwt(fresh.out.trim()).header.kid, after[0]);

  // The old token still works (its key was kept) until the admin drops the old key.
  r = await k(['--token', token, 'get', 'pods', '-n', 'kube-system']);
  assert.ok(r.ok, r.out);
  const drop = await new Promise<number>((resolve, reject) => {
    const req = https.request(
      `${url}/debug/devcluster/rotate-sa-key?keepPrevious=false`,
      { method: 'POST', ca, headers: { Authorization: 'Bearer admin-token' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
  assert.equal(drop, 200);
  r = await k(['--token', token, 'get', 'pods', '-n', 'kube-system']);
  assert.equal(r.ok, false);
  assert.match(r.out, /Unauthorized|provide credentials/);

  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});
