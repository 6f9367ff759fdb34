// The authenticator chain, in the configured order (EMQX-style): each authenticator answers
// allow / deny / ignore; the first allow or deny wins. When all ignore, the client is anonymous,
// which is refused unless --allow-anonymous, and never granted a control-plane identity.
import { verifyAgentPassword } from '../../protocol/credentials.js';
import type { AclRule } from '../acl.js';
import { isControlIdentity } from '../control-acl.js';
import { askHttpHook } from './http-hook.js';
import { checkJwt, type JwtKeys } from './jwt.js';
import { checkUser, type UserTable } from './users.js';

export type AuthenticatorName = 'password' | 'agent-key' | 'jwt' | 'http';
export const AUTHENTICATORS: AuthenticatorName[] = ['password', 'agent-key', 'jwt', 'http'];

export interface AuthSources {
  users?: UserTable;
  agentKey?: Buffer;
  jwt?: JwtKeys;
  httpUrl?: string;
  allowAnonymous: boolean;
  chain: AuthenticatorName[];
  nowSec: () => number;
}

export interface AuthRequest {
  username?: string;
  password?: Buffer;
  clientId: string;
  ip?: string | null;
}

export type AuthOutcome =
  | { ok: true; identity: string | null; by: AuthenticatorName | 'anonymous'; acl?: AclRule[] }
  | { ok: false; reason: string; badCredentials: boolean };

export async function authenticate(src: AuthSources, req: AuthRequest): Promise<AuthOutcome> {
  const { username, password } = req;
  for (const name of src.chain) {
    let verdict: { result: 'allow' | 'deny' | 'ignore'; reason?: string; acl?: AclRule[] } = {
      result: 'ignore',
    };
    if (name === 'password' && src.users && username !== undefined) {
      verdict = { result: checkUser(src.users, username, password) };
    } else if (name === 'agent-key' && src.agentKey && username?.startsWith('agent:')) {
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
    }
    if (verdict.result === 'allow') {
      return { ok: true, identity: username ?? null, by: name, acl: verdict.acl };
    }
    if (verdict.result === 'deny') {
      return {
        ok: false,
        reason: verdict.reason ?? `${name}: bad username or password`,
        badCredentials: true,
      };
    }
  }
  if (isControlIdentity(username)) {
    return { ok: false, reason: 'control-plane identity needs valid credentials', badCredentials: true };
  }
  if (src.allowAnonymous) return { ok: true, identity: null, by: 'anonymous' };
  return { ok: false, reason: 'anonymous clients are not allowed', badCredentials: username !== undefined };
}
