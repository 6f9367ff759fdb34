// The ServiceAccount issuer's signing keys, found through OIDC discovery and kept fresh: refreshed
// every `refreshSec` and on a token with an unknown `kid` (at most once per `minIntervalSec`, so a
// flood of made-up kids cannot hammer the API). A key dropped from the JWKS stops being accepted at
// the next refresh; a failed refresh keeps the last good keys (the API being down must not lock
// every agent out) and is retried at the next chance.
import type { KeyObject } from 'node:crypto';
import type { Logger } from '../../common/log.js';
import { type Jwk, jwkToKey } from './jose.js';
import type { KubeAuthApi } from './kube-api.js';

export interface KeySet {
  issuer: string;
  keys: Map<string, KeyObject>;
  /** keys without a kid, tried in order */
  anonymous: KeyObject[];
  fetchedAt: number;
}

export interface JwksCacheOptions {
  api: Pick<KubeAuthApi, 'discovery' | 'jwks'>;
  refreshSec: number;
  minIntervalSec?: number;
  clock: () => number;
  log: Logger;
}

export class JwksCache {
  private current: KeySet | undefined;
  private inflight: Promise<KeySet> | undefined;
  private lastAttempt = Number.NEGATIVE_INFINITY;
  private lastError: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly minIntervalMs: number;

  constructor(private readonly o: JwksCacheOptions) {
    this.minIntervalMs = (o.minIntervalSec ?? Math.min(10, o.refreshSec)) * 1000;
  }

  /** Starts the periodic refresh; resolves after the first attempt (which may have failed). */
  async start(): Promise<void> {
    await this.refresh().catch(() => undefined);
    this.timer = setInterval(() => {
      this.refresh().catch(() => undefined);
    }, this.o.refreshSec * 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  get keySet(): KeySet | undefined {
    return this.current;
  }

  get error(): string | undefined {
    return this.lastError;
  }

  /** Keys, fetching them first if none were ever fetched (once per min interval). */
  async get(): Promise<KeySet | undefined> {
    if (this.current) {
      // Timer-independent staleness bound: a missed tick must not keep a dropped key alive.
      if (this.o.clock() - this.current.fetchedAt > this.o.refreshSec * 1000 * 2) {
        await this.refresh().catch(() => undefined);
      }
      return this.current;
    }
    if (this.inflight) return this.inflight.catch(() => undefined);
    if (this.o.clock() - this.lastAttempt < this.minIntervalMs) return undefined;
    return this.refresh().catch(() => undefined);
  }

  /** The key for `kid`, refreshing once (rate-limited) when the kid is unknown. */
  async keyFor(kid: string | undefined): Promise<{ keys: KeyObject[]; set: KeySet } | undefined> {
    let set = await this.get();
    if (!set) return undefined;
    const find = (s: KeySet) =>
      kid === undefined ? [...s.anonymous, ...s.keys.values()] : s.keys.has(kid) ? [s.keys.get(kid)!] : [];
    let keys = find(set);
    if (keys.length === 0 && kid !== undefined) {
      if (this.inflight || this.o.clock() - this.lastAttempt >= this.minIntervalMs) {
        set = (await this.refresh().catch(() => undefined)) ?? set;
        keys = find(set);
      }
    }
    return { keys, set };
  }

  /** One fetch at a time; concurrent callers share it. */
  refresh(): Promise<KeySet> {
    if (this.inflight) return this.inflight;
    this.lastAttempt = this.o.clock();
    this.inflight = (async () => {
      try {
        const disc = await this.o.api.discovery();
        const jwks = await this.o.api.jwks(disc.jwks_uri);
        const set = toKeySet(disc.issuer, jwks, this.o.clock());
        const before = this.current ? [...this.current.keys.keys()].sort().join(',') : undefined;
        const after = [...set.keys.keys()].sort().join(',');
        if (before !== after) {
          this.o.log.info('Loaded ServiceAccount issuer keys', {
            issuer: set.issuer,
            kids: [...set.keys.keys()],
          });
        }
        this.current = set;
        this.lastError = undefined;
        return set;
      } catch (err) {
        this.lastError = (err as Error).message;
        this.o.log.warn('ServiceAccount issuer keys not refreshed', { error: this.lastError });
        throw err;
      } finally {
        this.inflight = undefined;
      }
    })();
    return this.inflight;
  }
}

export function toKeySet(issuer: string, jwks: Jwk[], now: number): KeySet {
  const keys = new Map<string, KeyObject>();
  const anonymous: KeyObject[] = [];
  for (const jwk of jwks) {
    if (jwk.use !== undefined && jwk.use !== 'sig') continue;
    const key = jwkToKey(jwk);
    if (!key) continue;
    if (typeof jwk.kid === 'string') keys.set(jwk.kid, key);
    else anonymous.push(key);
  }
  return { issuer, keys, anonymous, fetchedAt: now };
}
