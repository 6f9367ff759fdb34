// ServiceAccount tokens: TokenRequest, JWKS/OIDC discovery, TokenReview, key rotation, SA bearer auth
// with RBAC, and `kubectl create token` against devcluster.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { type DevCluster, decodeJwt, generateSigningKey, startDevCluster } from '../../devcluster/index.js';
import { REPO_ROOT } from '../support/cli.js';
import { request } from './helpers.js';

const KUBECTL = path.join(REPO_ROOT, '.tools/kubectl');
const ADMIN = { Authorization: 'Bearer admin-token' };

/** Verifies a JWT against a JWKS with node:crypto only (what a broker does). */
function verifyWithJwks(token: string, jwks: { keys: any[] }): boolean {
  const [h, p, s] = token.split('.');
  const header = JSON.parse(Buffer.from(h!, 'base64url').toString('utf8'));
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk) return false;
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  const input = Buffer.from(`${h}.${p}`);
  const sig = Buffer.from(s!, 'base64url');
  return header.alg === 'ES256'
    ? cryptoVerify('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, sig)
    : cryptoVerify('sha256', input, key, sig);
}

function seed(dc: DevCluster) {
  dc.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'cpuburst' } });
  dc.store.create({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'agent', namespace: 'cpuburst' },
  });
  const node = dc.store.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' } });
  const pod = dc.store.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'agent-a', namespace: 'cpuburst' },
    spec: { nodeName: 'node-a', serviceAccountName: 'agent', containers: [{ name: 'c', image: 'x' }] },
  });
  const unscheduled = dc.store.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'pending', namespace: 'cpuburst' },
    spec: { serviceAccountName: 'agent', containers: [{ name: 'c', image: 'x' }] },
  });
  return { node, pod, unscheduled };
}

const tokenPath = (ns: string, sa: string) => `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`;
const reviewPath = '/apis/authentication.k8s.io/v1/tokenreviews';

describe('ServiceAccount tokens', () => {
  let dc: DevCluster;
  let objs: ReturnType<typeof seed>;
  before(async () => {
    dc = await startDevCluster({ token: 'admin-token' });
    objs = seed(dc);
  });
  after(() => dc.close());

  const review = async (token: string, audiences?: string[]) =>
    (await request(dc.url, 'POST', reviewPath, { spec: { token, audiences } }, ADMIN)).body;

  test('TokenRequest bound to a pod: exact claims, verifiable with the JWKS', async () => {
    const r = await request(
      dc.url,
      'POST',
      tokenPath('cpuburst', 'agent'),
      {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: {
          audiences: ['cpuburst-broker'],
          expirationSeconds: 900,
          boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'agent-a', uid: objs.pod.metadata.uid },
        },
      },
      ADMIN,
    );
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.kind, 'TokenRequest');
    const token: string = r.body.status.token;
    const { header, claims } = decodeJwt(token);
    assert.equal(header.alg, 'RS256');
    assert.deepEqual(dc.tokens.kids, [header.kid]);
    const sa = dc.store.get('v1', 'ServiceAccount', 'agent', 'cpuburst')!;
    assert.deepEqual(claims, {
      aud: ['cpuburst-broker'],
      exp: claims.iat + 900,
      iat: claims.iat,
      iss: dc.url,
      jti: claims.jti,
      'kubernetes.io': {
        namespace: 'cpuburst',
        serviceaccount: { name: 'agent', uid: sa.metadata.uid },
        pod: { name: 'agent-a', uid: objs.pod.metadata.uid },
        node: { name: 'node-a', uid: objs.node.metadata.uid },
      },
      nbf: claims.iat,
      sub: 'system:serviceaccount:cpuburst:agent',
    });
    assert.match(claims.jti, /^[0-9a-f-]{36}$/);
    assert.ok(Math.abs(claims.iat - Date.now() / 1000) < 30);
    assert.equal(
      r.body.status.expirationTimestamp,
      new Date(claims.exp * 1000).toISOString().replace('.000', ''),
    );

    // Discovery is reachable without the admin token.
    const oidc = await request(dc.url, 'GET', '/.well-known/openid-configuration');
    assert.equal(oidc.status, 200);
    assert.deepEqual(oidc.body, {
      issuer: dc.url,
      jwks_uri: `${dc.url}/openid/v1/jwks`,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
    });
    const jwks = await request(dc.url, 'GET', '/openid/v1/jwks');
    assert.equal(jwks.status, 200);
    assert.match(String(jwks.headers['content-type']), /jwk-set\+json/);
    assert.equal(jwks.body.keys.length, 1);
    assert.equal(jwks.body.keys[0].kty, 'RSA');
    assert.equal(jwks.body.keys[0].use, 'sig');
    assert.equal(jwks.body.keys[0].alg, 'RS256');
    assert.equal(jwks.body.keys[0].d, undefined, 'no private part in the JWKS');
    assert.ok(verifyWithJwks(token, jwks.body));
    const tampered = `${token.split('.')[0]}.${Buffer.from(JSON.stringify({ ...claims, sub: 'x' })).toString('base64url')}.${token.split('.')[2]}`;
    assert.equal(verifyWithJwks(tampered, jwks.body), false);

    // TokenReview: user info and extra as the contract says.
    const rv = await review(token, ['cpuburst-broker']);
    assert.equal(rv.status.authenticated, true, JSON.stringify(rv.status));
    assert.deepEqual(rv.status.audiences, ['cpuburst-broker']);
    assert.deepEqual(rv.status.user, {
      username: 'system:serviceaccount:cpuburst:agent',
      uid: sa.metadata.uid,
      groups: ['system:serviceaccounts', 'system:serviceaccounts:cpuburst', 'system:authenticated'],
      extra: {
        'authentication.kubernetes.io/pod-name': ['agent-a'],
        'authentication.kubernetes.io/pod-uid': [objs.pod.metadata.uid],
        'authentication.kubernetes.io/node-name': ['node-a'],
        'authentication.kubernetes.io/node-uid': [objs.node.metadata.uid],
        'authentication.kubernetes.io/credential-id': [`JTI=${claims.jti}`],
      },
    });
  });

  test('node claim only when the bound pod has a node; defaults: audience = issuer, 3600 s', async () => {
    const r = await request(
      dc.url,
      'POST',
      tokenPath('cpuburst', 'agent'),
      { spec: { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'pending' } } },
      ADMIN,
    );
    assert.equal(r.status, 201);
    const { claims } = decodeJwt(r.body.status.token);
    assert.deepEqual(Object.keys(claims['kubernetes.io']).sort(), ['namespace', 'pod', 'serviceaccount']);
    assert.deepEqual(claims.aud, [dc.issuer]);
    assert.equal(claims.exp - claims.iat, 3600);
    assert.deepEqual(r.body.spec.audiences, [dc.issuer]);
    assert.equal(r.body.spec.expirationSeconds, 3600);
    // An unbound token has no pod/node claims; the default-audience review passes.
    const plain = dc.tokens.issue({ namespace: 'cpuburst', serviceAccount: 'agent' });
    assert.deepEqual(Object.keys(plain.claims['kubernetes.io']).sort(), ['namespace', 'serviceaccount']);
    const rv = await review(plain.token);
    assert.equal(rv.status.authenticated, true);
    assert.deepEqual(rv.status.audiences, [dc.issuer]);
    assert.deepEqual(rv.status.user.extra, {
      'authentication.kubernetes.io/credential-id': [`JTI=${plain.claims.jti}`],
    });
  });

  test('TokenRequest errors: missing SA or pod 404, uid mismatch 409, other SA 400, bad spec 400/422', async () => {
    const post = (ns: string, sa: string, body: unknown) =>
      request(dc.url, 'POST', tokenPath(ns, sa), body, ADMIN);
    let r = await post('cpuburst', 'nobody', { spec: {} });
    assert.equal(r.status, 404);
    assert.equal(r.body.message, 'serviceaccounts "nobody" not found');
    r = await post('cpuburst', 'agent', {
      spec: { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'gone' } },
    });
    assert.equal(r.status, 404);
    assert.equal(r.body.message, 'pods "gone" not found');
    r = await post('cpuburst', 'agent', {
      spec: { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'agent-a', uid: 'not-the-uid' } },
    });
    assert.equal(r.status, 409);
    assert.match(r.body.message, /the UID in the bound object reference \(not-the-uid\) does not match/);
    r = await post('cpuburst', 'default', {
      spec: { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'agent-a' } },
    });
    assert.equal(r.status, 400);
    assert.match(r.body.message, /different serviceaccount name/);
    r = await post('cpuburst', 'agent', {
      spec: { boundObjectRef: { kind: 'ConfigMap', apiVersion: 'v1', name: 'x' } },
    });
    assert.equal(r.status, 400);
    r = await post('cpuburst', 'agent', { spec: { expirationSeconds: 'soon' } });
    assert.equal(r.status, 400);
    r = await post('cpuburst', 'agent', { spec: { audiences: 'cpuburst-broker' } });
    assert.equal(r.status, 400);
    r = await post('cpuburst', 'agent', { spec: { expirationSeconds: 599 } });
    assert.equal(r.status, 422);
    assert.match(r.body.message, /may not specify a duration less than 10 minutes/);
    r = await request(dc.url, 'GET', tokenPath('cpuburst', 'agent'), undefined, ADMIN);
    assert.equal(r.status, 405);
  });

  test('TokenReview refuses expired, wrong-audience, foreign, wrong-issuer and malformed tokens', async () => {
    const base = { namespace: 'cpuburst', serviceAccount: 'agent', audiences: ['cpuburst-broker'] };
    const expired = dc.tokens.issue({ ...base, expirationSeconds: -120 });
    let rv = await review(expired.token, ['cpuburst-broker']);
    assert.equal(rv.status.authenticated, false);
    assert.match(rv.status.error, /expired/);
    // Inside kube-apiserver's 60 s leeway a just-expired token still passes.
    rv = await review(dc.tokens.issue({ ...base, expirationSeconds: -5 }).token, ['cpuburst-broker']);
    assert.equal(rv.status.authenticated, true);
    rv = await review(dc.tokens.issue(base).token, ['other']);
    assert.equal(rv.status.authenticated, false);
    assert.match(
      rv.status.error,
      /token audiences \["cpuburst-broker"\] is invalid for the target audiences \["other"\]/,
    );
    const foreign = generateSigningKey();
    rv = await review(dc.tokens.issue({ ...base, key: foreign }).token, ['cpuburst-broker']);
    assert.equal(rv.status.authenticated, false);
    // A forged header claiming our kid but signed by another key.
    const forged = dc.tokens.issue(base).token.split('.');
    const other = dc.tokens.issue({ ...base, key: foreign }).token.split('.');
    rv = await review(`${forged[0]}.${forged[1]}.${other[2]}`, ['cpuburst-broker']);
    assert.equal(rv.status.authenticated, false);
    rv = await review(dc.tokens.issue({ ...base, issuer: 'https://elsewhere' }).token, ['cpuburst-broker']);
    assert.equal(rv.status.authenticated, false);
    // alg "none" with our kid, and a truncated signature.
    const none = Buffer.from(JSON.stringify({ alg: 'none', kid: dc.tokens.kids[0] })).toString('base64url');
    rv = await review(`${none}.${forged[1]}.`, ['cpuburst-broker']);
    assert.equal(rv.status.authenticated, false);
    rv = await review(`${forged[0]}.${forged[1]}.${forged[2]!.slice(0, 10)}`, ['cpuburst-broker']);
    assert.equal(rv.status.authenticated, false);
    rv = await review('not.a.jwt', ['cpuburst-broker']);
    assert.equal(rv.status.authenticated, false);
    const missing = await request(dc.url, 'POST', reviewPath, { spec: {} }, ADMIN);
    assert.equal(missing.status, 422);
    const anon = await request(dc.url, 'POST', reviewPath, { spec: { token: 'x' } });
    assert.equal(anon.status, 401);
  });

  test('a token whose bound pod is deleted (or recreated with another uid) is no longer authenticated', async () => {
    const pod = dc.store.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'short-lived', namespace: 'cpuburst' },
      spec: { nodeName: 'node-a', serviceAccountName: 'agent', containers: [{ name: 'c', image: 'x' }] },
    });
    const t = dc.tokens.issue({
      namespace: 'cpuburst',
      serviceAccount: 'agent',
      audiences: ['cpuburst-broker'],
      boundPod: { name: 'short-lived', uid: pod.metadata.uid },
    });
    assert.equal((await review(t.token, ['cpuburst-broker'])).status.authenticated, true);
    dc.store.delete('v1', 'Pod', 'short-lived', 'cpuburst');
    let rv = await review(t.token, ['cpuburst-broker']);
    assert.equal(rv.status.authenticated, false);
    assert.match(rv.status.error, /invalidated/);
    dc.store.create({ ...pod, metadata: { name: 'short-lived', namespace: 'cpuburst' } });
    rv = await review(t.token, ['cpuburst-broker']);
    assert.equal(rv.status.authenticated, false);
    assert.match(rv.status.error, /does not match service account pod ref claim/);
  });

  test('key rotation: keepPrevious keeps old tokens valid, dropping it invalidates them', async () => {
    const base = { namespace: 'cpuburst', serviceAccount: 'agent', audiences: ['cpuburst-broker'] };
    const old = dc.tokens.issue(base);
    const oldKid = decodeJwt(old.token).header.kid;
    let r = await request(
      dc.url,
      'POST',
      '/debug/devcluster/rotate-sa-key?keepPrevious=true',
      undefined,
      ADMIN,
    );
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.previous, [oldKid]);
    const jwks = (await request(dc.url, 'GET', '/openid/v1/jwks')).body;
    assert.deepEqual(
      jwks.keys.map((k: any) => k.kid),
      [r.body.kid, oldKid],
    );
    const fresh = dc.tokens.issue(base);
    assert.equal(decodeJwt(fresh.token).header.kid, r.body.kid);
    assert.ok(verifyWithJwks(fresh.token, jwks) && verifyWithJwks(old.token, jwks));
    assert.equal((await review(old.token, ['cpuburst-broker'])).status.authenticated, true);
    // Only the admin may rotate.
    r = await request(dc.url, 'POST', '/debug/devcluster/rotate-sa-key');
    assert.equal(r.status, 401);
    r = await request(dc.url, 'POST', '/debug/devcluster/rotate-sa-key?keepPrevious=false', undefined, ADMIN);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.previous, []);
    const after = (await request(dc.url, 'GET', '/openid/v1/jwks')).body;
    assert.deepEqual(
      after.keys.map((k: any) => k.kid),
      [r.body.kid],
    );
    assert.equal(verifyWithJwks(old.token, after), false);
    const rv = await review(old.token, ['cpuburst-broker']);
    assert.equal(rv.status.authenticated, false);
    assert.equal((await review(fresh.token, ['cpuburst-broker'])).status.authenticated, false);
    assert.equal((await review(dc.tokens.issue(base).token, ['cpuburst-broker'])).status.authenticated, true);
  });

  test("injected faults reach the discovery documents (for verifiers' fallbacks)", async () => {
    dc.faults.failRequests({ share: 1, code: 503, path: /openid/ });
    try {
      assert.equal((await request(dc.url, 'GET', '/openid/v1/jwks')).status, 503);
      assert.equal((await request(dc.url, 'GET', '/.well-known/openid-configuration')).status, 503);
    } finally {
      dc.faults.reset();
    }
    assert.equal((await request(dc.url, 'GET', '/openid/v1/jwks')).status, 200);
  });

  test('discovery lists serviceaccounts/token and authentication.k8s.io/v1 tokenreviews', async () => {
    const core = (await request(dc.url, 'GET', '/api/v1', undefined, ADMIN)).body;
    const tr = core.resources.find((r: any) => r.name === 'serviceaccounts/token');
    assert.deepEqual(tr, {
      name: 'serviceaccounts/token',
      singularName: '',
      namespaced: true,
      group: 'authentication.k8s.io',
      version: 'v1',
      kind: 'TokenRequest',
      verbs: ['create'],
    });
    const authn = (await request(dc.url, 'GET', '/apis/authentication.k8s.io/v1', undefined, ADMIN)).body;
    const names = authn.resources.map((r: any) => r.name);
    assert.ok(names.includes('tokenreviews'), names.join());
    assert.deepEqual(authn.resources.find((r: any) => r.name === 'tokenreviews').verbs, ['create']);
  });

  test('ServiceAccount bearer tokens authenticate API requests and are limited by RBAC', async () => {
    const apiToken = (
      await request(
        dc.url,
        'POST',
        tokenPath('cpuburst', 'agent'),
        { spec: { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'agent-a' } } },
        ADMIN,
      )
    ).body.status.token as string;
    const as = { Authorization: `Bearer ${apiToken}` };
    let r = await request(dc.url, 'GET', '/api/v1/namespaces/cpuburst/pods', undefined, as);
    assert.equal(r.status, 403);
    assert.equal(
      r.body.message,
      'pods is forbidden: User "system:serviceaccount:cpuburst:agent" cannot list resource "pods" in API group "" in the namespace "cpuburst"',
    );
    // Discovery is open to every authenticated user.
    assert.equal((await request(dc.url, 'GET', '/api/v1', undefined, as)).status, 200);
    assert.equal((await request(dc.url, 'GET', '/version', undefined, as)).status, 200);
    assert.equal((await request(dc.url, 'GET', '/metrics', undefined, as)).status, 403);
    // A token for another audience does not authenticate to the API.
    const brokerOnly = dc.tokens.issue({
      namespace: 'cpuburst',
      serviceAccount: 'agent',
      audiences: ['cpuburst-broker'],
    });
    r = await request(dc.url, 'GET', '/api/v1', undefined, { Authorization: `Bearer ${brokerOnly.token}` });
    assert.equal(r.status, 401);
    // Grant: get/list pods in cpuburst + create tokenreviews cluster-wide.
    dc.store.create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'pods', namespace: 'cpuburst' },
      rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }],
    });
    dc.store.create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'pods', namespace: 'cpuburst' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pods' },
      subjects: [{ kind: 'ServiceAccount', name: 'agent', namespace: 'cpuburst' }],
    });
    r = await request(dc.url, 'GET', '/api/v1/namespaces/cpuburst/pods', undefined, as);
    assert.equal(r.status, 200);
    assert.ok(r.body.items.length >= 2);
    r = await request(dc.url, 'GET', '/api/v1/namespaces/default/pods', undefined, as);
    assert.equal(r.status, 403);
    r = await request(dc.url, 'DELETE', '/api/v1/namespaces/cpuburst/pods/pending', undefined, as);
    assert.equal(r.status, 403);
    r = await request(dc.url, 'POST', reviewPath, { spec: { token: apiToken } }, as);
    assert.equal(r.status, 403);
    dc.store.create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'agent-auth-delegator' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:auth-delegator' },
      subjects: [{ kind: 'ServiceAccount', name: 'agent', namespace: 'cpuburst' }],
    });
    dc.store.create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'system:auth-delegator' },
      rules: [{ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }],
    });
    r = await request(dc.url, 'POST', reviewPath, { spec: { token: apiToken } }, as);
    assert.equal(r.status, 201);
    assert.equal(r.body.status.authenticated, true);
    // No impersonation without the impersonate verb.
    r = await request(dc.url, 'GET', '/api/v1/namespaces/cpuburst/pods', undefined, {
      ...as,
      'Impersonate-User': 'system:admin',
    });
    assert.equal(r.status, 403);
    // whoami
    r = await request(dc.url, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {}, as);
    assert.equal(r.status, 201);
    assert.equal(r.body.status.userInfo.username, 'system:serviceaccount:cpuburst:agent');
    // Once the bound pod is gone, the token stops working.
    dc.store.delete('v1', 'Pod', 'agent-a', 'cpuburst');
    r = await request(dc.url, 'GET', '/api/v1/namespaces/cpuburst/pods', undefined, as);
    assert.equal(r.status, 401);
    objs.pod = dc.store.create({ ...objs.pod, metadata: { name: 'agent-a', namespace: 'cpuburst' } });
  });

  test('every namespace has a default ServiceAccount', async () => {
    for (const ns of ['default', 'kube-system', 'cpuburst'])
      assert.ok(dc.store.get('v1', 'ServiceAccount', 'default', ns), ns);
    dc.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'later' } });
    assert.ok(dc.store.get('v1', 'ServiceAccount', 'default', 'later'));
  });
});

describe('tokens: kubectl, ES256, key file', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cpuburst-tokens-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('kubectl create token with a bound pod and an audience', {
    skip: !existsSync(KUBECTL) && 'needs .tools/kubectl (make tools)',
  }, async () => {
    const kc = path.join(dir, 'kc');
    const dc = await startDevCluster({ kubeconfigPath: kc });
    try {
      const pod = dc.store.create({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'p', namespace: 'default' },
        spec: { containers: [{ name: 'c', image: 'x' }] },
      });
      const { stdout } = await promisify(execFile)(KUBECTL, [
        '--kubeconfig',
        kc,
        'create',
        'token',
        'default',
        '--audience',
        'cpuburst-broker',
        '--bound-object-kind',
        'Pod',
        '--bound-object-name',
        'p',
        '--duration',
        '20m',
      ]);
      const token = stdout.trim();
      const { claims } = decodeJwt(token);
      assert.deepEqual(claims.aud, ['cpuburst-broker']);
      assert.equal(claims.exp - claims.iat, 1200);
      assert.deepEqual(claims['kubernetes.io'].pod, { name: 'p', uid: pod.metadata.uid });
      assert.equal(dc.tokens.verify(token, ['cpuburst-broker']).authenticated, true);
      const bad = await promisify(execFile)(KUBECTL, ['--kubeconfig', kc, 'create', 'token', 'nobody']).then(
        () => '',
        (e: { stderr: string }) => e.stderr,
      );
      assert.match(bad, /serviceaccounts "nobody" not found/);
    } finally {
      await dc.close();
    }
  });

  test('ES256 keys, and a key file that survives a restart and is rewritten on rotation', async () => {
    const keyFile = path.join(dir, 'sa.key');
    const dc1 = await startDevCluster({
      saSigningKeyFile: keyFile,
      saSigningAlg: 'ES256',
      saIssuer: 'https://kubernetes.default.svc',
    });
    let token: string;
    let kid: string;
    try {
      assert.equal(dc1.issuer, 'https://kubernetes.default.svc');
      const t = dc1.tokens.issue({ namespace: 'default', serviceAccount: 'default', audiences: ['a'] });
      token = t.token;
      kid = String(decodeJwt(token).header.kid);
      assert.equal(decodeJwt(token).header.alg, 'ES256');
      assert.ok(verifyWithJwks(token, dc1.tokens.jwks()));
      assert.match(readFileSync(keyFile, 'utf8'), /BEGIN PRIVATE KEY/);
    } finally {
      await dc1.close();
    }
    const dc2 = await startDevCluster({
      saSigningKeyFile: keyFile,
      saIssuer: 'https://kubernetes.default.svc',
    });
    try {
      assert.deepEqual(dc2.tokens.kids, [kid]);
      assert.ok(verifyWithJwks(token, dc2.tokens.jwks()));
      const r = dc2.tokens.rotate({ keepPrevious: false });
      assert.notEqual(r.kid, kid);
      assert.notEqual(readFileSync(keyFile, 'utf8'), '');
    } finally {
      await dc2.close();
    }
    const dc3 = await startDevCluster({ saSigningKeyFile: keyFile });
    try {
      assert.notDeepEqual(dc3.tokens.kids, [kid]);
    } finally {
      await dc3.close();
    }
  });
});
