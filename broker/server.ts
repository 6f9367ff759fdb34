// startBroker(config): aedes plus everything around it — auth chain, control-plane rules and the
// user ACL, limits, shared subscriptions, delayed publish, $SYS, metrics, listeners and HTTP API.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { Aedes, type AedesPublishPacket, type Client, type PublishPacket, type Subscription } from 'aedes';
import mqttPacket from 'mqtt-packet';
import type { Logger } from '../common/log.js';
import { silentLogger } from '../common/log.js';
import { type Acl, type AclAction, type AclRule, checkAcl, matchRules, parseAcl } from './acl.js';
import { type AuthSources, authenticate } from './auth/chain.js';
import { loadPublicKey } from './auth/jwt.js';
import { K8sTokenAuthenticator } from './auth/k8s-token.js';
import { type KubeAuthApi, kubeAuthApi } from './auth/kube-api.js';
import { peerOf } from './auth/tls-cert.js';
import { loadUsers } from './auth/users.js';
import { type BrokerConfig, crossCheck, DEFAULTS } from './config.js';
import { allowForward, controlPublish, controlSubscribe, isControlIdentity } from './control-acl.js';
import { startHttpApi } from './http-api.js';
import { BanList, type Clock, FlappingDetector, TokenBucket } from './limits.js';
import { type Listeners, startListeners } from './listeners.js';
import { type BrokerMetrics, createMetrics } from './metrics.js';
import { openStore } from './persistence.js';
import { SharedSubscriptions } from './shared.js';
import { startSys } from './sys.js';
import { topicMatches } from './topic-match.js';

export interface BrokerPorts {
  mqttPort?: number;
  tlsPort?: number;
  wsPort?: number;
  wssPort?: number;
  httpPort?: number;
}

/** What the broker knows about one connected client beyond aedes' own state. */
export interface ClientInfo {
  identity: string | null;
  username?: string;
  ip: string | null;
  acl?: AclRule[];
  by: string;
  connectedAt: number;
  bucket: TokenBucket;
  protocol: string;
  /** epoch ms when the client's token/certificate expires (it is disconnected then) */
  expiresAt?: number;
  expiryTimer?: NodeJS.Timeout;
}

export interface RunningBroker {
  ports: BrokerPorts;
  aedes: Aedes;
  metrics: BrokerMetrics;
  bans: BanList;
  clients: Map<Client, ClientInfo>;
  shared: SharedSubscriptions;
  close(): Promise<void>;
}

export interface StartOptions {
  log?: Logger;
  clock?: Clock;
  /** the Kubernetes API for k8s-token (default: from cfg.kubeconfig, else in-cluster) */
  kubeAuthApi?: KubeAuthApi;
}

// MQTT 5 reason codes used on the wire (3.1.1 clients are disconnected instead).
export const RC = {
  NOT_AUTHORIZED: 0x87,
  PACKET_TOO_LARGE: 0x95,
  MESSAGE_RATE_TOO_HIGH: 0x96,
  TOPIC_NAME_INVALID: 0x90,
  MAXIMUM_CONNECT_TIME: 0xa0,
} as const;

/** setTimeout's limit; a later expiry is re-armed when this fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const DELAY_PREFIX = '$delay/';
const MAX_DELAY_SECONDS = 2_147_483; // setTimeout's 2^31-1 ms limit

async function loadKubeConfigLazily(file?: string) {
  const { loadKubeConfig } = await import('../common/kubeconfig.js');
  return loadKubeConfig(file);
}

function readSecret(file: string): Buffer {
  return Buffer.from(readFileSync(file, 'utf8').trim());
}

export function clientIp(client: Client): string | null {
  const conn = client.conn as { remoteAddress?: string; _socket?: { remoteAddress?: string } };
  return conn?.remoteAddress ?? client.req?.socket?.remoteAddress ?? null;
}

export async function startBroker(
  partial: Partial<BrokerConfig>,
  opts: StartOptions = {},
): Promise<RunningBroker> {
  const cfg: BrokerConfig = { ...DEFAULTS, ...partial };
  const incoherent = crossCheck(cfg);
  if (incoherent) throw new Error(incoherent);
  const log = opts.log ?? silentLogger('broker');
  const clock = opts.clock ?? Date.now;
  const metrics = createMetrics();
  const bans = new BanList(clock);
  const flapping = new FlappingDetector(
    { maxCount: cfg.flappingMaxCount, windowSec: cfg.flappingWindowSeconds, banSec: cfg.flappingBanSeconds },
    clock,
  );
  const connBucket = new TokenBucket(cfg.connRate, Math.max(cfg.connRate, 1), clock);
  const shared = new SharedSubscriptions((id) => id in (aedesRef?.clients ?? {}));
  /** Connected clients (for the API); `infoOf` outlives the connection for wills published after it. */
  const clients = new Map<Client, ClientInfo>();
  const infoOf = new WeakMap<Client, ClientInfo>();
  const delayed = new Set<NodeJS.Timeout>();
  const retainedTopics = new Set<string>();
  let aedesRef: { clients: Record<string, Client> } | undefined;

  // Everything read from files is read now, so a bad file fails the start, not the first login.
  const acl: Acl | undefined = cfg.acl ? parseAcl(readFileSync(cfg.acl, 'utf8'), cfg.acl) : undefined;
  const auth: AuthSources = {
    allowAnonymous: cfg.allowAnonymous,
    chain: cfg.authChain,
    nowSec: () => Math.floor(clock() / 1000),
  };
  if (cfg.usersFile) auth.users = loadUsers(cfg.usersFile);
  if (cfg.agentKeyFile) auth.agentKey = readSecret(cfg.agentKeyFile);
  if (cfg.jwtSecretFile || cfg.jwtPublicKeyFile) {
    auth.jwt = {};
    if (cfg.jwtSecretFile) auth.jwt.secret = readSecret(cfg.jwtSecretFile);
    if (cfg.jwtPublicKeyFile) auth.jwt.publicKey = loadPublicKey(readFileSync(cfg.jwtPublicKeyFile, 'utf8'));
  }
  if (cfg.authHttpUrl) auth.httpUrl = cfg.authHttpUrl;
  auth.tlsOperatorCert = cfg.tlsOperatorCert;
  let k8sToken: K8sTokenAuthenticator | undefined;
  if (cfg.authChain.includes('k8s-token')) {
    const chain = cfg.authChain;
    k8sToken = new K8sTokenAuthenticator(
      {
        verify: cfg.saVerify,
        audience: cfg.saAudience,
        agentServiceAccount: cfg.saAgent,
        operatorServiceAccount: cfg.saOperator,
        allowOther: cfg.saAllowOther,
        issuer: cfg.saIssuer,
        jwksRefreshSec: cfg.saJwksRefreshSeconds,
        podCacheSec: cfg.saPodCacheSeconds,
        passForeignIssuers: auth.jwt !== undefined && chain.indexOf('jwt') > chain.indexOf('k8s-token'),
      },
      // client-node (~85 MiB RSS per process) is loaded only when this authenticator is on.
      { api: opts.kubeAuthApi ?? kubeAuthApi(await loadKubeConfigLazily(cfg.kubeconfig)), clock, log },
    );
    auth.k8sToken = k8sToken;
    // The first JWKS fetch happens now; failing it is not fatal (auto falls back to TokenReview,
    // jwks retries on the next token), so the broker can start before the API is reachable.
    await k8sToken.start();
  }
  const apiKey = cfg.apiKeyFile ? readSecret(cfg.apiKeyFile).toString() : cfg.apiKey;

  let store: Awaited<ReturnType<typeof openStore>>;
  try {
    store = await openStore({ dataDir: cfg.dataDir, redisUrl: cfg.redisUrl, log });
  } catch (err) {
    k8sToken?.stop();
    throw err;
  }

  /** Built-in rules, then the client's own (JWT/HTTP) rules, then the ACL file; no file = allow. */
  function permitted(client: Client | null, action: AclAction, topic: string): boolean {
    // Broker-internal publishes: API publishes are checked by the API, and wills replayed by a
    // replica for a client of a dead one were authorized when that client connected.
    if (!client) return true;
    const info = infoOf.get(client);
    if (!info) return false;
    const identity = info.identity;
    const control =
      action === 'publish' ? controlPublish(identity, topic) : controlSubscribe(identity, topic);
    if (control !== 'continue') return control === 'allow';
    const subject = { username: info.identity, clientId: client.id, ip: info.ip };
    if (info.acl) {
      const own = matchRules(info.acl, subject, action, topic);
      if (own) return own === 'allow';
    }
    return acl ? checkAcl(acl, subject, action, topic) === 'allow' : true;
  }

  /** Closes the connection when its credential expires (MQTT 5: DISCONNECT 0xA0 maximum connect time). */
  function armExpiry(client: Client, info: ClientInfo): void {
    clearTimeout(info.expiryTimer);
    const left = info.expiresAt! - clock();
    info.expiryTimer = setTimeout(
      () => {
        if (clock() < info.expiresAt!) return armExpiry(client, info);
        info.expiryTimer = undefined;
        if (client.closed) return;
        metrics.tokenExpiries.inc();
        log.info('Disconnected client: credential expired', {
          clientId: client.id,
          identity: info.identity,
          by: info.by,
          expiredAt: new Date(info.expiresAt!).toISOString(),
        });
        client.disconnect({ reasonCode: RC.MAXIMUM_CONNECT_TIME });
      },
      Math.min(Math.max(left, 0), MAX_TIMER_MS),
    );
    info.expiryTimer.unref();
  }

  /** Drops a publish and tells the client in the way its protocol version allows. */
  function refusePublish(
    client: Client,
    packet: PublishPacket,
    reason: string,
    cb: (err?: Error | null) => void,
    label: 'acl' | 'invalid_delay' | 'reserved_topic' = 'acl',
  ): void {
    metrics.dropped.inc({ reason: label });
    if (label === 'acl') metrics.aclDenials.inc({ action: 'publish' });
    log.warn('Denied publish', { clientId: client.id, topic: packet.topic, reason });
    if (client.version === 5 || client.closed || packet.messageId === undefined) {
      cb(new Error('Not authorized'));
      return;
    }
    // MQTT 3.1.1 has no negative ack: acknowledge so the client does not retry forever, then drop.
    (packet as { _notAuthorized?: boolean })._notAuthorized = true;
    if (packet.qos > 0) {
      const ack = mqttPacket.generate({
        cmd: packet.qos === 1 ? 'puback' : 'pubrec',
        messageId: packet.messageId,
      });
      (client.conn as NodeJS.WritableStream).write(ack);
    }
    cb(null);
  }

  /** Disconnects a misbehaving client (v5 gets the reason code) and swallows its packet. */
  function kick(
    client: Client,
    packet: PublishPacket,
    reasonCode: number,
    why: string,
    cb: (err?: Error | null) => void,
  ): void {
    log.warn('Disconnected client', { clientId: client.id, reasonCode, reason: why });
    (packet as { _notAuthorized?: boolean })._notAuthorized = true;
    client.disconnect({ reasonCode });
    cb(null);
  }

  const aedes = await Aedes.createBroker({
    // Unique per start: persistence keys queued messages by (broker id, counter), and the counter
    // restarts at 0, so a fixed id would overwrite messages queued before a restart.
    id: `${cfg.brokerId}-${randomBytes(4).toString('hex')}`,
    persistence: store.persistence,
    mq: store.mq,
    // No mqemitter queue (aedes' default is 100 in flight, the rest queued): when the only
    // subscriber of a QoS 0 flood leaves, the queued messages complete synchronously one into the
    // next and overflow the stack (crash). Publishers stay bounded: aedes reads a client's next
    // batch only once its previous publishes were delivered (or the subscriber socket drained).
    concurrency: 0,
    maximumPacketSize: cfg.maxPayloadBytes + 70_000, // header room; the payload is checked exactly below
    heartbeatInterval: 5000,
    topicAliasMaximum: 64, // MQTT 5 inbound topic aliases

    authenticate(client, username, password, done) {
      const ip = clientIp(client);
      if (!connBucket.take()) {
        // CONNACK 3 "server unavailable" (MQTT 5: 0x88) tells the client to come back later.
        metrics.authFailures.inc({ reason: 'rate_limited' });
        log.warn('Refused connection over the connection rate', { clientId: client.id, ip });
        return done(Object.assign(new Error('connection rate exceeded'), { returnCode: 3 as const }), false);
      }
      const ban = bans.find({ clientId: client.id, username, ip });
      if (ban) {
        metrics.authFailures.inc({ reason: 'banned' });
        log.warn('Refused banned client', { clientId: client.id, username, ip, bannedAs: ban.as });
        const err = Object.assign(new Error('banned'), { returnCode: 5 as const });
        return done(err, false);
      }
      const peer = peerOf(client.conn, client.req?.socket);
      authenticate(auth, { username, password, clientId: client.id, ip, peer }).then(
        (out) => {
          if (!out.ok) {
            metrics.authFailures.inc({ reason: out.badCredentials ? 'bad_credentials' : 'not_authorized' });
            if (out.refusal) {
              metrics.authRefusals.inc({ reason: out.refusal });
              log.warn('Refused connection', {
                clientId: client.id,
                username,
                ip,
                reason: out.refusal,
                detail: out.reason,
              });
            } else log.warn('Refused connection', { clientId: client.id, username, ip, reason: out.reason });
            const err = Object.assign(new Error(out.reason), {
              returnCode: out.returnCode ?? ((out.badCredentials ? 4 : 5) as 4 | 5),
            });
            return done(err, false);
          }
          // A client id held by a control identity is not taken over by another identity (a
          // valid IoT token must not kick the operator or an agent off by reusing its client id).
          const holder = aedesRef?.clients[client.id];
          const held = holder && holder !== client ? infoOf.get(holder)?.identity : undefined;
          if (held && held !== out.identity && isControlIdentity(held)) {
            metrics.authFailures.inc({ reason: 'not_authorized' });
            log.warn('Refused connection', {
              clientId: client.id,
              username,
              ip,
              identity: out.identity,
              reason: `client id is in use by ${held}`,
            });
            return done(
              Object.assign(new Error('client id in use by another identity'), { returnCode: 5 as const }),
              false,
            );
          }
          const info: ClientInfo = {
            identity: out.identity,
            username,
            ip,
            acl: out.acl,
            by: out.by,
            connectedAt: clock(),
            bucket: new TokenBucket(cfg.msgRate, Math.max(cfg.msgRate * 2, 1), clock),
            protocol: `mqtt-v${client.version}`,
            expiresAt: out.expiresAt,
          };
          clients.set(client, info);
          infoOf.set(client, info);
          // A Last Will is authorized when it is registered, so a stale will published later by
          // another replica (without the client) was already checked.
          const will = (client as unknown as { _will?: { topic: string } })._will;
          if (will && !permitted(client, 'publish', will.topic)) {
            clients.delete(client);
            infoOf.delete(client);
            metrics.aclDenials.inc({ action: 'publish' });
            log.warn('Refused connection: Last Will topic not allowed', {
              clientId: client.id,
              topic: will.topic,
            });
            return done(
              Object.assign(new Error('will topic not authorized'), { returnCode: 5 as const }),
              false,
            );
          }
          if (out.detail)
            log.debug('Verified client credential', {
              clientId: client.id,
              identity: out.identity,
              by: out.by,
              ...out.detail,
            });
          if (info.expiresAt !== undefined) armExpiry(client, info);
          done(null, true);
        },
        (err: Error) => done(Object.assign(err, { returnCode: 3 as const }), false),
      );
    },

    authorizePublish(client, packet, cb) {
      if (client) {
        const info = infoOf.get(client);
        const live = !client.closed; // wills are published after close and were checked at connect
        if (live && info && !info.bucket.take()) {
          metrics.dropped.inc({ reason: 'rate_limited' });
          return kick(client, packet, RC.MESSAGE_RATE_TOO_HIGH, 'message rate too high', cb);
        }
        if (live && packet.payload && packet.payload.length > cfg.maxPayloadBytes) {
          metrics.dropped.inc({ reason: 'payload_too_large' });
          return kick(
            client,
            packet,
            RC.PACKET_TOO_LARGE,
            `payload of ${packet.payload.length} bytes over the limit`,
            cb,
          );
        }
        // mqtt-packet turns invalid UTF-8 into U+FFFD; such a topic is malformed [MQTT-1.5.3-1].
        if (live && packet.topic.includes('\uFFFD')) {
          metrics.dropped.inc({ reason: 'invalid_topic' });
          return kick(client, packet, RC.TOPIC_NAME_INVALID, 'topic is not valid UTF-8', cb);
        }
      }
      let topic = packet.topic;
      let delaySec: number | null = null;
      if (topic.startsWith(DELAY_PREFIX)) {
        const m = /^\$delay\/(\d{1,10})\/(.+)$/.exec(topic);
        if (!m || Number(m[1]) > MAX_DELAY_SECONDS || /[+#]/.test(m[2]!)) {
          return client
            ? refusePublish(client, packet, 'malformed $delay topic', cb, 'invalid_delay')
            : cb(new Error('bad $delay'));
        }
        delaySec = Number(m[1]);
        topic = m[2]!;
      }
      if (topic.startsWith('$') && client) {
        return refusePublish(client, packet, 'clients may not publish to $ topics', cb, 'reserved_topic');
      }
      if (!permitted(client, 'publish', topic)) {
        return client ? refusePublish(client, packet, 'ACL', cb) : cb(new Error('Not authorized'));
      }
      if (delaySec !== null) {
        const copy = {
          cmd: 'publish' as const,
          topic,
          payload: packet.payload,
          qos: packet.qos,
          retain: packet.retain,
          dup: false,
        };
        const t = setTimeout(() => {
          delayed.delete(t);
          aedes.publish(copy as PublishPacket, () => undefined);
        }, delaySec * 1000);
        t.unref();
        delayed.add(t);
        packet.retain = false; // the `$delay/...` original itself goes nowhere
      }
      if (client) {
        metrics.messages.inc({ direction: 'received', qos: String(packet.qos) });
        metrics.bytes.inc({ direction: 'received' }, packet.payload?.length ?? 0);
      }
      cb(null);
    },

    authorizeSubscribe(client, sub, cb) {
      const ok =
        !sub.topic.includes('\uFFFD') &&
        !sub.topic.startsWith(DELAY_PREFIX) &&
        !sub.topic.startsWith('$share/') &&
        permitted(client, 'subscribe', sub.topic);
      if (!ok) {
        metrics.aclDenials.inc({ action: 'subscribe' });
        log.warn('Denied subscription', { clientId: client.id, topic: sub.topic });
        return cb(null, null);
      }
      cb(null, sub);
    },

    authorizeForward(client, packet) {
      const info = infoOf.get(client);
      if (!info || !allowForward(info.identity, packet.topic)) return null;
      const subs = (client as unknown as { subscriptions: Record<string, Subscription> }).subscriptions;
      // [MQTT-4.7.2-1] `#`/`+` never match $ topics; aedes' retained lookup does not enforce it.
      if (packet.topic.startsWith('$') && !Object.keys(subs).some((f) => topicMatches(f, packet.topic))) {
        return null;
      }
      const deliver = shared.shouldDeliver(client.id, packet, (isShared) =>
        Object.keys(subs).some((f) => !isShared(f) && topicMatches(f, packet.topic)),
      );
      if (!deliver) return null;
      metrics.messages.inc({ direction: 'sent', qos: String(packet.qos) });
      metrics.bytes.inc({ direction: 'sent' }, packet.payload?.length ?? 0);
      return packet;
    },
  });

  aedesRef = aedes as unknown as { clients: Record<string, Client> };
  aedes.on('client', (client) => {
    metrics.connections.set(aedes.connectedClients);
    if (!client.clean) metrics.sessions.inc();
    const info = clients.get(client);
    log.info('Client connected', {
      clientId: client.id,
      identity: info?.identity,
      username: info?.username,
      ip: info?.ip,
      by: info?.by,
    });
  });
  aedes.on('clientDisconnect', (client) => {
    metrics.connections.set(aedes.connectedClients);
    if (!client.clean) metrics.sessions.dec();
    // A persistent session keeps its group seats (aedes restores the plain filter on reconnect).
    if (client.clean) shared.drop(client.id);
    const info = infoOf.get(client);
    clearTimeout(info?.expiryTimer);
    clients.delete(client);
    log.info('Client disconnected', { clientId: client.id, username: info?.username });
    // Control identities are authenticated and must not be locked out of the control plane for
    // minutes by a reconnect storm (e.g. a broker restart); only other clients are banned.
    if (!isControlIdentity(info?.identity) && flapping.disconnected(client.id)) {
      bans.add('clientid', client.id, 'flapping', flapping.banSeconds);
      log.warn('Banned flapping client', { clientId: client.id, seconds: flapping.banSeconds });
    }
  });
  aedes.on('clientError', (client, err) => {
    metrics.clientErrors.inc();
    log.debug('Client error', { clientId: client?.id, error: err.message });
  });
  aedes.on('connectionError', (client, err) => {
    metrics.clientErrors.inc();
    log.debug('Connection error', { clientId: client?.id, error: err.message });
  });
  aedes.on('publish', (packet: AedesPublishPacket) => {
    if (!packet.retain) return;
    if (packet.payload?.length) retainedTopics.add(packet.topic);
    else retainedTopics.delete(packet.topic);
    metrics.retained.set(retainedTopics.size);
  });

  /** Gives a fresh connection to aedes, rewriting shared subscriptions before aedes parses them. */
  function attach(stream: import('node:stream').Duplex, req?: import('node:http').IncomingMessage): void {
    const client = aedes.handle(stream, req);
    // A connection that ends without a clean `clientDisconnect` must not stay listed.
    stream.once('close', () =>
      setImmediate(() => {
        clearTimeout(infoOf.get(client)?.expiryTimer);
        clients.delete(client);
      }),
    );
    const parser = (client as unknown as { _parser: NodeJS.EventEmitter })._parser;
    parser.prependListener('packet', (packet: { cmd: string }) => {
      if (packet.cmd === 'subscribe' || packet.cmd === 'unsubscribe') shared.rewrite(client.id, packet);
    });
  }

  let listeners: Listeners | undefined;
  let http: { port: number; close(): Promise<void> } | undefined;
  const sys = startSys({
    aedes,
    metrics,
    brokerId: cfg.brokerId,
    intervalSec: cfg.sysIntervalSeconds,
    clients,
    clock,
  });
  const running: RunningBroker = {
    ports: {},
    aedes,
    metrics,
    bans,
    clients,
    shared,
    close: async () => {
      sys.stop();
      k8sToken?.stop();
      for (const info of clients.values()) clearTimeout(info.expiryTimer);
      for (const t of delayed) clearTimeout(t);
      await http?.close();
      await listeners?.close();
      await new Promise<void>((r) => aedes.close(() => r()));
      await store.close();
    },
  };
  try {
    listeners = await startListeners(cfg, attach, log);
    Object.assign(running.ports, listeners.ports);
    if (cfg.httpPort >= 0) {
      http = await startHttpApi({ cfg, apiKey, running, log });
      running.ports.httpPort = http.port;
    }
  } catch (err) {
    await running.close().catch(() => undefined);
    throw err;
  }
  const line = {
    mqttPort: running.ports.mqttPort,
    tlsPort: running.ports.tlsPort,
    wsPort: running.ports.wsPort,
    wssPort: running.ports.wssPort,
    httpPort: running.ports.httpPort,
  };
  log.info('Broker listening', {
    msg: 'Broker listening',
    ...line,
    brokerId: cfg.brokerId,
    persistence: store.kind,
  });
  if (cfg.portsFile) writeFileSync(cfg.portsFile, `${JSON.stringify(line)}\n`);
  return running;
}
