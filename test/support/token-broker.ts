// An in-process aedes broker for token-file client tests: accepts a CONNECT only when its password is
// one of the currently valid tokens, records every attempt, and can drop every connection (what the
// real broker does when a token expires), so a test can see which token a reconnect carried.
import net from 'node:net';
import { Aedes } from 'aedes';

export interface TokenBroker {
  port: number;
  url: string;
  /** Passwords accepted right now (a rotated-out token is removed to model expiry). */
  valid: Set<string>;
  /** Every CONNECT: the password it carried ('' when none) and whether it was accepted. */
  attempts: Array<{ password: string; username: string; ok: boolean }>;
  /** Accepted passwords, in order. */
  accepted(): string[];
  /** Drops every client connection (as on token expiry). */
  kick(): void;
  close(): Promise<void>;
}

export async function startTokenBroker(valid: string[] = []): Promise<TokenBroker> {
  const tb = { valid: new Set(valid), attempts: [] } as unknown as TokenBroker;
  const broker = await Aedes.createBroker({
    authenticate: (_client, username, password, done) => {
      const pw = password?.toString() ?? '';
      const ok = tb.valid.has(pw);
      tb.attempts.push({ password: pw, username: username ?? '', ok });
      if (ok) done(null, true);
      else {
        const err = new Error('bad token') as Error & { returnCode: number };
        err.returnCode = 4;
        done(err, false);
      }
    },
  });
  const server = net.createServer(broker.handle as (s: net.Socket) => void);
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  tb.port = (server.address() as net.AddressInfo).port;
  tb.url = `mqtt://127.0.0.1:${tb.port}`;
  tb.accepted = () => tb.attempts.filter((a) => a.ok).map((a) => a.password);
  tb.kick = () => {
    for (const s of sockets) s.destroy();
  };
  tb.close = async () => {
    tb.kick();
    await new Promise<void>((r) => server.close(() => r()));
    await new Promise<void>((r) => broker.close(() => r()));
  };
  return tb;
}
