// The uninstall path, end to end: render the chart, start the real agent with the DaemonSet's own
// container args (its mounts simulated by temp dirs: a fake cgroupfs for /host/sys/fs/cgroup, a state
// dir for /var/lib/cpuburst, the rendered Secret for the agent key) so it raises burst on a pod, stop
// it (SIGTERM leaves cgroups as they are), then run the rendered preStop command and check every
// cgroup value is back to its original. (pods.test.ts runs the hook while the agent still runs, as
// the kubelet orders it.)
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_BURST_CONFIG, type DecisionDocument } from '../../protocol/index.js';
import { cliArgv } from '../support/cli.js';
import { FakeCgroupFs } from '../support/fake-cgroupfs.js';
import { find, type K8sObject, name, render } from './helm.js';
import { until } from './kubelet.js';

const NODE = 'node-a';
const POD_UID = '0f8c6a52-5c1e-4d5e-9a39-5e3c1b1f7a10';

function exited(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    const t = setTimeout(
      () => reject(new Error(`process ${child.pid} did not exit in ${timeoutMs} ms`)),
      timeoutMs,
    );
    child.once('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

describe('agent restore hook (DaemonSet preStop) on uninstall', () => {
  let fake: FakeCgroupFs;
  let dir: string;
  let ds: K8sObject;
  let objs: K8sObject[];
  const children: ChildProcess[] = [];

  before(async () => {
    objs = await render();
    ds = find(objs, 'DaemonSet', name('agent'));
    fake = FakeCgroupFs.create({ version: 1 });
    dir = mkdtempSync(path.join(os.tmpdir(), 'cpuburst-chart-hook-'));
  });

  after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    fake?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The container's view of the host: each volumeMount's path maps to a local directory. */
  function mounts(): Map<string, string> {
    const c = ds.spec.template.spec.containers[0];
    const vols = new Map<string, any>(ds.spec.template.spec.volumes.map((v: any) => [v.name, v]));
    const m = new Map<string, string>();
    for (const vm of c.volumeMounts) {
      const vol = vols.get(vm.name);
      let local: string;
      if (vol.hostPath?.path === '/sys/fs/cgroup') local = fake.root;
      else if (vol.secret) {
        // What the kubelet does: each key of the rendered Secret becomes a file.
        local = path.join(dir, vm.name);
        mkdirSync(local, { recursive: true });
        const secret = find(objs, 'Secret', vol.secret.secretName);
        for (const [k, v] of Object.entries<string>(secret.data)) {
          writeFileSync(path.join(local, k), Buffer.from(v, 'base64'), { mode: 0o400 });
        }
      } else {
        local = path.join(dir, vm.name);
        mkdirSync(local, { recursive: true });
      }
      m.set(vm.mountPath, local);
    }
    m.set('/proc', fake.procRoot); // --proc-root=/proc: the host-wide /proc/stat
    return m;
  }

  /** argv of the container with mount paths translated and $(VAR) expanded like the kubelet does. */
  function translate(argv: string[], m: Map<string, string>, env: Record<string, string>, expand: boolean) {
    const byLength = [...m.entries()].sort((a, b) => b[0].length - a[0].length);
    return argv.map((a) => {
      const out = expand ? a.replace(/\$\((\w+)\)/g, (_, k: string) => env[k] ?? '') : a;
      // One mount per argument, the longest (most specific) match: a translated path is never re-mapped.
      for (const [from, to] of byLength) {
        const re = new RegExp(`(^|=)${from.replace(/\//g, '\\/')}(?=/|$)`);
        if (re.test(out)) return out.replace(re, `$1${to}`);
      }
      return out;
    });
  }

  it('the rendered preStop command restores every cgroup the agent changed', {
    timeout: 300_000,
  }, async (t) => {
    const { podDir, containerDirs } = fake.addPod({
      uid: POD_UID,
      qosClass: 'Burstable',
      containers: [{ id: 'containerd://abc123', quotaUs: 200000 }],
    });
    const c1 = containerDirs[0]!;
    const original = { pod: fake.values(podDir), c1: fake.values(c1) };
    assert.equal(original.c1.burstUs, 0);

    const m = mounts();
    const c = ds.spec.template.spec.containers[0];
    // Downward API: NODE_NAME from spec.nodeName.
    const env: Record<string, string> = {};
    for (const e of c.env) {
      if (e.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName') env[e.name] = NODE;
      else if (e.value !== undefined) env[e.name] = e.value;
    }
    assert.equal(env.NODE_NAME, NODE);

    // A decision the operator would publish: kernel burst at 100 % of the limit.
    const doc: DecisionDocument = {
      apiVersion: 'cpuburst.io/v1',
      kind: 'NodeDecisions',
      node: NODE,
      version: 1,
      generatedAt: new Date().toISOString(),
      operator: 'chart-test',
      nodeConfig: { sharePoolThresholdPercent: 50 },
      pods: [
        {
          uid: POD_UID,
          namespace: 'default',
          name: 'web-0',
          qosClass: 'Burstable',
          config: { ...DEFAULT_BURST_CONFIG, policy: 'cpuBurstOnly', cpuBurstPercent: 100 },
          source: 'chart-test',
          containers: [
            {
              name: 'web',
              containerID: 'containerd://abc123',
              cpuLimitMilli: 2000,
              kind: 'app',
              running: true,
            },
          ],
        },
      ],
      excludedPods: [],
    };
    const decisions = path.join(dir, 'decisions.json');
    writeFileSync(decisions, JSON.stringify(doc));

    // 1. The agent as the DaemonSet starts it (the broker is unreachable here; decisions come from a
    //    file, and the metrics port is made ephemeral).
    const args = translate(c.args, m, env, true);
    const [node, pre] = cliArgv([...args, `--decisions-file=${decisions}`, '--metrics-port=0']);
    const agent = spawn(node, pre, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(agent);
    let agentLog = '';
    agent.stdout!.on('data', (d) => {
      agentLog += d;
    });
    agent.stderr!.on('data', (d) => {
      agentLog += d;
    });
    agent.once('exit', (code, signal) => {
      agentLog += `\n[agent exited with ${code ?? signal}]`;
    });
    await until(
      () => `the agent to raise burst (log: ${agentLog.slice(-3000)})`,
      () => fake.values(c1).burstUs! > 0 || agent.exitCode !== null,
    );
    assert.equal(
      fake.values(c1).burstUs,
      200000,
      `burst = 100 % of the 2-core quota; agent log: ${agentLog}`,
    );
    // The burst is visible while the first round is still running, before the agent has its SIGTERM
    // handler; /readyz answers only after that round (as a kubelet would wait for readiness).
    await until(
      () => `the agent ready (log: ${agentLog.slice(-2000)})`,
      async () => {
        const port = /"message":"Serving metrics and probes"[^\n]*"port":(\d+)/.exec(agentLog)?.[1];
        if (!port) return agent.exitCode !== null;
        const r = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null);
        return r?.status === 200 || agent.exitCode !== null;
      },
    );

    // 2. The kubelet runs preStop before SIGTERM; here we stop the agent first to prove the hook needs
    //    nothing from the running process (the state dir and cgroup mount are enough).
    agent.kill('SIGTERM');
    assert.equal(await exited(agent, 15_000), 0, agentLog.slice(-2000));
    assert.equal(fake.values(c1).burstUs, 200000, 'SIGTERM alone leaves the cgroups as they are');

    // 3. The preStop exec hook: no $(VAR) expansion for exec hooks, so run its argv verbatim
    //    (mount paths translated), with the container's environment.
    const hook: string[] = c.lifecycle.preStop.exec.command;
    assert.equal(hook[0], 'cpuburst');
    const [hnode, hargs] = cliArgv(translate(hook.slice(1), m, env, false));
    const started = Date.now();
    const h = spawn(hnode, hargs, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(h);
    let hookLog = '';
    h.stdout!.on('data', (d) => {
      hookLog += d;
    });
    h.stderr!.on('data', (d) => {
      hookLog += d;
    });
    const grace = ds.spec.template.spec.terminationGracePeriodSeconds * 1000;
    assert.equal(await exited(h, grace), 0, hookLog);
    const tookMs = Date.now() - started;
    assert.ok(tookMs < grace, `restore took ${tookMs} ms, more than the grace period`);
    assert.match(hookLog, /Restored all original cgroup values/);

    assert.deepEqual(fake.values(c1), original.c1);
    assert.deepEqual(fake.values(podDir), original.pod);
    t.diagnostic(`preStop restore-all took ${tookMs} ms (grace period ${grace} ms)`);
  });
});
