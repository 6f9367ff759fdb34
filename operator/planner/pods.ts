// Reading what the planner needs out of a Pod: CPU limits, containers, QoS, exclusions, annotations.
import {
  ANNOTATION_CONFIG,
  ANNOTATION_ENABLED,
  type BurstConfig,
  type ContainerDecision,
  LABEL_KOORD_QOS,
  type QosClass,
  validate,
} from '../../protocol/index.js';

/** The subset of a v1 Pod the planner reads (plain JSON or client-node model objects). */
export interface PodLike {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: unknown;
    resourceVersion?: string;
  };
  spec?: {
    nodeName?: string;
    containers?: ContainerLike[];
    initContainers?: ContainerLike[];
  };
  status?: {
    phase?: string;
    qosClass?: string;
    containerStatuses?: ContainerStatusLike[];
    initContainerStatuses?: ContainerStatusLike[];
  };
}

interface ContainerLike {
  name: string;
  restartPolicy?: string;
  resources?: { limits?: Record<string, unknown>; requests?: Record<string, unknown> };
}

interface ContainerStatusLike {
  name: string;
  containerID?: string;
  state?: { running?: unknown };
}

/** Kubernetes CPU quantity → millicores ("500m", "2", "1.5", "0.25"); null when absent or unparsable. */
export function cpuMilli(q: unknown): number | null {
  if (q === undefined || q === null) return null;
  const s = String(q).trim();
  const m = /^(\d+(?:\.\d+)?|\.\d+)(m|k|M|G)?$/.exec(s);
  if (!m) return null;
  const n = Number(m[1]);
  const mult = { m: 1, k: 1e6, M: 1e9, G: 1e12 }[m[2] ?? ''] ?? 1000;
  return Math.ceil(n * mult);
}

export function podKey(p: PodLike): string {
  return `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`;
}

/** status.qosClass when the API filled it, else derived the way the kubelet does (CPU and memory). */
export function qosClassOf(p: PodLike): QosClass {
  const s = p.status?.qosClass;
  if (s === 'Guaranteed' || s === 'Burstable' || s === 'BestEffort') return s;
  const all = [...(p.spec?.containers ?? []), ...(p.spec?.initContainers ?? [])];
  let any = false;
  let guaranteed = all.length > 0;
  for (const c of all) {
    const lim = c.resources?.limits ?? {};
    const req = c.resources?.requests ?? {};
    for (const r of ['cpu', 'memory']) {
      if (lim[r] !== undefined || req[r] !== undefined) any = true;
      const l = lim[r];
      const q = req[r] ?? l;
      if (l === undefined || String(l) !== String(q)) guaranteed = false;
    }
  }
  if (!any) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

export function koordQos(p: PodLike): string | undefined {
  return p.metadata?.labels?.[LABEL_KOORD_QOS];
}

export function containersOf(p: PodLike): ContainerDecision[] {
  const statuses = [...(p.status?.containerStatuses ?? []), ...(p.status?.initContainerStatuses ?? [])];
  const decide = (c: ContainerLike, kind: ContainerDecision['kind']): ContainerDecision => {
    const st = statuses.find((s) => s.name === c.name); // a handful of containers: no Map
    return {
      name: c.name,
      containerID: st?.containerID ?? '',
      cpuLimitMilli: cpuMilli(c.resources?.limits?.cpu),
      kind,
      running: Boolean(st?.state?.running),
    };
  };
  // map/concat allocate exactly-sized arrays (a push-grown one keeps ~17 slots per pod).
  const apps = (p.spec?.containers ?? []).map((c) => decide(c, 'app'));
  const inits = p.spec?.initContainers;
  if (!inits?.length) return apps;
  return inits.map((c) => decide(c, c.restartPolicy === 'Always' ? 'sidecar' : 'init')).concat(apps);
}

export function cpuRequestMilli(p: PodLike): number {
  let sum = 0;
  for (const c of p.spec?.containers ?? [])
    sum += cpuMilli(c.resources?.requests?.cpu ?? c.resources?.limits?.cpu) ?? 0;
  return sum;
}

/** Why a pod cannot get burst, or null when it is eligible. Reasons are CamelCase for status and Events. */
export function exclusionOf(p: PodLike): { reason: string; message: string } | null {
  const phase = p.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed')
    return { reason: 'PodTerminated', message: `pod phase is ${phase}` };
  if (p.metadata?.deletionTimestamp) return { reason: 'PodTerminating', message: 'pod is being deleted' };
  const qos = koordQos(p);
  if (qos === 'LSR' || qos === 'LSE' || qos === 'BE')
    return {
      reason: 'QoSClassExcluded',
      message: `${LABEL_KOORD_QOS}=${qos} pods do not burst (as Koordinator)`,
    };
  const containers = [...(p.spec?.containers ?? [])];
  if (!containers.some((c) => cpuMilli(c.resources?.limits?.cpu) !== null))
    return { reason: 'NoCPULimit', message: 'no container has a CPU limit, so there is no quota to burst' };
  return null;
}

export type OptIn = 'true' | 'false' | 'unset' | 'invalid';

export function optInOf(p: PodLike): { value: OptIn; raw?: string } {
  const raw = p.metadata?.annotations?.[ANNOTATION_ENABLED];
  if (raw === undefined) return { value: 'unset' };
  const v = raw.trim().toLowerCase();
  if (v === 'true') return { value: 'true', raw };
  if (v === 'false') return { value: 'false', raw };
  return { value: 'invalid', raw };
}

export type OverrideResult =
  | { present: false }
  | { present: true; ok: true; value: Partial<BurstConfig> }
  | { present: true; ok: false; error: string };

/** The `cpuburst.io/config` annotation, validated with the protocol's ajv schema. */
export function overrideOf(p: PodLike): OverrideResult {
  const raw = p.metadata?.annotations?.[ANNOTATION_CONFIG];
  if (raw === undefined) return { present: false };
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (err) {
    return {
      present: true,
      ok: false,
      error: `${ANNOTATION_CONFIG} is not valid JSON: ${(err as Error).message}`,
    };
  }
  if (!validate.podOverride(v))
    return { present: true, ok: false, error: `${ANNOTATION_CONFIG}: ${validate.podOverride.errors()}` };
  return { present: true, ok: true, value: v };
}

// Slim pods share their repeated parts: every pod of a Deployment has the same labels and resources,
// so 550,000 cached pods hold a few thousand such objects, not a million. Never mutated after caching.
const shared = new Map<string, unknown>();
const SHARED_MAX = 100_000;
const EMPTY: Record<string, string> = {};
const RUNNING = { running: true };
const NOT_RUNNING = {};

function share<T>(key: string, make: () => T): T {
  const hit = shared.get(key);
  if (hit !== undefined) return hit as T;
  if (shared.size >= SHARED_MAX) shared.clear();
  const v = make();
  shared.set(key, v);
  return v;
}

function slimResources(r: ContainerLike['resources']): ContainerLike['resources'] {
  const pick = (m: Record<string, unknown> | undefined) => {
    if (!m) return undefined;
    const out: Record<string, unknown> = {};
    if (m.cpu !== undefined) out.cpu = String(m.cpu);
    if (m.memory !== undefined) out.memory = String(m.memory);
    return out;
  };
  const out: NonNullable<ContainerLike['resources']> = {};
  const limits = pick(r?.limits);
  const requests = pick(r?.requests);
  if (limits) out.limits = limits;
  if (requests) out.requests = requests;
  return out;
}

function slimContainers(cs: ContainerLike[] | undefined): ContainerLike[] | undefined {
  if (!cs) return undefined;
  // The sharing key straight from the fields the slim list keeps: on a hit (nearly every pod)
  // nothing is allocated but the key.
  let key = 'c';
  for (const c of cs) {
    const l = c.resources?.limits;
    const r = c.resources?.requests;
    key += `${c.name}\u0000${c.restartPolicy ?? ''}\u0000${l?.cpu ?? '-'}\u0000${l?.memory ?? '-'}\u0000${l ? 1 : 0}${r?.cpu ?? '-'}\u0000${r?.memory ?? '-'}\u0000${r ? 1 : 0}\u0001`;
  }
  return share(key, () =>
    cs.map((c) => {
      const out: ContainerLike = { name: c.name, resources: slimResources(c.resources) };
      if (c.restartPolicy) out.restartPolicy = c.restartPolicy;
      return out;
    }),
  );
}

function slimStatuses(ss: ContainerStatusLike[] | undefined): ContainerStatusLike[] | undefined {
  return ss?.map((s) => ({
    name: s.name,
    containerID: s.containerID ?? '',
    state: s.state?.running ? RUNNING : NOT_RUNNING,
  }));
}

/**
 * The part of a Pod the planner and controller read (client-go's SetTransform idea): a real pod is
 * kilobytes (managedFields, env, volumes, probes, last-applied annotations); this keeps the name,
 * uid, resourceVersion, labels, the cpuburst.io annotations, the node, CPU/memory resources, phase,
 * QoS class and container IDs. Planning a slim pod gives the same decisions as planning the pod.
 */
export function slimPod(p: PodLike & { metadata?: { resourceVersion?: string } }): PodLike & {
  metadata: { resourceVersion?: string };
} {
  const md = p.metadata ?? {};
  let annotations = EMPTY;
  for (const k of [ANNOTATION_ENABLED, ANNOTATION_CONFIG]) {
    const v = md.annotations?.[k];
    if (v === undefined) continue;
    if (annotations === EMPTY) annotations = {};
    annotations[k] = v;
  }
  const labels = md.labels ? share(`l${JSON.stringify(md.labels)}`, () => md.labels!) : EMPTY;
  // Every field in one literal (absent ones undefined): objects keep one compact shape, no
  // properties added later (that costs an out-of-object backing store per pod).
  return {
    metadata: {
      name: md.name,
      namespace: md.namespace,
      uid: md.uid,
      resourceVersion: md.resourceVersion,
      labels,
      annotations,
      deletionTimestamp: md.deletionTimestamp ? String(md.deletionTimestamp) : undefined,
    },
    spec: {
      nodeName: p.spec?.nodeName,
      containers: slimContainers(p.spec?.containers) ?? [],
      initContainers: slimContainers(p.spec?.initContainers),
    },
    status: {
      phase: p.status?.phase,
      qosClass: p.status?.qosClass,
      containerStatuses: slimStatuses(p.status?.containerStatuses),
      initContainerStatuses: slimStatuses(p.status?.initContainerStatuses),
    },
  };
}

/** Nodes and namespaces: the planner reads only their name and labels. */
export function slimMeta<T extends { metadata?: { name?: string; labels?: Record<string, string> } }>(
  o: T & { metadata?: { resourceVersion?: string } },
): { metadata: { name?: string; labels: Record<string, string>; resourceVersion?: string } } {
  return {
    metadata: {
      name: o.metadata?.name,
      labels: o.metadata?.labels ?? {},
      resourceVersion: o.metadata?.resourceVersion,
    },
  };
}
