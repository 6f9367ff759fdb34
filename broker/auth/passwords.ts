// Password hashes for the users file: scrypt and pbkdf2 (node:crypto) and bcrypt (bcryptjs).
// Formats: `scrypt$N$r$p$salt$hash`, `pbkdf2$sha256$iterations$salt$hash` (salt/hash base64),
// and the usual `$2a$/$2b$/$2y$` bcrypt strings.
import { pbkdf2Sync, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import bcrypt from 'bcryptjs';

const SCRYPT_DEFAULT = { N: 16384, r: 8, p: 1 };

export function hashPassword(
  password: string,
  algo: 'scrypt' | 'pbkdf2' = 'scrypt',
  iterations = 210_000,
): string {
  const salt = randomBytes(16);
  if (algo === 'pbkdf2') {
    const hash = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
    return `pbkdf2$sha256$${iterations}$${salt.toString('base64')}$${hash.toString('base64')}`;
  }
  const { N, r, p } = SCRYPT_DEFAULT;
  const hash = scryptSync(password, salt, 32, { N, r, p, maxmem: 256 * N * r });
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Throws on a hash string it cannot read, so a bad users file fails at start, not at login. */
export function checkHashFormat(stored: string): void {
  if (/^\$2[aby]\$\d\d\$.{53}$/.test(stored)) return;
  const parts = stored.split('$');
  if (parts[0] === 'scrypt' && parts.length === 6 && parts.slice(1, 4).every((x) => /^\d+$/.test(x))) return;
  if (parts[0] === 'pbkdf2' && parts.length === 5 && /^\d+$/.test(parts[2]!)) return;
  throw new Error(
    'unsupported password hash (want scrypt$N$r$p$salt$hash, pbkdf2$digest$iter$salt$hash or bcrypt)',
  );
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function verifyPassword(stored: string, password: string | Buffer): boolean {
  const pw = Buffer.isBuffer(password) ? password : Buffer.from(password);
  if (stored.startsWith('$2')) return bcrypt.compareSync(pw.toString('utf8'), stored);
  const parts = stored.split('$');
  try {
    if (parts[0] === 'scrypt' && parts.length === 6) {
      const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string];
      const want = Buffer.from(hash, 'base64');
      const N = Number(n);
      const R = Number(r);
      const got = scryptSync(pw, Buffer.from(salt, 'base64'), want.length, {
        N,
        r: R,
        p: Number(p),
        maxmem: 256 * N * R + 1024 * 1024,
      });
      return equal(got, want);
    }
    if (parts[0] === 'pbkdf2' && parts.length === 5) {
      const [, digest, iter, salt, hash] = parts as [string, string, string, string, string];
      const want = Buffer.from(hash, 'base64');
      const got = pbkdf2Sync(pw, Buffer.from(salt, 'base64'), Number(iter), want.length, digest);
      return equal(got, want);
    }
  } catch {
    return false;
  }
  return false;
}
