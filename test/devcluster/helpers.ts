// Shared helpers for the devcluster tests: raw HTTP calls, NDJSON watch readers, kubectl.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import YAML from 'yaml';
import { REPO_ROOT } from '../support/cli.js';

export const FIXTURES = path.join(REPO_ROOT, 'test/devcluster/fixtures');

export function loadYaml(file: string): any {
  return YAML.parse(readFileSync(file, 'utf8'));
}

export interface Resp {
  status: number;
  body: any;
  headers: http.IncomingHttpHeaders;
}

export function request(
  base: string,
  method: string,
  p: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Resp> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const req = http.request(
      `${base}${p}`,
      {
        method,
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/json',
          ...(data ? { 'Content-Length': Buffer.byteLength(data) } : {}),
          ...headers,
        },
      },
      (res) => {
        let s = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          s += c;
        });
        res.on('end', () => {
          let parsed: any = s;
          try {
            parsed = s ? JSON.parse(s) : undefined;
          } catch {
            /* keep text */
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

/** Opens a watch and collects its NDJSON events; `ended` resolves when the server ends the stream. */
export function openWatch(base: string, p: string, headers: Record<string, string> = {}) {
  const events: any[] = [];
  let status = 0;
  let resolveEnded!: () => void;
  const ended = new Promise<void>((r) => {
    resolveEnded = r;
  });
  let buf = '';
  const req = http.get(`${base}${p}`, { headers }, (res) => {
    status = res.statusCode ?? 0;
    res.setEncoding('utf8');
    res.on('data', (c: string) => {
      buf += c;
      let i = buf.indexOf('\n');
      while (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) events.push(JSON.parse(line));
        i = buf.indexOf('\n');
      }
    });
    res.on('end', resolveEnded);
    res.on('error', resolveEnded);
    res.on('close', resolveEnded);
  });
  req.on('error', resolveEnded);
  return {
    events,
    get status() {
      return status;
    },
    ended,
    close: () => req.destroy(),
  };
}

export async function waitFor<T>(
  fn: () => T | undefined | false,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `<repo>/.tools/kubectl`, or a clear error telling how to get it. */
export function kubectlPath(): string {
  const p = path.join(REPO_ROOT, '.tools/kubectl');
  if (!existsSync(p))
    throw new Error(`kubectl not found at ${p}: run \`make tools\` to fetch the official v1.32.3 binary`);
  return p;
}

export function kubectl(
  kubeconfig: string,
  home: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      kubectlPath(),
      [`--kubeconfig=${kubeconfig}`, `--cache-dir=${path.join(home, 'cache')}`, ...args],
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as any).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}
