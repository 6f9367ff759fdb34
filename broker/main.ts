// `cpuburst broker`: the MQTT broker of the control plane and the cluster's IoT devices.
// `cpuburst broker hash-password` reads a password on stdin and prints a users-file hash.
import { FlagError, formatHelp, parseFlags } from '../common/flags.js';
import { createLogger } from '../common/log.js';
import { hashPassword } from './auth/passwords.js';
import { buildConfig, FLAGS } from './config.js';
import { startBroker } from './server.js';

const SUMMARY = `MQTT 3.1/3.1.1/5.0 broker (aedes) with TCP, TLS, WebSocket and WSS listeners, an auth chain
(users file, agent key, JWT, HTTP hook, Kubernetes ServiceAccount tokens, client certificates),
EMQX-style ACL, built-in control-plane rules, limits, bans,
$SYS topics, shared subscriptions, delayed publish and an HTTP API. Anonymous clients are refused
unless --allow-anonymous. Subcommand: 'cpuburst broker hash-password [--pbkdf2]' (password on stdin).`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

async function hashPasswordCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(
      'Usage: cpuburst broker hash-password [--pbkdf2] < password\n\nPrints a passwordHash value for the users file (scrypt by default).\n',
    );
    return 0;
  }
  const bad = argv.find((a) => a !== '--pbkdf2');
  if (bad) throw new FlagError(`unknown argument ${bad}`);
  const pw = await readStdin();
  if (!pw) {
    process.stderr.write('cpuburst broker hash-password: empty password on stdin\n');
    return 2;
  }
  process.stdout.write(`${hashPassword(pw, argv.includes('--pbkdf2') ? 'pbkdf2' : 'scrypt')}\n`);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'hash-password') return hashPasswordCommand(argv.slice(1));
  const { values, help, rest } = parseFlags(FLAGS, argv);
  if (help) {
    process.stdout.write(formatHelp('cpuburst broker [flags]', SUMMARY, FLAGS));
    return 0;
  }
  if (rest.length) throw new FlagError(`unexpected argument ${rest[0]}`);
  if (values.dataDir === undefined && values.redisUrl === undefined) values.dataDir = 'data/broker';
  if (values.dataDir === 'memory') values.dataDir = undefined;
  const cfg = buildConfig(values);
  const log = createLogger({ component: 'broker', level: cfg.logLevel });
  let broker: Awaited<ReturnType<typeof startBroker>>;
  try {
    broker = await startBroker(cfg, { log });
  } catch (err) {
    log.error('Broker failed to start', { error: (err as Error).message });
    return 1;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info('Shutting down broker', { signal });
      const force = setTimeout(() => resolve(1), 10_000);
      force.unref();
      broker.close().then(
        () => {
          clearTimeout(force);
          log.info('Broker stopped');
          resolve(0);
        },
        (err: Error) => {
          log.error('Broker stop failed', { error: err.message });
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
