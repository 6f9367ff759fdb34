// Our own reflector over @kubernetes/client-node 1.4.0 `Watch` (its ListWatch stops on any non-410
// error and sends neither allowWatchBookmarks nor timeoutSeconds): list, then watch from the list's
// resourceVersion with bookmarks and a jittered server timeout; relist on 410; exponential backoff
// on errors; periodic relist; relist when the watch has been silent for too long (half-open TCP).
// Two options for big clusters, as client-go has them: `transform` projects each object before it is
// cached (a slim pod instead of the whole object), and `watchList` gets the initial state as a
// watch stream (sendInitialEvents, KEP-3157) instead of one huge list response, falling back to list
// when the server does not support it.
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
  /** Projects every received object before it is cached and emitted (keep metadata.name/namespace/resourceVersion). */
  transform?: (obj: any) => T;
  /** Initial state (and relists) through a watch with sendInitialEvents=true instead of a list. */
  watchList?: boolean;
}

/** The annotation of the bookmark that ends the initial events of a watch-list. */
export const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';

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
  /** Set once the server showed it cannot do watch-list: plain lists from then on. */
  private watchListUnsupported = false;

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

  /** The server cannot do watch-list: drop this watch and list from now on. */
  private fallBackToList(why: string, alreadyDone = false): void {
    this.watchListUnsupported = true;
    this.o.log.info('Watch-list not supported, falling back to list', {
      resource: this.o.resource,
      reason: why,
    });
    if (!alreadyDone) {
      this.gen++;
      this.abort?.abort();
    }
    void this.relist();
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

  private project(raw: any): T {
    return this.o.transform ? this.o.transform(raw) : (raw as T);
  }

  /** Whether the watch-list path is in use (the option is on and the server has not refused it). */
  get usesWatchList(): boolean {
    return Boolean(this.o.watchList) && !this.watchListUnsupported;
  }

  private async relist(): Promise<void> {
    if (this.usesWatchList) {
      await this.startWatch(true);
      return;
    }
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
    const items = list.items ?? [];
    const fresh = new Map<string, T>();
    for (let i = 0; i < items.length; i++) {
      const obj = this.project(items[i]);
      items[i] = undefined as unknown as T; // let the raw object go as soon as it is projected
      fresh.set(keyOf(obj), obj);
    }
    this.replace(fresh, list.metadata?.resourceVersion);
    await this.startWatch();
  }

  /** A complete state (list or watch-list): emit the differences to the cache, then synced. */
  private replace(fresh: Map<string, T>, rv: string | undefined): void {
    for (const [k, obj] of fresh) {
      const old = this.cache.get(k);
      this.cache.set(k, obj);
      if (!old) this.emit('change', 'ADDED', obj, undefined);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion)
        this.emit('change', 'MODIFIED', obj, old);
    }
    for (const [k, old] of [...this.cache]) {
      if (fresh.has(k)) continue;
      this.cache.delete(k);
      this.emit('change', 'DELETED', old, old);
    }
    this.rv = rv;
    if (!this.synced) {
      this.synced = true;
      this.emit('synced');
    }
  }

  /**
   * Watches from this.rv; with `initial`, a watch-list: no resourceVersion, sendInitialEvents=true,
   * objects collected until the bookmark annotated k8s.io/initial-events-end, then diffed like a list.
   */
  private async startWatch(initial = false): Promise<void> {
    const gen = ++this.gen;
    const min = this.o.watchTimeoutSeconds ?? 300;
    const query: Record<string, string | number | boolean> = {
      allowWatchBookmarks: true,
      timeoutSeconds: Math.round(min + Math.random() * min),
      ...this.o.query,
    };
    if (initial) {
      query.sendInitialEvents = true;
      query.resourceVersionMatch = 'NotOlderThan';
    } else if (this.rv) query.resourceVersion = this.rv;
    const openedAt = Date.now();
    let gotEvent = false;
    let gone = false;
    let errorEvent: string | undefined;
    let errorCode: number | undefined;
    // Initial events of a watch-list (undefined once they ended, or for a plain watch).
    let fresh: Map<string, T> | undefined = initial ? new Map() : undefined;
    if (initial) this.o.onMetric?.('list');
    const onEvent = (type: string, obj: any) => {
      if (gen !== this.gen) return;
      this.lastActivity = Date.now();
      if (fresh && type !== 'ERROR') {
        gotEvent = true;
        if (type === 'BOOKMARK') {
          if (obj?.metadata?.annotations?.[INITIAL_EVENTS_END] === 'true') {
            const state = fresh;
            fresh = undefined;
            this.failures = 0;
            this.replace(state, obj?.metadata?.resourceVersion);
          } else {
            // A server without watch-list ignores sendInitialEvents and never sends the end marker.
            this.fallBackToList('a bookmark arrived before the initial-events-end marker');
          }
          return;
        }
        const o = this.project(obj);
        if (type === 'DELETED') fresh.delete(keyOf(o));
        else fresh.set(keyOf(o), o);
        return;
      }
      if (type === 'ERROR') {
        const code = obj?.code;
        this.o.log.info('Watch returned an error event', {
          resource: this.o.resource,
          code,
          message: obj?.message,
        });
        if (code === 410) gone = true;
        else {
          errorEvent = `watch error event ${code ?? ''} ${obj?.message ?? ''}`.trim();
          errorCode = typeof code === 'number' ? code : undefined;
        }
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
      const o = this.project(obj);
      const k = keyOf(o);
      const old = this.cache.get(k);
      if (type === 'DELETED') {
        this.cache.delete(k);
        this.emit('change', 'DELETED', o, old);
      } else if (type === 'ADDED' || type === 'MODIFIED') {
        this.cache.set(k, o);
        this.emit('change', old ? 'MODIFIED' : 'ADDED', o, old);
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
      const code = statusCodeOf(err) ?? errorCode;
      if (fresh && typeof code === 'number' && code >= 400 && code < 500 && code !== 429) {
        // Refused before any initial event (an API server without the WatchList feature): list instead.
        this.fallBackToList(`the watch-list request was refused (${code})`, true);
        return;
      }
      if (err && err.name !== 'AbortError') {
        const delay = this.backoff();
        this.o.onMetric?.('error', 'watch');
        this.o.log.warn('Watch failed, retrying', {
          resource: this.o.resource,
          code: statusCodeOf(err),
          error: err.message,
          retryInMs: delay,
        });
        // After repeated failures relist: the resourceVersion may be long gone. A watch-list that
        // broke before its initial events ended has no resourceVersion to resume from.
        this.later(() => void (fresh || this.failures > 3 ? this.relist() : this.startWatch()), delay);
        return;
      }
      // A clean close (server timeout). Reconnect at once unless it closed suspiciously fast.
      const quick = !gotEvent && Date.now() - openedAt < 1000;
      this.later(() => void (fresh ? this.relist() : this.startWatch()), quick ? this.backoff() : 0);
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
