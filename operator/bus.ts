// The operator's MQTT adapter: publishes per-node decision documents (retained, QoS 1, as identity
// `operator`), learns the retained documents (to continue versions after a leader change), and
// consumes agent acks/status/capabilities/presence, validated with the protocol codecs.
// With a token file (projected ServiceAccount token) the token is re-read before every reconnect and
// a refusal is retried with backoff (the file may not have rotated yet); a refused password is final.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../common/log.js';
import {
  readTlsFiles,
  refreshCredentialsOnReconnect,
  renewBeforeExpiry,
  TokenFile,
} from '../common/token-file.js';
import {
  type AckMessage,
  type Capabilities,
  type DecisionDocument,
  decode,
  encode,
  identities,
  type Presence,
  parseNodeTopic,
  type StatusReport,
  topics,
} from '../protocol/index.js';

export type AgentMessage =
  | { kind: 'ack'; node: string; value: AckMessage }
  | { kind: 'status'; node: string; value: StatusReport }
  | { kind: 'capabilities'; node: string; value: Capabilities }
  | { kind: 'presence'; node: string; value: Presence };

export interface BusOptions {
  url: string;
  username?: string;
  password?: string;
  /** A projected ServiceAccount token, sent as the password; re-read on every (re)connect. */
  tokenFile?: string;
  caFile?: string;
  clientId: string;
  log: Logger;
  onAgentMessage: (m: AgentMessage) => void;
  /** A retained decision document seen on the broker (ours or a previous leader's). */
  onRetainedDecision: (node: string, doc: DecisionDocument | null) => void;
  onInvalid?: (kind: string, node: string, error: string) => void;
  onConnectionChange?: (connected: boolean) => void;
}

export class DecisionBus {
  private client: MqttClient | undefined;
  /** Resolves once the retained decisions have been delivered after the first subscribe (best effort). */
  retainedSettled: Promise<void> = Promise.resolve();

  constructor(private readonly o: BusOptions) {}

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  async connect(): Promise<void> {
    const { log } = this.o;
    const token = this.o.tokenFile ? new TokenFile(this.o.tokenFile, log) : null;
    const credentials = () => ({
      ...(token ? { password: token.read() } : {}),
      ...readTlsFiles({ ca: this.o.caFile }, log),
    });
    const minPeriod = 500;
    const opts: IClientOptions = {
      clientId: this.o.clientId,
      // Informational with a token: the broker derives the identity from the token.
      username: this.o.username ?? identities.operator,
      password: this.o.password,
      ...credentials(),
      protocolVersion: 5,
      clean: true,
      reconnectPeriod: minPeriod,
      reconnectOnConnackError: Boolean(token),
      connectTimeout: 10_000,
      keepalive: 15,
      resubscribe: true,
    };
    const client = mqtt.connect(this.o.url, opts);
    this.client = client;
    refreshCredentialsOnReconnect(client, credentials);
    if (token) renewBeforeExpiry(client, token, log);
    client.on('disconnect', (packet) =>
      // e.g. 0xA0 "maximum connect time" when the token expires: the reconnect re-reads the file.
      log.info('MQTT broker sent DISCONNECT', {
        reasonCode: packet.reasonCode,
        reason: packet.properties?.reasonString,
      }),
    );
    client.on('connect', () => {
      client.options.reconnectPeriod = minPeriod;
      // Decision documents are often larger than one segment: without this Nagle's algorithm holds the
      // tail of each publish for a delayed ACK (~40 ms on Linux).
      (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
      this.o.log.info('Connected to the MQTT broker', { url: this.o.url });
      this.o.onConnectionChange?.(true);
    });
    client.on('close', () => this.o.onConnectionChange?.(false));
    client.on('error', (err) => {
      if (token && isAuthRefusal(err)) {
        // mqtt.js schedules the retry right after this event, with the period set here.
        client.options.reconnectPeriod = Math.min(30_000, (client.options.reconnectPeriod ?? minPeriod) * 2);
        log.error('MQTT broker refused the token; retrying with the token file re-read', {
          url: this.o.url,
          reasonCode: (err as { code?: unknown }).code,
          error: err.message,
          tokenFile: token.path,
          retryInMs: client.options.reconnectPeriod,
        });
      } else log.warn('MQTT client error', { error: err.message });
    });
    client.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet.retain));
    await new Promise<void>((resolve, reject) => {
      this.abortConnect = () => {
        client.removeListener('connect', onOk);
        client.removeListener('error', onErr);
        reject(new Error('closed before the first connect'));
      };
      const onErr = (err: Error) => {
        // A refused password is final; with a token file, and for anything else, mqtt.js retries.
        if (!token && isAuthRefusal(err)) {
          client.removeListener('connect', onOk);
          reject(err);
        }
      };
      const onOk = () => {
        client.removeListener('error', onErr);
        this.abortConnect = undefined;
        resolve();
      };
      client.once('connect', onOk);
      client.on('error', onErr);
    });
    let settle!: () => void;
    this.retainedSettled = new Promise<void>((r) => {
      settle = r;
    });
    await client.subscribeAsync({
      [topics.allDecisionsFilter]: { qos: 1 },
      [topics.allAgentsFilter]: { qos: 1 },
    });
    // Retained messages follow the SUBACK immediately; give them a moment to arrive.
    let quietTimer = setTimeout(settle, 300);
    this.onRetainedArrive = () => {
      clearTimeout(quietTimer);
      quietTimer = setTimeout(settle, 150);
    };
    setTimeout(settle, 2000).unref();
  }

  private onRetainedArrive: () => void = () => {};
  /** Rejects a first connect still waiting (close() during start-up, e.g. SIGTERM). */
  private abortConnect: (() => void) | undefined;

  private onMessage(topic: string, payload: Buffer, retain: boolean): void {
    const t = parseNodeTopic(topic);
    if (!t) return;
    if (t.kind === 'decisions') {
      if (retain) this.onRetainedArrive();
      if (payload.length === 0) {
        this.o.onRetainedDecision(t.node, null);
        return;
      }
      const d = decode.decisions(payload);
      if (!d.ok) {
        this.o.onInvalid?.('decisions', t.node, d.error);
        return;
      }
      this.o.onRetainedDecision(t.node, d.value);
      return;
    }
    const d = decode[t.kind](payload);
    if (!d.ok) {
      this.o.log.warn('Dropped an invalid agent message', { node: t.node, kind: t.kind, error: d.error });
      this.o.onInvalid?.(t.kind, t.node, d.error);
      return;
    }
    if ((d.value as { node: string }).node !== t.node) {
      const error = `payload names node ${(d.value as { node: string }).node}, topic ${t.node}`;
      this.o.log.warn('Dropped an invalid agent message', { node: t.node, kind: t.kind, error });
      this.o.onInvalid?.(t.kind, t.node, error);
      return;
    }
    this.o.onAgentMessage({ kind: t.kind, node: t.node, value: d.value } as AgentMessage);
  }

  /** Publishes retained at QoS 1; resolves when the broker acknowledged (PUBACK). */
  async publish(doc: DecisionDocument): Promise<void> {
    if (!this.client) throw new Error('not connected');
    if (!this.client.connected) throw new Error('MQTT broker not connected');
    await this.client.publishAsync(topics.decisions(doc.node), encode(doc), { qos: 1, retain: true });
  }

  /** Deletes the node's retained document: an empty retained payload, QoS 1 (resolves on PUBACK). */
  async clear(node: string): Promise<void> {
    if (!this.client) throw new Error('not connected');
    if (!this.client.connected) throw new Error('MQTT broker not connected');
    await this.client.publishAsync(topics.decisions(node), Buffer.alloc(0), { qos: 1, retain: true });
  }

  async close(): Promise<void> {
    this.abortConnect?.();
    this.abortConnect = undefined;
    const c = this.client;
    this.client = undefined;
    if (c) await c.endAsync(false).catch(() => c.end(true));
  }
}

/** CONNACK refusals for credentials: 3.1.1 codes 4/5, MQTT 5 0x86/0x87. */
function isAuthRefusal(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 4 || code === 5 || code === 134 || code === 135;
}
