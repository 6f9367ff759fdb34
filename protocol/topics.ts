// Every MQTT topic of the control plane. Nothing else in the repository spells a topic string.
export const TOPIC_ROOT = 'cpuburst/v1';
/** Anything under this prefix belongs to the control plane; IoT clients never touch it. */
export const CONTROL_PREFIX = 'cpuburst/';

const NODE_NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** Kubernetes node names are DNS subdomains; anything else cannot be a topic segment. */
export function isValidNodeName(node: string): boolean {
  return NODE_NAME_RE.test(node);
}

function nodeBase(node: string): string {
  if (!isValidNodeName(node)) throw new Error(`invalid node name for a topic: ${JSON.stringify(node)}`);
  return `${TOPIC_ROOT}/nodes/${node}`;
}

export const topics = {
  /** Operator → agent: the node's decision document. Retained, QoS 1. */
  decisions: (node: string) => `${nodeBase(node)}/decisions`,
  /** Agent → operator: everything the agent publishes lives under here. */
  agentPrefix: (node: string) => `${nodeBase(node)}/agent`,
  /** Agent → operator: ack of the decision version applied (or refused). QoS 1, not retained. */
  ack: (node: string) => `${nodeBase(node)}/agent/ack`,
  /** Agent → operator: per-pod status report. Retained, QoS 1. */
  status: (node: string) => `${nodeBase(node)}/agent/status`,
  /** Agent → operator: what the node's kernel can do. Retained, QoS 1. */
  capabilities: (node: string) => `${nodeBase(node)}/agent/capabilities`,
  /** Agent presence: online on connect, offline as the Last Will. Retained, QoS 1. */
  presence: (node: string) => `${nodeBase(node)}/agent/presence`,
  /** Everything one node's agent may read. */
  nodeFilter: (node: string) => `${nodeBase(node)}/#`,
  /** Operator subscriptions. */
  allAgentsFilter: `${TOPIC_ROOT}/nodes/+/agent/#`,
  allDecisionsFilter: `${TOPIC_ROOT}/nodes/+/decisions`,
} as const;

export type AgentTopicKind = 'ack' | 'status' | 'capabilities' | 'presence';

/** Parses a topic under cpuburst/v1/nodes/<node>/...; null when it is not a control-plane node topic. */
export function parseNodeTopic(topic: string): { node: string; kind: 'decisions' | AgentTopicKind } | null {
  const m = /^cpuburst\/v1\/nodes\/([^/]+)\/(decisions|agent\/(ack|status|capabilities|presence))$/.exec(
    topic,
  );
  if (!m || !isValidNodeName(m[1]!)) return null;
  return { node: m[1]!, kind: (m[3] ?? m[2]) as 'decisions' | AgentTopicKind };
}

/** MQTT identities of the control plane (broker usernames). */
export const identities = {
  operator: 'operator',
  agentPrefix: 'agent:',
  agent: (node: string) => `agent:${node}`,
  /** The node an agent identity speaks for, or null. */
  agentNode: (username: string | undefined | null): string | null => {
    if (!username?.startsWith('agent:')) return null;
    const node = username.slice('agent:'.length);
    return isValidNodeName(node) ? node : null;
  },
} as const;
