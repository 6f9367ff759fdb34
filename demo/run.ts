// `cpuburst demo`: brings up devcluster, broker, operator and one agent (each its own process,
// loopback ports; agent and operator log in with ServiceAccount tokens bound to their pods, IoT
// users with passwords), runs pods with the in-process mini-kubelet on real cgroups, measures
// the service without and with a CpuBurstStrategy (and with a loaded node), prints the before/after
// table, writes demo-results.json and a PNG chart, restores, and leaves nothing behind.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../common/log.js';
import { peekTokenClaims } from '../common/token-file.js';
import { loadKubeConfig } from '../devcluster/kubelet/api.js';
import { type MiniKubelet, startMiniKubelet } from '../devcluster/kubelet/kubelet.js';
import { containerQuotaUs, parseCpuMilli } from '../devcluster/kubelet/resources.js';
import { writeCredentials } from './credentials.js';
import {
  AGENT_SERVICE_ACCOUNT,
  ensureIdentityPods,
  type IdentityPod,
  OPERATOR_SERVICE_ACCOUNT,
  TOKEN_PATH,
  TOKEN_VOLUME,
} from './identities.js';
import { CBS, demoKube } from './kube.js';
import {
  DEMO_NAMESPACE,
  DISABLE_ANNOTATION,
  ENABLE_ANNOTATION,
  NEIGHBOUR_POD,
  neighbourPod,
  SERVICE_POD,
  STRATEGY_NAME,
  servicePod,
  strategy,
} from './manifests.js';
import { type CgroupSnapshot, phaseResult, readLatencyLines, snapshot } from './measure.js';
import { type Observer, observeNode } from './observer.js';
import { gatherFacts, preflightProblem } from './preflight.js';
import { createProgress } from './progress.js';
import { haveSystemFonts, renderChartPng } from './results/chart.js';
import { formatTable } from './results/table.js';
import type { DemoResults, PhaseResult } from './results/types.js';
import { startBandwidthEmulator } from './simulate/emulator.js';
import {
  type Component,
  ComponentError,
  logField,
  logLines,
  nodeScriptArgv,
  REPO_ROOT,
  reapStaleStacks,
  startComponent,
  waitFor,
  waitForJsonFile,
} from './stack.js';

export interface DemoOptions {
  duration: number;
  warmup: number;
  json: boolean;
  keepRunning: boolean;
  simulate: boolean;
  neighbour: boolean;
  rate: number;
  workMs: number;
  cpuLimit: string;
  outDir: string;
  workDir: string;
  cgroupRoot: string;
  parentBase: string;
  kubectl: string;
  nodeName: string;
  /** Seconds to wait for the service's start-up backlog to drain (0 = none). */
  settleTimeout: number;
  /** The demo strategy's knobs (phase 2). */
  cpuBurstPercent: number;
  cfsQuotaBurstPercent: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function findKubectl(flag: string): string | null {
  if (flag) return flag;
  const local = path.join(REPO_ROOT, '.tools', 'kubectl');
  return fs.existsSync(local) ? local : null;
}

export async function runDemo(o: DemoOptions): Promise<number> {
  const out = (s: string) => process.stdout.write(s);
  const say = (s: string) => {
    if (!o.json) process.stderr.write(`${s}\n`);
  };
  if (!o.simulate) {
    const problem = preflightProblem(gatherFacts(o.cgroupRoot), o.cgroupRoot);
    if (problem) {
      process.stderr.write(`${problem}\n`);
      return 1;
    }
  }
  const reaped = reapStaleStacks(os.tmpdir());
  if (reaped.length > 0)
    say(`▶ stopped ${reaped.length} component process(es) left by an earlier demo killed with -9`);
  const work = o.workDir || fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-demo-'));
  const logDir = path.join(work, 'logs');
  // --simulate: a plain directory stands in for /sys/fs/cgroup; the emulator enforces its values.
  const cgroupRoot = o.simulate ? path.join(work, 'cgroupfs') : o.cgroupRoot;
  if (o.simulate)
    for (const ctl of ['cpu', 'cpuacct']) fs.mkdirSync(path.join(cgroupRoot, ctl), { recursive: true });
  let emulator: { stop(): void } | undefined;
  fs.mkdirSync(logDir, { recursive: true });
  const progress = createProgress(!o.json);
  const log = createLogger({ component: 'demo', silent: true });
  const components: Component[] = [];
  let kubelet: MiniKubelet | undefined;
  let observer: Observer | undefined;
  const pipeline: Record<string, unknown> = { workDir: work };
  let cleaned = false;

  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await observer?.close().catch(() => {});
    // Agent and operator stop first so nothing writes cgroups while the kubelet kills the pods and
    // removes every cgroup (the restore itself was checked before, with the strategy deleted);
    // the broker and the API go last.
    const stop = (name: string) =>
      components
        .find((x) => x.name === name)
        ?.stop()
        .catch(() => {});
    await stop('agent');
    await stop('operator');
    emulator?.stop();
    if (kubelet) {
      await kubelet.stop().catch(() => {});
      const parent = kubelet.cgroups.parent;
      pipeline.cgroupsLeftAfterExit = ['cpu', 'cpuacct']
        .map((ctl) => path.join(cgroupRoot, ctl, parent))
        .filter((d) => fs.existsSync(d));
    }
    await stop('broker');
    await stop('devcluster');
  };
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted = true;
    process.stderr.write(`\ncpuburst demo: ${sig}: stopping the stack and removing every cgroup…\n`);
    void cleanup().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // A crash of the demo itself must not leave the components running (the kubelet's own exit hook
  // removes the cgroups and container processes).
  const onExit = () => {
    for (const c of components)
      if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGTERM');
  };
  process.on('exit', onExit);

  try {
    // 1. The API emulator.
    const kubeconfigFile = path.join(work, 'kubeconfig');
    const devPorts = path.join(work, 'devcluster.ports.json');
    say(`▶ starting devcluster (work dir ${work})`);
    const dev = startComponent(
      'devcluster',
      ['devcluster', '--port', '0', '--kubeconfig', kubeconfigFile, '--ports-file', devPorts],
      logDir,
    );
    components.push(dev);
    pipeline.devcluster = await waitForJsonFile(dev, devPorts, 'starting devcluster');
    await waitFor('waiting for the devcluster kubeconfig', () => fs.existsSync(kubeconfigFile), {
      components: [dev],
    });
    const kc = loadKubeConfig(kubeconfigFile);
    const kubectl = findKubectl(o.kubectl);
    const kube = demoKube({
      kc,
      kubeconfigFile,
      kubectl,
      manifestDir: work,
      onCommand: (c) => say(`  $ ${c}`),
    });

    // 2. The broker: IoT users with passwords; the control plane only with ServiceAccount tokens,
    // verified against devcluster (OIDC discovery + JWKS, the bound pod read through the API).
    const creds = writeCredentials(path.join(work, 'credentials'));
    const brokerPortsFile = path.join(work, 'broker.ports.json');
    const saAgent = `${DEMO_NAMESPACE}/${AGENT_SERVICE_ACCOUNT}`;
    const saOperator = `${DEMO_NAMESPACE}/${OPERATOR_SERVICE_ACCOUNT}`;
    say(`▶ starting broker (auth: k8s-token for ${saAgent} and ${saOperator}, password for IoT users)`);
    const broker = startComponent(
      'broker',
      [
        'broker',
        '--host',
        '127.0.0.1',
        '--mqtt-port',
        '0',
        '--http-port',
        '0',
        '--ws-port',
        '-1',
        '--tls-port',
        '-1',
        '--users-file',
        creds.usersFile,
        '--auth-chain',
        'k8s-token,password',
        '--kubeconfig',
        kubeconfigFile,
        '--sa-agent',
        saAgent,
        '--sa-operator',
        saOperator,
        '--acl',
        creds.aclFile,
        '--data-dir',
        path.join(work, 'broker-data'),
        '--ports-file',
        brokerPortsFile,
      ],
      logDir,
    );
    components.push(broker);
    const brokerPorts = await waitForJsonFile<{ mqttPort: number; httpPort: number }>(
      broker,
      brokerPortsFile,
      'starting the broker',
    );
    const mqttUrl = `mqtt://127.0.0.1:${brokerPorts.mqttPort}`;
    pipeline.broker = brokerPorts;

    // 3. The CRD.
    say('▶ installing the CpuBurstStrategy CRD');
    const crd = (await import('yaml')).parse(
      fs.readFileSync(path.join(REPO_ROOT, 'crds', 'cpuburststrategies.cpuburst.io.yaml'), 'utf8'),
    );
    await kube.apply('crd', crd);
    await waitFor(
      'waiting for the CRD to be served',
      () => kube.crdEstablished(`${CBS.plural}.${CBS.group}`),
      {
        components: [dev],
      },
    );
    await kube.ensureNamespace(DEMO_NAMESPACE);

    // 4. The node: mini-kubelet in-process on real cgroups.
    say(`▶ starting the mini-kubelet for node ${o.nodeName}`);
    kubelet = await startMiniKubelet({
      kubeconfig: kc,
      node: o.nodeName,
      cgroupRoot,
      parentBase: o.parentBase,
      fake: o.simulate,
      logDir: path.join(logDir, 'containers'),
      log: createLogger({ component: 'kubelet', node: o.nodeName, silent: true }),
      podsDir: path.join(work, 'kubelet-pods'),
    });
    await kubelet.ready;
    pipeline.cgroupParent = kubelet.cgroups.parent;
    if (o.simulate) {
      const k = kubelet;
      emulator = startBandwidthEmulator({ root: cgroupRoot, pods: () => k.pods() });
    }

    // 5. Identities: ServiceAccounts and a pod of each on the node with a projected token volume; the
    // mini-kubelet writes the pod-bound token (TokenRequest, audience cpuburst-broker) into the pod's
    // volume dir and rewrites it at 80 % of its lifetime, as the kubelet does for a DaemonSet pod.
    const idPods = await ensureIdentityPods({ kc, namespace: DEMO_NAMESPACE, node: o.nodeName });
    const k8 = kubelet;
    const ids = await waitFor(
      'waiting for the kubelet to project the ServiceAccount tokens',
      () => {
        const running = k8.pods();
        const bound = (p: IdentityPod) => {
          const dir = running.find((r) => r.uid === p.pod.uid)?.volumes[TOKEN_VOLUME];
          const tokenFile = dir && path.join(dir, TOKEN_PATH);
          if (!tokenFile || !fs.existsSync(tokenFile)) return null;
          const claims = peekTokenClaims(fs.readFileSync(tokenFile, 'utf8').trim());
          return { ...p, tokenFile, expiresAt: new Date(claims?.expiresAt ?? 0) };
        };
        const agent = bound(idPods.agent);
        const operator = bound(idPods.operator);
        return agent && operator ? { agent, operator } : null;
      },
      { components: components.slice() },
    );
    pipeline.identities = Object.fromEntries(
      (['agent', 'operator'] as const).map((k) => [
        k,
        {
          identity: ids[k].identity,
          serviceAccount: ids[k].serviceAccount,
          pod: ids[k].pod.name,
          tokenFile: ids[k].tokenFile,
          tokenExpiresAt: ids[k].expiresAt.toISOString(),
        },
      ]),
    );
    for (const k of ['agent', 'operator'] as const)
      say(
        `  ${k}: ServiceAccount ${ids[k].serviceAccount}, token bound to pod ${ids[k].pod.name} (audience cpuburst-broker, expires ${ids[k].expiresAt.toISOString()}), projected by the kubelet → ${ids[k].tokenFile}`,
      );

    // 6. Operator and agent.
    say('▶ starting operator and agent');
    const operator = startComponent(
      'operator',
      [
        'operator',
        '--kubeconfig',
        kubeconfigFile,
        '--mqtt-url',
        mqttUrl,
        '--mqtt-token-file',
        ids.operator.tokenFile,
        '--config-map-namespace',
        DEMO_NAMESPACE,
        '--leader-elect=false',
        '--probe-port',
        '0',
        '--metrics-port',
        '0',
      ],
      logDir,
    );
    components.push(operator);
    const agent = startComponent(
      'agent',
      [
        'agent',
        '--node-name',
        o.nodeName,
        '--cgroup-root',
        cgroupRoot,
        '--kubepods-dir',
        kubelet.cgroups.kubepodsRel,
        '--state-dir',
        path.join(work, 'agent-state'),
        '--mqtt-url',
        mqttUrl,
        '--mqtt-token-file',
        ids.agent.tokenFile,
        '--interval',
        '1000',
        '--metrics-port',
        '0',
      ],
      logDir,
    );
    components.push(agent);
    const all = () => components.filter((c) => c.name !== 'kubelet');
    observer = await waitFor(
      'connecting to the broker as an observer',
      () => observeNode(mqttUrl, ids.operator.tokenFile, o.nodeName),
      {
        components: all(),
      },
    );

    // Metrics endpoints (the components log the ports they picked).
    const metrics = await waitFor(
      'waiting for the operator and agent metrics ports',
      () => {
        const op = logField(operator, 'Started operator', 'metricsPort');
        const ag = logField(agent, 'Serving metrics', 'port');
        return op && ag
          ? { operator: `http://127.0.0.1:${op}/metrics`, agent: `http://127.0.0.1:${ag}/metrics` }
          : null;
      },
      { components: all(), timeoutMs: 30000 },
    ).catch(() => ({ operator: `see ${operator.logFile}`, agent: `see ${agent.logFile}` }));
    pipeline.metrics = { ...metrics, broker: `http://127.0.0.1:${brokerPorts.httpPort}/metrics` };

    // Who the broker says they are: derived from the tokens, never from the client id or username.
    const brokerSaw = await waitFor(
      'waiting for the broker to authenticate the agent and the operator',
      () => {
        const seen = logLines(broker, 'Client connected');
        const of = (prefix: string) => seen.find((l) => String(l.clientId).startsWith(prefix));
        const a = of('cpuburst-agent-');
        const op = of('cpuburst-operator-');
        return a && op
          ? {
              agent: { clientId: a.clientId, identity: a.identity, by: a.by },
              operator: { clientId: op.clientId, identity: op.identity, by: op.by },
            }
          : null;
      },
      { components: all(), timeoutMs: 60000 },
    );
    pipeline.brokerIdentities = brokerSaw;
    for (const k of ['agent', 'operator'] as const)
      say(
        `  broker: ${brokerSaw[k].clientId} authenticated as ${brokerSaw[k].identity} by ${brokerSaw[k].by}`,
      );

    // 7. The service pod.
    const latencyFile = path.join(work, 'latency.jsonl');
    const limitMilli = parseCpuMilli(o.cpuLimit);
    say(
      `▶ creating pod ${DEMO_NAMESPACE}/${SERVICE_POD} (CPU limit ${o.cpuLimit}, ${o.rate} req/s × ${o.workMs} ms CPU)`,
    );
    await kube.createPod(
      servicePod({
        node: o.nodeName,
        cpuLimit: o.cpuLimit,
        argv: nodeScriptArgv('workload/main', [
          '--rate',
          String(o.rate),
          '--work-ms',
          String(o.workMs),
          '--out',
          latencyFile,
        ]),
        cwd: REPO_ROOT,
      }),
    );
    const pod = await waitFor(
      'waiting for the service pod to run',
      async () => {
        const p = await kube.getPod(DEMO_NAMESPACE, SERVICE_POD);
        return p?.status?.phase === 'Running' && p.status.containerStatuses?.[0]?.containerID ? p : null;
      },
      { components: all() },
    );
    const uid = pod.metadata!.uid!;
    const info = kubelet.pods().find((p) => p.uid === uid)!;
    const containerRel = info.containers[0]!.cgroup;
    const baseQuota = containerQuotaUs(limitMilli);
    // Kernel burst = limit × cpuBurstPercent (period 100 ms); mainline refuses burst > quota, so the
    // agent keeps it at or below the quota in force.
    const rawBurst = Math.floor((limitMilli * 100 * o.cpuBurstPercent) / 100);
    const plannedBurstFor = (quotaUs: number) => Math.min(rawBurst, Math.max(quotaUs, baseQuota));
    pipeline.pod = { uid, qosClass: pod.status?.qosClass, cgroup: containerRel, baseQuotaUs: baseQuota };
    // Where everything is, for the user (--keep-running) and for tests driving the live stack.
    // Written atomically (tmp + rename): tests and users poll for it.
    fs.writeFileSync(
      path.join(work, 'stack.json.tmp'),
      JSON.stringify(
        {
          kubeconfig: kubeconfigFile,
          mqttUrl,
          broker: brokerPorts,
          node: o.nodeName,
          namespace: DEMO_NAMESPACE,
          pod: SERVICE_POD,
          podUid: uid,
          cgroupRoot,
          containerCgroup: containerRel,
          baseQuotaUs: baseQuota,
          credentials: path.dirname(creds.usersFile),
          identities: pipeline.identities,
          metrics: pipeline.metrics,
          pids: Object.fromEntries([...components.map((c) => [c.name, c.child.pid]), ['demo', process.pid]]),
          containerPids: info.containers.map((c) => c.pid),
        },
        null,
        2,
      ),
    );
    fs.renameSync(path.join(work, 'stack.json.tmp'), path.join(work, 'stack.json'));
    await waitFor('waiting for the first latency report', () => readLatencyLines(latencyFile).length > 0, {
      components: all(),
    });

    // Start-up (module loading, JIT) runs under the limit too and leaves a backlog; phase 1 starts
    // once the service has drained it (two consecutive seconds with a sane p99), or after --settle-timeout.
    if (o.settleTimeout > 0) {
      say('▶ waiting for the service to reach a steady state');
      await waitFor(
        'waiting for the service to reach a steady state',
        () => {
          const lines = readLatencyLines(latencyFile).slice(-2);
          return lines.length === 2 && lines.every((l) => Math.max(0, ...l.latenciesMs) < o.workMs * 15);
        },
        { components: all(), timeoutMs: o.settleTimeout * 1000 },
      ).catch(() =>
        say(
          `  (the service did not settle within ${o.settleTimeout} s; the machine is probably busy — measuring anyway)`,
        ),
      );
    }

    const phases: PhaseResult[] = [];
    const measurePhase = async (name: string, description: string) => {
      const bar = progress.phase(`${name}: warm-up`, o.warmup);
      for (let s = 0; s < o.warmup; s++) {
        bar.tick(s);
        await sleep(1000);
      }
      bar.done();
      const m = progress.phase(`${name}: measuring`, o.duration);
      const a: CgroupSnapshot = snapshot(cgroupRoot, containerRel);
      const end = a.atMs + o.duration * 1000;
      while (Date.now() < end) {
        m.tick((Date.now() - a.atMs) / 1000);
        await sleep(Math.min(500, end - Date.now()));
      }
      await sleep(1100); // the workload flushes its latency lines once a second
      const b = snapshot(cgroupRoot, containerRel, end);
      m.done();
      const r = phaseResult(name, description, a, b, readLatencyLines(latencyFile));
      r.nodeState = observer?.status?.nodeState ?? 'unknown';
      phases.push(r);
      say(
        `  ${name}: p99 ${r.latencyMs.p99} ms, throttled ${(r.throttling.throttledRatio * 100).toFixed(1)}% of periods, quota ${r.cgroup.quotaUs} µs, burst ${r.cgroup.burstUs} µs, node ${r.nodeState}`,
      );
      return r;
    };

    // Phase 1: no strategy.
    await measurePhase('1 no burst', 'no CpuBurstStrategy: the kubelet quota only');

    // Phase 2: a CpuBurstStrategy (policy auto) + the pod annotation.
    say('▶ phase 2: applying a CpuBurstStrategy (policy auto) and annotating the pod');
    await kube.apply(
      'strategy',
      strategy({ cpuBurstPercent: o.cpuBurstPercent, cfsQuotaBurstPercent: o.cfsQuotaBurstPercent }),
    );
    await kube.annotatePod(DEMO_NAMESPACE, SERVICE_POD, ENABLE_ANNOTATION);
    const ready = await waitFor(
      'waiting for the CpuBurstStrategy to become Ready',
      async () => {
        const s = await kube.getStrategy(STRATEGY_NAME);
        const c = (s?.status?.conditions ?? []).find((x: any) => x.type === 'Ready');
        return c?.status === 'True' ? s : null;
      },
      { components: all() },
    );
    pipeline.strategy = { ready: true, status: ready.status };
    const ack = await waitFor(
      'waiting for the agent to ack a decision for the pod',
      () => {
        const d = observer!.decisions;
        if (!d?.pods.some((p) => p.uid === uid)) return null;
        return observer!.acks.find((a) => a.version >= d.version && a.result === 'Applied') ?? null;
      },
      { components: all() },
    );
    const decision = observer.decisions!.pods.find((p) => p.uid === uid)!;
    const applied = await waitFor(
      'waiting for the planned burst in the container cgroup',
      () => {
        const s = snapshot(cgroupRoot, containerRel);
        return s.burstUs === plannedBurstFor(s.quotaUs) ? s : null;
      },
      { components: all(), timeoutMs: 30000 },
    );
    pipeline.decision = { version: observer.decisions!.version, pod: decision };
    pipeline.ack = ack;
    pipeline.applied = {
      plannedBurstUs: plannedBurstFor(applied.quotaUs),
      burstUs: applied.burstUs,
      quotaUs: applied.quotaUs,
      quotaCeilingUs: Math.floor((baseQuota * o.cfsQuotaBurstPercent) / 100),
      asPlanned: applied.burstUs === plannedBurstFor(applied.quotaUs) && applied.quotaUs >= baseQuota,
    };
    await measurePhase('2 burst (auto)', 'CpuBurstStrategy policy auto: kernel burst + dynamic quota');

    // Phase 3: a neighbour loads the node; share-pool protection scales the quota back.
    if (o.neighbour) {
      const loops = Math.max(1, Math.round(os.cpus().length * 0.6));
      say(`▶ phase 3: neighbour pod with ${loops} busy loop(s) loads the node`);
      await kube.createPod(neighbourPod(o.nodeName, loops));
      await waitFor(
        'waiting for the neighbour pod to run',
        async () => (await kube.getPod(DEMO_NAMESPACE, NEIGHBOUR_POD))?.status?.phase === 'Running',
        { components: all() },
      );
      const r = await measurePhase('3 busy node', 'same strategy, neighbour pod loading the node');
      pipeline.nodeStateUnderLoad = observer.status?.nodeState ?? null;
      pipeline.quotaUnderLoadUs = r.cgroup.quotaUs;
      say(
        `  node state reported by the agent: ${pipeline.nodeStateUnderLoad ?? 'unknown'}; the dynamic quota is held at ${r.cgroup.quotaUs} µs (limit ${baseQuota} µs)`,
      );
      await kube.deletePod(DEMO_NAMESPACE, NEIGHBOUR_POD);
    }

    // Restore: delete the strategy and the annotation; the agent puts the kubelet's values back.
    say('▶ restoring: deleting the strategy and the annotation');
    await kube.annotatePod(DEMO_NAMESPACE, SERVICE_POD, DISABLE_ANNOTATION);
    await kube.deleteStrategy(STRATEGY_NAME);
    const restored = await waitFor(
      'waiting for the agent to restore the kubelet quota',
      () => {
        const s = snapshot(cgroupRoot, containerRel);
        return s.quotaUs === baseQuota && s.burstUs === 0 ? s : null;
      },
      { components: all(), timeoutMs: 30000 },
    ).catch((err: Error) => {
      pipeline.restoreError = err.message;
      return null;
    });
    pipeline.restoredBeforeExit = restored !== null;

    const results: DemoResults = {
      startedAt: new Date().toISOString(),
      machine: { cpus: os.cpus().length, kernel: os.release(), mode: o.simulate ? 'simulate' : 'real' },
      workload: { ratePerSecond: o.rate, workMs: o.workMs, cpuLimit: o.cpuLimit },
      phases,
      pipeline,
    };
    pipeline.kubectlCommands = kube.commands;
    pipeline.changesVia = kube.via;

    if (o.keepRunning) {
      printKeepRunning(o, {
        kubeconfigFile,
        mqttUrl,
        brokerPorts,
        creds,
        operatorTokenFile: ids.operator.tokenFile,
        work,
        logDir,
        metrics: pipeline.metrics as Record<string, string>,
      });
      await new Promise<void>((resolve) => {
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
    }

    await cleanup();
    fs.mkdirSync(o.outDir, { recursive: true });
    const jsonFile = path.join(o.outDir, 'demo-results.json');
    fs.writeFileSync(jsonFile, `${JSON.stringify(results, null, 2)}\n`);
    if (!haveSystemFonts())
      say('  (no system fonts found: the chart has no labels; install fonts-dejavu-core)');
    const { png } = await renderChartPng(results);
    const pngFile = path.join(o.outDir, 'demo-results.png');
    fs.writeFileSync(pngFile, png);
    if (o.json) out(`${JSON.stringify(results)}\n`);
    else {
      out(`\n${formatTable(results)}\n`);
      if (o.simulate)
        out(
          'Simulated cgroups: the CFS quota/burst was enforced from user space (SIGSTOP/SIGCONT) on a busy or\nunconfined process, so the figures are indicative only; every component ran for real.\n\n',
        );
      out(`Results: ${jsonFile}\nChart:   ${pngFile}\nLogs:    ${logDir}\n`);
    }
    log.info('Demo finished');
    return 0;
  } catch (err) {
    if (interrupted) return 130;
    process.stderr.write(
      `${err instanceof ComponentError ? err.message : `cpuburst demo: ${(err as Error).stack}`}\n`,
    );
    process.stderr.write(`(component logs: ${logDir})\n`);
    await cleanup();
    return 1;
  } finally {
    process.removeListener('exit', onExit);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

function printKeepRunning(
  o: DemoOptions,
  x: {
    kubeconfigFile: string;
    mqttUrl: string;
    brokerPorts: { mqttPort: number; httpPort: number };
    creds: { iot: Record<string, string> };
    operatorTokenFile: string;
    work: string;
    logDir: string;
    metrics: Record<string, string>;
  },
): void {
  const lines = [
    '',
    'The stack is still running (Ctrl-C stops it and removes every cgroup):',
    `  kubeconfig:   export KUBECONFIG=${x.kubeconfigFile}`,
    `                ${path.join(REPO_ROOT, '.tools', 'kubectl')} get cbs,pods -A`,
    `  broker:       ${x.mqttUrl}   HTTP API: http://127.0.0.1:${x.brokerPorts.httpPort}/`,
    `  metrics:      broker ${x.metrics.broker}`,
    `                operator ${x.metrics.operator}`,
    `                agent ${x.metrics.agent}`,
    `  decisions:    mosquitto_sub -h 127.0.0.1 -p ${x.brokerPorts.mqttPort} -u operator -P "$(cat ${x.operatorTokenFile})" -t 'cpuburst/v1/nodes/${o.nodeName}/#' -v`,
    '                (the operator ServiceAccount token the kubelet projects: the broker derives the identity from it; rewritten every 8 min)',
    `  IoT user:     mosquitto_sub -h 127.0.0.1 -p ${x.brokerPorts.mqttPort} -u viewer -P '${x.creds.iot.viewer}' -t 'devices/#' -v`,
    `  logs:         ${x.logDir}`,
    `  stack:        ${path.join(x.work, 'stack.json')}`,
    '',
  ];
  process.stderr.write(lines.join('\n'));
}
