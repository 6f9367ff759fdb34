// Cluster defaults from a ConfigMap: cpuburst's own or Koordinator's `cpu-burst-config` key, as is.
// Shape: {clusterStrategy: {...BurstConfig, sharePoolThresholdPercent}, nodeStrategies: [{name,
// nodeSelector, ...overrides}]}. Parsing never throws; a broken document yields an error and the
// caller keeps the config it had.
import { Ajv } from 'ajv';
import {
  type BurstConfig,
  DEFAULT_BURST_CONFIG,
  DEFAULT_NODE_CONFIG,
  formatErrors,
  type NodeBurstConfig,
} from '../../protocol/index.js';
import type { LabelSelector } from '../types.js';

export const CONFIG_MAP_KEY = 'cpu-burst-config';

/** Burst config plus the node-level threshold: Koordinator's CPUBurstStrategy. */
export type FullBurstConfig = BurstConfig & NodeBurstConfig;
export type PartialBurstConfig = Partial<FullBurstConfig>;

export interface NodeStrategy extends PartialBurstConfig {
  name?: string;
  nodeSelector: LabelSelector;
}

export interface ClusterBurstConfig {
  clusterStrategy: PartialBurstConfig;
  nodeStrategies: NodeStrategy[];
}

export const EMPTY_CLUSTER_CONFIG: ClusterBurstConfig = Object.freeze({
  clusterStrategy: {},
  nodeStrategies: [],
});

export const DEFAULT_FULL_CONFIG: Readonly<FullBurstConfig> = Object.freeze({
  ...DEFAULT_BURST_CONFIG,
  ...DEFAULT_NODE_CONFIG,
});

const fields = {
  policy: { enum: ['none', 'cpuBurstOnly', 'cfsQuotaBurstOnly', 'auto'] },
  cpuBurstPercent: { type: 'integer', minimum: 0, maximum: 10000 },
  cfsQuotaBurstPercent: { type: 'integer', minimum: 100, maximum: 10000 },
  cfsQuotaBurstPeriodSeconds: { type: 'integer', minimum: -1 },
  sharePoolThresholdPercent: { type: 'integer', minimum: 0, maximum: 100 },
} as const;

const selectorSchema = {
  type: 'object',
  properties: {
    matchLabels: { type: 'object', additionalProperties: { type: 'string' } },
    matchExpressions: {
      type: 'array',
      items: {
        type: 'object',
        required: ['key', 'operator'],
        properties: {
          key: { type: 'string' },
          operator: { enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] },
          values: { type: 'array', items: { type: 'string' } },
        },
      },
    },
  },
} as const;

// Unknown keys are tolerated (Koordinator may add fields); known keys must be in range.
const configMapSchema = {
  type: 'object',
  properties: {
    clusterStrategy: { type: 'object', properties: fields },
    nodeStrategies: {
      type: 'array',
      items: {
        type: 'object',
        required: ['nodeSelector'],
        properties: { name: { type: 'string' }, nodeSelector: selectorSchema, ...fields },
      },
    },
  },
} as const;

const validateDoc = new Ajv({ allErrors: true, strict: false }).compile(configMapSchema);

const KNOWN = Object.keys(fields) as (keyof FullBurstConfig)[];

function pick(o: Record<string, unknown>): PartialBurstConfig {
  const out: Record<string, unknown> = {};
  for (const k of KNOWN) if (o[k] !== undefined && o[k] !== null) out[k] = o[k];
  return out as PartialBurstConfig;
}

export type ParsedConfigMap =
  | { ok: true; config: ClusterBurstConfig; present: boolean }
  | { ok: false; error: string };

/** Parses the ConfigMap's data. A missing ConfigMap or key is valid: the built-in defaults apply. */
export function parseConfigMapData(data: Record<string, string> | undefined): ParsedConfigMap {
  const raw = data?.[CONFIG_MAP_KEY];
  if (raw === undefined || raw.trim() === '')
    return { ok: true, config: EMPTY_CLUSTER_CONFIG, present: false };
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch (err) {
    return { ok: false, error: `key ${CONFIG_MAP_KEY} is not valid JSON: ${(err as Error).message}` };
  }
  if (!validateDoc(doc))
    return { ok: false, error: `key ${CONFIG_MAP_KEY}: ${formatErrors(validateDoc.errors)}` };
  const d = doc as { clusterStrategy?: Record<string, unknown>; nodeStrategies?: Record<string, unknown>[] };
  const nodeStrategies: NodeStrategy[] = [];
  for (const [i, ns] of (d.nodeStrategies ?? []).entries()) {
    const sel = ns.nodeSelector as LabelSelector;
    // Koordinator's webhook rejects an empty nodeSelector (it would match every node).
    if (!Object.keys(sel.matchLabels ?? {}).length && !(sel.matchExpressions ?? []).length)
      return { ok: false, error: `key ${CONFIG_MAP_KEY}: nodeStrategies[${i}] has an empty nodeSelector` };
    const entry: NodeStrategy = { ...pick(ns), nodeSelector: sel };
    if (typeof ns.name === 'string') entry.name = ns.name;
    nodeStrategies.push(entry);
  }
  return {
    ok: true,
    present: true,
    config: { clusterStrategy: pick(d.clusterStrategy ?? {}), nodeStrategies },
  };
}

/** Non-undefined fields of each layer override the previous one (Koordinator's util.MergeCfg). */
export function mergeConfig<T extends object>(base: T, ...layers: (Partial<T> | undefined)[]): T {
  const out = { ...base } as Record<string, unknown>;
  for (const layer of layers)
    for (const [k, v] of Object.entries(layer ?? {})) if (v !== undefined && v !== null) out[k] = v;
  return out as T;
}

export function toBurstConfig(c: FullBurstConfig): BurstConfig {
  return {
    policy: c.policy,
    cpuBurstPercent: c.cpuBurstPercent,
    cfsQuotaBurstPercent: c.cfsQuotaBurstPercent,
    cfsQuotaBurstPeriodSeconds: c.cfsQuotaBurstPeriodSeconds,
  };
}
