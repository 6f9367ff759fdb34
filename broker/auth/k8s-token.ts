// The `k8s-token` authenticator: the MQTT password is a projected Kubernetes ServiceAccount token.
// It is verified without trusting the client — signature against the issuer's JWKS (OIDC
// discovery) or a TokenReview, issuer, audience, expiry, the ServiceAccount and the bound pod —
// and the identity comes from the token alone: the agent ServiceAccount → `agent:<node>` (node
// from the `kubernetes.io.node.name` claim, else the bound pod's spec.nodeName), the operator
// ServiceAccount → `operator`, any other → `sa:<ns>:<name>` (only with allowOther).
import { createHash } from 'node:crypto';
import type { Logger } from '../../common/log.js';
import { identities, isValidNodeName } from '../../protocol/topics.js';
import { type ParsedJwt, parseJwt, SUPPORTED_ALGS, verifySignature } from './jose.js';
import { JwksCache } from './jwks-cache.js';
import type { KubeAuthApi, PodRef, TokenReviewStatus } from './kube-api.js';
import { Refusal, type RefusalReason } from './refusals.js';
import { TtlCache } from './ttl-cache.js';

export type SaVerifyMode = 'jwks' | 'tokenreview' | 'auto';
export const SA_VERIFY_MODES: SaVerifyMode[] = ['jwks', 'tokenreview', 'auto'];

export interface K8sTokenOptions {
  verify: SaVerifyMode;
  audience: string;
  /** `<namespace>/<name>` of the agents' ServiceAccount */
  agentServiceAccount?: string;
  operatorServiceAccount?: string;
  allowOther: boolean;
  /** expected `iss`; default: the issuer of the discovery document */
  issuer?: string;
  jwksRefreshSec: number;
  podCacheSec: number;
  /** JWTs of another issuer are left to a later authenticator (`jwt` in the chain) instead of refused */
  passForeignIssuers?: boolean;
}

export interface K8sTokenDeps {
  api: KubeAuthApi;
  clock: () => number;
  log: Logger;
}

export interface VerifiedToken {
  identity: string;
  /** epoch ms of `exp`: the broker disconnects the client then */
  expiresAt: number;
  serviceAccount: string;
  pod?: string;
  node?: string;
  via: 'jwks' | 'tokenreview';
}

export type TokenVerdict =
  | { result: 'ignore' }
  | ({ result: 'allow' } & VerifiedToken)
  | { result: 'deny'; reason: RefusalReason; detail: string };

/** Clock skew between API server and broker: kube-apiserver (go-jose) also accepts nbf 60 s early. */
const NBF_LEEWAY_SEC = 60;
const SA_SUBJECT = /^system:serviceaccount:([^:]+):([^:]+)$/;
const X_POD_NAME = 'authentication.kubernetes.io/pod-name';
const X_POD_UID = 'authentication.kubernetes.io/pod-uid';
const X_NODE_NAME = 'authentication.kubernetes.io/node-name';

interface TokenFacts {
  namespace: string;
  name: string;
  pod?: { name: string; uid?: string };
  node?: string;
  exp: number;
}

interface ReviewResult {
  status: TokenReviewStatus;
}

export class K8sTokenAuthenticator {
  readonly jwks: JwksCache | undefined;
  private readonly pods: TtlCache<PodRef | null>;
  private readonly reviews: TtlCache<ReviewResult>;

  constructor(
    readonly opts: K8sTokenOptions,
    private readonly deps: K8sTokenDeps,
  ) {
    if (opts.verify !== 'tokenreview') {
      this.jwks = new JwksCache({
        api: deps.api,
        refreshSec: opts.jwksRefreshSec,
        clock: deps.clock,
        log: deps.log,
      });
    }
    this.pods = new TtlCache(opts.podCacheSec * 1000, deps.clock);
    this.reviews = new TtlCache(opts.podCacheSec * 1000, deps.clock);
  }

  async start(): Promise<void> {
    await this.jwks?.start();
  }

  stop(): void {
    this.jwks?.stop();
  }

  async check(password: Buffer | undefined): Promise<TokenVerdict> {
    if (!password?.length) return { result: 'ignore' };
    const token = password.toString('utf8');
    // Anything that is not a JWS (base64url JSON header and claims) is some other authenticator's
    // password, even with dots in it; a JWS without the claims of a token is `malformed`.
    const jwt = parseJwt(token);
    if (!jwt) return { result: 'ignore' };
    try {
      const verified = await this.verify(token, jwt);
      if (verified === 'ignore') return { result: 'ignore' };
      return { result: 'allow', ...verified };
    } catch (err) {
      if (err instanceof Refusal) return { result: 'deny', reason: err.reason, detail: err.message };
      return { result: 'deny', reason: 'review_failed', detail: (err as Error).message };
    }
  }

  private async verify(token: string, jwt: ParsedJwt): Promise<VerifiedToken | 'ignore'> {
    const c = jwt.claims;
    if (typeof c.iss !== 'string' || typeof c.sub !== 'string' || typeof c.exp !== 'number') {
      throw new Refusal('malformed', 'token lacks iss, sub or exp');
    }
    // Not a ServiceAccount token at all (an IoT JWT): a later `jwt` authenticator judges it, even
    // when the issuer is not known locally (tokenreview mode without --sa-issuer).
    if (this.opts.passForeignIssuers && c['kubernetes.io'] === undefined) return 'ignore';
    const keySet = this.jwks ? await this.jwks.get() : undefined;
    if (this.opts.verify === 'jwks' && !keySet) {
      throw new Refusal(
        'review_failed',
        `ServiceAccount issuer keys unavailable: ${this.jwks?.error ?? 'not fetched yet'}`,
      );
    }
    const issuer = this.opts.issuer ?? keySet?.issuer;
    if (issuer !== undefined && c.iss !== issuer) {
      if (this.opts.passForeignIssuers) return 'ignore';
      throw new Refusal('unknown_issuer', `issuer ${JSON.stringify(c.iss)} is not ${JSON.stringify(issuer)}`);
    }
    if (keySet) await this.checkSignature(jwt);
    this.checkTime(c.exp, c.nbf);
    this.checkAudience(c.aud);
    return keySet ? this.fromClaims(jwt) : this.fromReview(token, c.exp);
  }

  private async checkSignature(jwt: ParsedJwt): Promise<void> {
    const alg = jwt.header.alg;
    if (!SUPPORTED_ALGS.includes(alg as (typeof SUPPORTED_ALGS)[number])) {
      throw new Refusal('bad_signature', `unsupported signing algorithm ${JSON.stringify(alg)}`);
    }
    const kid = typeof jwt.header.kid === 'string' ? jwt.header.kid : undefined;
    const found = await this.jwks!.keyFor(kid);
    if (!found || found.keys.length === 0) {
      throw new Refusal(
        'unknown_key',
        `signing key ${JSON.stringify(kid ?? null)} is not in the issuer's JWKS`,
      );
    }
    if (!found.keys.some((k) => verifySignature(jwt, k))) {
      throw new Refusal('bad_signature', `signature does not verify with key ${JSON.stringify(kid ?? null)}`);
    }
  }

  private checkTime(exp: number, nbf: unknown): void {
    const now = this.deps.clock() / 1000;
    if (now >= exp) throw new Refusal('expired', `token expired at ${new Date(exp * 1000).toISOString()}`);
    if (typeof nbf === 'number' && now + NBF_LEEWAY_SEC < nbf) {
      throw new Refusal('not_yet_valid', `token not valid before ${new Date(nbf * 1000).toISOString()}`);
    }
  }

  private checkAudience(aud: unknown): void {
    const list = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
    if (!list.includes(this.opts.audience)) {
      throw new Refusal(
        'bad_audience',
        `audience ${JSON.stringify(aud ?? null)} does not include ${JSON.stringify(this.opts.audience)}`,
      );
    }
  }

  /** JWKS path: everything from the verified claims, plus the bound pod read through the API. */
  private async fromClaims(jwt: ParsedJwt): Promise<VerifiedToken> {
    const c = jwt.claims;
    const m = SA_SUBJECT.exec(c.sub as string);
    if (!m)
      throw new Refusal(
        'serviceaccount_not_allowed',
        `subject ${JSON.stringify(c.sub)} is not a ServiceAccount`,
      );
    const k8s = (c['kubernetes.io'] ?? {}) as Record<string, any>;
    if (typeof k8s !== 'object') throw new Refusal('malformed', 'claim kubernetes.io is not an object');
    if (k8s.namespace !== undefined && k8s.namespace !== m[1])
      throw new Refusal('malformed', 'kubernetes.io.namespace does not match sub');
    if (k8s.serviceaccount?.name !== undefined && k8s.serviceaccount.name !== m[2]) {
      throw new Refusal('malformed', 'kubernetes.io.serviceaccount.name does not match sub');
    }
    const facts: TokenFacts = { namespace: m[1]!, name: m[2]!, exp: c.exp as number };
    if (k8s.pod !== undefined) {
      if (typeof k8s.pod?.name !== 'string') throw new Refusal('malformed', 'kubernetes.io.pod has no name');
      facts.pod = { name: k8s.pod.name, uid: typeof k8s.pod.uid === 'string' ? k8s.pod.uid : undefined };
    }
    if (typeof k8s.node?.name === 'string') facts.node = k8s.node.name;
    const role = this.role(facts);
    let podNode: string | undefined;
    if (facts.pod) {
      const pod = await this.readPod(facts.namespace, facts.pod.name);
      if (!pod)
        throw new Refusal('pod_gone', `bound pod ${facts.namespace}/${facts.pod.name} no longer exists`);
      if (facts.pod.uid !== undefined && pod.uid !== facts.pod.uid) {
        throw new Refusal(
          'pod_gone',
          `bound pod ${facts.namespace}/${facts.pod.name} was replaced (uid ${pod.uid}, token ${facts.pod.uid})`,
        );
      }
      podNode = pod.nodeName;
    }
    return this.finish(facts, role, podNode, 'jwks');
  }

  /** TokenReview path: the API server verifies signature, issuer, expiry and the bound pod. */
  private async fromReview(token: string, exp: number): Promise<VerifiedToken> {
    const key = createHash('sha256').update(token).digest('base64url');
    let review: ReviewResult;
    try {
      review = await this.reviews.get(key, async () => ({
        status: await this.deps.api.tokenReview(token, [this.opts.audience]),
      }));
    } catch (err) {
      throw new Refusal('review_failed', `TokenReview failed: ${(err as Error).message}`);
    }
    const st = review.status;
    if (st.authenticated !== true) {
      const why = st.error ?? 'not authenticated';
      throw new Refusal(reviewReason(why), `TokenReview: ${why}`);
    }
    if (st.audiences && !st.audiences.includes(this.opts.audience)) {
      throw new Refusal('bad_audience', `TokenReview audiences ${JSON.stringify(st.audiences)}`);
    }
    const m = SA_SUBJECT.exec(st.user?.username ?? '');
    if (!m)
      throw new Refusal(
        'serviceaccount_not_allowed',
        `user ${JSON.stringify(st.user?.username)} is not a ServiceAccount`,
      );
    const extra = st.user?.extra ?? {};
    const facts: TokenFacts = { namespace: m[1]!, name: m[2]!, exp };
    const podName = extra[X_POD_NAME]?.[0];
    if (podName) facts.pod = { name: podName, uid: extra[X_POD_UID]?.[0] };
    facts.node = extra[X_NODE_NAME]?.[0];
    const role = this.role(facts);
    // The API server already refused tokens whose pod is gone; the pod is read only for its node.
    let podNode: string | undefined;
    if (role === 'agent' && !facts.node && facts.pod) {
      const pod = await this.readPod(facts.namespace, facts.pod.name);
      if (!pod || (facts.pod.uid !== undefined && pod.uid !== facts.pod.uid)) {
        throw new Refusal('pod_gone', `bound pod ${facts.namespace}/${facts.pod.name} no longer exists`);
      }
      podNode = pod.nodeName;
    }
    return this.finish(facts, role, podNode, 'tokenreview');
  }

  private role(f: TokenFacts): 'agent' | 'operator' | 'other' {
    const sa = `${f.namespace}/${f.name}`;
    if (sa === this.opts.agentServiceAccount) return 'agent';
    if (sa === this.opts.operatorServiceAccount) return 'operator';
    if (this.opts.allowOther) return 'other';
    throw new Refusal('serviceaccount_not_allowed', `ServiceAccount ${sa} is not allowed`);
  }

  private finish(
    f: TokenFacts,
    role: 'agent' | 'operator' | 'other',
    podNode: string | undefined,
    via: VerifiedToken['via'],
  ): VerifiedToken {
    const base = {
      expiresAt: f.exp * 1000,
      serviceAccount: `${f.namespace}/${f.name}`,
      pod: f.pod ? `${f.namespace}/${f.pod.name}` : undefined,
      via,
    };
    if (role === 'operator') return { ...base, identity: identities.operator };
    if (role === 'other') return { ...base, identity: `sa:${f.namespace}:${f.name}` };
    if (f.node && podNode && f.node !== podNode) {
      throw new Refusal('node_mismatch', `token names node ${f.node} but pod ${base.pod} runs on ${podNode}`);
    }
    const node = f.node ?? podNode;
    if (!node) {
      throw new Refusal(
        'node_unknown',
        f.pod ? `bound pod ${base.pod} has no node` : 'agent token is not bound to a pod',
      );
    }
    if (!isValidNodeName(node))
      throw new Refusal('node_unknown', `node name ${JSON.stringify(node)} is not valid`);
    return { ...base, identity: identities.agent(node), node };
  }

  private readPod(namespace: string, name: string): Promise<PodRef | null> {
    return this.pods
      .get(`${namespace}/${name}`, () => this.deps.api.readPod(namespace, name))
      .catch((err: Error) => {
        throw new Refusal('review_failed', `cannot read pod ${namespace}/${name}: ${err.message}`);
      });
  }
}

/** The API server's TokenReview error text, mapped to our reasons where it says enough. */
export function reviewReason(error: string): RefusalReason {
  if (/expired/i.test(error)) return 'expired';
  if (/not valid yet|before|nbf/i.test(error)) return 'not_yet_valid';
  if (/audience/i.test(error)) return 'bad_audience';
  // kube-apiserver: "service account token has been invalidated" (bound pod gone) or "pod UID (..) does not match".
  if (/invalidated/i.test(error)) return 'pod_gone';
  if (/pod/i.test(error) && /not found|does not exist|deleted|does not match|no longer/i.test(error))
    return 'pod_gone';
  return 'review_failed';
}
