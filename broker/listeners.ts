// The MQTT listeners: TCP, TLS (optionally requiring client certificates), WebSocket and WSS on
// path /mqtt. Each is off when its port is -1; port 0 picks a free port.
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { Logger } from '../common/log.js';
import type { BrokerConfig } from './config.js';

export interface Listeners {
  ports: { mqttPort?: number; tlsPort?: number; wsPort?: number; wssPort?: number };
  close(): Promise<void>;
}

type Attach = (stream: Duplex, req?: IncomingMessage) => void;
type Closable = { close(cb?: (err?: Error) => void): unknown; address(): AddressInfo | string | null };

function listen(server: net.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function tlsOptions(cfg: BrokerConfig): tls.TlsOptions {
  if (!cfg.tlsCert || !cfg.tlsKey) throw new Error('TLS/WSS listener needs --tls-cert and --tls-key');
  const opts: tls.TlsOptions & { noDelay?: boolean } = {
    cert: readFileSync(cfg.tlsCert),
    key: readFileSync(cfg.tlsKey),
  };
  if (cfg.tlsCa) opts.ca = readFileSync(cfg.tlsCa);
  if (cfg.tlsRequireClientCert) {
    if (!cfg.tlsCa) throw new Error('--tls-require-client-cert needs --tls-ca');
    opts.requestCert = true;
    opts.rejectUnauthorized = true;
  } else if (cfg.tlsCa && cfg.authChain.includes('tls-cert')) {
    // Ask for a certificate but let the tls-cert authenticator refuse an untrusted one with a
    // reason (cert_invalid) instead of a bare handshake failure; clients without one go on.
    opts.requestCert = true;
    opts.rejectUnauthorized = false;
  }
  return opts;
}

function wsOn(server: http.Server, attach: Attach, log: Logger): WebSocketServer {
  const wss = new WebSocketServer({
    server,
    path: '/mqtt',
    handleProtocols: (protocols) =>
      protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false,
  });
  wss.on('connection', (ws, req) => {
    const stream = createWebSocketStream(ws);
    stream.on('error', (err) => log.debug('WebSocket stream error', { error: err.message }));
    attach(stream, req);
  });
  return wss;
}

export async function startListeners(cfg: BrokerConfig, attach: Attach, log: Logger): Promise<Listeners> {
  const closers: Array<() => Promise<void>> = [];
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const ports: Listeners['ports'] = {};
  const closeServer = (s: Closable) => () => new Promise<void>((r) => s.close(() => r()));
  const result: Listeners = {
    ports,
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all(closers.map((c) => c()));
    },
  };
  try {
    if (cfg.mqttPort >= 0) {
      // Nagle off, as MQTT brokers do: small PUBLISH/ACK frames must not wait for delayed ACKs.
      const server = net.createServer({ noDelay: true }, (socket) => {
        track(socket);
        attach(socket);
      });
      ports.mqttPort = await listen(server, cfg.mqttPort, cfg.host);
      closers.push(closeServer(server));
    }
    const wantTls = cfg.tlsPort >= 0 && cfg.tlsCert !== undefined;
    if (cfg.tlsPort >= 0 && !cfg.tlsCert) log.info('TLS listener off: no --tls-cert');
    if (wantTls) {
      const server = tls.createServer({ ...tlsOptions(cfg), noDelay: true }, (socket) => {
        track(socket);
        attach(socket);
      });
      server.on('tlsClientError', (err) => log.debug('TLS handshake failed', { error: err.message }));
      ports.tlsPort = await listen(server, cfg.tlsPort, cfg.host);
      closers.push(closeServer(server));
    }
    if (cfg.wsPort >= 0) {
      const server = http.createServer((_req, res) => {
        res.writeHead(426, { 'content-type': 'text/plain' });
        res.end('MQTT over WebSocket lives at /mqtt\n');
      });
      server.on('connection', track);
      const wss = wsOn(server, attach, log);
      ports.wsPort = await listen(server, cfg.wsPort, cfg.host);
      closers.push(async () => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        await closeServer(server)();
      });
    }
    if (cfg.wssPort >= 0) {
      const server = https.createServer(tlsOptions(cfg));
      server.on('connection', track);
      const wss = wsOn(server, attach, log);
      ports.wssPort = await listen(server, cfg.wssPort, cfg.host);
      closers.push(async () => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        await closeServer(server)();
      });
    }
  } catch (err) {
    await result.close();
    throw err;
  }
  return result;
}
