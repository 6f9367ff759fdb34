// The mini-kubelet projects ServiceAccount tokens: TokenRequest bound to the pod, written atomically,
// visible to the container at its mountPath, refreshed at 80 % of the lifetime, gone with the pod.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { silentLogger } from '../../common/log.js';
import { decodeJwt, startDevCluster } from '../../devcluster/index.js';
import { startMiniKubelet } from '../../devcluster/kubelet/index.js';
import { canIsolateMounts } from '../../devcluster/kubelet/runtime.js';
import { refreshDelayMs } from '../../devcluster/kubelet/volumes.js';

async function until<T>(fn: () => T | undefined | false, what: string, ms = 20000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const readOr = (f: string) => {
  try {
    return fs.readFileSync(f, 'utf8').trim();
  } catch {
    return '';
  }
};

test('refresh at 80 % of the lifetime, at most 24 h', () => {
  const t0 = new Date(0);
  assert.equal(refreshDelayMs(t0, new Date(3600_000)), 2880_000);
  assert.equal(refreshDelayMs(t0, new Date(3000)), 2400);
  assert.equal(refreshDelayMs(t0, new Date(48 * 3600_000)), 24 * 3600_000);
  assert.equal(refreshDelayMs(t0, new Date(-5)), 0);
});

test('mini-kubelet mounts a projected serviceAccountToken, refreshes it and stops with the pod', {
  timeout: 60000,
}, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-tokens-kubelet-'));
  const kubeconfigPath = path.join(dir, 'kc');
  let tokenRequests = 0;
  const dc = await startDevCluster({
    kubeconfigPath,
    saMinExpirationSeconds: 1,
    onRequest: (method, url, code) => {
      if (method === 'POST' && url.includes('/serviceaccounts/agent/token') && code === 201) tokenRequests++;
    },
  });
  const isolate = canIsolateMounts();
  const mountPath = path.join('/run', `cpuburst-test-tokens-${process.pid}`, 'sa');
  const out = path.join(dir, 'seen-token');
  const envOut = path.join(dir, 'seen-env');
  const kubelet = await startMiniKubelet({
    kubeconfig: kubeconfigPath,
    node: 'node-tok',
    cgroupRoot: path.join(dir, 'cgroup'),
    parentBase: 'cpuburst-test-tokens',
    fake: true,
    logDir: path.join(dir, 'logs'),
    podsDir: path.join(dir, 'pods'),
    log: silentLogger(),
    resyncMs: 60000,
  });
  after(async () => {
    await kubelet.stop();
    await dc.close();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(path.dirname(mountPath), { recursive: true, force: true });
  });
  await kubelet.ready;
  dc.store.create({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'agent', namespace: 'default' },
  });
  // The container copies what it sees at the mountPath (and its env) to files the test reads.
  const script = `echo "$CPUBURST_VOLUME_BROKER_TOKEN" > ${envOut}; while :; do cat ${mountPath}/token > ${out}.tmp 2>/dev/null && mv ${out}.tmp ${out}; sleep 0.1; done`;
  const pod = dc.store.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'agent-x', namespace: 'default' },
    spec: {
      nodeName: 'node-tok',
      serviceAccountName: 'agent',
      volumes: [
        {
          name: 'broker-token',
          projected: {
            defaultMode: 0o440,
            sources: [
              { serviceAccountToken: { audience: 'cpuburst-broker', expirationSeconds: 3, path: 'token' } },
            ],
          },
        },
      ],
      containers: [
        {
          name: 'c',
          image: 'local',
          command: ['sh', '-c', script],
          volumeMounts: [{ name: 'broker-token', mountPath, readOnly: true }],
        },
      ],
    },
  });
  const info = await until(() => kubelet.pods().find((p) => p.containers.length > 0), 'the pod to start');
  const hostDir = info.volumes['broker-token']!;
  assert.equal(
    hostDir,
    path.join(dir, 'pods', pod.metadata.uid, 'volumes/kubernetes.io~projected/broker-token'),
  );
  const hostFile = path.join(hostDir, 'token');
  assert.equal(fs.statSync(hostFile).mode & 0o777, 0o440);
  const first = readOr(hostFile);
  const { claims } = decodeJwt(first);
  const node = dc.store.get('v1', 'Node', 'node-tok')!;
  assert.deepEqual(claims.aud, ['cpuburst-broker']);
  assert.equal(claims.exp - claims.iat, 3);
  assert.deepEqual(claims['kubernetes.io'].pod, { name: 'agent-x', uid: pod.metadata.uid });
  assert.deepEqual(claims['kubernetes.io'].node, { name: 'node-tok', uid: node.metadata.uid });
  assert.equal(dc.tokens.verify(first, ['cpuburst-broker']).authenticated, true);
  await until(() => readOr(envOut) === hostDir, 'the container to see CPUBURST_VOLUME_BROKER_TOKEN');
  if (isolate) {
    // The container reads the token at its mountPath (a bind mount in its own mount namespace).
    await until(() => readOr(out).length > 0, 'the container to read the token at its mountPath');
    const seen = readOr(out);
    assert.equal(dc.tokens.verify(seen, ['cpuburst-broker']).authenticated, true);
    assert.equal(decodeJwt(seen).claims['kubernetes.io'].pod.uid, pod.metadata.uid);
  }

  // Refreshed at 80 % of 3 s: a new token, later expiry, and the container sees it.
  const second = await until(
    () => {
      const t = readOr(hostFile);
      return t && t !== first && t;
    },
    'the token to be refreshed',
    10000,
  );
  assert.ok(decodeJwt(second).claims.exp > claims.exp);
  assert.equal(dc.tokens.verify(second, ['cpuburst-broker']).authenticated, true);
  if (isolate) await until(() => readOr(out) !== first && readOr(out), 'the container to see the new token');

  // Pod deleted: processes killed, volume dir and made mount point gone, no more TokenRequests.
  dc.store.delete('v1', 'Pod', 'agent-x', 'default');
  await until(() => kubelet.pods().length === 0, 'the pod to be killed');
  assert.equal(fs.existsSync(path.join(dir, 'pods', pod.metadata.uid)), false);
  if (isolate) assert.equal(fs.existsSync(mountPath), false, 'the mount point the kubelet made is removed');
  const requests = tokenRequests;
  assert.ok(requests >= 2);
  await new Promise((r) => setTimeout(r, 3500));
  assert.equal(tokenRequests, requests, 'no TokenRequest after the pod is gone');
});

test('a failing TokenRequest (missing ServiceAccount) is retried and reported, the pod still runs', {
  timeout: 60000,
}, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-tokens-kubelet-'));
  const kubeconfigPath = path.join(dir, 'kc');
  const dc = await startDevCluster({ kubeconfigPath });
  const kubelet = await startMiniKubelet({
    kubeconfig: kubeconfigPath,
    node: 'node-nosa',
    cgroupRoot: path.join(dir, 'cgroup'),
    parentBase: 'cpuburst-test-tokens',
    fake: true,
    logDir: path.join(dir, 'logs'),
    log: silentLogger(),
    resyncMs: 60000,
  });
  after(async () => {
    await kubelet.stop();
    await dc.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await kubelet.ready;
  dc.store.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace: 'default' },
    spec: {
      nodeName: 'node-nosa',
      serviceAccountName: 'missing',
      volumes: [{ name: 'tok', projected: { sources: [{ serviceAccountToken: { path: 'token' } }] } }],
      containers: [{ name: 'c', image: 'local', command: ['sleep', '30'] }],
    },
  });
  const info = await until(() => kubelet.pods().find((p) => p.containers.length > 0), 'the pod to start');
  assert.equal(fs.existsSync(path.join(info.volumes.tok!, 'token')), false);
  const ev = await until(
    () =>
      dc.store
        .list('v1', 'Event', 'default')
        .find((e) => e.reason === 'FailedMount' && e.involvedObject?.name === 'p'),
    'a FailedMount event',
  );
  assert.match(ev.message, /serviceaccounts "missing" not found/);
  // Creating the ServiceAccount lets the retry succeed.
  dc.store.create({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'missing', namespace: 'default' },
  });
  const token = await until(() => readOr(path.join(info.volumes.tok!, 'token')), 'the retried token', 15000);
  assert.deepEqual(decodeJwt(token).claims.aud, [dc.issuer]);
});
