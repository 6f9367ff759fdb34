// Leader election on a coordination.k8s.io/v1 Lease, ported from client-go's leaderelection:
// get → create on 404 → if another holder's lease is still valid (measured from when WE observed
// its last change, not from its renewTime) back off → else update with resourceVersion (409 = lost
// the race). Renew every retryPeriod; if no renew succeeds within renewDeadline, leadership is lost.
// Times are MicroTime (six fractional digits) or the API server answers 400.
import { ApiException, type CoordinationV1Api, type V1Lease, V1MicroTime } from '@kubernetes/client-node';
import type { Logger } from '../../common/log.js';

export interface LeaderElectorOptions {
  api: Pick<CoordinationV1Api, 'readNamespacedLease' | 'createNamespacedLease' | 'replaceNamespacedLease'>;
  name: string;
  namespace: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log: Logger;
  now?: () => number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  onNewLeader?: (identity: string) => void;
}

function microTime(ms: number): V1MicroTime {
  return new V1MicroTime(ms);
}

export class LeaderElector {
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private observedRecord = '';
  private observedTime = 0;
  private lastRenew = 0;
  private currentLeader = '';
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private readonly now: () => number;

  constructor(private readonly o: LeaderElectorOptions) {
    this.leaseMs = o.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = o.renewDeadlineMs ?? 10_000;
    this.retryMs = o.retryPeriodMs ?? 2_000;
    this.now = o.now ?? Date.now;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  get leader(): string {
    return this.currentLeader;
  }

  /** Milliseconds since the last successful acquire/renew (for /healthz while leading). */
  get sinceRenewMs(): number {
    return this.now() - this.lastRenew;
  }

  start(): void {
    this.stopped = false;
    this.inflight = this.tick();
  }

  private inflight: Promise<void> = Promise.resolve();

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.inflight = this.tick();
    }, ms);
    this.timer.unref?.();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    let ok = false;
    try {
      ok = await this.tryAcquireOrRenew();
    } catch (err) {
      this.o.log.warn('Failed to acquire or renew the lease', {
        lease: `${this.o.namespace}/${this.o.name}`,
        error: (err as Error).message,
      });
    }
    if (this.stopped) return;
    if (ok) {
      this.lastRenew = this.now();
      if (!this.leading) {
        this.leading = true;
        this.o.log.info('Became leader', {
          lease: `${this.o.namespace}/${this.o.name}`,
          identity: this.o.identity,
        });
        this.o.onStartedLeading();
      }
    } else if (this.leading && this.now() - this.lastRenew > this.renewDeadlineMs) {
      this.leading = false;
      this.o.log.warn('Lost leadership', {
        lease: `${this.o.namespace}/${this.o.name}`,
        identity: this.o.identity,
      });
      this.o.onStoppedLeading();
    }
    this.schedule(this.retryMs);
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.now();
    let lease: V1Lease;
    try {
      lease = await this.o.api.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace });
    } catch (err) {
      if (!(err instanceof ApiException) || err.code !== 404) throw err;
      try {
        await this.o.api.createNamespacedLease({
          namespace: this.o.namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: this.o.name, namespace: this.o.namespace },
            spec: {
              holderIdentity: this.o.identity,
              leaseDurationSeconds: Math.ceil(this.leaseMs / 1000),
              acquireTime: microTime(now),
              renewTime: microTime(now),
              leaseTransitions: 0,
            },
          },
        });
      } catch (e) {
        if (e instanceof ApiException && e.code === 409) return false;
        throw e;
      }
      this.observe(this.o.identity, now);
      return true;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const record = JSON.stringify([holder, String(spec.renewTime ?? ''), spec.leaseTransitions ?? 0]);
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedTime = now;
    }
    this.observe(holder, now);
    const durationMs = (spec.leaseDurationSeconds ?? Math.ceil(this.leaseMs / 1000)) * 1000;
    if (holder && holder !== this.o.identity && this.observedTime + durationMs > now) return false;
    const mine = holder === this.o.identity;
    lease.spec = {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: Math.ceil(this.leaseMs / 1000),
      acquireTime:
        mine && spec.acquireTime ? microTime(new Date(spec.acquireTime).getTime()) : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: mine ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
    };
    try {
      const updated = await this.o.api.replaceNamespacedLease({
        name: this.o.name,
        namespace: this.o.namespace,
        body: lease,
      });
      this.observedRecord = JSON.stringify([
        this.o.identity,
        String(updated.spec?.renewTime ?? ''),
        updated.spec?.leaseTransitions ?? 0,
      ]);
      this.observedTime = now;
    } catch (e) {
      if (e instanceof ApiException && e.code === 409) return false;
      throw e;
    }
    this.observe(this.o.identity, now);
    return true;
  }

  private observe(holder: string, _now: number): void {
    if (holder !== this.currentLeader) {
      this.currentLeader = holder;
      if (holder) this.o.onNewLeader?.(holder);
    }
  }

  /** Stops; when leading, releases the lease so a standby takes over without waiting for expiry. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.inflight; // a renew in flight would otherwise race the release (409)
    if (!this.leading) return;
    this.leading = false;
    for (let attempt = 0; attempt < 3; attempt++) if (await this.release()) return;
  }

  private async release(): Promise<boolean> {
    try {
      const lease = await this.o.api.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace });
      if (lease.spec?.holderIdentity === this.o.identity) {
        const now = this.now();
        lease.spec = {
          ...lease.spec,
          holderIdentity: '',
          leaseDurationSeconds: 1,
          renewTime: microTime(now),
          acquireTime: microTime(now),
        };
        await this.o.api.replaceNamespacedLease({
          name: this.o.name,
          namespace: this.o.namespace,
          body: lease,
        });
        this.o.log.info('Released the lease', { lease: `${this.o.namespace}/${this.o.name}` });
      }
      return true;
    } catch (err) {
      this.o.log.warn('Failed to release the lease', { error: (err as Error).message });
      return !(err instanceof ApiException && err.code === 409);
    }
  }
}
