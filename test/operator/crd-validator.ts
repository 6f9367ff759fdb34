// Validates objects against the CRD the way the API server does, approximately: structural defaults,
// the OpenAPI schema (ajv), then every x-kubernetes-validations CEL rule (@marcbachmann/cel-js).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { evaluate } from '@marcbachmann/cel-js';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import YAML from 'yaml';
import { REPO_ROOT } from '../support/cli.js';

export const CRD_PATH = path.join(REPO_ROOT, 'crds/cpuburststrategies.cpuburst.io.yaml');

type Schema = Record<string, any>;

export function loadCrd(): Schema {
  return YAML.parse(readFileSync(CRD_PATH, 'utf8'));
}

export function openApiSchema(crd: Schema = loadCrd()): Schema {
  return crd.spec.versions[0].schema.openAPIV3Schema;
}

/** Fills `default`s top-down as the API server does before validation. */
export function applyDefaults(schema: Schema, value: any): any {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => applyDefaults(schema.items ?? {}, v));
  for (const [k, sub] of Object.entries<Schema>(schema.properties ?? {})) {
    if (value[k] === undefined && sub.default !== undefined) value[k] = structuredClone(sub.default);
    if (value[k] !== undefined) value[k] = applyDefaults(sub, value[k]);
  }
  return value;
}

function celErrors(schema: Schema, value: any, at: string, out: string[]): void {
  if (value === undefined || value === null) return;
  for (const v of schema['x-kubernetes-validations'] ?? []) {
    let ok: unknown;
    try {
      ok = evaluate(v.rule, { self: value });
    } catch (err) {
      out.push(`${at}: rule ${v.rule} failed to evaluate: ${(err as Error).message}`);
      continue;
    }
    if (ok !== true) out.push(`${at}${v.fieldPath ?? ''}: ${v.message ?? `failed rule ${v.rule}`}`);
  }
  if (Array.isArray(value)) {
    for (const [i, x] of value.entries()) celErrors(schema.items ?? {}, x, `${at}[${i}]`, out);
  } else if (typeof value === 'object')
    for (const [k, sub] of Object.entries<Schema>(schema.properties ?? {}))
      celErrors(sub, value[k], `${at}.${k}`, out);
}

export function makeValidator(schema: Schema = openApiSchema()) {
  const ajv = new Ajv({ allErrors: true, strict: false });
  (addFormats as unknown as (a: Ajv) => void)(ajv);
  ajv.addFormat('int64', true).addFormat('int32', true);
  const check = ajv.compile(schema);
  return (obj: unknown): string[] => {
    const value = applyDefaults(schema, structuredClone(obj));
    const errors: string[] = [];
    if (!check(value))
      for (const e of check.errors ?? []) errors.push(`${e.instancePath || '(root)'} ${e.message}`);
    celErrors(schema, value, 'self', errors);
    return errors;
  };
}
