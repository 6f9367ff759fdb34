// The HTTP API (EMQX v5 paths) next to /metrics, /healthz and /readyz. Every /api/ call needs the
// API key (Bearer, X-API-Key or the password of basic auth); errors are JSON {code, message}.

import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Client } from 'aedes';
import type { Logger } from '../common/log.js';
import { startProbeServer } from '../common/probes.js';
import type { BrokerConfig } from './config.js';
import { controlPublish } from './control-acl.js';
import type { BanKind } from './limits.js';
import type { RunningBroker } from './server.js';

const MAX_BODY = 1024 * 1024;

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status);
    res.end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function keyMatches(given: string, want: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(want);
  return a.length === b.length && timingSafeEqual(a, b);
}

function authorized(req: IncomingMessage, apiKey: string): boolean {
  const h = req.headers.authorization ?? '';
  if (h.startsWith('Bearer ')) return keyMatches(h.slice(7).trim(), apiKey);
  if (h.startsWith('Basic ')) {
    const [user, ...pw] = Buffer.from(h.slice(6), 'base64').toString('utf8').split(':');
    return keyMatches(pw.join(':'), apiKey) || keyMatches(user ?? '', apiKey);
  }
  const x = req.headers['x-api-key'];
  return typeof x === 'string' && keyMatches(x, apiKey);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new ApiError(413, 'PAYLOAD_TOO_LARGE', 'request body over 1 MiB');
    chunks.push(c as Buffer);
  }
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new ApiError(400, 'BAD_REQUEST', `body must be a JSON object: ${(err as Error).message}`);
  }
}

export async function startHttpApi(opts: {
  cfg: BrokerConfig;
  apiKey?: string;
  running: RunningBroker;
  log: Logger;
}) {
  const { running, log, apiKey } = opts;
  const aedes = running.aedes;
  const byId = () => (aedes as unknown as { clients: Record<string, Client> }).clients;

  function describe(client: Client) {
    const info = running.clients.get(client);
    return {
      clientid: client.id,
      username: info?.username ?? null,
      ip_address: info?.ip ?? null,
      proto_ver: client.version,
      clean_start: client.clean,
      connected: client.connected,
      connected_at: info ? new Date(info.connectedAt).toISOString() : null,
      authenticated_by: info?.by ?? null,
      // what the broker authorizes the client as (from the token/certificate, not the username)
      identity: info?.identity ?? null,
      credential_expires_at: info?.expiresAt !== undefined ? new Date(info.expiresAt).toISOString() : null,
    };
  }

  async function route(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (!apiKey) throw new ApiError(403, 'API_DISABLED', 'no API key configured (--api-key-file or API_KEY)');
    if (!authorized(req, apiKey)) throw new ApiError(401, 'BAD_API_KEY', 'missing or wrong API key');
    const method = req.method ?? 'GET';
    const parts = path.split('/').filter(Boolean).slice(2).map(decodeURIComponent); // after api/v5
    const [what, id, id2] = parts;
    if (what === 'publish' && method === 'POST' && !id) {
      const b = await readJson(req);
      if (typeof b.topic !== 'string' || !b.topic || /[+#]/.test(b.topic)) {
        throw new ApiError(400, 'BAD_REQUEST', 'topic must be a topic name without wildcards');
      }
      const qos = b.qos ?? 0;
      if (qos !== 0 && qos !== 1 && qos !== 2)
        throw new ApiError(400, 'BAD_REQUEST', 'qos must be 0, 1 or 2');
      if (typeof b.payload !== 'string') throw new ApiError(400, 'BAD_REQUEST', 'payload must be a string');
      if (controlPublish(null, b.topic) === 'deny' || b.topic.startsWith('$')) {
        throw new ApiError(
          403,
          'NOT_AUTHORIZED',
          'the control plane and $ topics are not writable through the API',
        );
      }
      const payload = Buffer.from(b.payload, b.payload_encoding === 'base64' ? 'base64' : 'utf8');
      if (payload.length > opts.cfg.maxPayloadBytes)
        throw new ApiError(413, 'PAYLOAD_TOO_LARGE', 'payload over --max-payload-bytes');
      await new Promise<void>((resolve, reject) =>
        aedes.publish(
          { cmd: 'publish', topic: b.topic as string, payload, qos, retain: b.retain === true, dup: false },
          (err) => (err ? reject(err) : resolve()),
        ),
      );
      return send(res, 200, { topic: b.topic });
    }
    if (what === 'clients') {
      if (!id && method === 'GET') {
        const data = Object.values(byId()).map(describe);
        return send(res, 200, { data, meta: { count: data.length } });
      }
      const client = id ? byId()[id] : undefined;
      if (id && !client) throw new ApiError(404, 'CLIENTID_NOT_FOUND', `no connected client ${id}`);
      if (client && method === 'GET') return send(res, 200, describe(client));
      if (client && method === 'DELETE') {
        log.info('Kicked client through the API', { clientId: id });
        client.close();
        return send(res, 204);
      }
    }
    if (what === 'subscriptions' && method === 'GET' && !id) {
      const data: Array<{ clientid: string; topic: string; qos: number }> = [];
      for (const client of Object.values(byId())) {
        const subs =
          (client as unknown as { subscriptions: Record<string, { qos: number }> }).subscriptions ?? {};
        for (const [topic, s] of Object.entries(subs)) {
          const group = running.shared.isShared(client.id, topic);
          data.push({ clientid: client.id, topic: group ? `$share/${group}/${topic}` : topic, qos: s.qos });
        }
      }
      return send(res, 200, { data, meta: { count: data.length } });
    }
    if (what === 'banned') {
      if (!id && method === 'GET') {
        const data = running.bans.list().map((b) => ({
          ...b,
          at: new Date(b.at).toISOString(),
          until: b.until === null ? null : new Date(b.until).toISOString(),
        }));
        return send(res, 200, { data, meta: { count: data.length } });
      }
      if (!id && method === 'POST') {
        const b = await readJson(req);
        if (b.as !== 'clientid' && b.as !== 'username' && b.as !== 'ip')
          throw new ApiError(400, 'BAD_REQUEST', 'as must be clientid, username or ip');
        if (typeof b.who !== 'string' || !b.who)
          throw new ApiError(400, 'BAD_REQUEST', 'who must be a non-empty string');
        if (b.duration !== undefined && (!Number.isInteger(b.duration) || (b.duration as number) <= 0)) {
          throw new ApiError(400, 'BAD_REQUEST', 'duration must be a positive number of seconds');
        }
        const ban = running.bans.add(
          b.as as BanKind,
          b.who,
          typeof b.reason === 'string' ? b.reason : 'api',
          (b.duration as number | undefined) ?? null,
        );
        // Ban takes effect now: drop matching clients that are already connected.
        for (const [client, info] of running.clients) {
          const hit =
            (ban.as === 'clientid' && client.id === ban.who) ||
            (ban.as === 'username' && info.username === ban.who) ||
            (ban.as === 'ip' && (info.ip === ban.who || info.ip === `::ffff:${ban.who}`));
          if (hit) client.close();
        }
        log.info('Added ban', { as: ban.as, who: ban.who });
        return send(res, 200, {
          as: ban.as,
          who: ban.who,
          reason: ban.reason,
          until: ban.until === null ? null : new Date(ban.until).toISOString(),
        });
      }
      if (id && id2 && method === 'DELETE') {
        if (!running.bans.remove(id as BanKind, id2))
          throw new ApiError(404, 'NOT_FOUND', `no ban for ${id} ${id2}`);
        return send(res, 204);
      }
    }
    if (what === 'stats' && method === 'GET' && !id) {
      const metrics = await running.metrics.registry.getMetricsAsJSON();
      const sum = (name: string, label?: [string, string]) =>
        (metrics.find((m) => m.name === name)?.values ?? [])
          .filter((v) => !label || (v.labels as Record<string, unknown>)[label[0]] === label[1])
          .reduce((a, v) => a + v.value, 0);
      return send(res, 200, {
        'connections.count': aedes.connectedClients,
        'subscriptions.count': Object.values(byId()).reduce(
          (a, c) => a + Object.keys((c as unknown as { subscriptions: object }).subscriptions ?? {}).length,
          0,
        ),
        'retained.count': sum('cpuburst_broker_retained_messages'),
        'messages.received': sum('cpuburst_broker_messages_total', ['direction', 'received']),
        'messages.sent': sum('cpuburst_broker_messages_total', ['direction', 'sent']),
        'messages.dropped': sum('cpuburst_broker_messages_dropped_total'),
      });
    }
    throw new ApiError(404, 'NOT_FOUND', `no route ${method} ${path}`);
  }

  return startProbeServer({
    port: opts.cfg.httpPort,
    host: opts.cfg.host,
    registry: running.metrics.registry,
    healthz: () => (aedes.closed ? 'broker closed' : null),
    readyz: () => (aedes.closed ? 'broker closed' : null),
    extra: async (req, res) => {
      const path = (req.url ?? '/').split('?')[0]!;
      if (!path.startsWith('/api/v5/')) return false;
      try {
        await route(req, res, path);
      } catch (err) {
        if (err instanceof ApiError) send(res, err.status, { code: err.code, message: err.message });
        else {
          log.error('HTTP API error', { path, error: (err as Error).message });
          send(res, 500, { code: 'INTERNAL_ERROR', message: (err as Error).message });
        }
      }
      return true;
    },
  });
}
