// Our own reflector over @kubernetes/client-node 1.4.0 `Watch` (its ListWatch stops on any non-410
// error and sends neither allowWatchBookmarks nor timeoutSeconds): list, then watch from the list's
// resourceVersion with bookmarks and a jittered server timeout; relist on 410; exponential backoff
// on errors; periodic relist; relist when the watch has been silent for too long (half-open TCP).
import { EventEmitter } from 'node:events';
import type { Watch } from '@kubernetes/client-node';
import type { Logger } from '../../common/log.js';

export interface KubeObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; uid?: string };
}

export interface ListResult<T> {
  items: T[];
  metadata?: { resourceVersion?: string };
}

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface ReflectorOptions<T extends KubeObject> {
  /** For logs and metrics, e.g. "pods". */
  resource: string;
  /** Watch path, e.g. /api/v1/pods. */
  path: string;
  list: () => Promise<ListResult<T>>;
  watch: Pick<Watch, 'watch'>;
  log: Logger;
  /** Extra query parameters (fieldSelector, labelSelector). */
  query?: Record<string, string>;
  /** Periodic full relist; 0 disables. */
  resyncMs?: number;
  /** Relist if nothing (not even a bookmark) arrived for this long; 0 disables. */
  staleMs?: number;
  /** Server-side watch timeout range, seconds (jittered between min and 2×min). */
  watchTimeoutSeconds?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  onMetric?: (what: 'list' | 'watch' | 'relist410' | 'error' | 'stale' | 'event', detail?: string) => void;
}

function keyOf(o: KubeObject): string {
  const m = o.metadata ?? {};
  return m.namespace ? `${m.namespace}/${m.name}` : (m.name ?? '');
}

function statusCodeOf(err: any): number | undefined {
  return err?.statusCode ?? err?.code ?? err?.response?.statusCode;
}

/**
 * Emits 'change' (type, obj, old) for every difference it learns about, whether from a watch event
 * or from a relist diff; 'synced' once after the first successful list.
 */
export class Reflector<T extends KubeObject> extends EventEmitter {
  readonly cache = new Map<string, T>();
  synced = false;
  private rv: string | undefined;
  private abort: AbortController | undefined;
  private gen = 0;
  private stopped = true;
  private failures = 0;
  private lastActivity = Date.now();
  private timers = new Set<NodeJS.Timeout>();
  private resyncTimer: NodeJS.Timeout | undefined;
  private staleTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: ReflectorOptions<T>) {
    super();
  }

  get resourceVersion(): string | undefined {
    return this.rv;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.relist();
    if (this.o.resyncMs)
      this.resyncTimer = setInterval(() => this.restart('periodic relist', true), this.o.resyncMs).unref();
    if (this.o.staleMs)
      this.staleTimer = setInterval(
        () => {
          if (Date.now() - this.lastActivity > this.o.staleMs!) {
            this.o.onMetric?.('stale');
            this.restart(
              `no watch activity for ${Math.round((Date.now() - this.lastActivity) / 1000)}s`,
              true,
            );
          }
        },
        Math.max(250, Math.min(this.o.staleMs / 4, 10_000)),
      ).unref();
  }

  stop(): void {
    this.stopped = true;
    this.gen++;
    this.abort?.abort();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    if (this.staleTimer) clearInterval(this.staleTimer);
  }

  /** Drops the current watch and relists (or rewatches). Used by resync timers and tests. */
  restart(why: string, relist: boolean): void {
    if (this.stopped) return;
    this.o.log.info('Restarting watch', { resource: this.o.resource, reason: why, relist });
    this.gen++;
    this.abort?.abort();
    if (relist) this.rv = undefined;
    void (relist ? this.relist() : this.startWatch());
  }

  private later(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) fn();
    }, ms);
    this.timers.add(t);
  }

  private backoff(): number {
    const base = this.o.backoffInitialMs ?? 200;
    const max = this.o.backoffMaxMs ?? 30_000;
    const d = Math.min(base * 2 ** Math.min(this.failures, 20), max);
    this.failures++;
    return Math.round(d * (0.8 + Math.random() * 0.4));
  }

  private async relist(): Promise<void> {
    const gen = ++this.gen;
    let list: ListResult<T>;
    try {
      list = await this.o.list();
    } catch (err) {
      if (gen !== this.gen || this.stopped) return;
      const delay = this.backoff();
      this.o.onMetric?.('error', 'list');
      const code = statusCodeOf(err);
      this.o.log.warn('List failed, retrying', {
        resource: this.o.resource,
        ...(code === 404 ? { hint: 'the API server does not serve this resource (CRD not installed?)' } : {}),
        ...(code === 403 ? { hint: 'forbidden: check the RBAC of the operator ServiceAccount' } : {}),
        code,
        error: (err as Error).message,
        retryInMs: delay,
      });
      this.later(() => void this.relist(), delay);
      return;
    }
    if (gen !== this.gen || this.stopped) return;
    this.o.onMetric?.('list');
    this.lastActivity = Date.now();
    const seen = new Set<string>();
    for (const raw of list.items ?? []) {
      const obj = raw as T;
      const k = keyOf(obj);
      seen.add(k);
      const old = this.cache.get(k);
      this.cache.set(k, obj);
      if (!old) this.emit('change', 'ADDED', obj, undefined);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion)
        this.emit('change', 'MODIFIED', obj, old);
    }
    for (const [k, old] of [...this.cache]) {
      if (seen.has(k)) continue;
      this.cache.delete(k);
      this.emit('change', 'DELETED', old, old);
    }
    this.rv = list.metadata?.resourceVersion;
    if (!this.synced) {
      this.synced = true;
      this.emit('synced');
    }
    await this.startWatch();
  }

  private async startWatch(): Promise<void> {
    const gen = ++this.gen;
    const min = this.o.watchTimeoutSeconds ?? 300;
    const query: Record<string, string | number | boolean> = {
      allowWatchBookmarks: true,
      timeoutSeconds: Math.round(min + Math.random() * min),
      ...this.o.query,
    };
    if (this.rv) query.resourceVersion = this.rv;
    const openedAt = Date.now();
    let gotEvent = false;
    let gone = false;
    let errorEvent: string | undefined;
    const onEvent = (type: string, obj: any) => {
      if (gen !== this.gen) return;
      this.lastActivity = Date.now();
      if (type === 'ERROR') {
        const code = obj?.code;
        this.o.log.info('Watch returned an error event', {
          resource: this.o.resource,
          code,
          message: obj?.message,
        });
        if (code === 410) gone = true;
        else errorEvent = `watch error event ${code ?? ''} ${obj?.message ?? ''}`.trim();
        this.abort?.abort();
        return;
      }
      gotEvent = true;
      this.failures = 0;
      const rv = obj?.metadata?.resourceVersion;
      if (type === 'BOOKMARK') {
        if (rv) this.rv = rv;
        return;
      }
      this.o.onMetric?.('event', type);
      const k = keyOf(obj);
      const old = this.cache.get(k);
      if (type === 'DELETED') {
        this.cache.delete(k);
        this.emit('change', 'DELETED', obj, old);
      } else if (type === 'ADDED' || type === 'MODIFIED') {
        this.cache.set(k, obj);
        this.emit('change', old ? 'MODIFIED' : 'ADDED', obj, old);
      }
      if (rv) this.rv = rv;
    };
    const onDone = (err: any) => {
      if (gen !== this.gen || this.stopped) return;
      this.gen++; // this watch is over; ignore anything else it says
      if (gone || statusCodeOf(err) === 410) {
        this.o.onMetric?.('relist410');
        this.o.log.info('Watch expired (410 Gone), relisting', { resource: this.o.resource });
        this.rv = undefined;
        void this.relist();
        return;
      }
      if (errorEvent && (!err || err.name === 'AbortError')) err = new Error(errorEvent);
      if (err && err.name !== 'AbortError') {
        const delay = this.backoff();
        this.o.onMetric?.('error', 'watch');
        this.o.log.warn('Watch failed, retrying', {
          resource: this.o.resource,
          code: statusCodeOf(err),
          error: err.message,
          retryInMs: delay,
        });
        // After repeated failures relist: the resourceVersion may be long gone.
        this.later(() => void (this.failures > 3 ? this.relist() : this.startWatch()), delay);
        return;
      }
      // A clean close (server timeout). Reconnect at once unless it closed suspiciously fast.
      const quick = !gotEvent && Date.now() - openedAt < 1000;
      this.later(() => void this.startWatch(), quick ? this.backoff() : 0);
    };
    this.o.onMetric?.('watch');
    try {
      const ctrl = await this.o.watch.watch(this.o.path, query, onEvent, onDone);
      if (gen === this.gen) this.abort = ctrl;
      else ctrl.abort();
    } catch (err) {
      onDone(err);
    }
  }
}
