// The ServiceAccount token issuer: signing keys (RS256, or ES256), JWTs with the claims Kubernetes 1.32
// puts in bound tokens, the JWKS/OIDC discovery documents and verification (TokenReview and bearer
// authentication). node:crypto only. Binding checks (does the pod still exist with that uid?) are
// injected as a lookup, so this file knows nothing of the store.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  sign as cryptoSign,
  verify as cryptoVerify,
  generateKeyPairSync,
  type KeyObject,
  randomUUID,
} from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

export type SigningAlg = 'RS256' | 'ES256';

export interface SigningKey {
  kid: string;
  alg: SigningAlg;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

const b64u = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/** RFC 7638 JWK thumbprint (SHA-256, base64url) of a public key. */
export function jwkThumbprint(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' }) as Record<string, string>;
  // Required members only, lexicographic order, no whitespace.
  const canonical =
    jwk.kty === 'RSA'
      ? JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n })
      : JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return createHash('sha256').update(canonical).digest('base64url');
}

function fromPrivate(privateKey: KeyObject): SigningKey {
  const publicKey = createPublicKey(privateKey);
  let alg: SigningAlg;
  if (privateKey.asymmetricKeyType === 'rsa') alg = 'RS256';
  else if (
    privateKey.asymmetricKeyType === 'ec' &&
    privateKey.asymmetricKeyDetails?.namedCurve === 'prime256v1'
  )
    alg = 'ES256';
  else throw new Error('signing key must be RSA or EC P-256');
  return { kid: jwkThumbprint(publicKey), alg, privateKey, publicKey };
}

export function generateSigningKey(alg: SigningAlg = 'RS256'): SigningKey {
  const { privateKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return fromPrivate(privateKey);
}

/** A PEM private key (PKCS#8, PKCS#1 or SEC1). */
export function signingKeyFromPem(pem: string): SigningKey {
  return fromPrivate(createPrivateKey(pem));
}

export function signingKeyPem(k: SigningKey): string {
  return k.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
}

/** Reads the key at `file`, or generates one and writes it there (0600, temp + rename). */
export function loadOrCreateKeyFile(file: string, alg: SigningAlg = 'RS256'): SigningKey {
  if (existsSync(file)) return signingKeyFromPem(readFileSync(file, 'utf8'));
  const k = generateSigningKey(alg);
  writeKeyFile(file, k);
  return k;
}

function writeKeyFile(file: string, k: SigningKey): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, signingKeyPem(k), { mode: 0o600 });
  renameSync(tmp, file);
}

export function signJwt(key: SigningKey, claims: Record<string, unknown>): string {
  const header = b64u(JSON.stringify({ alg: key.alg, kid: key.kid }));
  const payload = b64u(JSON.stringify(claims));
  const input = Buffer.from(`${header}.${payload}`);
  const sig =
    key.alg === 'RS256'
      ? cryptoSign('sha256', input, key.privateKey)
      : cryptoSign('sha256', input, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${header}.${payload}.${b64u(sig)}`;
}

export interface ObjectRef {
  name: string;
  uid: string;
}

/** The `kubernetes.io` private claim of a Kubernetes 1.32 ServiceAccount token. */
export interface KubernetesClaim {
  namespace: string;
  serviceaccount: ObjectRef;
  pod?: ObjectRef;
  secret?: ObjectRef;
  node?: ObjectRef;
  warnafter?: number;
}

export interface TokenClaims {
  aud: string[];
  exp: number;
  iat: number;
  iss: string;
  jti: string;
  'kubernetes.io': KubernetesClaim;
  nbf: number;
  sub: string;
}

export interface IssueOptions {
  namespace: string;
  serviceAccount: string;
  /** default: the ServiceAccount's uid from the cluster (a random one when it does not exist). */
  serviceAccountUid?: string;
  /** default: [issuer] (the API audience). */
  audiences?: string[];
  /** default 3600. Not clamped here: tests may issue very short-lived or (negative) expired tokens. */
  expirationSeconds?: number;
  boundPod?: ObjectRef;
  boundSecret?: ObjectRef;
  /** default: the bound pod's node (spec.nodeName, when that Node exists), looked up in the cluster. */
  node?: ObjectRef;
  /** sign with this key instead of the issuer's (a "foreign" signature). */
  key?: SigningKey;
  /** override the iss claim. */
  issuer?: string;
  /** issue as if it were this moment (default: the issuer's clock). */
  now?: Date;
}

export interface IssuedToken {
  token: string;
  claims: TokenClaims;
  expirationTimestamp: Date;
}

/** What binding checks need from the cluster; undefined = the object does not exist. */
export interface ClusterLookup {
  serviceAccountUid(namespace: string, name: string): string | undefined;
  pod(namespace: string, name: string): { uid: string; nodeName?: string } | undefined;
  secretUid(namespace: string, name: string): string | undefined;
  nodeUid(name: string): string | undefined;
}

export interface UserInfo {
  username: string;
  uid: string;
  groups: string[];
  extra: Record<string, string[]>;
}

export type VerifyResult =
  | { authenticated: true; user: UserInfo; audiences: string[]; claims: TokenClaims }
  | { authenticated: false; error: string; reason: VerifyFailure };

export type VerifyFailure =
  | 'malformed'
  | 'unknown_key'
  | 'bad_signature'
  | 'unknown_issuer'
  | 'expired'
  | 'not_yet_valid'
  | 'bad_audience'
  | 'invalidated';

export interface TokenIssuerOptions {
  issuer: string;
  /** the API server's own audiences (default [issuer]): tokens without a requested audience get these. */
  apiAudiences?: string[];
  alg?: SigningAlg;
  /** persist the current signing key here (loaded at start if present, rewritten on rotation). */
  keyFile?: string;
  key?: SigningKey;
  /** clock skew accepted on exp/nbf when verifying; kube-apiserver (go-jose) allows 60 s. */
  leewaySeconds?: number;
  now?: () => Date;
  lookup: ClusterLookup;
}

export const SA_GROUP = 'system:serviceaccounts';

export class TokenIssuer {
  issuer: string;
  readonly apiAudiences: string[];
  private lazyKey?: SigningKey;
  private previous: SigningKey[] = [];
  private readonly alg: SigningAlg;
  private readonly keyFile?: string;
  private readonly leeway: number;
  private readonly now: () => Date;
  private readonly lookup: ClusterLookup;
  /** rotations so far (tests and logs). */
  rotations = 0;

  constructor(opts: TokenIssuerOptions) {
    this.issuer = opts.issuer;
    this.apiAudiences = opts.apiAudiences ?? [opts.issuer];
    this.alg = opts.alg ?? 'RS256';
    this.keyFile = opts.keyFile;
    this.leeway = opts.leewaySeconds ?? 60;
    this.now = opts.now ?? (() => new Date());
    this.lookup = opts.lookup;
    this.lazyKey = opts.key ?? (opts.keyFile ? loadOrCreateKeyFile(opts.keyFile, this.alg) : undefined);
  }

  /** The signing key, generated on first use (an RSA key costs ~0.1–1 s; most test clusters never sign). */
  private get current(): SigningKey {
    this.lazyKey ??= generateSigningKey(this.alg);
    return this.lazyKey;
  }

  private set current(k: SigningKey) {
    this.lazyKey = k;
  }

  get currentKey(): SigningKey {
    return this.current;
  }

  /** kids in the JWKS: the current key first, then kept previous keys. */
  get kids(): string[] {
    return [this.current.kid, ...this.previous.map((k) => k.kid)];
  }

  /** New signing key; the old ones stay verifiable (and in the JWKS) only with keepPrevious. */
  rotate(opts: { keepPrevious?: boolean; key?: SigningKey } = {}): { kid: string; previous: string[] } {
    const next = opts.key ?? generateSigningKey(this.alg);
    this.previous = opts.keepPrevious ? [this.current, ...this.previous] : [];
    this.current = next;
    this.rotations++;
    if (this.keyFile) writeKeyFile(this.keyFile, next);
    return { kid: next.kid, previous: this.previous.map((k) => k.kid) };
  }

  jwks(): { keys: Record<string, string>[] } {
    return {
      keys: [this.current, ...this.previous].map((k) => ({
        ...(k.publicKey.export({ format: 'jwk' }) as Record<string, string>),
        use: 'sig',
        kid: k.kid,
        alg: k.alg,
      })),
    };
  }

  openidConfiguration(apiUrl: string): Record<string, unknown> {
    return {
      issuer: this.issuer,
      jwks_uri: `${apiUrl}/openid/v1/jwks`,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: [...new Set([this.current, ...this.previous].map((k) => k.alg))],
    };
  }

  issue(o: IssueOptions): IssuedToken {
    const now = o.now ?? this.now();
    const iat = Math.floor(now.getTime() / 1000);
    const exp = iat + (o.expirationSeconds ?? 3600);
    const k8s: KubernetesClaim = {
      namespace: o.namespace,
      serviceaccount: {
        name: o.serviceAccount,
        uid:
          o.serviceAccountUid ?? this.lookup.serviceAccountUid(o.namespace, o.serviceAccount) ?? randomUUID(),
      },
    };
    if (o.boundPod) {
      k8s.pod = { name: o.boundPod.name, uid: o.boundPod.uid };
      const node = o.node ?? this.podNode(o.namespace, o.boundPod.name);
      if (node) k8s.node = node;
    } else if (o.node) k8s.node = o.node;
    if (o.boundSecret) k8s.secret = { name: o.boundSecret.name, uid: o.boundSecret.uid };
    // Key order as kube-apiserver serialises them (alphabetical), so decoded tokens read the same.
    const claims: TokenClaims = {
      aud: o.audiences && o.audiences.length > 0 ? [...o.audiences] : [...this.apiAudiences],
      exp,
      iat,
      iss: o.issuer ?? this.issuer,
      jti: randomUUID(),
      'kubernetes.io': k8s,
      nbf: iat,
      sub: `system:serviceaccount:${o.namespace}:${o.serviceAccount}`,
    };
    return {
      token: signJwt(o.key ?? this.current, claims as unknown as Record<string, unknown>),
      claims,
      expirationTimestamp: new Date(exp * 1000),
    };
  }

  private podNode(namespace: string, pod: string): ObjectRef | undefined {
    const nodeName = this.lookup.pod(namespace, pod)?.nodeName;
    if (!nodeName) return undefined;
    const uid = this.lookup.nodeUid(nodeName);
    return uid ? { name: nodeName, uid } : undefined;
  }

  /**
   * Authenticates a token as kube-apiserver's ServiceAccount authenticator does: signature against the
   * current keys, issuer, exp/nbf, audiences ∩ `audiences` (default: the API audiences), and the
   * ServiceAccount and bound objects still existing with the same uids.
   */
  verify(token: string, audiences?: string[]): VerifyResult {
    const fail = (reason: VerifyFailure, error: string): VerifyResult => ({
      authenticated: false,
      reason,
      error,
    });
    const parts = token.split('.');
    if (parts.length !== 3) return fail('malformed', 'token is not a JWT');
    let header: { alg?: string; kid?: string };
    let claims: TokenClaims;
    try {
      header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
      claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    } catch {
      return fail('malformed', 'token is not a JWT');
    }
    if (!claims || typeof claims !== 'object' || !header || typeof header !== 'object')
      return fail('malformed', 'token is not a JWT');
    if (claims.iss !== this.issuer)
      return fail('unknown_issuer', `token issuer "${claims.iss}" is not trusted`);
    const keys = [this.current, ...this.previous];
    const candidates = header.kid ? keys.filter((k) => k.kid === header.kid) : keys;
    if (candidates.length === 0) return fail('unknown_key', `no signing key with kid "${header.kid}"`);
    const input = Buffer.from(`${parts[0]}.${parts[1]}`);
    const sig = Buffer.from(parts[2]!, 'base64url');
    const ok = candidates.some((k) => {
      if (k.alg !== header.alg) return false; // also refuses alg "none" and HS256 key confusion
      try {
        return k.alg === 'RS256'
          ? cryptoVerify('sha256', input, k.publicKey, sig)
          : cryptoVerify('sha256', input, { key: k.publicKey, dsaEncoding: 'ieee-p1363' }, sig);
      } catch {
        return false; // a signature of the wrong shape
      }
    });
    if (!ok) return fail('bad_signature', 'square/go-jose: error in cryptographic primitive');
    const now = this.now().getTime() / 1000;
    if (typeof claims.exp !== 'number' || now > claims.exp + this.leeway)
      return fail('expired', 'square/go-jose/jwt: validation failed, token is expired (exp)');
    if (typeof claims.nbf === 'number' && now < claims.nbf - this.leeway)
      return fail('not_yet_valid', 'square/go-jose/jwt: validation failed, token not valid yet (nbf)');
    const aud = Array.isArray(claims.aud) ? claims.aud : typeof claims.aud === 'string' ? [claims.aud] : [];
    const wanted = audiences && audiences.length > 0 ? audiences : this.apiAudiences;
    const both = wanted.filter((a) => aud.includes(a));
    if (both.length === 0)
      return fail(
        'bad_audience',
        `token audiences ${JSON.stringify(aud)} is invalid for the target audiences ${JSON.stringify(wanted)}`,
      );
    const k8s = claims['kubernetes.io'];
    const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(String(claims.sub));
    if (!k8s || !m || k8s.namespace !== m[1] || k8s.serviceaccount?.name !== m[2])
      return fail('malformed', 'token lacks consistent kubernetes.io claims');
    const ns = k8s.namespace;
    const saUid = this.lookup.serviceAccountUid(ns, k8s.serviceaccount.name);
    if (saUid === undefined)
      return fail('invalidated', `serviceaccounts "${k8s.serviceaccount.name}" not found`);
    if (saUid !== k8s.serviceaccount.uid)
      return fail(
        'invalidated',
        `service account UID (${saUid}) does not match claim (${k8s.serviceaccount.uid})`,
      );
    if (k8s.pod) {
      const pod = this.lookup.pod(ns, k8s.pod.name);
      if (!pod) return fail('invalidated', 'service account token has been invalidated');
      if (pod.uid !== k8s.pod.uid)
        return fail(
          'invalidated',
          `pod UID (${pod.uid}) does not match service account pod ref claim (${k8s.pod.uid})`,
        );
    }
    if (k8s.secret) {
      const uid = this.lookup.secretUid(ns, k8s.secret.name);
      if (uid === undefined) return fail('invalidated', 'service account token has been invalidated');
      if (uid !== k8s.secret.uid)
        return fail(
          'invalidated',
          `secret UID (${uid}) does not match service account secret ref claim (${k8s.secret.uid})`,
        );
    }
    const extra: Record<string, string[]> = {};
    if (k8s.pod) {
      extra['authentication.kubernetes.io/pod-name'] = [k8s.pod.name];
      extra['authentication.kubernetes.io/pod-uid'] = [k8s.pod.uid];
    }
    if (k8s.node) {
      extra['authentication.kubernetes.io/node-name'] = [k8s.node.name];
      if (k8s.node.uid) extra['authentication.kubernetes.io/node-uid'] = [k8s.node.uid];
    }
    if (claims.jti) extra['authentication.kubernetes.io/credential-id'] = [`JTI=${claims.jti}`];
    return {
      authenticated: true,
      claims,
      audiences: both,
      user: {
        username: claims.sub,
        uid: saUid,
        groups: [SA_GROUP, `${SA_GROUP}:${ns}`, 'system:authenticated'],
        extra,
      },
    };
  }
}

/** Decodes a JWT's header and claims without checking anything (tests, debugging). */
export function decodeJwt(token: string): { header: Record<string, unknown>; claims: Record<string, any> } {
  const [h, p] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h ?? '', 'base64url').toString('utf8')),
    claims: JSON.parse(Buffer.from(p ?? '', 'base64url').toString('utf8')),
  };
}
