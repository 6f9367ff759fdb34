// The authenticator chain, in the configured order (EMQX-style): each authenticator answers
// allow / deny / ignore; the first allow or deny wins. When all ignore, the client is anonymous,
// which is refused unless --allow-anonymous, and never granted a control-plane identity.
import { verifyAgentPassword } from '../../protocol/credentials.js';
import type { AclRule } from '../acl.js';
import { isControlIdentity } from '../control-acl.js';
import { askHttpHook } from './http-hook.js';
import { parseJwt } from './jose.js';
import { checkJwt, type JwtKeys } from './jwt.js';
import type { K8sTokenAuthenticator } from './k8s-token.js';
import { connackCode, type RefusalReason } from './refusals.js';
import { checkCert, type PeerInfo } from './tls-cert.js';
import { checkUser, type UserTable } from './users.js';

export type AuthenticatorName = 'password' | 'agent-key' | 'jwt' | 'http' | 'k8s-token' | 'tls-cert';
export const AUTHENTICATORS: AuthenticatorName[] = [
  'password',
  'agent-key',
  'jwt',
  'http',
  'k8s-token',
  'tls-cert',
];

export interface AuthSources {
  users?: UserTable;
  agentKey?: Buffer;
  jwt?: JwtKeys;
  httpUrl?: string;
  k8sToken?: K8sTokenAuthenticator;
  /** `tls-cert`: a certificate CN `operator` may map to `operator` */
  tlsOperatorCert?: boolean;
  allowAnonymous: boolean;
  chain: AuthenticatorName[];
  nowSec: () => number;
}

export interface AuthRequest {
  username?: string;
  password?: Buffer;
  clientId: string;
  ip?: string | null;
  /** the client certificate of a TLS connection, if it sent one */
  peer?: PeerInfo;
}

export type AuthOutcome =
  | {
      ok: true;
      identity: string | null;
      by: AuthenticatorName | 'anonymous';
      acl?: AclRule[];
      /** epoch ms when the credential (token, certificate) expires: the client is disconnected then */
      expiresAt?: number;
      /** what the credential said about the client, for the connect log line */
      detail?: Record<string, unknown>;
    }
  | {
      ok: false;
      reason: string;
      badCredentials: boolean;
      /** token/certificate refusals: the metric label and CONNACK code */
      refusal?: RefusalReason;
      returnCode?: 4 | 5;
    };

type Verdict = {
  result: 'allow' | 'deny' | 'ignore';
  reason?: string;
  acl?: AclRule[];
  identity?: string;
  expiresAt?: number;
  refusal?: RefusalReason;
  detail?: Record<string, unknown>;
};

export async function authenticate(src: AuthSources, req: AuthRequest): Promise<AuthOutcome> {
  const { username, password } = req;
  // With k8s-token in the chain, a token-shaped password is the token authenticator's to judge:
  // token clients send their expected identity (`operator`, `agent:<node>`) as an informational
  // username, which the users file or the agent key would otherwise refuse as a wrong password.
  const forToken = src.k8sToken !== undefined && isTokenShaped(password);
  for (const name of src.chain) {
    let verdict: Verdict = { result: 'ignore' };
    if (name === 'password' && src.users && username !== undefined && !forToken) {
      verdict = { result: checkUser(src.users, username, password) };
    } else if (name === 'agent-key' && src.agentKey && username?.startsWith('agent:') && !forToken) {
      verdict = {
        result: password && verifyAgentPassword(src.agentKey, username, password) ? 'allow' : 'deny',
      };
    } else if (name === 'jwt' && src.jwt) {
      verdict = checkJwt(src.jwt, username, password, src.nowSec());
    } else if (name === 'http' && src.httpUrl) {
      verdict = await askHttpHook(src.httpUrl, {
        username,
        password,
        clientid: req.clientId,
        ipaddr: req.ip,
      });
    } else if (name === 'k8s-token' && src.k8sToken) {
      // The identity comes from the verified token; username and client id are not consulted.
      const v = await src.k8sToken.check(password);
      if (v.result === 'allow') {
        const { result, identity, expiresAt, ...detail } = v;
        verdict = { result, identity, expiresAt, detail };
      } else if (v.result === 'deny') verdict = { result: 'deny', reason: v.detail, refusal: v.reason };
    } else if (name === 'tls-cert') {
      const v = checkCert(req.peer, src.tlsOperatorCert ?? false);
      if (v.result === 'allow') {
        verdict = {
          result: 'allow',
          identity: v.identity,
          expiresAt: v.expiresAt,
          detail: { subject: v.subject },
        };
      } else if (v.result === 'deny') verdict = { result: 'deny', reason: v.detail, refusal: v.reason };
    }
    if (verdict.result === 'allow') {
      const identity = verdict.identity ?? username ?? null;
      const out: AuthOutcome = { ok: true, identity, by: name, acl: verdict.acl };
      if (verdict.expiresAt !== undefined) out.expiresAt = verdict.expiresAt;
      if (verdict.detail) out.detail = verdict.detail;
      return out;
    }
    if (verdict.result === 'deny') {
      const out: AuthOutcome = {
        ok: false,
        reason: verdict.reason ?? `${name}: bad username or password`,
        badCredentials: true,
      };
      if (verdict.refusal) {
        out.refusal = verdict.refusal;
        out.returnCode = connackCode(verdict.refusal);
        out.badCredentials = out.returnCode === 4;
      }
      return out;
    }
  }
  if (isControlIdentity(username)) {
    return { ok: false, reason: 'control-plane identity needs valid credentials', badCredentials: true };
  }
  if (src.allowAnonymous) return { ok: true, identity: null, by: 'anonymous' };
  return { ok: false, reason: 'anonymous clients are not allowed', badCredentials: username !== undefined };
}

/** A JWS with JSON header and claims (what k8s-token judges); dotted plain passwords are not. */
export function isTokenShaped(password: Buffer | undefined): boolean {
  return !!password && parseJwt(password.toString('utf8')) !== null;
}
