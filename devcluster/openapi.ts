// OpenAPI documents, only as much as kubectl needs: v3 per group-version documents whose PATCH
// operations declare the `fieldValidation` parameter (so kubectl validates server-side instead of
// downloading schemas), CRD schemas as components, and a minimal v2 document (JSON or protobuf).
import { createHash } from 'node:crypto';
import type { Registry, ResourceType } from './resources.js';
import { versionSchema } from './validation.js';

function gvPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

function schemaName(t: ResourceType): string {
  const g = t.group || 'core';
  return `${g.split('.').reverse().join('.')}.${t.version}.${t.kind}`;
}

const PARAM = (name: string, inWhere: 'query' | 'path') => ({
  name,
  in: inWhere,
  required: inWhere === 'path',
  schema: { type: 'string', uniqueItems: true },
});

export function openapiV3Doc(
  reg: Registry,
  group: string,
  version: string,
): Record<string, unknown> | undefined {
  const types = reg.all().filter((t) => t.group === group && t.version === version);
  if (types.length === 0) return undefined;
  const paths: Record<string, unknown> = {};
  const schemas: Record<string, unknown> = {};
  for (const t of types) {
    const base = `/${gvPath(group, version)}/${t.namespaced ? 'namespaces/{namespace}/' : ''}${t.plural}`;
    const gvk = { group, version, kind: t.kind };
    const ref = { $ref: `#/components/schemas/${schemaName(t)}` };
    const body = (types: string[]) => ({
      content: Object.fromEntries(types.map((ct) => [ct, { schema: ref }])),
      required: true,
    });
    const ok = { '200': { description: 'OK', content: { 'application/json': { schema: ref } } } };
    const params = [PARAM('name', 'path'), ...(t.namespaced ? [PARAM('namespace', 'path')] : [])];
    // Query parameters kubectl sends on every write (apply, replace, create, patch).
    const writeParams = [
      PARAM('dryRun', 'query'),
      PARAM('fieldManager', 'query'),
      PARAM('fieldValidation', 'query'),
    ];
    const patchTypes = [
      'application/json-patch+json',
      'application/merge-patch+json',
      'application/apply-patch+yaml',
    ];
    const item = {
      get: {
        operationId: `read${t.kind}`,
        'x-kubernetes-action': 'get',
        'x-kubernetes-group-version-kind': gvk,
        responses: ok,
      },
      put: {
        operationId: `replace${t.kind}`,
        'x-kubernetes-action': 'put',
        'x-kubernetes-group-version-kind': gvk,
        parameters: writeParams,
        requestBody: body(['application/json']),
        responses: ok,
      },
      patch: {
        operationId: `patch${t.kind}`,
        'x-kubernetes-action': 'patch',
        'x-kubernetes-group-version-kind': gvk,
        parameters: [...writeParams, PARAM('force', 'query')],
        requestBody: body(patchTypes),
        responses: ok,
      },
      delete: {
        operationId: `delete${t.kind}`,
        'x-kubernetes-action': 'delete',
        'x-kubernetes-group-version-kind': gvk,
        responses: ok,
      },
      parameters: params,
    };
    paths[`${base}/{name}`] = item;
    paths[base] = {
      get: {
        operationId: `list${t.kind}`,
        'x-kubernetes-action': 'list',
        'x-kubernetes-group-version-kind': gvk,
        responses: ok,
      },
      post: {
        operationId: `create${t.kind}`,
        'x-kubernetes-action': 'post',
        'x-kubernetes-group-version-kind': gvk,
        parameters: writeParams,
        requestBody: body(['application/json']),
        responses: ok,
      },
      parameters: t.namespaced ? [PARAM('namespace', 'path')] : [],
    };
    const crdSchema = t.crd ? versionSchema(t) : undefined;
    schemas[schemaName(t)] = {
      ...(crdSchema ?? { type: 'object', 'x-kubernetes-preserve-unknown-fields': true }),
      'x-kubernetes-group-version-kind': [gvk],
    };
  }
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: 'v1.32.3' },
    paths,
    components: { schemas },
  };
}

export function openapiV3Root(reg: Registry): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  for (const [g, vs] of reg.groups())
    for (const v of vs) {
      const doc = JSON.stringify(openapiV3Doc(reg, g, v));
      const hash = createHash('sha512').update(doc).digest('hex').slice(0, 64).toUpperCase();
      paths[gvPath(g, v)] = { serverRelativeURL: `/openapi/v3/${gvPath(g, v)}?hash=${hash}` };
    }
  return { paths };
}

export function openapiV2Json(reg: Registry): Record<string, unknown> {
  const definitions: Record<string, unknown> = {};
  for (const t of reg.all()) {
    const s = t.crd ? versionSchema(t) : undefined;
    if (s)
      definitions[schemaName(t)] = {
        ...s,
        'x-kubernetes-group-version-kind': [{ group: t.group, version: t.version, kind: t.kind }],
      };
  }
  return { swagger: '2.0', info: { title: 'Kubernetes', version: 'v1.32.3' }, paths: {}, definitions };
}

// Minimal gnostic openapi_v2.Document protobuf: swagger (1), info (2: title 1, version 2), paths (8).
// No definitions: kubectl's client-side schema lookup then finds no type and skips validation.
function pbString(field: number, s: string): Buffer {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from([(field << 3) | 2, b.length]), b]);
}
function pbMessage(field: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(field << 3) | 2, body.length]), body]);
}
export function openapiV2Protobuf(): Buffer {
  return Buffer.concat([
    pbString(1, '2.0'),
    pbMessage(2, Buffer.concat([pbString(1, 'Kubernetes'), pbString(2, 'v1.32.3')])),
    pbMessage(8, Buffer.alloc(0)),
  ]);
}
