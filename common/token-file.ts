// A broker credential that rotates on disk: a projected ServiceAccount token (the kubelet rewrites it
// at 80 % of its TTL) or a client certificate (cert-manager renews it). It is re-read on every
// (re)connect and never cached in env or memory between attempts; a missing or empty file is logged
// and the connection is retried, never a crash. Used by the agent (daemon/decisions/mqtt.ts) and
// the operator (operator/bus.ts).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Logger } from './log.js';

/** What a token says about itself, for log lines only: never trusted (the broker verifies it). */
export interface TokenClaims {
  subject?: string;
  expiresAt?: string;
  issuedAt?: string;
  audiences?: string[];
  pod?: string;
  node?: string;
}

/** Decodes a JWT's payload WITHOUT verifying it; null when it is not a JWT. */
export function peekTokenClaims(token: string): TokenClaims | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const c = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Record<string, any>;
    if (!c || typeof c !== 'object') return null;
    const k8s = c['kubernetes.io'] as Record<string, any> | undefined;
    const out: TokenClaims = {};
    if (typeof c.sub === 'string') out.subject = c.sub;
    if (typeof c.exp === 'number') out.expiresAt = new Date(c.exp * 1000).toISOString();
    if (typeof c.iat === 'number') out.issuedAt = new Date(c.iat * 1000).toISOString();
    if (Array.isArray(c.aud)) out.audiences = c.aud.filter((a: unknown) => typeof a === 'string');
    else if (typeof c.aud === 'string') out.audiences = [c.aud];
    if (typeof k8s?.pod?.name === 'string') out.pod = k8s.pod.name;
    if (typeof k8s?.node?.name === 'string') out.node = k8s.node.name;
    return out;
  } catch {
    return null;
  }
}

export class TokenFile {
  private fingerprint = '';
  /** The last problem seen, so the token is logged again once the file is back. */
  private problem = '';
  /** Successful reads that found a different token than the previous one. */
  rotations = 0;
  /** Claims of the token the last read() returned (the one the latest connect sent); null if none. */
  lastClaims: TokenClaims | null = null;

  constructor(
    readonly path: string,
    private readonly log: Logger,
    private readonly what = 'MQTT token',
  ) {}

  /** The token now on disk, or undefined (logged) when the file is missing, unreadable or empty. */
  read(): string | undefined {
    let text = '';
    let problem = '';
    try {
      text = fs.readFileSync(this.path, 'utf8').trim();
      if (!text) problem = 'the file is empty';
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      problem = e.code === 'ENOENT' ? 'the file does not exist' : e.message;
    }
    if (problem) {
      // Every attempt is logged (reconnect backoff bounds the rate): the operator sees why it is offline.
      this.log.warn(`Cannot read the ${this.what} file; connecting without it and retrying`, {
        file: this.path,
        error: problem,
      });
      this.problem = problem;
      this.lastClaims = null;
      return undefined;
    }
    const fp = createHash('sha256').update(text).digest('hex').slice(0, 12);
    if (fp !== this.fingerprint || this.problem || !this.lastClaims) this.lastClaims = peekTokenClaims(text);
    if (fp !== this.fingerprint || this.problem) {
      const claims = this.lastClaims;
      if (this.fingerprint && fp !== this.fingerprint) this.rotations++;
      this.log.info(`Read the ${this.what} file`, {
        file: this.path,
        rotated: this.fingerprint !== '' && fp !== this.fingerprint,
        fingerprint: fp,
        ...(claims ?? {}),
      });
      this.fingerprint = fp;
      this.problem = '';
    }
    return text;
  }
}

/** Files that make up an mTLS client identity; each is re-read on every (re)connect. */
export interface TlsFiles {
  cert?: string;
  key?: string;
  ca?: string;
}

/** Reads the TLS files into client options; a file that cannot be read is logged and left out. */
export function readTlsFiles(files: TlsFiles, log: Logger): Pick<IClientOptions, 'cert' | 'key' | 'ca'> {
  const out: Pick<IClientOptions, 'cert' | 'key' | 'ca'> = {};
  for (const k of ['cert', 'key', 'ca'] as const) {
    const file = files[k];
    if (!file) continue;
    try {
      out[k] = fs.readFileSync(file);
    } catch (err) {
      log.warn('Cannot read an MQTT TLS file; connecting without it and retrying', {
        file,
        kind: k,
        error: (err as Error).message,
      });
    }
  }
  return out;
}

/**
 * Sets fresh credentials before every reconnect. mqtt.js 5 emits 'reconnect' synchronously right
 * before it builds the new stream (the TLS options) and the CONNECT packet (username/password) from
 * `client.options`, so values set here are the ones sent. The first connect takes them from the
 * options passed to mqtt.connect (call `refresh` for those too).
 */
export function refreshCredentialsOnReconnect(
  client: MqttClient,
  refresh: () => Pick<IClientOptions, 'password' | 'cert' | 'key' | 'ca'>,
): void {
  client.on('reconnect', () => {
    const fresh = refresh();
    for (const k of ['password', 'cert', 'key', 'ca'] as const)
      if (k in fresh) (client.options as Record<string, unknown>)[k] = fresh[k];
  });
}

/** How long before expiry a rotated token is taken: 10 % of the lifetime, between 2 s and 60 s. */
export function renewLeadMs(claims: TokenClaims): number {
  const exp = claims.expiresAt ? Date.parse(claims.expiresAt) : Number.NaN;
  const iat = claims.issuedAt ? Date.parse(claims.issuedAt) : Number.NaN;
  const lifetime = Number.isFinite(iat) ? exp - iat : 600_000;
  return Math.min(60_000, Math.max(2_000, lifetime * 0.1));
}

/**
 * Reconnects shortly before the token a connection was made with expires, once the file holds a
 * newer one (the kubelet rewrites it at 80 % of the lifetime): a clean DISCONNECT, so the broker
 * drops the Last Will and the peers never see the client go offline. Without a newer token it waits
 * and the broker ends the connection at expiry (the reconnect then re-reads the file).
 */
export function renewBeforeExpiry(
  client: MqttClient,
  tf: TokenFile,
  log: Logger,
  opts: { now?: () => number; onRenew?: () => void } = {},
): void {
  const now = opts.now ?? Date.now;
  let timer: NodeJS.Timeout | undefined;
  const clear = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
  const arm = () => {
    clear();
    const claims = tf.lastClaims;
    const exp = claims?.expiresAt ? Date.parse(claims.expiresAt) : Number.NaN;
    if (!claims || !Number.isFinite(exp)) return; // not a JWT: nothing to renew
    const check = () => {
      timer = undefined;
      if (!client.connected) return;
      let onDisk: TokenClaims | null = null;
      try {
        onDisk = peekTokenClaims(fs.readFileSync(tf.path, 'utf8').trim());
      } catch {
        // missing now: keep the connection until the broker ends it
      }
      const next = onDisk?.expiresAt ? Date.parse(onDisk.expiresAt) : Number.NaN;
      if (Number.isFinite(next) && next > exp) {
        log.info('Reconnecting with the rotated MQTT token before the current one expires', {
          file: tf.path,
          expiresAt: claims.expiresAt,
          nextExpiresAt: onDisk!.expiresAt,
        });
        opts.onRenew?.();
        client.reconnect();
        return;
      }
      if (now() < exp) {
        timer = setTimeout(check, 1000);
        timer.unref();
      }
    };
    timer = setTimeout(check, Math.max(0, exp - renewLeadMs(claims) - now()));
    timer.unref();
  };
  client.on('connect', arm);
  client.on('close', clear);
  client.on('end', clear);
  if (client.connected) arm();
}
