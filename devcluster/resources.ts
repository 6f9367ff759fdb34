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
  }

  add(t: ResourceType): void {
    this.byKey.set(typeKey(t.group, t.version, t.plural), t);
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
    if (v.served === false) continue;
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
  return out;
}
