// `cpuburst broker` as users run it: the minimal test-broker command line, the ready log line and
// --ports-file, config validation naming the field, --help, hash-password and graceful SIGTERM.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it, after as rootAfter } from 'node:test';
import { verifyPassword } from '../../broker/auth/passwords.js';
import { cliArgv, runCli } from '../support/cli.js';
import { cleanupList, freePort, run, start, tempDir, waitFor, writeFile } from './helpers.js';

const after = cleanupList(rootAfter);

describe('cpuburst broker CLI', () => {
  it('`cpuburst broker --allow-anonymous --mqtt-port P --acl FILE` starts a test broker', {
    timeout: 90_000,
  }, async () => {
    const dir = tempDir(after);
    const acl = writeFile(
      dir,
      'acl.yaml',
      'noMatch: deny\nrules:\n  - {permission: allow, action: all, topics: ["open/#"]}\n',
    );
    const port = await freePort();
    const portsFile = path.join(dir, 'ports.json');
    const [cmd, args] = cliArgv(['broker', '--allow-anonymous', '--mqtt-port', String(port), '--acl', acl]);
    // Env twins keep the other default listeners off fixed ports so parallel tests cannot collide,
    // and the default store (./data/broker) in a temp dir.
    const env = [
      `BROKER_WS_PORT=-1`,
      'BROKER_HTTP_PORT=0',
      `BROKER_PORTS_FILE=${portsFile}`,
      `BROKER_DATA_DIR=${dir}/data`,
    ];
    const real = start(after, 'env', [...env, cmd, ...args]);
    const ready = await waitFor(
      'Broker listening',
      () =>
        real
          .out()
          .split('\n')
          .find((l) => l.includes('"Broker listening"')),
      60_000,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${real.out()}`);
    });
    const line = JSON.parse(ready) as { msg: string; mqttPort: number; httpPort: number };
    assert.equal(line.msg, 'Broker listening');
    assert.equal(line.mqttPort, port);
    assert.ok(line.httpPort > 0);
    assert.deepEqual(JSON.parse(readFileSync(portsFile, 'utf8')).mqttPort, port);
    const net = ['-h', '127.0.0.1', '-p', String(port)];
    const sub = start(after, 'mosquitto_sub', [
      ...net,
      '-t',
      'open/#',
      '-t',
      'closed/#',
      '-C',
      '1',
      '-W',
      '20',
      '-v',
      '-i',
      'cli-sub',
    ]);
    // No "subscribed" signal from another process: publish (denied, then allowed) until it arrives.
    await waitFor(
      'mosquitto_sub to receive',
      async () => {
        assert.equal(
          (await run('mosquitto_pub', [...net, '-t', 'closed/x', '-m', 'denied', '-q', '1'])).code,
          0,
        );
        assert.equal(
          (await run('mosquitto_pub', [...net, '-t', 'open/x', '-m', 'allowed', '-q', '1'])).code,
          0,
        );
        await new Promise((r) => setTimeout(r, 300));
        return sub.closed();
      },
      30_000,
    );
    assert.equal(
      sub
        .out()
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('Warning'))
        .join('\n'),
      'open/x allowed',
    );
    real.kill('SIGTERM');
    await waitFor('broker exit', () => real.closed(), 20_000);
    assert.equal(real.exitCode, 0);
    assert.match(real.out(), /"Broker stopped"/);
  });

  it('refuses a bad config file naming the field, and unknown flags', async () => {
    const dir = tempDir(after);
    const cfg = writeFile(dir, 'broker.yaml', 'mqttPort: 1883\nauthChain: [password, kerberos]\n');
    const r = await runCli(['broker', '--config', cfg]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /field "authChain\.1"/);
    const typo = writeFile(dir, 'typo.yaml', 'mqtPort: 1\n');
    assert.match(
      (await runCli(['broker', '--config', typo])).stderr,
      /field "mqtPort" is not a known setting/,
    );
    const bad = await runCli(['broker', '--mqtt-prot', '1']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown flag --mqtt-prot/);
  });

  it('documents every flag in --help', async () => {
    const r = await runCli(['broker', '--help']);
    assert.equal(r.code, 0);
    for (const flag of [
      '--config',
      '--mqtt-port',
      '--tls-require-client-cert',
      '--ws-port',
      '--wss-port',
      '--http-port',
      '--allow-anonymous',
      '--users-file',
      '--agent-key-file',
      '--acl',
      '--jwt-secret-file',
      '--jwt-public-key-file',
      '--auth-http-url',
      '--auth-chain',
      '--redis-url',
      '--data-dir',
      '--broker-id',
      '--api-key-file',
      '--max-payload-bytes',
      '--conn-rate',
      '--msg-rate',
      '--flapping-max-count',
      '--log-level',
      '--ports-file',
    ]) {
      assert.ok(r.stdout.includes(flag), `--help mentions ${flag}`);
    }
    assert.match(r.stdout, /env BROKER_CONFIG/);
  });

  it('hash-password prints a hash the users file accepts', async () => {
    const r = await run(
      process.execPath,
      [...cliArgv(['broker', 'hash-password'])[1]],
      30_000,
      'correct horse\n',
    );
    assert.equal(r.code, 0, r.stderr);
    const hash = r.stdout.trim();
    assert.match(hash, /^scrypt\$/);
    assert.ok(verifyPassword(hash, 'correct horse'));
    assert.ok(!verifyPassword(hash, 'wrong horse'));
  });

  it('fails to start, clearly, when its store is already in use', { timeout: 90_000 }, async () => {
    const dir = tempDir(after);
    const [cmd, args] = cliArgv([
      'broker',
      '--allow-anonymous',
      '--mqtt-port',
      '0',
      '--ws-port',
      '-1',
      '--http-port',
      '-1',
      '--data-dir',
      path.join(dir, 'store'),
    ]);
    const first = start(after, cmd, args);
    await waitFor('first broker', () => first.out().includes('Broker listening'), 60_000);
    const second = await run(cmd, args, 60_000);
    assert.equal(second.code, 1);
    assert.match(second.stdout + second.stderr, /cannot open the session store/);
  });
});
