// Rate limits, flapping detection and the ban list; time comes from an injected clock.
export type Clock = () => number; // milliseconds

/** Token bucket: `rate` tokens per second, bursts up to `burst`. rate <= 0 means unlimited. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly clock: Clock,
  ) {
    this.tokens = burst;
    this.last = clock();
  }
  take(n = 1): boolean {
    if (this.rate <= 0) return true;
    const now = this.clock();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }
}

export type BanKind = 'clientid' | 'username' | 'ip';
export interface Ban {
  as: BanKind;
  who: string;
  reason: string;
  at: number; // ms
  until: number | null; // ms, null = forever
}

export class BanList {
  private readonly bans = new Map<string, Ban>();
  constructor(private readonly clock: Clock) {}
  private key(as: BanKind, who: string): string {
    return `${as}\u0000${who}`;
  }
  add(as: BanKind, who: string, reason: string, seconds: number | null): Ban {
    const at = this.clock();
    const ban: Ban = { as, who, reason, at, until: seconds === null ? null : at + seconds * 1000 };
    this.bans.set(this.key(as, who), ban);
    return ban;
  }
  remove(as: BanKind, who: string): boolean {
    return this.bans.delete(this.key(as, who));
  }
  list(): Ban[] {
    this.prune();
    return [...this.bans.values()];
  }
  private prune(): void {
    const now = this.clock();
    for (const [k, b] of this.bans) if (b.until !== null && b.until <= now) this.bans.delete(k);
  }
  /** The ban that applies to this client, if any. */
  find(c: { clientId?: string; username?: string | null; ip?: string | null }): Ban | undefined {
    this.prune();
    const ip = c.ip?.startsWith('::ffff:') ? c.ip.slice(7) : c.ip;
    return (
      (c.clientId !== undefined ? this.bans.get(this.key('clientid', c.clientId)) : undefined) ??
      (c.username ? this.bans.get(this.key('username', c.username)) : undefined) ??
      (ip ? this.bans.get(this.key('ip', ip)) : undefined)
    );
  }
}

/** N disconnects of one client id within `windowSec` → banned for `banSec` (EMQX's flapping detect). */
export class FlappingDetector {
  private readonly seen = new Map<string, number[]>();
  constructor(
    private readonly opts: { maxCount: number; windowSec: number; banSec: number },
    private readonly clock: Clock,
  ) {}
  /** Records a disconnect; true when this one makes the client a flapper. */
  disconnected(clientId: string): boolean {
    if (this.opts.maxCount <= 0) return false;
    const now = this.clock();
    const since = now - this.opts.windowSec * 1000;
    const list = (this.seen.get(clientId) ?? []).filter((t) => t > since);
    list.push(now);
    if (list.length >= this.opts.maxCount) {
      this.seen.delete(clientId);
      return true;
    }
    this.seen.set(clientId, list);
    if (this.seen.size > 100_000) this.seen.clear(); // bound memory under client-id cycling
    return false;
  }
  get banSeconds(): number {
    return this.opts.banSec;
  }
}
