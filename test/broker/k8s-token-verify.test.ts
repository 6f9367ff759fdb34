// The k8s-token authenticator against an in-test issuer: every acceptance and refusal path of
// both verify modes, key rotation, the JWKS refresh rate limit and the bound-pod cache.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { K8sTokenAuthenticator, type K8sTokenOptions, reviewReason } from '../../broker/auth/k8s-token.js';
import { memoryLogger, silentLogger } from '../../common/log.js';
import { FakeIssuer, newKey, signJwt } from './k8s-issuer.js';

const NS = 'cpuburst-system';
const stops: Array<() => void> = [];
after(() => {
  for (const s of stops) s();
});

async function setup(opts: Partial<K8sTokenOptions> = {}, issuer = new FakeIssuer()) {
  let now = Date.now();
  issuer.now = () => now;
  const auth = new K8sTokenAuthenticator(
    {
      verify: 'jwks',
      audience: 'cpuburst-broker',
      agentServiceAccount: `${NS}/cpuburst-agent`,
      operatorServiceAccount: `${NS}/cpuburst-operator`,
      allowOther: false,
      jwksRefreshSec: 300,
      podCacheSec: 10,
      ...opts,
    },
    { api: issuer, clock: () => now, log: silentLogger('broker') },
  );
  await auth.start();
  stops.push(() => auth.stop());
  const check = (token: string) => auth.check(Buffer.from(token));
  const advance = (ms: number) => {
    now += ms;
  };
  return { issuer, auth, check, advance };
}

function denied(v: Awaited<ReturnType<K8sTokenAuthenticator['check']>>): string {
  assert.equal(v.result, 'deny', `expected a refusal, got ${JSON.stringify(v)}`);
  return (v as { reason: string }).reason;
}

describe('k8s-token: jwks verification', () => {
  it('maps the agent ServiceAccount to agent:<node> from the node claim, RS256 and ES256', async () => {
    const { issuer, check } = await setup();
    issuer.addPod(NS, 'agent-a', 'node-a');
    for (const key of issuer.keys) {
      const v = await check(issuer.issue({ pod: 'agent-a', key }));
      assert.equal(v.result, 'allow', JSON.stringify(v));
      assert.equal((v as { identity: string }).identity, 'agent:node-a');
      assert.equal((v as { via: string }).via, 'jwks');
      assert.equal((v as { pod: string }).pod, `${NS}/agent-a`);
    }
  });

  it('takes the node from the bound pod when the token has no node claim', async () => {
    const { issuer, check } = await setup();
    issuer.addPod(NS, 'agent-b', 'node-b');
    const v = await check(issuer.issue({ pod: 'agent-b', nodeClaim: false }));
    assert.equal((v as { identity: string }).identity, 'agent:node-b');
  });

  it('maps the operator ServiceAccount to operator and refuses others unless allowed', async () => {
    const { issuer, check } = await setup();
    issuer.addPod(NS, 'op', 'node-a');
    const op = await check(issuer.issue({ serviceAccount: 'cpuburst-operator', pod: 'op' }));
    assert.equal((op as { identity: string }).identity, 'operator');
    const other = issuer.issue({ namespace: 'iot', serviceAccount: 'sensor' });
    assert.equal(denied(await check(other)), 'serviceaccount_not_allowed');
    const open = await setup({ allowOther: true }, issuer);
    assert.equal(((await open.check(other)) as { identity: string }).identity, 'sa:iot:sensor');
  });

  it('leaves foreign JWTs to a later jwt authenticator when told so', async () => {
    const { issuer, check } = await setup({ passForeignIssuers: true, verify: 'tokenreview' });
    const iot = signJwt(newKey(), { iss: 'https://iot.example', sub: 'device-7', exp: 2e9 });
    assert.deepEqual(await check(iot), { result: 'ignore' });
    assert.equal(issuer.calls.tokenReview, 0);
    const strict = await setup({ passForeignIssuers: false, verify: 'jwks' }, issuer);
    assert.equal(denied(await strict.check(iot)), 'unknown_issuer');
  });

  it('ignores passwords that are not JWTs (other authenticators decide)', async () => {
    const { check, auth } = await setup();
    assert.deepEqual(await check('hunter2'), { result: 'ignore' });
    assert.deepEqual(await auth.check(undefined), { result: 'ignore' });
    // Dots alone do not make a token: plain passwords with dots and broken JWS stay with the chain.
    assert.deepEqual(await check('my.pass.word'), { result: 'ignore' });
    assert.deepEqual(await check('eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln'), { result: 'ignore' });
  });

  it('refuses each bad token with its reason', async () => {
    const { issuer, check } = await setup();
    issuer.addPod(NS, 'agent-a', 'node-a');
    const foreignSameKid = { ...newKey('RS256', issuer.keys[0]!.kid) };
    const cases: Array<[string, string]> = [
      [issuer.issue({ pod: 'agent-a', expiresInSec: -1 }), 'expired'],
      [issuer.issue({ pod: 'agent-a', notBeforeOffsetSec: 600 }), 'not_yet_valid'],
      [issuer.issue({ pod: 'agent-a', audiences: ['https://kubernetes.default.svc'] }), 'bad_audience'],
      [issuer.issue({ pod: 'agent-a', issuer: 'https://evil.example' }), 'unknown_issuer'],
      [issuer.issue({ pod: 'agent-a', key: foreignSameKid }), 'bad_signature'],
      [issuer.issue({ pod: 'agent-a', key: newKey('RS256') }), 'unknown_key'],
      [signJwt(issuer.keys[0]!, { iss: issuer.issuer, sub: 'x', aud: ['cpuburst-broker'] }), 'malformed'],
      [issuer.issue({ pod: 'agent-a', key: issuer.keys[0] }).replace(/\.[^.]+$/, '.AAAA'), 'bad_signature'],
      [
        issuer
          .issue({ pod: 'agent-a' })
          .replace(/^[^.]+/, Buffer.from('{"alg":"none"}').toString('base64url')),
        'bad_signature',
      ],
      [issuer.issue({ serviceAccount: 'default', pod: 'agent-a' }), 'serviceaccount_not_allowed'],
      [issuer.issue({}), 'node_unknown'],
    ];
    for (const [token, reason] of cases) assert.equal(denied(await check(token)), reason, token);
  });

  it('refuses a token whose bound pod is gone or was replaced, within the pod cache TTL', async () => {
    const { issuer, check, advance } = await setup({ podCacheSec: 10 });
    issuer.addPod(NS, 'agent-a', 'node-a');
    const token = issuer.issue({ pod: 'agent-a' });
    assert.equal((await check(token)).result, 'allow');
    issuer.pods.delete(`${NS}/agent-a`);
    assert.equal((await check(token)).result, 'allow', 'still cached');
    advance(10_001);
    assert.equal(denied(await check(token)), 'pod_gone');
    issuer.addPod(NS, 'agent-a', 'node-a'); // same name, new uid
    advance(10_001);
    assert.equal(denied(await check(token)), 'pod_gone');
  });

  it('refuses a pod without a node and a node claim that disagrees with the pod', async () => {
    const { issuer, check } = await setup();
    issuer.addPod(NS, 'pending', undefined);
    assert.equal(denied(await check(issuer.issue({ pod: 'pending' }))), 'node_unknown');
    issuer.addPod(NS, 'agent-x', 'node-a');
    const token = issuer.issue({ pod: 'agent-x' });
    issuer.pods.get(`${NS}/agent-x`)!.nodeName = 'node-b';
    assert.equal(denied(await check(token)), 'node_mismatch');
  });

  it('reads a pod once for a reconnect storm of 500 agents (cache + in-flight coalescing)', async () => {
    const { issuer, check } = await setup();
    issuer.addPod(NS, 'agent-a', 'node-a');
    const tokens = Array.from({ length: 500 }, () => issuer.issue({ pod: 'agent-a' }));
    const out = await Promise.all(tokens.map(check));
    assert.ok(out.every((v) => v.result === 'allow'));
    assert.equal(issuer.calls.readPod, 1);
  });

  it('picks up a rotated key without restart and drops a key removed from the JWKS', async () => {
    const { issuer, check, advance } = await setup({ jwksRefreshSec: 1 });
    issuer.addPod(NS, 'agent-a', 'node-a');
    const old = issuer.issue({ pod: 'agent-a' });
    assert.equal((await check(old)).result, 'allow');
    issuer.rotate(false);
    advance(1_500);
    // The new kid is unknown: one refresh, then accepted.
    const fresh = issuer.issue({ pod: 'agent-a' });
    assert.equal((await check(fresh)).result, 'allow');
    // The old key left the JWKS with that refresh.
    assert.equal(denied(await check(old)), 'unknown_key');
    // keepPrevious=true keeps tokens of the previous key valid.
    issuer.rotate(true);
    advance(1_500);
    const newest = issuer.issue({ pod: 'agent-a' });
    assert.equal((await check(newest)).result, 'allow');
    assert.equal((await check(fresh)).result, 'allow');
  });

  it('rate-limits JWKS refreshes triggered by unknown kids', async () => {
    const { issuer, check } = await setup({ jwksRefreshSec: 300 });
    issuer.addPod(NS, 'agent-a', 'node-a');
    const before = issuer.calls.jwks;
    const foreign = newKey('RS256');
    const forged = Array.from({ length: 50 }, (_, i) =>
      issuer.issue({ pod: 'agent-a', key: { ...foreign, kid: `forged-${i}` } }),
    );
    for (const t of forged) assert.equal(denied(await check(t)), 'unknown_key');
    assert.ok(issuer.calls.jwks - before <= 1, `JWKS fetched ${issuer.calls.jwks - before} times`);
  });

  it('jwks mode with the API down refuses with review_failed and recovers', async () => {
    const issuer = new FakeIssuer();
    issuer.down = true;
    const { check, advance } = await setup({ verify: 'jwks', jwksRefreshSec: 1 }, issuer);
    issuer.addPod(NS, 'agent-a', 'node-a');
    assert.equal(denied(await check(issuer.issue({ pod: 'agent-a' }))), 'review_failed');
    issuer.down = false;
    advance(1_500);
    assert.equal((await check(issuer.issue({ pod: 'agent-a' }))).result, 'allow');
  });
});

describe('k8s-token: TokenReview verification and auto fallback', () => {
  it('tokenreview mode: accepts, maps the node, and refuses with reasons', async () => {
    const { issuer, check } = await setup({ verify: 'tokenreview' });
    issuer.addPod(NS, 'agent-a', 'node-a');
    const ok = await check(issuer.issue({ pod: 'agent-a' }));
    assert.equal((ok as { identity: string }).identity, 'agent:node-a');
    assert.equal((ok as { via: string }).via, 'tokenreview');
    assert.equal(issuer.calls.jwks, 0);
    const noClaim = await check(issuer.issue({ pod: 'agent-a', nodeClaim: false }));
    assert.equal((noClaim as { identity: string }).identity, 'agent:node-a');
    assert.equal(denied(await check(issuer.issue({ pod: 'agent-a', expiresInSec: -5 }))), 'expired');
    assert.equal(denied(await check(issuer.issue({ pod: 'agent-a', audiences: ['x'] }))), 'bad_audience');
    assert.equal(denied(await check(issuer.issue({ pod: 'agent-a', key: newKey() }))), 'review_failed');
    const gone = issuer.issue({ pod: 'agent-a' });
    issuer.pods.delete(`${NS}/agent-a`);
    assert.equal(denied(await check(gone)), 'pod_gone');
  });

  it('caches a TokenReview per token for the cache TTL', async () => {
    const { issuer, check } = await setup({ verify: 'tokenreview' });
    issuer.addPod(NS, 'agent-a', 'node-a');
    const t = issuer.issue({ pod: 'agent-a' });
    await Promise.all(Array.from({ length: 20 }, () => check(t)));
    assert.equal(issuer.calls.tokenReview, 1);
  });

  it('auto: JWKS when discovery works, TokenReview when it does not', async () => {
    const up = await setup({ verify: 'auto' });
    up.issuer.addPod(NS, 'agent-a', 'node-a');
    const a = await up.check(up.issuer.issue({ pod: 'agent-a' }));
    assert.equal((a as { via: string }).via, 'jwks');

    const issuer = new FakeIssuer();
    issuer.discovery = async () => {
      issuer.calls.discovery++;
      throw new Error('HTTP 404 page not found');
    };
    const down = await setup({ verify: 'auto' }, issuer);
    issuer.addPod(NS, 'agent-a', 'node-a');
    const b = await down.check(issuer.issue({ pod: 'agent-a' }));
    assert.equal((b as { via: string }).via, 'tokenreview', JSON.stringify(b));
    issuer.down = true;
    down.advance(60_000);
    assert.equal(denied(await down.check(issuer.issue({ pod: 'agent-a' }))), 'review_failed');
  });

  it('maps API server TokenReview errors to reasons', () => {
    assert.equal(reviewReason('[invalid bearer token, Token has expired.]'), 'expired');
    assert.equal(
      reviewReason('token audiences ["a"] is invalid for the target audiences ["b"]'),
      'bad_audience',
    );
    assert.equal(reviewReason('pod "agent-a" not found'), 'pod_gone');
    assert.equal(reviewReason('service account token has been invalidated'), 'pod_gone');
    assert.equal(reviewReason('pod UID (1) does not match service account pod ref claim (2)'), 'pod_gone');
    assert.equal(reviewReason('invalid bearer token'), 'review_failed');
  });

  it('logs the issuer keys it loads', async () => {
    const issuer = new FakeIssuer();
    const log = memoryLogger('broker');
    const auth = new K8sTokenAuthenticator(
      { verify: 'jwks', audience: 'a', allowOther: true, jwksRefreshSec: 300, podCacheSec: 0 },
      { api: issuer, clock: Date.now, log: log.log },
    );
    await auth.start();
    auth.stop();
    const line = log.lines.find((l) => l.message === 'Loaded ServiceAccount issuer keys');
    assert.ok(line, JSON.stringify(log.lines));
    assert.deepEqual((line as { kids: string[] }).kids.sort(), issuer.keys.map((k) => k.kid).sort());
  });
});
