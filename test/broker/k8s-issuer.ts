// A tiny in-test ServiceAccount issuer: signs Kubernetes-shaped projected tokens (RS256/ES256,
// kid), serves discovery/JWKS/TokenReview/pods through the KubeAuthApi interface, rotates keys,
// and counts API calls. Used for the unit tests of the k8s-token authenticator.
import { createSign, generateKeyPairSync, type KeyObject, randomUUID } from 'node:crypto';
import type { Jwk } from '../../broker/auth/jose.js';
import type { KubeAuthApi, PodRef, TokenReviewStatus } from '../../broker/auth/kube-api.js';

export interface SigningKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: KeyObject;
  jwk: Jwk;
}

export function newKey(alg: 'RS256' | 'ES256' = 'RS256', kid: string = randomUUID()): SigningKey {
  const { privateKey, publicKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(publicKey.export({ format: 'jwk' }) as Jwk), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, jwk };
}

export function signJwt(
  key: SigningKey,
  claims: Record<string, unknown>,
  header: Record<string, unknown> = {},
) {
  const h = Buffer.from(JSON.stringify({ alg: key.alg, kid: key.kid, ...header })).toString('base64url');
  const c = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const signer = createSign('sha256');
  signer.update(`${h}.${c}`);
  const sig = signer.sign(
    key.alg === 'ES256' ? { key: key.privateKey, dsaEncoding: 'ieee-p1363' } : key.privateKey,
  );
  return `${h}.${c}.${sig.toString('base64url')}`;
}

export interface IssueOptions {
  namespace?: string;
  serviceAccount?: string;
  pod?: string;
  audiences?: string[];
  expiresInSec?: number;
  notBeforeOffsetSec?: number;
  /** put the node claim in (Kubernetes ≥ 1.32); default true */
  nodeClaim?: boolean;
  key?: SigningKey;
  issuer?: string;
}

export class FakeIssuer implements KubeAuthApi {
  issuer = 'https://kubernetes.default.svc.cluster.local';
  keys: SigningKey[] = [newKey('RS256'), newKey('ES256')];
  pods = new Map<string, { uid: string; nodeName?: string }>();
  calls = { discovery: 0, jwks: 0, readPod: 0, tokenReview: 0 };
  down = false;
  now: () => number = Date.now;

  addPod(namespace: string, name: string, nodeName?: string): string {
    const uid = randomUUID();
    this.pods.set(`${namespace}/${name}`, { uid, nodeName });
    return uid;
  }

  issue(o: IssueOptions = {}): string {
    const ns = o.namespace ?? 'cpuburst-system';
    const sa = o.serviceAccount ?? 'cpuburst-agent';
    const now = Math.floor(this.now() / 1000);
    const k8s: Record<string, unknown> = {
      namespace: ns,
      serviceaccount: { name: sa, uid: randomUUID() },
    };
    if (o.pod) {
      const pod = this.pods.get(`${ns}/${o.pod}`);
      k8s.pod = { name: o.pod, uid: pod?.uid ?? randomUUID() };
      if (pod?.nodeName && o.nodeClaim !== false) k8s.node = { name: pod.nodeName, uid: randomUUID() };
    }
    const nbf = now + (o.notBeforeOffsetSec ?? 0);
    return signJwt(o.key ?? this.keys[0]!, {
      aud: o.audiences ?? ['cpuburst-broker'],
      exp: now + (o.expiresInSec ?? 3600),
      iat: nbf,
      nbf,
      iss: o.issuer ?? this.issuer,
      jti: randomUUID(),
      'kubernetes.io': k8s,
      sub: `system:serviceaccount:${ns}:${sa}`,
    });
  }

  rotate(keepPrevious: boolean): SigningKey {
    const k = newKey('RS256');
    this.keys = keepPrevious ? [k, ...this.keys] : [k];
    return k;
  }

  private check(): void {
    if (this.down) throw new Error('connect ECONNREFUSED (fake API down)');
  }

  async discovery() {
    this.calls.discovery++;
    this.check();
    return { issuer: this.issuer, jwks_uri: `${this.issuer}/openid/v1/jwks` };
  }

  async jwks() {
    this.calls.jwks++;
    this.check();
    return this.keys.map((k) => k.jwk);
  }

  async readPod(namespace: string, name: string): Promise<PodRef | null> {
    this.calls.readPod++;
    this.check();
    const p = this.pods.get(`${namespace}/${name}`);
    return p ? { uid: p.uid, nodeName: p.nodeName } : null;
  }

  /** Like the API server: signature with any current key, exp, audience and the bound pod. */
  async tokenReview(token: string, audiences: string[]): Promise<TokenReviewStatus> {
    this.calls.tokenReview++;
    this.check();
    const [h, c, s] = token.split('.');
    const { verify } = await import('node:crypto');
    const header = JSON.parse(Buffer.from(h!, 'base64url').toString());
    const claims = JSON.parse(Buffer.from(c!, 'base64url').toString());
    const key = this.keys.find((k) => k.kid === header.kid);
    const sig = Buffer.from(s!, 'base64url');
    const ok =
      key &&
      verify(
        'sha256',
        Buffer.from(`${h}.${c}`),
        key.alg === 'ES256' ? { key: key.privateKey, dsaEncoding: 'ieee-p1363' } : key.privateKey,
        sig,
      );
    if (!ok || claims.iss !== this.issuer) return { authenticated: false, error: 'invalid bearer token' };
    if (claims.exp <= this.now() / 1000)
      return { authenticated: false, error: 'invalid bearer token, Token has expired.' };
    if (!audiences.some((a) => claims.aud.includes(a))) {
      return { authenticated: false, error: 'token audiences ["x"] is invalid for the target audiences' };
    }
    const k8s = claims['kubernetes.io'];
    const extra: Record<string, string[]> = {
      'authentication.kubernetes.io/credential-id': [`JTI=${claims.jti}`],
    };
    if (k8s.pod) {
      const pod = this.pods.get(`${k8s.namespace}/${k8s.pod.name}`);
      if (!pod || pod.uid !== k8s.pod.uid) {
        return { authenticated: false, error: `pod "${k8s.pod.name}" not found` };
      }
      extra['authentication.kubernetes.io/pod-name'] = [k8s.pod.name];
      extra['authentication.kubernetes.io/pod-uid'] = [k8s.pod.uid];
    }
    if (k8s.node) extra['authentication.kubernetes.io/node-name'] = [k8s.node.name];
    return {
      authenticated: true,
      user: { username: claims.sub, uid: k8s.serviceaccount.uid, groups: [], extra },
      audiences: audiences.filter((a) => claims.aud.includes(a)),
    };
  }
}
