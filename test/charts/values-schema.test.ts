// values.schema.json: draft-07, covers every value in values.yaml, and helm itself refuses bad values.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { CHART, ciValuesFiles, helm, lint, templateText } from './helm.js';

const schema = JSON.parse(readFileSync(path.join(CHART, 'values.schema.json'), 'utf8'));
const values = parse(readFileSync(path.join(CHART, 'values.yaml'), 'utf8'));

/** Helm's values merge: maps merge key by key, anything else replaces. */
function deepMerge(base: any, over: any): any {
  if (!over || typeof over !== 'object' || Array.isArray(over) || !base || typeof base !== 'object')
    return over;
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = deepMerge(base[k], v);
  return out;
}

/** Schema node for a dotted path, following properties (and array items). */
function schemaAt(keys: string[]): any {
  let node = schema;
  for (const k of keys) {
    node =
      node?.properties?.[k] ??
      (typeof node?.additionalProperties === 'object' ? node.additionalProperties : undefined);
    if (!node) return undefined;
  }
  return node;
}

/** Every leaf path of values.yaml (objects are walked; arrays and scalars are leaves). */
function leaves(v: unknown, at: string[] = []): string[][] {
  if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) {
    // Open objects (labels, resources, securityContext, a strategy spec the CRD validates) are leaves.
    const node = at.length ? schemaAt(at) : schema;
    if (at.length && node && node.additionalProperties !== false) return [at];
    return Object.entries(v as object).flatMap(([k, c]) => leaves(c, [...at, k]));
  }
  return [at];
}

describe('values.schema.json', () => {
  it('makes ServiceAccount tokens the default: legacy key and password off, mTLS off', () => {
    assert.equal(values.auth.agentKey.enabled, false);
    assert.equal(values.auth.operatorPassword.enabled, false);
    assert.equal(values.agent.mtls.enabled, false);
    assert.deepEqual(values.auth.serviceAccountToken, {
      audience: 'cpuburst-broker',
      expirationSeconds: 3600,
      verify: 'auto',
      allowOtherServiceAccounts: false,
    });
  });

  it('is draft-07 and compiles with ajv', () => {
    assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
    const ajv = new Ajv({ strict: false, allErrors: true });
    const validate = ajv.compile(schema);
    assert.ok(validate(values), JSON.stringify(validate.errors));
    for (const f of ciValuesFiles()) {
      const merged = deepMerge(values, parse(readFileSync(f, 'utf8')));
      assert.ok(validate(merged), `${f}: ${JSON.stringify(validate.errors)}`);
    }
  });

  it('describes every value in values.yaml, and every object refuses unknown keys', () => {
    const missing = leaves(values)
      .filter((p) => !schemaAt(p))
      .map((p) => p.join('.'));
    assert.deepEqual(missing, []);
    assert.equal(schema.additionalProperties, false);
    for (const top of [
      'image',
      'operator',
      'agent',
      'broker',
      'tls',
      'networkPolicy',
      'credentials',
      'auth',
    ]) {
      assert.equal(schema.properties[top].additionalProperties, false, top);
    }
  });

  const bad: Array<[string, string[], RegExp]> = [
    [
      'negative operator replicas',
      ['operator.replicaCount=-1'],
      /operator\.replicaCount: Must be greater than or equal to 0/,
    ],
    [
      'negative broker replicas',
      ['broker.replicaCount=-2'],
      /broker\.replicaCount: Must be greater than or equal to 0/,
    ],
    [
      'a string where a port goes',
      ['agent.metricsPort=abc'],
      /agent\.metricsPort: Invalid type\. Expected: integer, given: string/,
    ],
    [
      'a port out of range',
      ['broker.ports.mqtt=70000'],
      /broker\.ports\.mqtt: Must be less than or equal to 65535/,
    ],
    [
      'a string where a boolean goes',
      ['agent.privileged=maybe'],
      /agent\.privileged: Invalid type\. Expected: boolean, given: string/,
    ],
    ['an unknown log level', ['logLevel=verbose'], /logLevel: logLevel must be one of the following/],
    ['a typo in a key', ['agent.privilidged=true'], /Additional property privilidged is not allowed/],
    [
      'a relative host path',
      ['agent.hostCgroupPath=sys/fs/cgroup'],
      /agent\.hostCgroupPath: Does not match pattern/,
    ],
    [
      'an unknown burst policy',
      ['config.cpuBurstConfig.clusterStrategy.policy=max'],
      /policy: .*must be one of the following/,
    ],
    [
      'an unknown Service type',
      ['broker.service.type=External'],
      /broker\.service\.type: broker\.service\.type must be one of/,
    ],
    [
      'an IoT user posing as an agent identity',
      ['broker.extraUsers[0].username=agent:node-1', 'broker.extraUsers[0].password=x'],
      /broker\.extraUsers\.0\.username: Must not validate the schema/,
    ],
    [
      'an IoT user posing as the operator',
      ['broker.extraUsers[0].username=operator', 'broker.extraUsers[0].password=x'],
      /broker\.extraUsers\.0\.username: Must not validate the schema/,
    ],
    [
      'a token lifetime Kubernetes would refuse (< 600 s)',
      ['auth.serviceAccountToken.expirationSeconds=300'],
      /auth\.serviceAccountToken\.expirationSeconds: Must be greater than or equal to 600/,
    ],
    [
      'an unknown token verification mode',
      ['auth.serviceAccountToken.verify=trust'],
      /auth\.serviceAccountToken\.verify: auth\.serviceAccountToken\.verify must be one of/,
    ],
    ['an empty token audience', ['auth.serviceAccountToken.audience='], /audience: String length must be/],
    [
      'a relative agent certificate directory',
      ['agent.mtls.hostPath=etc/tls'],
      /agent\.mtls\.hostPath: Does not match pattern/,
    ],
    [
      'an IoT user without a password',
      ['broker.extraUsers[0].username=sensor'],
      /broker\.extraUsers\.0: Must validate one and only one schema/,
    ],
  ];
  for (const [label, set, message] of bad) {
    it(`helm template refuses ${label}`, async () => {
      const r = await helm(['template', 'rel', CHART, ...set.flatMap((s) => ['--set', s])]);
      assert.notEqual(r.code, 0, `helm accepted ${set.join(' ')}`);
      assert.match(r.stderr, /values don't meet the specifications of the schema\(s\)/);
      assert.match(r.stderr, message);
    });
  }

  it('helm lint --strict refuses them too', async () => {
    const r = await lint({ set: ['operator.replicaCount=-1'] });
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /operator\.replicaCount: Must be greater than or equal to 0/);
  });

  const combos: Array<[string, string[], RegExp]> = [
    [
      'several brokers without Redis',
      ['broker.replicaCount=3'],
      /broker\.replicaCount > 1 needs shared state/,
    ],
    [
      'TLS without a certificate source',
      ['tls.enabled=true'],
      /tls\.enabled needs tls\.certManager\.enabled=true or tls\.existingSecret/,
    ],
    [
      'cert-manager without an issuer',
      ['tls.enabled=true', 'tls.certManager.enabled=true'],
      /issuerRef\.name/,
    ],
    [
      'two operators without leader election',
      ['operator.leaderElection.enabled=false'],
      /needs operator\.leaderElection\.enabled=true/,
    ],
    [
      'agent mTLS without TLS on the broker',
      ['agent.mtls.enabled=true'],
      /agent\.mtls\.enabled needs tls\.enabled=true and tls\.internal=true/,
    ],
    [
      'agent mTLS when agents use the plaintext port',
      ['agent.mtls.enabled=true', 'tls.enabled=true', 'tls.existingSecret=t', 'tls.internal=false'],
      /agent\.mtls\.enabled needs tls\.enabled=true and tls\.internal=true/,
    ],
    [
      'agent mTLS together with the legacy agent key',
      ['agent.mtls.enabled=true', 'tls.enabled=true', 'tls.existingSecret=t', 'auth.agentKey.enabled=true'],
      /turn the legacy agent key off/,
    ],
    [
      'the agent and the operator on one ServiceAccount',
      [
        'agent.serviceAccount.create=false',
        'operator.serviceAccount.create=false',
        'operator.rbac.create=false',
      ],
      /agent and operator must use different ServiceAccounts/,
    ],
    [
      'persistence with several brokers',
      ['broker.persistence.enabled=true', 'broker.replicaCount=2', 'broker.redis.enabled=true'],
      /persistence\.enabled is for the single-replica/,
    ],
  ];
  for (const [label, set, message] of combos) {
    it(`the chart refuses ${label} with a clear message`, async () => {
      await assert.rejects(templateText({ set }), message);
    });
  }
});
