// Pure kubelet arithmetic: CPU quantities, QoS class, and the CFS values the real kubelet writes
// (pkg/kubelet/cm/helpers_linux.go: MilliCPUToQuota, MilliCPUToShares, ResourceConfigForPod).

export type QosClass = 'Guaranteed' | 'Burstable' | 'BestEffort';

/** The kernel refuses quotas below 1 ms; the kubelet floors at the same value. */
export const MIN_QUOTA_US = 1000;
export const DEFAULT_PERIOD_US = 100000;
const MIN_SHARES = 2;

export interface ResourceList {
  cpu?: string | number;
  memory?: string | number;
  [name: string]: string | number | undefined;
}

export interface ContainerResources {
  requests?: ResourceList;
  limits?: ResourceList;
}

/** CPU quantity ("500m", "1", "0.25", 2) → millicores; throws on anything else. */
export function parseCpuMilli(q: string | number): number {
  if (typeof q === 'number') {
    if (!Number.isFinite(q) || q < 0) throw new Error(`invalid CPU quantity ${q}`);
    return Math.ceil(q * 1000);
  }
  const s = q.trim();
  let m = /^(\d+)m$/.exec(s);
  if (m) return Number.parseInt(m[1]!, 10);
  m = /^(\d+(?:\.\d+)?|\.\d+)$/.exec(s);
  if (m) return Math.ceil(Number.parseFloat(m[1]!) * 1000);
  throw new Error(`invalid CPU quantity ${JSON.stringify(q)}`);
}

function hasQuantity(list: ResourceList | undefined, name: string): boolean {
  const v = list?.[name];
  return v !== undefined && v !== '' && v !== '0' && v !== 0;
}

/** Kubernetes QoS class (pkg/apis/core/helper/qos): cpu and memory of all (init) containers. */
export function qosClassOf(containers: ContainerResources[]): QosClass {
  let anySet = false;
  let guaranteed = containers.length > 0;
  for (const c of containers) {
    for (const r of ['cpu', 'memory']) {
      const req = c.requests?.[r] ?? c.limits?.[r];
      const lim = c.limits?.[r];
      if (hasQuantity(c.requests, r) || hasQuantity(c.limits, r)) anySet = true;
      if (!hasQuantity(c.limits, r) || String(req) !== String(lim)) guaranteed = false;
    }
  }
  if (!anySet) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

/** Container quota in µs, or -1 (unlimited) when there is no CPU limit. */
export function containerQuotaUs(limitMilli: number | undefined, periodUs = DEFAULT_PERIOD_US): number {
  if (!limitMilli || limitMilli <= 0) return -1;
  return Math.max(MIN_QUOTA_US, Math.floor((limitMilli * periodUs) / 1000));
}

/** Pod quota: the sum of the limits when every container declares one, else unlimited. */
export function podQuotaUs(limitsMilli: Array<number | undefined>, periodUs = DEFAULT_PERIOD_US): number {
  if (limitsMilli.length === 0 || limitsMilli.some((l) => !l || l <= 0)) return -1;
  const sum = limitsMilli.reduce<number>((a, b) => a + (b ?? 0), 0);
  return containerQuotaUs(sum, periodUs);
}

/** cpu.shares from the CPU request (BestEffort gets the minimum). */
export function sharesFor(requestMilli: number | undefined): number {
  if (!requestMilli || requestMilli <= 0) return MIN_SHARES;
  return Math.max(MIN_SHARES, Math.floor((requestMilli * 1024) / 1000));
}

/** Relative pod cgroup dir under the kubepods root for the cgroupfs driver. */
export function podCgroupDir(qos: QosClass, uid: string): string {
  if (qos === 'Guaranteed') return `pod${uid}`;
  return `${qos === 'BestEffort' ? 'besteffort' : 'burstable'}/pod${uid}`;
}

export function cpuLimitMilli(c: ContainerResources): number | undefined {
  const l = c.limits?.cpu;
  return l === undefined ? undefined : parseCpuMilli(l);
}

export function cpuRequestMilli(c: ContainerResources): number | undefined {
  const r = c.requests?.cpu ?? c.limits?.cpu;
  return r === undefined ? undefined : parseCpuMilli(r);
}
