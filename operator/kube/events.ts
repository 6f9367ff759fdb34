// Event recorder with dedupe and a rate limit: client-node has none, and a pod with a bad annotation
// is re-planned on every change, so without this it would get an Event per reconcile.
import type { Logger } from '../../common/log.js';
import type { EventInput } from './client.js';

export interface RecorderOptions {
  send: (e: EventInput) => Promise<void>;
  log: Logger;
  /** The same (object, reason, message) is recorded at most once per this window. */
  dedupeMs?: number;
  /** At most this many Events per minute overall; the rest are dropped (and counted). */
  perMinute?: number;
  now?: () => number;
  onResult?: (result: 'sent' | 'deduped' | 'dropped' | 'error') => void;
}

export class EventRecorder {
  private readonly seen = new Map<string, number>();
  private windowStart = 0;
  private inWindow = 0;

  constructor(private readonly o: RecorderOptions) {}

  record(e: EventInput): void {
    const now = (this.o.now ?? Date.now)();
    const key = `${e.target.kind}/${e.target.namespace ?? ''}/${e.target.name}/${e.target.uid ?? ''}|${e.reason}|${e.message}`;
    const last = this.seen.get(key);
    if (last !== undefined && now - last < (this.o.dedupeMs ?? 600_000)) {
      this.o.onResult?.('deduped');
      return;
    }
    if (now - this.windowStart >= 60_000) {
      this.windowStart = now;
      this.inWindow = 0;
    }
    if (this.inWindow >= (this.o.perMinute ?? 120)) {
      this.o.onResult?.('dropped');
      return;
    }
    this.inWindow++;
    this.seen.set(key, now);
    if (this.seen.size > 10_000) for (const k of [...this.seen.keys()].slice(0, 5_000)) this.seen.delete(k);
    this.o.send(e).then(
      () => this.o.onResult?.('sent'),
      (err: unknown) => {
        this.seen.delete(key); // let a later attempt through
        this.o.onResult?.('error');
        this.o.log.warn('Failed to record Event', {
          reason: e.reason,
          name: e.target.name,
          error: (err as Error).message,
        });
      },
    );
  }
}
