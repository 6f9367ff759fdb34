// The agent's Prometheus metrics, on a dedicated Registry.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export const NODE_STATES = ['idle', 'cooling', 'overload', 'unknown'] as const;

export function createAgentMetrics() {
  const registry = new Registry();
  const podLabels = ['namespace', 'pod', 'uid'] as const;
  const ctrLabels = ['namespace', 'pod', 'uid', 'container'] as const;
  const m = {
    registry,
    throttleRatio: new Gauge({
      name: 'cpuburst_agent_throttle_ratio',
      help: 'Share of CFS periods throttled in the last round (Δnr_throttled/Δnr_periods)',
      labelNames: ctrLabels,
      registers: [registry],
    }),
    throttledSeconds: new Counter({
      name: 'cpuburst_agent_throttled_seconds_total',
      help: 'Time spent throttled (cpu.stat throttled_time/throttled_usec deltas)',
      labelNames: ctrLabels,
      registers: [registry],
    }),
    bursts: new Counter({
      name: 'cpuburst_agent_bursts_total',
      help: 'Periods in which a burst occurred (cpu.stat nr_bursts deltas)',
      labelNames: ctrLabels,
      registers: [registry],
    }),
    burstSeconds: new Counter({
      name: 'cpuburst_agent_burst_seconds_total',
      help: 'CPU time used above quota (cpu.stat burst_time/burst_usec deltas)',
      labelNames: ctrLabels,
      registers: [registry],
    }),
    podQuota: new Gauge({
      name: 'cpuburst_agent_pod_quota_seconds',
      help: 'Pod cgroup CFS quota per period now in force (-1 = unlimited)',
      labelNames: podLabels,
      registers: [registry],
    }),
    podBurst: new Gauge({
      name: 'cpuburst_agent_pod_burst_seconds',
      help: 'Pod cgroup CFS burst now in force',
      labelNames: podLabels,
      registers: [registry],
    }),
    containerQuota: new Gauge({
      name: 'cpuburst_agent_container_quota_seconds',
      help: 'Container cgroup CFS quota per period now in force (-1 = unlimited)',
      labelNames: ctrLabels,
      registers: [registry],
    }),
    tokens: new Gauge({
      name: 'cpuburst_agent_burst_budget_tokens',
      help: 'Token-bucket level in percent-seconds above the limit still allowed (cfsQuotaBurstPeriodSeconds)',
      labelNames: ctrLabels,
      registers: [registry],
    }),
    nodeState: new Gauge({
      name: 'cpuburst_agent_node_state',
      help: 'Node burst state from share-pool usage (1 = current state)',
      labelNames: ['state'],
      registers: [registry],
    }),
    sharePoolRatio: new Gauge({
      name: 'cpuburst_agent_share_pool_usage_ratio',
      help: 'Share-pool usage / share-pool capacity',
      registers: [registry],
    }),
    writes: new Counter({
      name: 'cpuburst_agent_cgroup_writes_total',
      help: 'Cgroup writes by result (ok, KernelRefused, CgroupNotFound, PermissionDenied, ...)',
      labelNames: ['result'],
      registers: [registry],
    }),
    clamps: new Counter({
      name: 'cpuburst_agent_clamps_total',
      help: 'Targets clamped to what the kernel accepts, by reason',
      labelNames: ['reason'],
      registers: [registry],
    }),
    conflicts: new Counter({
      name: 'cpuburst_agent_conflicts_total',
      help: 'Values changed by another writer since the agent wrote them',
      labelNames: ['field'],
      registers: [registry],
    }),
    restores: new Counter({
      name: 'cpuburst_agent_restores_total',
      help: 'Pods whose original cgroup values were restored, by trigger',
      labelNames: ['trigger'],
      registers: [registry],
    }),
    decisionsReceived: new Counter({
      name: 'cpuburst_agent_decisions_received_total',
      help: 'Decision documents received, by source',
      labelNames: ['source'],
      registers: [registry],
    }),
    decisionsRejected: new Counter({
      name: 'cpuburst_agent_decisions_rejected_total',
      help: 'Decision documents rejected (invalid, stale, wrong node), by source and reason',
      labelNames: ['source', 'reason'],
      registers: [registry],
    }),
    appliedVersion: new Gauge({
      name: 'cpuburst_agent_applied_version',
      help: 'Version of the decision document being enforced',
      registers: [registry],
    }),
    quiesced: new Gauge({
      name: 'cpuburst_agent_quiesced',
      help: '1 once --restore-all has quiesced this agent (no cgroup writes until it restarts)',
      registers: [registry],
    }),
    roundDuration: new Histogram({
      name: 'cpuburst_agent_round_duration_seconds',
      help: 'Duration of one control-loop round',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
  };
  for (const s of NODE_STATES) m.nodeState.set({ state: s }, s === 'unknown' ? 1 : 0);
  m.quiesced.set(0);
  return m;
}

export type AgentMetrics = ReturnType<typeof createAgentMetrics>;
