// In-memory object store: one global resourceVersion counter, Kubernetes write semantics (uid,
// generation, finalizers, optimistic concurrency, status subresource) and a bounded event log
// that watches replay from. Objects inside the store are never mutated: each write stores a new copy.
import { randomUUID } from 'node:crypto';
import { ApiError, errors, type StatusCause } from './errors.js';
import { validateMeta } from './meta-validation.js';
import { clone, deepEqual } from './patch.js';
import { apiVersionOf, type Registry, type ResourceType, typeKey, typesFromCrd } from './resources.js';
import { checkCrdSchemas } from './validation.js';

export type Obj = Record<string, any>;
export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  rv: number;
  type: EventType;
  key: string; // typeKey of the resource
  obj: Obj;
  old?: Obj;
  /** `{"type":..,"object":..}` serialised once and shared by every plain JSON watcher. */
  line?: Buffer;
}

export interface Subscriber {
  key: string;
  deliver(ev: StoreEvent): void;
}

/** Validates/defaults a custom resource before it is stored; returns causes for a 422. */
export type Admitter = (t: ResourceType, obj: Obj, old: Obj | undefined) => StatusCause[];

export interface StoreOptions {
  /** how many events the log keeps for watches from a resourceVersion; older → 410 Gone. */
  watchWindow?: number;
  now?: () => Date;
  admit?: Admitter;
}

export interface WriteOptions {
  subresource?: string;
  /** PUT semantics: 409 if metadata.resourceVersion is set and stale. */
  checkResourceVersion?: boolean;
  dryRun?: boolean;
}

const MICROTIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$/;
const DEFAULT_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];

export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}

function nsName(ns: string | undefined, name: string): string {
  return `${ns ?? ''}/${name}`;
}

/** What counts as "spec" for generation: everything except metadata (and status when it's a subresource). */
function specOf(obj: Obj): Obj {
  const { metadata: _m, status: _s, ...rest } = obj;
  return rest;
}

export class Store {
  rv = 0;
  /** rv of the newest event dropped from the log: watches from an older rv get 410. */
  compactedRv = 0;
  readonly watchWindow: number;
  private readonly data = new Map<string, Map<string, Obj>>();
  private log: StoreEvent[] = [];
  private readonly subs = new Map<string, Set<Subscriber>>();
  private readonly now: () => Date;
  admit?: Admitter;
  /** called after every write (snapshotting hooks in here). */
  onWrite?: () => void;
  /** a subscriber threw while receiving an event (the store unsubscribes it). */
  onSubscriberError?: (sub: Subscriber, err: unknown) => void;

  constructor(
    readonly registry: Registry,
    opts: StoreOptions = {},
  ) {
    this.watchWindow = opts.watchWindow ?? 1000;
    this.now = opts.now ?? (() => new Date());
    this.admit = opts.admit;
    const nsType = registry.get('', 'v1', 'namespaces')!;
    for (const ns of DEFAULT_NAMESPACES) this.createRaw(nsType, undefined, { metadata: { name: ns } });
  }

  // ---- reads and writes by the requested type: aliased types (events.k8s.io/v1 Events, non-storage
  // CRD versions) are views of their storage type's objects, converted on the way in and out.

  private st(t: ResourceType): ResourceType {
    return t.storage ?? t;
  }

  private view(t: ResourceType, o: Obj): Obj {
    return t.storage && t.fromStorage ? t.fromStorage(o) : o;
  }

  get(t: ResourceType, ns: string | undefined, name: string): Obj {
    return this.view(t, this.getRaw(this.st(t), ns, name));
  }

  tryGet(t: ResourceType, ns: string | undefined, name: string): Obj | undefined {
    const o = this.tryGetRaw(this.st(t), ns, name);
    return o && this.view(t, o);
  }

  /** Objects of a type, sorted by namespace/name like etcd keys. */
  list(t: ResourceType, ns?: string, filter?: (o: Obj) => boolean): Obj[] {
    if (!t.storage) return this.listRaw(t, ns, filter);
    const all = this.listRaw(t.storage, ns).map((o) => this.view(t, o));
    return filter ? all.filter(filter) : all;
  }

  create(t: ResourceType, ns: string | undefined, input: Obj, opts: WriteOptions = {}): Obj {
    const body = t.storage && t.toStorage ? t.toStorage(input) : input;
    return this.view(t, this.createRaw(this.st(t), ns, body, opts));
  }

  /** PUT (and the final step of PATCH): `input` is the whole new object. */
  update(t: ResourceType, ns: string | undefined, name: string, input: Obj, opts: WriteOptions = {}): Obj {
    const body = t.storage && t.toStorage ? t.toStorage(input) : input;
    return this.view(t, this.updateRaw(this.st(t), ns, name, body, opts));
  }

  delete(
    t: ResourceType,
    ns: string | undefined,
    name: string,
    opts: { preconditions?: { uid?: string; resourceVersion?: string }; dryRun?: boolean } = {},
  ): Obj {
    return this.view(t, this.deleteRaw(this.st(t), ns, name, opts));
  }

  /** The key watches of this type subscribe to (their storage type's). */
  watchKey(t: ResourceType): string {
    const s = this.st(t);
    return typeKey(s.group, s.version, s.plural);
  }

  // ---- raw reads (storage types) ----

  private getRaw(t: ResourceType, ns: string | undefined, name: string): Obj {
    const o = this.bucket(t).get(nsName(t.namespaced ? ns : undefined, name));
    if (!o) throw errors.notFound(t.plural, t.group, name);
    return o;
  }

  private tryGetRaw(t: ResourceType, ns: string | undefined, name: string): Obj | undefined {
    return this.bucket(t).get(nsName(t.namespaced ? ns : undefined, name));
  }

  /** Objects of a type, sorted by namespace/name like etcd keys. */
  private listRaw(t: ResourceType, ns?: string, filter?: (o: Obj) => boolean): Obj[] {
    const out: Obj[] = [];
    for (const [k, o] of this.bucket(t)) {
      if (ns && t.namespaced && !k.startsWith(`${ns}/`)) continue;
      if (filter && !filter(o)) continue;
      out.push(o);
    }
    return out.sort((a, b) => {
      const ka = nsName(a.metadata.namespace, a.metadata.name);
      const kb = nsName(b.metadata.namespace, b.metadata.name);
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
  }

  /**
   * The oldest resourceVersion a watch may start from: the log keeps exactly the last `watchWindow`
   * events (it is trimmed lazily, in batches, but never serves more than the window).
   */
  get oldestWatchableRv(): number {
    const n = this.log.length;
    const windowStart = n > this.watchWindow ? this.log[n - this.watchWindow - 1]!.rv : 0;
    return Math.max(this.compactedRv, windowStart);
  }

  /** Events after `rv` for a type, or 'gone' when the log no longer reaches back that far. */
  eventsSince(key: string, rv: number): StoreEvent[] | 'gone' {
    if (rv < this.oldestWatchableRv) return 'gone';
    let lo = 0;
    let hi = this.log.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.log[mid]!.rv <= rv) lo = mid + 1;
      else hi = mid;
    }
    const out: StoreEvent[] = [];
    for (let i = lo; i < this.log.length; i++) if (this.log[i]!.key === key) out.push(this.log[i]!);
    return out;
  }

  subscribe(sub: Subscriber): () => void {
    let set = this.subs.get(sub.key);
    if (!set) {
      set = new Set();
      this.subs.set(sub.key, set);
    }
    const s = set;
    s.add(sub);
    return () => s.delete(sub);
  }

  subscriberCount(): number {
    let n = 0;
    for (const s of this.subs.values()) n += s.size;
    return n;
  }

  // ---- writes ----

  private createRaw(t: ResourceType, ns: string | undefined, input: Obj, opts: WriteOptions = {}): Obj {
    const obj = clone(input) ?? {};
    obj.metadata ??= {};
    const md = obj.metadata;
    if (t.namespaced) {
      if (md.namespace === '') delete md.namespace;
      const namespace = md.namespace ?? ns ?? 'default';
      if (ns && md.namespace && md.namespace !== ns)
        throw errors.badRequest(
          'the namespace of the provided object does not match the namespace sent on the request',
        );
      md.namespace = namespace;
      const nsType = this.registry.get('', 'v1', 'namespaces')!;
      if (!this.tryGetRaw(nsType, undefined, namespace)) throw errors.notFound('namespaces', '', namespace);
    } else delete md.namespace;
    if (!md.name && md.generateName) md.name = `${md.generateName}${randomSuffix()}`;
    if (!md.name)
      throw errors.invalid(t.kind, t.group, '', [
        {
          reason: 'FieldValueRequired',
          message: 'Required value: name or generateName is required',
          field: 'metadata.name',
        },
      ]);
    if (this.tryGetRaw(t, md.namespace, md.name)) throw errors.alreadyExists(t.plural, t.group, md.name);
    obj.apiVersion = apiVersionOf(t);
    obj.kind = t.kind;
    md.uid = randomUUID();
    md.creationTimestamp = rfc3339(this.now());
    md.generation = 1;
    delete md.resourceVersion;
    delete md.deletionTimestamp;
    if (t.status && t.crd) delete obj.status; // status is set through /status only
    this.prepare(t, obj, undefined);
    if (opts.dryRun) return obj;
    return this.commit(t, 'ADDED', obj, undefined);
  }

  /** PUT (and the final step of PATCH): `input` is the whole new object. */
  private updateRaw(
    t: ResourceType,
    ns: string | undefined,
    name: string,
    input: Obj,
    opts: WriteOptions = {},
  ): Obj {
    const old = this.getRaw(t, ns, name);
    const obj = clone(input) ?? {};
    obj.metadata ??= {};
    const md = obj.metadata;
    if (md.name && md.name !== name)
      throw errors.badRequest(
        `the name of the object (${md.name}) does not match the name on the URL (${name})`,
      );
    const sentRv = md.resourceVersion;
    if (
      opts.checkResourceVersion !== false &&
      sentRv !== undefined &&
      sentRv !== '' &&
      String(sentRv) !== old.metadata.resourceVersion
    )
      throw errors.conflict(t.plural, t.group, name);
    if (opts.checkResourceVersion !== false && (sentRv === undefined || sentRv === '') && t.crd)
      throw errors.invalid(t.kind, t.group, name, [
        {
          reason: 'FieldValueInvalid',
          message: 'Invalid value: 0x0: must be specified for an update',
          field: 'metadata.resourceVersion',
        },
      ]);
    let next: Obj;
    if (opts.subresource === 'status') {
      // /status writes change status only (plus nothing else the caller sent).
      next = { ...clone(old), status: clone(obj.status) };
      if (obj.status === undefined) delete next.status;
    } else {
      next = obj;
      if (t.status) {
        if (old.status === undefined) delete next.status;
        else next.status = clone(old.status);
      }
    }
    // Immutable/server-owned metadata.
    const nmd = next.metadata;
    if (obj.metadata?.managedFields !== undefined) nmd.managedFields = obj.metadata.managedFields;
    else if (old.metadata.managedFields) nmd.managedFields = old.metadata.managedFields;
    if (!nmd.managedFields?.length) delete nmd.managedFields;
    nmd.name = old.metadata.name;
    if (old.metadata.namespace) nmd.namespace = old.metadata.namespace;
    else delete nmd.namespace;
    if (obj.metadata.uid && obj.metadata.uid !== old.metadata.uid)
      throw new ApiError(
        409,
        'Conflict',
        `Precondition failed: UID in precondition: ${obj.metadata.uid}, UID in object meta: ${old.metadata.uid}`,
      );
    nmd.uid = old.metadata.uid;
    nmd.creationTimestamp = old.metadata.creationTimestamp;
    nmd.generation = old.metadata.generation;
    if (old.metadata.deletionTimestamp) {
      nmd.deletionTimestamp = old.metadata.deletionTimestamp;
      nmd.deletionGracePeriodSeconds = old.metadata.deletionGracePeriodSeconds;
    } else {
      delete nmd.deletionTimestamp;
      delete nmd.deletionGracePeriodSeconds;
    }
    next.apiVersion = apiVersionOf(t);
    next.kind = t.kind;
    if (!deepEqual(specOf(next), specOf(old))) nmd.generation = (old.metadata.generation ?? 0) + 1;
    this.prepare(t, next, old);
    if (opts.dryRun) return next;
    // Finalizers all gone on an object being deleted: the delete completes now.
    if (nmd.deletionTimestamp && !(nmd.finalizers?.length > 0)) {
      next.metadata.resourceVersion = old.metadata.resourceVersion;
      return this.commit(t, 'DELETED', next, old);
    }
    const a = { ...old, metadata: { ...old.metadata, resourceVersion: undefined } };
    const b = { ...next, metadata: { ...next.metadata, resourceVersion: undefined } };
    if (deepEqual(a, b)) return old; // no-op writes do not bump resourceVersion (real server too)
    return this.commit(t, 'MODIFIED', next, old);
  }

  private deleteRaw(
    t: ResourceType,
    ns: string | undefined,
    name: string,
    opts: { preconditions?: { uid?: string; resourceVersion?: string }; dryRun?: boolean } = {},
  ): Obj {
    const old = this.getRaw(t, ns, name);
    const pre = opts.preconditions;
    if (pre?.uid && pre.uid !== old.metadata.uid)
      throw new ApiError(
        409,
        'Conflict',
        `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid}`,
      );
    if (pre?.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion)
      throw new ApiError(
        409,
        'Conflict',
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion}`,
      );
    if (opts.dryRun) return old;
    if (old.metadata.finalizers?.length > 0) {
      if (old.metadata.deletionTimestamp) return old;
      const next = clone(old);
      next.metadata.deletionTimestamp = rfc3339(this.now());
      next.metadata.deletionGracePeriodSeconds = 0;
      return this.commit(t, 'MODIFIED', next, old);
    }
    if (t.group === '' && t.plural === 'namespaces') this.deleteNamespaceContents(name);
    if (t.group === 'apiextensions.k8s.io' && t.plural === 'customresourcedefinitions')
      this.dropCrdTypes(old);
    return this.commit(t, 'DELETED', clone(old), old);
  }

  // ---- internals ----

  private bucket(t: ResourceType): Map<string, Obj> {
    const k = typeKey(t.group, t.version, t.plural);
    let b = this.data.get(k);
    if (!b) {
      b = new Map();
      this.data.set(k, b);
    }
    return b;
  }

  /** Type-specific checks and defaults before a write is stored. */
  private prepare(t: ResourceType, obj: Obj, old: Obj | undefined): void {
    const md = obj.metadata;
    if (md.labels != null && (typeof md.labels !== 'object' || Array.isArray(md.labels)))
      throw errors.badRequest(
        `${t.kind} in version "${t.version}" cannot be handled as a ${t.kind}: metadata.labels must be a map of strings`,
      );
    for (const [k, v] of Object.entries({ ...(md.labels ?? {}), ...(md.annotations ?? {}) }))
      if (typeof v !== 'string')
        throw errors.badRequest(
          `${t.kind} in version "${t.version}" cannot be handled as a ${t.kind}: json: cannot unmarshal ${typeof v} into Go struct field ObjectMeta.metadata of type string (key ${k})`,
        );
    const metaCauses = validateMeta(
      md,
      t.group === '' && (t.plural === 'namespaces' || t.plural === 'services'),
      t.group === 'rbac.authorization.k8s.io',
    );
    if (metaCauses.length) throw errors.invalid(t.kind, t.group, md.name, metaCauses);
    const micro = (path: string, v: unknown) => {
      if (v == null) return;
      if (typeof v !== 'string' || !MICROTIME.test(v))
        throw errors.badRequest(
          `${t.kind} in version "${t.version}" cannot be handled as a ${t.kind}: parsing time ${JSON.stringify(v)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse as ".000000" (${path} is a MicroTime: exactly 6 fractional digits)`,
        );
    };
    if (t.group === 'coordination.k8s.io' && t.kind === 'Lease') {
      micro('spec.acquireTime', obj.spec?.acquireTime);
      micro('spec.renewTime', obj.spec?.renewTime);
    }
    if (t.kind === 'Event') micro('eventTime', obj.eventTime);
    if (t.group === '' && t.plural === 'namespaces')
      obj.status = { phase: old?.status?.phase ?? 'Active', ...(obj.status ?? {}) };
    if (t.group === '' && t.plural === 'secrets') obj.type ??= 'Opaque';
    if (t.group === '' && t.plural === 'pods') {
      obj.status ??= {};
      obj.status.phase ??= 'Pending';
      obj.status.qosClass ??= qosClass(obj);
    }
    if (t.group === 'apiextensions.k8s.io' && t.plural === 'customresourcedefinitions')
      this.prepareCrd(obj, old);
    if (t.crd && this.admit) {
      const causes = this.admit(t, obj, old);
      if (causes.length) throw errors.invalid(t.kind, t.group, md.name, causes);
    }
  }

  private prepareCrd(obj: Obj, old: Obj | undefined): void {
    const spec = obj.spec ?? {};
    const names = spec.names ?? {};
    const causes: StatusCause[] = [];
    if (!spec.group)
      causes.push({ reason: 'FieldValueRequired', field: 'spec.group', message: 'Required value' });
    if (!names.plural)
      causes.push({ reason: 'FieldValueRequired', field: 'spec.names.plural', message: 'Required value' });
    if (!names.kind)
      causes.push({ reason: 'FieldValueRequired', field: 'spec.names.kind', message: 'Required value' });
    if (!['Cluster', 'Namespaced'].includes(spec.scope))
      causes.push({
        reason: 'FieldValueNotSupported',
        field: 'spec.scope',
        message: `Unsupported value: ${JSON.stringify(spec.scope)}: supported values: "Cluster", "Namespaced"`,
      });
    if (!Array.isArray(spec.versions) || spec.versions.length === 0)
      causes.push({
        reason: 'FieldValueRequired',
        field: 'spec.versions',
        message: 'Required value: must have exactly one version marked as storage version',
      });
    if (names.plural && spec.group && obj.metadata.name !== `${names.plural}.${spec.group}`)
      causes.push({
        reason: 'FieldValueInvalid',
        field: 'metadata.name',
        message: `Invalid value: ${JSON.stringify(obj.metadata.name)}: must be spec.names.plural+"."+spec.group`,
      });
    causes.push(...checkCrdSchemas(obj));
    if (causes.length)
      throw errors.invalid('CustomResourceDefinition', 'apiextensions.k8s.io', obj.metadata.name, causes);
    // No controller runs here: names are accepted and the CRD is established at once.
    const ts = old?.status?.conditions?.[0]?.lastTransitionTime ?? rfc3339(this.now());
    obj.status = {
      conditions: [
        {
          type: 'NamesAccepted',
          status: 'True',
          reason: 'NoConflicts',
          message: 'no conflicts found',
          lastTransitionTime: ts,
        },
        {
          type: 'Established',
          status: 'True',
          reason: 'InitialNamesAccepted',
          message: 'the initial names have been accepted',
          lastTransitionTime: ts,
        },
      ],
      acceptedNames: {
        ...names,
        listKind: names.listKind ?? `${names.kind}List`,
        singular: names.singular ?? String(names.kind).toLowerCase(),
      },
      storedVersions: (spec.versions ?? []).filter((v: Obj) => v.storage).map((v: Obj) => v.name),
    };
  }

  private commit(t: ResourceType, type: EventType, obj: Obj, old: Obj | undefined): Obj {
    const rv = ++this.rv;
    obj.metadata.resourceVersion = String(rv);
    const b = this.bucket(t);
    const k = nsName(obj.metadata.namespace, obj.metadata.name);
    if (type === 'DELETED') b.delete(k);
    else b.set(k, obj);
    if (
      t.group === 'apiextensions.k8s.io' &&
      t.plural === 'customresourcedefinitions' &&
      type !== 'DELETED'
    ) {
      if (old) this.dropCrdTypes(old, obj);
      for (const ct of typesFromCrd(obj)) this.registry.add(ct);
    }
    const ev: StoreEvent = { rv, type, key: typeKey(t.group, t.version, t.plural), obj, old };
    this.log.push(ev);
    if (this.log.length > this.watchWindow + 1024) {
      const drop = this.log.length - this.watchWindow;
      this.compactedRv = this.log[drop - 1]!.rv;
      this.log = this.log.slice(drop);
    }
    const subs = this.subs.get(ev.key);
    if (subs)
      for (const s of subs) {
        try {
          s.deliver(ev);
        } catch (err) {
          // One broken watcher must not fail the write or starve the others.
          this.onSubscriberError?.(s, err);
        }
      }
    this.onWrite?.();
    return obj;
  }

  /** Drops the old events beyond the window now (tests force 410 this way). */
  compact(keep = 0): void {
    if (this.log.length <= keep) return;
    const drop = this.log.length - keep;
    this.compactedRv = this.log[drop - 1]!.rv;
    this.log = this.log.slice(drop);
  }

  private deleteNamespaceContents(ns: string): void {
    for (const t of this.registry.all()) {
      if (!t.namespaced || t.storage) continue;
      for (const o of this.listRaw(t, ns)) this.commit(t, 'DELETED', clone(o), o);
    }
  }

  /** CRD deleted (or a version removed): its types and their objects go too. */
  private dropCrdTypes(oldCrd: Obj, newCrd?: Obj): void {
    const keep = new Set(
      (newCrd ? typesFromCrd(newCrd) : []).map((t) => typeKey(t.group, t.version, t.plural)),
    );
    for (const t of typesFromCrd(oldCrd)) {
      const k = typeKey(t.group, t.version, t.plural);
      if (keep.has(k)) continue;
      const live = this.registry.get(t.group, t.version, t.plural);
      if (live) for (const o of this.listRaw(live)) this.commit(live, 'DELETED', clone(o), o);
      this.registry.remove(t.group, t.version, t.plural);
    }
  }

  /** Everything, for snapshots: CRDs first so their types exist when loading. */
  dump(): { resourceVersion: number; objects: Obj[] } {
    const objects: Obj[] = [];
    const crdType = this.registry.get('apiextensions.k8s.io', 'v1', 'customresourcedefinitions')!;
    objects.push(...this.listRaw(crdType));
    for (const t of this.registry.all()) if (t !== crdType && !t.storage) objects.push(...this.listRaw(t));
    return { resourceVersion: this.rv, objects };
  }

  /** Loads a snapshot into an empty store, keeping uids, timestamps and resourceVersions. */
  load(snap: { resourceVersion: number; objects: Obj[] }): void {
    for (const o of snap.objects) {
      const [group, version] = String(o.apiVersion).includes('/')
        ? String(o.apiVersion).split('/')
        : ['', o.apiVersion];
      const t = this.registry.byKind(o.apiVersion, o.kind);
      if (!t) continue;
      this.bucket(t).set(nsName(o.metadata.namespace, o.metadata.name), o);
      if (group === 'apiextensions.k8s.io' && version === 'v1' && o.kind === 'CustomResourceDefinition')
        for (const ct of typesFromCrd(o)) this.registry.add(ct);
    }
    this.rv = Math.max(this.rv, snap.resourceVersion);
    this.compactedRv = this.rv; // the event history is not part of a snapshot
    this.log = [];
  }
}

function randomSuffix(): string {
  const chars = 'bcdfghjklmnpqrstvwxz2456789';
  let s = '';
  for (let i = 0; i < 5; i++) s += chars[Math.floor(Math.random() * chars.length)];
  return s;
}

function qosClass(pod: Obj): string {
  const cs: Obj[] = pod.spec?.containers ?? [];
  let any = false;
  let guaranteed = cs.length > 0;
  for (const c of cs) {
    const req = c.resources?.requests ?? {};
    const lim = c.resources?.limits ?? {};
    if (Object.keys(req).length || Object.keys(lim).length) any = true;
    for (const r of ['cpu', 'memory']) {
      if (lim[r] === undefined || (req[r] !== undefined && String(req[r]) !== String(lim[r])))
        guaranteed = false;
    }
  }
  return guaranteed ? 'Guaranteed' : any ? 'Burstable' : 'BestEffort';
}
