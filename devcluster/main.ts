// `cpuburst devcluster`: runs the Kubernetes API emulator until SIGTERM/SIGINT.
import { writeFileSync } from 'node:fs';
import { FlagError, type FlagSpec, formatHelp, LOG_LEVEL_FLAG, parseFlags } from '../common/flags.js';
import { createLogger } from '../common/log.js';
import { type DevCluster, startDevCluster } from './index.js';

const FLAGS: FlagSpec[] = [
  {
    name: 'port',
    env: 'DEVCLUSTER_PORT',
    type: 'int',
    default: 6443,
    help: 'port to listen on (0 = random)',
  },
  {
    name: 'host',
    env: 'DEVCLUSTER_HOST',
    type: 'string',
    default: '127.0.0.1',
    help: 'address to listen on',
  },
  {
    name: 'kubeconfig',
    env: 'DEVCLUSTER_KUBECONFIG',
    type: 'string',
    help: 'write a kubeconfig for this server to FILE',
  },
  {
    name: 'token',
    env: 'DEVCLUSTER_TOKEN',
    type: 'string',
    help: 'require this bearer token (default: no auth)',
  },
  {
    name: 'tls',
    env: 'DEVCLUSTER_TLS',
    type: 'bool',
    default: false,
    help: 'serve HTTPS with a throwaway self-signed certificate',
  },
  {
    name: 'snapshot',
    env: 'DEVCLUSTER_SNAPSHOT',
    type: 'string',
    help: 'load objects from FILE at start and save them there',
  },
  {
    name: 'watch-window',
    env: 'DEVCLUSTER_WATCH_WINDOW',
    type: 'int',
    default: 1000,
    help: 'events kept for watches from a resourceVersion (older → 410 Gone)',
  },
  {
    name: 'bookmark-interval',
    env: 'DEVCLUSTER_BOOKMARK_INTERVAL',
    type: 'int',
    default: 10,
    help: 'seconds between watch bookmarks (when a watch allows them)',
  },
  {
    name: 'ports-file',
    env: 'DEVCLUSTER_PORTS_FILE',
    type: 'string',
    help: 'write {"url","port"} JSON here once listening',
  },
  {
    name: 'sa-issuer',
    env: 'DEVCLUSTER_SA_ISSUER',
    type: 'string',
    help: 'iss of ServiceAccount tokens (default: the server URL)',
  },
  {
    name: 'sa-signing-key-file',
    env: 'DEVCLUSTER_SA_SIGNING_KEY_FILE',
    type: 'string',
    help: 'PEM signing key for ServiceAccount tokens: loaded if present, else generated and saved here',
  },
  {
    name: 'sa-signing-alg',
    env: 'DEVCLUSTER_SA_SIGNING_ALG',
    type: 'string',
    default: 'RS256',
    help: 'RS256 or ES256 (for generated keys)',
  },
  {
    name: 'sa-min-expiration-seconds',
    env: 'DEVCLUSTER_SA_MIN_EXPIRATION_SECONDS',
    type: 'int',
    default: 600,
    help: 'smallest TokenRequest expirationSeconds accepted (kube-apiserver: 600)',
  },
  {
    name: 'sa-leeway-seconds',
    env: 'DEVCLUSTER_SA_LEEWAY_SECONDS',
    type: 'int',
    default: 60,
    help: 'clock skew accepted on exp/nbf when verifying tokens (kube-apiserver: 60)',
  },
  LOG_LEVEL_FLAG,
];

export async function main(argv: string[]): Promise<number | undefined> {
  const { values, help } = parseFlags(FLAGS, argv);
  if (help) {
    process.stdout.write(
      formatHelp('cpuburst devcluster [flags]', 'Kubernetes API emulator for local runs and tests.', FLAGS),
    );
    return 0;
  }
  const log = createLogger({ component: 'devcluster', level: values.logLevel as string });
  if ((values.watchWindow as number) < 1) throw new FlagError('--watch-window must be at least 1');
  if ((values.port as number) < 0 || (values.port as number) > 65535)
    throw new FlagError('--port must be 0..65535');
  const alg = values.saSigningAlg as string;
  if (alg !== 'RS256' && alg !== 'ES256') throw new FlagError('--sa-signing-alg must be RS256 or ES256');
  if ((values.saMinExpirationSeconds as number) < 1)
    throw new FlagError('--sa-min-expiration-seconds must be at least 1');
  if ((values.saLeewaySeconds as number) < 0) throw new FlagError('--sa-leeway-seconds must be >= 0');
  let dc: DevCluster;
  try {
    dc = await startDevCluster({
      port: values.port as number,
      host: values.host as string,
      token: values.token as string | undefined,
      tls: values.tls as boolean,
      kubeconfigPath: values.kubeconfig as string | undefined,
      snapshotPath: values.snapshot as string | undefined,
      watchWindow: values.watchWindow as number,
      bookmarkIntervalMs: (values.bookmarkInterval as number) * 1000,
      log,
      saIssuer: values.saIssuer as string | undefined,
      saSigningKeyFile: values.saSigningKeyFile as string | undefined,
      saSigningAlg: alg,
      saMinExpirationSeconds: values.saMinExpirationSeconds as number,
      saLeewaySeconds: values.saLeewaySeconds as number,
      onRequest: (method, url, code, error) => {
        // Failed requests are worth a line (the client got the same message as a Status); the rest is debug.
        if (code >= 500) log.warn('Request failed', { method, url, code, error });
        else if (code >= 400) log.info('Request rejected', { method, url, code, error });
        else log.debug('Served request', { method, url, code });
      },
    });
  } catch (err) {
    log.error('API server failed to start', { error: (err as Error).message });
    return 1;
  }
  if (values.portsFile)
    writeFileSync(values.portsFile as string, JSON.stringify({ url: dc.url, port: dc.port }));
  log.info('API server listening', {
    msg: 'API server listening',
    url: dc.url,
    port: dc.port,
    kubeconfig: dc.kubeconfigPath,
    issuer: dc.issuer,
  });
  // SIGHUP rotates the ServiceAccount signing key, keeping the old one verifiable (like adding a key
  // to --service-account-key-file); POST /debug/devcluster/rotate-sa-key can also drop it.
  const onHup = () => {
    const r = dc.tokens.rotate({ keepPrevious: true });
    log.info('Rotated ServiceAccount signing key', { kid: r.kid, kept: r.previous, signal: 'SIGHUP' });
  };
  process.on('SIGHUP', onHup);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info('Shutting down', { signal });
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  process.off('SIGHUP', onHup);
  await dc.close();
  log.info('API server stopped');
  return 0;
}
