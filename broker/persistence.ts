// Where sessions, subscriptions, offline queues and retained messages live: an embedded LevelDB
// store under --data-dir by default, Redis (plus mqemitter-redis for replica clustering) with
// --redis-url, or memory when neither is set (in-process tests).
import { mkdirSync } from 'node:fs';
import type { Logger } from '../common/log.js';

export interface Store {
  persistence?: unknown;
  mq?: unknown;
  kind: 'memory' | 'level' | 'redis';
  close(): Promise<void>;
}

export async function openStore(opts: { dataDir?: string; redisUrl?: string; log: Logger }): Promise<Store> {
  if (opts.redisUrl) {
    const { default: redisPersistence } = await import('aedes-persistence-redis');
    const { default: mqemitterRedis } = await import('mqemitter-redis');
    const persistence = redisPersistence(redisOptions(opts.redisUrl)) as {
      destroy?: (cb?: () => void) => unknown;
    };
    const mq = mqemitterRedis({ connectionString: opts.redisUrl });
    opts.log.info('Using Redis persistence and cluster bus', { redisUrl: redactUrl(opts.redisUrl) });
    return {
      kind: 'redis',
      persistence,
      mq,
      close: async () => {
        // The callback wrapper of the plugin never calls back from destroy(); bound the wait.
        await Promise.race([
          Promise.resolve((persistence as { destroy?: () => unknown }).destroy?.()),
          new Promise((r) => setTimeout(r, 2000).unref()),
        ]).catch(() => undefined);
      },
    };
  }
  if (opts.dataDir) {
    const { ClassicLevel } = await import('classic-level');
    const { default: levelPersistence } = await import('aedes-persistence-level');
    mkdirSync(opts.dataDir, { recursive: true });
    const db = new ClassicLevel(opts.dataDir, { valueEncoding: 'buffer' });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: Error }).cause?.message ?? (err as Error).message;
      throw new Error(
        `cannot open the session store in ${opts.dataDir} (another broker using it?): ${cause}`,
      );
    }
    opts.log.info('Using embedded session store', { dataDir: opts.dataDir });
    return {
      kind: 'level',
      persistence: levelPersistence(db as never),
      close: async () => {
        await db.close().catch(() => undefined);
      },
    };
  }
  opts.log.warn('No --data-dir or --redis-url: sessions and retained messages are kept in memory only');
  return { kind: 'memory', close: async () => undefined };
}

/** ioredis options from a redis:// URL (the persistence plugin does not take a URL). */
export function redisOptions(url: string): Record<string, unknown> {
  const u = new URL(url);
  const o: Record<string, unknown> = { host: u.hostname || '127.0.0.1', port: Number(u.port || 6379) };
  if (u.username) o.username = decodeURIComponent(u.username);
  if (u.password) o.password = decodeURIComponent(u.password);
  const db = u.pathname.replace(/^\//, '');
  if (db) o.db = Number(db);
  if (u.protocol === 'rediss:') o.tls = {};
  return o;
}

function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}
