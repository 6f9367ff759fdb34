// The Lease elector against an in-memory Lease API with an injected clock: create on 404, renew,
// wait a full lease duration measured from OUR observation of another holder, 409 = lost race,
// step down after the renew deadline, release on stop, MicroTime with 6 fractional digits.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiException, type V1Lease } from '@kubernetes/client-node';
import { silentLogger } from '../../common/log.js';
import { LeaderElector } from '../../operator/kube/leader.js';

class FakeLeases {
  lease: V1Lease | undefined;
  rv = 0;
  fail = false;
  writes: string[] = [];
  private check() {
    if (this.fail) throw new ApiException(500, 'boom', {}, {});
  }
  async readNamespacedLease(): Promise<V1Lease> {
    this.check();
    if (!this.lease) throw new ApiException(404, 'not found', {}, {});
    return JSON.parse(JSON.stringify(this.lease));
  }
  async createNamespacedLease({ body }: { body: V1Lease }): Promise<V1Lease> {
    this.check();
    if (this.lease) throw new ApiException(409, 'exists', {}, {});
    this.writes.push(JSON.stringify(body));
    this.lease = JSON.parse(JSON.stringify(body));
    this.lease!.metadata = { ...this.lease!.metadata, resourceVersion: String(++this.rv) };
    return this.lease!;
  }
  async replaceNamespacedLease({ body }: { body: V1Lease }): Promise<V1Lease> {
    this.check();
    if (body.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion)
      throw new ApiException(409, 'conflict', {}, {});
    this.writes.push(JSON.stringify(body));
    this.lease = JSON.parse(JSON.stringify(body));
    this.lease!.metadata = { ...this.lease!.metadata, resourceVersion: String(++this.rv) };
    return this.lease!;
  }
}

function elector(api: FakeLeases, identity: string, clock: { now: number }, events: string[]) {
  return new LeaderElector({
    api: api as any,
    name: 'l',
    namespace: 'ns',
    identity,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 5,
    log: silentLogger(),
    now: () => clock.now,
    onStartedLeading: () => events.push(`${identity}:start`),
    onStoppedLeading: () => events.push(`${identity}:stop`),
  });
}

describe('LeaderElector', () => {
  it('creates the Lease, renews it with MicroTime, and releases it on stop', async () => {
    const api = new FakeLeases();
    const clock = { now: Date.parse('2026-11-25T10:00:00.123Z') };
    const events: string[] = [];
    const a = elector(api, 'a', clock, events);
    a.start();
    await waitUntil(() => a.isLeader);
    assert.deepEqual(events, ['a:start']);
    assert.match(api.writes[0]!, /"renewTime":"2026-11-25T10:00:00\.123000Z"/);
    assert.equal(api.lease!.spec!.leaseDurationSeconds, 15);
    clock.now += 2000;
    const n = api.writes.length;
    await waitUntil(() => api.writes.length > n);
    assert.equal(api.lease!.spec!.holderIdentity, 'a');
    assert.equal(api.lease!.spec!.leaseTransitions, 0);
    await a.stop();
    assert.equal(api.lease!.spec!.holderIdentity, '');
  });

  it('a candidate waits a full lease duration from when it observed the holder, then takes over', async () => {
    const api = new FakeLeases();
    const clock = { now: 1_000_000 };
    const events: string[] = [];
    // A holder whose renewTime is ancient by our clock: validity still counts from our observation.
    api.lease = {
      metadata: { name: 'l', namespace: 'ns', resourceVersion: '1' },
      spec: {
        holderIdentity: 'old',
        leaseDurationSeconds: 15,
        renewTime: '2000-01-01T00:00:00.000000Z' as any,
        leaseTransitions: 3,
      },
    };
    const b = elector(api, 'b', clock, events);
    b.start();
    await sleep(50);
    assert.equal(b.isLeader, false, 'must not take over a lease it has only just observed');
    clock.now += 14_000;
    await sleep(50);
    assert.equal(b.isLeader, false);
    clock.now += 1_500;
    await waitUntil(() => b.isLeader);
    assert.equal(api.lease!.spec!.holderIdentity, 'b');
    assert.equal(api.lease!.spec!.leaseTransitions, 4);
    await b.stop();
  });

  it('a renewing holder keeps its lease: each renew restarts the observation', async () => {
    const api = new FakeLeases();
    const clock = { now: 5_000_000 };
    const events: string[] = [];
    const a = elector(api, 'a', clock, events);
    a.start();
    await waitUntil(() => a.isLeader);
    const b = elector(api, 'b', clock, events);
    b.start();
    for (let i = 0; i < 10; i++) {
      clock.now += 2_000; // 20 s in total, more than a lease duration
      const n = api.writes.length;
      await waitUntil(() => api.writes.length > n);
      await sleep(20);
    }
    assert.equal(b.isLeader, false);
    assert.equal(api.lease!.spec!.holderIdentity, 'a');
    await b.stop();
    await a.stop();
  });

  it('steps down when it cannot renew within the renew deadline', async () => {
    const api = new FakeLeases();
    const clock = { now: 9_000_000 };
    const events: string[] = [];
    const a = elector(api, 'a', clock, events);
    a.start();
    await waitUntil(() => a.isLeader);
    api.fail = true;
    clock.now += 9_000;
    await sleep(50);
    assert.equal(a.isLeader, true, 'still within the renew deadline');
    clock.now += 2_000;
    await waitUntil(() => !a.isLeader);
    assert.deepEqual(events, ['a:start', 'a:stop']);
    await a.stop();
  });
});

async function waitUntil(fn: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(5);
  }
}
