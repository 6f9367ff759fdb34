// Where the kubelet puts pods and containers: cgroup v1/v2, systemd/cgroupfs driver, QoS class
// subtrees, and the container runtime's scope naming. Pure path logic plus existence checks.
import path from 'node:path';
import type { QosClass } from '../../protocol/index.js';
import type { CgroupFs } from './fs.js';

export type CgroupVersion = 1 | 2;
export type CgroupDriver = 'systemd' | 'cgroupfs';

export interface CgroupLayout {
  version: CgroupVersion;
  driver: CgroupDriver;
  /** The mount root given by --cgroup-root (e.g. /host/sys/fs/cgroup). */
  root: string;
  /** Directory of the cpu controller: <root>/cpu (or cpu,cpuacct) on v1, <root> on v2. */
  cpuRoot: string;
  /** v1 only: the cpuacct hierarchy when it is separate from cpu; null when usage lives in cpuRoot. */
  cpuacctRoot: string | null;
  /** kubepods directory relative to cpuRoot: kubepods, kubepods.slice or a custom prefix. */
  kubepodsDir: string;
}

export interface DetectOptions {
  root: string;
  /** '' or 'auto' = find kubepods.slice or kubepods. */
  kubepodsDir?: string;
  driver?: 'auto' | CgroupDriver;
}

export class LayoutError extends Error {}

export function detectLayout(fs: CgroupFs, opts: DetectOptions): CgroupLayout {
  const root = opts.root;
  if (!fs.exists(root)) throw new LayoutError(`cgroup root ${root} does not exist`);
  let version: CgroupVersion;
  let cpuRoot: string;
  let cpuacctRoot: string | null = null;
  if (fs.isCgroup2(root)) {
    version = 2;
    cpuRoot = root;
  } else {
    version = 1;
    const cpu = ['cpu', 'cpu,cpuacct', 'cpuacct,cpu']
      .map((d) => path.join(root, d))
      .find((d) => fs.exists(d));
    if (!cpu)
      throw new LayoutError(`no cgroup v1 cpu controller under ${root} (looked for cpu, cpu,cpuacct)`);
    cpuRoot = cpu;
    if (!fs.exists(path.join(cpuRoot, 'cpuacct.usage')) && fs.exists(path.join(root, 'cpuacct')))
      cpuacctRoot = path.join(root, 'cpuacct');
  }
  let kubepodsDir = opts.kubepodsDir && opts.kubepodsDir !== 'auto' ? opts.kubepodsDir : '';
  if (!kubepodsDir) {
    const found = ['kubepods.slice', 'kubepods'].find((d) => fs.exists(path.join(cpuRoot, d)));
    if (!found) throw new LayoutError(`no kubepods.slice or kubepods cgroup under ${cpuRoot}`);
    kubepodsDir = found;
  }
  kubepodsDir = kubepodsDir.replace(/^\/+|\/+$/g, '');
  if (kubepodsDir.split('/').includes('..'))
    throw new LayoutError(`kubepods dir ${kubepodsDir} escapes the root`);
  if (!fs.exists(path.join(cpuRoot, kubepodsDir)))
    throw new LayoutError(`kubepods cgroup ${path.join(cpuRoot, kubepodsDir)} does not exist`);
  let driver: CgroupDriver;
  if (opts.driver && opts.driver !== 'auto') driver = opts.driver;
  else driver = path.basename(kubepodsDir).endsWith('.slice') ? 'systemd' : 'cgroupfs';
  return { version, driver, root, cpuRoot, cpuacctRoot, kubepodsDir };
}

const UID_RE = /^[A-Za-z0-9][A-Za-z0-9-]{0,127}$/;
const CONTAINER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Relative pod cgroup dirs (under cpuRoot) for a QoS class, in the kubelet's naming. */
export function podDirFor(layout: CgroupLayout, qosClass: QosClass, uid: string): string {
  if (!UID_RE.test(uid)) throw new LayoutError(`pod uid ${JSON.stringify(uid)} is not a valid cgroup name`);
  const kp = layout.kubepodsDir;
  if (layout.driver === 'systemd') {
    const prefix = path.basename(kp).replace(/\.slice$/, '');
    const u = uid.replace(/-/g, '_');
    if (qosClass === 'Guaranteed') return `${kp}/${prefix}-pod${u}.slice`;
    const q = qosClass === 'Burstable' ? 'burstable' : 'besteffort';
    return `${kp}/${prefix}-${q}.slice/${prefix}-${q}-pod${u}.slice`;
  }
  if (qosClass === 'Guaranteed') return `${kp}/pod${uid}`;
  return `${kp}/${qosClass === 'Burstable' ? 'burstable' : 'besteffort'}/pod${uid}`;
}

const QOS_ORDER: QosClass[] = ['Burstable', 'Guaranteed', 'BestEffort'];

/** Absolute pod dir; tries the given QoS class first, then the others (the class may be computed differently). */
export function resolvePodDir(
  fs: CgroupFs,
  layout: CgroupLayout,
  qosClass: QosClass,
  uid: string,
): string | null {
  for (const q of [qosClass, ...QOS_ORDER.filter((x) => x !== qosClass)]) {
    const dir = path.join(layout.cpuRoot, podDirFor(layout, q, uid));
    if (fs.exists(dir)) return dir;
  }
  return null;
}

/** Splits `<runtime>://<id>`; null for an empty or malformed ID. */
export function parseContainerID(containerID: string): { runtime: string; id: string } | null {
  const m = /^([a-z0-9.-]+):\/\/(.+)$/.exec(containerID);
  const runtime = m ? m[1]! : '';
  const id = m ? m[2]! : containerID;
  if (!CONTAINER_ID_RE.test(id)) return null;
  return { runtime, id };
}

const SCOPE_PREFIX: Record<string, string> = {
  containerd: 'cri-containerd',
  'cri-o': 'crio',
  crio: 'crio',
  docker: 'docker',
  pouch: 'pouch',
};

/** Candidate container dir names inside the pod dir, the runtime's own naming first. */
export function containerDirNames(layout: CgroupLayout, containerID: string): string[] {
  const parsed = parseContainerID(containerID);
  if (!parsed) return [];
  const { runtime, id } = parsed;
  const scopes = [...new Set([SCOPE_PREFIX[runtime], ...Object.values(SCOPE_PREFIX)].filter(Boolean))].map(
    (p) => `${p}-${id}.scope`,
  );
  return layout.driver === 'systemd' ? [...scopes, id] : [id, ...scopes];
}

export function resolveContainerDir(
  fs: CgroupFs,
  layout: CgroupLayout,
  podDir: string,
  containerID: string,
): string | null {
  for (const name of containerDirNames(layout, containerID)) {
    const dir = path.join(podDir, name);
    if (fs.exists(dir)) return dir;
  }
  return null;
}

/** Where cpuacct.usage of a cpu cgroup dir lives on v1 (same dir, or the same path under cpuacct). */
export function cpuacctDir(layout: CgroupLayout, cpuDir: string): string {
  if (!layout.cpuacctRoot) return cpuDir;
  // Called for every container every round: plain string work for the usual case (a dir below cpuRoot).
  if (cpuDir.startsWith(`${layout.cpuRoot}/`))
    return layout.cpuacctRoot + cpuDir.slice(layout.cpuRoot.length);
  return path.join(layout.cpuacctRoot, path.relative(layout.cpuRoot, cpuDir));
}
