// `cpuburst agent`: the node agent. Flags (each with an env twin) → cgroup layout + capability
// probe → ownership store → decision sources (file and/or MQTT) → control loop every --interval.
// SIGTERM stops the loop and leaves cgroups as they are: restore is explicit (--restore-all, or
// decisions that drop a pod / set policy none). --restore-all first quiesces an agent still running
// on the same state dir (state/quiesce.ts), so the loop cannot write its burst back afterwards.
import fs from 'node:fs';
import { FlagError, type FlagSpec, formatHelp, LOG_LEVEL_FLAG, parseFlags } from '../common/flags.js';
import { createLogger, type Logger } from '../common/log.js';
import { type ProbeServer, startProbeServer } from '../common/probes.js';
import {
  type Capabilities,
  deriveAgentPassword,
  isValidNodeName,
  PROTOCOL_API_VERSION,
} from '../protocol/index.js';
import { Agent } from './agent.js';
import { nodeFs } from './cgroup/fs.js';
import { type CgroupDriver, detectLayout, LayoutError } from './cgroup/layout.js';
import { probeCapabilities } from './cgroup/probe.js';
import { DecisionFile } from './decisions/file.js';
import { MqttLink } from './decisions/mqtt.js';
import { createAgentMetrics } from './metrics.js';
import { QuiesceGate, quiesceRunningAgent } from './state/quiesce.js';
import { StateStore } from './state/store.js';

export const AGENT_FLAGS: FlagSpec[] = [
  {
    name: 'node-name',
    env: 'NODE_NAME',
    type: 'string',
    help: 'Kubernetes node this agent runs on (required)',
  },
  {
    name: 'cgroup-root',
    env: 'CGROUP_ROOT',
    type: 'string',
    default: '/host/sys/fs/cgroup',
    help: 'cgroup mount root (v1: the dir holding cpu/ and cpuacct/; v2: the unified mount)',
  },
  {
    name: 'kubepods-dir',
    env: 'KUBEPODS_DIR',
    type: 'string',
    default: 'auto',
    help: 'kubepods cgroup relative to the cpu controller, e.g. kubepods, kubepods.slice or a custom kubelet cgroup root (auto = find kubepods.slice or kubepods)',
  },
  {
    name: 'cgroup-driver',
    env: 'CGROUP_DRIVER',
    type: 'string',
    default: 'auto',
    help: 'kubelet cgroup driver: auto | systemd | cgroupfs',
  },
  {
    name: 'state-dir',
    env: 'STATE_DIR',
    type: 'string',
    default: '/var/lib/cpuburst',
    help: 'where original values and the last applied decisions are persisted',
  },
  {
    name: 'proc-root',
    env: 'PROC_ROOT',
    type: 'string',
    default: '/proc',
    help: 'procfs root for /proc/stat',
  },
  {
    name: 'decisions-file',
    env: 'DECISIONS_FILE',
    type: 'string',
    help: 'DecisionDocument JSON file, re-read when it changes (malformed → logged, last good kept)',
  },
  {
    name: 'mqtt-url',
    env: 'MQTT_URL',
    type: 'string',
    help: 'broker URL (mqtt://, mqtts://, ws://, wss://)',
  },
  {
    name: 'mqtt-username',
    env: 'MQTT_USERNAME',
    type: 'string',
    help: 'MQTT username (default: the agent identity agent:<node>)',
  },
  { name: 'mqtt-password', env: 'MQTT_PASSWORD', type: 'string', help: 'MQTT password' },
  {
    name: 'mqtt-password-file',
    env: 'MQTT_PASSWORD_FILE',
    type: 'string',
    help: 'file holding the MQTT password',
  },
  {
    name: 'mqtt-agent-key-file',
    env: 'MQTT_AGENT_KEY_FILE',
    type: 'string',
    help: 'shared agent key; the password is derived per node (HMAC of agent:<node>)',
  },
  {
    name: 'mqtt-token-file',
    env: 'MQTT_TOKEN_FILE',
    type: 'string',
    help: 'projected ServiceAccount token (audience cpuburst-broker) sent as the MQTT password; re-read on every (re)connect, so a rotated token is picked up',
  },
  { name: 'mqtt-ca-file', env: 'MQTT_CA_FILE', type: 'string', help: 'CA bundle to verify the broker (TLS)' },
  {
    name: 'mqtt-tls-ca',
    env: 'MQTT_TLS_CA',
    type: 'string',
    help: 'CA bundle to verify the broker (same as --mqtt-ca-file); re-read on every (re)connect',
  },
  {
    name: 'mqtt-tls-cert',
    env: 'MQTT_TLS_CERT',
    type: 'string',
    help: 'client certificate for mTLS (CN agent:<node> or SAN URI cpuburst://agent/<node>); re-read on every (re)connect',
  },
  {
    name: 'mqtt-tls-key',
    env: 'MQTT_TLS_KEY',
    type: 'string',
    help: 'private key of --mqtt-tls-cert',
  },
  { name: 'interval', env: 'INTERVAL_MS', type: 'int', default: 1000, help: 'control-loop interval in ms' },
  {
    name: 'metrics-port',
    env: 'METRICS_PORT',
    type: 'int',
    default: 9316,
    help: '/metrics /healthz /readyz /debug/state port (0 = random, -1 = off)',
  },
  {
    name: 'restore-all',
    env: 'RESTORE_ALL',
    type: 'bool',
    default: false,
    help: 'one-shot: restore every value the agent changed, then exit 0 (preStop / uninstall)',
  },
  LOG_LEVEL_FLAG,
];

const USAGE = 'cpuburst agent --node-name <node> [flags]';
const SUMMARY =
  "Node agent: applies CPU burst decisions to this node's cgroups in a kernel-safe order, runs the\n" +
  'dynamic quota loop, acks over MQTT, and restores the original values when a pod leaves.';

function agentVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      return (JSON.parse(fs.readFileSync(new URL(rel, import.meta.url), 'utf8')) as { version: string })
        .version;
    } catch {
      /* next */
    }
  }
  return 'unknown';
}

function mqttPassword(v: Record<string, unknown>, node: string): string | undefined {
  if (typeof v.mqttPassword === 'string' && v.mqttPassword) return v.mqttPassword;
  if (typeof v.mqttPasswordFile === 'string' && v.mqttPasswordFile)
    return fs.readFileSync(v.mqttPasswordFile, 'utf8').trim();
  if (typeof v.mqttAgentKeyFile === 'string' && v.mqttAgentKeyFile)
    return deriveAgentPassword(fs.readFileSync(v.mqttAgentKeyFile, 'utf8').trim(), node);
  return undefined;
}

/** Checks the MQTT credential flags: one password source, mTLS cert and key together, over TLS. */
function checkMqttCredentialFlags(v: Record<string, unknown>): void {
  const set = (k: string) => typeof v[k] === 'string' && v[k] !== '';
  const passwordFlags = ['mqttPassword', 'mqttPasswordFile', 'mqttAgentKeyFile'].filter(set);
  if (set('mqttTokenFile') && passwordFlags.length)
    throw new FlagError(
      '--mqtt-token-file cannot be combined with --mqtt-password, --mqtt-password-file or --mqtt-agent-key-file',
    );
  if (set('mqttTlsCert') !== set('mqttTlsKey'))
    throw new FlagError('--mqtt-tls-cert and --mqtt-tls-key must be given together');
  if (set('mqttCaFile') && set('mqttTlsCa'))
    throw new FlagError('give the broker CA once: --mqtt-tls-ca or --mqtt-ca-file');
  if (set('mqttTlsCert') && set('mqttUrl') && !/^(mqtts|wss):/.test(v.mqttUrl as string))
    throw new FlagError('--mqtt-tls-cert needs an mqtts:// or wss:// --mqtt-url');
}

export async function main(argv: string[]): Promise<number> {
  const { values: v, help } = parseFlags(AGENT_FLAGS, argv);
  if (help) {
    process.stdout.write(formatHelp(USAGE, SUMMARY, AGENT_FLAGS));
    return 0;
  }
  checkMqttCredentialFlags(v);
  const node = v.nodeName as string | undefined;
  if (!node) throw new FlagError('--node-name (or NODE_NAME) is required');
  if (!isValidNodeName(node))
    throw new FlagError(`--node-name ${JSON.stringify(node)} is not a valid node name`);
  const intervalMs = v.interval as number;
  if (intervalMs < 50) throw new FlagError('--interval must be at least 50 ms');
  const driver = v.cgroupDriver as string;
  if (!['auto', 'systemd', 'cgroupfs'].includes(driver))
    throw new FlagError(`--cgroup-driver must be auto, systemd or cgroupfs, got "${driver}"`);
  const log = createLogger({ component: 'agent', node, level: v.logLevel as string });

  let layout: ReturnType<typeof detectLayout>;
  try {
    layout = detectLayout(nodeFs, {
      root: v.cgroupRoot as string,
      kubepodsDir: v.kubepodsDir as string,
      driver: driver as 'auto' | CgroupDriver,
    });
  } catch (err) {
    if (!(err instanceof LayoutError)) throw err;
    log.error('Cannot find the kubelet cgroup tree', { error: err.message, cgroupRoot: v.cgroupRoot });
    return 1;
  }
  const caps = probeCapabilities(nodeFs, layout, log);
  log.info('Detected cgroup layout', { ...layout, ...caps });
  const metrics = createAgentMetrics();
  const stateDir = v.stateDir as string;
  let gate: QuiesceGate | null = null;
  let quiesce: Awaited<ReturnType<typeof quiesceRunningAgent>> | null = null;
  if (v.restoreAll) {
    // Before loading ownership: the running agent's last round must be on disk first.
    quiesce = await quiesceRunningAgent(stateDir, log);
  } else {
    // Before anything is enforced: register, clear a stale marker (or honour a live restore-all).
    gate = new QuiesceGate(stateDir, log);
    gate.start(intervalMs);
  }
  const store = new StateStore(stateDir, log);
  store.load();
  const agent = new Agent({
    node,
    fs: nodeFs,
    layout,
    caps,
    store,
    log,
    metrics,
    procRoot: v.procRoot as string,
    intervalMs,
    quiesced: gate ? () => gate.check() : undefined,
  });

  if (!gate) {
    const r = agent.restoreAll();
    log.info('Restored all original cgroup values', { ...r, runningAgent: quiesce?.agent });
    return 0;
  }
  agent.loadPersisted();
  return run(agent, gate, v, { node, log, metrics, caps, layout, intervalMs });
}

async function run(
  agent: Agent,
  gate: QuiesceGate,
  v: Record<string, unknown>,
  ctx: {
    node: string;
    log: Logger;
    metrics: ReturnType<typeof createAgentMetrics>;
    caps: ReturnType<typeof probeCapabilities>;
    layout: ReturnType<typeof detectLayout>;
    intervalMs: number;
  },
): Promise<number> {
  const { node, log, metrics, caps, layout, intervalMs } = ctx;
  const file = v.decisionsFile ? new DecisionFile(v.decisionsFile as string, node, log, metrics) : null;
  const capabilities = (): Capabilities => ({
    apiVersion: PROTOCOL_API_VERSION,
    kind: 'AgentCapabilities',
    node,
    agentVersion: agentVersion(),
    kernel: caps.kernel,
    cgroupVersion: layout.version,
    cgroupDriver: layout.driver,
    burstSupported: caps.burstSupported,
    burstAboveQuota: caps.burstAboveQuota,
    cpus: Math.max(1, caps.cpus),
  });
  let mqttLink: MqttLink | null = null;
  if (v.mqttUrl) {
    mqttLink = new MqttLink({
      url: v.mqttUrl as string,
      node,
      username: (v.mqttUsername as string | undefined) || undefined,
      password: mqttPassword(v, node),
      tokenFile: (v.mqttTokenFile as string | undefined) || undefined,
      caFile: (v.mqttTlsCa as string | undefined) || (v.mqttCaFile as string | undefined) || undefined,
      tlsCertFile: (v.mqttTlsCert as string | undefined) || undefined,
      tlsKeyFile: (v.mqttTlsKey as string | undefined) || undefined,
      log,
      metrics,
      capabilities,
      appliedVersion: () => agent.appliedVersion,
      onDecision: (doc) => agent.apply(doc),
      status: () => agent.statusReport(),
    });
    mqttLink.start();
  }
  if (!file && !mqttLink)
    log.warn('No decision source (--decisions-file or --mqtt-url): enforcing persisted decisions only');

  let lastTick = Date.now();
  let ready = false;
  let probes: ProbeServer | null = null;
  const port = v.metricsPort as number;
  if (port >= 0)
    probes = await startProbeServer({
      port,
      registry: metrics.registry,
      healthz: () => (Date.now() - lastTick > 3 * intervalMs + 5000 ? 'control loop stalled' : null),
      readyz: () =>
        gate.quiesced
          ? 'quiesced by cpuburst agent --restore-all: no cgroup writes until the agent restarts'
          : ready
            ? null
            : 'first round not done',
      extra: (req, res) => {
        if (req.url !== '/debug/state') return false;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(agent.statusReport()));
        return true;
      },
    });
  if (probes) log.info('Serving metrics and probes', { port: probes.port });

  let lastStatusKey = '';
  let lastStatusAt = 0;
  let quiescedReported = false;
  const tick = () => {
    try {
      // Checked first (and again inside apply/round), so requests are acked only between rounds.
      // gate.check() acks every new request (a second restore-all too); the agent's flag is sticky.
      gate.check();
      if (agent.isQuiesced()) {
        if (!quiescedReported && mqttLink?.connected) {
          mqttLink.publishStatus(agent.statusReport());
          quiescedReported = true;
        }
        lastTick = Date.now();
        return;
      }
      const doc = file?.poll();
      if (doc) {
        const ack = agent.apply(doc);
        if (ack.errors.length)
          log.warn('Decision file applied with errors', { version: doc.version, errors: ack.errors });
        mqttLink?.publishStatus(agent.statusReport());
      }
      agent.round();
      ready = true;
      const st = agent.statusReport();
      const key = JSON.stringify({ ...st, time: '' });
      if (key !== lastStatusKey && Date.now() - lastStatusAt >= 10_000 && mqttLink?.connected) {
        mqttLink.publishStatus(st);
        lastStatusKey = key;
        lastStatusAt = Date.now();
      }
    } catch (err) {
      log.error('Control-loop round failed', { error: (err as Error).stack ?? String(err) });
    }
    lastTick = Date.now();
  };

  return new Promise<number>((resolve) => {
    let timer: NodeJS.Timeout | null = null;
    let stopping = false;
    const loop = () => {
      if (stopping) return;
      const started = Date.now();
      tick();
      if (!stopping) timer = setTimeout(loop, Math.max(0, intervalMs - (Date.now() - started)));
    };
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      if (timer) clearTimeout(timer);
      log.info('Stopping agent; cgroups are left as they are', { signal });
      await Promise.race([mqttLink?.stop(), new Promise((r) => setTimeout(r, 2000))]);
      await probes?.close();
      gate.stop();
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      resolve(0);
    };
    const onTerm = () => void stop('SIGTERM');
    const onInt = () => void stop('SIGINT');
    // Handlers before the first round: a SIGTERM that lands during it must still stop cleanly.
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
    loop();
  });
}
