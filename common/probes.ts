// The tiny HTTP server every component exposes: /metrics (prom-client), /healthz, /readyz.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/** A check returns null when healthy, or a short reason when not. */
export type Check = () => string | null | Promise<string | null>;

export interface ProbeServerOptions {
  port: number;
  host?: string;
  registry?: Registry;
  healthz?: Check;
  readyz?: Check;
  /** Extra routes (e.g. the agent's /debug/state); return false to fall through to 404. */
  extra?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean | Promise<boolean>;
}

export interface ProbeServer {
  server: http.Server;
  port: number;
  close(): Promise<void>;
}

async function answer(res: http.ServerResponse, check: Check | undefined): Promise<void> {
  const reason = check ? await check() : null;
  res.writeHead(reason ? 503 : 200, { 'content-type': 'text/plain' });
  res.end(reason ? `not ok: ${reason}\n` : 'ok\n');
}

export async function startProbeServer(opts: ProbeServerOptions): Promise<ProbeServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const done = (async () => {
      if (path === '/healthz' || path === '/livez') return answer(res, opts.healthz);
      if (path === '/readyz') return answer(res, opts.readyz);
      if (path === '/metrics' && opts.registry) {
        const body = await opts.registry.metrics();
        res.writeHead(200, { 'content-type': opts.registry.contentType });
        res.end(body);
        return;
      }
      if (opts.extra && (await opts.extra(req, res))) return;
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    })();
    done.catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`error: ${(err as Error).message}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
