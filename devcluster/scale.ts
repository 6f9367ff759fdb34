// The /scale subresource (autoscaling/v1 Scale) of Deployments, StatefulSets, ReplicaSets and CRDs
// that declare `subresources.scale`: what `kubectl scale` reads and patches.
import { errors } from './errors.js';
import type { ResourceType } from './resources.js';
import type { Obj } from './store.js';

interface Paths {
  spec: string;
  status: string;
  selector?: string;
}

const BUILTIN = new Set(['apps/deployments', 'apps/statefulsets', 'apps/replicasets']);

export function scalePaths(t: ResourceType): Paths | undefined {
  if (BUILTIN.has(`${t.group}/${t.plural}`))
    return { spec: '.spec.replicas', status: '.status.replicas', selector: '.spec.selector' };
  const v = (t.crd?.spec?.versions ?? []).find((x: Obj) => x.name === t.version);
  const s = v?.subresources?.scale;
  if (!s) return undefined;
  return { spec: s.specReplicasPath, status: s.statusReplicasPath, selector: s.labelSelectorPath };
}

const segs = (p: string) => p.replace(/^\./, '').split('.');

function read(o: Obj, p: string): any {
  return segs(p).reduce<any>((a, k) => a?.[k], o);
}

function write(o: Obj, p: string, v: unknown): void {
  const s = segs(p);
  let cur = o;
  for (const k of s.slice(0, -1)) {
    cur[k] ??= {};
    cur = cur[k];
  }
  cur[s[s.length - 1]!] = v;
}

function selectorString(sel: any): string | undefined {
  if (typeof sel === 'string') return sel;
  if (!sel || typeof sel !== 'object') return undefined;
  const parts = Object.entries(sel.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel.matchExpressions ?? []) {
    const op = String(e.operator);
    if (op === 'In' || op === 'NotIn')
      parts.push(`${e.key} ${op.toLowerCase()} (${(e.values ?? []).join(',')})`);
    else if (op === 'Exists') parts.push(e.key);
    else if (op === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}

export function toScale(t: ResourceType, o: Obj): Obj {
  const p = scalePaths(t)!;
  const md = o.metadata;
  const status: Obj = { replicas: read(o, p.status) ?? 0 };
  const sel = p.selector ? selectorString(read(o, p.selector)) : undefined;
  if (sel) status.selector = sel;
  return {
    apiVersion: 'autoscaling/v1',
    kind: 'Scale',
    metadata: {
      name: md.name,
      namespace: md.namespace,
      uid: md.uid,
      resourceVersion: md.resourceVersion,
      creationTimestamp: md.creationTimestamp,
    },
    spec: { replicas: read(o, p.spec) ?? 0 },
    status,
  };
}

/** The object with the replicas a Scale asks for (and the Scale's resourceVersion as a precondition). */
export function fromScale(t: ResourceType, live: Obj, scale: Obj): Obj {
  const replicas = scale?.spec?.replicas;
  if (!Number.isInteger(replicas) || replicas < 0)
    throw errors.invalid('Scale', 'autoscaling', live.metadata.name, [
      {
        reason: 'FieldValueInvalid',
        field: 'spec.replicas',
        message: `Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`,
      },
    ]);
  const next = structuredClone(live);
  write(next, scalePaths(t)!.spec, replicas);
  next.metadata.resourceVersion = scale.metadata?.resourceVersion || live.metadata.resourceVersion;
  return next;
}
