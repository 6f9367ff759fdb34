// The demo broker's password users: two IoT users (scrypt-hashed) and an ACL that confines them to
// their own topics. The control plane has no password: agent and operator log in with ServiceAccount
// tokens (demo/identities.ts).
import { randomBytes, scryptSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

export interface DemoCredentials {
  usersFile: string;
  aclFile: string;
  /** IoT users (username → password) that may use devices/# only. */
  iot: Record<string, string>;
}

/** scrypt$N$r$p$salt$hash, the broker users file's hash format. */
export function scryptHash(password: string): string {
  const N = 16384;
  const r = 8;
  const p = 1;
  const salt = randomBytes(16);
  const hash = scryptSync(password, salt, 32, { N, r, p, maxmem: 256 * N * r });
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

const secret = () => randomBytes(18).toString('base64url');

export function writeCredentials(dir: string): DemoCredentials {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const iot = { 'device-1': secret(), viewer: secret() };
  const users = Object.entries(iot).map(([username, pw]) => ({ username, passwordHash: scryptHash(pw) }));
  const usersFile = path.join(dir, 'users.yaml');
  fs.writeFileSync(usersFile, YAML.stringify({ users }), { mode: 0o600 });
  // The control plane (cpuburst/) is guarded by the broker's built-in rules; these cover IoT users.
  const acl = {
    noMatch: 'deny',
    rules: [
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an ACL placeholder the broker expands
      { permission: 'allow', username: 'device-1', action: 'all', topics: ['devices/${username}/#'] },
      { permission: 'allow', username: 'viewer', action: 'subscribe', topics: ['devices/#'] },
    ],
  };
  const aclFile = path.join(dir, 'acl.yaml');
  fs.writeFileSync(aclFile, YAML.stringify(acl), { mode: 0o600 });
  // Plain IoT passwords for the user to try mosquitto_pub/sub with (local demo, 0600).
  fs.writeFileSync(path.join(dir, 'iot-users.json'), JSON.stringify(iot, null, 2), { mode: 0o600 });
  return { usersFile, aclFile, iot };
}
