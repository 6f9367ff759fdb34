// The CpuBurstStrategy custom resource as the operator reads it (crds/cpuburststrategies.cpuburst.io.yaml).
import type { BurstPolicy } from '../protocol/index.js';

export const CRD_GROUP = 'cpuburst.io';
export const CRD_VERSION = 'v1alpha1';
export const CRD_PLURAL = 'cpuburststrategies';
export const CRD_KIND = 'CpuBurstStrategy';

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface ScheduleWindow {
  start: string;
  end?: string;
  duration?: string;
}

export interface StrategySchedule {
  timeZone?: string;
  windows: ScheduleWindow[];
}

export interface StrategySpec {
  policy: BurstPolicy;
  cpuBurstPercent?: number;
  cfsQuotaBurstPercent?: number;
  cfsQuotaBurstPeriodSeconds?: number;
  sharePoolThresholdPercent?: number;
  priority?: number;
  dryRun?: boolean;
  nodeSelector?: LabelSelector;
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  schedule?: StrategySchedule;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface PodReason {
  namespace: string;
  name: string;
  node?: string;
  reason: string;
  message?: string;
}

export interface StrategyStatus {
  observedGeneration?: number;
  active?: boolean;
  nodesMatched?: number;
  podsMatched?: number;
  podsApplied?: number;
  podsFailed?: number;
  podsExcluded?: number;
  podsOverridden?: number;
  exclusions?: PodReason[];
  failures?: PodReason[];
  conditions?: Condition[];
}

export interface CpuBurstStrategy {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    creationTimestamp?: string | Date;
    labels?: Record<string, string>;
  };
  spec: StrategySpec;
  status?: StrategyStatus;
}
