// RBAC evaluation for impersonated requests and access reviews: `kubectl auth can-i --as=...` and
// `kubectl --as=system:serviceaccount:ns:sa ...` are answered from the stored Roles, ClusterRoles and
// their bindings (no aggregation). Requests without impersonation act as the cluster admin.
import type { Registry } from './resources.js';
import type { Obj, Store } from './store.js';

export interface Attributes {
  verb: string;
  group?: string;
  resource?: string;
  subresource?: string;
  name?: string;
  namespace?: string;
  path?: string; // non-resource requests
}

export interface Subject {
  user: string;
  groups: string[];
}

/** The groups a user implicitly belongs to (service accounts: their namespace and all SAs). */
export function withImplicitGroups(s: Subject): Subject {
  const groups = new Set([...s.groups, 'system:authenticated']);
  const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(s.user);
  if (m) {
    groups.add('system:serviceaccounts');
    groups.add(`system:serviceaccounts:${m[1]}`);
  }
  return { user: s.user, groups: [...groups] };
}

function subjectMatches(sub: Obj, s: Subject, bindingNs: string | undefined): boolean {
  switch (sub.kind) {
    case 'User':
      return sub.name === s.user;
    case 'Group':
      return s.groups.includes(sub.name);
    case 'ServiceAccount':
      return s.user === `system:serviceaccount:${sub.namespace ?? bindingNs}:${sub.name}`;
    default:
      return false;
  }
}

const has = (list: unknown, v: string) => Array.isArray(list) && (list.includes('*') || list.includes(v));

function ruleAllows(rule: Obj, a: Attributes): boolean {
  if (!has(rule.verbs, a.verb)) return false;
  if (a.path !== undefined)
    return (
      Array.isArray(rule.nonResourceURLs) &&
      rule.nonResourceURLs.some(
        (u: string) => u === '*' || u === a.path || (u.endsWith('*') && a.path!.startsWith(u.slice(0, -1))),
      )
    );
  if (!has(rule.apiGroups, a.group ?? '')) return false;
  const res = a.subresource ? `${a.resource}/${a.subresource}` : (a.resource ?? '');
  const resources: string[] = rule.resources ?? [];
  const resOk = resources.some(
    (r) => r === '*' || r === res || (a.subresource && r === `*/${a.subresource}`),
  );
  if (!resOk) return false;
  const names: string[] = rule.resourceNames ?? [];
  return names.length === 0 || (a.name !== undefined && names.includes(a.name));
}

export interface Decision {
  allowed: boolean;
  reason: string;
}

export function authorize(store: Store, reg: Registry, subject: Subject, a: Attributes): Decision {
  const s = withImplicitGroups(subject);
  if (s.groups.includes('system:masters')) return { allowed: true, reason: 'member of system:masters' };
  const t = (group: string, plural: string) => reg.get(group, 'v1', plural)!;
  const rbac = 'rbac.authorization.k8s.io';
  const roleRules = (ref: Obj, ns: string | undefined): Obj[] => {
    const role =
      ref.kind === 'ClusterRole'
        ? store.tryGet(t(rbac, 'clusterroles'), undefined, ref.name)
        : ns
          ? store.tryGet(t(rbac, 'roles'), ns, ref.name)
          : undefined;
    return role?.rules ?? [];
  };
  for (const b of store.list(t(rbac, 'clusterrolebindings'))) {
    if (!(b.subjects ?? []).some((x: Obj) => subjectMatches(x, s, undefined))) continue;
    if (roleRules(b.roleRef ?? {}, undefined).some((r) => ruleAllows(r, a)))
      return {
        allowed: true,
        reason: `RBAC: allowed by ClusterRoleBinding "${b.metadata.name}" of ClusterRole "${b.roleRef?.name}" to ${s.user}`,
      };
  }
  if (a.namespace)
    for (const b of store.list(t(rbac, 'rolebindings'), a.namespace)) {
      if (!(b.subjects ?? []).some((x: Obj) => subjectMatches(x, s, a.namespace))) continue;
      if (roleRules(b.roleRef ?? {}, a.namespace).some((r) => ruleAllows(r, a)))
        return {
          allowed: true,
          reason: `RBAC: allowed by RoleBinding "${b.metadata.name}/${a.namespace}" of ${b.roleRef?.kind} "${b.roleRef?.name}" to ${s.user}`,
        };
    }
  return { allowed: false, reason: '' };
}

/** The real server's Forbidden message. */
export function forbiddenMessage(user: string, a: Attributes): string {
  const what = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const subject = a.name ? `${what} "${a.name}"` : what;
  const where = a.namespace ? ` in the namespace "${a.namespace}"` : ' at the cluster scope';
  return `${subject} is forbidden: User "${user}" cannot ${a.verb} resource "${what}" in API group "${a.group ?? ''}"${where}`;
}
