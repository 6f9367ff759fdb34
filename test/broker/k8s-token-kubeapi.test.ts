// The broker's Kubernetes adapter on the wire: kubeconfig credentials on every call, a missing pod
// is null, TokenReview's request body, and the JWKS of an external issuer read from jwks_uri.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, after as rootAfter } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { kubeAuthApi } from '../../broker/auth/kube-api.js';
import { allowPlainHttp } from '../../common/kubeconfig.js';
import { cleanupList } from './helpers.js';

const after = cleanupList(rootAfter);

async function serve(handler: http.RequestListener): Promise<string> {
  const s = http.createServer(handler);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  after(() => new Promise<void>((r) => s.close(() => r())));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

function json(res: http.ServerResponse, code: number, body: unknown) {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

describe('kubeAuthApi', () => {
  it('talks to the API server with the kubeconfig token; external JWKS via jwks_uri', async () => {
    const seen: Array<{ method?: string; url?: string; auth?: string; body: string }> = [];
    const issuer = await serve((_req, res) => json(res, 200, { keys: [{ kty: 'EC', kid: 'ext' }] }));
    const api = await serve((req, res) => {
      let body = '';
      req.on('data', (d) => {
        body += d;
      });
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, auth: req.headers.authorization, body });
        if (req.url === '/.well-known/openid-configuration') {
          return json(res, 200, { issuer: 'https://oidc.example/id/1', jwks_uri: `${issuer}/id/1/keys` });
        }
        if (req.url === '/api/v1/namespaces/ns/pods/p1') {
          return json(res, 200, { metadata: { uid: 'u1' }, spec: { nodeName: 'node-a' } });
        }
        if (req.url === '/apis/authentication.k8s.io/v1/tokenreviews') {
          return json(res, 201, {
            status: { authenticated: true, user: { username: 'system:serviceaccount:a:b' } },
          });
        }
        json(res, 404, { kind: 'Status', message: 'not found' });
      });
    });
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: api }],
      users: [{ name: 'u', token: 'secret-token' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const k = kubeAuthApi(allowPlainHttp(kc));
    const disc = await k.discovery();
    assert.equal(disc.issuer, 'https://oidc.example/id/1');
    assert.deepEqual(await k.jwks(disc.jwks_uri), [{ kty: 'EC', kid: 'ext' }]);
    assert.deepEqual(await k.readPod('ns', 'p1'), { uid: 'u1', nodeName: 'node-a' });
    assert.equal(await k.readPod('ns', 'gone'), null);
    const st = await k.tokenReview('tok', ['cpuburst-broker']);
    assert.equal(st.authenticated, true);
    const review = seen.find((s) => s.url?.includes('tokenreviews'))!;
    assert.equal(review.method, 'POST');
    assert.deepEqual(JSON.parse(review.body).spec, { token: 'tok', audiences: ['cpuburst-broker'] });
    assert.ok(
      seen.every((s) => s.auth === 'Bearer secret-token'),
      JSON.stringify(seen),
    );
    assert.ok(
      seen.some((s) => s.url === '/id/1/keys'),
      'the API server was asked for the JWKS path first',
    );
  });

  it('keeps at most 32 requests in flight (a reconnect storm queues)', async () => {
    let active = 0;
    let peak = 0;
    const api = await serve((req, res) => {
      active++;
      peak = Math.max(peak, active);
      setTimeout(() => {
        active--;
        json(res, 200, { metadata: { uid: req.url }, spec: { nodeName: 'n' } });
      }, 20);
    });
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: api }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const k = kubeAuthApi(allowPlainHttp(kc));
    const pods = await Promise.all(Array.from({ length: 200 }, (_, i) => k.readPod('ns', `p${i}`)));
    assert.equal(pods.filter((p) => p?.nodeName === 'n').length, 200);
    assert.ok(peak <= 32 && peak > 1, `peak ${peak}`);
  });

  it('an API error is an error naming the call, not a missing pod', async () => {
    const api = await serve((_req, res) =>
      json(res, 403, { kind: 'Status', message: 'pods "p" is forbidden' }),
    );
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: api }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    await assert.rejects(
      kubeAuthApi(allowPlainHttp(kc)).readPod('ns', 'p'),
      /GET \/api\/v1\/namespaces\/ns\/pods\/p: HTTP 403 pods "p" is forbidden/,
    );
  });
});
