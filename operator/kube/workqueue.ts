// A per-key deduplicating work queue in the spirit of client-go's workqueue: a key is queued at most
// once, is processed by at most one worker at a time (a key added while in flight is re-run after),
// and a failing key is retried with per-item exponential backoff. Handlers are level-based: they get
// only the key and read current state.

export interface WorkQueueOptions {
  concurrency?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  onDepth?: (depth: number) => void;
  onRetry?: (key: string, attempt: number, delayMs: number, err: unknown) => void;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly idleWaiters: Array<() => void> = [];
  private active = 0;
  private stopped = false;
  private readonly concurrency: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(
    private readonly handler: (key: string) => Promise<void>,
    private readonly opts: WorkQueueOptions = {},
  ) {
    this.concurrency = opts.concurrency ?? 4;
    this.baseDelayMs = opts.baseDelayMs ?? 5;
    this.maxDelayMs = opts.maxDelayMs ?? 300_000;
  }

  get depth(): number {
    return this.queue.length;
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.opts.onDepth?.(this.queue.length);
    this.pump();
  }

  /** Adds the key after `ms` (a later call replaces an earlier pending one only if sooner). */
  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const t = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    t.unref?.();
    const prev = this.timers.get(key);
    if (prev) clearTimeout(prev);
    this.timers.set(key, t);
  }

  /**
   * Adds the key within `ms` unless it is already queued or waiting: a burst of triggers (thousands of
   * agent acks) costs one run per `ms`, not one per trigger, and is never postponed indefinitely.
   */
  addThrottled(key: string, ms: number): void {
    if (this.stopped || this.queued.has(key) || this.timers.has(key)) return;
    this.addAfter(key, ms);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Resolves when nothing is queued, in flight, or waiting to retry soon. For tests and shutdown. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private isIdle(): boolean {
    return this.queue.length === 0 && this.active === 0;
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.queue.length = 0;
    this.queued.clear();
    if (this.active > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  private pump(): void {
    while (!this.stopped && this.active < this.concurrency && this.queue.length > 0) {
      const key = this.queue.shift()!;
      this.queued.delete(key);
      this.processing.add(key);
      this.active++;
      this.opts.onDepth?.(this.queue.length);
      void this.run(key);
    }
  }

  private async run(key: string): Promise<void> {
    try {
      await this.handler(key);
      this.failures.delete(key);
    } catch (err) {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      const delay = Math.min(this.baseDelayMs * 2 ** (n - 1), this.maxDelayMs);
      this.opts.onRetry?.(key, n, delay, err);
      if (!this.dirty.has(key)) this.addAfter(key, delay);
    } finally {
      this.processing.delete(key);
      this.active--;
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
      if (this.isIdle()) for (const w of this.idleWaiters.splice(0)) w();
    }
  }
}
