// JSON schemas (ajv) for every control-plane payload. Receivers validate before use:
// an invalid message is counted, logged and dropped, never applied.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type {
  AckMessage,
  BurstConfig,
  Capabilities,
  DecisionDocument,
  Presence,
  StatusReport,
} from './types.js';

const int = { type: 'integer' } as const;
const str = { type: 'string' } as const;
const nodeName = { type: 'string', pattern: '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$' } as const;
const apiVersion = { const: 'cpuburst.io/v1' } as const;
const qosClass = { enum: ['Guaranteed', 'Burstable', 'BestEffort'] } as const;

/** Ranges as Koordinator's CPUBurstConfig, so a Koordinator config validates unchanged. */
export const burstConfigSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['policy', 'cpuBurstPercent', 'cfsQuotaBurstPercent', 'cfsQuotaBurstPeriodSeconds'],
  properties: {
    policy: { enum: ['none', 'cpuBurstOnly', 'cfsQuotaBurstOnly', 'auto'] },
    cpuBurstPercent: { type: 'integer', minimum: 0, maximum: 10000 },
    cfsQuotaBurstPercent: { type: 'integer', minimum: 100, maximum: 10000 },
    cfsQuotaBurstPeriodSeconds: { type: 'integer', minimum: -1 },
  },
} as const;

/** The `cpuburst.io/config` pod annotation: any subset of the burst config, nothing else. */
export const podOverrideSchema = {
  ...burstConfigSchema,
  required: [],
} as const;

const containerSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'containerID', 'cpuLimitMilli', 'kind', 'running'],
  properties: {
    name: str,
    containerID: str,
    cpuLimitMilli: { anyOf: [{ type: 'integer', minimum: 0 }, { type: 'null' }] },
    kind: { enum: ['init', 'sidecar', 'app'] },
    running: { type: 'boolean' },
  },
} as const;

export const decisionDocumentSchema = {
  type: 'object',
  additionalProperties: false,
  required: [
    'apiVersion',
    'kind',
    'node',
    'version',
    'generatedAt',
    'operator',
    'nodeConfig',
    'pods',
    'excludedPods',
  ],
  properties: {
    apiVersion,
    kind: { const: 'NodeDecisions' },
    node: nodeName,
    version: { type: 'integer', minimum: 1 },
    generatedAt: str,
    operator: str,
    nodeConfig: {
      type: 'object',
      additionalProperties: false,
      required: ['sharePoolThresholdPercent'],
      properties: { sharePoolThresholdPercent: { type: 'integer', minimum: 0, maximum: 100 } },
    },
    pods: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['uid', 'namespace', 'name', 'qosClass', 'config', 'source', 'containers'],
        properties: {
          uid: { type: 'string', minLength: 1 },
          namespace: str,
          name: str,
          qosClass,
          config: burstConfigSchema,
          source: str,
          containers: { type: 'array', items: containerSchema },
        },
      },
    },
    excludedPods: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['uid', 'namespace', 'name', 'qos', 'qosClass', 'cpuRequestMilli'],
        properties: {
          uid: { type: 'string', minLength: 1 },
          namespace: str,
          name: str,
          qos: { enum: ['LSE', 'LSR', 'BE'] },
          qosClass,
          cpuRequestMilli: { type: 'integer', minimum: 0 },
        },
      },
    },
  },
} as const;

const podErrorSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['uid', 'reason', 'message'],
  properties: { uid: str, namespace: str, name: str, reason: str, message: str },
} as const;

export const ackSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['apiVersion', 'kind', 'node', 'version', 'result', 'time', 'errors'],
  properties: {
    apiVersion,
    kind: { const: 'DecisionAck' },
    node: nodeName,
    version: { type: 'integer', minimum: 0 },
    result: { enum: ['Applied', 'PartiallyApplied', 'Rejected'] },
    time: str,
    errors: { type: 'array', items: podErrorSchema },
  },
} as const;

export const statusReportSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['apiVersion', 'kind', 'node', 'appliedVersion', 'time', 'nodeState', 'pods'],
  properties: {
    apiVersion,
    kind: { const: 'AgentStatus' },
    node: nodeName,
    appliedVersion: { type: 'integer', minimum: 0 },
    time: str,
    nodeState: { enum: ['idle', 'cooling', 'overload', 'unknown'] },
    pods: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['uid', 'namespace', 'name', 'phase'],
        properties: {
          uid: str,
          namespace: str,
          name: str,
          phase: { enum: ['Applied', 'Failed', 'Restored', 'Pending', 'Skipped'] },
          reason: str,
          message: str,
          periodUs: int,
          quotaUs: int,
          burstUs: int,
          throttleRatio: { type: 'number', minimum: 0, maximum: 1 },
          clamps: { type: 'array', items: str },
          conflicts: { type: 'array', items: str },
        },
      },
    },
    quiesced: { type: 'boolean' },
  },
} as const;

export const capabilitiesSchema = {
  type: 'object',
  additionalProperties: false,
  required: [
    'apiVersion',
    'kind',
    'node',
    'agentVersion',
    'kernel',
    'cgroupVersion',
    'cgroupDriver',
    'burstSupported',
    'burstAboveQuota',
    'cpus',
  ],
  properties: {
    apiVersion,
    kind: { const: 'AgentCapabilities' },
    node: nodeName,
    agentVersion: str,
    kernel: str,
    cgroupVersion: { enum: [1, 2] },
    cgroupDriver: { enum: ['systemd', 'cgroupfs', 'unknown'] },
    burstSupported: { type: 'boolean' },
    burstAboveQuota: { type: 'boolean' },
    cpus: { type: 'integer', minimum: 1 },
  },
} as const;

export const presenceSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['apiVersion', 'kind', 'node', 'online', 'time'],
  properties: {
    apiVersion,
    kind: { const: 'AgentPresence' },
    node: nodeName,
    online: { type: 'boolean' },
    time: str,
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: true });

export interface Validator<T> {
  (value: unknown): value is T;
  errors: () => string;
}

function validator<T>(schema: object): Validator<T> {
  const fn: ValidateFunction = ajv.compile(schema);
  const v = ((value: unknown) => fn(value)) as Validator<T>;
  v.errors = () => formatErrors(fn.errors);
  return v;
}

export function formatErrors(errors: ErrorObject[] | null | undefined): string {
  if (!errors?.length) return '';
  return errors
    .map(
      (e) =>
        `${e.instancePath || '(root)'} ${e.message ?? 'is invalid'}${e.params && 'allowedValues' in e.params ? ` (${(e.params.allowedValues as unknown[]).join(', ')})` : ''}`,
    )
    .join('; ');
}

export const validate = {
  decisions: validator<DecisionDocument>(decisionDocumentSchema),
  ack: validator<AckMessage>(ackSchema),
  status: validator<StatusReport>(statusReportSchema),
  capabilities: validator<Capabilities>(capabilitiesSchema),
  presence: validator<Presence>(presenceSchema),
  burstConfig: validator<BurstConfig>(burstConfigSchema),
  podOverride: validator<Partial<BurstConfig>>(podOverrideSchema),
};
