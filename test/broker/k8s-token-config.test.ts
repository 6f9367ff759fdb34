// The identity settings as users give them: flags, env twins and YAML keys, bad values exiting 2
// with a clear message, and a real `cpuburst broker` process verifying devcluster tokens.
import assert from 'node:assert/strict';
import { describe, it, after as rootAfter } from 'node:test';
import { buildConfig, FLAGS } from '../../broker/config.js';
import { FlagError, parseFlags } from '../../common/flags.js';
import { topics } from '../../protocol/topics.js';
import { cliArgv, runCli } from '../support/cli.js';
import { cleanupList, freePort, start, tempDir, waitFor, writeFile } from './helpers.js';
import { AGENT_SA, connectOk, NS, OPERATOR_SA, refusedWith, startBed } from './k8s-fixture.js';

const after = cleanupList(rootAfter);

const cfgOf = (argv: string[], env: NodeJS.ProcessEnv = {}) =>
  buildConfig(parseFlags(FLAGS, argv, env).values);

describe('k8s-token and tls-cert settings', () => {
  it('flags, env twins and YAML keys set every identity setting', () => {
    const flags = cfgOf([
      '--auth-chain',
      'tls-cert,k8s-token,password',
      '--tls-ca',
      '/ca.pem',
      '--kubeconfig',
      '/kc',
      '--sa-verify',
      'tokenreview',
      '--sa-audience',
      'aud-1',
      '--sa-agent',
      'cpuburst-system/cpuburst-agent',
      '--sa-operator',
      'cpuburst-system/cpuburst-operator',
      '--sa-allow-other',
      '--sa-issuer',
      'https://kubernetes.default.svc.cluster.local',
      '--sa-jwks-refresh-seconds',
      '60',
      '--sa-pod-cache-seconds',
      '5',
      '--tls-operator-cert',
    ]);
    assert.deepEqual(flags.authChain, ['tls-cert', 'k8s-token', 'password']);
    assert.equal(flags.kubeconfig, '/kc');
    assert.equal(flags.saVerify, 'tokenreview');
    assert.equal(flags.saAudience, 'aud-1');
    assert.equal(flags.saAgent, 'cpuburst-system/cpuburst-agent');
    assert.equal(flags.saOperator, 'cpuburst-system/cpuburst-operator');
    assert.equal(flags.saAllowOther, true);
    assert.equal(flags.saIssuer, 'https://kubernetes.default.svc.cluster.local');
    assert.equal(flags.saJwksRefreshSeconds, 60);
    assert.equal(flags.saPodCacheSeconds, 5);
    assert.equal(flags.tlsOperatorCert, true);

    const env = cfgOf([], {
      BROKER_AUTH_CHAIN: 'k8s-token',
      BROKER_SA_AGENT: 'ns/agent',
      BROKER_SA_VERIFY: 'jwks',
      BROKER_SA_AUDIENCE: 'aud-2',
      BROKER_SA_JWKS_REFRESH_SECONDS: '30',
      BROKER_SA_POD_CACHE_SECONDS: '0',
      BROKER_SA_ALLOW_OTHER: 'false',
    });
    assert.deepEqual(
      [
        env.authChain,
        env.saAgent,
        env.saVerify,
        env.saAudience,
        env.saJwksRefreshSeconds,
        env.saPodCacheSeconds,
      ],
      [['k8s-token'], 'ns/agent', 'jwks', 'aud-2', 30, 0],
    );

    const dir = tempDir(after);
    const yaml = writeFile(
      dir,
      'broker.yaml',
      [
        'authChain: [k8s-token, tls-cert]',
        'tlsCa: /ca.pem',
        'saVerify: auto',
        'saAgent: cpuburst-system/cpuburst-agent',
        'saOperator: cpuburst-system/cpuburst-operator',
        'saJwksRefreshSeconds: 120',
        'tlsOperatorCert: false',
        '',
      ].join('\n'),
    );
    const file = cfgOf(['--config', yaml, '--sa-pod-cache-seconds', '3']);
    assert.equal(file.saOperator, 'cpuburst-system/cpuburst-operator');
    assert.equal(file.saJwksRefreshSeconds, 120);
    assert.equal(file.saPodCacheSeconds, 3);
    // Defaults: audience cpuburst-broker, auto, 300 s, 10 s; the default chain is unchanged.
    const d = cfgOf([]);
    assert.deepEqual(
      [d.saAudience, d.saVerify, d.saJwksRefreshSeconds, d.saPodCacheSeconds, d.authChain],
      ['cpuburst-broker', 'auto', 300, 10, ['password', 'agent-key', 'jwt', 'http']],
    );
  });

  it('bad values fail with a message naming the setting', () => {
    const bad: Array<[string[], RegExp]> = [
      [['--sa-verify', 'maybe'], /field "saVerify" must be equal to one of the allowed values/],
      [['--sa-agent', 'no-slash'], /field "saAgent" must match pattern/],
      [['--sa-operator', 'NS/Op'], /field "saOperator" must match pattern/],
      [['--sa-jwks-refresh-seconds', '0'], /field "saJwksRefreshSeconds" must be >= 1/],
      [['--sa-pod-cache-seconds', '-1'], /field "saPodCacheSeconds" must be >= 0/],
      [['--auth-chain', 'k8s-token'], /k8s-token needs --sa-agent, --sa-operator or --sa-allow-other/],
      [['--auth-chain', 'tls-cert'], /tls-cert needs --tls-ca/],
      [['--auth-chain', 'kerberos'], /field "authChain\.0"/],
      [['--auth-chain', 'k8s-token', '--sa-agent', 'a/b', '--sa-operator', 'a/b'], /must be different/],
    ];
    for (const [argv, re] of bad)
      assert.throws(
        () => cfgOf(argv),
        (e: Error) => e instanceof FlagError && re.test(e.message),
        argv.join(' '),
      );
  });

  it('the CLI exits 2 on a bad identity setting', async () => {
    const r = await runCli(['broker', '--auth-chain', 'k8s-token', '--mqtt-port', '0']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /k8s-token needs --sa-agent/);
    const v = await runCli(['broker', '--sa-verify', 'jwt']);
    assert.equal(v.code, 2);
    assert.match(v.stderr, /saVerify/);
  });

  it('a real `cpuburst broker` verifies devcluster tokens (recommended in-cluster chain)', {
    timeout: 90_000,
  }, async () => {
    const bed = await startBed(after);
    bed.addPod('agent-a', 'node-a');
    const dir = tempDir(after);
    const port = await freePort();
    const [cmd, args] = cliArgv([
      'broker',
      '--auth-chain',
      'tls-cert,k8s-token',
      '--tls-ca',
      writeFile(dir, 'unused-ca.pem', ''),
      '--kubeconfig',
      bed.kubeconfig,
      '--sa-agent',
      `${NS}/${AGENT_SA}`,
      '--sa-operator',
      `${NS}/${OPERATOR_SA}`,
      '--mqtt-port',
      String(port),
      '--data-dir',
      'memory',
    ]);
    const proc = start(after, 'env', [
      'BROKER_WS_PORT=-1',
      'BROKER_HTTP_PORT=-1',
      'BROKER_TLS_PORT=-1',
      cmd,
      ...args,
    ]);
    await waitFor('Broker listening', () => proc.out().includes('"Broker listening"'), 60_000).catch(
      (err) => {
        throw new Error(`${(err as Error).message}\n${proc.out()}`);
      },
    );
    const token = await bed.requestToken(AGENT_SA, 'agent-a');
    const c = await connectOk(after, port, { protocolVersion: 5, password: token, username: 'agent:node-b' });
    const granted = await c.subscribeAsync(topics.decisions('node-a'), { qos: 1 });
    assert.equal(granted[0]!.qos, 1);
    await c.endAsync();
    assert.equal(await refusedWith(port, 'e30.e30.c2ln', { protocolVersion: 5 }), 0x86);
    await waitFor('refusal log line', () => proc.out().includes('"reason":"malformed"'));
    assert.match(proc.out(), /"message":"Loaded ServiceAccount issuer keys"/);
  });
});
