// The built-in control-plane rules end to end: the operator publishes decisions, agent:n1 gets
// only n1's, cannot read n2's or publish decisions, and an IoT user can neither read nor write
// cpuburst/ — not even through `#` or `+/v1/#`.
import assert from 'node:assert/strict';
import { before, describe, it, after as rootAfter } from 'node:test';
import type { MqttClient } from 'mqtt';
import type { RunningBroker } from '../../broker/server.js';
import { deriveAgentPassword } from '../../protocol/credentials.js';
import { identities, topics } from '../../protocol/topics.js';
import {
  cleanupList,
  collect,
  connect,
  connectError,
  paho,
  sleep,
  tempDir,
  testBroker,
  waitFor,
  writeFile,
} from './helpers.js';

const after = cleanupList(rootAfter);
const KEY = 'shared-agent-key-for-tests';
let b: RunningBroker;
let port: number;

before(async () => {
  const dir = tempDir(after);
  b = await testBroker(after, {
    usersFile: writeFile(
      dir,
      'users.yaml',
      'users:\n  - {username: operator, password: op-pw}\n  - {username: iot, password: iot-pw}\n',
    ),
    agentKeyFile: writeFile(dir, 'agent.key', `${KEY}\n`),
    acl: writeFile(dir, 'acl.yaml', 'noMatch: allow\nrules: []\n'),
  });
  port = b.ports.mqttPort!;
});

const agent = (node: string, v: 4 | 5 = 5) =>
  connect(after, port, {
    protocolVersion: v,
    username: identities.agent(node),
    password: deriveAgentPassword(KEY, node),
    clientId: `agent-${node}-${v}`,
  });
const operator = () =>
  connect(after, port, { protocolVersion: 5, username: identities.operator, password: 'op-pw' });
const iot = (v: 4 | 5 = 5) =>
  connect(after, port, { protocolVersion: v, username: 'iot', password: 'iot-pw' });

async function granted(c: MqttClient, filter: string): Promise<number> {
  try {
    const g = await c.subscribeAsync(filter, { qos: 1 });
    return g[0]!.qos;
  } catch (err) {
    // mqtt.js rejects a SUBACK failure; the reason code is on the packet
    const granted = (err as { packet?: { granted?: Array<number | { qos: number }> } }).packet?.granted?.[0];
    if (granted === undefined) throw err;
    return typeof granted === 'number' ? granted : granted.qos;
  }
}

describe('control-plane ACL', () => {
  it('delivers each node only its own decisions', async () => {
    const op = await operator();
    const n1 = await agent('n1');
    const n2 = await agent('n2');
    const got1 = collect(n1);
    const got2 = collect(n2);
    assert.equal(await granted(n1, topics.nodeFilter('n1')), 1);
    assert.equal(await granted(n2, topics.decisions('n2')), 1);
    await op.publishAsync(topics.decisions('n1'), '{"v":1}', { qos: 1, retain: true });
    await op.publishAsync(topics.decisions('n2'), '{"v":2}', { qos: 1, retain: true });
    await waitFor('n1 decision', () => got1.find((m) => m.topic === topics.decisions('n1')));
    await waitFor('n2 decision', () => got2.find((m) => m.topic === topics.decisions('n2')));
    await sleep(300);
    assert.deepEqual(
      got1.map((m) => m.topic),
      [topics.decisions('n1')],
    );
    assert.deepEqual(
      got2.map((m) => m.topic),
      [topics.decisions('n2')],
    );
  });

  it("refuses an agent's subscription to another node or wildcards (v5 0x87, v3.1.1 0x80)", async () => {
    const n1 = await agent('n1');
    assert.equal(await granted(n1, topics.nodeFilter('n2')), 0x87);
    assert.equal(await granted(n1, topics.allDecisionsFilter), 0x87);
    assert.equal(await granted(n1, '#'), 0x87);
    const v4 = await agent('n1', 4);
    assert.equal(await granted(v4, topics.decisions('n2')), 0x80);
  });

  it('lets an agent publish only under its own agent prefix', async () => {
    const op = await operator();
    const seen = collect(op);
    assert.equal(await granted(op, 'cpuburst/#'), 1);
    const n1 = await agent('n1');
    await n1.publishAsync(topics.status('n1'), 'ok', { qos: 1 });
    await waitFor('status reaches the operator', () => seen.find((m) => m.topic === topics.status('n1')));
    // A forged decision: v5 gets PUBACK 0x87 (mqtt.js rejects), nothing is delivered.
    await assert.rejects(
      n1.publishAsync(topics.decisions('n2'), 'forged', { qos: 1 }),
      /Not authorized|0x87|135/i,
    );
    await assert.rejects(n1.publishAsync(topics.status('n2'), 'forged', { qos: 1 }));
    // 3.1.1: acknowledged (no negative ack exists), dropped, connection stays up.
    const v4 = await agent('n1', 4);
    await v4.publishAsync(topics.decisions('n1'), 'forged-v4', { qos: 1 });
    assert.ok(v4.connected);
    await sleep(300);
    assert.equal(seen.filter((m) => m.payload.startsWith('forged')).length, 0);
  });

  it('keeps IoT users out of cpuburst/ entirely, wildcards included', async () => {
    const op = await operator();
    const opSeen = collect(op);
    await op.subscribeAsync('cpuburst/#', { qos: 1 });
    const dev = await iot();
    const devSeen = collect(dev);
    assert.equal(await granted(dev, 'cpuburst/#'), 0x87);
    assert.equal(await granted(dev, topics.decisions('n1')), 0x87);
    assert.equal(await granted(dev, '#'), 1); // allowed, but control messages are withheld
    assert.equal(await granted(dev, '+/v1/#'), 1);
    await assert.rejects(dev.publishAsync(topics.decisions('n1'), 'evil', { qos: 1 }));
    await op.publishAsync(topics.decisions('n3'), 'secret', { qos: 1 });
    await dev.publishAsync('sensors/t', '21', { qos: 1 });
    await waitFor('own sensor message', () => devSeen.find((m) => m.topic === 'sensors/t'));
    await waitFor('operator sees its decision', () => opSeen.find((m) => m.topic === topics.decisions('n3')));
    await sleep(300);
    assert.deepEqual(
      devSeen.filter((m) => m.topic.startsWith('cpuburst')),
      [],
    );
    assert.equal(opSeen.filter((m) => m.payload === 'evil').length, 0);
  });

  it('withholds retained control messages from a real client subscribing to #', async () => {
    const op = await operator();
    await op.publishAsync(topics.decisions('n9'), 'retained-secret', { qos: 1, retain: true });
    const out = await paho([
      '--port',
      String(port),
      '--username',
      'iot',
      '--password',
      'iot-pw',
      '--sub',
      '#:1',
      '--pub',
      'visible/x:1:false:v',
      '--expect',
      '1',
      '--timeout',
      '4',
    ]);
    assert.equal(out.rc, 0);
    assert.deepEqual(
      out.messages.map((m: { topic: string }) => m.topic),
      ['visible/x'],
    );
  });

  it('never gives a control identity to a client without valid credentials', async () => {
    const anon = await testBroker(after, { allowAnonymous: true });
    assert.equal(await connectError(anon.ports.mqttPort!, { username: 'operator', password: 'guess' }), 4);
    assert.equal(await connectError(anon.ports.mqttPort!, { username: 'agent:n1', password: 'guess' }), 4);
    assert.equal(
      await connectError(port, { username: 'agent:n1', password: deriveAgentPassword('wrong-key', 'n1') }),
      4,
    );
    assert.equal(await connectError(port, { username: 'operator', password: 'nope' }), 4);
  });

  it("an agent's presence will reaches the operator; an IoT will on cpuburst/ is refused", async () => {
    const op = await operator();
    const seen = collect(op);
    await op.subscribeAsync(topics.allAgentsFilter, { qos: 1 });
    const n5 = await agent('n5');
    n5.end(true); // drop without DISCONNECT
    const willed = await connect(after, port, {
      username: identities.agent('n5'),
      password: deriveAgentPassword(KEY, 'n5'),
      clientId: 'agent-n5-willed',
      will: { topic: topics.presence('n5'), payload: Buffer.from('offline'), qos: 1, retain: true },
    });
    (willed as unknown as { stream: { destroy(): void } }).stream.destroy();
    await waitFor('presence will', () =>
      seen.find((m) => m.topic === topics.presence('n5') && m.payload === 'offline'),
    );
    const refused = await connectError(port, {
      username: 'iot',
      password: 'iot-pw',
      will: { topic: topics.presence('n5'), payload: Buffer.from('forged'), qos: 1, retain: false },
    });
    assert.equal(refused, 5);
  });

  it('never bans a control identity for flapping, but does ban other clients', async () => {
    const dir = tempDir(after);
    const fb = await testBroker(after, {
      flappingMaxCount: 2,
      usersFile: writeFile(dir, 'users.yaml', 'users:\n  - {username: iot, password: iot-pw}\n'),
      agentKeyFile: writeFile(dir, 'agent.key', KEY),
    });
    const agentOpts = {
      username: identities.agent('n7'),
      password: deriveAgentPassword(KEY, 'n7'),
      clientId: 'agent-n7',
    };
    for (let i = 0; i < 4; i++) {
      const c = await connect(after, fb.ports.mqttPort!, agentOpts);
      await c.endAsync();
      const d = await connect(after, fb.ports.mqttPort!, {
        username: 'iot',
        password: 'iot-pw',
        clientId: 'flappy',
      }).catch(() => null);
      await d?.endAsync();
    }
    assert.equal(await connectError(fb.ports.mqttPort!, agentOpts), 0);
    assert.equal(
      await connectError(fb.ports.mqttPort!, { username: 'iot', password: 'iot-pw', clientId: 'flappy' }),
      5,
    );
  });
});
