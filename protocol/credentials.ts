// Per-node agent credentials without a Secret per node: the broker and each agent share one key
// (a Secret mounted by both), and the password of identity `agent:<node>` is HMAC(key, identity).
// The broker's ACL still confines each identity to its own node's topics.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { identities } from './topics.js';

export function deriveAgentPassword(key: string | Buffer, node: string): string {
  return createHmac('sha256', key).update(identities.agent(node)).digest('base64url');
}

/** True when `password` is the derived password of `username` (which must be an agent identity). */
export function verifyAgentPassword(
  key: string | Buffer,
  username: string,
  password: string | Buffer,
): boolean {
  const node = identities.agentNode(username);
  if (!node) return false;
  const want = Buffer.from(deriveAgentPassword(key, node));
  const got = Buffer.from(password);
  return want.length === got.length && timingSafeEqual(want, got);
}
