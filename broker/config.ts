// Broker configuration: flags (each with an env twin) over one YAML file (`--config`), validated
// with ajv so a bad file fails at start with a message naming the field.
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import YAML from 'yaml';
import { FlagError, type FlagSpec, type FlagValues } from '../common/flags.js';
import { AUTHENTICATORS, type AuthenticatorName } from './auth/chain.js';
import { SA_VERIFY_MODES, type SaVerifyMode } from './auth/k8s-token.js';

export interface BrokerConfig {
  host: string;
  mqttPort: number; // -1 = off
  tlsPort: number;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsRequireClientCert: boolean;
  wsPort: number;
  wssPort: number;
  httpPort: number;
  allowAnonymous: boolean;
  usersFile?: string;
  agentKeyFile?: string;
  acl?: string;
  jwtSecretFile?: string;
  jwtPublicKeyFile?: string;
  authHttpUrl?: string;
  authChain: AuthenticatorName[];
  kubeconfig?: string;
  saVerify: SaVerifyMode;
  saAudience: string;
  saAgent?: string; // <namespace>/<name>
  saOperator?: string;
  saAllowOther: boolean;
  saIssuer?: string;
  saJwksRefreshSeconds: number;
  saPodCacheSeconds: number;
  tlsOperatorCert: boolean;
  redisUrl?: string;
  dataDir?: string; // unset = in-memory (tests); the CLI defaults it
  brokerId: string;
  apiKeyFile?: string;
  apiKey?: string;
  maxPayloadBytes: number;
  connRate: number;
  msgRate: number;
  flappingMaxCount: number;
  flappingWindowSeconds: number;
  flappingBanSeconds: number;
  sysIntervalSeconds: number;
  logLevel: string;
  portsFile?: string;
}

export const DEFAULTS: BrokerConfig = {
  host: '0.0.0.0',
  mqttPort: 1883,
  tlsPort: 8883,
  tlsRequireClientCert: false,
  wsPort: 8083,
  wssPort: -1,
  httpPort: 18083,
  allowAnonymous: false,
  authChain: ['password', 'agent-key', 'jwt', 'http'],
  saVerify: 'auto',
  saAudience: 'cpuburst-broker',
  saAllowOther: false,
  saJwksRefreshSeconds: 300,
  saPodCacheSeconds: 10,
  tlsOperatorCert: false,
  brokerId: 'cpuburst-broker',
  maxPayloadBytes: 1024 * 1024,
  connRate: 1000,
  msgRate: 0,
  flappingMaxCount: 15,
  flappingWindowSeconds: 60,
  flappingBanSeconds: 300,
  sysIntervalSeconds: 10,
  logLevel: 'info',
};

export const FLAGS: FlagSpec[] = [
  {
    name: 'config',
    env: 'BROKER_CONFIG',
    type: 'string',
    help: 'YAML config file (same keys as the flags, camelCase); flags and env win',
  },
  {
    name: 'host',
    env: 'BROKER_HOST',
    type: 'string',
    help: 'address every listener binds (default 0.0.0.0)',
  },
  {
    name: 'mqtt-port',
    env: 'BROKER_MQTT_PORT',
    type: 'int',
    help: 'MQTT/TCP port, 0 = random, -1 = off (default 1883)',
  },
  { name: 'mqtt', env: 'BROKER_MQTT', type: 'bool', help: '--no-mqtt switches the TCP listener off' },
  {
    name: 'tls-port',
    env: 'BROKER_TLS_PORT',
    type: 'int',
    help: 'MQTT over TLS port; needs --tls-cert/--tls-key (default 8883, -1 = off)',
  },
  {
    name: 'tls-cert',
    env: 'BROKER_TLS_CERT',
    type: 'string',
    help: 'PEM certificate (chain) for TLS and WSS',
  },
  { name: 'tls-key', env: 'BROKER_TLS_KEY', type: 'string', help: 'PEM private key for TLS and WSS' },
  {
    name: 'tls-ca',
    env: 'BROKER_TLS_CA',
    type: 'string',
    help: 'PEM CA bundle that client certificates are checked against',
  },
  {
    name: 'tls-require-client-cert',
    env: 'BROKER_TLS_REQUIRE_CLIENT_CERT',
    type: 'bool',
    help: 'refuse TLS clients without a certificate signed by --tls-ca',
  },
  {
    name: 'ws-port',
    env: 'BROKER_WS_PORT',
    type: 'int',
    help: 'MQTT over WebSocket port, path /mqtt (default 8083, -1 = off)',
  },
  {
    name: 'wss-port',
    env: 'BROKER_WSS_PORT',
    type: 'int',
    help: 'MQTT over secure WebSocket port (default off; needs TLS files)',
  },
  {
    name: 'http-port',
    env: 'BROKER_HTTP_PORT',
    type: 'int',
    help: 'HTTP API, /metrics, /healthz, /readyz (default 18083, -1 = off)',
  },
  {
    name: 'allow-anonymous',
    env: 'BROKER_ALLOW_ANONYMOUS',
    type: 'bool',
    help: 'accept clients that no authenticator knows (refused by default)',
  },
  {
    name: 'users-file',
    env: 'BROKER_USERS_FILE',
    type: 'string',
    help: 'YAML users: [{username, password | passwordHash}] (a Secret mount works)',
  },
  {
    name: 'agent-key-file',
    env: 'BROKER_AGENT_KEY_FILE',
    type: 'string',
    help: 'shared agent key: agent:<node> logs in with HMAC(key, identity)',
  },
  {
    name: 'acl',
    env: 'BROKER_ACL',
    type: 'string',
    help: 'ACL YAML file (EMQX-style rules, first match wins, noMatch)',
  },
  {
    name: 'jwt-secret-file',
    env: 'BROKER_JWT_SECRET_FILE',
    type: 'string',
    help: 'HS256 secret for JWT passwords',
  },
  {
    name: 'jwt-public-key-file',
    env: 'BROKER_JWT_PUBLIC_KEY_FILE',
    type: 'string',
    help: 'RS256 public key (PEM) for JWT passwords',
  },
  {
    name: 'auth-http-url',
    env: 'BROKER_AUTH_HTTP_URL',
    type: 'string',
    help: 'HTTP auth hook URL (POST JSON, answers allow/deny/ignore)',
  },
  {
    name: 'auth-chain',
    env: 'BROKER_AUTH_CHAIN',
    type: 'list',
    help: 'authenticator order of password, agent-key, jwt, http, k8s-token, tls-cert (default password,agent-key,jwt,http)',
  },
  {
    name: 'kubeconfig',
    env: 'KUBECONFIG',
    type: 'string',
    help: 'kubeconfig for k8s-token (else in-cluster, else ~/.kube/config)',
  },
  {
    name: 'sa-verify',
    env: 'BROKER_SA_VERIFY',
    type: 'string',
    help: 'k8s-token verification: jwks, tokenreview or auto (JWKS, TokenReview when the JWKS is unavailable; default)',
  },
  {
    name: 'sa-audience',
    env: 'BROKER_SA_AUDIENCE',
    type: 'string',
    help: 'audience a ServiceAccount token must carry (default cpuburst-broker)',
  },
  {
    name: 'sa-agent',
    env: 'BROKER_SA_AGENT',
    type: 'string',
    help: "<namespace>/<name> of the agents' ServiceAccount: its tokens become agent:<node of the bound pod>",
  },
  {
    name: 'sa-operator',
    env: 'BROKER_SA_OPERATOR',
    type: 'string',
    help: "<namespace>/<name> of the operator's ServiceAccount: its tokens become operator",
  },
  {
    name: 'sa-allow-other',
    env: 'BROKER_SA_ALLOW_OTHER',
    type: 'bool',
    help: 'accept other ServiceAccounts as IoT identities sa:<ns>:<name> (never cpuburst/); refused by default',
  },
  {
    name: 'sa-issuer',
    env: 'BROKER_SA_ISSUER',
    type: 'string',
    help: "expected token issuer (default: the issuer of the API server's OIDC discovery)",
  },
  {
    name: 'sa-jwks-refresh-seconds',
    env: 'BROKER_SA_JWKS_REFRESH_SECONDS',
    type: 'int',
    help: 'how often the issuer JWKS is re-read (also on an unknown kid; default 300)',
  },
  {
    name: 'sa-pod-cache-seconds',
    env: 'BROKER_SA_POD_CACHE_SECONDS',
    type: 'int',
    help: 'how long a bound pod lookup / TokenReview is cached; a deleted pod is refused within it (default 10, 0 = off)',
  },
  {
    name: 'tls-operator-cert',
    env: 'BROKER_TLS_OPERATOR_CERT',
    type: 'bool',
    help: 'tls-cert: a client certificate with CN exactly "operator" becomes operator',
  },
  {
    name: 'redis-url',
    env: 'BROKER_REDIS_URL',
    type: 'string',
    help: 'Redis for persistence and clustering replicas (redis://host:port/db)',
  },
  {
    name: 'data-dir',
    env: 'BROKER_DATA_DIR',
    type: 'string',
    help: 'directory of the embedded session store (default ./data/broker)',
  },
  {
    name: 'broker-id',
    env: 'BROKER_ID',
    type: 'string',
    help: 'broker id used in $SYS/brokers/<id>/ (default cpuburst-broker)',
  },
  {
    name: 'api-key-file',
    env: 'BROKER_API_KEY_FILE',
    type: 'string',
    help: 'file with the HTTP API key (Bearer, X-API-Key or basic auth password)',
  },
  {
    name: 'api-key',
    env: 'API_KEY',
    type: 'string',
    help: 'the HTTP API key itself (prefer --api-key-file)',
  },
  {
    name: 'max-payload-bytes',
    env: 'BROKER_MAX_PAYLOAD_BYTES',
    type: 'int',
    help: 'largest accepted PUBLISH payload (default 1048576)',
  },
  {
    name: 'conn-rate',
    env: 'BROKER_CONN_RATE',
    type: 'int',
    help: 'new connections per second accepted, 0 = unlimited (default 1000)',
  },
  {
    name: 'msg-rate',
    env: 'BROKER_MSG_RATE',
    type: 'int',
    help: 'PUBLISH per second per client before it is disconnected, 0 = unlimited',
  },
  {
    name: 'flapping-max-count',
    env: 'BROKER_FLAPPING_MAX_COUNT',
    type: 'int',
    help: 'disconnects within the window that make a client id a flapper, 0 = off (default 15)',
  },
  {
    name: 'flapping-window-seconds',
    env: 'BROKER_FLAPPING_WINDOW_SECONDS',
    type: 'int',
    help: 'flapping detection window (default 60)',
  },
  {
    name: 'flapping-ban-seconds',
    env: 'BROKER_FLAPPING_BAN_SECONDS',
    type: 'int',
    help: 'how long a flapper is banned (default 300)',
  },
  {
    name: 'sys-interval-seconds',
    env: 'BROKER_SYS_INTERVAL_SECONDS',
    type: 'int',
    help: '$SYS/brokers/<id>/ stats publish interval (default 10)',
  },
  { name: 'log-level', env: 'LOG_LEVEL', type: 'string', help: 'error, warn, info or debug (default info)' },
  {
    name: 'ports-file',
    env: 'BROKER_PORTS_FILE',
    type: 'string',
    help: 'write the listening ports as JSON to this file once up',
  },
];

const port = { type: 'integer', minimum: -1, maximum: 65535 };
const str = { type: 'string', minLength: 1 };
// <namespace>/<name>, both DNS labels/subdomains as Kubernetes spells them
const serviceAccount = {
  type: 'string',
  pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$',
};
export const CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    host: str,
    mqttPort: port,
    tlsPort: port,
    tlsCert: str,
    tlsKey: str,
    tlsCa: str,
    tlsRequireClientCert: { type: 'boolean' },
    wsPort: port,
    wssPort: port,
    httpPort: port,
    allowAnonymous: { type: 'boolean' },
    usersFile: str,
    agentKeyFile: str,
    acl: str,
    jwtSecretFile: str,
    jwtPublicKeyFile: str,
    authHttpUrl: { type: 'string', pattern: '^https?://' },
    authChain: { type: 'array', items: { enum: AUTHENTICATORS }, uniqueItems: true },
    kubeconfig: str,
    saVerify: { enum: SA_VERIFY_MODES },
    saAudience: str,
    saAgent: serviceAccount,
    saOperator: serviceAccount,
    saAllowOther: { type: 'boolean' },
    saIssuer: str,
    saJwksRefreshSeconds: { type: 'integer', minimum: 1 },
    saPodCacheSeconds: { type: 'integer', minimum: 0 },
    tlsOperatorCert: { type: 'boolean' },
    redisUrl: { type: 'string', pattern: '^rediss?://' },
    dataDir: str,
    brokerId: { type: 'string', pattern: '^[A-Za-z0-9._-]+$' },
    apiKeyFile: str,
    apiKey: str,
    maxPayloadBytes: { type: 'integer', minimum: 1, maximum: 268435455 },
    connRate: { type: 'integer', minimum: 0 },
    msgRate: { type: 'integer', minimum: 0 },
    flappingMaxCount: { type: 'integer', minimum: 0 },
    flappingWindowSeconds: { type: 'integer', minimum: 1 },
    flappingBanSeconds: { type: 'integer', minimum: 1 },
    sysIntervalSeconds: { type: 'integer', minimum: 1 },
    logLevel: { enum: ['error', 'warn', 'info', 'debug'] },
    portsFile: str,
  },
} as const;

const validate = new Ajv({ allErrors: true }).compile(CONFIG_SCHEMA);

/** Validates a partial config; throws naming the first bad field. */
export function checkConfig(raw: unknown, source: string): Partial<BrokerConfig> {
  if (!validate(raw)) {
    const e = validate.errors![0]!;
    const field =
      e.keyword === 'additionalProperties'
        ? `${e.instancePath}/${(e.params as { additionalProperty: string }).additionalProperty}`
        : e.instancePath;
    const name = field.replace(/^\//, '').replaceAll('/', '.') || '(root)';
    const msg = e.keyword === 'additionalProperties' ? 'is not a known setting' : e.message;
    throw new FlagError(`${source}: field "${name}" ${msg}`);
  }
  return raw as Partial<BrokerConfig>;
}

/** Merges defaults < YAML file < env/flags (flags already carry env values from parseFlags). */
export function buildConfig(values: FlagValues): BrokerConfig {
  let fromFile: Partial<BrokerConfig> = {};
  if (typeof values.config === 'string') {
    let doc: unknown;
    try {
      doc = YAML.parse(readFileSync(values.config, 'utf8')) ?? {};
    } catch (err) {
      throw new FlagError(`config ${values.config}: ${(err as Error).message}`);
    }
    fromFile = checkConfig(doc, `config ${values.config}`);
  }
  const fromFlags: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined || k === 'config' || k === 'mqtt') continue;
    fromFlags[k] = v;
  }
  if (values.mqtt === false) fromFlags.mqttPort = -1;
  const merged = { ...fromFile, ...checkConfig(fromFlags, 'flags') };
  const cfg = { ...DEFAULTS, ...merged };
  const problem = crossCheck(cfg);
  if (problem) throw new FlagError(problem);
  return cfg;
}

/** Settings that only make sense together; null when the config is coherent. */
export function crossCheck(cfg: BrokerConfig): string | null {
  if (cfg.authChain.includes('k8s-token') && !cfg.saAgent && !cfg.saOperator && !cfg.saAllowOther) {
    return 'auth chain k8s-token needs --sa-agent, --sa-operator or --sa-allow-other';
  }
  if (cfg.authChain.includes('tls-cert') && !cfg.tlsCa) {
    return 'auth chain tls-cert needs --tls-ca (the CA that signs client certificates)';
  }
  if (cfg.saAgent && cfg.saAgent === cfg.saOperator) {
    return '--sa-agent and --sa-operator must be different ServiceAccounts';
  }
  return null;
}
