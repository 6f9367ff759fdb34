// The HTTP side of ServiceAccount tokens: TokenRequest (serviceaccounts/token), TokenReview,
// SelfSubjectReview, OIDC discovery + JWKS, and the bearer authentication of API requests.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, errors, type StatusCause } from './errors.js';
import type { Subject } from './rbac.js';
import type { Registry, ResourceType } from './resources.js';
import { type Obj, rfc3339, type Store } from './store.js';
import type { ClusterLookup, TokenIssuer } from './tokens.js';

export const OIDC_PATHS = ['/.well-known/openid-configuration', '/openid/v1/jwks'];

/** The binding lookups the issuer needs, answered from the store. */
export function storeLookup(store: Store, reg: Registry): ClusterLookup {
  const t = (plural: string) => reg.get('', 'v1', plural)!;
  return {
    serviceAccountUid: (ns, name) => store.tryGet(t('serviceaccounts'), ns, name)?.metadata?.uid,
    pod: (ns, name) => {
      const p = store.tryGet(t('pods'), ns, name);
      // A pod being deleted still authenticates its tokens until it is gone (as kube-apiserver does).
      return p ? { uid: p.metadata.uid, nodeName: p.spec?.nodeName || undefined } : undefined;
    },
    secretUid: (ns, name) => store.tryGet(t('secrets'), ns, name)?.metadata?.uid,
    nodeUid: (name) => store.tryGet(t('nodes'), undefined, name)?.metadata?.uid,
  };
}

export type Authn =
  | { kind: 'admin' }
  | { kind: 'serviceaccount'; subject: Subject & { uid: string; extra: Record<string, string[]> } };

/**
 * With an admin token configured, a request must carry it or a valid ServiceAccount token whose
 * audiences include the API's; without one every request is the admin, as before.
 */
export function authenticate(
  req: IncomingMessage,
  adminToken: string | undefined,
  tokens: TokenIssuer | undefined,
): Authn {
  if (!adminToken) return { kind: 'admin' };
  const h = req.headers.authorization ?? '';
  if (h === `Bearer ${adminToken}`) return { kind: 'admin' };
  if (!h.startsWith('Bearer ') || !tokens) throw errors.unauthorized();
  const r = tokens.verify(h.slice('Bearer '.length).trim());
  if (!r.authenticated) throw errors.unauthorized();
  return {
    kind: 'serviceaccount',
    subject: { user: r.user.username, groups: r.user.groups, uid: r.user.uid, extra: r.user.extra },
  };
}

export function sendJson(res: ServerResponse, code: number, body: unknown, contentType = 'application/json') {
  const s = JSON.stringify(body);
  // no-cache where kube-apiserver says max-age=3600: verifiers should see a rotation at once here.
  res.writeHead(code, {
    'Content-Type': contentType,
    'Cache-Control': 'no-cache, private',
    'Content-Length': Buffer.byteLength(s),
  });
  res.end(s);
}

/** GET /.well-known/openid-configuration and /openid/v1/jwks. */
export function serveOidc(tokens: TokenIssuer, apiUrl: string, path: string, res: ServerResponse): void {
  if (path === '/openid/v1/jwks') sendJson(res, 200, tokens.jwks(), 'application/jwk-set+json');
  else sendJson(res, 200, tokens.openidConfiguration(apiUrl));
}

const invalid = (kind: string, group: string, name: string, field: string, message: string) =>
  errors.invalid(kind, group, name, [{ reason: 'FieldValueInvalid', field, message } as StatusCause]);

/** POST /api/v1/namespaces/{ns}/serviceaccounts/{sa}/token (authentication.k8s.io/v1 TokenRequest). */
export function tokenRequest(
  store: Store,
  reg: Registry,
  tokens: TokenIssuer,
  ns: string,
  saName: string,
  body: any,
  minExpirationSeconds: number,
  now: Date,
): { code: number; body: Obj } {
  const saType = reg.get('', 'v1', 'serviceaccounts')!;
  const sa = store.get(saType, ns, saName); // 404 serviceaccounts "x" not found
  if (body !== undefined && (typeof body !== 'object' || Array.isArray(body) || body === null))
    throw errors.badRequest('TokenRequest in version "v1" cannot be handled as a TokenRequest');
  if (body?.kind && body.kind !== 'TokenRequest')
    throw errors.badRequest(
      `${body.kind} in version "v1" cannot be handled as a TokenRequest: the object kind does not match`,
    );
  const spec = body?.spec ?? {};
  if (
    spec.audiences !== undefined &&
    !(Array.isArray(spec.audiences) && spec.audiences.every((a: unknown) => typeof a === 'string'))
  )
    throw errors.badRequest(
      'TokenRequest in version "v1" cannot be handled as a TokenRequest: spec.audiences must be a list of strings',
    );
  const rawExp = spec.expirationSeconds;
  if (rawExp !== undefined && rawExp !== null && !Number.isInteger(Number(rawExp)))
    throw errors.badRequest(
      'TokenRequest in version "v1" cannot be handled as a TokenRequest: spec.expirationSeconds must be an integer',
    );
  const expirationSeconds = rawExp === undefined || rawExp === null ? 3600 : Number(rawExp);
  if (expirationSeconds < minExpirationSeconds)
    throw invalid(
      'TokenRequest',
      'authentication.k8s.io',
      saName,
      'spec.expirationSeconds',
      `Invalid value: ${expirationSeconds}: may not specify a duration less than ${minExpirationSeconds === 600 ? '10 minutes' : `${minExpirationSeconds} seconds`}`,
    );
  if (expirationSeconds > 2 ** 32)
    throw invalid(
      'TokenRequest',
      'authentication.k8s.io',
      saName,
      'spec.expirationSeconds',
      `Invalid value: ${expirationSeconds}: may not specify a duration larger than 2^32 seconds`,
    );
  const audiences: string[] = spec.audiences?.length ? spec.audiences : tokens.apiAudiences;
  const ref = spec.boundObjectRef;
  let boundPod: { name: string; uid: string } | undefined;
  let boundSecret: { name: string; uid: string } | undefined;
  let node: { name: string; uid: string } | undefined;
  if (ref) {
    const kind = String(ref.kind ?? '');
    const apiVersion = String(ref.apiVersion ?? 'v1');
    if (!['Pod', 'Secret', 'Node'].includes(kind) || (apiVersion !== 'v1' && apiVersion !== ''))
      throw errors.badRequest(`cannot bind token for serviceaccount "${saName}" to object of type ${kind}`);
    if (!ref.name) throw errors.badRequest('boundObjectRef.name is required');
    const t: ResourceType = reg.get('', 'v1', `${kind.toLowerCase()}s`)!;
    const obj = store.get(t, kind === 'Node' ? undefined : ns, String(ref.name)); // 404 pods "x" not found
    if (kind === 'Pod' && (obj.spec?.serviceAccountName || 'default') !== saName)
      throw errors.badRequest(
        `cannot bind token for serviceaccount "${saName}" to pod running with different serviceaccount name.`,
      );
    if (ref.uid && ref.uid !== obj.metadata.uid)
      throw new ApiError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${kind} "${ref.name}": the UID in the bound object reference (${ref.uid}) does not match the UID in record. The object might have been deleted and then recreated`,
        { name: String(ref.name), kind },
      );
    const bound = { name: String(ref.name), uid: obj.metadata.uid as string };
    if (kind === 'Pod') boundPod = bound;
    else if (kind === 'Secret') boundSecret = bound;
    else node = bound;
  }
  const issued = tokens.issue({
    namespace: ns,
    serviceAccount: saName,
    serviceAccountUid: sa.metadata.uid,
    audiences,
    expirationSeconds,
    boundPod,
    boundSecret,
    node,
    now,
  });
  return {
    code: 201,
    body: {
      kind: 'TokenRequest',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { name: saName, namespace: ns, creationTimestamp: rfc3339(now) },
      spec: {
        audiences,
        expirationSeconds,
        boundObjectRef: ref
          ? { kind: ref.kind, apiVersion: ref.apiVersion ?? 'v1', name: ref.name, uid: ref.uid || undefined }
          : null,
      },
      status: { token: issued.token, expirationTimestamp: rfc3339(issued.expirationTimestamp) },
    },
  };
}

/** POST /apis/authentication.k8s.io/v1/tokenreviews and selfsubjectreviews (never stored). */
export function authenticationReview(
  tokens: TokenIssuer,
  t: ResourceType,
  method: string,
  body: any,
  caller: Authn,
): { code: number; body: Obj } {
  if (method !== 'POST') throw errors.methodNotAllowed(`${t.plural} only support create`);
  if (t.kind === 'SelfSubjectReview') {
    const userInfo =
      caller.kind === 'admin'
        ? { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] }
        : {
            username: caller.subject.user,
            uid: caller.subject.uid,
            groups: caller.subject.groups,
            extra: caller.subject.extra,
          };
    return {
      code: 201,
      body: {
        kind: 'SelfSubjectReview',
        apiVersion: 'authentication.k8s.io/v1',
        metadata: { creationTimestamp: null },
        status: { userInfo },
      },
    };
  }
  const spec = body?.spec ?? {};
  if (typeof spec.token !== 'string' || spec.token === '')
    throw errors.invalid('TokenReview', 'authentication.k8s.io', '', [
      { reason: 'FieldValueRequired', field: 'spec.token', message: 'Required value' },
    ]);
  const audiences: string[] | undefined =
    Array.isArray(spec.audiences) && spec.audiences.length ? spec.audiences : undefined;
  const r = tokens.verify(spec.token, audiences);
  const status = r.authenticated
    ? { authenticated: true, user: r.user, audiences: r.audiences }
    : { authenticated: false, user: {}, error: `[invalid bearer token, ${r.error}]` };
  return {
    code: 201,
    body: {
      kind: 'TokenReview',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { creationTimestamp: null },
      spec,
      status,
    },
  };
}
