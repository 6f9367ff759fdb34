// Validates rendered objects the way an API server would reject them: the upstream OpenAPI schemas
// per kind (kubernetes-models 4.5.1 ajv validators), plus unknown-field detection (kubeconform
// --strict style) from @kubernetes/client-node's generated type maps, plus the CRD's own
// openAPIV3Schema for custom resources. prometheus-operator and cert-manager kinds get a small
// structural schema of the fields the chart sets.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { REPO_ROOT } from '../support/cli.js';
import type { K8sObject } from './helm.js';

type Attr = { name: string; baseName: string; type: string };
type ModelClass = { getAttributeTypeMap(): Attr[] };
const models = k8s as unknown as Record<string, ModelClass | undefined>;

/** Unknown-field paths below `value` for the client-node model `type`. */
export function unknownFields(value: unknown, type: string, at: string): string[] {
  if (value === null || value === undefined) return [];
  const arr = /^Array<(.+)>$/.exec(type);
  if (arr)
    return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, arr[1]!, `${at}[${i}]`)) : [];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    return typeof value === 'object'
      ? Object.entries(value as object).flatMap(([k, v]) => unknownFields(v, map[1]!, `${at}.${k}`))
      : [];
  }
  const model = models[type];
  if (!model || typeof model.getAttributeTypeMap !== 'function' || typeof value !== 'object') return [];
  const attrs = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  const out: string[] = [];
  for (const [k, v] of Object.entries(value as object)) {
    const t = attrs.get(k);
    if (t === undefined) out.push(`${at}.${k}`);
    else out.push(...unknownFields(v, t, `${at}.${k}`));
  }
  return out;
}

function modulePath(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  return group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
}

const ajv = new Ajv({ strict: false, allErrors: true, logger: false });

const crdValidators = new Map<string, ReturnType<Ajv['compile']>>();
function crValidator(apiVersion: string, kind: string): ReturnType<Ajv['compile']> | undefined {
  const key = `${apiVersion}/${kind}`;
  if (!crdValidators.has(key)) {
    const crd = parse(
      readFileSync(path.join(REPO_ROOT, 'charts/cpuburst/crds/cpuburststrategies.cpuburst.io.yaml'), 'utf8'),
    );
    if (`${crd.spec.group}` !== apiVersion.split('/')[0] || crd.spec.names.kind !== kind) return undefined;
    const version = crd.spec.versions.find((v: any) => `${crd.spec.group}/${v.name}` === apiVersion);
    if (!version) return undefined;
    crdValidators.set(key, ajv.compile(version.schema.openAPIV3Schema));
  }
  return crdValidators.get(key);
}

const str = { type: 'string', minLength: 1 };
const labelMap = { type: 'object', additionalProperties: { type: 'string' } };
const extraSchemas: Record<string, object> = {
  'monitoring.coreos.com/v1/ServiceMonitor': {
    type: 'object',
    required: ['spec'],
    properties: {
      spec: {
        type: 'object',
        additionalProperties: false,
        required: ['selector', 'endpoints'],
        properties: {
          jobLabel: str,
          selector: { type: 'object', properties: { matchLabels: labelMap } },
          namespaceSelector: { type: 'object', properties: { matchNames: { type: 'array', items: str } } },
          endpoints: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['port'],
              properties: {
                port: str,
                path: { type: 'string', pattern: '^/' },
                interval: { type: 'string', pattern: '^[0-9]+(ms|s|m|h)$' },
                scrapeTimeout: { type: 'string', pattern: '^[0-9]+(ms|s|m|h)$' },
                relabelings: { type: 'array', items: { type: 'object' } },
              },
            },
          },
        },
      },
    },
  },
  'cert-manager.io/v1/Certificate': {
    type: 'object',
    required: ['spec'],
    properties: {
      spec: {
        type: 'object',
        additionalProperties: false,
        required: ['secretName', 'issuerRef'],
        properties: {
          secretName: str,
          commonName: { type: 'string', maxLength: 64 },
          duration: { type: 'string', pattern: '^([0-9]+(ns|us|ms|s|m|h))+$' },
          renewBefore: { type: 'string', pattern: '^([0-9]+(ns|us|ms|s|m|h))+$' },
          dnsNames: { type: 'array', minItems: 1, items: str },
          privateKey: {
            type: 'object',
            properties: {
              algorithm: { enum: ['RSA', 'ECDSA', 'Ed25519'] },
              size: { type: 'integer' },
              rotationPolicy: { enum: ['Never', 'Always'] },
            },
          },
          usages: { type: 'array', items: str },
          issuerRef: {
            type: 'object',
            required: ['name'],
            properties: { name: str, kind: { enum: ['Issuer', 'ClusterIssuer'] }, group: str },
          },
        },
      },
    },
  },
};

/** Every reason the API server (with its OpenAPI and strict field validation) would refuse `obj`. */
export async function validateObject(obj: K8sObject): Promise<string[]> {
  const id = `${obj.kind}/${obj.metadata?.name}`;
  const extra = extraSchemas[`${obj.apiVersion}/${obj.kind}`];
  if (extra) {
    const v = ajv.compile(extra);
    return v(obj) ? [] : (v.errors ?? []).map((e) => `${id}: ${e.instancePath} ${e.message}`);
  }
  const cr = crValidator(obj.apiVersion, obj.kind);
  if (cr) return cr(obj) ? [] : (cr.errors ?? []).map((e) => `${id}: ${e.instancePath} ${e.message}`);

  let Model: any;
  try {
    Model = (await import(modulePath(obj.apiVersion, obj.kind)))[obj.kind];
  } catch {
    return [`${id}: no schema for ${obj.apiVersion} ${obj.kind}`];
  }
  const errors: string[] = [];
  try {
    new Model(structuredClone(obj)).validate();
  } catch (err) {
    errors.push(`${id}: ${(err as Error).message}`);
  }
  const version = obj.apiVersion.split('/').pop()!;
  const type = `${version.charAt(0).toUpperCase()}${version.slice(1)}${obj.kind}`;
  if (!models[type]) errors.push(`${id}: no client-node model ${type} to check field names`);
  else errors.push(...unknownFields(obj, type, '').map((p) => `${id}: unknown field ${p.slice(1)}`));
  return errors;
}
