// Server-side apply, approximately: field ownership per manager in metadata.managedFields (FieldsV1),
// conflicts when an apply changes a field another manager owns (unless force), and removal of
// fields a manager applied before but no longer applies (when nobody else owns them).
// Lists are atomic except the keyed lists strategic merge patch knows (containers by name, ...).
import { ApiError } from './errors.js';
import { applyPatch, clone, deepEqual, MERGE_KEYS } from './patch.js';
import type { Obj } from './store.js';

type Path = string[]; // FieldsV1 tokens: `f:spec`, `k:{"name":"a"}`

const SKIP_META = new Set([
  'name',
  'namespace',
  'uid',
  'resourceVersion',
  'creationTimestamp',
  'generation',
  'managedFields',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'selfLink',
]);
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Leaf field paths of an object, as FieldsV1 token paths. */
export function leafPaths(obj: Obj, prefix: Path = [], top = true): Path[] {
  const out: Path[] = [];
  for (const [k, v] of Object.entries(obj)) {
    if (top && (k === 'apiVersion' || k === 'kind')) continue;
    if (top && k === 'metadata') {
      for (const [mk, mv] of Object.entries(isObj(v) ? v : {})) {
        if (SKIP_META.has(mk)) continue;
        if (isObj(mv) && Object.keys(mv).length) out.push(...leafPaths(mv, ['f:metadata', `f:${mk}`], false));
        else out.push(['f:metadata', `f:${mk}`]);
      }
      continue;
    }
    const p = [...prefix, `f:${k}`];
    const mk = MERGE_KEYS[k];
    if (isObj(v) && Object.keys(v).length) out.push(...leafPaths(v, p, false));
    else if (Array.isArray(v) && mk && v.every((x) => isObj(x) && x[mk] !== undefined)) {
      for (const item of v)
        out.push(...leafPaths(item, [...p, `k:${JSON.stringify({ [mk]: item[mk] })}`], false));
    } else out.push(p);
  }
  return out;
}

function step(cur: any, tok: string): any {
  if (cur == null) return undefined;
  if (tok.startsWith('f:')) return isObj(cur) ? cur[tok.slice(2)] : undefined;
  const key = JSON.parse(tok.slice(2)) as Obj;
  const [k, v] = Object.entries(key)[0]!;
  return Array.isArray(cur) ? cur.find((x) => isObj(x) && x[k] === v) : undefined;
}

function getAt(obj: Obj, p: Path): unknown {
  return p.reduce(step, obj);
}

function deleteAt(obj: Obj, p: Path): void {
  const parent = getAt(obj, p.slice(0, -1));
  const last = p[p.length - 1]!;
  if (last.startsWith('f:') && isObj(parent)) delete parent[last.slice(2)];
  else if (last.startsWith('k:') && Array.isArray(parent)) {
    const [k, v] = Object.entries(JSON.parse(last.slice(2)) as Obj)[0]!;
    const i = parent.findIndex((x) => isObj(x) && x[k] === v);
    if (i >= 0) parent.splice(i, 1);
  }
}

function toTree(paths: Path[]): Obj {
  const root: Obj = {};
  for (const p of paths) {
    let cur = root;
    for (const tok of p) {
      cur[tok] ??= {};
      cur = cur[tok];
    }
  }
  return root;
}

function fromTree(tree: Obj, prefix: Path = []): Path[] {
  const out: Path[] = [];
  for (const [tok, sub] of Object.entries(tree)) {
    if (tok === '.') continue;
    const p = [...prefix, tok];
    if (isObj(sub) && Object.keys(sub).some((k) => k !== '.')) out.push(...fromTree(sub, p));
    else out.push(p);
  }
  return out;
}

const key = (p: Path) => p.join('\u0000');

interface Entry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  fieldsType: 'FieldsV1';
  fieldsV1: Obj;
  subresource?: string;
}

function entries(obj: Obj): Entry[] {
  return Array.isArray(obj.metadata?.managedFields) ? (obj.metadata.managedFields as Entry[]) : [];
}

function owned(e: Entry): Path[] {
  return fromTree(e.fieldsV1 ?? {});
}

function setEntries(obj: Obj, list: Entry[]): void {
  const kept = list.filter((e) => Object.keys(e.fieldsV1).length > 0);
  if (kept.length) obj.metadata.managedFields = kept;
  else delete obj.metadata.managedFields;
}

function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}

/** Records an Update (PUT/PATCH/POST): `manager` now owns the fields whose values changed. */
export function recordUpdate(
  manager: string,
  old: Obj | undefined,
  next: Obj,
  now: Date,
  subresource?: string,
): void {
  const before = old
    ? new Map(leafPaths(old).map((p) => [key(p), getAt(old, p)]))
    : new Map<string, unknown>();
  const changed = leafPaths(next).filter(
    (p) => !before.has(key(p)) || !deepEqual(before.get(key(p)), getAt(next, p)),
  );
  const base = entries(old ?? next).map((e) => ({ ...e }));
  if (changed.length === 0 && old) {
    next.metadata.managedFields = old.metadata?.managedFields;
    if (!next.metadata.managedFields) delete next.metadata.managedFields;
    return;
  }
  const changedKeys = new Set(changed.map(key));
  const list = base.map((e) => ({
    ...e,
    fieldsV1: toTree(owned(e).filter((p) => !changedKeys.has(key(p)))),
  }));
  let mine = list.find(
    (e) => e.manager === manager && e.operation === 'Update' && e.subresource === subresource,
  );
  if (!mine) {
    mine = {
      manager,
      operation: 'Update',
      apiVersion: next.apiVersion,
      time: rfc3339(now),
      fieldsType: 'FieldsV1',
      fieldsV1: {},
    };
    if (subresource) mine.subresource = subresource;
    list.push(mine);
  }
  const prev = base.find(
    (e) => e.manager === manager && e.operation === 'Update' && e.subresource === subresource,
  );
  mine.fieldsV1 = toTree([...(prev ? owned(prev) : []), ...changed]);
  mine.time = rfc3339(now);
  setEntries(next, list);
}

/**
 * Server-side apply of `applied` by `manager` onto `live`. Returns the new object (managedFields set);
 * throws 409 Conflict when another manager owns a field whose value the apply changes (unless force).
 */
export function serverSideApply(
  live: Obj,
  applied: Obj,
  manager: string,
  force: boolean,
  now: Date,
  subresource?: string,
): Obj {
  const appliedPaths = leafPaths(applied).filter((p) => !(subresource === 'status' && p[0] !== 'f:status'));
  const appliedKeys = new Set(appliedPaths.map(key));
  const list = entries(live).map((e) => ({ ...e }));
  const conflicts: string[] = [];
  const takeOver = new Set<string>();
  for (const e of list) {
    if (e.manager === manager && e.operation === 'Apply') continue;
    for (const p of owned(e)) {
      if (!appliedKeys.has(key(p))) continue;
      if (deepEqual(getAt(live, p), getAt(applied, p))) continue; // same value: shared ownership
      conflicts.push(
        `conflict with "${e.manager}"${e.operation === 'Update' ? ` using ${e.apiVersion}` : ''}: .${p.map((t) => (t.startsWith('f:') ? t.slice(2) : `[${t.slice(2)}]`)).join('.')}`,
      );
      takeOver.add(key(p));
    }
  }
  if (conflicts.length && !force)
    throw new ApiError(
      409,
      'Conflict',
      `Apply failed with ${conflicts.length} conflict${conflicts.length > 1 ? 's' : ''}: ${conflicts.join('\n')}`,
      {
        causes: conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: c })),
      },
    );
  const mineBefore = list.find((e) => e.manager === manager && e.operation === 'Apply');
  const othersOwn = new Set(list.filter((e) => e !== mineBefore).flatMap((e) => owned(e).map(key)));
  const next = applyPatch(clone(live), applied);
  for (const p of mineBefore ? owned(mineBefore) : [])
    if (!appliedKeys.has(key(p)) && !othersOwn.has(key(p))) deleteAt(next, p);
  const entry: Entry = {
    manager,
    operation: 'Apply',
    apiVersion: live.apiVersion,
    time: rfc3339(now),
    fieldsType: 'FieldsV1',
    fieldsV1: toTree(appliedPaths),
  };
  if (subresource) entry.subresource = subresource;
  // An apply that changes nothing keeps its old timestamp, so it is a no-op (no new resourceVersion).
  if (mineBefore && deepEqual(mineBefore.fieldsV1, entry.fieldsV1)) entry.time = mineBefore.time;
  const out = list.map((e) =>
    e === mineBefore ? entry : { ...e, fieldsV1: toTree(owned(e).filter((p) => !takeOver.has(key(p)))) },
  );
  if (!mineBefore) out.push(entry);
  setEntries(next, out);
  return next;
}

/** The manager name for a request: ?fieldManager=, else the client's User-Agent program name. */
export function managerFor(fieldManager: string | null, userAgent: string | undefined): string {
  if (fieldManager) return fieldManager;
  const ua = (userAgent ?? '').split(/[/\s]/)[0];
  return ua || 'unknown';
}
