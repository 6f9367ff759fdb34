// The work queue: dedupe, one in-flight per key, re-run when dirtied in flight, per-item backoff.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkQueue } from '../../operator/kube/workqueue.js';

describe('WorkQueue', () => {
  it('dedupes a key queued several times', async () => {
    const seen: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const q = new WorkQueue(
      async (k) => {
        seen.push(k);
        if (k === 'block') await gate;
      },
      { concurrency: 1 },
    );
    q.add('block');
    q.add('a');
    q.add('a');
    q.add('a');
    assert.equal(q.depth, 1);
    release();
    await q.idle();
    assert.deepEqual(seen, ['block', 'a']);
  });

  it('never runs one key twice at once, and re-runs a key added while in flight', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let runs = 0;
    const q = new WorkQueue(
      async () => {
        inFlight++;
        runs++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await sleep(20);
        inFlight--;
      },
      { concurrency: 4 },
    );
    q.add('k');
    await sleep(5);
    q.add('k');
    q.add('k');
    await q.idle();
    await sleep(30);
    await q.idle();
    assert.equal(maxInFlight, 1);
    assert.equal(runs, 2, 'one run, then exactly one re-run for the adds during it');
  });

  it('retries a failing key with growing delays, then succeeds', async () => {
    const times: number[] = [];
    const retries: number[] = [];
    const q = new WorkQueue(
      async () => {
        times.push(Date.now());
        if (times.length < 4) throw new Error('boom');
      },
      { baseDelayMs: 20, maxDelayMs: 1000, onRetry: (_k, _n, d) => retries.push(d) },
    );
    q.add('x');
    const deadline = Date.now() + 5000;
    while (times.length < 4 && Date.now() < deadline) await sleep(10);
    assert.equal(times.length, 4);
    assert.deepEqual(retries, [20, 40, 80]);
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! - times[i - 1]! >= retries[i - 1]! - 5);
    assert.equal(q.retries('x'), 0, 'success resets the failure count');
    await q.shutdown();
  });

  it('runs different keys concurrently up to the limit', async () => {
    let inFlight = 0;
    let max = 0;
    const q = new WorkQueue(
      async () => {
        inFlight++;
        max = Math.max(max, inFlight);
        await sleep(20);
        inFlight--;
      },
      { concurrency: 3 },
    );
    for (const k of ['a', 'b', 'c', 'd', 'e']) q.add(k);
    await q.idle();
    assert.equal(max, 3);
  });

  it('addThrottled runs a burst of triggers once per window and never postpones it', async () => {
    const runs: number[] = [];
    const q = new WorkQueue(async () => {
      runs.push(Date.now());
    });
    const t0 = Date.now();
    // 40 triggers over ~400 ms with a 150 ms window: a debounce would run once at the end (or never
    // while triggers keep coming); the throttle runs about every 150 ms.
    for (let i = 0; i < 40; i++) {
      q.addThrottled('status', 150);
      await sleep(10);
    }
    await sleep(250);
    await q.idle();
    assert.ok(runs.length >= 2 && runs.length <= 5, `runs: ${runs.length}`);
    assert.ok(runs[0]! - t0 < 350, 'the first run came within the window, not after the burst');
    q.add('x');
    q.addThrottled('x', 10_000); // already queued: no extra timer
    await q.idle();
    await q.shutdown();
  });
});
