// Pure parts of the broker: topic arithmetic, the ACL, control-plane rules, password hashes,
// JWT, the auth chain, limits and config validation.
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { checkAcl, parseAcl } from '../../broker/acl.js';
import { type AuthSources, authenticate } from '../../broker/auth/chain.js';
import { checkJwt } from '../../broker/auth/jwt.js';
import { hashPassword, verifyPassword } from '../../broker/auth/passwords.js';
import { checkUser, parseUsers } from '../../broker/auth/users.js';
import { buildConfig, checkConfig } from '../../broker/config.js';
import { allowForward, controlPublish, controlSubscribe } from '../../broker/control-acl.js';
import { BanList, FlappingDetector, TokenBucket } from '../../broker/limits.js';
import { SharedSubscriptions } from '../../broker/shared.js';
import { filterCovers, topicMatches } from '../../broker/topic-match.js';
import { deriveAgentPassword } from '../../protocol/credentials.js';
import { identities, topics } from '../../protocol/topics.js';

describe('topic matching', () => {
  it('matches + and # and keeps $ topics away from leading wildcards', () => {
    assert.ok(topicMatches('a/+/c', 'a/b/c'));
    assert.ok(topicMatches('a/#', 'a'));
    assert.ok(topicMatches('a/#', 'a/b/c'));
    assert.ok(!topicMatches('a/+', 'a/b/c'));
    assert.ok(!topicMatches('#', '$SYS/x'));
    assert.ok(topicMatches('$SYS/#', '$SYS/x'));
  });
  it('knows when one filter covers another', () => {
    assert.ok(filterCovers('a/#', 'a/+/c'));
    assert.ok(!filterCovers('a/+/c', 'a/#'));
    assert.ok(!filterCovers('a/b', '#'));
  });
});

describe('ACL file', () => {
  const acl = parseAcl(
    `
noMatch: deny
rules:
  - {permission: deny, username: mallory, action: all, topics: ["#"]}
  - {permission: allow, action: all, topics: ["users/\${username}/#", "devices/\${clientid}/#"]}
  - {permission: allow, action: subscribe, topics: ["eq sensors/#"]}
  - {permission: allow, action: publish, ipaddr: 10.0.0.0/8, topics: ["sensors/+/temp"]}
`,
    'test.yaml',
  );
  const alice = { username: 'alice', clientId: 'c1', ip: '10.1.2.3' };
  it('first match wins and noMatch applies', () => {
    assert.equal(
      checkAcl(acl, { username: 'mallory', clientId: 'x', ip: '10.0.0.1' }, 'publish', 'sensors/a/temp'),
      'deny',
    );
    assert.equal(checkAcl(acl, alice, 'publish', 'sensors/a/temp'), 'allow');
    assert.equal(checkAcl(acl, { ...alice, ip: '192.168.1.1' }, 'publish', 'sensors/a/temp'), 'deny');
    assert.equal(checkAcl(acl, { ...alice, ip: '::ffff:10.9.9.9' }, 'publish', 'sensors/a/temp'), 'allow');
    assert.equal(checkAcl(acl, alice, 'publish', 'other'), 'deny');
  });
  it('fills the username and clientid placeholders', () => {
    assert.equal(checkAcl(acl, alice, 'publish', 'users/alice/x'), 'allow');
    assert.equal(checkAcl(acl, alice, 'publish', 'users/bob/x'), 'deny');
    assert.equal(checkAcl(acl, alice, 'subscribe', 'devices/c1/#'), 'allow');
    assert.equal(checkAcl(acl, { clientId: 'c1' }, 'publish', 'users//x'), 'deny');
  });
  it('eq matches the filter literally', () => {
    assert.equal(checkAcl(acl, alice, 'subscribe', 'sensors/#'), 'allow');
    assert.equal(checkAcl(acl, alice, 'subscribe', 'sensors/a'), 'deny');
  });
  it('names the bad field', () => {
    assert.throws(
      () => parseAcl('rules: [{permission: maybe, topics: [a]}]', 'f.yaml'),
      /f\.yaml: rules\[0\]\.permission/,
    );
    assert.throws(
      () => parseAcl('rules: [{permission: allow, ipaddr: 300.1.1.1/8, topics: [a]}]', 'f.yaml'),
      /ipaddr/,
    );
    assert.throws(() => parseAcl('noMatch: perhaps', 'f.yaml'), /noMatch/);
  });
});

describe('control-plane rules', () => {
  const op = identities.operator;
  const a1 = identities.agent('n1');
  it('only the operator publishes decisions', () => {
    assert.equal(controlPublish(op, topics.decisions('n1')), 'allow');
    assert.equal(controlPublish(a1, topics.decisions('n1')), 'deny');
    assert.equal(controlPublish('iot', topics.decisions('n1')), 'deny');
    assert.equal(controlPublish(null, 'cpuburst/anything'), 'deny');
    assert.equal(controlPublish(null, 'cpuburst'), 'deny');
    assert.equal(controlPublish('iot', 'sensors/x'), 'continue');
  });
  it('an agent writes only under its own agent prefix', () => {
    assert.equal(controlPublish(a1, topics.status('n1')), 'allow');
    assert.equal(controlPublish(a1, topics.presence('n1')), 'allow');
    assert.equal(controlPublish(a1, topics.status('n2')), 'deny');
    assert.equal(controlPublish(a1, 'sensors/x'), 'deny');
  });
  it('an agent reads only its own node', () => {
    assert.equal(controlSubscribe(a1, topics.nodeFilter('n1')), 'allow');
    assert.equal(controlSubscribe(a1, topics.decisions('n1')), 'allow');
    assert.equal(controlSubscribe(a1, topics.nodeFilter('n2')), 'deny');
    assert.equal(controlSubscribe(a1, 'cpuburst/v1/nodes/+/decisions'), 'deny');
    assert.equal(controlSubscribe(a1, '#'), 'deny');
  });
  it('IoT clients never read the control plane, even through wildcards', () => {
    assert.equal(controlSubscribe('iot', 'cpuburst/#'), 'deny');
    assert.equal(controlSubscribe(null, 'cpuburst/v1/nodes/n1/decisions'), 'deny');
    assert.equal(controlSubscribe('iot', '#'), 'continue');
    assert.equal(allowForward('iot', topics.decisions('n1')), false);
    assert.equal(allowForward(null, topics.decisions('n1')), false);
    assert.equal(allowForward('iot', 'sensors/x'), true);
    assert.equal(allowForward(a1, topics.decisions('n1')), true);
    assert.equal(allowForward(a1, topics.decisions('n2')), false);
    assert.equal(allowForward(op, topics.status('n2')), true);
  });
  it('the operator may read everything under cpuburst/', () => {
    assert.equal(controlSubscribe(op, 'cpuburst/#'), 'allow');
    assert.equal(controlSubscribe(op, topics.allAgentsFilter), 'allow');
  });
});

describe('passwords and users file', () => {
  it('verifies scrypt, pbkdf2 and bcrypt hashes and refuses wrong passwords', () => {
    for (const h of [
      hashPassword('s3cret'),
      hashPassword('s3cret', 'pbkdf2', 1000),
      bcrypt.hashSync('s3cret', 4),
    ]) {
      assert.ok(verifyPassword(h, 's3cret'), h);
      assert.ok(!verifyPassword(h, 's3cret!'), h);
    }
    assert.ok(!verifyPassword('scrypt$garbage', 'x'));
  });
  it('reads plain and hashed users; unknown users are ignored, not denied', () => {
    const t = parseUsers(
      `users:\n  - {username: a, password: pw}\n  - {username: b, passwordHash: "${hashPassword('pw2')}"}\n`,
    );
    assert.equal(checkUser(t, 'a', Buffer.from('pw')), 'allow');
    assert.equal(checkUser(t, 'b', Buffer.from('pw2')), 'allow');
    assert.equal(checkUser(t, 'b', Buffer.from('pw')), 'deny');
    assert.equal(checkUser(t, 'c', Buffer.from('pw')), 'ignore');
    assert.throws(
      () => parseUsers('users: [{username: x, passwordHash: md5$abc}]', 'u.yaml'),
      /u\.yaml: users\[0\]\.passwordHash/,
    );
  });
});

function hs256(secret: string, claims: object, header = { alg: 'HS256', typ: 'JWT' }): string {
  const b = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b(header)}.${b(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

describe('JWT', () => {
  const now = 1_700_000_000;
  it('accepts a valid HS256 token and honours exp and the subject', () => {
    const keys = { secret: Buffer.from('k') };
    assert.equal(
      checkJwt(keys, 'dev1', Buffer.from(hs256('k', { sub: 'dev1', exp: now + 60 })), now).result,
      'allow',
    );
    assert.equal(
      checkJwt(keys, 'dev1', Buffer.from(hs256('k', { sub: 'dev1', exp: now - 1 })), now).reason,
      'JWT expired',
    );
    assert.equal(checkJwt(keys, 'dev2', Buffer.from(hs256('k', { sub: 'dev1' })), now).result, 'deny');
    assert.equal(checkJwt(keys, 'dev1', Buffer.from(hs256('other', { sub: 'dev1' })), now).result, 'deny');
    assert.equal(checkJwt(keys, 'dev1', Buffer.from('not-a-jwt'), now).result, 'ignore');
  });
  it('accepts RS256 and carries an acl claim', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const b = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const body = `${b({ alg: 'RS256' })}.${b({ username: 'd', acl: [{ permission: 'allow', action: 'publish', topics: ['d/#'] }] })}`;
    const tok = `${body}.${sign('RSA-SHA256', Buffer.from(body), privateKey).toString('base64url')}`;
    const r = checkJwt({ publicKey }, 'd', Buffer.from(tok), now);
    assert.equal(r.result, 'allow');
    assert.equal(r.acl?.[0]?.topics[0], 'd/#');
    assert.equal(checkJwt({ publicKey }, 'd', Buffer.from(`${tok.slice(0, -4)}AAAA`), now).result, 'deny');
  });
});

describe('auth chain', () => {
  const key = Buffer.from('agent-key');
  const base: AuthSources = {
    users: parseUsers('users: [{username: operator, password: op}, {username: dev, password: d}]'),
    agentKey: key,
    allowAnonymous: true,
    chain: ['password', 'agent-key', 'jwt', 'http'],
    nowSec: () => 0,
  };
  const req = (username?: string, password?: string) => ({
    username,
    password: password === undefined ? undefined : Buffer.from(password),
    clientId: 'c',
  });
  it('authenticates users and derived agent passwords', async () => {
    assert.deepEqual(await authenticate(base, req('operator', 'op')), {
      ok: true,
      identity: 'operator',
      by: 'password',
      acl: undefined,
    });
    const ok = await authenticate(base, req('agent:n1', deriveAgentPassword(key, 'n1')));
    assert.ok(ok.ok && ok.identity === 'agent:n1');
    assert.equal((await authenticate(base, req('agent:n2', deriveAgentPassword(key, 'n1')))).ok, false);
    assert.equal((await authenticate(base, req('dev', 'wrong'))).ok, false);
  });
  it('never grants a control identity to an anonymous client', async () => {
    const noUsers = { ...base, users: undefined, agentKey: undefined };
    assert.equal((await authenticate(noUsers, req('operator', 'x'))).ok, false);
    assert.equal((await authenticate(noUsers, req('agent:n1', 'x'))).ok, false);
    const anon = await authenticate(noUsers, req('someone', 'x'));
    assert.ok(anon.ok && anon.identity === null && anon.by === 'anonymous');
  });
  it('refuses anonymous clients unless allowed', async () => {
    assert.equal((await authenticate({ ...base, allowAnonymous: false }, req())).ok, false);
    assert.equal((await authenticate({ ...base, allowAnonymous: false }, req('stranger', 'x'))).ok, false);
  });
});

describe('limits', () => {
  it('token bucket refills with the clock', () => {
    let t = 0;
    const b = new TokenBucket(2, 2, () => t);
    assert.ok(b.take() && b.take());
    assert.ok(!b.take());
    t += 500;
    assert.ok(b.take());
    assert.ok(!b.take());
  });
  it('flapping: N disconnects in the window trip, older ones age out', () => {
    let t = 0;
    const f = new FlappingDetector({ maxCount: 3, windowSec: 10, banSec: 60 }, () => t);
    assert.ok(!f.disconnected('c'));
    t += 11_000;
    assert.ok(!f.disconnected('c'));
    assert.ok(!f.disconnected('c'));
    assert.ok(f.disconnected('c'));
  });
  it('bans expire', () => {
    let t = 0;
    const bans = new BanList(() => t);
    bans.add('ip', '10.0.0.1', 'test', 5);
    assert.equal(bans.find({ ip: '::ffff:10.0.0.1' })?.as, 'ip');
    t += 6000;
    assert.equal(bans.find({ ip: '10.0.0.1' }), undefined);
  });
});

describe('shared subscriptions', () => {
  it('rewrites $share filters and delivers each message to one member, round robin', () => {
    const s = new SharedSubscriptions();
    const p1 = { cmd: 'subscribe', subscriptions: [{ topic: '$share/g/jobs/#' }] };
    s.rewrite('a', p1);
    s.rewrite('b', { cmd: 'subscribe', subscriptions: [{ topic: '$share/g/jobs/#' }] });
    assert.equal(p1.subscriptions[0]!.topic, 'jobs/#');
    const none = () => false;
    const counts = { a: 0, b: 0 };
    for (let i = 0; i < 10; i++) {
      const msg = { topic: 'jobs/1', brokerId: 'b', brokerCounter: i };
      const who = (['a', 'b'] as const).filter((c) => s.shouldDeliver(c, msg, none));
      assert.equal(who.length, 1);
      counts[who[0]!]++;
    }
    assert.deepEqual(counts, { a: 5, b: 5 });
    s.drop('a');
    assert.ok(s.shouldDeliver('b', { topic: 'jobs/2', brokerId: 'b', brokerCounter: 99 }, none));
  });
  it('skips offline members but keeps their seat', () => {
    const online = new Set(['a', 'b']);
    const s = new SharedSubscriptions((id) => online.has(id));
    s.rewrite('a', { cmd: 'subscribe', subscriptions: [{ topic: '$share/g/t' }] });
    s.rewrite('b', { cmd: 'subscribe', subscriptions: [{ topic: '$share/g/t' }] });
    online.delete('a');
    for (let i = 0; i < 4; i++)
      assert.ok(s.shouldDeliver('b', { topic: 't', brokerId: 'x', brokerCounter: i }, () => false));
    online.add('a');
    const who = [0, 1].map((i) =>
      ['a', 'b'].filter((c) =>
        s.shouldDeliver(c, { topic: 't', brokerId: 'y', brokerCounter: i }, () => false),
      ),
    );
    assert.deepEqual(who.flat().sort(), ['a', 'b']);
  });
});

describe('config', () => {
  it('names the bad field', () => {
    assert.throws(() => checkConfig({ mqttPort: 'x' }, 'config c.yaml'), /field "mqttPort" must be integer/);
    assert.throws(
      () => checkConfig({ mqttPorts: 1 }, 'config c.yaml'),
      /field "mqttPorts" is not a known setting/,
    );
    assert.throws(() => checkConfig({ authChain: ['password', 'ldap'] }, 'c'), /field "authChain\.1"/);
  });
  it('flags override defaults; --no-mqtt switches TCP off', () => {
    const c = buildConfig({ mqtt: false, allowAnonymous: true });
    assert.equal(c.mqttPort, -1);
    assert.equal(c.allowAnonymous, true);
    assert.equal(c.httpPort, 18083);
  });
});
