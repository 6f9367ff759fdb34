// The rendered chart, run as a kubelet would run it: the broker, operator and agent processes start
// from their rendered container args and env, with their volumes materialised from the rendered
// Secrets (the chart's generated credentials and file formats), hostPaths on a fake cgroupfs, the
// Service DNS name pointing at loopback, and the operator on devcluster. Their probes and metrics
// answer on the rendered ports, and an annotated pod gets its burst written through the whole chain;
// then `kubectl delete` + the preStop hook put the cgroup back.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
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
import { ChartBed, freePorts, httpGet, NODE, probe, translateArg, until } from './kubelet.js';

const CONTAINER_ID = '4b1d0c7e9a2f';

describe('rendered pods run as the kubelet would run them', { timeout: 400_000 }, () => {
  let bed: ChartBed;
  let objs: K8sObject[];
  let podUid = '';

  function startPod(component: string, workload: K8sObject, extraArgs: string[]) {
    return bed.start(component, workload, extraArgs, { podName: `${workload.metadata.name}-0` });
  }

  before(async () => {
    bed = new ChartBed('cpuburst-chart-pods-');
    await bed.boot(1);
    const manifests = await templateText({ set: portSets(await freePorts(6)) });
    objs = parseManifests(manifests);
    await bed.install(objs, manifests);
  });

  after(async () => {
    await bed?.close();
  });

  it('broker, operator and agent start from the rendered args and turn ready', async () => {
    // Loopback instead of a pod IP: the test machine's other interfaces stay closed.
    startPod('broker', find(objs, 'Deployment', name('broker')), ['--host=127.0.0.1']);
    // An in-cluster ServiceAccount token becomes a kubeconfig for devcluster.
    startPod('operator', find(objs, 'Deployment', name('operator')), [`--kubeconfig=${bed.kubeconfig}`]);
    startPod('agent', find(objs, 'DaemonSet', name('agent')), []);
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
