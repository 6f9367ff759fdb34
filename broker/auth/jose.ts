// Compact JWS parsing and RS256/ES256 verification against JWKs, with node:crypto only.
import { createPublicKey, type JsonWebKey, type KeyObject, verify } from 'node:crypto';

export interface ParsedJwt {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  signingInput: Buffer;
  signature: Buffer;
}

export interface Jwk extends JsonWebKey {
  kid?: string;
  alg?: string;
  use?: string;
}

export const SUPPORTED_ALGS = ['RS256', 'ES256'] as const;

function b64json(part: string): Record<string, unknown> | null {
  if (!/^[A-Za-z0-9_-]+$/.test(part)) return null;
  try {
    const v = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Null when the text is not a compact JWS with JSON header and claims. */
export function parseJwt(token: string): ParsedJwt | null {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[2]) return null;
  const header = b64json(parts[0]!);
  const claims = b64json(parts[1]!);
  if (!header || !claims || !/^[A-Za-z0-9_-]+$/.test(parts[2])) return null;
  return {
    header,
    claims,
    signingInput: Buffer.from(`${parts[0]}.${parts[1]}`),
    signature: Buffer.from(parts[2], 'base64url'),
  };
}

/** A JWK as a KeyObject; null for keys we cannot use (wrong type, private parts ignored by node). */
export function jwkToKey(jwk: Jwk): KeyObject | null {
  if (jwk.kty !== 'RSA' && jwk.kty !== 'EC') return null;
  try {
    const { kid: _kid, alg: _alg, use: _use, ...pub } = jwk;
    const key = createPublicKey({ key: pub as JsonWebKey, format: 'jwk' });
    return key.type === 'public' ? key : null;
  } catch {
    return null;
  }
}

/** Verifies the signature of `jwt` with `key` for the token's own alg (RS256 or ES256). */
export function verifySignature(jwt: ParsedJwt, key: KeyObject): boolean {
  const alg = jwt.header.alg;
  try {
    if (alg === 'RS256') {
      return key.asymmetricKeyType === 'rsa' && verify('sha256', jwt.signingInput, key, jwt.signature);
    }
    if (alg === 'ES256') {
      // JWS ES256 signatures are raw r||s (64 bytes), not DER.
      return (
        key.asymmetricKeyType === 'ec' &&
        jwt.signature.length === 64 &&
        verify('sha256', jwt.signingInput, { key, dsaEncoding: 'ieee-p1363' }, jwt.signature)
      );
    }
  } catch {
    return false;
  }
  return false;
}
