// Custom resource admission from the CRD's openAPIV3Schema: prune unknown fields, apply defaults,
// validate with ajv, then run x-kubernetes-validations CEL rules (@marcbachmann/cel-js, approximate:
// no Kubernetes CEL libraries, no cost limits). Messages follow the real server's wording.
import { evaluate, parse as parseCel } from '@marcbachmann/cel-js';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { StatusCause } from './errors.js';
import { clone } from './patch.js';
import type { ResourceType } from './resources.js';
import type { Obj } from './store.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

type Schema = Record<string, any>;

const ajv = new Ajv({ strict: false, allErrors: true, verbose: true, validateFormats: true });
addFormats(ajv);
for (const f of ['int32', 'int64', 'float', 'double', 'byte', 'binary', 'password', 'quantity'])
  ajv.addFormat(f, true);

const compiled = new WeakMap<Schema, ValidateFunction>();

export function versionSchema(t: ResourceType): Schema | undefined {
  const v = (t.crd?.spec?.versions ?? []).find((x: Obj) => x.name === t.version);
  return v?.schema?.openAPIV3Schema;
}

/** kubernetes-only keywords → JSON Schema ajv understands. */
function toAjvSchema(s: Schema): Schema {
  if (!s || typeof s !== 'object') return s;
  if (Array.isArray(s)) return s.map(toAjvSchema) as any;
  const out: Schema = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-kubernetes-') || k === 'default' || k === 'description' || k === 'example') continue;
    if (k === 'properties' || k === 'patternProperties' || k === 'definitions') {
      out[k] = Object.fromEntries(
        Object.entries(v as Schema).map(([pk, pv]) => [pk, toAjvSchema(pv as Schema)]),
      );
    } else if (typeof v === 'object' && v !== null) out[k] = toAjvSchema(v as Schema);
    else out[k] = v;
  }
  if (s['x-kubernetes-int-or-string'] && !s.type && !s.anyOf)
    out.anyOf = [{ type: 'integer' }, { type: 'string' }];
  return out;
}

function fieldPath(instancePath: string): string {
  if (!instancePath) return '';
  return instancePath
    .slice(1)
    .split('/')
    .map((seg) => seg.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, seg) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), '');
}

function goValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'object') return Array.isArray(v) ? '"array"' : '"object"';
  return String(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function causeFromAjv(e: ErrorObject): StatusCause {
  const field = fieldPath(e.instancePath);
  const p = e.params as Record<string, any>;
  const f = field || '<root>';
  const v = e.data;
  switch (e.keyword) {
    case 'required': {
      const missing = field ? `${field}.${p.missingProperty}` : String(p.missingProperty);
      return { reason: 'FieldValueRequired', field: missing, message: 'Required value' };
    }
    case 'enum':
      return {
        reason: 'FieldValueNotSupported',
        field: f,
        message: `Unsupported value: ${goValue(v)}: supported values: ${(p.allowedValues as unknown[]).map((x) => JSON.stringify(x)).join(', ')}`,
      };
    case 'type':
      return {
        reason: 'FieldValueTypeInvalid',
        field: f,
        message: `Invalid value: "${typeName(v)}": ${f} in body must be of type ${p.type}: "${typeName(v)}"`,
      };
    case 'maximum':
      return {
        reason: 'FieldValueInvalid',
        field: f,
        message: `Invalid value: ${goValue(v)}: ${f} in body should be less than or equal to ${p.limit}`,
      };
    case 'minimum':
      return {
        reason: 'FieldValueInvalid',
        field: f,
        message: `Invalid value: ${goValue(v)}: ${f} in body should be greater than or equal to ${p.limit}`,
      };
    case 'exclusiveMaximum':
      return {
        reason: 'FieldValueInvalid',
        field: f,
        message: `Invalid value: ${goValue(v)}: ${f} in body should be less than ${p.limit}`,
      };
    case 'exclusiveMinimum':
      return {
        reason: 'FieldValueInvalid',
        field: f,
        message: `Invalid value: ${goValue(v)}: ${f} in body should be greater than ${p.limit}`,
      };
    case 'multipleOf':
      return {
        reason: 'FieldValueInvalid',
        field: f,
        message: `Invalid value: ${goValue(v)}: ${f} in body should be a multiple of ${p.multipleOf}`,
      };
    case 'pattern':
      return {
        reason: 'FieldValueInvalid',
        field: f,
        message: `Invalid value: ${goValue(v)}: ${f} in body should match '${p.pattern}'`,
      };
    case 'maxLength':
      return {
        reason: 'FieldValueTooLong',
        field: f,
        message: `Too long: may not be more than ${p.limit} bytes`,
      };
    case 'minLength':
      return {
        reason: 'FieldValueInvalid',
        field: f,
        message: `Invalid value: ${goValue(v)}: ${f} in body should be at least ${p.limit} chars long`,
      };
    case 'maxItems':
      return {
        reason: 'FieldValueTooMany',
        field: f,
        message: `Too many: ${(v as unknown[]).length}: must have at most ${p.limit} items`,
      };
    case 'minItems':
      return {
        reason: 'FieldValueInvalid',
        field: f,
        message: `Invalid value: ${(v as unknown[]).length}: ${f} in body should have at least ${p.limit} items`,
      };
    case 'maxProperties':
      return {
        reason: 'FieldValueTooMany',
        field: f,
        message: `Too many: ${Object.keys(v as object).length}: must have at most ${p.limit} items`,
      };
    case 'minProperties':
      return {
        reason: 'FieldValueInvalid',
        field: f,
        message: `Invalid value: ${Object.keys(v as object).length}: ${f} in body should have at least ${p.limit} properties`,
      };
    case 'format':
      return {
        reason: 'FieldValueInvalid',
        field: f,
        message: `Invalid value: ${goValue(v)}: ${f} in body must be of type ${p.format}: ${goValue(v)}`,
      };
    default:
      return {
        reason: 'FieldValueInvalid',
        field: f,
        message: `Invalid value: ${goValue(v)}: ${f} in body ${e.message}`,
      };
  }
}

/** Removes fields the schema does not declare; returns their paths (for fieldValidation=Strict). */
export function prune(schema: Schema, value: any, path = '', root = true): string[] {
  const dropped: string[] = [];
  if (!schema || value === null || typeof value !== 'object') return dropped;
  if (schema['x-kubernetes-preserve-unknown-fields'] && !schema.properties) return dropped;
  if (Array.isArray(value)) {
    if (schema.items)
      for (const [i, x] of value.entries()) dropped.push(...prune(schema.items, x, `${path}[${i}]`, false));
    return dropped;
  }
  const props: Schema = schema.properties ?? {};
  for (const k of Object.keys(value)) {
    const sub = path ? `${path}.${k}` : k;
    if (root && (k === 'apiVersion' || k === 'kind' || k === 'metadata')) continue;
    if (schema['x-kubernetes-embedded-resource'] && (k === 'apiVersion' || k === 'kind' || k === 'metadata'))
      continue;
    if (props[k]) dropped.push(...prune(props[k], value[k], sub, false));
    else if (schema.additionalProperties && typeof schema.additionalProperties === 'object')
      dropped.push(...prune(schema.additionalProperties, value[k], sub, false));
    else if (schema.additionalProperties === true || schema['x-kubernetes-preserve-unknown-fields']) continue;
    else {
      delete value[k];
      dropped.push(sub);
    }
  }
  return dropped;
}

/** Sets `default`s of absent properties, recursively (also inside defaulted values). */
export function applyDefaults(schema: Schema, value: any): void {
  if (!schema || value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    if (schema.items) for (const x of value) applyDefaults(schema.items, x);
    return;
  }
  for (const [k, sub] of Object.entries((schema.properties ?? {}) as Schema)) {
    if (value[k] === undefined && sub.default !== undefined) value[k] = clone(sub.default);
    if (value[k] !== undefined) applyDefaults(sub, value[k]);
  }
  if (schema.additionalProperties && typeof schema.additionalProperties === 'object')
    for (const k of Object.keys(value))
      if (!(k in (schema.properties ?? {}))) applyDefaults(schema.additionalProperties, value[k]);
}

/** JSON → CEL values: integers become int (BigInt) so `self.x > 100` type-checks as in Kubernetes. */
function toCel(v: any): any {
  if (typeof v === 'number') return Number.isInteger(v) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map(toCel);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toCel(x)]));
  return v;
}

const REASON_PREFIX: Record<string, [string, string]> = {
  FieldValueForbidden: ['FieldValueForbidden', 'Forbidden'],
  FieldValueRequired: ['FieldValueRequired', 'Required value'],
  FieldValueDuplicate: ['FieldValueDuplicate', 'Duplicate value'],
};

function celRules(
  schema: Schema,
  value: any,
  old: any,
  path: string,
  isUpdate: boolean,
  out: StatusCause[],
): void {
  if (!schema || value === undefined) return;
  const rules: Obj[] = schema['x-kubernetes-validations'] ?? [];
  for (const r of rules) {
    const transition = /\boldSelf\b/.test(String(r.rule));
    if (transition && (!isUpdate || old === undefined) && !r.optionalOldSelf) continue;
    let ok: unknown;
    let evalError: string | undefined;
    try {
      ok = evaluate(String(r.rule), { self: toCel(value), oldSelf: toCel(old) });
    } catch (e) {
      evalError = (e as Error).message;
    }
    if (ok === true) continue;
    let message = r.message ?? `failed rule: ${r.rule}`;
    if (r.messageExpression) {
      try {
        const m = evaluate(String(r.messageExpression), { self: toCel(value), oldSelf: toCel(old) });
        if (typeof m === 'string' && m) message = m;
      } catch {
        /* real server falls back to message */
      }
    }
    if (evalError) message = `${message} (rule evaluation error: ${evalError})`;
    const field = `${path || '<root>'}${r.fieldPath ? (path ? String(r.fieldPath) : String(r.fieldPath).replace(/^\./, '')) : ''}`;
    const [reason, prefix] = REASON_PREFIX[r.reason] ?? [
      'FieldValueInvalid',
      `Invalid value: "${typeName(value) === 'integer' ? 'integer' : typeName(value)}"`,
    ];
    out.push({ reason, field, message: `${prefix}: ${message}` });
  }
  if (value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    if (schema.items)
      for (const [i, x] of value.entries())
        celRules(schema.items, x, undefined, `${path}[${i}]`, isUpdate, out);
    return;
  }
  for (const [k, sub] of Object.entries((schema.properties ?? {}) as Schema))
    celRules(
      sub,
      value[k],
      old && typeof old === 'object' ? old[k] : undefined,
      path ? `${path}.${k}` : k,
      isUpdate,
      out,
    );
  if (schema.additionalProperties && typeof schema.additionalProperties === 'object')
    for (const k of Object.keys(value))
      if (!(k in (schema.properties ?? {})))
        celRules(schema.additionalProperties, value[k], old?.[k], path ? `${path}.${k}` : k, isUpdate, out);
}

/** Go's %#v of a map[string]interface{} key tuple, as the real server prints duplicates. */
function goMap(o: Obj): string {
  const parts = Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${JSON.stringify(o[k])}`);
  return `map[string]interface {}{${parts.join(', ')}}`;
}

/** x-kubernetes-list-type map (unique key tuples) and set (unique items). */
function listTypes(schema: Schema, value: any, path: string, out: StatusCause[]): void {
  if (!schema || value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    const type = schema['x-kubernetes-list-type'];
    const seen = new Set<string>();
    value.forEach((item, i) => {
      let key: string | undefined;
      let shown = '';
      if (type === 'map' && item && typeof item === 'object') {
        const keys: string[] = schema['x-kubernetes-list-map-keys'] ?? [];
        const tuple = Object.fromEntries(keys.filter((k) => item[k] !== undefined).map((k) => [k, item[k]]));
        key = JSON.stringify(keys.map((k) => item[k]));
        shown = goMap(tuple);
      } else if (type === 'set') {
        key = JSON.stringify(item);
        shown = typeof item === 'string' ? JSON.stringify(item) : String(item);
      }
      if (key !== undefined) {
        if (seen.has(key))
          out.push({
            reason: 'FieldValueDuplicate',
            field: `${path}[${i}]`,
            message: `Duplicate value: ${shown}`,
          });
        seen.add(key);
      }
      if (schema.items) listTypes(schema.items, item, `${path}[${i}]`, out);
    });
    return;
  }
  for (const [k, sub] of Object.entries((schema.properties ?? {}) as Schema))
    listTypes(sub, value[k], path ? `${path}.${k}` : k, out);
  if (schema.additionalProperties && typeof schema.additionalProperties === 'object')
    for (const k of Object.keys(value))
      if (!(k in (schema.properties ?? {})))
        listTypes(schema.additionalProperties, value[k], path ? `${path}.${k}` : k, out);
}

/**
 * CRD schema checks the real server makes on create/update: structural (every node typed unless
 * int-or-string / preserve-unknown-fields) and CEL rules that compile.
 */
export function checkCrdSchemas(crd: Obj): StatusCause[] {
  const out: StatusCause[] = [];
  (crd.spec?.versions ?? []).forEach((v: Obj, i: number) => {
    const root = v.schema?.openAPIV3Schema;
    const base = `spec.versions[${i}].schema.openAPIV3Schema`;
    if (!root) return;
    if (root.type !== 'object')
      out.push({
        reason: 'FieldValueInvalid',
        field: `${base}.type`,
        message: `Invalid value: ${JSON.stringify(root.type ?? '')}: must be object at the root`,
      });
    const walk = (s: Schema, path: string): void => {
      if (!s || typeof s !== 'object') return;
      if (!s.type && !s['x-kubernetes-int-or-string'] && !s['x-kubernetes-preserve-unknown-fields'])
        out.push({
          reason: 'FieldValueRequired',
          field: `${path}.type`,
          message: 'Required value: must not be empty for specified object fields',
        });
      (s['x-kubernetes-validations'] ?? []).forEach((r: Obj, j: number) => {
        try {
          parseCel(String(r.rule ?? ''));
        } catch (e) {
          out.push({
            reason: 'FieldValueInvalid',
            field: `${path}.x-kubernetes-validations[${j}].rule`,
            message: `Invalid value: ${JSON.stringify(r.rule)}: compilation failed: ${(e as Error).message}`,
          });
        }
      });
      for (const [k, sub] of Object.entries((s.properties ?? {}) as Schema))
        walk(sub, `${path}.properties[${k}]`);
      if (s.items) walk(s.items, `${path}.items`);
      if (s.additionalProperties && typeof s.additionalProperties === 'object')
        walk(s.additionalProperties, `${path}.additionalProperties`);
    };
    walk(root, base);
  });
  return out;
}

export interface AdmitResult {
  causes: StatusCause[];
  pruned: string[];
}

/** Prunes + defaults `obj` in place and returns the validation failures. */
export function admitCustomResource(t: ResourceType, obj: Obj, old: Obj | undefined): AdmitResult {
  const schema = versionSchema(t);
  if (!schema) return { causes: [], pruned: [] };
  const pruned = prune(schema, obj);
  applyDefaults(schema, obj);
  let validate = compiled.get(schema);
  if (!validate) {
    const s = toAjvSchema(schema);
    // metadata is validated by the server itself, not by the CRD schema.
    if (s.properties?.metadata) s.properties.metadata = { type: 'object' };
    validate = ajv.compile(s);
    compiled.set(schema, validate);
  }
  const causes: StatusCause[] = [];
  if (!validate(obj)) {
    const seen = new Set<string>();
    for (const e of validate.errors ?? []) {
      if (e.keyword === 'if' || e.keyword === 'anyOf' || e.keyword === 'oneOf') continue;
      const c = causeFromAjv({ ...e, data: e.data ?? dataAt(obj, e.instancePath) });
      const key = `${c.field}|${c.message}`;
      if (!seen.has(key)) {
        seen.add(key);
        causes.push(c);
      }
    }
  }
  if (causes.length === 0)
    listTypes(
      { ...schema, properties: { ...(schema.properties ?? {}), metadata: undefined } },
      obj,
      '',
      causes,
    );
  if (causes.length === 0) {
    const { metadata: _m, apiVersion: _a, kind: _k, ...body } = obj;
    const { metadata: _om, apiVersion: _oa, kind: _ok, ...oldBody } = old ?? {};
    celRules(
      { ...schema, properties: { ...(schema.properties ?? {}), metadata: undefined } },
      body,
      old ? oldBody : undefined,
      '',
      old !== undefined,
      causes,
    );
  }
  return { causes, pruned };
}

function dataAt(obj: any, pointer: string): any {
  let cur = obj;
  for (const seg of pointer.split('/').slice(1)) cur = cur?.[seg.replace(/~1/g, '/').replace(/~0/g, '~')];
  return cur;
}
