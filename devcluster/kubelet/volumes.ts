// Pod volumes of the mini-kubelet: emptyDir and projected serviceAccountToken volumes live under
// <podsDir>/<uid>/volumes/kubernetes.io~<type>/<name>, like the real kubelet's /var/lib/kubelet/pods.
// A projected token is a TokenRequest bound to the pod, written atomically (temp + rename) and
// requested again at 80 % of its lifetime, until the pod goes.
import fs from 'node:fs';
import path from 'node:path';
import type { V1Pod, V1Volume } from '@kubernetes/client-node';
import type { Logger } from '../../common/log.js';

export type TokenRequester = (
  namespace: string,
  serviceAccount: string,
  spec: { audiences?: string[]; expirationSeconds: number; pod: { name: string; uid: string } },
) => Promise<{ token: string; expirationTimestamp: Date }>;

export interface PodVolumes {
  /** volume name → host directory (the container sees it at its volumeMounts' mountPath). */
  dirs: Map<string, string>;
  /** resolves once every token file has been written once (or failed once). */
  ready: Promise<void>;
  /** stops the refresh timers and removes the pod's volume directories. */
  stop(): void;
}

/** Writes a file so readers see the old or the new content, never a partial one. */
export function writeFileAtomic(file: string, data: string, mode: number): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, data, { mode });
  fs.chmodSync(tmp, mode); // umask must not loosen or tighten the projected mode
  fs.renameSync(tmp, file);
}

/** When the kubelet requests a token again: at 80 % of its lifetime, or after 24 h. */
export function refreshDelayMs(issuedAt: Date, expiresAt: Date): number {
  const ttl = expiresAt.getTime() - issuedAt.getTime();
  return Math.max(0, Math.min(ttl * 0.8, 24 * 3600_000));
}

interface TokenSource {
  audience?: string;
  expirationSeconds: number;
  path: string;
}

function safeRel(p: string): boolean {
  return p !== '' && !path.isAbsolute(p) && !p.split('/').includes('..');
}

export function setUpPodVolumes(o: {
  pod: V1Pod;
  podsDir: string;
  requestToken?: TokenRequester;
  log: Logger;
  now?: () => Date;
  /** first retry delay after a failed TokenRequest (doubles up to 30 s). */
  retryMs?: number;
  /** a token request or write failed (for an Event). */
  onError?: (volume: string, message: string) => void;
}): PodVolumes {
  const pod = o.pod;
  const uid = pod.metadata!.uid!;
  const ns = pod.metadata!.namespace ?? 'default';
  const podName = pod.metadata!.name!;
  const sa = pod.spec?.serviceAccountName || 'default';
  const now = o.now ?? (() => new Date());
  const podDir = path.join(o.podsDir, uid);
  const dirs = new Map<string, string>();
  const timers = new Set<NodeJS.Timeout>();
  const pending: Promise<void>[] = [];
  let stopped = false;

  const project = (vol: V1Volume, dir: string) => {
    const mode = vol.projected?.defaultMode ?? 0o644;
    const sources: TokenSource[] = [];
    for (const src of vol.projected?.sources ?? []) {
      const t = src.serviceAccountToken;
      if (!t) {
        o.log.warn('Projected volume source not supported by the mini-kubelet; skipped', {
          pod: `${ns}/${podName}`,
          volume: vol.name,
          source: Object.keys(src).join(','),
        });
        continue;
      }
      if (!safeRel(t.path)) {
        o.onError?.(vol.name, `serviceAccountToken path "${t.path}" must be a relative path without ".."`);
        continue;
      }
      sources.push({ audience: t.audience, expirationSeconds: t.expirationSeconds ?? 3600, path: t.path });
    }
    for (const s of sources) {
      const file = path.join(dir, s.path);
      let retry = o.retryMs ?? 1000;
      const fetchAndWrite = async (): Promise<void> => {
        if (stopped) return;
        if (!o.requestToken) throw new Error('this kubelet has no TokenRequest client');
        const issuedAt = now();
        const r = await o.requestToken(ns, sa, {
          audiences: s.audience ? [s.audience] : undefined,
          expirationSeconds: s.expirationSeconds,
          pod: { name: podName, uid },
        });
        if (stopped) return;
        fs.mkdirSync(path.dirname(file), { recursive: true });
        writeFileAtomic(file, r.token, mode);
        retry = o.retryMs ?? 1000;
        const delay = refreshDelayMs(issuedAt, r.expirationTimestamp);
        o.log.info('Wrote ServiceAccount token', {
          pod: `${ns}/${podName}`,
          volume: vol.name,
          path: s.path,
          expiresAt: r.expirationTimestamp.toISOString(),
          refreshInSeconds: Math.round(delay / 1000),
        });
        schedule(delay);
      };
      const run = (): Promise<void> =>
        fetchAndWrite().catch((err: unknown) => {
          if (stopped) return;
          const message = (err as Error).message;
          o.log.warn('ServiceAccount token request failed; retrying', {
            pod: `${ns}/${podName}`,
            volume: vol.name,
            error: message,
            retryInSeconds: retry / 1000,
          });
          o.onError?.(vol.name, message);
          schedule(retry);
          retry = Math.min(retry * 2, 30_000);
        });
      const schedule = (ms: number) => {
        if (stopped) return;
        const t = setTimeout(() => {
          timers.delete(t);
          void run();
        }, ms);
        t.unref();
        timers.add(t);
      };
      pending.push(run());
    }
  };

  for (const vol of pod.spec?.volumes ?? []) {
    const type = vol.projected ? 'projected' : vol.emptyDir ? 'empty-dir' : undefined;
    if (!type) {
      if (!vol.hostPath)
        o.log.warn('Volume type not supported by the mini-kubelet; skipped', {
          pod: `${ns}/${podName}`,
          volume: vol.name,
        });
      else dirs.set(vol.name, vol.hostPath.path);
      continue;
    }
    const dir = path.join(podDir, 'volumes', `kubernetes.io~${type}`, vol.name);
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    dirs.set(vol.name, dir);
    if (vol.projected) project(vol, dir);
  }

  return {
    dirs,
    ready: Promise.all(pending).then(() => {}),
    stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      fs.rmSync(podDir, { recursive: true, force: true });
    },
  };
}
