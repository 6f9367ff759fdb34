// meta.k8s.io/v1 Table responses (what `kubectl get` asks for): printer columns from the CRD's
// additionalPrinterColumns, and kubectl-like columns for the built-ins.
import type { ResourceType } from './resources.js';
import type { Obj } from './store.js';

export interface Column {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

type Cell = string | number | boolean | null;
type Def = [
  name: string,
  type: string,
  cell: (o: Obj, now: Date) => Cell,
  priority?: number,
  format?: string,
];

/** kubectl's HumanDuration. */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < -1) return '<invalid>';
  if (s < 0) return '0s';
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (d < 730) return `${d}d`;
  const y = Math.floor(d / 365);
  return y < 8 ? `${y}y${d % 365}d` : `${y}y`;
}

const age = (o: Obj, now: Date): Cell =>
  o.metadata?.creationTimestamp
    ? humanDuration(now.getTime() - Date.parse(o.metadata.creationTimestamp))
    : '<unknown>';
const nameCol: Def = ['Name', 'string', (o) => o.metadata?.name ?? '', 0, 'name'];
const ageCol: Def = ['Age', 'string', age];
const count = (v: unknown) => (v && typeof v === 'object' ? Object.keys(v).length : 0);
const condStatus = (o: Obj, type: string) =>
  (o.status?.conditions ?? []).find((c: Obj) => c.type === type)?.status;

const BUILTIN: Record<string, Def[]> = {
  '/pods': [
    nameCol,
    [
      'Ready',
      'string',
      (o) => {
        const cs: Obj[] = o.status?.containerStatuses ?? [];
        const total = (o.spec?.containers ?? []).length;
        return `${cs.filter((c) => c.ready).length}/${total}`;
      },
    ],
    [
      'Status',
      'string',
      (o) =>
        o.metadata?.deletionTimestamp ? 'Terminating' : (o.status?.reason ?? o.status?.phase ?? 'Unknown'),
    ],
    [
      'Restarts',
      'string',
      (o) =>
        String(
          (o.status?.containerStatuses ?? []).reduce((n: number, c: Obj) => n + (c.restartCount ?? 0), 0),
        ),
    ],
    ageCol,
    ['IP', 'string', (o) => o.status?.podIP ?? '<none>', 1],
    ['Node', 'string', (o) => o.spec?.nodeName ?? '<none>', 1],
    ['Nominated Node', 'string', (o) => o.status?.nominatedNodeName ?? '<none>', 1],
    [
      'Readiness Gates',
      'string',
      (o) => (o.spec?.readinessGates?.length ? String(o.spec.readinessGates.length) : '<none>'),
      1,
    ],
  ],
  '/nodes': [
    nameCol,
    [
      'Status',
      'string',
      (o) => {
        const s = condStatus(o, 'Ready');
        const base = s === 'True' ? 'Ready' : s === 'False' ? 'NotReady' : 'Unknown';
        return o.spec?.unschedulable ? `${base},SchedulingDisabled` : base;
      },
    ],
    [
      'Roles',
      'string',
      (o) => {
        const roles = Object.keys(o.metadata?.labels ?? {})
          .filter((k) => k.startsWith('node-role.kubernetes.io/'))
          .map((k) => k.slice('node-role.kubernetes.io/'.length));
        return roles.length ? roles.sort().join(',') : '<none>';
      },
    ],
    ageCol,
    ['Version', 'string', (o) => o.status?.nodeInfo?.kubeletVersion ?? ''],
    [
      'Internal-IP',
      'string',
      (o) => (o.status?.addresses ?? []).find((a: Obj) => a.type === 'InternalIP')?.address ?? '<none>',
      1,
    ],
    ['OS-Image', 'string', (o) => o.status?.nodeInfo?.osImage ?? '<unknown>', 1],
    ['Kernel-Version', 'string', (o) => o.status?.nodeInfo?.kernelVersion ?? '<unknown>', 1],
  ],
  '/namespaces': [nameCol, ['Status', 'string', (o) => o.status?.phase ?? 'Active'], ageCol],
  '/configmaps': [nameCol, ['Data', 'integer', (o) => count(o.data) + count(o.binaryData)], ageCol],
  '/secrets': [
    nameCol,
    ['Type', 'string', (o) => o.type ?? 'Opaque'],
    ['Data', 'integer', (o) => count(o.data)],
    ageCol,
  ],
  '/events': [
    [
      'Last Seen',
      'string',
      (o, now) => {
        const t = o.lastTimestamp ?? o.eventTime ?? o.metadata?.creationTimestamp;
        return t ? humanDuration(now.getTime() - Date.parse(t)) : '<unknown>';
      },
    ],
    ['Type', 'string', (o) => o.type ?? ''],
    ['Reason', 'string', (o) => o.reason ?? ''],
    [
      'Object',
      'string',
      (o) => {
        const r = o.involvedObject ?? o.regarding ?? {};
        return `${String(r.kind ?? '').toLowerCase()}/${r.name ?? ''}`;
      },
    ],
    ['Message', 'string', (o) => o.message ?? o.note ?? ''],
  ],
  'coordination.k8s.io/leases': [nameCol, ['Holder', 'string', (o) => o.spec?.holderIdentity ?? ''], ageCol],
  'apps/deployments': [
    nameCol,
    ['Ready', 'string', (o) => `${o.status?.readyReplicas ?? 0}/${o.spec?.replicas ?? 1}`],
    ['Up-to-date', 'integer', (o) => o.status?.updatedReplicas ?? 0],
    ['Available', 'integer', (o) => o.status?.availableReplicas ?? 0],
    ageCol,
  ],
  'apps/daemonsets': [
    nameCol,
    ['Desired', 'integer', (o) => o.status?.desiredNumberScheduled ?? 0],
    ['Current', 'integer', (o) => o.status?.currentNumberScheduled ?? 0],
    ['Ready', 'integer', (o) => o.status?.numberReady ?? 0],
    ['Up-to-date', 'integer', (o) => o.status?.updatedNumberScheduled ?? 0],
    ['Available', 'integer', (o) => o.status?.numberAvailable ?? 0],
    [
      'Node Selector',
      'string',
      (o) => {
        const s = o.spec?.template?.spec?.nodeSelector;
        return s
          ? Object.entries(s)
              .map(([k, v]) => `${k}=${v}`)
              .join(',')
          : '<none>';
      },
    ],
    ageCol,
  ],
  '/services': [
    nameCol,
    ['Type', 'string', (o) => o.spec?.type ?? 'ClusterIP'],
    ['Cluster-IP', 'string', (o) => o.spec?.clusterIP ?? '<none>'],
    ['External-IP', 'string', () => '<none>'],
    [
      'Port(s)',
      'string',
      (o) => (o.spec?.ports ?? []).map((p: Obj) => `${p.port}/${p.protocol ?? 'TCP'}`).join(',') || '<none>',
    ],
    ageCol,
  ],
  'apiextensions.k8s.io/customresourcedefinitions': [
    nameCol,
    ['Created At', 'date', (o) => o.metadata?.creationTimestamp ?? ''],
  ],
};

/** A small JSONPath subset: `.a.b`, `.a[0]`, `.a[*].b`, `.a[?(@.type=="Ready")].status`, optional `{}`. */
export function jsonPath(obj: unknown, expr: string): unknown[] {
  let e = expr.trim();
  if (e.startsWith('{') && e.endsWith('}')) e = e.slice(1, -1);
  if (e.startsWith('$')) e = e.slice(1);
  const tokens = e.match(/\.[^.[\]]+|\[[^\]]*\]/g) ?? [];
  let cur: unknown[] = [obj];
  for (const tok of tokens) {
    const next: unknown[] = [];
    for (const v of cur) {
      if (v == null) continue;
      if (tok.startsWith('.')) {
        const k = tok.slice(1);
        if (typeof v === 'object' && k in (v as object)) next.push((v as Obj)[k]);
        continue;
      }
      const inner = tok.slice(1, -1).trim();
      if (!Array.isArray(v)) {
        const key = inner.replace(/^['"]|['"]$/g, '');
        if (typeof v === 'object' && key in (v as object)) next.push((v as Obj)[key]);
        continue;
      }
      if (inner === '*') next.push(...v);
      else if (/^-?\d+$/.test(inner)) {
        const i = Number(inner);
        const x = v[i < 0 ? v.length + i : i];
        if (x !== undefined) next.push(x);
      } else {
        const m = /^\?\(@\.([\w.-]+)\s*(==|!=)\s*["']?([^"']*)["']?\)$/.exec(inner);
        if (m)
          for (const x of v) {
            const fv = m[1]!.split('.').reduce<any>((a, k) => a?.[k], x);
            if ((String(fv) === m[3]) === (m[2] === '==')) next.push(x);
          }
      }
    }
    cur = next;
  }
  return cur;
}

function crdDefs(t: ResourceType): Def[] | undefined {
  const v = (t.crd?.spec?.versions ?? []).find((x: Obj) => x.name === t.version);
  const cols: Obj[] | undefined = v?.additionalPrinterColumns;
  if (!cols) return undefined;
  const defs: Def[] = [nameCol];
  for (const c of cols) {
    defs.push([
      c.name,
      c.type === 'date' ? 'string' : c.type,
      (o, now) => {
        const vals = jsonPath(o, c.jsonPath);
        if (vals.length === 0 || vals[0] == null) return null;
        const x = vals[0];
        if (c.type === 'date')
          return typeof x === 'string' ? humanDuration(now.getTime() - Date.parse(x)) : null;
        if (typeof x === 'object') return JSON.stringify(x);
        return x as Cell;
      },
      c.priority ?? 0,
      c.format ?? '',
    ]);
  }
  return defs;
}

function defsFor(t: ResourceType): Def[] {
  return crdDefs(t) ?? BUILTIN[`${t.group}/${t.plural}`] ?? [nameCol, ageCol];
}

export function columnsFor(t: ResourceType): Column[] {
  return defsFor(t).map(([name, type, , priority = 0, format = '']) => ({
    name,
    type,
    format,
    description: name === 'Name' ? 'Name must be unique within a namespace.' : name,
    priority,
  }));
}

function partial(o: Obj): Obj {
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
}

export function tableRow(t: ResourceType, o: Obj, now: Date, includeObject: string): Obj {
  const cells = defsFor(t).map(([, , cell]) => {
    try {
      return cell(o, now);
    } catch {
      return null;
    }
  });
  const row: Obj = { cells };
  if (includeObject !== 'None') row.object = includeObject === 'Object' ? o : partial(o);
  return row;
}

export function toTable(
  t: ResourceType,
  items: Obj[],
  meta: Obj,
  now: Date,
  includeObject = 'Metadata',
  withColumns = true,
): Obj {
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: meta,
    columnDefinitions: withColumns ? columnsFor(t) : [],
    rows: items.map((o) => tableRow(t, o, now, includeObject)),
  };
}
