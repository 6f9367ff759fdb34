// demo/identities.ts against an in-process devcluster: the ServiceAccounts and identity pods (with a
// projected token volume) are created once and found again; startControlIdentities (the kubelet's
// part where none runs) writes pod-bound tokens that TokenReview accepts and rewrites them on refresh.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { allowPlainHttp } from '../../common/kubeconfig.js';
import {
  BROKER_AUDIENCE,
  ensureIdentityPods,
  identityPod,
  startControlIdentities,
  TOKEN_VOLUME,
} from '../../demo/identities.js';
import { type DevCluster, startDevCluster } from '../../devcluster/index.js';

const NS = 'cpuburst-demo';
const NODE = 'demo-node';

const claimsOf = (token: string) =>
  JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, any>;

describe('demo identities', { timeout: 60_000 }, () => {
  let cluster: DevCluster;
  let kc: KubeConfig;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-identities-'));

  before(async () => {
    cluster = await startDevCluster({});
    kc = new KubeConfig();
    kc.loadFromString(cluster.kubeConfig());
    allowPlainHttp(kc);
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
    await core.createNode({ body: { metadata: { name: NODE } } });
  });
  after(async () => {
    await cluster?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('identityPod: on the node, with the ServiceAccount and a projected token for the broker audience', () => {
    const p = identityPod({ name: 'a', namespace: NS, node: NODE, sa: 'cpuburst-agent' });
    assert.equal(p.spec!.nodeName, NODE);
    assert.equal(p.spec!.serviceAccountName, 'cpuburst-agent');
    const vol = p.spec!.volumes!.find((v) => v.name === TOKEN_VOLUME)!;
    assert.deepEqual(vol.projected!.sources![0]!.serviceAccountToken, {
      audience: BROKER_AUDIENCE,
      expirationSeconds: 600,
      path: 'token',
    });
  });

  it('ensureIdentityPods creates the ServiceAccounts and pods once and finds them again', async () => {
    const a = await ensureIdentityPods({ kc, namespace: NS, node: NODE });
    const b = await ensureIdentityPods({ kc, namespace: NS, node: NODE });
    assert.equal(a.agent.identity, `agent:${NODE}`);
    assert.equal(a.operator.identity, 'operator');
    assert.equal(a.agent.serviceAccount, `${NS}/cpuburst-agent`);
    assert.deepEqual(b, a, 'the same pods (same uids) the second time');
  });

  it('startControlIdentities writes pod-bound tokens TokenReview accepts, and rewrites them on refresh', async () => {
    const ids = await startControlIdentities({ kc, namespace: NS, node: NODE, dir });
    try {
      const t1 = fs.readFileSync(ids.agent.tokenFile, 'utf8');
      const c = claimsOf(t1);
      assert.deepEqual(c.aud, [BROKER_AUDIENCE]);
      assert.equal(c.sub, `system:serviceaccount:${NS}:cpuburst-agent`);
      assert.equal(c['kubernetes.io'].pod.uid, ids.agent.pod.uid);
      assert.equal(c['kubernetes.io'].node.name, NODE);
      assert.equal(c.exp - c.iat, 600);
      assert.equal((fs.statSync(ids.agent.tokenFile).mode & 0o777).toString(8), '600');
      const review = cluster.tokens.verify(t1, [BROKER_AUDIENCE]);
      assert.equal(review.authenticated, true, JSON.stringify(review));
      await ids.refresh();
      const t2 = fs.readFileSync(ids.agent.tokenFile, 'utf8');
      assert.notEqual(t2, t1);
      assert.notEqual(claimsOf(t2).jti, c.jti);
      assert.equal(ids.agent.writes, 2);
      assert.equal(ids.operator.writes, 2);
    } finally {
      ids.stop();
    }
  });
});
