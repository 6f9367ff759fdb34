// Watch streams: NDJSON `{type, object}` lines on a chunked HTTP response. Lines are coalesced per
// connection and flushed once per event-loop turn, so 1,000 watchers × bursts of writes stay cheap.
import type { ServerResponse } from 'node:http';
import type { ResourceType } from './resources.js';
import type { Obj, StoreEvent, Subscriber } from './store.js';
import { columnsFor, tableRow } from './table.js';

export interface WatchOptions {
  t: ResourceType;
  key: string;
  namespace?: string;
  filter?: (o: Obj) => boolean; // label+field selectors; undefined = everything
  table?: { includeObject: string };
  bookmarks: boolean;
  bookmarkIntervalMs: number;
  timeoutSeconds?: number;
  /** close the stream when more than this many bytes are waiting for the client (a stuck watcher). */
  maxBufferedBytes: number;
  now: () => Date;
  currentRv: () => number;
  /** storage → requested representation, for types that are views of another type's objects. */
  convert?: (o: Obj) => Obj;
}

const dirty = new Set<WatchConn>();
let flushScheduled = false;
/** Batches identical across watchers (same type, same event range, no selector) are concatenated once. */
let shared = new Map<string, Buffer>();

let lastFlush = 0;
let flushIntervalMs = 0;
export let flushCount = 0;

/** Minimum time between watch flushes: bigger batches (fewer writev calls) for a little latency. */
export function setWatchFlushInterval(ms: number): void {
  flushIntervalMs = ms;
}

function scheduleFlush(): void {
  if (flushScheduled) return;
  flushScheduled = true;
  const wait = lastFlush + flushIntervalMs - performance.now();
  if (wait > 0) setTimeout(flushAll, wait);
  else setImmediate(flushAll);
}

function flushAll(): void {
  flushScheduled = false;
  lastFlush = performance.now();
  flushCount++;
  for (const c of dirty) c.flush();
  dirty.clear();
  shared = new Map();
}

export class WatchConn implements Subscriber {
  readonly key: string;
  stalled = false;
  closed = false;
  private pending: Buffer[] = [];
  /** `key:firstRv:lastRv:count` while every pending line is a shared event line of an unfiltered watch. */
  private sig: { first: number; last: number; n: number } | undefined;
  private sigValid = true;
  private sentColumns = false;
  private timers: NodeJS.Timeout[] = [];
  onClose?: () => void;

  constructor(
    readonly res: ServerResponse,
    readonly opts: WatchOptions,
  ) {
    this.key = opts.key;
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Transfer-Encoding': 'chunked',
      'Cache-Control': 'no-cache, private',
    });
    res.flushHeaders();
    res.on('close', () => this.close());
    if (opts.bookmarks) this.timers.push(setInterval(() => this.bookmark(), opts.bookmarkIntervalMs).unref());
    if (opts.timeoutSeconds !== undefined && opts.timeoutSeconds > 0)
      this.timers.push(setTimeout(() => this.end(), opts.timeoutSeconds * 1000).unref());
  }

  private matches(o: Obj | undefined): boolean {
    if (!o) return false;
    if (this.opts.namespace && this.opts.t.namespaced && o.metadata?.namespace !== this.opts.namespace)
      return false;
    return this.opts.filter ? this.opts.filter(o) : true;
  }

  private encode(type: string, obj: Obj): string {
    if (!this.opts.table) return `${JSON.stringify({ type, object: obj })}\n`;
    const table: Obj = {
      kind: 'Table',
      apiVersion: 'meta.k8s.io/v1',
      metadata: { resourceVersion: obj.metadata?.resourceVersion },
      columnDefinitions: this.sentColumns ? [] : columnsFor(this.opts.t),
      rows: [tableRow(this.opts.t, obj, this.opts.now(), this.opts.table.includeObject)],
    };
    this.sentColumns = true;
    return `${JSON.stringify({ type, object: table })}\n`;
  }

  /** Store event → zero or one watch event, with selector transitions turned into ADDED/DELETED. */
  deliver(raw: StoreEvent): void {
    if (this.closed) return;
    const conv = this.opts.convert;
    // Converted events get their own object (never the shared serialised line).
    const ev: StoreEvent = conv
      ? { ...raw, obj: conv(raw.obj), old: raw.old && conv(raw.old), line: undefined }
      : raw;
    const now = this.matches(ev.obj);
    if (ev.type === 'DELETED') {
      if (now) this.emit(ev, 'DELETED', ev.obj);
      return;
    }
    if (ev.type === 'ADDED') {
      if (now) this.emit(ev, 'ADDED', ev.obj);
      return;
    }
    const before = this.matches(ev.old);
    if (now && before) this.emit(ev, 'MODIFIED', ev.obj);
    else if (now) this.emit(ev, 'ADDED', ev.obj);
    else if (before)
      this.emit(ev, 'DELETED', {
        ...ev.old,
        metadata: { ...ev.old!.metadata, resourceVersion: ev.obj.metadata.resourceVersion },
      });
  }

  private emit(ev: StoreEvent, type: string, obj: Obj): void {
    // The common case (plain JSON, same event type) shares one serialisation across all watchers.
    if (!this.opts.table && !this.opts.convert && type === ev.type && obj === ev.obj) {
      ev.line ??= Buffer.from(`${JSON.stringify({ type, object: obj })}\n`);
      if (this.sigValid && !this.opts.filter) {
        if (!this.sig) this.sig = { first: ev.rv, last: ev.rv, n: 1 };
        else {
          this.sig.last = ev.rv;
          this.sig.n++;
        }
      } else this.sigValid = false;
      this.write(ev.line);
    } else {
      this.sigValid = false;
      this.write(this.encode(type, obj));
    }
  }

  sendObject(type: string, obj: Obj): void {
    this.sigValid = false;
    this.write(
      type === 'ERROR' || type === 'BOOKMARK'
        ? `${JSON.stringify({ type, object: obj })}\n`
        : this.encode(type, obj),
    );
  }

  write(line: string | Buffer): void {
    if (this.closed) return;
    if (line.length > 0) this.pending.push(typeof line === 'string' ? Buffer.from(line) : line);
    if (this.stalled) return;
    dirty.add(this);
    scheduleFlush();
  }

  flush(): void {
    if (this.closed || this.stalled || this.pending.length === 0) return;
    let chunk: Buffer;
    if (this.pending.length === 1) chunk = this.pending[0]!;
    else if (this.sigValid && this.sig) {
      const k = `${this.key}:${this.sig.first}:${this.sig.last}:${this.sig.n}`;
      chunk = shared.get(k) ?? Buffer.concat(this.pending);
      shared.set(k, chunk);
    } else chunk = Buffer.concat(this.pending);
    this.pending = [];
    this.sig = undefined;
    this.sigValid = true;
    this.res.write(chunk);
    if (this.res.writableLength > this.opts.maxBufferedBytes) this.destroy();
  }

  stall(on: boolean): void {
    this.stalled = on;
    if (!on && this.pending.length) {
      dirty.add(this);
      this.write('');
    }
  }

  bookmark(extra: Obj = {}): void {
    const { t } = this.opts;
    this.sendObject('BOOKMARK', {
      kind: t.kind,
      apiVersion: t.group ? `${t.group}/${t.version}` : t.version,
      metadata: { resourceVersion: String(this.opts.currentRv()), ...extra },
    });
  }

  /** 410 Gone as the real server sends it on an open watch: an ERROR event, then the end. */
  gone(message = 'too old resource version'): void {
    this.sendObject('ERROR', {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message,
      reason: 'Expired',
      code: 410,
    });
    this.end();
  }

  /** Clean end of stream (flushes what is pending). */
  end(): void {
    if (this.closed) return;
    this.stalled = false;
    this.flush();
    this.closed = true;
    this.res.end();
    this.cleanup();
  }

  /** Abrupt drop: the socket is destroyed without a terminating chunk (client sees a premature close). */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.res.destroy();
    this.cleanup();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cleanup();
  }

  private cleanup(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    dirty.delete(this);
    this.onClose?.();
  }
}
