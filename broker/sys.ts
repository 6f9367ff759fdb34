// EMQX-style $SYS topics: $SYS/brokers/<id>/{version,uptime,datetime}, .../stats/..., .../metrics/...
// every interval, and .../clients/<clientid>/{connected,disconnected} events as they happen.
import type { Aedes, Client } from 'aedes';
import type { Clock } from './limits.js';
import type { BrokerMetrics } from './metrics.js';

export const BROKER_VERSION = '0.1.0';

export function startSys(opts: {
  aedes: Aedes;
  metrics: BrokerMetrics;
  brokerId: string;
  intervalSec: number;
  clients: Map<Client, { username?: string; ip: string | null; protocol: string }>;
  clock: Clock;
}): { stop(): void; publishNow(): Promise<void> } {
  const { aedes, metrics, brokerId, clock } = opts;
  const base = `$SYS/brokers/${brokerId}`;
  const started = clock();
  const pub = (topic: string, payload: string, retain = false) =>
    new Promise<void>((r) =>
      aedes.publish(
        {
          cmd: 'publish',
          topic: `${base}/${topic}`,
          payload: Buffer.from(payload),
          qos: 0,
          retain,
          dup: false,
        },
        () => r(),
      ),
    );

  async function counter(name: string, labels: Record<string, string> = {}): Promise<number> {
    const m = await (
      metrics as unknown as Record<
        string,
        { get(): Promise<{ values: Array<{ value: number; labels: Record<string, unknown> }> }> }
      >
    )[name]!.get();
    return m.values
      .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
      .reduce((a, v) => a + v.value, 0);
  }

  async function publishNow(): Promise<void> {
    const uptime = Math.floor((clock() - started) / 1000);
    await Promise.all([
      pub('uptime', String(uptime)),
      pub('datetime', new Date(clock()).toISOString()),
      pub('stats/connections/count', String(aedes.connectedClients)),
      pub('stats/retained/count', String(await counter('retained'))),
      pub('metrics/messages/received', String(await counter('messages', { direction: 'received' }))),
      pub('metrics/messages/sent', String(await counter('messages', { direction: 'sent' }))),
      pub('metrics/messages/dropped', String(await counter('dropped'))),
      pub('metrics/bytes/received', String(await counter('bytes', { direction: 'received' }))),
      pub('metrics/bytes/sent', String(await counter('bytes', { direction: 'sent' }))),
    ]);
  }

  const onConnect = (client: Client) => {
    const info = opts.clients.get(client);
    const body = {
      clientid: client.id,
      username: info?.username ?? null,
      ipaddress: info?.ip ?? null,
      proto_ver: client.version,
      connected_at: clock(),
    };
    void pub(`clients/${client.id}/connected`, JSON.stringify(body));
  };
  const onDisconnect = (client: Client) => {
    void pub(
      `clients/${client.id}/disconnected`,
      JSON.stringify({ clientid: client.id, disconnected_at: clock() }),
    );
  };
  aedes.on('client', onConnect);
  aedes.on('clientDisconnect', onDisconnect);
  void pub('version', BROKER_VERSION, true);
  void publishNow();
  const timer = setInterval(() => void publishNow(), opts.intervalSec * 1000);
  timer.unref();
  return {
    publishNow,
    stop() {
      clearInterval(timer);
      aedes.off('client', onConnect);
      aedes.off('clientDisconnect', onDisconnect);
    },
  };
}
