// The reference for P2's latency rows: Koordinator's design, where koordlet learns pods and the burst
// config from informers and its CPUBurst plugin applies them on a 1 s tick. This one watches the
// node's pods and the CpuBurstStrategies with client-node informers (makeInformer) and, every tick,
// writes each pod's cpuBurstOnly burst (annotation cpuburst.io/config > strategy podSelector) to
// its own copy of the fake cgroup tree, skipping values already written (as koordlet does).
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CoreV1Api, CustomObjectsApi, type KubeConfig, ListWatch, Watch } from '@kubernetes/client-node';
import type { FakeCgroupFs } from '../../test/support/fake-cgroupfs.js';

interface PodObj {
  metadata?: { uid?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: { containers?: { resources?: { limits?: Record<string, string> } }[] };
  status?: { containerStatuses?: { containerID?: string }[] };
}
interface StrategyObj {
  spec?: { cpuBurstPercent?: number; podSelector?: { matchLabels?: Record<string, string> } };
}

export class ReferenceApplier {
  private timer: NodeJS.Timeout | undefined;
  private readonly written = new Map<string, number>();
  /** Per pod uid: the last burst written and when (performance.now()), for the latency rows. */
  readonly lastWrite = new Map<string, { burst: number; at: number }>();
  private readonly podInformer: ListWatch<any>;
  private readonly strategyInformer: ListWatch<any>;
  writes = 0;
  ticks = 0;

  constructor(
    kc: KubeConfig,
    node: string,
    private readonly fake: FakeCgroupFs,
    private readonly tickMs = 1000,
  ) {
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const fieldSelector = `spec.nodeName=${node}`;
    // client-node's informer (makeInformer is this ListWatch without the field selector).
    this.podInformer = new ListWatch<any>(
      '/api/v1/pods',
      new Watch(kc),
      () => core.listPodForAllNamespaces({ fieldSelector }) as any,
      false,
      undefined,
      fieldSelector,
    );
    this.strategyInformer = new ListWatch<any>(
      '/apis/cpuburst.io/v1alpha1/cpuburststrategies',
      new Watch(kc),
      () =>
        custom.listClusterCustomObject({
          group: 'cpuburst.io',
          version: 'v1alpha1',
          plural: 'cpuburststrategies',
        }) as any,
      false,
    );
  }

  async start(): Promise<void> {
    await this.podInformer.start();
    await this.strategyInformer.start();
    this.timer = setInterval(() => this.tick(), this.tickMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.podInformer.stop();
    await this.strategyInformer.stop();
  }

  /** One koordlet-style round over every cached pod. */
  tick(): void {
    this.ticks++;
    const strategies = this.strategyInformer.list() as StrategyObj[];
    for (const pod of this.podInformer.list() as PodObj[]) {
      const pct = desiredPercent(pod, strategies);
      const uid = pod.metadata?.uid;
      if (pct === null || !uid) continue;
      const limit = cpuLimitMilli(pod.spec?.containers?.[0]?.resources?.limits?.cpu);
      const id = pod.status?.containerStatuses?.[0]?.containerID?.replace(/^[a-z0-9.-]+:\/\//, '');
      if (!limit || !id) continue;
      const burst = Math.floor((limit * 100 * pct) / 100); // quota (period 100 ms) × pct
      if (this.written.get(uid) === burst) continue;
      const podDir = this.fake.podDir('Burstable', uid);
      try {
        this.fake.write(path.join(podDir, id, 'cpu.max.burst'), String(burst));
        this.fake.write(path.join(podDir, 'cpu.max.burst'), String(burst));
        this.written.set(uid, burst);
        this.lastWrite.set(uid, { burst, at: performance.now() });
        this.writes++;
      } catch {
        /* the next tick retries */
      }
    }
  }
}

function desiredPercent(pod: PodObj, strategies: StrategyObj[]): number | null {
  const raw = pod.metadata?.annotations?.['cpuburst.io/config'];
  if (raw) {
    try {
      const v = JSON.parse(raw) as { cpuBurstPercent?: number };
      if (typeof v.cpuBurstPercent === 'number') return v.cpuBurstPercent;
    } catch {
      /* invalid: fall through */
    }
  }
  const labels = pod.metadata?.labels ?? {};
  for (const s of strategies) {
    const want = s.spec?.podSelector?.matchLabels ?? {};
    if (Object.entries(want).every(([k, v]) => labels[k] === v) && s.spec?.cpuBurstPercent !== undefined)
      return s.spec.cpuBurstPercent;
  }
  return null;
}

function cpuLimitMilli(q: string | undefined): number | null {
  if (!q) return null;
  return q.endsWith('m') ? Number(q.slice(0, -1)) : Number(q) * 1000;
}
