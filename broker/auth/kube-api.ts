// The broker's one adapter to the Kubernetes API for ServiceAccount tokens: OIDC discovery, the
// issuer's JWKS, TokenReview and reading a pod. Plain JSON requests authenticated with the
// kubeconfig's credentials (client-node's applyToHTTPSOptions: token, client cert, CA, in-cluster
// token file re-read), because client-node's generated OIDC calls mis-handle the JWKS media type.
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Jwk } from './jose.js';

export interface OidcDiscovery {
  issuer: string;
  jwks_uri: string;
}

export interface PodRef {
  uid: string;
  nodeName?: string;
}

export interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  audiences?: string[];
  error?: string;
}

/** What the token authenticator needs from the cluster; tests may hand in a fake. */
export interface KubeAuthApi {
  discovery(): Promise<OidcDiscovery>;
  jwks(jwksUri: string): Promise<Jwk[]>;
  /** null when the pod does not exist. */
  readPod(namespace: string, name: string): Promise<PodRef | null>;
  tokenReview(token: string, audiences: string[]): Promise<TokenReviewStatus>;
}

export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const TIMEOUT_MS = 5000;
/** Requests in flight at once: a reconnect storm queues here instead of opening thousands of sockets. */
const MAX_IN_FLIGHT = 32;

/** A counting semaphore for the API calls. */
function limiter(max: number) {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= max) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

export function kubeAuthApi(kc: KubeConfig): KubeAuthApi {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const base = new URL(cluster.server);
  const prefix = base.pathname.replace(/\/$/, '');
  let agent: http.Agent | undefined;
  const limit = limiter(MAX_IN_FLIGHT);

  function request(method: string, path: string, body?: unknown): Promise<unknown> {
    return limit(() => send(method, path, body));
  }

  async function send(method: string, path: string, body?: unknown): Promise<unknown> {
    const opts: https.RequestOptions = { headers: {} };
    await kc.applyToHTTPSOptions(opts);
    // One keep-alive agent for all calls (client-node builds a new one per call).
    agent ??= opts.agent as http.Agent | undefined;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: http.OutgoingHttpHeaders = {
      ...(opts.headers as http.OutgoingHttpHeaders),
      accept: 'application/json, */*',
    };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    const mod = base.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        {
          ...opts,
          agent,
          method,
          protocol: base.protocol,
          hostname: base.hostname.replace(/^\[|\]$/g, ''),
          port: base.port || undefined,
          path: `${prefix}${path}`,
          headers,
          timeout: TIMEOUT_MS,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status < 200 || status > 299) {
              let msg = text.slice(0, 300);
              try {
                msg = (JSON.parse(text) as { message?: string }).message ?? msg;
              } catch {
                // not JSON: keep the text
              }
              return reject(new KubeApiError(status, `${method} ${path}: HTTP ${status} ${msg}`));
            }
            try {
              resolve(JSON.parse(text));
            } catch {
              reject(new KubeApiError(status, `${method} ${path}: answer is not JSON`));
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  return {
    async discovery() {
      const d = (await request('GET', '/.well-known/openid-configuration')) as Partial<OidcDiscovery>;
      if (typeof d?.issuer !== 'string' || typeof d.jwks_uri !== 'string') {
        throw new Error('OIDC discovery document lacks issuer or jwks_uri');
      }
      return { issuer: d.issuer, jwks_uri: d.jwks_uri };
    },
    async jwks(jwksUri) {
      // The API server serves the keys itself at the path of jwks_uri (the URI's host is the
      // public issuer address, often not reachable from inside the cluster). Managed clusters
      // with an external issuer (EKS, GKE) serve them only there: then the public URI is read.
      const uri = new URL(jwksUri, base);
      let doc: { keys?: unknown };
      try {
        doc = (await request('GET', uri.pathname)) as { keys?: unknown };
      } catch (err) {
        if (!(err instanceof KubeApiError && err.status === 404) || uri.host === base.host) throw err;
        const res = await fetch(uri, { signal: AbortSignal.timeout(TIMEOUT_MS) });
        if (!res.ok) throw new KubeApiError(res.status, `GET ${uri.href}: HTTP ${res.status}`);
        doc = (await res.json()) as { keys?: unknown };
      }
      if (!Array.isArray(doc?.keys)) throw new Error('JWKS document has no "keys" list');
      return doc.keys as Jwk[];
    },
    async readPod(namespace, name) {
      try {
        const pod = (await request(
          'GET',
          `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`,
        )) as { metadata?: { uid?: string }; spec?: { nodeName?: string } };
        return { uid: pod.metadata?.uid ?? '', nodeName: pod.spec?.nodeName || undefined };
      } catch (err) {
        if (err instanceof KubeApiError && err.status === 404) return null;
        throw err;
      }
    },
    async tokenReview(token, audiences) {
      const review = (await request('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, audiences },
      })) as { status?: TokenReviewStatus };
      return review.status ?? {};
    },
  };
}
