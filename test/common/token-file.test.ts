// The rotating credential file (common/token-file.ts): re-read on every read, rotation and missing
// file logged; with mqtt.js, the token on disk at the time of a reconnect is the one sent, and a
// missing file is logged and retried until it appears.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { memoryLogger } from '../../common/log.js';
import {
  peekTokenClaims,
  readTlsFiles,
  refreshCredentialsOnReconnect,
  renewBeforeExpiry,
  renewLeadMs,
  TokenFile,
} from '../../common/token-file.js';
import { startTokenBroker } from '../support/token-broker.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-token-file-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** An unsigned JWT-shaped token with Kubernetes claims (the client never verifies; the broker does). */
function jwt(claims: Record<string, unknown>): string {
  const b = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b({ alg: 'RS256', kid: 'k1' })}.${b(claims)}.c2ln`;
}

async function until<T>(what: string, fn: () => T | undefined | null | false, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('TokenFile', () => {
  it('re-reads the file every time and logs a rotation once, with the claims but never the token', () => {
    const file = path.join(tmp, 'rotate');
    const { log, lines } = memoryLogger();
    const t1 = jwt({
      sub: 'system:serviceaccount:cpuburst-system:cpuburst-agent',
      exp: 2_000_000_000,
      aud: ['cpuburst-broker'],
      'kubernetes.io': { pod: { name: 'agent-x' }, node: { name: 'node-a' } },
    });
    fs.writeFileSync(file, `${t1}\n`);
    const tf = new TokenFile(file, log);
    assert.equal(tf.read(), t1);
    assert.equal(tf.read(), t1);
    const reads = lines.filter((l) => l.message === 'Read the MQTT token file');
    assert.equal(reads.length, 1, 'an unchanged token is not logged again');
    assert.equal(reads[0]!.subject, 'system:serviceaccount:cpuburst-system:cpuburst-agent');
    assert.equal(reads[0]!.node, 'node-a');
    assert.equal(reads[0]!.pod, 'agent-x');
    assert.equal(reads[0]!.expiresAt, new Date(2_000_000_000_000).toISOString());
    assert.equal(reads[0]!.rotated, false);
    fs.writeFileSync(file, 'second-token');
    assert.equal(tf.read(), 'second-token');
    assert.equal(tf.rotations, 1);
    const last = lines.filter((l) => l.message === 'Read the MQTT token file').at(-1)!;
    assert.equal(last.rotated, true);
    assert.ok(!JSON.stringify(lines).includes(t1), 'the token itself is never logged');
  });

  it('a missing or empty file gives undefined and a clear warning each time; recovery is logged', () => {
    const file = path.join(tmp, 'missing');
    const { log, lines } = memoryLogger();
    const tf = new TokenFile(file, log);
    assert.equal(tf.read(), undefined);
    fs.writeFileSync(file, '  \n');
    assert.equal(tf.read(), undefined);
    const warns = lines.filter((l) => l.level === 'warn');
    assert.equal(warns.length, 2);
    assert.match(warns[0]!.message, /Cannot read the MQTT token file/);
    assert.equal(warns[0]!.error, 'the file does not exist');
    assert.equal(warns[1]!.error, 'the file is empty');
    fs.writeFileSync(file, 'tok');
    assert.equal(tf.read(), 'tok');
    assert.ok(lines.some((l) => l.message === 'Read the MQTT token file' && l.file === file));
  });

  it('renewLeadMs: 10 % of the lifetime, between 2 s and 60 s', () => {
    const at = (iat: number, exp: number) => ({
      issuedAt: new Date(iat * 1000).toISOString(),
      expiresAt: new Date(exp * 1000).toISOString(),
    });
    assert.equal(renewLeadMs(at(0, 600)), 60_000);
    assert.equal(renewLeadMs(at(0, 3600)), 60_000);
    assert.equal(renewLeadMs(at(0, 300)), 30_000);
    assert.equal(renewLeadMs(at(0, 6)), 2_000);
  });

  it('peekTokenClaims decodes a JWT payload and refuses anything else', () => {
    assert.deepEqual(peekTokenClaims(jwt({ sub: 's', aud: 'a' })), { subject: 's', audiences: ['a'] });
    assert.equal(peekTokenClaims('plain-password'), null);
    assert.equal(peekTokenClaims('a.!!!.c'), null);
  });

  it('readTlsFiles reads what exists and logs what does not', () => {
    const { log, lines } = memoryLogger();
    fs.writeFileSync(path.join(tmp, 'ca.pem'), 'CA');
    const r = readTlsFiles({ ca: path.join(tmp, 'ca.pem'), cert: path.join(tmp, 'nope.pem') }, log);
    assert.equal(String(r.ca), 'CA');
    assert.equal(r.cert, undefined);
    assert.ok(lines.some((l) => l.level === 'warn' && l.kind === 'cert'));
  });
});

describe('mqtt.js with refreshCredentialsOnReconnect', { timeout: 60_000 }, () => {
  it('sends the token on disk at each reconnect; a missing file is logged and retried', async () => {
    const broker = await startTokenBroker(['t1']);
    const file = path.join(tmp, 'mqtt-token');
    fs.writeFileSync(file, 't1');
    const { log, lines } = memoryLogger();
    const tf = new TokenFile(file, log);
    const client = mqtt.connect(broker.url, {
      username: 'agent:node-a', // MQTT needs a username with a password; informational only
      password: tf.read(),
      reconnectPeriod: 100,
      reconnectOnConnackError: true,
      protocolVersion: 5,
    });
    client.on('error', () => {});
    refreshCredentialsOnReconnect(client, () => ({ password: tf.read() }));
    try {
      await until('first connect', () => client.connected);
      assert.deepEqual(broker.accepted(), ['t1']);
      // The token rotates on disk and the old one expires: the broker drops the connection.
      fs.writeFileSync(file, 't2');
      broker.valid = new Set(['t2']);
      broker.kick();
      await until('reconnect with t2', () => broker.accepted().length === 2);
      assert.deepEqual(broker.accepted(), ['t1', 't2']);
      assert.ok(!broker.attempts.some((a) => a.password === 't1' && !a.ok), 'the old token is never resent');
      // The file disappears: attempts carry no token, each is logged; it comes back: connected again.
      fs.rmSync(file);
      broker.valid = new Set(['t3']);
      broker.kick();
      await until('a logged missing file', () =>
        lines.some((l) => l.level === 'warn' && /Cannot read the MQTT token file/.test(l.message)),
      );
      await until('refused attempts without a token', () =>
        broker.attempts.some((a) => a.password === '' && !a.ok),
      );
      assert.equal(client.connected, false);
      fs.writeFileSync(file, 't3');
      await until('reconnect with t3', () => client.connected && broker.accepted().at(-1) === 't3');
    } finally {
      await client.endAsync(true);
      await broker.close();
    }
  });
});

describe('mqtt.js with renewBeforeExpiry', { timeout: 60_000 }, () => {
  it('reconnects with the rotated token before the current one expires; without one it waits', async () => {
    const broker = await startTokenBroker();
    const file = path.join(tmp, 'renew-token');
    const now = Math.floor(Date.now() / 1000);
    const t1 = jwt({ sub: 's', iat: now, exp: now + 8 }); // renewed 2 s before expiry
    const t2 = jwt({ sub: 's', iat: now, exp: now + 600 });
    broker.valid = new Set([t1, t2]);
    fs.writeFileSync(file, t1);
    const { log, lines } = memoryLogger();
    const tf = new TokenFile(file, log);
    const client = mqtt.connect(broker.url, {
      username: 'operator',
      password: tf.read(),
      reconnectPeriod: 100,
      protocolVersion: 5,
    });
    client.on('error', () => {});
    refreshCredentialsOnReconnect(client, () => ({ password: tf.read() }));
    renewBeforeExpiry(client, tf, log);
    let closes = 0;
    client.on('close', () => closes++);
    try {
      await until('first connect', () => client.connected);
      // 3 s in, nothing rotated yet: still the first connection.
      await new Promise((r) => setTimeout(r, 3000));
      assert.equal(closes, 0);
      fs.writeFileSync(file, t2); // the kubelet's rewrite
      await until('renewed with t2', () => broker.accepted().at(-1) === t2 && client.connected, 15_000);
      assert.ok(Date.now() / 1000 < now + 8, 'before the first token expired');
      assert.deepEqual(broker.accepted(), [t1, t2]);
      assert.ok(
        broker.attempts.every((a) => a.ok),
        'no refused attempt',
      );
      assert.ok(lines.some((l) => /Reconnecting with the rotated MQTT token/.test(l.message)));
    } finally {
      await client.endAsync(true);
      await broker.close();
    }
  });
});
