// Bad input gets the right answer and hurts no one else: oversized payloads, invalid UTF-8 topics,
// wrong passwords, ACL violations and a flood from one client, while a bystander keeps working.
import assert from 'node:assert/strict';
import { before, describe, it, after as rootAfter } from 'node:test';
import type { MqttClient } from 'mqtt';
import type { RunningBroker } from '../../broker/server.js';
import { connectFrame, exchange, gen, rawPublish } from './frames.js';
import {
  cleanupList,
  collect,
  connect,
  connectError,
  run,
  sleep,
  tempDir,
  testBroker,
  waitFor,
  writeFile,
} from './helpers.js';

const after = cleanupList(rootAfter);
const CLIENTID_PLACEHOLDER = '$' + '{clientid}';
let b: RunningBroker;
let port: number;
let bystander: MqttClient;
let heard: ReturnType<typeof collect>;

before(async () => {
  const dir = tempDir(after);
  b = await testBroker(after, {
    maxPayloadBytes: 1024,
    msgRate: 50,
    usersFile: writeFile(
      dir,
      'users.yaml',
      'users:\n  - {username: dev, password: dev-pw}\n  - {username: guest, password: guest-pw}\n',
    ),
    acl: writeFile(
      dir,
      'acl.yaml',
      'noMatch: deny\nrules:\n  - {permission: allow, username: dev, action: all, topics: ["#"]}\n  - {permission: allow, username: guest, action: subscribe, topics: ["public/#"]}\n  - {permission: allow, username: guest, action: publish, topics: ["guests/' +
        CLIENTID_PLACEHOLDER +
        '/#"]}\n',
    ),
  });
  port = b.ports.mqttPort!;
  bystander = await connect(after, port, { username: 'dev', password: 'dev-pw', clientId: 'bystander' });
  heard = collect(bystander);
  await bystander.subscribeAsync('ping/#', { qos: 1 });
});

async function bystanderStillWorks(tag: string) {
  await bystander.publishAsync(`ping/${tag}`, tag, { qos: 1 });
  await waitFor(`bystander echo ${tag}`, () => heard.find((m) => m.topic === `ping/${tag}`));
}

describe('bad input', () => {
  it('oversized payload: v5 gets DISCONNECT 0x95, v3.1.1 is disconnected, nothing delivered', async () => {
    const auth = { username: 'dev', password: 'dev-pw' };
    // The server-side record of the DISCONNECT reason is checked too: on a heavily loaded machine
    // the TCP close can overtake the DISCONNECT frame on the wire.
    const reasons = new Map<string, number | null>();
    const onGone = (c: { id: string; disconnectReasonCode: number | null }) =>
      reasons.set(c.id, c.disconnectReasonCode);
    b.aedes.on('clientDisconnect', onGone);
    for (const v of [5, 4]) {
      const r = await exchange(
        port,
        [
          connectFrame(`big${v}`, v, auth),
          gen({ cmd: 'publish', topic: 'ping/big', payload: Buffer.alloc(5000), qos: 1, messageId: 7 }, v),
        ],
        { protocolVersion: v, waitMs: 10_000 },
      );
      assert.equal(r.packets[0]!.cmd, 'connack');
      assert.ok(r.closed, 'connection closed');
      assert.ok(!r.packets.some((p) => p.cmd === 'puback' && !p.reasonCode), 'no successful PUBACK');
      const wire = r.packets.filter((p) => p.cmd === 'disconnect').map((p) => p.reasonCode);
      if (v === 5) {
        assert.ok(
          wire.every((code) => code === 0x95),
          `DISCONNECT codes ${wire}`,
        );
        await waitFor('server-side disconnect', () => reasons.has('big5'));
        assert.equal(reasons.get('big5'), 0x95);
      } else assert.deepEqual(wire, []);
    }
    b.aedes.off('clientDisconnect', onGone);
    // A frame far beyond the limit is cut off from its header, before the body is buffered.
    const huge = await exchange(
      port,
      [
        connectFrame('huge', 5, auth),
        gen({ cmd: 'publish', topic: 'x', payload: Buffer.alloc(300_000), qos: 0 }, 5),
      ],
      { protocolVersion: 5 },
    );
    assert.ok(huge.closed);
    assert.equal(heard.filter((m) => m.topic === 'ping/big').length, 0);
    await bystanderStillWorks('after-big');
  });

  it('invalid UTF-8 topic: the connection is closed, nothing delivered', async () => {
    for (const v of [4, 5]) {
      const r = await exchange(
        port,
        [
          connectFrame(`utf${v}`, v, { username: 'dev', password: 'dev-pw' }),
          rawPublish(Buffer.from([0x70, 0x69, 0x6e, 0x67, 0x2f, 0xc3, 0x28]), Buffer.from('x'), 1),
        ],
        { protocolVersion: v },
      );
      assert.ok(r.closed, `v${v} closed`);
      assert.ok(!r.packets.some((p) => p.cmd === 'puback' && !p.reasonCode), 'no successful PUBACK');
    }
    await sleep(200);
    assert.equal(heard.filter((m) => m.topic.includes('\uFFFD')).length, 0);
    await bystanderStillWorks('after-utf8');
  });

  it('wrong passwords: CONNACK 4 (v3.1.1) / 0x86 (v5), counted in metrics', async () => {
    assert.equal(await connectError(port, { username: 'dev', password: 'nope' }), 4);
    assert.equal(await connectError(port, { username: 'dev', password: 'nope', protocolVersion: 5 }), 0x86);
    assert.equal(await connectError(port, {}), 5); // anonymous is refused by default
    const metrics = await b.metrics.registry.getSingleMetricAsString('cpuburst_broker_auth_failures_total');
    assert.match(metrics, /reason="bad_credentials"} [1-9]/);
  });

  it('ACL violations: refused subscription codes, dropped and counted publishes', async () => {
    const guest = await connect(after, port, {
      username: 'guest',
      password: 'guest-pw',
      clientId: 'g1',
      protocolVersion: 5,
    });
    const g = await guest
      .subscribeAsync(['public/news', 'private/x'], { qos: 1 })
      .catch((err: { packet: { granted: number[] } }) => err.packet.granted.map((q) => ({ qos: q })));
    assert.deepEqual(
      g.map((x: { qos: number }) => x.qos),
      [1, 0x87],
    );
    await guest.publishAsync('guests/g1/hello', 'ok', { qos: 1 });
    await assert.rejects(guest.publishAsync('ping/forbidden', 'no', { qos: 1 }));
    const v4 = await run('mosquitto_sub', [
      '-h',
      '127.0.0.1',
      '-p',
      String(port),
      '-u',
      'guest',
      '-P',
      'guest-pw',
      '-t',
      'private/#',
      '-C',
      '1',
      '-W',
      '3',
    ]);
    assert.match(v4.stderr + v4.stdout, /denied|fail|Timed out/i);
    await sleep(200);
    assert.equal(heard.filter((m) => m.topic === 'ping/forbidden').length, 0);
    const denials = await b.metrics.registry.getSingleMetricAsString('cpuburst_broker_acl_denials_total');
    assert.match(denials, /action="publish"} [1-9]/);
    assert.match(denials, /action="subscribe"} [1-9]/);
  });

  it('a flood from one client: DISCONNECT 0x96, the bystander is unaffected', async () => {
    const flooder = await connect(after, port, {
      username: 'dev',
      password: 'dev-pw',
      clientId: 'flooder',
      protocolVersion: 5,
    });
    const gone = new Promise<number | undefined>((resolve) =>
      flooder.once('disconnect', (p) => resolve(p.reasonCode)),
    );
    for (let i = 0; i < 2000 && flooder.connected; i++) flooder.publish('flood/x', 'x', { qos: 0 });
    assert.equal(await gone, 0x96);
    await bystanderStillWorks('after-flood');
    const dropped = await b.metrics.registry.getSingleMetricAsString(
      'cpuburst_broker_messages_dropped_total',
    );
    assert.match(dropped, /reason="rate_limited"} [1-9]/);
  });

  it('connections over --conn-rate get CONNACK 3 (server unavailable); others keep working', async () => {
    const limited = await testBroker(after, { allowAnonymous: true, connRate: 2, httpPort: -1, wsPort: -1 });
    const codes = [];
    for (let i = 0; i < 5; i++)
      codes.push(await connectError(limited.ports.mqttPort!, { clientId: `burst-${i}` }));
    assert.deepEqual(codes.slice(0, 2), [0, 0]);
    assert.ok(codes.slice(2).includes(3), `some connections refused: ${codes}`);
    const metrics = await limited.metrics.registry.getSingleMetricAsString(
      'cpuburst_broker_auth_failures_total',
    );
    assert.match(metrics, /reason="rate_limited"} [1-9]/);
    await bystanderStillWorks('after-conn-burst');
  });
});
