// Operator metrics (prom-client, own Registry, cpuburst_ prefix, base units, counters end in _total).
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export function createOperatorMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry });
  const m = {
    registry,
    reconcileTotal: new Counter({
      name: 'cpuburst_reconcile_total',
      help: 'Reconciles by controller and result',
      labelNames: ['controller', 'result'] as const,
      registers: [registry],
    }),
    reconcileErrors: new Counter({
      name: 'cpuburst_reconcile_errors_total',
      help: 'Reconciles that failed (and were requeued with backoff)',
      labelNames: ['controller'] as const,
      registers: [registry],
    }),
    reconcileDuration: new Histogram({
      name: 'cpuburst_reconcile_duration_seconds',
      help: 'Reconcile duration by controller',
      labelNames: ['controller'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'cpuburst_workqueue_depth',
      help: 'Keys waiting in the work queue',
      registers: [registry],
    }),
    queueRetries: new Counter({
      name: 'cpuburst_workqueue_retries_total',
      help: 'Keys requeued after a failed reconcile',
      registers: [registry],
    }),
    decisionsPublished: new Counter({
      name: 'cpuburst_decisions_published_total',
      help: 'Decision documents published to nodes, by result',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    agentMessages: new Counter({
      name: 'cpuburst_agent_messages_total',
      help: 'Messages received from agents by kind and result (valid, invalid)',
      labelNames: ['kind', 'result'] as const,
      registers: [registry],
    }),
    acks: new Counter({
      name: 'cpuburst_acks_total',
      help: 'Decision acks received, by result',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    leader: new Gauge({
      name: 'cpuburst_leader_is_leader',
      help: '1 while this replica is the leader',
      registers: [registry],
    }),
    watchEvents: new Counter({
      name: 'cpuburst_watch_events_total',
      help: 'Reflector activity by resource and kind (list, watch, event, error, relist410, stale)',
      labelNames: ['resource', 'what'] as const,
      registers: [registry],
    }),
    events: new Counter({
      name: 'cpuburst_kube_events_total',
      help: 'Kubernetes Events by result (sent, deduped, dropped, error)',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    configErrors: new Counter({
      name: 'cpuburst_config_errors_total',
      help: 'ConfigMap contents rejected (the previous config was kept)',
      registers: [registry],
    }),
  };
  return m;
}

export type OperatorMetrics = ReturnType<typeof createOperatorMetrics>;
