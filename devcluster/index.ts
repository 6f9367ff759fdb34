// startDevCluster(): the programmatic entry point tests and the demo use.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../common/log.js';
import { errors } from './errors.js';
import { Faults } from './faults.js';
import { kubeconfigYaml } from './kubeconfig.js';
import { createMetrics } from './metrics.js';
import { Registry, type ResourceType } from './resources.js';
import { createHandler } from './server.js';
import { type Obj, Store, type WriteOptions } from './store.js';
import { selfSignedCert } from './tls.js';
import { storeLookup } from './token-api.js';
import { type SigningAlg, type SigningKey, TokenIssuer } from './tokens.js';
import { admitCustomResource } from './validation.js';
import { WatchConn } from './watch.js';

export { ApiError } from './errors.js';
export { Faults } from './faults.js';
export type { Obj } from './store.js';
export {
  decodeJwt,
  generateSigningKey,
  type IssuedToken,
  type IssueOptions,
  jwkThumbprint,
  type SigningKey,
  signingKeyFromPem,
  type TokenClaims,
  TokenIssuer,
} from './tokens.js';

export interface DevClusterOptions {
  port?: number; // 0 (default) = random
  host?: string; // 127.0.0.1
  token?: string;
  tls?: boolean;
  /** write a kubeconfig for this server here. */
  kubeconfigPath?: string;
  /** load from this file at start (if it exists) and save to it on writes (debounced) and on close. */
  snapshotPath?: string;
  /** events retained for watches from a resourceVersion (older → 410 Gone). Default 1000. */
  watchWindow?: number;
  bookmarkIntervalMs?: number;
  /** a watch whose unsent output exceeds this is closed, like the real server drops slow watchers. */
  maxWatchBufferedBytes?: number;
  now?: () => Date;
  /** winston logger for problems (snapshot writes, broken watchers); silent when absent. */
  log?: Logger;
  /** after each response (for watches: when the stream opens): method, URL (path + query), status code. */
  onRequest?: (method: string, url: string, code: number, error?: string) => void;
  /** ServiceAccount token issuer URL (the `iss` claim; default: the server URL). */
  saIssuer?: string;
  /** PEM signing key: loaded if the file exists, else generated and written there (and on rotation). */
  saSigningKeyFile?: string;
  saSigningKey?: SigningKey;
  /** RS256 (default, as kube-apiserver) or ES256. */
  saSigningAlg?: SigningAlg;
  /** TokenRequest's smallest expirationSeconds (kube-apiserver enforces 600, the default). */
  saMinExpirationSeconds?: number;
  /** exp/nbf clock skew accepted when verifying (kube-apiserver: 60). */
  saLeewaySeconds?: number;
  /** create the `default` ServiceAccount in every namespace, as the ServiceAccount controller does (default true). */
  defaultServiceAccounts?: boolean;
}

/** Direct access to objects for tests: writes still bump resourceVersion and notify watchers. */
export class DevStore {
  constructor(
    readonly store: Store,
    readonly registry: Registry,
  ) {}

  private typeOf(apiVersion: string, kind: string): ResourceType {
    const t = this.registry.byKind(apiVersion, kind);
    if (!t) throw errors.notFound(kind, '', `${apiVersion}/${kind}`);
    return t;
  }

  get resourceVersion(): number {
    return this.store.rv;
  }

  get(apiVersion: string, kind: string, name: string, namespace?: string): Obj | undefined {
    const o = this.store.tryGet(this.typeOf(apiVersion, kind), namespace, name);
    return o ? structuredClone(o) : undefined;
  }

  list(apiVersion: string, kind: string, namespace?: string): Obj[] {
    return this.store.list(this.typeOf(apiVersion, kind), namespace).map((o) => structuredClone(o));
  }

  create(obj: Obj, opts?: WriteOptions): Obj {
    const t = this.typeOf(obj.apiVersion, obj.kind);
    return structuredClone(this.store.create(t, obj.metadata?.namespace, obj, opts));
  }

  /** PUT semantics; a stale metadata.resourceVersion → 409. Pass subresource 'status' to write status. */
  update(obj: Obj, opts?: WriteOptions): Obj {
    const t = this.typeOf(obj.apiVersion, obj.kind);
    return structuredClone(this.store.update(t, obj.metadata?.namespace, obj.metadata?.name, obj, opts));
  }

  /** Create, or update the live object (no resourceVersion check). */
  apply(obj: Obj): Obj {
    const t = this.typeOf(obj.apiVersion, obj.kind);
    const live = this.store.tryGet(t, obj.metadata?.namespace, obj.metadata?.name);
    if (!live) return this.create(obj);
    const next = {
      ...structuredClone(obj),
      metadata: { ...obj.metadata, resourceVersion: live.metadata.resourceVersion },
    };
    const out = this.store.update(t, obj.metadata?.namespace, obj.metadata.name, next);
    if (obj.status !== undefined && t.status)
      return structuredClone(
        this.store.update(
          t,
          obj.metadata?.namespace,
          obj.metadata.name,
          { ...structuredClone(out), status: obj.status },
          { subresource: 'status' },
        ),
      );
    return structuredClone(out);
  }

  delete(apiVersion: string, kind: string, name: string, namespace?: string): Obj {
    return structuredClone(this.store.delete(this.typeOf(apiVersion, kind), namespace, name));
  }

  /** Drops the retained watch history so every watch from an older resourceVersion gets 410. */
  compact(keep = 0): void {
    this.store.compact(keep);
  }
}

export interface DevCluster {
  url: string;
  port: number;
  kubeconfigPath?: string;
  /** kubeconfig YAML for this server (loadFromString / write to a file for kubectl). */
  kubeConfig(): string;
  store: DevStore;
  faults: Faults;
  caPem?: string;
  /** the ServiceAccount token issuer: issue(), rotate({keepPrevious}), verify(), jwks(), kids. */
  tokens: TokenIssuer;
  /** the `iss` of ServiceAccount tokens. */
  issuer: string;
  close(): Promise<void>;
}

export async function startDevCluster(opts: DevClusterOptions = {}): Promise<DevCluster> {
  const host = opts.host ?? '127.0.0.1';
  const now = opts.now ?? (() => new Date());
  const registry = new Registry();
  const store = new Store(registry, {
    watchWindow: opts.watchWindow,
    now,
    admit: (t, obj, old) => admitCustomResource(t, obj, old).causes,
  });
  if (opts.snapshotPath && existsSync(opts.snapshotPath)) {
    let snap: { resourceVersion: number; objects: Obj[] };
    try {
      snap = JSON.parse(readFileSync(opts.snapshotPath, 'utf8'));
      if (!Array.isArray(snap.objects)) throw new Error('no "objects" array');
    } catch (err) {
      throw new Error(
        `snapshot ${opts.snapshotPath} is not a devcluster snapshot: ${(err as Error).message}`,
      );
    }
    store.load(snap);
  }
  store.onSubscriberError = (sub, err) => {
    opts.log?.warn('Watch dropped after an error', { error: (err as Error).message });
    if (sub instanceof WatchConn) sub.destroy();
  };
  const faults = new Faults();
  let url = '';
  const metrics = createMetrics({
    watchers: () => faults.watches.size,
    resourceVersion: () => store.rv,
    injected: () => faults.injected,
  });
  const ctx: Parameters<typeof createHandler>[0] = {
    metrics,
    store,
    registry,
    faults,
    token: opts.token,
    now,
    bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 10_000,
    maxWatchBufferedBytes: opts.maxWatchBufferedBytes ?? 16 * 1024 * 1024,
    serverAddress: () => new URL(url).host,
    onRequest: opts.onRequest,
    minTokenExpirationSeconds: opts.saMinExpirationSeconds ?? 600,
    apiUrl: () => url,
  };
  const handler = createHandler(ctx);
  let caPem: string | undefined;
  let server: http.Server | https.Server;
  if (opts.tls) {
    const { key, cert } = selfSignedCert(host);
    caPem = cert;
    server = https.createServer({ key, cert }, handler);
  } else server = http.createServer(handler);
  server.keepAliveTimeout = 60_000;
  server.requestTimeout = 0; // watches are long-lived
  server.headersTimeout = 60_000;

  let snapshotTimer: NodeJS.Timeout | undefined;
  const saveSnapshot = () => {
    if (!opts.snapshotPath) return;
    try {
      const tmp = `${opts.snapshotPath}.tmp`;
      writeFileSync(tmp, JSON.stringify(store.dump()));
      renameSync(tmp, opts.snapshotPath);
    } catch (err) {
      // Objects stay served from memory; the next write retries the snapshot.
      opts.log?.error('Snapshot write failed', { path: opts.snapshotPath, error: (err as Error).message });
    }
  };
  if (opts.snapshotPath)
    store.onWrite = () => {
      snapshotTimer ??= setTimeout(() => {
        snapshotTimer = undefined;
        saveSnapshot();
      }, 200);
    };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  url = `${opts.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const kubeConfig = () => kubeconfigYaml({ server: url, token: opts.token, caPem });
  const tokens = new TokenIssuer({
    issuer: opts.saIssuer ?? url,
    alg: opts.saSigningAlg,
    key: opts.saSigningKey,
    keyFile: opts.saSigningKeyFile,
    leewaySeconds: opts.saLeewaySeconds,
    now,
    lookup: storeLookup(store, registry),
  });
  ctx.tokens = tokens;
  ctx.rotateKey = (keepPrevious) => {
    const r = tokens.rotate({ keepPrevious });
    opts.log?.info('Rotated ServiceAccount signing key', { kid: r.kid, kept: r.previous });
    return r;
  };
  if (opts.defaultServiceAccounts ?? true) ensureDefaultServiceAccounts(store, registry);
  if (opts.kubeconfigPath) writeFileSync(opts.kubeconfigPath, kubeConfig(), { mode: 0o600 });

  return {
    url,
    port,
    kubeconfigPath: opts.kubeconfigPath,
    kubeConfig,
    store: new DevStore(store, registry),
    faults,
    caPem,
    tokens,
    issuer: tokens.issuer,
    close: async () => {
      faults.closeWatches();
      if (snapshotTimer) clearTimeout(snapshotTimer);
      snapshotTimer = undefined;
      saveSnapshot();
      store.onWrite = undefined;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/**
 * The ServiceAccount controller's one job we copy: every namespace has a `default` ServiceAccount
 * (existing namespaces now, new ones as they are created).
 */
function ensureDefaultServiceAccounts(store: Store, registry: Registry): void {
  const nsType = registry.get('', 'v1', 'namespaces')!;
  const saType = registry.get('', 'v1', 'serviceaccounts')!;
  const ensure = (ns: Obj) => {
    const name = ns.metadata?.name;
    if (!name || ns.metadata.deletionTimestamp || store.tryGet(saType, name, 'default')) return;
    try {
      store.create(saType, name, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } });
    } catch {
      // the namespace went away meanwhile
    }
  };
  for (const ns of store.list(nsType)) ensure(ns);
  store.subscribe({
    key: store.watchKey(nsType),
    deliver: (ev) => {
      if (ev.type === 'ADDED') ensure(ev.obj);
    },
  });
}
