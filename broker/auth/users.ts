// The users file (`users: [{username, password | passwordHash}]`): plain YAML, so a Kubernetes
// Secret mounted as a file works as is. Plain passwords are hashed at load and never kept.
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { checkHashFormat, hashPassword, verifyPassword } from './passwords.js';

export type UserTable = Map<string, string>;

export function parseUsers(text: string, source = 'users file'): UserTable {
  const doc = YAML.parse(text) as unknown;
  const list = (doc as { users?: unknown })?.users;
  if (!Array.isArray(list)) throw new Error(`${source}: expected a top-level "users" list`);
  const table: UserTable = new Map();
  list.forEach((u: Record<string, unknown>, i) => {
    const where = `${source}: users[${i}]`;
    if (typeof u?.username !== 'string' || !u.username) throw new Error(`${where}.username is required`);
    if (typeof u.passwordHash === 'string') {
      try {
        checkHashFormat(u.passwordHash);
      } catch (err) {
        throw new Error(`${where}.passwordHash: ${(err as Error).message}`);
      }
      table.set(u.username, u.passwordHash);
    } else if (typeof u.password === 'string') {
      table.set(u.username, hashPassword(u.password, 'pbkdf2', 5_000));
    } else throw new Error(`${where} needs password or passwordHash`);
  });
  return table;
}

export function loadUsers(file: string): UserTable {
  return parseUsers(readFileSync(file, 'utf8'), file);
}

/** allow / deny (known user, wrong password) / ignore (unknown user: the next authenticator decides). */
export function checkUser(
  table: UserTable,
  username: string,
  password: Buffer | undefined,
): 'allow' | 'deny' | 'ignore' {
  const stored = table.get(username);
  if (!stored) return 'ignore';
  if (!password) return 'deny';
  return verifyPassword(stored, password) ? 'allow' : 'deny';
}
