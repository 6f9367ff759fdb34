// Lightweight simulated agents for the P2 scale bench: one MQTT client per node (identity
// `agent:<node>`, the broker's legacy agent-key password), subscribed to its node's decisions; each
// document is acked at QoS 1 at once and summarised to the parent over IPC:
//   [nodeIndex, version, pods, cpuBurstPercent (-1 = mixed), ackedAtMs].
// Several of these processes share the nodes (each process stays far below the fd limit).
//   node --import tsx bench/lib/p2-agent-sim.ts '{"url":"mqtt://…","agentKey":"…","from":0,"count":1000}'
import { pathToFileURL } from 'node:url';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { deriveAgentPassword } from '../../protocol/credentials.js';
import { identities, topics } from '../../protocol/topics.js';
import { nodeName } from './p2-devcluster-child.js';

export interface SimSpec {
  url: string;
  agentKey: string;
  from: number;
  count: number;
  /** Simultaneous connection attempts. */
  concurrency?: number;
}

/** What the parent learns per acked document. */
export type AckRecord = [node: number, version: number, pods: number, pct: number, ackedAtMs: number];

export function summarise(doc: { version: number; pods: { config: { cpuBurstPercent: number } }[] }) {
  let pct = doc.pods.length ? doc.pods[0]!.config.cpuBurstPercent : -1;
  for (const p of doc.pods) if (p.config.cpuBurstPercent !== pct) pct = -1;
  return { version: doc.version, pods: doc.pods.length, pct };
}

function options(node: string, spec: SimSpec): IClientOptions {
  return {
    clientId: `agent-${node}`,
    username: identities.agent(node),
    password: deriveAgentPassword(spec.agentKey, node),
    protocolVersion: 5,
    keepalive: 60,
    reconnectPeriod: 1000,
    connectTimeout: 60_000,
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as SimSpec;
  const clients: MqttClient[] = [];
  let batch: AckRecord[] = [];
  const flush = setInterval(() => {
    if (batch.length) process.send?.({ acks: batch });
    batch = [];
  }, 50);
  const connect = async (i: number) => {
    const node = nodeName(i);
    let client!: MqttClient;
    for (let attempt = 1; ; attempt++) {
      try {
        client = await mqtt.connectAsync(spec.url, options(node, spec));
        break;
      } catch (err) {
        // A loaded broker can miss the CONNACK deadline for a few of thousands of connects: retry.
        if (attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
    (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    client.on('message', (_topic, payload) => {
      if (payload.length === 0) return;
      let s: ReturnType<typeof summarise>;
      try {
        s = summarise(JSON.parse(payload.toString()));
      } catch {
        return;
      }
      const ack = {
        apiVersion: 'cpuburst.io/v1',
        kind: 'DecisionAck',
        node,
        version: s.version,
        result: 'Applied',
        time: new Date().toISOString(),
        errors: [],
      };
      client.publish(topics.ack(node), JSON.stringify(ack), { qos: 1 });
      batch.push([i, s.version, s.pods, s.pct, Date.now()]);
    });
    await client.subscribeAsync(topics.decisions(node), { qos: 1 });
    clients.push(client);
  };
  const queue = Array.from({ length: spec.count }, (_, k) => spec.from + k);
  const workers = Array.from({ length: spec.concurrency ?? 50 }, async () => {
    for (let i = queue.shift(); i !== undefined; i = queue.shift()) await connect(i);
  });
  await Promise.all(workers);
  process.send?.({ ready: clients.length });
  const stop = async () => {
    clearInterval(flush);
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('disconnect', () => void stop());
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href)
  await main().catch((err) => {
    process.stderr.write(`agent-sim: ${(err as Error).stack}\n`);
    process.exit(1);
  });
