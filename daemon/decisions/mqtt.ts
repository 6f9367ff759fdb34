// The agent's MQTT link: identity agent:<node>, Last Will = retained Presence{online:false};
// on connect retained Presence online + Capabilities, subscribe to its node's decisions (QoS 1);
// acks (QoS 1) and retained status. Reconnects with exponential backoff; while the broker is
// away the agent keeps enforcing the last applied document (the loop does not depend on this).
// Credentials that rotate on disk (a ServiceAccount token file, mTLS cert/key/CA) are re-read before
// every reconnect; a refused CONNECT is retried too (the next attempt re-reads the token).
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../../common/log.js';
import {
  readTlsFiles,
  refreshCredentialsOnReconnect,
  renewBeforeExpiry,
  TokenFile,
} from '../../common/token-file.js';
import {
  type AckMessage,
  type Capabilities,
  type DecisionDocument,
  decode,
  encode,
  identities,
  type PodError,
  PROTOCOL_API_VERSION,
  type Presence,
  type StatusReport,
  topics,
} from '../../protocol/index.js';
import type { AgentMetrics } from '../metrics.js';

export interface MqttLinkOptions {
  url: string;
  node: string;
  username?: string;
  password?: string;
  /** A projected ServiceAccount token, sent as the password; re-read on every (re)connect. */
  tokenFile?: string;
  caFile?: string;
  /** Client certificate and key for mTLS (identity from the certificate); re-read on every (re)connect. */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  log: Logger;
  metrics: AgentMetrics;
  capabilities: () => Capabilities;
  appliedVersion: () => number;
  /** Applies a decoded, newer document; returns the ack body. */
  onDecision: (doc: DecisionDocument) => Pick<AckMessage, 'result' | 'errors'>;
  /** The status to publish after an apply. */
  status: () => StatusReport;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export class MqttLink {
  private client: MqttClient | null = null;
  private backoff: number;
  connected = false;

  constructor(private readonly o: MqttLinkOptions) {
    this.backoff = o.minBackoffMs ?? 1000;
  }

  private presence(online: boolean): Presence {
    return {
      apiVersion: PROTOCOL_API_VERSION,
      kind: 'AgentPresence',
      node: this.o.node,
      online,
      time: new Date().toISOString(),
    };
  }

  start(): void {
    const { node, log } = this.o;
    const min = this.o.minBackoffMs ?? 1000;
    const max = this.o.maxBackoffMs ?? 30_000;
    const token = this.o.tokenFile ? new TokenFile(this.o.tokenFile, log) : null;
    const credentials = () => ({
      ...(token ? { password: token.read() } : {}),
      ...readTlsFiles({ cert: this.o.tlsCertFile, key: this.o.tlsKeyFile, ca: this.o.caFile }, log),
    });
    const opts: IClientOptions = {
      clientId: `cpuburst-agent-${node}`.slice(0, 128),
      // Informational: the broker derives the identity from the token or certificate, not from this.
      username: this.o.username ?? identities.agent(node),
      password: this.o.password,
      ...credentials(),
      protocolVersion: 5,
      clean: true,
      keepalive: 15,
      reconnectPeriod: min,
      // A refusal (expired or not yet rotated token, broker not ready for us) is retried with backoff.
      reconnectOnConnackError: true,
      connectTimeout: 10_000,
      will: {
        topic: topics.presence(node),
        payload: encode(this.presence(false)),
        qos: 1,
        retain: true,
      },
    };
    const client = mqtt.connect(this.o.url, opts);
    this.client = client;
    refreshCredentialsOnReconnect(client, credentials);
    let renewing = false;
    if (token) renewBeforeExpiry(client, token, log, { onRenew: () => (renewing = true) });
    client.on('connect', () => {
      this.connected = true;
      this.backoff = min;
      client.options.reconnectPeriod = min;
      log.info('Connected to MQTT broker', { url: this.o.url });
      client.publish(topics.presence(node), encode(this.presence(true)), { qos: 1, retain: true });
      client.publish(topics.capabilities(node), encode(this.o.capabilities()), { qos: 1, retain: true });
      client.subscribe(topics.decisions(node), { qos: 1 }, (err, granted) => {
        if (err || granted?.some((g) => g.qos >= 128))
          log.error('Subscription to decisions refused', {
            topic: topics.decisions(node),
            error: err?.message,
          });
      });
      this.publishStatus(this.o.status());
    });
    client.on('close', () => {
      if (renewing) {
        // Our own clean reconnect with a rotated token: no backoff, not a loss of the broker.
        renewing = false;
        this.connected = false;
        return;
      }
      if (this.connected)
        log.warn('Disconnected from MQTT broker, enforcing the last decisions', { url: this.o.url });
      this.connected = false;
      // Exponential backoff: mqtt.js reads reconnectPeriod when it schedules the next attempt.
      this.backoff = Math.min(max, this.backoff * 2);
      client.options.reconnectPeriod = this.backoff;
    });
    client.on('disconnect', (packet) =>
      // e.g. 0xA0 "maximum connect time" when the token expires: the reconnect re-reads the file.
      log.info('MQTT broker sent DISCONNECT', {
        reasonCode: packet.reasonCode,
        reason: packet.properties?.reasonString,
      }),
    );
    client.on('error', (err) => {
      const code = (err as { code?: unknown }).code;
      if (code === 4 || code === 5 || code === 134 || code === 135)
        log.error('MQTT broker refused the credentials; retrying', {
          url: this.o.url,
          reasonCode: code,
          error: err.message,
          tokenFile: this.o.tokenFile,
          certFile: this.o.tlsCertFile,
        });
      else log.warn('MQTT error', { error: err.message });
    });
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
  }

  private onMessage(topic: string, payload: Buffer): void {
    const { node, log, metrics } = this.o;
    if (topic !== topics.decisions(node)) return;
    if (payload.length === 0) {
      log.info('Retained decisions cleared on the broker; keeping the last applied document');
      return;
    }
    metrics.decisionsReceived.inc({ source: 'mqtt' });
    const d = decode.decisions(payload);
    if (!d.ok) {
      metrics.decisionsRejected.inc({ source: 'mqtt', reason: 'Invalid' });
      const version = readableVersion(payload);
      log.error('Rejected invalid decision document', { topic, error: d.error, version });
      if (version !== null)
        this.publishAck(version, 'Rejected', [
          { uid: '', reason: 'InvalidDocument', message: d.error.slice(0, 1000) },
        ]);
      return;
    }
    const doc = d.value;
    if (doc.node !== node) {
      metrics.decisionsRejected.inc({ source: 'mqtt', reason: 'WrongNode' });
      this.publishAck(doc.version, 'Rejected', [
        { uid: '', reason: 'WrongNode', message: `document for ${doc.node} sent to ${node}` },
      ]);
      return;
    }
    const applied = this.o.appliedVersion();
    if (doc.version <= applied) {
      metrics.decisionsRejected.inc({ source: 'mqtt', reason: 'Stale' });
      log.debug('Ignoring decision document not newer than the applied one', {
        version: doc.version,
        applied,
      });
      return;
    }
    let ack: Pick<AckMessage, 'result' | 'errors'>;
    try {
      ack = this.o.onDecision(doc);
    } catch (err) {
      // Never let one document take the agent down; the loop keeps enforcing what it has.
      log.error('Failed to apply decision document', { version: doc.version, error: (err as Error).stack });
      ack = {
        result: 'PartiallyApplied',
        errors: [{ uid: '', reason: 'InternalError', message: (err as Error).message }],
      };
    }
    this.publishAck(doc.version, ack.result, ack.errors);
    this.publishStatus(this.o.status());
  }

  publishAck(version: number, result: AckMessage['result'], errors: PodError[]): void {
    const ack: AckMessage = {
      apiVersion: PROTOCOL_API_VERSION,
      kind: 'DecisionAck',
      node: this.o.node,
      version,
      result,
      time: new Date().toISOString(),
      errors,
    };
    this.client?.publish(topics.ack(this.o.node), encode(ack), { qos: 1 });
  }

  publishStatus(status: StatusReport): void {
    if (!this.connected) return;
    this.client?.publish(topics.status(this.o.node), encode(status), { qos: 1, retain: true });
  }

  /** Graceful stop: announce offline (the Will only fires on an unclean loss). */
  async stop(): Promise<void> {
    const c = this.client;
    if (!c) return;
    if (this.connected)
      await new Promise<void>((resolve) =>
        c.publish(topics.presence(this.o.node), encode(this.presence(false)), { qos: 1, retain: true }, () =>
          resolve(),
        ),
      );
    // Forced when the broker is away: a graceful end would wait for a connection that may never come.
    await c.endAsync(!this.connected);
  }
}

function readableVersion(payload: Buffer): number | null {
  try {
    const v = (JSON.parse(payload.toString()) as { version?: unknown }).version;
    return Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : null;
  } catch {
    return null;
  }
}
