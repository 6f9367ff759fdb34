// Watches the control plane from the outside, read-only, as the operator identity (the operator
// ServiceAccount's token, re-read on every reconnect): the node's decision document, acks and status
// reports, so the demo can prove what was decided and applied.
import mqtt, { type MqttClient } from 'mqtt';
import { silentLogger } from '../common/log.js';
import { refreshCredentialsOnReconnect, renewBeforeExpiry, TokenFile } from '../common/token-file.js';
import { decode } from '../protocol/codec.js';
import { identities, topics } from '../protocol/topics.js';
import type { AckMessage, DecisionDocument, StatusReport } from '../protocol/types.js';

export interface Observer {
  decisions: DecisionDocument | null;
  acks: AckMessage[];
  status: StatusReport | null;
  invalid: number;
  close(): Promise<void>;
}

export async function observeNode(url: string, tokenFile: string, node: string): Promise<Observer> {
  const token = new TokenFile(tokenFile, silentLogger('demo-observer'));
  const client: MqttClient = await mqtt.connectAsync(url, {
    username: identities.operator,
    password: token.read(),
    clientId: `cpuburst-demo-observer-${process.pid}`,
    clean: true,
    reconnectPeriod: 1000,
    reconnectOnConnackError: true,
    connectTimeout: 10000,
  });
  refreshCredentialsOnReconnect(client, () => ({ password: token.read() }));
  renewBeforeExpiry(client, token, silentLogger('demo-observer'));
  const obs: Observer = {
    decisions: null,
    acks: [],
    status: null,
    invalid: 0,
    close: () => client.endAsync(),
  };
  client.on('message', (topic, payload) => {
    if (topic === topics.decisions(node)) {
      const d = decode.decisions(payload);
      if (d.ok) obs.decisions = d.value;
      else obs.invalid++;
    } else if (topic === topics.ack(node)) {
      const d = decode.ack(payload);
      if (d.ok) obs.acks.push(d.value);
      else obs.invalid++;
    } else if (topic === topics.status(node)) {
      const d = decode.status(payload);
      if (d.ok) obs.status = d.value;
      else obs.invalid++;
    }
  });
  await client.subscribeAsync([topics.decisions(node), topics.ack(node), topics.status(node)], { qos: 1 });
  return obs;
}
