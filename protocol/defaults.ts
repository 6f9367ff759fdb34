// Built-in defaults. Same meanings as Koordinator, except cpuBurstPercent: Koordinator's 1000 %
// is burst = 10 × quota, which mainline kernels refuse with EINVAL. 100 % (burst = quota) is the
// largest value mainline accepts, so that is ours.
import type { BurstConfig, NodeBurstConfig } from './types.js';

export const DEFAULT_BURST_CONFIG: Readonly<BurstConfig> = Object.freeze({
  policy: 'none',
  cpuBurstPercent: 100,
  cfsQuotaBurstPercent: 300,
  cfsQuotaBurstPeriodSeconds: -1,
});

export const DEFAULT_NODE_CONFIG: Readonly<NodeBurstConfig> = Object.freeze({
  sharePoolThresholdPercent: 50,
});

/** Pod annotations of the API (the operator reads them; the chart's NOTES show them). */
export const ANNOTATION_ENABLED = 'cpuburst.io/enabled';
export const ANNOTATION_CONFIG = 'cpuburst.io/config';
/** Koordinator's QoS label; LSE/LSR/BE pods are excluded as Koordinator does. */
export const LABEL_KOORD_QOS = 'koordinator.sh/qosClass';
