// The quiesce handshake between `--restore-all` and a running agent on the same state dir, in one
// process playing both sides (pids and liveness injected): restore-all quiesces the loop, restores,
// and the values stay restored; a marker appearing mid-round; no agent / a silent agent / an agent
// that exits; an agent starting during a restore; a fresh agent clearing a stale marker.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { memoryLogger, silentLogger } from '../../common/log.js';
import type { Agent } from '../../daemon/agent.js';
import {
  AGENT_FILE,
  QUIESCE_ACK_FILE,
  QUIESCE_FILE,
  QUIESCE_MAX_AGE_MS,
  QuiesceGate,
  quiesceRunningAgent,
} from '../../daemon/state/quiesce.js';
import { container, document, type Harness, makeHarness, podDecision } from './harness.js';

const AGENT_PID = 1001;
const RESTORE_PID = 2002;
const NEXT_AGENT_PID = 3003;

async function eventually(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('quiesce handshake: --restore-all vs a running agent', () => {
  const alive = new Set<number>();
  const isAlive = (pid: number) => alive.has(pid);
  let h: Harness | null = null;
  let loop: NodeJS.Timeout | null = null;
  afterEach(() => {
    if (loop) clearInterval(loop);
    loop = null;
    h?.cleanup();
    h = null;
    alive.clear();
  });

  /** A running agent (AGENT_PID) enforcing burst on one pod; returns its gate, agent and dirs. */
  function running(log = silentLogger()) {
    let gate: QuiesceGate | null = null;
    h = makeHarness({ version: 1 }, log, { quiesced: () => gate!.check() });
    gate = new QuiesceGate(h.stateDir, log, { pid: AGENT_PID, isAlive, clock: () => h!.clock.now });
    alive.add(AGENT_PID);
    gate.start(1000);
    const { podDir, containerDirs } = h.fake.addPod({
      uid: 'q-1',
      qosClass: 'Burstable',
      containers: [{ id: 'containerd://q1', quotaUs: 200000 }],
    });
    const c1 = containerDirs[0]!;
    const original = { pod: h.fake.values(podDir), c1: h.fake.values(c1) };
    const agent = h.agent;
    const doc = document(1, [podDecision('q-1', [container('app', 'containerd://q1', 2000)])]);
    assert.equal(agent.apply(doc).result, 'Applied');
    assert.equal(h.fake.values(c1).burstUs, 200000);
    return { gate, agent, podDir, c1, original, doc, harness: h };
  }

  /** The agent's loop: one round per tick, the clock one interval on. */
  function tick(agent: Agent) {
    loop = setInterval(() => {
      h!.clock.now += 1000;
      agent.round();
    }, 5);
  }

  /** What `--restore-all` does after the handshake: load ownership now, restore every pod. */
  function restoreAll() {
    const r = h!.restart({ quiesced: undefined });
    return r.restoreAll();
  }

  it('restore-all quiesces the loop, restores, the values stay restored; a fresh agent re-applies', async () => {
    const { log, lines } = memoryLogger();
    const { gate, agent, podDir, c1, original, harness } = running(log);
    tick(agent);
    alive.add(RESTORE_PID);
    const q = await quiesceRunningAgent(harness.stateDir, log, { pid: RESTORE_PID, isAlive, pollMs: 5 });
    assert.equal(q.agent, 'acknowledged');
    assert.equal(q.agentPid, AGENT_PID);
    assert.ok(gate.quiesced);
    const r = restoreAll();
    alive.delete(RESTORE_PID);
    assert.deepEqual(r, { pods: 1, restored: 1, failed: 0, conflicts: 0 });
    assert.deepEqual(harness.fake.values(c1), original.c1);
    assert.deepEqual(harness.fake.values(podDir), original.pod);

    // Several more rounds of the still-running agent: nothing adopted, nothing written back.
    const rounds = agent.rounds;
    await new Promise((r) => setTimeout(r, 200));
    clearInterval(loop!);
    loop = null;
    assert.deepEqual(harness.fake.values(c1), original.c1);
    assert.deepEqual(harness.fake.values(podDir), original.pod);
    assert.equal(agent.rounds, rounds, 'a quiesced agent runs no rounds');
    // A decision arriving now (MQTT) is refused, not applied.
    const late = agent.apply(document(2, [podDecision('q-1', [container('app', 'containerd://q1', 2000)])]));
    assert.equal(late.result, 'Rejected');
    assert.equal(late.errors[0]?.reason, 'Quiesced');
    assert.deepEqual(harness.fake.values(c1), original.c1);
    assert.equal(agent.statusReport().quiesced, true);
    assert.match(await harness.metrics.registry.metrics(), /cpuburst_agent_quiesced 1/);
    await eventually('quiesce log', () =>
      lines.some((l) => String(l.message).startsWith('Quiesced by cpuburst agent --restore-all')),
    );

    // The old agent gets SIGTERM; the next pod's agent clears the stale marker and re-applies.
    gate.stop();
    alive.delete(AGENT_PID);
    assert.equal(fs.existsSync(path.join(harness.stateDir, AGENT_FILE)), false);
    alive.add(NEXT_AGENT_PID);
    const next = new QuiesceGate(harness.stateDir, log, { pid: NEXT_AGENT_PID, isAlive });
    next.start(1000);
    assert.equal(next.quiesced, false);
    assert.equal(fs.existsSync(path.join(harness.stateDir, QUIESCE_FILE)), false);
    const fresh = harness.restart({ quiesced: () => next.check() });
    fresh.round();
    assert.equal(harness.fake.values(c1).burstUs, 200000, 'retained decision enforced again');
    assert.equal(fresh.statusReport().quiesced, undefined);
    await eventually('stale marker log', () =>
      lines.some((l) => l.message === 'Cleared a stale quiesce marker; resuming enforcement'),
    );
  });

  it('a request arriving mid-round: the round finishes and saves first, the ack follows, the restore is complete', async () => {
    const { agent, podDir, c1, original, doc, harness } = running();
    // Restore back to the original, then re-apply with the request landing between two writes.
    agent.apply({ ...doc, version: 2, pods: [] });
    assert.deepEqual(harness.fake.values(c1), original.c1);
    alive.add(RESTORE_PID);
    const inFlight: { pending?: ReturnType<typeof quiesceRunningAgent> } = {};
    harness.fake.beforeWrite = () => {
      harness.fake.beforeWrite = null;
      // restore-all's synchronous prefix: marker written, agent found, first ack poll misses.
      inFlight.pending = quiesceRunningAgent(harness.stateDir, silentLogger(), {
        pid: RESTORE_PID,
        isAlive,
        pollMs: 5,
      });
    };
    assert.equal(agent.apply({ ...doc, version: 3 }).result, 'Applied');
    assert.ok(inFlight.pending, 'the request landed during the round');
    assert.equal(harness.fake.values(c1).burstUs, 200000, 'the round in flight completed');
    assert.equal(fs.existsSync(path.join(harness.stateDir, QUIESCE_ACK_FILE)), false, 'no ack mid-round');
    tick(agent);
    const q = await inFlight.pending;
    assert.equal(q.agent, 'acknowledged');
    // The restore sees that round's ownership (saved before the ack), so it puts everything back.
    const r = restoreAll();
    assert.equal(r.failed, 0);
    assert.deepEqual(harness.fake.values(c1), original.c1);
    assert.deepEqual(harness.fake.values(podDir), original.pod);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(harness.fake.values(c1), original.c1);
  });

  it('no running agent: no wait (no record, or a dead pid)', async () => {
    h = makeHarness({ version: 1 });
    const t0 = Date.now();
    const none = await quiesceRunningAgent(h.stateDir, silentLogger(), { pid: RESTORE_PID, isAlive });
    assert.deepEqual(none, { agent: 'none', agentPid: null, waitedMs: 0 });
    fs.writeFileSync(
      path.join(h.stateDir, AGENT_FILE),
      JSON.stringify({ pid: AGENT_PID, startedAt: new Date().toISOString(), intervalMs: 1000 }),
    );
    const dead = await quiesceRunningAgent(h.stateDir, silentLogger(), { pid: RESTORE_PID, isAlive });
    assert.equal(dead.agent, 'none');
    assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`);
    // With the real liveness check too: our own pid is never "the running agent".
    fs.writeFileSync(
      path.join(h.stateDir, AGENT_FILE),
      JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString(), intervalMs: 1000 }),
    );
    assert.equal((await quiesceRunningAgent(h.stateDir, silentLogger())).agent, 'none');
  });

  it('an agent that never answers: bounded by 5 intervals + 3 s, then restore anyway; one that exits: at once', async () => {
    h = makeHarness({ version: 1 });
    alive.add(AGENT_PID);
    fs.writeFileSync(
      path.join(h.stateDir, AGENT_FILE),
      JSON.stringify({ pid: AGENT_PID, startedAt: new Date().toISOString(), intervalMs: 1000 }),
    );
    let now = 0;
    const io = {
      pid: RESTORE_PID,
      isAlive,
      clock: () => now,
      sleep: async (ms: number) => {
        now += ms;
      },
    };
    const silent = await quiesceRunningAgent(h.stateDir, silentLogger(), io);
    assert.equal(silent.agent, 'timeout');
    assert.ok(silent.waitedMs >= 8000 && silent.waitedMs < 8100, String(silent.waitedMs));

    now = 0;
    const exiting = await quiesceRunningAgent(h.stateDir, silentLogger(), {
      ...io,
      sleep: async (ms: number) => {
        now += ms;
        if (now >= 500) alive.delete(AGENT_PID);
      },
    });
    assert.equal(exiting.agent, 'exited');
    assert.ok(exiting.waitedMs >= 500 && exiting.waitedMs < 1000, String(exiting.waitedMs));
  });

  it('an agent starting while a restore-all runs honours it; an old or orphaned marker is cleared', () => {
    h = makeHarness({ version: 1 });
    const dir = h.stateDir;
    const now = Date.parse('2026-01-01T00:00:00Z');
    const marker = (pid: number, ageMs: number) =>
      fs.writeFileSync(
        path.join(dir, QUIESCE_FILE),
        JSON.stringify({ nonce: `n-${pid}-${ageMs}`, pid, requestedAt: new Date(now - ageMs).toISOString() }),
      );
    alive.add(RESTORE_PID);
    marker(RESTORE_PID, 1000);
    const g = new QuiesceGate(dir, silentLogger(), { pid: AGENT_PID, isAlive, clock: () => now });
    g.start(1000);
    assert.equal(g.quiesced, true);
    const ack = JSON.parse(fs.readFileSync(path.join(dir, QUIESCE_ACK_FILE), 'utf8'));
    assert.deepEqual([ack.nonce, ack.pid], [`n-${RESTORE_PID}-1000`, AGENT_PID]);
    // A second restore-all gets its own ack from the already quiesced agent.
    marker(RESTORE_PID, 10);
    assert.equal(g.check(), true);
    assert.equal(
      JSON.parse(fs.readFileSync(path.join(dir, QUIESCE_ACK_FILE), 'utf8')).nonce,
      `n-${RESTORE_PID}-10`,
    );

    for (const [pid, age] of [
      [RESTORE_PID, QUIESCE_MAX_AGE_MS + 1], // pid alive but far too old: reused pid
      [4004, 10], // its restore-all has exited
    ] as const) {
      marker(pid, age);
      const fresh = new QuiesceGate(dir, silentLogger(), { pid: NEXT_AGENT_PID, isAlive, clock: () => now });
      fresh.start(1000);
      assert.equal(fresh.quiesced, false, `marker of pid ${pid} aged ${age} ms`);
      assert.equal(fs.existsSync(path.join(dir, QUIESCE_FILE)), false);
      assert.equal(fs.existsSync(path.join(dir, QUIESCE_ACK_FILE)), false);
    }
    // A marker touched by hand (unreadable) still quiesces a running agent.
    const running = new QuiesceGate(dir, silentLogger(), { pid: NEXT_AGENT_PID, isAlive });
    running.start(1000);
    fs.writeFileSync(path.join(dir, QUIESCE_FILE), '');
    assert.equal(running.check(), true);
    // SIGTERM unregisters only its own record.
    g.stop();
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, AGENT_FILE), 'utf8')).pid, NEXT_AGENT_PID);
    running.stop();
    assert.equal(fs.existsSync(path.join(dir, AGENT_FILE)), false);
  });
});
