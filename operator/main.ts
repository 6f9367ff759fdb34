// `cpuburst operator`: reflectors + planner + MQTT publisher + status writer, with leader election.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { FlagError, type FlagSpec, formatHelp, LOG_LEVEL_FLAG, parseFlags } from '../common/flags.js';
import { createLogger } from '../common/log.js';
import { startProbeServer } from '../common/probes.js';
import { identities } from '../protocol/index.js';
import { loadKubeConfig, makeApis } from './kube/client.js';
import { LeaderElector } from './kube/leader.js';
import { createOperatorMetrics } from './metrics.js';
import { wireOperator } from './wiring.js';

export const FLAGS: FlagSpec[] = [
  {
    name: 'kubeconfig',
    env: 'KUBECONFIG',
    type: 'string',
    help: 'kubeconfig file (else in-cluster, else ~/.kube/config)',
  },
  {
    name: 'mqtt-url',
    env: 'MQTT_URL',
    type: 'string',
    default: 'mqtt://127.0.0.1:1883',
    help: 'broker URL (mqtt://, mqtts://, ws://, wss://)',
  },
  {
    name: 'mqtt-username',
    env: 'MQTT_USERNAME',
    type: 'string',
    default: identities.operator,
    help: 'MQTT username (the operator identity)',
  },
  { name: 'mqtt-password', env: 'MQTT_PASSWORD', type: 'string', help: 'MQTT password' },
  {
    name: 'mqtt-password-file',
    env: 'MQTT_PASSWORD_FILE',
    type: 'string',
    help: 'file holding the MQTT password (wins over --mqtt-password)',
  },
  {
    name: 'mqtt-token-file',
    env: 'MQTT_TOKEN_FILE',
    type: 'string',
    help: 'projected ServiceAccount token (audience cpuburst-broker) sent as the MQTT password; re-read on every (re)connect, so a rotated token is picked up',
  },
  {
    name: 'mqtt-ca-file',
    env: 'MQTT_CA_FILE',
    type: 'string',
    help: 'CA bundle to verify the broker (mqtts/wss)',
  },
  {
    name: 'config-map-name',
    env: 'CONFIG_MAP_NAME',
    type: 'string',
    default: 'cpu-burst-config',
    help: "ConfigMap with the cluster defaults (key cpu-burst-config; Koordinator's slo-controller-config works as is)",
  },
  {
    name: 'config-map-namespace',
    env: 'POD_NAMESPACE',
    type: 'string',
    default: 'cpuburst-system',
    help: 'namespace of that ConfigMap',
  },
  {
    name: 'leader-elect',
    env: 'LEADER_ELECT',
    type: 'bool',
    default: true,
    help: 'elect a leader through a Lease (only the leader publishes and writes status)',
  },
  {
    name: 'lease-name',
    env: 'LEASE_NAME',
    type: 'string',
    default: 'cpuburst-operator',
    help: 'name of the Lease',
  },
  {
    name: 'lease-namespace',
    env: 'LEASE_NAMESPACE',
    type: 'string',
    help: 'namespace of the Lease (default: --config-map-namespace)',
  },
  {
    name: 'lease-duration-seconds',
    env: 'LEASE_DURATION_SECONDS',
    type: 'int',
    default: 15,
    help: 'how long a leader holds the Lease without renewing',
  },
  {
    name: 'renew-deadline-seconds',
    env: 'RENEW_DEADLINE_SECONDS',
    type: 'int',
    default: 10,
    help: 'a leader that cannot renew for this long steps down',
  },
  {
    name: 'retry-period-ms',
    env: 'RETRY_PERIOD_MS',
    type: 'int',
    default: 2000,
    help: 'interval between acquire/renew attempts',
  },
  {
    name: 'identity',
    env: 'POD_NAME',
    type: 'string',
    help: 'this replica (Lease holder and MQTT client id; default: hostname-pid)',
  },
  {
    name: 'probe-port',
    env: 'PROBE_PORT',
    type: 'int',
    default: 8081,
    help: '/healthz and /readyz port (0 = ephemeral)',
  },
  {
    name: 'metrics-port',
    env: 'METRICS_PORT',
    type: 'int',
    default: 8080,
    help: '/metrics port (0 = ephemeral)',
  },
  {
    name: 'resync-seconds',
    env: 'RESYNC_SECONDS',
    type: 'int',
    default: 300,
    help: 'periodic full relist of every watched resource',
  },
  {
    name: 'stale-watch-seconds',
    env: 'STALE_WATCH_SECONDS',
    type: 'int',
    default: 600,
    help: 'relist when a watch has been silent this long (0 = off)',
  },
  {
    name: 'watch-timeout-seconds',
    env: 'WATCH_TIMEOUT_SECONDS',
    type: 'int',
    default: 300,
    help: 'server-side watch timeout (jittered up to 2×)',
  },
  {
    name: 'schedule-check-seconds',
    env: 'SCHEDULE_CHECK_SECONDS',
    type: 'int',
    default: 30,
    help: 'how often schedule windows are re-evaluated',
  },
  LOG_LEVEL_FLAG,
];

const USAGE = 'cpuburst operator [flags]';
const SUMMARY =
  'Turns CpuBurstStrategy CRs, the cluster ConfigMap and pod annotations into per-node decisions over MQTT.';

export async function main(argv: string[]): Promise<number | undefined> {
  const { values: f, help, rest } = parseFlags(FLAGS, argv);
  if (help) {
    process.stdout.write(formatHelp(USAGE, SUMMARY, FLAGS));
    return 0;
  }
  if (rest.length) throw new FlagError(`unexpected argument ${rest[0]}`);
  if (!['error', 'warn', 'info', 'debug'].includes(String(f.logLevel)))
    throw new FlagError(`--log-level must be error, warn, info or debug, got "${f.logLevel}"`);
  for (const k of ['probePort', 'metricsPort'] as const)
    if ((f[k] as number) < 0 || (f[k] as number) > 65535)
      throw new FlagError(`--${k === 'probePort' ? 'probe' : 'metrics'}-port out of range`);
  const identity = (f.identity as string | undefined) || `${os.hostname()}-${process.pid}`;
  const log = createLogger({ component: 'operator', level: f.logLevel as string });
  const tokenFile = (f.mqttTokenFile as string | undefined) || undefined;
  if (tokenFile && (f.mqttPassword || f.mqttPasswordFile))
    throw new FlagError('--mqtt-token-file cannot be combined with --mqtt-password or --mqtt-password-file');
  let password = f.mqttPassword as string | undefined;
  if (f.mqttPasswordFile) {
    try {
      password = readFileSync(f.mqttPasswordFile as string, 'utf8').trim();
    } catch (err) {
      throw new FlagError(`--mqtt-password-file: ${(err as Error).message}`);
    }
  }

  const kc = loadKubeConfig(f.kubeconfig as string | undefined);
  const apis = makeApis(kc);
  const metrics = createOperatorMetrics({ defaultMetrics: true });
  const { bus, controller, lead } = wireOperator({
    apis,
    log,
    metrics,
    identity,
    mqtt: {
      url: f.mqttUrl as string,
      username: f.mqttUsername as string,
      password,
      tokenFile,
      caFile: f.mqttCaFile as string | undefined,
    },
    configMapName: f.configMapName as string,
    configMapNamespace: f.configMapNamespace as string,
    resyncMs: (f.resyncSeconds as number) * 1000,
    staleMs: (f.staleWatchSeconds as number) * 1000,
    watchTimeoutSeconds: f.watchTimeoutSeconds as number,
    scheduleCheckMs: (f.scheduleCheckSeconds as number) * 1000,
  });

  const renewDeadlineMs = (f.renewDeadlineSeconds as number) * 1000;
  const elector = f.leaderElect
    ? new LeaderElector({
        api: apis.coordination,
        name: f.leaseName as string,
        namespace: (f.leaseNamespace as string | undefined) || (f.configMapNamespace as string),
        identity,
        leaseDurationMs: (f.leaseDurationSeconds as number) * 1000,
        renewDeadlineMs,
        retryPeriodMs: f.retryPeriodMs as number,
        log,
        onStartedLeading: () => void lead(),
        onStoppedLeading: () => controller.setLeader(false),
        onNewLeader: (who) => log.info('Observed leader', { leader: who }),
      })
    : undefined;

  const probes = await startProbeServer({
    port: f.probePort as number,
    healthz: () =>
      elector?.isLeader && elector.sinceRenewMs > renewDeadlineMs + 5_000
        ? `lease not renewed for ${Math.round(elector.sinceRenewMs / 1000)}s`
        : null,
    readyz: () =>
      !controller.synced ? 'caches not synced' : !bus.connected ? 'MQTT broker not connected' : null,
  });
  const metricsServer = await startProbeServer({ port: f.metricsPort as number, registry: metrics.registry });
  log.info('Started operator', {
    identity,
    probePort: probes.port,
    metricsPort: metricsServer.port,
    leaderElect: Boolean(elector),
  });

  // Signals are handled from here on: with a token file the first connect may wait for the file.
  let stopping = false;
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => {
    resolveDone = r;
  });
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('Shutting down', { signal });
    await elector?.stop();
    await controller.stop();
    await bus.close();
    await probes.close();
    await metricsServer.close();
    resolveDone(0);
  };
  const onTerm = () => void stop('SIGTERM');
  const onInt = () => void stop('SIGINT');
  process.once('SIGTERM', onTerm);
  process.once('SIGINT', onInt);

  controller.start();
  try {
    await bus.connect();
  } catch (err) {
    if (stopping) return done;
    // Only refusals that retrying cannot fix end up here (bad credentials, not authorized).
    log.error('Cannot connect to the MQTT broker', { url: f.mqttUrl, error: (err as Error).message });
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    await controller.stop();
    await bus.close();
    await probes.close();
    await metricsServer.close();
    return 1;
  }
  if (stopping) return done;
  if (elector) elector.start();
  else void lead();
  return done;
}
