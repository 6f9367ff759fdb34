// JWT authentication (HS256 with a shared secret, RS256 with a public key), checked with node:crypto.
// The token is the MQTT password; `exp`/`nbf` are honoured and an `acl` claim may narrow the client's rights.
import { createHmac, createPublicKey, type KeyObject, timingSafeEqual, verify } from 'node:crypto';
import type { AclRule } from '../acl.js';
import { parseAclRules } from '../acl.js';

export interface JwtKeys {
  secret?: Buffer;
  publicKey?: KeyObject;
}

export interface JwtResult {
  result: 'allow' | 'deny' | 'ignore';
  reason?: string;
  acl?: AclRule[];
}

export function loadPublicKey(pem: string): KeyObject {
  return createPublicKey(pem);
}

function b64json(part: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** ignore: not a JWT at all (the next authenticator decides); deny: a JWT that fails a check. */
export function checkJwt(
  keys: JwtKeys,
  username: string | undefined,
  password: Buffer | undefined,
  nowSec: number,
): JwtResult {
  if (!password) return { result: 'ignore' };
  const token = password.toString('utf8');
  const parts = token.split('.');
  if (parts.length !== 3) return { result: 'ignore' };
  const header = b64json(parts[0]!);
  const claims = b64json(parts[1]!);
  if (!header || !claims) return { result: 'ignore' };
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
  const sig = Buffer.from(parts[2]!, 'base64url');
  let ok = false;
  if (header.alg === 'HS256' && keys.secret) {
    const want = createHmac('sha256', keys.secret).update(signed).digest();
    ok = want.length === sig.length && timingSafeEqual(want, sig);
  } else if (header.alg === 'RS256' && keys.publicKey) {
    ok = verify('RSA-SHA256', signed, keys.publicKey, sig);
  } else return { result: 'deny', reason: `unsupported JWT alg ${String(header.alg)}` };
  if (!ok) return { result: 'deny', reason: 'bad JWT signature' };
  if (typeof claims.exp === 'number' && nowSec >= claims.exp)
    return { result: 'deny', reason: 'JWT expired' };
  if (typeof claims.nbf === 'number' && nowSec < claims.nbf)
    return { result: 'deny', reason: 'JWT not yet valid' };
  const claimed = (claims.username ?? claims.sub) as unknown;
  if (claimed !== undefined && claimed !== username)
    return { result: 'deny', reason: 'JWT subject does not match username' };
  let acl: AclRule[] | undefined;
  if (claims.acl !== undefined) {
    try {
      acl = parseAclRules(claims.acl, 'JWT acl claim');
    } catch (err) {
      return { result: 'deny', reason: (err as Error).message };
    }
  }
  return { result: 'allow', acl };
}
