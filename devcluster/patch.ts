// The patch formats the API server accepts: JSON merge patch (RFC 7386), JSON patch (RFC 6902),
// and an approximation of strategic merge patch covering what kubectl sends for built-ins.
import { errors } from './errors.js';

type Json = any;

const isObj = (v: unknown): v is Record<string, Json> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export function clone<T>(v: T): T {
  return v === undefined ? v : structuredClone(v);
}

export function mergePatch(target: Json, patch: Json): Json {
  if (!isObj(patch)) return clone(patch);
  const out: Record<string, Json> = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function unescapePointer(seg: string): string {
  return seg.replace(/~1/g, '/').replace(/~0/g, '~');
}

function parsePointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw errors.badRequest(`invalid JSON pointer "${p}"`);
  return p.slice(1).split('/').map(unescapePointer);
}

function deepEqual(a: Json, b: Json): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual(a[k], b[k]));
}

export { deepEqual };

export function jsonPatch(doc: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw errors.badRequest('json patch must be an array of operations');
  let root = clone(doc);
  const parentOf = (path: string[], op: string) => {
    let cur = root;
    for (const seg of path.slice(0, -1)) {
      cur = Array.isArray(cur) ? cur[Number(seg)] : cur?.[seg];
      if (cur === undefined || cur === null || typeof cur !== 'object')
        throw errors.internal(
          `jsonpatch ${op} operation does not apply: doc is missing path: /${path.join('/')}`,
        );
    }
    return cur;
  };
  const get = (path: string[]) => {
    let cur = root;
    for (const seg of path) {
      if (cur === undefined || cur === null) return undefined;
      cur = Array.isArray(cur) ? cur[Number(seg)] : cur[seg];
    }
    return cur;
  };
  const remove = (path: string[], op: string) => {
    const parent = parentOf(path, op);
    const last = path[path.length - 1]!;
    if (Array.isArray(parent)) {
      const i = Number(last);
      if (!(i >= 0 && i < parent.length))
        throw errors.internal(
          `jsonpatch ${op} operation does not apply: doc is missing path: /${path.join('/')}`,
        );
      return parent.splice(i, 1)[0];
    }
    if (!Object.hasOwn(parent, last))
      throw errors.internal(
        `jsonpatch ${op} operation does not apply: doc is missing path: /${path.join('/')}`,
      );
    const v = parent[last];
    delete parent[last];
    return v;
  };
  const add = (path: string[], value: Json, op: string) => {
    if (path.length === 0) {
      root = value;
      return;
    }
    const parent = parentOf(path, op);
    const last = path[path.length - 1]!;
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last);
      if (!(i >= 0 && i <= parent.length))
        throw errors.internal(
          `jsonpatch ${op} operation does not apply: index out of range: /${path.join('/')}`,
        );
      parent.splice(i, 0, value);
    } else parent[last] = value;
  };
  for (const o of ops) {
    const path = parsePointer(String(o.path ?? ''));
    switch (o.op) {
      case 'add':
        add(path, clone(o.value), 'add');
        break;
      case 'remove':
        remove(path, 'remove');
        break;
      case 'replace':
        if (path.length === 0) root = clone(o.value);
        else {
          remove(path, 'replace');
          add(path, clone(o.value), 'replace');
        }
        break;
      case 'move': {
        const v = remove(parsePointer(o.from), 'move');
        add(path, v, 'move');
        break;
      }
      case 'copy':
        add(path, clone(get(parsePointer(o.from))), 'copy');
        break;
      case 'test':
        if (!deepEqual(get(path), o.value))
          throw errors.internal(`testing value ${o.path} failed: test operation does not apply`);
        break;
      default:
        throw errors.badRequest(`Unexpected kind: ${o.op}`);
    }
  }
  return root;
}

/** Merge keys of the list fields kubectl patches on built-ins (from the Go struct tags). */
export const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  volumes: 'name',
  env: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  ports: 'containerPort',
  imagePullSecrets: 'name',
  conditions: 'type',
  ownerReferences: 'uid',
  hostAliases: 'ip',
  topologySpreadConstraints: 'topologyKey',
  addresses: 'type',
  containerStatuses: 'name',
  initContainerStatuses: 'name',
  readinessGates: 'conditionType',
};
/** Lists of scalars merged as sets (`patchStrategy:"merge"` on []string). */
const SET_LISTS = new Set(['finalizers']);

/** Strategic merge patch (approximate): merge patch plus keyed list merging and the `$patch` directives. */
export function strategicMergePatch(target: Json, patch: Json): Json {
  if (!isObj(patch)) return clone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _, ...rest } = patch;
    return clone(rest);
  }
  if (patch.$patch === 'delete') return undefined;
  const out: Record<string, Json> = isObj(target) ? { ...target } : {};
  const retain = Array.isArray(patch.$retainKeys) ? new Set<string>(patch.$retainKeys) : undefined;
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$setElementOrder/') || k === '$retainKeys' || k === '$patch') continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const name = k.slice('$deleteFromPrimitiveList/'.length);
      if (Array.isArray(out[name]) && Array.isArray(v))
        out[name] = out[name].filter((x: Json) => !v.includes(x));
      continue;
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    const key = MERGE_KEYS[k];
    if (Array.isArray(v) && key && Array.isArray(out[k])) {
      out[k] = mergeKeyedList(out[k], v, key);
      const order = patch[`$setElementOrder/${k}`];
      if (Array.isArray(order)) out[k] = applyOrder(out[k], order, key);
    } else if (Array.isArray(v) && key) {
      out[k] = v
        .filter((x) => !(isObj(x) && x.$patch === 'delete'))
        .map((x) => strategicMergePatch(undefined, x));
    } else if (Array.isArray(v) && SET_LISTS.has(k) && Array.isArray(out[k])) {
      out[k] = [...out[k], ...v.filter((x) => !out[k].includes(x))];
    } else out[k] = strategicMergePatch(out[k], v);
  }
  if (retain) for (const k of Object.keys(out)) if (!retain.has(k) && !(k in patch)) delete out[k];
  return out;
}

function mergeKeyedList(cur: Json[], patch: Json[], key: string): Json[] {
  const out = cur.map((x) => x);
  for (const item of patch) {
    if (!isObj(item)) continue;
    const idx = out.findIndex((x) => isObj(x) && x[key] === item[key]);
    if (item.$patch === 'delete') {
      if (idx >= 0) out.splice(idx, 1);
    } else if (idx >= 0) out[idx] = strategicMergePatch(out[idx], item);
    else out.push(strategicMergePatch(undefined, item));
  }
  return out;
}

function applyOrder(list: Json[], order: Json[], key: string): Json[] {
  const rank = new Map(order.map((o, i) => [isObj(o) ? o[key] : o, i]));
  return [...list].sort((a, b) => (rank.get(a?.[key]) ?? 1e9) - (rank.get(b?.[key]) ?? 1e9));
}

/**
 * Server-side apply (approximate): the applied configuration is merged into the live object like a
 * strategic merge patch without deletions; managedFields are recorded per manager but not used
 * to remove fields a manager stopped applying.
 */
export function applyPatch(target: Json, applied: Json): Json {
  return strategicMergePatch(target, applied);
}
