// The HTTP API, /metrics and probes, bans and flapping, delayed publish, and the JWT and HTTP-hook
// authenticators over a real connection.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { before, describe, it, after as rootAfter } from 'node:test';
import type { RunningBroker } from '../../broker/server.js';
import {
  cleanupList,
  collect,
  connect,
  connectError,
  tempDir,
  testBroker,
  waitFor,
  writeFile,
} from './helpers.js';

const after = cleanupList(rootAfter);
const KEY = 'test-api-key';
let b: RunningBroker;
let api: string;

before(async () => {
  const dir = tempDir(after);
  b = await testBroker(after, {
    allowAnonymous: true,
    apiKeyFile: writeFile(dir, 'api.key', `${KEY}\n`),
    flappingMaxCount: 3,
    flappingWindowSeconds: 30,
    flappingBanSeconds: 60,
  });
  api = `http://127.0.0.1:${b.ports.httpPort}`;
});

async function call(
  method: string,
  path: string,
  body?: unknown,
  auth: Record<string, string> = { authorization: `Bearer ${KEY}` },
) {
  const res = await fetch(`${api}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...auth },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as any) : undefined };
}

describe('HTTP API', () => {
  it('needs the API key (bearer, X-API-Key or basic auth)', async () => {
    assert.equal((await call('GET', '/api/v5/stats', undefined, {})).status, 401);
    assert.deepEqual(
      (await call('GET', '/api/v5/stats', undefined, { authorization: 'Bearer wrong' })).body.code,
      'BAD_API_KEY',
    );
    assert.equal((await call('GET', '/api/v5/stats', undefined, { 'x-api-key': KEY })).status, 200);
    const basic = `Basic ${Buffer.from(`admin:${KEY}`).toString('base64')}`;
    assert.equal((await call('GET', '/api/v5/stats', undefined, { authorization: basic })).status, 200);
    assert.equal((await call('GET', '/api/v5/nothing')).body.code, 'NOT_FOUND');
  });

  it('publishes, lists and kicks clients, lists subscriptions', async () => {
    const c = await connect(after, b.ports.mqttPort!, { clientId: 'api-client' });
    const got = collect(c);
    await c.subscribeAsync('api/#', { qos: 1 });
    await c.subscribeAsync('$share/grp/jobs/#', { qos: 0 });
    assert.equal(
      (await call('POST', '/api/v5/publish', { topic: 'api/x', payload: 'from-api', qos: 1 })).status,
      200,
    );
    await waitFor('API message', () => got.find((m) => m.topic === 'api/x' && m.payload === 'from-api'));
    assert.equal((await call('POST', '/api/v5/publish', { topic: 'api/#', payload: 'x' })).status, 400);
    assert.equal(
      (await call('POST', '/api/v5/publish', { topic: 'cpuburst/v1/nodes/n1/decisions', payload: 'x' })).body
        .code,
      'NOT_AUTHORIZED',
    );
    const list = await call('GET', '/api/v5/clients');
    assert.ok(list.body.data.some((x: { clientid: string }) => x.clientid === 'api-client'));
    assert.equal((await call('GET', '/api/v5/clients/api-client')).body.clientid, 'api-client');
    assert.equal((await call('GET', '/api/v5/clients/nobody')).body.code, 'CLIENTID_NOT_FOUND');
    const subs = await call('GET', '/api/v5/subscriptions');
    const mine = subs.body.data
      .filter((s: { clientid: string }) => s.clientid === 'api-client')
      .map((s: { topic: string }) => s.topic)
      .sort();
    assert.deepEqual(mine, ['$share/grp/jobs/#', 'api/#']);
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    assert.equal((await call('DELETE', '/api/v5/clients/api-client')).status, 204);
    await closed;
  });

  it('bans by client id, username and IP; unbanning lets the client back', async () => {
    assert.equal(
      (await call('POST', '/api/v5/banned', { as: 'clientid', who: 'bad-dev', duration: 60 })).status,
      200,
    );
    assert.equal((await call('POST', '/api/v5/banned', { as: 'nope', who: 'x' })).status, 400);
    assert.equal(await connectError(b.ports.mqttPort!, { clientId: 'bad-dev' }), 5);
    assert.ok(
      (await call('GET', '/api/v5/banned')).body.data.some((x: { who: string }) => x.who === 'bad-dev'),
    );
    assert.equal((await call('DELETE', '/api/v5/banned/clientid/bad-dev')).status, 204);
    assert.equal(await connectError(b.ports.mqttPort!, { clientId: 'bad-dev' }), 0);
    // an IP ban also drops the clients already connected from there
    const c = await connect(after, b.ports.mqttPort!, { clientId: 'ip-victim' });
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    await call('POST', '/api/v5/banned', { as: 'ip', who: '127.0.0.1', duration: 60 });
    await closed;
    assert.equal(await connectError(b.ports.mqttPort!, { clientId: 'other' }), 5);
    await call('DELETE', '/api/v5/banned/ip/127.0.0.1');
  });

  it('bans a flapping client after N disconnects in the window', async () => {
    for (let i = 0; i < 3; i++) {
      const c = await connect(after, b.ports.mqttPort!, { clientId: 'flapper' });
      await c.endAsync();
    }
    await waitFor('flapping ban', async () =>
      (await call('GET', '/api/v5/banned')).body.data.find(
        (x: { who: string; reason: string }) => x.who === 'flapper' && x.reason === 'flapping',
      ),
    );
    assert.equal(await connectError(b.ports.mqttPort!, { clientId: 'flapper' }), 5);
    await call('DELETE', '/api/v5/banned/clientid/flapper');
  });

  it('delays $delay/<s>/<topic> publishes', async () => {
    const c = await connect(after, b.ports.mqttPort!, { clientId: 'delay-sub' });
    const got = collect(c);
    await c.subscribeAsync('later/#', { qos: 1 });
    const t0 = Date.now();
    await c.publishAsync('$delay/1/later/x', 'late', { qos: 1 });
    await waitFor('delayed message', () => got.find((m) => m.topic === 'later/x'));
    assert.ok(Date.now() - t0 >= 900, `arrived after ${Date.now() - t0} ms`);
  });

  it('serves /metrics, /healthz, /readyz and stats', async () => {
    const metrics = await (await fetch(`${api}/metrics`)).text();
    for (const name of [
      'cpuburst_broker_connections',
      'cpuburst_broker_messages_total',
      'cpuburst_broker_messages_dropped_total',
      'cpuburst_broker_auth_failures_total',
      'cpuburst_broker_acl_denials_total',
      'cpuburst_broker_retained_messages',
      'cpuburst_broker_sessions',
    ]) {
      assert.match(metrics, new RegExp(`^# TYPE ${name} `, 'm'));
    }
    assert.equal((await fetch(`${api}/healthz`)).status, 200);
    assert.equal((await fetch(`${api}/readyz`)).status, 200);
    const stats = await call('GET', '/api/v5/stats');
    assert.ok(stats.body['messages.received'] >= 1);
  });
});

describe('JWT and HTTP hook authenticators', () => {
  it('accepts a signed, unexpired JWT and applies its acl claim', async () => {
    const dir = tempDir(after);
    const jb = await testBroker(after, {
      jwtSecretFile: writeFile(dir, 'jwt.key', 'jwt-secret'),
      authChain: ['jwt'],
    });
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const token = (claims: object) => {
      const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
      return `${body}.${createHmac('sha256', 'jwt-secret').update(body).digest('base64url')}`;
    };
    const now = Math.floor(Date.now() / 1000);
    assert.equal(
      await connectError(jb.ports.mqttPort!, {
        username: 'dev',
        password: token({ sub: 'dev', exp: now - 10 }),
      }),
      4,
    );
    assert.equal(await connectError(jb.ports.mqttPort!, { username: 'dev', password: 'not-a-token' }), 4);
    const c = await connect(after, jb.ports.mqttPort!, {
      username: 'dev',
      password: token({
        sub: 'dev',
        exp: now + 600,
        acl: [
          { permission: 'allow', action: 'all', topics: ['dev/#'] },
          { permission: 'deny', action: 'all', topics: ['#'] },
        ],
      }),
      protocolVersion: 5,
    });
    const g = await c
      .subscribeAsync(['dev/a', 'other/a'], { qos: 1 })
      .catch((err: { packet: { granted: number[] } }) => err.packet.granted.map((q) => ({ qos: q })));
    assert.deepEqual(
      g.map((x: { qos: number }) => x.qos),
      [1, 0x87],
    );
  });

  it('asks the HTTP hook: allow, deny, ignore', async () => {
    const seen: Array<Record<string, unknown>> = [];
    const hook = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => {
        body += d;
      });
      req.on('end', () => {
        const j = JSON.parse(body) as { username: string; password: string };
        seen.push(j);
        res.writeHead(200, { 'content-type': 'application/json' });
        const result =
          j.username === 'hooked' && j.password === 'ok'
            ? 'allow'
            : j.username === 'hooked'
              ? 'deny'
              : 'ignore';
        res.end(JSON.stringify({ result }));
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
    after(() => new Promise<void>((r) => hook.close(() => r())));
    const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/auth`;
    const hb = await testBroker(after, { authHttpUrl: url, authChain: ['http'] });
    assert.equal(
      await connectError(hb.ports.mqttPort!, { username: 'hooked', password: 'ok', clientId: 'h1' }),
      0,
    );
    assert.equal(await connectError(hb.ports.mqttPort!, { username: 'hooked', password: 'bad' }), 4);
    assert.equal(await connectError(hb.ports.mqttPort!, { username: 'stranger', password: 'x' }), 4);
    assert.equal(seen[0]!.clientid, 'h1');
  });
});
