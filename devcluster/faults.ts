// Fault injection for tests: drop/stall watches, 410 Gone, failing a share of requests, latency.
import type { WatchConn } from './watch.js';

export interface FailureRule {
  /** 0..1 share of matching requests that fail. */
  share: number;
  code: 500 | 429 | 503 | 504;
  path?: RegExp;
  method?: string;
  /** stop after this many failures. */
  count?: number;
}

export class Faults {
  readonly watches = new Set<WatchConn>();
  private failures: FailureRule[] = [];
  private latency: { ms: number; path?: RegExp }[] = [];
  private goneNextWatches = 0;
  private goneAllWatches = false;
  /** how many requests the injected faults failed (tests assert the fault was exercised). */
  injected = 0;

  constructor(private readonly random: () => number = Math.random) {}

  /** Destroys every open watch connection (the client sees the stream break). Returns how many. */
  dropWatches(): number {
    const n = this.watches.size;
    for (const w of [...this.watches]) w.destroy();
    return n;
  }

  /** Cleanly ends every open watch (the client sees EOF and should re-watch from its resourceVersion). */
  closeWatches(): number {
    const n = this.watches.size;
    for (const w of [...this.watches]) w.end();
    return n;
  }

  /**
   * Stops delivering events to open watches (they buffer) until resumeWatches(); with `sticky`,
   * watches opened meanwhile are stalled too.
   */
  stallWatches(sticky = false): void {
    for (const w of this.watches) w.stall(true);
    this.stallNew = sticky;
  }

  resumeWatches(): void {
    this.stallNew = false;
    for (const w of this.watches) w.stall(false);
  }

  /** whether a watch opened now starts stalled. */
  stallNew = false;

  /** The next `n` watch requests get a 410 Gone ERROR event instead of events. */
  goneOnNextWatch(n = 1): void {
    this.goneNextWatches += n;
  }

  /** Every open watch gets 410 Gone now; with `sticky`, so does every later watch until reset(). */
  goneAllWatchesNow(sticky = false): number {
    const n = this.watches.size;
    for (const w of [...this.watches]) w.gone();
    this.goneAllWatches = sticky;
    return n;
  }

  /** `path` in rules and latency is matched against the request URL: path and query (`watch=true`). */
  failRequests(rule: FailureRule): void {
    this.failures.push({ ...rule });
  }

  addLatency(ms: number, path?: RegExp): void {
    this.latency.push({ ms, path });
  }

  reset(): void {
    this.failures = [];
    this.latency = [];
    this.goneNextWatches = 0;
    this.goneAllWatches = false;
    this.resumeWatches();
  }

  // ---- used by the server ----

  takeWatchGone(): boolean {
    if (this.goneAllWatches) return true;
    if (this.goneNextWatches > 0) {
      this.goneNextWatches--;
      return true;
    }
    return false;
  }

  delayFor(method: string, path: string): number {
    let ms = 0;
    for (const l of this.latency) if (!l.path || l.path.test(path)) ms += l.ms;
    void method;
    return ms;
  }

  failureFor(method: string, path: string): number | undefined {
    for (const f of this.failures) {
      if (f.count !== undefined && f.count <= 0) continue;
      if (f.path && !f.path.test(path)) continue;
      if (f.method && f.method.toUpperCase() !== method) continue;
      if (this.random() >= f.share) continue;
      if (f.count !== undefined) f.count--;
      this.injected++;
      return f.code;
    }
    return undefined;
  }
}
