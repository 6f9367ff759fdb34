// Payload types of the control plane. The JSON schemas in schemas.ts describe the same shapes;
// test/protocol checks that valid samples pass and invalid ones fail.

export const PROTOCOL_API_VERSION = 'cpuburst.io/v1' as const;

export type BurstPolicy = 'none' | 'cpuBurstOnly' | 'cfsQuotaBurstOnly' | 'auto';
export const BURST_POLICIES: readonly BurstPolicy[] = ['none', 'cpuBurstOnly', 'cfsQuotaBurstOnly', 'auto'];

/** The per-pod knobs, with Koordinator's meanings and ranges. */
export interface BurstConfig {
  policy: BurstPolicy;
  /** Kernel burst as a percentage of the limit (0–10000). Clamped by the agent to what the kernel accepts. */
  cpuBurstPercent: number;
  /** Ceiling of the dynamic quota as a percentage of the limit (≥ 100). */
  cfsQuotaBurstPercent: number;
  /** Token-bucket length in seconds; -1 = unlimited. */
  cfsQuotaBurstPeriodSeconds: number;
}

/** Node-level knobs. */
export interface NodeBurstConfig {
  /** Share-pool usage threshold (0–100) for overload / cooling / idle. */
  sharePoolThresholdPercent: number;
}

export type QosClass = 'Guaranteed' | 'Burstable' | 'BestEffort';

export interface ContainerDecision {
  name: string;
  /** `<runtime>://<id>` as in pod status; empty while the container is not created yet. */
  containerID: string;
  /** CPU limit in millicores; null = no limit (nothing to burst). */
  cpuLimitMilli: number | null;
  /** init (incl. restartable sidecar) containers are included, unlike Koordinator (#2988). */
  kind: 'init' | 'sidecar' | 'app';
  running: boolean;
}

export interface PodDecision {
  uid: string;
  namespace: string;
  name: string;
  qosClass: QosClass;
  config: BurstConfig;
  /** Where the config came from, for status: e.g. "annotation", "CpuBurstStrategy/web", "ConfigMap/cluster". */
  source: string;
  containers: ContainerDecision[];
}

/** Pods whose CPU is outside the share pool (LSE/LSR requests, BE usage), for node-state accounting. */
export interface ExcludedPod {
  uid: string;
  namespace: string;
  name: string;
  qos: 'LSE' | 'LSR' | 'BE';
  qosClass: QosClass;
  cpuRequestMilli: number;
}

export interface DecisionDocument {
  apiVersion: typeof PROTOCOL_API_VERSION;
  kind: 'NodeDecisions';
  node: string;
  /** Monotonically increasing across operator restarts and leader changes (see nextVersion). */
  version: number;
  generatedAt: string;
  /** The operator replica that published it (pod name). */
  operator: string;
  nodeConfig: NodeBurstConfig;
  pods: PodDecision[];
  excludedPods: ExcludedPod[];
}

export type AckResult = 'Applied' | 'PartiallyApplied' | 'Rejected';

export interface PodError {
  uid: string;
  namespace?: string;
  name?: string;
  /** CamelCase reason, e.g. KernelRefused, CgroupNotFound, Conflict, Clamped. */
  reason: string;
  message: string;
}

export interface AckMessage {
  apiVersion: typeof PROTOCOL_API_VERSION;
  kind: 'DecisionAck';
  node: string;
  version: number;
  result: AckResult;
  time: string;
  errors: PodError[];
}

export type NodeState = 'idle' | 'cooling' | 'overload' | 'unknown';

export interface PodStatus {
  uid: string;
  namespace: string;
  name: string;
  phase: 'Applied' | 'Failed' | 'Restored' | 'Pending' | 'Skipped';
  reason?: string;
  message?: string;
  periodUs?: number;
  /** Pod-level quota now in force, µs; -1 unlimited. */
  quotaUs?: number;
  burstUs?: number;
  throttleRatio?: number;
  clamps?: string[];
  conflicts?: string[];
}

export interface StatusReport {
  apiVersion: typeof PROTOCOL_API_VERSION;
  kind: 'AgentStatus';
  node: string;
  appliedVersion: number;
  time: string;
  nodeState: NodeState;
  pods: PodStatus[];
  /** Set once `cpuburst agent --restore-all` quiesced the agent: it writes no cgroup until restarted. */
  quiesced?: boolean;
}

export interface Capabilities {
  apiVersion: typeof PROTOCOL_API_VERSION;
  kind: 'AgentCapabilities';
  node: string;
  agentVersion: string;
  kernel: string;
  cgroupVersion: 1 | 2;
  cgroupDriver: 'systemd' | 'cgroupfs' | 'unknown';
  burstSupported: boolean;
  /** Alibaba Cloud Linux accepts burst > quota; mainline refuses with EINVAL. */
  burstAboveQuota: boolean;
  cpus: number;
}

export interface Presence {
  apiVersion: typeof PROTOCOL_API_VERSION;
  kind: 'AgentPresence';
  node: string;
  online: boolean;
  time: string;
}
