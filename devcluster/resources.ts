// The resource types the emulator serves: built-ins (stored as plain objects, no controllers)
// plus one entry per established CRD version. Discovery, routing and the store all read this registry.
export interface ResourceType {
  group: string; // '' for core
  version: string;
  kind: string;
  listKind: string;
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  /** has a /status subresource: status writes via the main resource are ignored, spec via /status too. */
  status: boolean;
  /** the CRD this type comes from (custom resources only). */
  crd?: Record<string, any>;
  /**
   * Set for types that are another type's objects seen differently (events.k8s.io/v1 Events are core
   * Events; a CRD's non-storage versions are its storage version with another apiVersion).
   */
  storage?: ResourceType;
  toStorage?: (o: Record<string, any>) => Record<string, any>;
  fromStorage?: (o: Record<string, any>) => Record<string, any>;
}

type O = Record<string, any>;

function pick(o: O, map: [from: string, to: string][]): O {
  const out: O = {};
  for (const [f, t] of map) if (o[f] !== undefined) out[t] = o[f];
  return out;
}

// events.k8s.io/v1 ↔ core/v1 field names (k8s.io/kubernetes pkg/apis/events/v1 conversion).
const EVENT_FIELDS: [events: string, core: string][] = [
  ['metadata', 'metadata'],
  ['eventTime', 'eventTime'],
  ['series', 'series'],
  ['action', 'action'],
  ['reason', 'reason'],
  ['type', 'type'],
  ['related', 'related'],
  ['reportingController', 'reportingComponent'],
  ['reportingInstance', 'reportingInstance'],
  ['regarding', 'involvedObject'],
  ['note', 'message'],
  ['deprecatedSource', 'source'],
  ['deprecatedFirstTimestamp', 'firstTimestamp'],
  ['deprecatedLastTimestamp', 'lastTimestamp'],
  ['deprecatedCount', 'count'],
];

export function eventToCore(o: O): O {
  return { apiVersion: 'v1', kind: 'Event', ...pick(o, EVENT_FIELDS) };
}

export function eventFromCore(o: O): O {
  return {
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    ...pick(
      o,
      EVENT_FIELDS.map(([e, c]) => [c, e]),
    ),
  };
}

export function apiVersionOf(t: { group: string; version: string }): string {
  return t.group ? `${t.group}/${t.version}` : t.version;
}

export function typeKey(group: string, version: string, plural: string): string {
  return `${group}/${version}/${plural}`;
}

type Spec = [
  kind: string,
  plural: string,
  namespaced: boolean,
  shortNames?: string[],
  status?: boolean,
  categories?: string[],
];

const BUILTINS: Record<string, Spec[]> = {
  v1: [
    ['Namespace', 'namespaces', false, ['ns'], true],
    ['Pod', 'pods', true, ['po'], true, ['all']],
    ['Node', 'nodes', false, ['no'], true],
    ['ConfigMap', 'configmaps', true, ['cm']],
    ['Secret', 'secrets', true],
    ['Event', 'events', true, ['ev']],
    ['ServiceAccount', 'serviceaccounts', true, ['sa']],
    ['Service', 'services', true, ['svc'], true, ['all']],
    ['Endpoints', 'endpoints', true, ['ep']],
    ['PersistentVolumeClaim', 'persistentvolumeclaims', true, ['pvc'], true],
    ['PersistentVolume', 'persistentvolumes', false, ['pv'], true],
    ['LimitRange', 'limitranges', true, ['limits']],
    ['ResourceQuota', 'resourcequotas', true, ['quota'], true],
  ],
  'batch/v1': [
    ['Job', 'jobs', true, [], true, ['all']],
    ['CronJob', 'cronjobs', true, ['cj'], true, ['all']],
  ],
  'autoscaling/v2': [['HorizontalPodAutoscaler', 'horizontalpodautoscalers', true, ['hpa'], true, ['all']]],
  'storage.k8s.io/v1': [['StorageClass', 'storageclasses', false, ['sc']]],
  'discovery.k8s.io/v1': [['EndpointSlice', 'endpointslices', true]],
  'admissionregistration.k8s.io/v1': [
    ['ValidatingWebhookConfiguration', 'validatingwebhookconfigurations', false],
    ['MutatingWebhookConfiguration', 'mutatingwebhookconfigurations', false],
  ],
  'apps/v1': [
    ['Deployment', 'deployments', true, ['deploy'], true, ['all']],
    ['DaemonSet', 'daemonsets', true, ['ds'], true, ['all']],
    ['StatefulSet', 'statefulsets', true, ['sts'], true, ['all']],
    ['ReplicaSet', 'replicasets', true, ['rs'], true, ['all']],
  ],
  'coordination.k8s.io/v1': [['Lease', 'leases', true]],
  'events.k8s.io/v1': [['Event', 'events', true, ['ev']]],
  'apiextensions.k8s.io/v1': [
    ['CustomResourceDefinition', 'customresourcedefinitions', false, ['crd', 'crds'], true],
  ],
  'rbac.authorization.k8s.io/v1': [
    ['Role', 'roles', true],
    ['RoleBinding', 'rolebindings', true],
    ['ClusterRole', 'clusterroles', false],
    ['ClusterRoleBinding', 'clusterrolebindings', false],
  ],
  // Access and token reviews are answered, never stored (server.ts, token-api.ts).
  'authentication.k8s.io/v1': [
    ['TokenReview', 'tokenreviews', false],
    ['SelfSubjectReview', 'selfsubjectreviews', false],
  ],
  'authorization.k8s.io/v1': [
    ['SelfSubjectAccessReview', 'selfsubjectaccessreviews', false],
    ['SubjectAccessReview', 'subjectaccessreviews', false],
  ],
  'policy/v1': [['PodDisruptionBudget', 'poddisruptionbudgets', true, ['pdb'], true]],
  'scheduling.k8s.io/v1': [['PriorityClass', 'priorityclasses', false, ['pc']]],
  'networking.k8s.io/v1': [
    ['NetworkPolicy', 'networkpolicies', true, ['netpol']],
    ['Ingress', 'ingresses', true, ['ing'], true],
  ],
};

export class Registry {
  private readonly byKey = new Map<string, ResourceType>();

  constructor() {
    for (const [gv, specs] of Object.entries(BUILTINS)) {
      const [group, version] = gv.includes('/') ? (gv.split('/') as [string, string]) : ['', gv];
      for (const [kind, plural, namespaced, shortNames = [], status = false, categories = []] of specs) {
        this.add({
          group,
          version,
          kind,
          listKind: `${kind}List`,
          plural,
          singular: kind.toLowerCase(),
          namespaced,
          shortNames,
          categories,
          status,
        });
      }
    }
    this.linkEvents();
  }

  add(t: ResourceType): void {
    this.byKey.set(typeKey(t.group, t.version, t.plural), t);
  }

  /** Makes events.k8s.io/v1 Events a view of core/v1 Events (one store, like the real server). */
  linkEvents(): void {
    const core = this.get('', 'v1', 'events');
    const ev = this.get('events.k8s.io', 'v1', 'events');
    if (!core || !ev) return;
    ev.storage = core;
    ev.toStorage = eventToCore;
    ev.fromStorage = eventFromCore;
  }

  remove(group: string, version: string, plural: string): void {
    this.byKey.delete(typeKey(group, version, plural));
  }

  get(group: string, version: string, plural: string): ResourceType | undefined {
    return this.byKey.get(typeKey(group, version, plural));
  }

  /** by apiVersion + kind, as objects name their type. */
  byKind(apiVersion: string, kind: string): ResourceType | undefined {
    for (const t of this.byKey.values()) if (apiVersionOf(t) === apiVersion && t.kind === kind) return t;
    return undefined;
  }

  all(): ResourceType[] {
    return [...this.byKey.values()];
  }

  /** group → versions (sorted so discovery output is stable). */
  groups(): Map<string, string[]> {
    const m = new Map<string, string[]>();
    for (const t of this.byKey.values()) {
      const vs = m.get(t.group) ?? [];
      if (!vs.includes(t.version)) vs.push(t.version);
      m.set(t.group, vs);
    }
    return m;
  }
}

/** The ResourceTypes a CRD object declares (one per served version). */
export function typesFromCrd(crd: Record<string, any>): ResourceType[] {
  const spec = crd.spec ?? {};
  const names = spec.names ?? {};
  const out: ResourceType[] = [];
  for (const v of spec.versions ?? []) {
    if (v.served === false && !v.storage) continue;
    out.push({
      group: spec.group,
      version: v.name,
      kind: names.kind,
      listKind: names.listKind ?? `${names.kind}List`,
      plural: names.plural,
      singular: names.singular ?? String(names.kind).toLowerCase(),
      namespaced: spec.scope !== 'Cluster',
      shortNames: names.shortNames ?? [],
      categories: names.categories ?? [],
      status: Boolean(v.subresources?.status),
      crd,
    });
  }
  // Every version is stored once, in the storage version (conversion strategy None: only the
  // apiVersion differs between versions).
  const storageName = (spec.versions ?? []).find((v: O) => v.storage)?.name ?? out[0]?.version;
  const storage = out.find((t) => t.version === storageName);
  for (const t of out) {
    if (!storage || t === storage) continue;
    const apiVersion = `${t.group}/${t.version}`;
    const storageApiVersion = `${storage.group}/${storage.version}`;
    t.storage = storage;
    t.toStorage = (o) => ({ ...o, apiVersion: storageApiVersion });
    t.fromStorage = (o) => ({ ...o, apiVersion });
  }
  const served = new Set((spec.versions ?? []).filter((v: O) => v.served !== false).map((v: O) => v.name));
  // An unserved storage version still holds the objects but is not registered for requests.
  return out.filter((t) => served.has(t.version));
}
