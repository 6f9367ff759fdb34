// Prometheus metrics of the broker, on a dedicated registry (prefix cpuburst_broker_).
import { Counter, Gauge, Registry } from 'prom-client';
import { REFUSAL_REASONS } from './auth/refusals.js';

export function createMetrics() {
  const registry = new Registry();
  const m = {
    registry,
    connections: new Gauge({
      name: 'cpuburst_broker_connections',
      help: 'Connected MQTT clients',
      registers: [registry],
    }),
    sessions: new Gauge({
      name: 'cpuburst_broker_sessions',
      help: 'Connected clients with a persistent session',
      registers: [registry],
    }),
    messages: new Counter({
      name: 'cpuburst_broker_messages_total',
      help: 'PUBLISH messages by direction (received from clients, sent to clients) and QoS',
      labelNames: ['direction', 'qos'] as const,
      registers: [registry],
    }),
    bytes: new Counter({
      name: 'cpuburst_broker_payload_bytes_total',
      help: 'PUBLISH payload bytes by direction',
      labelNames: ['direction'] as const,
      registers: [registry],
    }),
    dropped: new Counter({
      name: 'cpuburst_broker_messages_dropped_total',
      help: 'Messages dropped by reason (acl, payload_too_large, rate_limited, invalid_topic, invalid_delay, reserved_topic)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'cpuburst_broker_auth_failures_total',
      help: 'Refused connections by reason (bad_credentials, not_authorized, banned, rate_limited)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    authRefusals: new Counter({
      name: 'cpuburst_broker_auth_refusals_total',
      help: 'ServiceAccount tokens and client certificates refused, by reason (expired, bad_audience, pod_gone, ...)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    tokenExpiries: new Counter({
      name: 'cpuburst_broker_credential_expiry_disconnects_total',
      help: 'Clients disconnected because their token or certificate expired',
      registers: [registry],
    }),
    aclDenials: new Counter({
      name: 'cpuburst_broker_acl_denials_total',
      help: 'ACL denials by action (publish, subscribe)',
      labelNames: ['action'] as const,
      registers: [registry],
    }),
    retained: new Gauge({
      name: 'cpuburst_broker_retained_messages',
      help: 'Retained messages known to this replica',
      registers: [registry],
    }),
    clientErrors: new Counter({
      name: 'cpuburst_broker_client_errors_total',
      help: 'Client connections closed on a protocol or socket error',
      registers: [registry],
    }),
  };
  // Every reason exists from the start, so dashboards and rate() see 0 rather than no series.
  for (const reason of REFUSAL_REASONS) m.authRefusals.inc({ reason }, 0);
  return m;
}

export type BrokerMetrics = ReturnType<typeof createMetrics>;
