// The rendered chart, run as a kubelet would run it: the broker, operator and agent processes start
// from their rendered container args and env, with their volumes materialised from the rendered
// Secrets and projected ServiceAccount tokens (devcluster's TokenRequest, bound to each pod),
// hostPaths on a fake cgroupfs, the Service DNS name pointing at loopback. The broker and the
// operator reach devcluster with their own ServiceAccount's token, so the chart's RBAC is what lets
// them work. Their probes and metrics answer on the rendered ports, the broker derives `operator` and
// `agent:<node>` from the tokens, an annotated pod gets its burst written through the whole chain,
// and the agent's token reaches nothing of another node; then `kubectl delete` + the preStop hook
// put the cgroup back.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { identities, topics } from '../../protocol/index.js';
import { cliArgv } from '../support/cli.js';
import {
  find,
  type K8sObject,
  NAMESPACE,
  name,
  parseManifests,
  portSets,
  run,
  templateText,
} from './helm.js';
import {
  brokerLogins,
  ChartBed,
  freePorts,
  httpGet,
  logEntries,
  NODE,
  probe,
  stop,
  translateArg,
  until,
} from './kubelet.js';

const CONTAINER_ID = '4b1d0c7e9a2f';
/** The agent's token lifetime here (the chart's 3600 s would not rotate within a test). */
const AGENT_TOKEN_SECONDS = 30;

const jti = (token: string): string =>
  JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti;

describe('rendered pods run as the kubelet would run them', { timeout: 400_000 }, () => {
  let bed: ChartBed;
  let objs: K8sObject[];
  let podUid = '';
  let firstAgentJti = '';
  const tokenDir = (key: string) =>
    bed.procs.get(key)!.mounts.find(([m]) => m === '/var/run/secrets/cpuburst')![1];

  function startPod(component: string, workload: K8sObject, extraArgs: string[], inCluster = false) {
    return bed.start(component, workload, extraArgs, { podName: `${workload.metadata.name}-0`, inCluster });
  }

  before(async () => {
    bed = new ChartBed('cpuburst-chart-pods-');
    await bed.boot(1, AGENT_TOKEN_SECONDS);
    const manifests = await templateText({ set: portSets(await freePorts(6)) });
    objs = parseManifests(manifests);
    await bed.install(objs, manifests);
  });

  after(async () => {
    await bed?.close();
  });

  it('broker, operator and agent start from the rendered args and turn ready', async () => {
    // Loopback instead of a pod IP: the test machine's other interfaces stay closed. Broker and
    // operator: their in-cluster ServiceAccount token becomes a kubeconfig for devcluster.
    await startPod('broker', find(objs, 'Deployment', name('broker')), ['--host=127.0.0.1'], true);
    await startPod('operator', find(objs, 'Deployment', name('operator')), [], true);
    // The same pod template with a short token lifetime, so the kubelet rotates it during the test.
    const agent = structuredClone(find(objs, 'DaemonSet', name('agent')));
    const vol = agent.spec.template.spec.volumes.find((v: any) => v.name === 'broker-token');
    vol.projected.sources[0].serviceAccountToken.expirationSeconds = AGENT_TOKEN_SECONDS;
    await startPod('agent', agent, []);
    firstAgentJti = jti(readFileSync(`${tokenDir('agent')}/token`, 'utf8'));
    for (const component of bed.procs.keys()) {
      const p = await bed.untilReady(component, 2500);
      assert.equal((await probe(p, 'livenessProbe')).status, 200, component);
    }
  });

  it('the ServiceMonitor ports serve cpuburst_ metrics, and the dashboard queries only metrics they export', async () => {
    const exported = new Set<string>();
    for (const [component, portName, prefix] of [
      ['operator', 'metrics', 'cpuburst_reconcile_'],
      ['agent', 'metrics', 'cpuburst_agent_'],
      ['broker', 'http', 'cpuburst_broker_'],
    ] as const) {
      const p = bed.procs.get(component)!;
      // Retried: on a loaded machine one scrape can time out, as Prometheus would simply retry.
      let r = { status: 0, body: '' };
      await until(
        () => `${component} /metrics (last status ${r.status})`,
        async () => {
          r = await httpGet(p.ports.get(portName)!, '/metrics');
          return r.status === 200;
        },
        30_000,
      );
      assert.ok(r.body.includes(prefix), `${component} /metrics has no ${prefix}*`);
      for (const m of r.body.matchAll(/^# TYPE (\S+) (\w+)/gm)) {
        exported.add(m[1]!);
        if (m[2] === 'histogram')
          for (const sfx of ['_bucket', '_sum', '_count']) exported.add(`${m[1]}${sfx}`);
      }
    }
    const dash = JSON.parse(find(objs, 'ConfigMap', name('dashboard')).data['cpuburst.json']);
    const queried = new Set<string>();
    for (const panel of dash.panels) {
      for (const t of panel.targets ?? [])
        for (const m of t.expr.matchAll(/\bcpuburst_[a-z_]+/g)) queried.add(m[0]);
    }
    assert.ok(queried.size >= 10);
    assert.deepEqual(
      [...queried].filter((q) => !exported.has(q)),
      [],
      'dashboard queries metrics nobody exports',
    );
  });

  it('an annotated pod gets its burst through operator → broker → agent, with the chart credentials', async () => {
    // The API server assigns the uid; the kubelet then creates the pod's cgroup under it.
    const { uid, containerDir: c0 } = bed.addBurstPod({
      name: 'web-0',
      cpuBurstPercent: 50,
      containerId: CONTAINER_ID,
      quotaUs: 200_000,
      container: { name: 'web', resources: { limits: { cpu: '2' }, requests: { cpu: '1' } } },
      startedAt: '2026-01-01T00:00:00Z',
    });
    podUid = uid;
    await until(
      () =>
        `burst on the pod's cgroup (operator: ${bed.procs.get('operator')!.log.slice(-1500)}\nagent: ${bed.procs.get('agent')!.log.slice(-1500)})`,
      () => (bed.fake.values(c0).burstUs ?? 0) > 0,
    );
    assert.equal(bed.fake.values(c0).burstUs, 100_000, '50 % of a 2-core quota');
  });

  it('the agent and the operator logged in with their projected tokens, not with passwords', async () => {
    for (const key of ['agent', 'operator']) {
      const p = bed.procs.get(key)!;
      const file = p.mounts.find(([m]) => m === '/var/run/secrets/cpuburst')![1];
      const token = readFileSync(`${file}/token`, 'utf8');
      const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
      assert.deepEqual(claims.aud, ['cpuburst-broker']);
      assert.equal(claims.sub, `system:serviceaccount:${NAMESPACE}:${name(key)}`);
      assert.equal(claims['kubernetes.io'].pod.uid, p.pod.uid, 'bound to the pod');
      if (key === 'agent') assert.equal(claims['kubernetes.io'].node.name, NODE);
    }
    const logins = brokerLogins(bed.procs.get('broker')!);
    assert.ok(logins.includes('operator by k8s-token'), logins.join(', '));
    assert.ok(logins.includes(`agent:${NODE} by k8s-token`), logins.join(', '));
    assert.deepEqual(
      logins.filter((l) => !l.endsWith('by k8s-token')),
      [],
    );
  });

  it("the agent's token reads its own node only, and publishes no decisions, whatever username it claims", async () => {
    // What the kubelet mounts for the agent: a token of its ServiceAccount bound to its pod (a fresh
    // one, so a loaded machine cannot make the short-lived mounted file expire mid-test).
    const { token } = await bed.requestToken(
      name('agent'),
      bed.procs.get('agent')!.pod,
      'cpuburst-broker',
      600,
    );
    const port = bed.procs.get('broker')!.ports.get('mqtt')!;
    const clients: MqttClient[] = [];
    const connect = (username: string) =>
      new Promise<MqttClient>((resolve, reject) => {
        const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
          protocolVersion: 5,
          username,
          password: token,
          clientId: `thief-${clients.length}`,
          reconnectPeriod: 0,
        });
        clients.push(c);
        c.once('connect', () => resolve(c));
        c.once('error', reject);
      });
    const granted = async (c: MqttClient, filter: string): Promise<number> => {
      try {
        return (await c.subscribeAsync(filter, { qos: 1 }))[0]!.qos;
      } catch (err) {
        const g = (err as { packet?: { granted?: Array<number | { qos: number }> } }).packet?.granted?.[0];
        if (g === undefined) throw err;
        return typeof g === 'number' ? g : g.qos;
      }
    };
    try {
      for (const username of [identities.agent('node-b'), identities.operator, 'anything']) {
        const c = await connect(username);
        assert.equal(await granted(c, topics.decisions(NODE)), 1, `${username}: own node`);
        assert.equal(await granted(c, topics.decisions('node-b')), 0x87, `${username}: node-b`);
        assert.equal(await granted(c, topics.allDecisionsFilter), 0x87, `${username}: every node`);
        await assert.rejects(c.publishAsync(topics.decisions(NODE), '{}', { qos: 1 }), /135|0x87|authori/i);
        await assert.rejects(c.publishAsync(topics.status('node-b'), '{}', { qos: 1 }), /135|0x87|authori/i);
      }
    } finally {
      for (const c of clients) c.end(true);
    }
  });

  it('the broker refuses tokens of other ServiceAccounts, for other audiences, and without its pod RBAC', async () => {
    const port = bed.procs.get('broker')!.ports.get('mqtt')!;
    const tryLogin = (token: string, mqttPort = port) =>
      new Promise<number | 'connected'>((resolve) => {
        const c = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, {
          protocolVersion: 5,
          username: identities.agent(NODE),
          password: token,
          reconnectPeriod: 0,
          connectTimeout: 20_000,
        });
        c.once('connect', () => {
          c.end(true);
          resolve('connected');
        });
        c.once('error', (err) => {
          c.end(true);
          resolve((err as { code?: number }).code ?? -1);
        });
      });
    const agentPod = bed.procs.get('agent')!.pod;
    // Another pod on the same node, on the namespace's `default` ServiceAccount: not the agent account.
    const stranger = bed.cluster.store.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'stranger', namespace: NAMESPACE },
      spec: { nodeName: NODE, serviceAccountName: 'default', containers: [{ name: 'c', image: 'busybox' }] },
    } as any);
    const other = await bed.requestToken(
      'default',
      { name: 'stranger', uid: stranger.metadata.uid },
      'cpuburst-broker',
      600,
    );
    assert.equal(await tryLogin(other.token), 0x87);
    // The agent's account, but a token for the API server (what automount would give): wrong audience.
    const apiToken = await bed.requestToken(name('agent'), agentPod, undefined, 600);
    assert.equal(await tryLogin(apiToken.token), 0x86);
    const metrics = (await httpGet(bed.procs.get('broker')!.ports.get('http')!, '/metrics')).body;
    for (const reason of ['serviceaccount_not_allowed', 'bad_audience'])
      assert.match(
        metrics,
        new RegExp(`cpuburst_broker_auth_refusals_total\\{[^}]*reason="${reason}"[^}]*\\} [1-9]`),
      );

    // The chart's pod read is load-bearing: a broker replica on an account with the chart's two
    // ClusterRoleBindings but without its Role cannot confirm the bound pod, so even the real agent
    // token is refused there (while the chart's broker takes it, above and below).
    const sa = 'broker-no-pod-read';
    const binding = (n: string, role: string) => ({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: `${sa}-${n}` },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
      subjects: [{ kind: 'ServiceAccount', name: sa, namespace: NAMESPACE }],
    });
    const file = path.join(bed.dir, `${sa}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa, namespace: NAMESPACE } },
          binding('delegator', 'system:auth-delegator'),
          binding('discovery', 'system:service-account-issuer-discovery'),
        ],
      }),
    );
    const applied = await bed.kubectl('apply', '-f', file);
    assert.equal(applied.code, 0, applied.stderr);
    const noPodRead = structuredClone(find(objs, 'Deployment', name('broker')));
    noPodRead.spec.template.spec.serviceAccountName = sa;
    const [mqtt2, http2] = await freePorts(2);
    await bed.start(
      'broker-no-pod-read',
      noPodRead,
      ['--host=127.0.0.1', `--mqtt-port=${mqtt2}`, `--http-port=${http2}`, '--ws-port=-1'],
      { podName: `${name('broker')}-no-pod-read`, inCluster: true },
    );
    const b2 = bed.procs.get('broker-no-pod-read')!;
    await until(
      () => `the second broker ready (${b2.log.slice(-1500)})`,
      async () => (await httpGet(http2!, '/readyz')).status === 200,
    );
    const { token: agentToken } = await bed.requestToken(name('agent'), agentPod, 'cpuburst-broker', 600);
    assert.equal(await tryLogin(agentToken, mqtt2), 0x86);
    assert.match(b2.log, /review_failed/);
    assert.equal(await tryLogin(agentToken), 'connected');
    await stop(b2.child);
  });

  it('the agent token rotates on disk before it expires; the agent logs in again with the new one, never refused', async () => {
    const broker = bed.procs.get('broker')!;
    const agent = bed.procs.get('agent')!;
    const agentLogins = () => brokerLogins(broker).filter((l) => l === `agent:${NODE} by k8s-token`).length;
    const current = () => jti(readFileSync(`${tokenDir('agent')}/token`, 'utf8'));
    // The kubelet rewrites the file at 80 % of the lifetime; the agent re-reads it on its next
    // (re)connect, at the latest when the broker closes the login as its token expires.
    await until(
      () => `rotation and re-login (broker: ${broker.log.slice(-1500)}\nagent: ${agent.log.slice(-800)})`,
      () => current() !== firstAgentJti && agentLogins() >= 2,
      AGENT_TOKEN_SECONDS * 3 * 1000,
    );
    assert.deepEqual(
      logEntries(broker, 'Refused connection').filter((j) => j.clientId === `cpuburst-agent-${NODE}`),
      [],
      'the agent never presented an expired token',
    );
    // Still working on the new token: a pod annotated now gets its burst.
    const { containerDir } = bed.addBurstPod({
      name: 'web-1',
      cpuBurstPercent: 20,
      containerId: 'a9e1b2c3d4',
      quotaUs: 100_000,
      container: { name: 'web', resources: { limits: { cpu: '1' } } },
    });
    await until(
      () => `burst after rotation (agent: ${agent.log.slice(-1500)})`,
      () => (bed.fake.values(containerDir).burstUs ?? 0) > 0,
    );
    assert.equal(bed.fake.values(containerDir).burstUs, 20_000);
  });

  it('the broker HTTP API takes the chart-generated API key and lists the operator and agent identities', async () => {
    const port = bed.procs.get('broker')!.ports.get('http')!;
    const key = Buffer.from(
      find(objs, 'Secret', name('broker-api-key')).data['api-key'],
      'base64',
    ).toString();
    const denied = await fetch(`http://127.0.0.1:${port}/api/v5/clients`);
    assert.equal(denied.status, 401);
    const res = await fetch(`http://127.0.0.1:${port}/api/v5/clients`, {
      headers: { authorization: `Bearer ${key}` },
    });
    assert.equal(res.status, 200);
    const body = await res.text();
    assert.match(body, /"operator"/);
    assert.match(body, new RegExp(`"agent:${NODE}"`));
  });

  it('`helm test` passes: the rendered test pod runs against the live broker', async () => {
    const testPod = find(objs, 'Pod', name('test'));
    assert.equal(testPod.metadata.annotations?.['helm.sh/hook'], 'test');
    const c = testPod.spec.containers[0];
    const env = Object.fromEntries(
      c.env.map((e: any) => [
        e.name,
        String(e.value).replace(`${name('broker-api')}.${NAMESPACE}.svc`, '127.0.0.1'),
      ]),
    );
    const [cmd, ...rest] = c.command as string[];
    assert.equal(cmd, 'node');
    const r = await run(process.execPath, [...rest, ...c.args], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /broker ready at .*; the HTTP API requires its key/);
  });

  it('uninstall: kubectl delete, then the preStop hook restores the cgroup', async () => {
    const r = await bed.kubectl('delete', '-n', NAMESPACE, '-f', bed.chartFile, '--wait=false');
    assert.equal(r.code, 0, r.stderr);
    const agent = bed.procs.get('agent')!;
    const c = agent.workload.spec.template.spec.containers[0];
    const hook: string[] = c.lifecycle.preStop.exec.command;
    // exec hooks get no $(VAR) expansion; only the mounts are translated.
    const argv = hook.slice(1).map((a) => translateArg(a, {}, agent.mounts, false));
    const [node, args] = cliArgv(argv);
    const h = spawn(node, args, {
      env: { ...process.env, NODE_NAME: NODE },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    h.stdout!.on('data', (d) => {
      out += d;
    });
    h.stderr!.on('data', (d) => {
      out += d;
    });
    const code = await new Promise<number | null>((resolve) => h.once('exit', resolve));
    assert.equal(code, 0, out);
    const c0 = bed.fake.containerDir(bed.fake.podDir('Burstable', podUid), `containerd://${CONTAINER_ID}`);
    assert.equal(bed.fake.values(c0).burstUs, 0, out);
  });

  it('the agent, still running between preStop and SIGTERM, does not write the burst back', async () => {
    const agent = bed.procs.get('agent')!;
    const c0 = bed.fake.containerDir(bed.fake.podDir('Burstable', podUid), `containerd://${CONTAINER_ID}`);
    // The kubelet sends SIGTERM only after preStop returns; a few control-loop rounds fit in between.
    await new Promise((r) => setTimeout(r, 3500));
    agent.child.kill('SIGTERM');
    await new Promise((r) => agent.child.once('exit', r));
    assert.equal(
      bed.fake.values(c0).burstUs,
      0,
      `burst written back after the hook: ${agent.log.slice(-1500)}`,
    );
  });
});
