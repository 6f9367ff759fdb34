// The user ACL, EMQX-style: an ordered rule list, first match wins, then `noMatch`.
// Rule: {permission, username?, clientid?, ipaddr? (CIDR), action: publish|subscribe|all, topics}.
// Topics may use ${username}/${clientid}; `eq <filter>` matches the filter literally.
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import YAML from 'yaml';
import { topicMatches } from './topic-match.js';

export type AclAction = 'publish' | 'subscribe';
export type Permission = 'allow' | 'deny';

export interface AclRule {
  permission: Permission;
  username?: string;
  clientid?: string;
  ipaddr?: string;
  action: AclAction | 'all';
  topics: string[];
  /** compiled CIDR matcher */
  net?: BlockList;
}

export interface Acl {
  rules: AclRule[];
  noMatch: Permission;
}

export interface AclSubject {
  username?: string | null;
  clientId: string;
  ip?: string | null;
}

function compileCidr(cidr: string, where: string): BlockList {
  const [addr, bits] = cidr.split('/');
  const type = isIPv4(addr ?? '') ? 'ipv4' : isIPv6(addr ?? '') ? 'ipv6' : null;
  const prefix = bits === undefined ? (type === 'ipv4' ? 32 : 128) : Number(bits);
  if (!type || !Number.isInteger(prefix) || prefix < 0 || prefix > (type === 'ipv4' ? 32 : 128)) {
    throw new Error(`${where}.ipaddr: not a CIDR: ${JSON.stringify(cidr)}`);
  }
  const list = new BlockList();
  list.addSubnet(addr!, prefix, type);
  return list;
}

export function parseAclRules(raw: unknown, source: string): AclRule[] {
  if (!Array.isArray(raw)) throw new Error(`${source}: rules must be a list`);
  return raw.map((r: Record<string, unknown>, i) => {
    const where = `${source}[${i}]`;
    if (!r || typeof r !== 'object') throw new Error(`${where}: must be an object`);
    if (r.permission !== 'allow' && r.permission !== 'deny')
      throw new Error(`${where}.permission must be allow or deny`);
    const action = r.action ?? 'all';
    if (action !== 'publish' && action !== 'subscribe' && action !== 'all') {
      throw new Error(`${where}.action must be publish, subscribe or all`);
    }
    const topicsRaw = r.topics ?? (r.topic !== undefined ? [r.topic] : undefined);
    if (!Array.isArray(topicsRaw) || !topicsRaw.every((t) => typeof t === 'string' && t.length > 0)) {
      throw new Error(`${where}.topics must be a non-empty list of strings`);
    }
    for (const k of ['username', 'clientid', 'ipaddr'] as const) {
      if (r[k] !== undefined && typeof r[k] !== 'string') throw new Error(`${where}.${k} must be a string`);
    }
    const rule: AclRule = { permission: r.permission, action, topics: topicsRaw as string[] };
    if (r.username !== undefined) rule.username = r.username as string;
    if (r.clientid !== undefined) rule.clientid = r.clientid as string;
    if (r.ipaddr !== undefined) {
      rule.ipaddr = r.ipaddr as string;
      rule.net = compileCidr(rule.ipaddr, where);
    }
    return rule;
  });
}

export function parseAcl(text: string, source = 'acl file'): Acl {
  const doc = YAML.parse(text) as Record<string, unknown> | null;
  if (!doc || typeof doc !== 'object') throw new Error(`${source}: expected a YAML object with "rules"`);
  const noMatch = doc.noMatch ?? 'deny';
  if (noMatch !== 'allow' && noMatch !== 'deny') throw new Error(`${source}: noMatch must be allow or deny`);
  return { rules: parseAclRules(doc.rules ?? [], `${source}: rules`), noMatch };
}

// Built with concatenation: these are ACL placeholders, not template literals.
const USERNAME = '$' + '{username}';
const CLIENTID = '$' + '{clientid}';

function fill(pattern: string, s: AclSubject): string | null {
  if (pattern.includes(USERNAME) && !s.username) return null;
  return pattern.replaceAll(USERNAME, s.username ?? '').replaceAll(CLIENTID, s.clientId);
}

function ipMatches(rule: AclRule, ip: string | null | undefined): boolean {
  if (!rule.net) return true;
  if (!ip) return false;
  const plain = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  return rule.net.check(plain, isIPv4(plain) ? 'ipv4' : 'ipv6');
}

function topicHit(pattern: string, subject: AclSubject, action: AclAction, topic: string): boolean {
  if (pattern.startsWith('eq ')) return pattern.slice(3) === topic;
  const filter = fill(pattern, subject);
  if (filter === null) return false;
  // For subscriptions the client's filter must be matched as a topic by the rule's filter; a rule
  // `a/#` then also allows subscribing to `a/+/b`, while `#` from the client only matches a rule `#`.
  if (action === 'subscribe') return topicMatches(filter, topic) || filter === topic;
  return topicMatches(filter, topic);
}

/** First matching rule's permission, or null when no rule matched. */
export function matchRules(
  rules: AclRule[],
  subject: AclSubject,
  action: AclAction,
  topic: string,
): Permission | null {
  for (const rule of rules) {
    if (rule.action !== 'all' && rule.action !== action) continue;
    if (rule.username !== undefined && rule.username !== subject.username) continue;
    if (rule.clientid !== undefined && rule.clientid !== subject.clientId) continue;
    if (!ipMatches(rule, subject.ip)) continue;
    if (rule.topics.some((p) => topicHit(p, subject, action, topic))) return rule.permission;
  }
  return null;
}

export function checkAcl(acl: Acl, subject: AclSubject, action: AclAction, topic: string): Permission {
  return matchRules(acl.rules, subject, action, topic) ?? acl.noMatch;
}
