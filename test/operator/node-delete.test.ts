// A deleted Node loses its retained decision document (once no pod is bound to it any more), and a
// Node that comes back is published again with a version larger than any it had.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { type DevCluster, startDevCluster } from '../../devcluster/index.js';
import { type DecisionDocument, decode, topics } from '../../protocol/index.js';
import { node as nodeObj, pod } from './fixtures.js';
import {
  type OperatorUnderTest,
  podNames,
  seedCluster,
  startAedes,
  startOperator,
  type TestBroker,
  waitFor,
} from './harness.js';

/** What a fresh subscriber finds retained on the node's decisions topic (null = nothing). */
async function retained(url: string, node: string): Promise<DecisionDocument | null> {
  const client = await mqtt.connectAsync(url, { clientId: `probe-${node}-${process.pid}-${Date.now()}` });
  try {
    const got = new Promise<Buffer>((resolve) => client.once('message', (_t, payload) => resolve(payload)));
    await client.subscribeAsync(topics.decisions(node), { qos: 1 });
    // Retained messages follow the SUBACK at once; 500 ms of silence means there is none.
    const payload = await Promise.race([got, new Promise<null>((r) => setTimeout(() => r(null), 500))]);
    if (!payload || payload.length === 0) return null;
    const d = decode.decisions(payload);
    assert.ok(d.ok, 'retained document decodes');
    return d.value;
  } finally {
    await client.endAsync(true);
  }
}

describe('operator: deleted nodes', () => {
  let cluster: DevCluster;
  let broker: TestBroker;
  let op: OperatorUnderTest;

  before(async () => {
    cluster = await startDevCluster();
    await seedCluster(cluster, ['node-a', 'node-gone']);
    broker = await startAedes();
    op = await startOperator(cluster, broker, { memoryLog: true });
    await waitFor('caches synced', () => op.controller.synced);
  });
  after(async () => {
    await op?.stop();
    await broker?.close();
    await cluster?.close();
  });

  it('clears the retained document once the node and its pods are gone, and republishes on return', async () => {
    const optIn = { annotations: { 'cpuburst.io/enabled': 'true' } };
    cluster.store.create(pod('victim', { node: 'node-gone', ...optIn }) as any);
    const first = await waitFor('retained document for node-gone', async () => {
      const d = await retained(broker.url, 'node-gone');
      return d && podNames(d).includes('default/victim') && d;
    });

    // The Node goes first: its pod is still bound, so the document stays.
    cluster.store.delete('v1', 'Node', 'node-gone');
    await waitFor(
      'plan without node-gone',
      () => op.controller.plan && !op.controller.plan.nodes.has('node-gone'),
    );
    assert.equal((await retained(broker.url, 'node-gone'))?.version, first.version);

    // The pod goes too: now nothing is left for the node, and a fresh subscriber gets nothing.
    cluster.store.delete('v1', 'Pod', 'victim', 'default');
    await waitFor(
      'retained document cleared',
      async () => (await retained(broker.url, 'node-gone')) === null,
    );
    assert.ok(
      op.lines.some(
        (l) => l.message === 'Cleared retained decisions of a deleted node' && l.node === 'node-gone',
      ),
    );
    // Other nodes keep theirs.
    assert.ok(await retained(broker.url, 'node-a'));

    // The node comes back with a pod: a new document, newer than anything it had.
    cluster.store.apply(nodeObj('node-gone') as any);
    cluster.store.create(pod('returner', { node: 'node-gone', ...optIn }) as any);
    const again = await waitFor('republished document', async () => {
      const d = await retained(broker.url, 'node-gone');
      return d && podNames(d).includes('default/returner') && d;
    });
    assert.ok(again.version > first.version, `${again.version} > ${first.version}`);
    const versions = op.published.filter((d) => d.node === 'node-gone').map((d) => d.version);
    assert.ok(Math.max(...versions) === again.version, 'the republished version is the largest published');
  });
});
