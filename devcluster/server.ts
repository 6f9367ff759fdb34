// HTTP routing for the emulated API: discovery, openAPI, and list/watch/get/create/update/patch/delete
// of every registered resource (and /status). Bodies are JSON (YAML for apply patches).
import type { IncomingMessage, ServerResponse } from 'node:http';
import YAML from 'yaml';
import { apiGroup, apiGroupList, apiResourceList, apiVersions, serverVersion } from './discovery.js';
import { ApiError, errors } from './errors.js';
import type { Faults } from './faults.js';
import { managerFor, recordUpdate, serverSideApply } from './managed-fields.js';
import type { DevClusterMetrics } from './metrics.js';
import { openapiV2Json, openapiV2Protobuf, openapiV3Doc, openapiV3Root } from './openapi.js';
import { clone, jsonPatch, mergePatch, strategicMergePatch } from './patch.js';
import { decodeK8sProtobuf } from './protobuf.js';
import { type Attributes, authorize, forbiddenMessage, type Subject } from './rbac.js';
import type { Registry, ResourceType } from './resources.js';
import { apiVersionOf } from './resources.js';
import { fromScale, scalePaths, toScale } from './scale.js';
import { combine, fieldMatcher, isMatchAll, labelMatcher } from './selectors.js';
import type { Obj, Store } from './store.js';
import { toTable } from './table.js';
import {
  type Authn,
  authenticate,
  authenticationReview,
  OIDC_PATHS,
  sendJson,
  serveOidc,
  tokenRequest,
} from './token-api.js';
import type { TokenIssuer } from './tokens.js';
import { prune, versionSchema } from './validation.js';
import { WatchConn } from './watch.js';

export interface ServerContext {
  store: Store;
  registry: Registry;
  faults: Faults;
  token?: string;
  now: () => Date;
  bookmarkIntervalMs: number;
  maxWatchBufferedBytes: number;
  serverAddress: () => string;
  /** after each response: method, request URL (path + query), status code. */
  onRequest?: (method: string, url: string, code: number, error?: string) => void;
  metrics?: DevClusterMetrics;
  /** the ServiceAccount token issuer (TokenRequest, TokenReview, OIDC discovery, bearer tokens). */
  tokens?: TokenIssuer;
  /** TokenRequest's smallest expirationSeconds (kube-apiserver: 600). */
  minTokenExpirationSeconds?: number;
  /** the API server's URL (the OIDC document's jwks_uri is under it). */
  apiUrl?: () => string;
  /** POST /debug/devcluster/rotate-sa-key (admin only). */
  rotateKey?: (keepPrevious: boolean) => { kid: string; previous: string[] };
}

/** Paths every authenticated user may GET (kube-apiserver's system:discovery and system:public-info-viewer). */
const DISCOVERY = /^\/(api|apis|openapi|version)(\/.*)?$|^\/(healthz|livez|readyz)$/;

interface Target {
  t: ResourceType;
  ns?: string;
  name?: string;
  sub?: string;
  watch: boolean;
}

const JSON_HEADERS = { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' };

function send(res: ServerResponse, code: number, body: unknown): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const s = JSON.stringify(body);
  res.writeHead(code, { ...JSON_HEADERS, 'Content-Length': Buffer.byteLength(s) });
  res.end(s);
}

/** Watch responses (reported to onRequest when the stream opens, not when it ends minutes later). */
const streaming = new WeakSet<ServerResponse>();

/** Status messages of failed responses, for the request log. */
const failures = new WeakMap<ServerResponse, string>();

function sendError(res: ServerResponse, err: ApiError): void {
  failures.set(res, err.message);
  if (err.code === 429) res.setHeader('Retry-After', '1');
  send(res, err.code, err.toStatus());
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  const limit = 3 * 1024 * 1024; // the real server's limit for request bodies
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size <= limit) chunks.push(c as Buffer); // past the limit: drain, so the client reads our answer
  }
  if (size > limit)
    throw new ApiError(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${limit}`);
  return Buffer.concat(chunks);
}

function parseBody(buf: Buffer, contentType: string, method: string): any {
  if (contentType.includes('protobuf')) {
    if (buf.length === 0 || method === 'DELETE') return undefined; // DeleteOptions: defaults are fine
    return decodeK8sProtobuf(buf);
  }
  const raw = buf.toString('utf8');
  if (raw.trim() === '') return undefined;
  try {
    return contentType.includes('yaml') ? YAML.parse(raw) : JSON.parse(raw);
  } catch (e) {
    throw errors.badRequest(`the body of the request could not be decoded: ${(e as Error).message}`);
  }
}

/** `/api/v1/namespaces/ns/pods/name/status` → type, namespace, name, subresource. */
function resolve(reg: Registry, segs: string[]): Target | undefined {
  let group: string;
  let version: string;
  let rest: string[];
  if (segs[0] === 'api') {
    group = '';
    version = segs[1]!;
    rest = segs.slice(2);
  } else {
    group = segs[1]!;
    version = segs[2]!;
    rest = segs.slice(3);
  }
  let watch = false;
  if (rest[0] === 'watch') {
    watch = true;
    rest = rest.slice(1);
  }
  let ns: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    const nt = reg.get(group, version, rest[2]!);
    if (nt?.namespaced) {
      ns = rest[1];
      rest = rest.slice(2);
    }
  }
  const t = reg.get(group, version, rest[0] ?? '');
  if (!t) return undefined;
  if (ns === undefined && t.namespaced && rest.length > 1) return undefined;
  return { t, ns, name: rest[1], sub: rest[2], watch };
}

function wantsTable(req: IncomingMessage): boolean {
  return /as=Table/.test(req.headers.accept ?? '');
}

export function createHandler(ctx: ServerContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handle(ctx, req, res).catch((err: unknown) => {
      const e = err instanceof ApiError ? err : errors.internal((err as Error)?.message ?? String(err));
      sendError(res, e);
    });
  };
}

async function handle(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://devcluster');
  const method = req.method ?? 'GET';
  const path = url.pathname.replace(/\/+$/, '') || '/';
  res.on('finish', () => {
    if (streaming.has(res)) return; // watches are reported when their stream starts
    ctx.metrics?.request(method, res.statusCode);
    ctx.onRequest?.(method, req.url ?? path, res.statusCode, failures.get(res));
  });
  if (['/healthz', '/readyz', '/livez'].includes(path)) {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('ok');
    return;
  }
  // OIDC discovery is public, as when system:service-account-issuer-discovery is bound to everyone
  // (but injected faults apply to it, so verifiers' fallbacks can be tested).
  const oidc = ctx.tokens !== undefined && method === 'GET' && OIDC_PATHS.includes(path);
  const caller: Authn = oidc ? { kind: 'admin' } : authenticate(req, ctx.token, ctx.tokens);
  const delay = ctx.faults.delayFor(method, req.url ?? path);
  if (delay > 0) await new Promise((r) => setTimeout(r, delay));
  const failure = ctx.faults.failureFor(method, req.url ?? path);
  if (failure === 429) throw errors.tooManyRequests();
  if (failure)
    throw new ApiError(
      failure,
      failure === 500 ? 'InternalError' : 'ServiceUnavailable',
      `Internal error occurred: injected fault (${failure})`,
    );
  if (oidc) return serveOidc(ctx.tokens!, ctx.apiUrl?.() ?? '', path, res);

  const segs = path.split('/').filter(Boolean);
  const reg = ctx.registry;
  if (path === '/debug/devcluster/rotate-sa-key' && ctx.rotateKey) {
    if (method !== 'POST') throw errors.methodNotAllowed('rotate-sa-key only supports POST');
    if (caller.kind !== 'admin')
      throw new ApiError(403, 'Forbidden', 'only the devcluster admin may rotate the signing key');
    const keep = ['true', '1'].includes(url.searchParams.get('keepPrevious') ?? '');
    return sendJson(res, 200, ctx.rotateKey(keep));
  }
  if (
    caller.kind === 'serviceaccount' &&
    !(segs[0] === 'api' && segs.length >= 3) &&
    !(segs[0] === 'apis' && segs.length >= 4)
  ) {
    // Non-resource request by a ServiceAccount: discovery is open to every authenticated user.
    const attrs: Attributes = { verb: method.toLowerCase(), path };
    if (
      !(method === 'GET' && DISCOVERY.test(path)) &&
      !authorize(ctx.store, ctx.registry, caller.subject, attrs).allowed
    )
      throw new ApiError(
        403,
        'Forbidden',
        `forbidden: User "${caller.subject.user}" cannot ${attrs.verb} path "${path}"`,
      );
  }
  if (method === 'GET') {
    if (path === '/metrics' && ctx.metrics) {
      const text = await ctx.metrics.registry.metrics();
      res.writeHead(200, { 'Content-Type': ctx.metrics.registry.contentType });
      res.end(text);
      return;
    }
    if (path === '/version') return send(res, 200, serverVersion());
    if (path === '/api') return send(res, 200, apiVersions(ctx.serverAddress()));
    if (path === '/apis') return send(res, 200, apiGroupList(reg));
    if (path === '/openapi/v2') {
      if ((req.headers.accept ?? '').includes('protobuf')) {
        const pb = openapiV2Protobuf();
        res.writeHead(200, {
          'Content-Type': 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf',
          'Content-Length': pb.length,
        });
        res.end(pb);
        return;
      }
      return send(res, 200, openapiV2Json(reg));
    }
    if (path === '/openapi/v3') return send(res, 200, openapiV3Root(reg));
    if (segs[0] === 'openapi' && segs[1] === 'v3') {
      const doc =
        segs[2] === 'api'
          ? openapiV3Doc(reg, '', segs[3] ?? '')
          : openapiV3Doc(reg, segs[3] ?? '', segs[4] ?? '');
      if (!doc) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
      return send(res, 200, doc);
    }
    if (segs[0] === 'api' && segs.length === 2) {
      const doc = apiResourceList(reg, '', segs[1]!);
      if (doc) return send(res, 200, doc);
    }
    if (segs[0] === 'apis' && segs.length === 2) {
      const doc = apiGroup(reg, segs[1]!);
      if (doc) return send(res, 200, doc);
    }
    if (segs[0] === 'apis' && segs.length === 3) {
      const doc = apiResourceList(reg, segs[1]!, segs[2]!);
      if (doc) return send(res, 200, doc);
    }
  }
  const target =
    (segs[0] === 'api' && segs.length >= 3) || (segs[0] === 'apis' && segs.length >= 4)
      ? resolve(reg, segs)
      : undefined;
  if (!target) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
  const { t, ns, name, sub } = target;
  const tokenSub = sub === 'token' && t.group === '' && t.plural === 'serviceaccounts';
  if (sub && sub !== 'status' && !(sub === 'scale' && scalePaths(t)) && !tokenSub)
    throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
  if (sub === 'status' && !t.status)
    throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
  const q = url.searchParams;
  const dryRun = q.get('dryRun') === 'All';
  const body = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(method)
    ? parseBody(await readBody(req), String(req.headers['content-type'] ?? 'application/json'), method)
    : undefined;

  if (t.group === 'authorization.k8s.io') return accessReview(ctx, req, res, t, method, body, caller);
  const who = requestSubject(ctx, req, caller);
  if (who && !(t.group === 'authentication.k8s.io' && t.kind === 'SelfSubjectReview')) {
    const watching = target.watch || q.get('watch') === 'true' || q.get('watch') === '1';
    const verbs: Record<string, string> = {
      GET: name ? 'get' : watching ? 'watch' : 'list',
      POST: 'create',
      PUT: 'update',
      PATCH: 'patch',
      DELETE: name ? 'delete' : 'deletecollection',
    };
    const attrs: Attributes = {
      verb: verbs[method] ?? method.toLowerCase(),
      group: t.group,
      resource: t.plural,
      subresource: sub,
      name,
      namespace: t.namespaced ? ns : undefined,
    };
    if (!authorize(ctx.store, ctx.registry, who, attrs).allowed)
      throw new ApiError(403, 'Forbidden', forbiddenMessage(who.user, attrs), {
        name,
        group: t.group || undefined,
        kind: t.plural,
      });
  }
  if (t.group === 'authentication.k8s.io') {
    if (!ctx.tokens) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    const r = authenticationReview(ctx.tokens, t, method, body, caller);
    return send(res, r.code, r.body);
  }
  if (tokenSub) {
    if (method !== 'POST' || !name || !ns || !ctx.tokens)
      throw errors.methodNotAllowed('serviceaccounts/token only supports create');
    const r = tokenRequest(
      ctx.store,
      ctx.registry,
      ctx.tokens,
      ns,
      name,
      body,
      ctx.minTokenExpirationSeconds ?? 600,
      ctx.now(),
    );
    return send(res, r.code, r.body);
  }
  if (sub === 'scale' && name) {
    scale(ctx, req, res, t, ns, name, method, body, dryRun);
    return;
  }

  if (!name) {
    switch (method) {
      case 'GET':
        if (target.watch || q.get('watch') === 'true' || q.get('watch') === '1')
          return watch(ctx, req, res, t, ns, q);
        return list(ctx, req, res, t, ns, q);
      case 'POST': {
        if (t.namespaced && !ns)
          throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
        if (!body || typeof body !== 'object')
          throw errors.badRequest('the body of the request is empty or not an object');
        checkKind(t, body);
        strictFields(t, body, q, res);
        recordUpdate(
          managerFor(q.get('fieldManager'), req.headers['user-agent']),
          undefined,
          body,
          ctx.now(),
        );
        return send(res, 201, ctx.store.create(t, ns, body, { dryRun }));
      }
      case 'DELETE': {
        const filter = combine(labelMatcher(q.get('labelSelector')), fieldMatcher(q.get('fieldSelector')));
        const gone: Obj[] = [];
        for (const o of ctx.store.list(t, ns, filter))
          gone.push(ctx.store.delete(t, o.metadata.namespace, o.metadata.name, { dryRun }));
        return send(res, 200, {
          kind: t.listKind,
          apiVersion: apiVersionOf(t),
          metadata: { resourceVersion: String(ctx.store.rv) },
          items: gone,
        });
      }
      default:
        throw errors.methodNotAllowed(`method ${method} not allowed on a collection`);
    }
  }

  switch (method) {
    case 'GET': {
      if (q.get('watch') === 'true' || target.watch) {
        q.set('fieldSelector', [q.get('fieldSelector'), `metadata.name=${name}`].filter(Boolean).join(','));
        return watch(ctx, req, res, t, ns, q);
      }
      const o = ctx.store.get(t, ns, name);
      if (wantsTable(req))
        return send(
          res,
          200,
          toTable(
            t,
            [o],
            { resourceVersion: o.metadata.resourceVersion },
            ctx.now(),
            q.get('includeObject') ?? 'Metadata',
          ),
        );
      return send(res, 200, o);
    }
    case 'PUT': {
      if (!body || typeof body !== 'object')
        throw errors.badRequest('the body of the request is empty or not an object');
      checkKind(t, body);
      strictFields(t, body, q, res);
      const live = ctx.store.get(t, ns, name);
      recordUpdate(managerFor(q.get('fieldManager'), req.headers['user-agent']), live, body, ctx.now(), sub);
      return send(res, 200, ctx.store.update(t, ns, name, body, { subresource: sub, dryRun }));
    }
    case 'PATCH':
      return patch(ctx, req, res, t, ns, name, sub, body, q, dryRun);
    case 'DELETE': {
      const pre = body?.preconditions;
      const o = ctx.store.delete(t, ns, name, { preconditions: pre, dryRun });
      return send(res, 200, o);
    }
    default:
      throw errors.methodNotAllowed(`method ${method} not allowed`);
  }
}

function checkKind(t: ResourceType, body: Obj): void {
  if (Array.isArray(body))
    throw errors.badRequest(
      `${t.kind} in version "${t.version}" cannot be handled as a ${t.kind}: the body is an array, not an object`,
    );
  const md = body.metadata;
  if (md !== undefined && (md === null || typeof md !== 'object' || Array.isArray(md)))
    throw errors.badRequest(
      `${t.kind} in version "${t.version}" cannot be handled as a ${t.kind}: metadata must be an object`,
    );
  for (const f of ['labels', 'annotations'])
    if (md?.[f] != null && (typeof md[f] !== 'object' || Array.isArray(md[f])))
      throw errors.badRequest(
        `${t.kind} in version "${t.version}" cannot be handled as a ${t.kind}: metadata.${f} must be a map of strings`,
      );
  if (body.kind && body.kind !== t.kind)
    throw errors.badRequest(
      `${body.kind} in version "${t.version}" cannot be handled as a ${t.kind}: the object kind does not match the resource`,
    );
  if (body.apiVersion && body.apiVersion !== apiVersionOf(t))
    throw errors.badRequest(
      `the API version in the data (${body.apiVersion}) does not match the expected API version (${apiVersionOf(t)})`,
    );
}

/** fieldValidation=Strict → unknown fields of a custom resource are a 400; Warn → a Warning header. */
function strictFields(t: ResourceType, body: Obj, q: URLSearchParams, res: ServerResponse): void {
  const mode = q.get('fieldValidation');
  if (!t.crd || !mode || mode === 'Ignore') return;
  const schema = versionSchema(t);
  if (!schema) return;
  const unknown = prune(schema, clone(body));
  if (unknown.length === 0) return;
  if (mode === 'Strict') {
    const list = unknown.map((f) => `unknown field "${f}"`).join(', ');
    throw errors.badRequest(
      `${t.kind} in version "${t.version}" cannot be handled as a ${t.kind}: strict decoding error: ${list}`,
    );
  }
  res.setHeader('Warning', unknown.map((f) => `299 - "unknown field \\"${f}\\""`).join(', '));
}

/**
 * Whom RBAC checks: an impersonated user (a ServiceAccount caller needs the `impersonate` verb for
 * that), else the ServiceAccount caller; undefined for the admin (allowed everything).
 */
function requestSubject(ctx: ServerContext, req: IncomingMessage, caller: Authn): Subject | undefined {
  const imp = impersonated(req);
  if (caller.kind === 'admin') return imp;
  if (!imp) return caller.subject;
  const checks: Attributes[] = [
    { verb: 'impersonate', group: '', resource: 'users', name: imp.user },
    ...imp.groups.map((g) => ({ verb: 'impersonate', group: '', resource: 'groups', name: g })),
  ];
  for (const a of checks)
    if (!authorize(ctx.store, ctx.registry, caller.subject, a).allowed)
      throw new ApiError(403, 'Forbidden', forbiddenMessage(caller.subject.user, a));
  return imp;
}

/** `kubectl --as=...` (Impersonate-User / Impersonate-Group headers) → the subject RBAC checks. */
function impersonated(req: IncomingMessage): Subject | undefined {
  const user = req.headers['impersonate-user'];
  if (typeof user !== 'string' || !user) return undefined;
  const raw = req.headers['impersonate-group'];
  const groups = (Array.isArray(raw) ? raw : raw ? raw.split(',') : []).map((g) => g.trim()).filter(Boolean);
  return { user, groups };
}

/** SelfSubjectAccessReview / SubjectAccessReview: answered from RBAC objects, never stored. */
function accessReview(
  ctx: ServerContext,
  req: IncomingMessage,
  res: ServerResponse,
  t: ResourceType,
  method: string,
  body: any,
  caller: Authn,
): void {
  if (method !== 'POST') throw errors.methodNotAllowed(`${t.plural} only support create`);
  const spec = body?.spec ?? {};
  const ra = spec.resourceAttributes;
  const na = spec.nonResourceAttributes;
  if (!ra && !na)
    throw errors.invalid(t.kind, t.group, '', [
      {
        reason: 'FieldValueRequired',
        field: 'spec.resourceAttributes',
        message:
          'Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified',
      },
    ]);
  const self = requestSubject(ctx, req, caller);
  if (t.kind === 'SubjectAccessReview' && caller.kind === 'serviceaccount') {
    const a: Attributes = { verb: 'create', group: t.group, resource: t.plural };
    if (!authorize(ctx.store, ctx.registry, caller.subject, a).allowed)
      throw new ApiError(403, 'Forbidden', forbiddenMessage(caller.subject.user, a));
  }
  const subject: Subject | undefined =
    t.kind === 'SubjectAccessReview' ? { user: String(spec.user ?? ''), groups: spec.groups ?? [] } : self;
  const attrs: Attributes = ra
    ? {
        verb: ra.verb,
        group: ra.group ?? '',
        resource: ra.resource,
        subresource: ra.subresource || undefined,
        name: ra.name || undefined,
        namespace: ra.namespace || undefined,
      }
    : { verb: na.verb, path: na.path };
  // No impersonation on a self review: the caller is the cluster admin this emulator trusts.
  const d = subject
    ? authorize(ctx.store, ctx.registry, subject, attrs)
    : { allowed: true, reason: 'devcluster admin' };
  send(res, 201, {
    apiVersion: 'authorization.k8s.io/v1',
    kind: t.kind,
    metadata: { creationTimestamp: null },
    spec,
    status: d.allowed ? d : { allowed: false },
  });
}

/** GET/PUT/PATCH …/scale: an autoscaling/v1 Scale view of spec.replicas. */
function scale(
  ctx: ServerContext,
  req: IncomingMessage,
  res: ServerResponse,
  t: ResourceType,
  ns: string | undefined,
  name: string,
  method: string,
  body: any,
  dryRun: boolean,
): void {
  const live = ctx.store.get(t, ns, name);
  const current = toScale(t, live);
  let wanted: Obj;
  if (method === 'GET') {
    send(res, 200, current);
    return;
  }
  if (method === 'PUT') wanted = body;
  else if (method === 'PATCH') {
    const ct = String(req.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim();
    if (ct === 'application/merge-patch+json') wanted = mergePatch(current, body);
    else if (ct === 'application/json-patch+json') wanted = jsonPatch(current, body);
    else if (ct === 'application/strategic-merge-patch+json') wanted = strategicMergePatch(current, body);
    else throw errors.unsupportedMediaType(ct);
    if (!(typeof body === 'object' && !Array.isArray(body) && body?.metadata?.resourceVersion))
      wanted = {
        ...wanted,
        metadata: { ...wanted.metadata, resourceVersion: live.metadata.resourceVersion },
      };
  } else throw errors.methodNotAllowed(`method ${method} not allowed on scale`);
  const updated = ctx.store.update(t, ns, name, fromScale(t, live, wanted), { dryRun });
  send(res, 200, toScale(t, updated));
}

interface Continue {
  rv: number;
  after: string;
}

function list(
  ctx: ServerContext,
  req: IncomingMessage,
  res: ServerResponse,
  t: ResourceType,
  ns: string | undefined,
  q: URLSearchParams,
): void {
  const filter = combine(labelMatcher(q.get('labelSelector')), fieldMatcher(q.get('fieldSelector')));
  let items = ctx.store.list(t, ns, isMatchAll(filter) ? undefined : filter);
  let rv = ctx.store.rv;
  const meta: Obj = {};
  const cont = q.get('continue');
  if (cont) {
    let c: Continue;
    try {
      c = JSON.parse(Buffer.from(cont, 'base64url').toString('utf8')) as Continue;
    } catch {
      throw errors.badRequest('continue key is not valid: illegal base64 data');
    }
    if (c.rv < ctx.store.oldestWatchableRv)
      throw errors.gone(
        'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.',
      );
    items = items.filter((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}` > c.after);
    rv = c.rv;
  }
  const limit = Number(q.get('limit') ?? 0);
  if (limit > 0 && items.length > limit) {
    const last = items[limit - 1]!;
    meta.continue = Buffer.from(
      JSON.stringify({ rv, after: `${last.metadata.namespace ?? ''}/${last.metadata.name}` }),
    ).toString('base64url');
    meta.remainingItemCount = items.length - limit;
    items = items.slice(0, limit);
  }
  meta.resourceVersion = String(rv);
  if (wantsTable(req)) {
    send(res, 200, toTable(t, items, meta, ctx.now(), q.get('includeObject') ?? 'Metadata'));
    return;
  }
  send(res, 200, { kind: t.listKind, apiVersion: apiVersionOf(t), metadata: meta, items });
}

function watch(
  ctx: ServerContext,
  req: IncomingMessage,
  res: ServerResponse,
  t: ResourceType,
  ns: string | undefined,
  q: URLSearchParams,
): void {
  const filter = combine(labelMatcher(q.get('labelSelector')), fieldMatcher(q.get('fieldSelector')));
  // Validate everything before the 200 goes out: after that, errors can only be watch events.
  const rvRaw = q.get('resourceVersion');
  if (rvRaw && !/^\d+$/.test(rvRaw)) throw errors.badRequest(`invalid resource version: ${rvRaw}`);
  const timeoutRaw = q.get('timeoutSeconds');
  if (timeoutRaw && !/^\d+$/.test(timeoutRaw))
    throw errors.badRequest(`invalid timeoutSeconds: ${timeoutRaw}`);
  const key = ctx.store.watchKey(t);
  const timeout = q.get('timeoutSeconds');
  const conn = new WatchConn(res, {
    t,
    key,
    namespace: ns,
    filter: isMatchAll(filter) ? undefined : filter,
    table: wantsTable(req) ? { includeObject: q.get('includeObject') ?? 'Metadata' } : undefined,
    bookmarks: q.get('allowWatchBookmarks') === 'true',
    bookmarkIntervalMs: ctx.bookmarkIntervalMs,
    timeoutSeconds: timeout ? Number(timeout) : undefined,
    maxBufferedBytes: ctx.maxWatchBufferedBytes,
    now: ctx.now,
    currentRv: () => ctx.store.rv,
    convert: t.storage ? t.fromStorage : undefined,
  });
  if (ctx.faults.takeWatchGone()) {
    conn.gone();
    return;
  }
  const rvParam = q.get('resourceVersion');
  const sendInitial = q.get('sendInitialEvents') === 'true';
  const inNs = (o: Obj) => !ns || !t.namespaced || o.metadata.namespace === ns;
  if (!rvParam || rvParam === '0' || sendInitial) {
    for (const o of ctx.store.list(t, ns, isMatchAll(filter) ? undefined : filter))
      if (inNs(o)) conn.sendObject('ADDED', o);
    if (sendInitial) conn.bookmark({ annotations: { 'k8s.io/initial-events-end': 'true' } });
  } else {
    const from = Number(rvParam);
    const events = ctx.store.eventsSince(key, from);
    if (events === 'gone') {
      conn.gone(`too old resource version: ${from} (${ctx.store.oldestWatchableRv + 1})`);
      return;
    }
    for (const ev of events) conn.deliver(ev);
  }
  if (ctx.faults.stallNew) conn.stall(true);
  const unsubscribe = ctx.store.subscribe(conn);
  ctx.faults.watches.add(conn);
  streaming.add(res);
  ctx.metrics?.request('WATCH', 200);
  ctx.onRequest?.('GET', req.url ?? '', 200);
  conn.onClose = () => {
    unsubscribe();
    ctx.faults.watches.delete(conn);
  };
  if (conn.closed) conn.onClose();
}

async function patch(
  ctx: ServerContext,
  req: IncomingMessage,
  res: ServerResponse,
  t: ResourceType,
  ns: string | undefined,
  name: string,
  sub: string | undefined,
  body: any,
  q: URLSearchParams,
  dryRun: boolean,
): Promise<void> {
  const ct = String(req.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim();
  const existing = ctx.store.tryGet(t, ns, name);
  if (ct === 'application/apply-patch+yaml') {
    if (!body || typeof body !== 'object') throw errors.badRequest('apply patch body must be an object');
    if (!q.get('fieldManager'))
      throw errors.badRequest('PATCH, application/apply-patch+yaml requires fieldManager to be set');
    checkKind(t, body);
    if (!existing) {
      if (sub) throw errors.notFound(t.plural, t.group, name);
      strictFields(t, body, q, res);
      const fresh = { ...body, metadata: { ...(body.metadata ?? {}), name } };
      const owned = serverSideApply(
        { apiVersion: apiVersionOf(t), kind: t.kind, metadata: {} },
        fresh,
        q.get('fieldManager')!,
        true,
        ctx.now(),
      );
      fresh.metadata.managedFields = owned.metadata.managedFields;
      const created = ctx.store.create(t, ns, fresh, { dryRun });
      return send(res, 201, created);
    }
    const force = q.get('force') === 'true';
    const merged = serverSideApply(
      existing,
      body,
      managerFor(q.get('fieldManager'), undefined),
      force,
      ctx.now(),
      sub,
    );
    merged.metadata.resourceVersion = body.metadata?.resourceVersion ?? existing.metadata.resourceVersion;
    return send(res, 200, ctx.store.update(t, ns, name, merged, { subresource: sub, dryRun }));
  }
  if (!existing) throw errors.notFound(t.plural, t.group, name);
  let next: Obj;
  switch (ct) {
    case 'application/merge-patch+json':
      if (!body || typeof body !== 'object' || Array.isArray(body))
        throw errors.badRequest('merge patch body must be a JSON object');
      next = mergePatch(existing, body);
      break;
    case 'application/json-patch+json':
      next = jsonPatch(existing, body);
      break;
    case 'application/strategic-merge-patch+json':
      if (t.crd) throw errors.unsupportedMediaType(ct);
      next = strategicMergePatch(existing, body);
      break;
    default:
      throw errors.unsupportedMediaType(ct || '<none>');
  }
  if (!next || typeof next !== 'object') throw errors.badRequest('patch result is not an object');
  checkKind(t, next);
  // A resourceVersion in the patch is a precondition (kubectl apply sends none); keep the live one otherwise.
  const sentRv =
    typeof body === 'object' && !Array.isArray(body) ? body?.metadata?.resourceVersion : undefined;
  if (sentRv === undefined)
    next.metadata = { ...(next.metadata ?? {}), resourceVersion: existing.metadata.resourceVersion };
  recordUpdate(managerFor(q.get('fieldManager'), req.headers['user-agent']), existing, next, ctx.now(), sub);
  return send(res, 200, ctx.store.update(t, ns, name, next, { subresource: sub, dryRun }));
}
