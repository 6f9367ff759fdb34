// The built-in control-plane rules, applied before the user ACL and impossible to configure away:
// only `operator` writes under cpuburst/, an agent writes only its own agent prefix and reads only
// its own node's subtree, and every other identity (IoT, anonymous) never touches cpuburst/.
// Wildcard subscriptions such as `#` or `+/v1/#` are left to the user ACL, but `allowForward`
// withholds every control-plane message from non-control identities at delivery time.
import { CONTROL_PREFIX, identities, topics } from '../protocol/topics.js';
import { filterCovers } from './topic-match.js';

export type ControlVerdict = 'allow' | 'deny' | 'continue';

const CONTROL_ROOT = CONTROL_PREFIX.replace(/\/$/, '');
const CONTROL_ALL = `${CONTROL_ROOT}/#`;

/** The identity is the username an authenticator accepted; anonymous clients have none. */
export type Identity = string | null;

function isControlTopic(topic: string): boolean {
  return topic === CONTROL_ROOT || topic.startsWith(CONTROL_PREFIX);
}

function agentOwnsTopic(node: string, topic: string): boolean {
  const prefix = topics.agentPrefix(node);
  return topic === prefix || topic.startsWith(`${prefix}/`);
}

export function controlPublish(identity: Identity, topic: string): ControlVerdict {
  const node = identities.agentNode(identity);
  if (node) return agentOwnsTopic(node, topic) ? 'allow' : 'deny';
  if (!isControlTopic(topic)) return 'continue';
  return identity === identities.operator ? 'allow' : 'deny';
}

export function controlSubscribe(identity: Identity, filter: string): ControlVerdict {
  const node = identities.agentNode(identity);
  if (node) return filterCovers(topics.nodeFilter(node), filter) ? 'allow' : 'deny';
  if (identity === identities.operator) return filterCovers(CONTROL_ALL, filter) ? 'allow' : 'continue';
  // Anything that names the control root literally is refused; pure wildcards fall through.
  if (filterCovers(CONTROL_ALL, filter) || filter === CONTROL_ROOT) return 'deny';
  return 'continue';
}

/** Last line of defence: may a message on `topic` be delivered to this identity at all? */
export function allowForward(identity: Identity, topic: string): boolean {
  const node = identities.agentNode(identity);
  if (node) return filterCovers(topics.nodeFilter(node), topic);
  if (!isControlTopic(topic)) return true;
  return identity === identities.operator;
}

/** Control identities must really authenticate: never granted to an anonymous client. */
export function isControlIdentity(username: string | undefined | null): boolean {
  return username === identities.operator || (username ?? '').startsWith(identities.agentPrefix);
}
