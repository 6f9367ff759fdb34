// ServiceAccount tokens end to end: devcluster issues them (TokenRequest), the broker verifies
// them through the cluster's discovery/JWKS or TokenReview, and real MQTT 3.1.1 and 5 clients see
// the identity the token proves — whatever client id or username they send.
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { before, describe, it, after as rootAfter } from 'node:test';
import type { MqttClient } from 'mqtt';
import { generateSigningKey } from '../../devcluster/tokens.js';
import { deriveAgentPassword } from '../../protocol/credentials.js';
import { identities, topics } from '../../protocol/topics.js';
import { cleanupList, collect, tempDir, waitFor, writeFile } from './helpers.js';
import {
  AGENT_SA,
  AUDIENCE,
  type Bed,
  connectOk,
  kubeconfigWithoutOidc,
  NS,
  OPERATOR_SA,
  refusedWith,
  startBed,
  type TokenBroker,
  tokenBroker,
} from './k8s-fixture.js';

const after = cleanupList(rootAfter);
let bed: Bed;
let tb: TokenBroker;
let tokenA: string;
let operator: MqttClient;
let seen: ReturnType<typeof collect>;

const DOC_A = JSON.stringify({ node: 'node-a', version: 1 });
const DOC_B = JSON.stringify({ node: 'node-b', version: 1 });
const OBSERVER_ID = 'cpuburst-operator-observer';

before(async () => {
  bed = await startBed(after);
  bed.addPod('agent-a', 'node-a');
  bed.addPod('agent-b', 'node-b');
  bed.addPod('operator', 'node-b', OPERATOR_SA);
  tb = await tokenBroker(after, bed, { saVerify: 'jwks' });
  tokenA = await bed.requestToken(AGENT_SA, 'agent-a');
  operator = await connectOk(after, tb.port, {
    protocolVersion: 5,
    clientId: OBSERVER_ID,
    username: 'operator',
    password: await bed.requestToken(OPERATOR_SA, 'operator'),
  });
  seen = collect(operator);
  await operator.subscribeAsync([topics.allAgentsFilter, topics.allDecisionsFilter], { qos: 1 });
  await operator.publishAsync(topics.decisions('node-a'), DOC_A, { qos: 1, retain: true });
  await operator.publishAsync(topics.decisions('node-b'), DOC_B, { qos: 1, retain: true });
});

function lastRefusal(reason: string) {
  return tb.lines.findLast((l) => l.message === 'Refused connection' && l.reason === reason);
}

describe('k8s-token over MQTT: the token, not the client, decides the identity', () => {
  it('an agent on node A reads only A and writes only its own agent topics (3.1.1 and 5, any client id/username)', async () => {
    const ids = ['operator', 'agent:node-b', `rnd-${randomUUID()}`, ''];
    let n = 0;
    for (const protocolVersion of [4, 5] as const) {
      for (const id of ids) {
        const label = `v${protocolVersion} id=${JSON.stringify(id)}`;
        const c = await connectOk(after, tb.port, {
          protocolVersion,
          clientId: id,
          // 3.1.1 forbids a password without a username [MQTT-3.1.2-22]: '' is sent as an empty one.
          username: id,
          password: tokenA,
          clean: true,
        });
        const got = collect(c);
        const own = await c.subscribeAsync(topics.decisions('node-a'), { qos: 1 });
        assert.ok(own[0]!.qos < 128, `${label}: own decisions subscription refused`);
        await waitFor(`${label}: retained decisions of node-a`, () =>
          got.find((m) => m.topic === topics.decisions('node-a') && m.payload === DOC_A && m.retain),
        );
        for (const filter of [topics.decisions('node-b'), topics.nodeFilter('node-b'), 'cpuburst/#']) {
          // mqtt.js rejects an MQTT 5 SUBACK failure; a 3.1.1 one comes back as qos 128.
          const g = await c
            .subscribeAsync(filter, { qos: 1 })
            .catch((err: { packet?: { granted?: number[] } }) => [{ qos: err.packet?.granted?.[0] ?? 128 }]);
          assert.ok(g[0]!.qos >= 128, `${label}: subscription to ${filter} granted`);
        }
        const forged = `forged-${label}`;
        for (const topic of [
          topics.decisions('node-a'),
          topics.status('node-b'),
          topics.decisions('node-b'),
        ]) {
          await c.publishAsync(topic, forged, { qos: 1, retain: true }).catch(() => undefined);
        }
        await c.publishAsync(topics.status('node-a'), `ok-${label}`, { qos: 1 });
        n++;
        await waitFor(`${label}: own status reaches the operator`, () =>
          seen.find((m) => m.payload === `ok-${label}`),
        );
        assert.ok(!got.some((m) => m.topic.includes('node-b')), `${label}: received node-b traffic`);
        await c.endAsync();
      }
    }
    assert.equal(seen.filter((m) => m.payload.startsWith('ok-')).length, n);
    assert.deepEqual(
      seen.filter((m) => m.payload.startsWith('forged')),
      [],
      'a forged message reached the operator',
    );
    // The retained documents are the operator's, untouched.
    const check = await connectOk(after, tb.port, {
      protocolVersion: 5,
      password: tokenA,
      clientId: 'check-a',
    });
    const after1 = collect(check);
    await check.subscribeAsync(topics.decisions('node-a'), { qos: 1 });
    await waitFor('retained A', () => after1.find((m) => m.retain));
    assert.equal(after1.find((m) => m.retain)!.payload, DOC_A);
    const info = [...tb.b.clients.values()].find((i) => i.identity === identities.agent('node-a'));
    assert.equal(info?.by, 'k8s-token');
  });

  it('a valid token cannot take over the client id of a connected control identity', async () => {
    const code = await refusedWith(tb.port, tokenA, { protocolVersion: 5, clientId: OBSERVER_ID });
    assert.equal(code, 0x87);
    assert.equal(operator.connected, true);
  });

  it('refuses bad tokens with a reason code, a log line and a metric label', async () => {
    const pod = bed.dc.store.get('v1', 'Pod', 'agent-a', NS)!;
    const boundPod = { name: 'agent-a', uid: pod.metadata.uid as string };
    const issue = (o: Record<string, unknown>) =>
      bed.dc.tokens.issue({ namespace: NS, serviceAccount: AGENT_SA, audiences: [AUDIENCE], boundPod, ...o })
        .token;
    const foreign = { ...generateSigningKey('RS256'), kid: bed.dc.tokens.currentKey.kid };
    const cases: Array<[string, string, number, number]> = [
      // token, reason, MQTT 5 reason code, MQTT 3.1.1 return code
      [issue({ expirationSeconds: -30 }), 'expired', 0x86, 4],
      [issue({ now: new Date(Date.now() + 3600_000) }), 'not_yet_valid', 0x86, 4],
      [issue({ audiences: ['https://kubernetes.default.svc'] }), 'bad_audience', 0x86, 4],
      [issue({ key: foreign }), 'bad_signature', 0x86, 4],
      [issue({ key: generateSigningKey('ES256') }), 'unknown_key', 0x86, 4],
      [issue({ issuer: 'https://issuer.example' }), 'unknown_issuer', 0x86, 4],
      ['eyJhbGciOiJSUzI1NiJ9.e30.c2ln', 'malformed', 0x86, 4], // a JWS without iss/sub/exp
      [
        await bed.requestToken('sensor', undefined, { namespace: 'iot' }),
        'serviceaccount_not_allowed',
        0x87,
        5,
      ],
      [await bed.requestToken(AGENT_SA), 'node_unknown', 0x87, 5],
    ];
    for (const [token, reason, v5, v4] of cases) {
      const before = await tb.refusals(reason);
      assert.equal(await refusedWith(tb.port, token, { protocolVersion: 5 }), v5, `${reason} (v5)`);
      assert.equal(
        await refusedWith(tb.port, token, { protocolVersion: 4, username: 'operator' }),
        v4,
        `${reason} (v4)`,
      );
      assert.equal(await tb.refusals(reason), before + 2, `metric for ${reason}`);
      const line = lastRefusal(reason);
      assert.ok(line, `no "Refused connection" log line with reason ${reason}`);
      assert.equal(typeof line.detail, 'string');
    }
  });

  it('refuses the token of a deleted pod within the pod cache TTL', async () => {
    bed.addPod('agent-gone', 'node-a');
    const token = await bed.requestToken(AGENT_SA, 'agent-gone');
    const c = await connectOk(after, tb.port, { protocolVersion: 5, password: token, clientId: 'gone-1' });
    await c.endAsync();
    bed.dc.store.delete('v1', 'Pod', 'agent-gone', NS);
    const t0 = Date.now();
    await waitFor(
      'pod_gone refusal',
      async () => (await refusedWith(tb.port, token, { protocolVersion: 5 })) === 0x87,
    );
    assert.ok(Date.now() - t0 < 5_000, 'took longer than the 1 s pod cache TTL allows');
    assert.ok(lastRefusal('pod_gone'));
    assert.ok((await tb.refusals('pod_gone')) >= 1);
  });

  it('key rotation: a new key is accepted without restart, a key rotated out is refused', async () => {
    const old = await bed.requestToken(AGENT_SA, 'agent-b');
    const c = await connectOk(after, tb.port, { protocolVersion: 5, password: old, clientId: 'rot-1' });
    await c.endAsync();
    bed.dc.tokens.rotate({ keepPrevious: false });
    const fresh = await bed.requestToken(AGENT_SA, 'agent-b');
    // The first connection with the new kid triggers a JWKS refresh (rate-limited to 1/s here).
    const ok = await waitFor('token of the new key accepted', async () => {
      try {
        return await connectOk(after, tb.port, {
          protocolVersion: 5,
          password: fresh,
          clientId: `rot-${randomUUID()}`,
        });
      } catch {
        return null;
      }
    });
    await ok.endAsync();
    const before = await tb.refusals('unknown_key');
    assert.equal(await refusedWith(tb.port, old, { protocolVersion: 5 }), 0x86);
    assert.ok(lastRefusal('unknown_key'));
    assert.equal(await tb.refusals('unknown_key'), before + 1);
  });

  it('disconnects a client when its token expires (MQTT 5: DISCONNECT 0xA0; 3.1.1: closed)', async () => {
    const pod = bed.dc.store.get('v1', 'Pod', 'agent-a', NS)!;
    const token = bed.dc.tokens.issue({
      namespace: NS,
      serviceAccount: AGENT_SA,
      audiences: [AUDIENCE],
      boundPod: { name: 'agent-a', uid: pod.metadata.uid as string },
      expirationSeconds: 6, // room for two connects on a loaded machine
    }).token;
    const v5 = await connectOk(after, tb.port, { protocolVersion: 5, password: token, clientId: 'exp-5' });
    const v4 = await connectOk(after, tb.port, { protocolVersion: 4, password: token, clientId: 'exp-4' });
    let reasonCode: number | undefined;
    v5.on('disconnect', (p) => {
      reasonCode = p.reasonCode;
    });
    let v4closed = false;
    v4.on('close', () => {
      v4closed = true;
    });
    await waitFor('v5 DISCONNECT', () => reasonCode !== undefined, 15_000);
    assert.equal(reasonCode, 0xa0);
    await waitFor('v4 closed', () => v4closed, 15_000);
    assert.ok(
      tb.lines.some((l) => l.message === 'Disconnected client: credential expired' && l.clientId === 'exp-5'),
    );
    assert.equal(await refusedWith(tb.port, token, { protocolVersion: 5 }), 0x86);
  });
});

describe('k8s-token over MQTT: TokenReview and auto fallback', () => {
  it('tokenreview mode authenticates through the API server and maps its refusals', async () => {
    bed.addPod('agent-tr', 'node-a');
    const tr = await tokenBroker(after, bed, { saVerify: 'tokenreview' });
    const token = await bed.requestToken(AGENT_SA, 'agent-tr');
    const c = await connectOk(after, tr.port, {
      protocolVersion: 4,
      password: token,
      clientId: 'tr-1',
      username: 'agent:node-b',
    });
    const granted = await c.subscribeAsync(topics.decisions('node-a'), { qos: 1 });
    assert.equal(granted[0]!.qos, 1);
    const line = tr.lines.find((l) => l.message === 'Verified client credential' && l.clientId === 'tr-1');
    assert.equal(line?.via, 'tokenreview');
    assert.equal(line?.identity, 'agent:node-a');
    await c.endAsync();
    bed.dc.store.delete('v1', 'Pod', 'agent-tr', NS);
    await waitFor(
      'pod_gone via TokenReview',
      async () => (await refusedWith(tr.port, token, { protocolVersion: 5 })) === 0x87,
    );
    assert.ok(tr.lines.some((l) => l.message === 'Refused connection' && l.reason === 'pod_gone'));
    const foreign = bed.dc.tokens.issue({
      namespace: NS,
      serviceAccount: AGENT_SA,
      audiences: [AUDIENCE],
      key: generateSigningKey('RS256'),
    }).token;
    assert.equal(await refusedWith(tr.port, foreign, { protocolVersion: 5 }), 0x86);
    assert.equal(await tr.refusals('review_failed'), 1);
  });

  it('auto falls back to TokenReview while discovery/JWKS is unavailable; jwks alone refuses', async () => {
    const kubeconfig = await kubeconfigWithoutOidc(after, bed);
    const auto = await tokenBroker(after, bed, { saVerify: 'auto', kubeconfig });
    const token = await bed.requestToken(AGENT_SA, 'agent-b');
    const c = await connectOk(after, auto.port, { protocolVersion: 5, password: token, clientId: 'auto-1' });
    await c.endAsync();
    const line = auto.lines.find(
      (l) => l.message === 'Verified client credential' && l.clientId === 'auto-1',
    );
    assert.equal(line?.via, 'tokenreview');
    assert.equal(line?.identity, 'agent:node-b');
    assert.ok(auto.lines.some((l) => l.message === 'ServiceAccount issuer keys not refreshed'));
    // jwks-only with the keys unavailable refuses (review_failed) rather than trusting anything.
    const strict = await tokenBroker(after, bed, { saVerify: 'jwks', kubeconfig });
    assert.equal(await refusedWith(strict.port, token, { protocolVersion: 5 }), 0x86);
    assert.equal(await strict.refusals('review_failed'), 1);
  });
});

describe('k8s-token in a mixed chain', () => {
  it('password and agent-key before k8s-token leave token-shaped passwords to it; legacy logins still work', async () => {
    const dir = tempDir(after);
    const mixed = await tokenBroker(after, bed, {
      authChain: ['password', 'agent-key', 'k8s-token', 'jwt'],
      jwtSecretFile: writeFile(dir, 'jwt.secret', 'iot-jwt-secret\n'),
      usersFile: writeFile(
        dir,
        'users.yaml',
        'users:\n  - {username: operator, password: op-pw}\n  - {username: device-7, password: my.pass.word}\n',
      ),
      agentKeyFile: writeFile(dir, 'agent.key', 'legacy-key\n'),
      httpPort: 0,
      apiKey: 'api-key',
    });
    // A fresh token: an earlier test rotated the issuer key out from under tokenA.
    const agentToken = await bed.requestToken(AGENT_SA, 'agent-a');
    const agent = await connectOk(after, mixed.port, {
      username: 'agent:node-a',
      password: agentToken,
      clientId: 'mix-a',
    });
    const op = await connectOk(after, mixed.port, {
      username: 'operator',
      password: await bed.requestToken(OPERATOR_SA, 'operator'),
      clientId: 'mix-op',
    });
    const byId = (id: string) => [...mixed.b.clients.entries()].find(([c]) => c.id === id)?.[1];
    assert.deepEqual([byId('mix-a')?.identity, byId('mix-a')?.by], ['agent:node-a', 'k8s-token']);
    assert.deepEqual([byId('mix-op')?.identity, byId('mix-op')?.by], ['operator', 'k8s-token']);
    const legacy = await connectOk(after, mixed.port, {
      username: 'agent:node-b',
      password: deriveAgentPassword(Buffer.from('legacy-key'), 'node-b'),
      clientId: 'mix-legacy',
    });
    assert.equal(byId('mix-legacy')?.by, 'agent-key');
    // A dotted plain password is no token: it stays with the users file.
    const device = await connectOk(after, mixed.port, {
      username: 'device-7',
      password: 'my.pass.word',
      clientId: 'mix-dev',
    });
    assert.equal(byId('mix-dev')?.by, 'password');
    // An IoT JWT (another issuer, no kubernetes.io claim) passes k8s-token on to the jwt authenticator.
    const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const input = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub: 'device-9', iss: 'iot', exp: 2e9 })}`;
    const iotJwt = `${input}.${createHmac('sha256', 'iot-jwt-secret').update(input).digest('base64url')}`;
    const jwtDevice = await connectOk(after, mixed.port, {
      username: 'device-9',
      password: iotJwt,
      clientId: 'mix-jwt',
    });
    assert.deepEqual([byId('mix-jwt')?.by, byId('mix-jwt')?.identity], ['jwt', 'device-9']);
    await jwtDevice.endAsync();
    await device.endAsync();
    const res = await fetch(`http://127.0.0.1:${mixed.b.ports.httpPort}/api/v5/clients/mix-a`, {
      headers: { authorization: 'Bearer api-key' },
    });
    const api = (await res.json()) as { identity: string; username: string; credential_expires_at: string };
    assert.deepEqual([api.identity, api.username], ['agent:node-a', 'agent:node-a']);
    assert.ok(Date.parse(api.credential_expires_at) > Date.now());
    assert.equal(
      await refusedWith(mixed.port, 'not-a-token', { username: 'operator', protocolVersion: 5 }),
      0x86,
    );
    await Promise.all([agent.endAsync(), op.endAsync(), legacy.endAsync()]);
  });
});

describe('k8s-token: other ServiceAccounts with --sa-allow-other', () => {
  it('become sa:<ns>:<name> and never touch cpuburst/, whatever username they send', async () => {
    const open = await tokenBroker(after, bed, { saAllowOther: true });
    const op = await connectOk(after, open.port, {
      username: 'operator',
      password: await bed.requestToken(OPERATOR_SA, 'operator'),
      clientId: 'other-op',
    });
    const opSeen = collect(op);
    await op.subscribeAsync(topics.allDecisionsFilter, { qos: 1 });
    await op.publishAsync(topics.decisions('node-a'), DOC_A, { qos: 1, retain: true });
    const sensorToken = await bed.requestToken('sensor', undefined, { namespace: 'iot' });
    const iot = await connectOk(after, open.port, {
      username: 'operator',
      password: sensorToken,
      clientId: 'sensor-1',
    });
    const info = [...open.b.clients.entries()].find(([c]) => c.id === 'sensor-1')?.[1];
    assert.equal(info?.identity, 'sa:iot:sensor');
    const got = collect(iot);
    const refused = await iot
      .subscribeAsync('cpuburst/#', { qos: 1 })
      .catch((err: { packet?: { granted?: number[] } }) => [{ qos: err.packet?.granted?.[0] ?? 128 }]);
    assert.ok(refused[0]!.qos >= 128, 'sa: identity subscribed to cpuburst/#');
    await iot.subscribeAsync(['#', 'sensors/#'], { qos: 1 }); // no ACL file: allowed, but control traffic is withheld
    await iot
      .publishAsync(topics.decisions('node-a'), 'forged', { qos: 1, retain: true })
      .catch(() => undefined);
    await iot.publishAsync('sensors/t1', 'plain-iot', { qos: 1 });
    await waitFor('own IoT message', () => got.find((m) => m.payload === 'plain-iot'));
    assert.ok(!got.some((m) => m.topic.startsWith('cpuburst/')), JSON.stringify(got));
    assert.ok(!opSeen.some((m) => m.payload === 'forged'));
  });
});
