// `cpuburst devcluster` as a process: flags, kubeconfig, bearer token, TLS, snapshot, SIGTERM.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { runCli, spawnCli } from '../support/cli.js';
import { kubectl, waitFor } from './helpers.js';

const dir = mkdtempSync(path.join(tmpdir(), 'devcluster-cli-'));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

async function start(
  args: string[],
): Promise<{ child: ChildProcess; url: string; out: () => string; exited: Promise<number | null> }> {
  const child = spawnCli(['devcluster', '--port', '0', ...args]);
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
    `listening log line (output so far: ${out})`,
    30_000,
  );
  const parsed = JSON.parse(line);
  assert.equal(parsed.msg, 'API server listening');
  return { child, url: parsed.url, out: () => out, exited };
}

describe('cpuburst devcluster', () => {
  it('--help exits 0, a bad flag exits 2', async () => {
    const h = await runCli(['devcluster', '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /--watch-window/);
    const bad = await runCli(['devcluster', '--nope']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown flag --nope/);
  });

  it('a corrupt snapshot or a busy port is a clear error and exit 1, not a crash', async () => {
    const bad = path.join(dir, 'corrupt.json');
    writeFileSync(bad, '{"objects": nope');
    const r = await runCli(['devcluster', '--port', '0', '--snapshot', bad]);
    assert.equal(r.code, 1);
    const line = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(line.message, 'API server failed to start');
    assert.match(line.error, /corrupt.json is not a devcluster snapshot/);
    const s = await start([]);
    const port = new URL(s.url).port;
    const busy = await runCli(['devcluster', '--port', port]);
    assert.equal(busy.code, 1);
    assert.match(busy.stdout, /EADDRINUSE/);
    s.child.kill('SIGTERM');
    assert.equal(await s.exited, 0);
  });

  it('TLS + bearer token: kubeconfig works for client-node and kubectl; no token → 401', async () => {
    const kc = path.join(dir, 'tls.kubeconfig');
    const ports = path.join(dir, 'ports.json');
    const s = await start(['--tls', '--token', 's3cret', '--kubeconfig', kc, '--ports-file', ports]);
    assert.match(s.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(JSON.parse(readFileSync(ports, 'utf8')).url, s.url);
    const config = new KubeConfig();
    config.loadFromFile(kc);
    const core = config.makeApiClient(CoreV1Api);
    const nss = await core.listNamespace();
    assert.ok(nss.items.some((n) => n.metadata?.name === 'default'));
    const ca = Buffer.from(/certificate-authority-data: (\S+)/.exec(readFileSync(kc, 'utf8'))![1]!, 'base64');
    const anon = await new Promise<number>((resolve, reject) =>
      https
        .get(`${s.url}/api/v1/namespaces`, { ca }, (res) => resolve(res.statusCode ?? 0))
        .on('error', reject),
    );
    assert.equal(anon, 401, 'no token → 401 (and the CA in the kubeconfig verifies the server certificate)');
    const r = await kubectl(kc, dir, ['get', 'ns', 'default', '-o', 'name']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'namespace/default');
    const bad = new KubeConfig();
    bad.loadFromString(readFileSync(kc, 'utf8').replace('s3cret', 'wrong'));
    await assert.rejects(bad.makeApiClient(CoreV1Api).listNamespace(), (e: any) => e.code === 401);
    s.child.kill('SIGTERM');
    assert.equal(await s.exited, 0);
  });

  it('--snapshot keeps objects (and resourceVersions) across restarts', async () => {
    const snap = path.join(dir, 'snap.json');
    const kc = path.join(dir, 'snap.kubeconfig');
    let s = await start(['--snapshot', snap, '--kubeconfig', kc]);
    let config = new KubeConfig();
    config.loadFromFile(kc);
    const created = await config.makeApiClient(CoreV1Api).createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'kept' }, data: { a: '1' } },
    });
    s.child.kill('SIGTERM');
    assert.equal(await s.exited, 0);
    assert.ok(existsSync(snap));
    s = await start(['--snapshot', snap, '--kubeconfig', kc]);
    config = new KubeConfig();
    config.loadFromFile(kc);
    const api = config.makeApiClient(CoreV1Api);
    const back = await api.readNamespacedConfigMap({ namespace: 'default', name: 'kept' });
    assert.equal(back.metadata?.uid, created.metadata?.uid);
    assert.equal(back.metadata?.resourceVersion, created.metadata?.resourceVersion);
    const list = await api.listNamespacedConfigMap({ namespace: 'default' });
    assert.ok(Number(list.metadata?.resourceVersion) >= Number(created.metadata?.resourceVersion));
    s.child.kill('SIGINT');
    assert.equal(await s.exited, 0);
    assert.match(s.out(), /API server stopped/);
  });
});
