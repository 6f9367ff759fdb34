// Quiesce handshake between `cpuburst agent --restore-all` and a long-running agent on the same
// --state-dir. The DaemonSet's preStop runs restore-all while the agent in the same container still
// runs; without this, the loop would see the restored values as a foreign change, adopt them and
// write its burst back a round later.
//
// Files in the state dir (all written atomically, tmp + fsync + rename):
// * agent.json        — the running agent registers itself (pid, interval) at start;
// * quiesce.json      — restore-all's request (nonce, its pid), left in place after the restore;
// * quiesce-ack.json  — the agent's answer (same nonce, its pid), written only between rounds.
//
// Ordering: the agent registers first and then looks for a marker; restore-all writes its marker
// first and then looks for a registered agent. So at least one of them sees the other: either
// restore-all waits for the ack, or the starting agent finds a live request and quiesces.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../common/log.js';
import { writeFileAtomic } from './store.js';

export const AGENT_FILE = 'agent.json';
export const QUIESCE_FILE = 'quiesce.json';
export const QUIESCE_ACK_FILE = 'quiesce-ack.json';
/** A request older than this is stale even when a process with its writer's pid exists (pid reuse). */
export const QUIESCE_MAX_AGE_MS = 120_000;

export interface AgentRecord {
  pid: number;
  startedAt: string;
  intervalMs: number;
}

export interface QuiesceRequest {
  nonce: string;
  pid: number;
  requestedAt: string;
}

export interface QuiesceAck {
  nonce: string;
  pid: number;
  ackedAt: string;
}

export interface QuiesceIo {
  /** This process's pid (injected so in-process tests can play two processes). */
  pid?: number;
  isAlive?: (pid: number) => boolean;
  clock?: () => number;
}

/** kill(pid, 0): ESRCH = gone; EPERM = exists but not ours. */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readJson<T>(file: string): T | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return null;
  }
}

function removeFile(file: string): void {
  fs.rmSync(file, { force: true });
}

/** The running agent's side: checked before every round and before applying any decision. */
export class QuiesceGate {
  /** The request that quiesced this agent; sticky until the process exits. */
  request: QuiesceRequest | null = null;
  private ackedNonce: string | null = null;
  private readonly pid: number;
  private readonly isAlive: (pid: number) => boolean;
  private readonly clock: () => number;

  constructor(
    readonly stateDir: string,
    private readonly log: Logger,
    io: QuiesceIo = {},
  ) {
    this.pid = io.pid ?? process.pid;
    this.isAlive = io.isAlive ?? pidAlive;
    this.clock = io.clock ?? Date.now;
  }

  get quiesced(): boolean {
    return this.request !== null;
  }

  private file(name: string): string {
    return path.join(this.stateDir, name);
  }

  /**
   * At agent start, before anything is enforced: register, then clear a stale request (its
   * restore-all has finished: a rolling update restores, then the new agent re-applies) or honour
   * one whose restore-all is still running.
   */
  start(intervalMs: number): void {
    fs.mkdirSync(this.stateDir, { recursive: true });
    const rec: AgentRecord = { pid: this.pid, startedAt: new Date(this.clock()).toISOString(), intervalMs };
    writeFileAtomic(this.file(AGENT_FILE), `${JSON.stringify(rec)}\n`);
    if (!fs.existsSync(this.file(QUIESCE_FILE))) return;
    const req = readJson<QuiesceRequest>(this.file(QUIESCE_FILE));
    const age = req ? this.clock() - Date.parse(req.requestedAt) : Number.NaN;
    const live = req !== null && req.pid !== this.pid && this.isAlive(req.pid) && age < QUIESCE_MAX_AGE_MS;
    if (live) {
      this.check();
      return;
    }
    removeFile(this.file(QUIESCE_FILE));
    removeFile(this.file(QUIESCE_ACK_FILE));
    this.log.info('Cleared a stale quiesce marker; resuming enforcement', {
      requestedBy: req?.pid ?? null,
      requestedAt: req?.requestedAt ?? null,
    });
  }

  /**
   * True when quiesced (no cgroup writes). Acks each new request; callers only call this between
   * rounds, so an ack means no write of this agent can follow it.
   */
  check(): boolean {
    if (!fs.existsSync(this.file(QUIESCE_FILE))) return this.quiesced;
    // Any marker is a request to stop writing; an unreadable one (e.g. touched by hand) too.
    const req = readJson<QuiesceRequest>(this.file(QUIESCE_FILE)) ?? {
      nonce: '',
      pid: 0,
      requestedAt: new Date(this.clock()).toISOString(),
    };
    if (req.nonce === this.ackedNonce && this.request) return true;
    if (!this.request)
      this.log.warn(
        'Quiesced by cpuburst agent --restore-all: no more cgroup writes until the agent restarts',
        {
          requestedBy: req.pid,
          nonce: req.nonce,
        },
      );
    this.request = req;
    const ack: QuiesceAck = {
      nonce: req.nonce,
      pid: this.pid,
      ackedAt: new Date(this.clock()).toISOString(),
    };
    writeFileAtomic(this.file(QUIESCE_ACK_FILE), `${JSON.stringify(ack)}\n`);
    this.ackedNonce = req.nonce;
    return true;
  }

  /** On SIGTERM: unregister (only our own record; a newer agent may have replaced it). */
  stop(): void {
    const rec = readJson<AgentRecord>(this.file(AGENT_FILE));
    if (rec?.pid === this.pid) removeFile(this.file(AGENT_FILE));
  }
}

export interface QuiesceOutcome {
  /** none: no running agent; acknowledged; exited: it stopped while we waited; timeout: no answer. */
  agent: 'none' | 'acknowledged' | 'exited' | 'timeout';
  agentPid: number | null;
  waitedMs: number;
}

/**
 * restore-all's side: ask a running agent to stop writing and wait until it has acknowledged (it
 * answers between rounds, so its last round's ownership is on disk before the restore loads it).
 * With no running agent it returns at once. The marker stays: the old agent must not resume.
 */
export async function quiesceRunningAgent(
  stateDir: string,
  log: Logger,
  opts: QuiesceIo & { timeoutMs?: number; pollMs?: number; sleep?: (ms: number) => Promise<void> } = {},
): Promise<QuiesceOutcome> {
  const pid = opts.pid ?? process.pid;
  const isAlive = opts.isAlive ?? pidAlive;
  const clock = opts.clock ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const pollMs = opts.pollMs ?? 25;
  fs.mkdirSync(stateDir, { recursive: true });
  const req: QuiesceRequest = { nonce: randomUUID(), pid, requestedAt: new Date(clock()).toISOString() };
  writeFileAtomic(path.join(stateDir, QUIESCE_FILE), `${JSON.stringify(req)}\n`);

  const rec = readJson<AgentRecord>(path.join(stateDir, AGENT_FILE));
  if (!rec || rec.pid === pid || !isAlive(rec.pid)) {
    log.info('No running agent on this state dir; restoring without waiting', { stateDir });
    return { agent: 'none', agentPid: null, waitedMs: 0 };
  }
  // A few rounds: the agent checks before each one; a slow round on a loaded node delays it.
  const interval = Number.isFinite(rec.intervalMs) && rec.intervalMs > 0 ? rec.intervalMs : 1000;
  const timeoutMs = opts.timeoutMs ?? Math.min(20_000, 5 * interval + 3000);
  const started = clock();
  log.info('Asked the running agent to stop writing; waiting for its acknowledgement', {
    agentPid: rec.pid,
    timeoutMs,
  });
  for (;;) {
    const waitedMs = clock() - started;
    const ack = readJson<QuiesceAck>(path.join(stateDir, QUIESCE_ACK_FILE));
    if (ack?.nonce === req.nonce) {
      log.info('Running agent acknowledged the quiesce request', { agentPid: ack.pid, waitedMs });
      return { agent: 'acknowledged', agentPid: ack.pid, waitedMs };
    }
    if (!isAlive(rec.pid)) {
      log.info('Running agent exited before acknowledging; restoring', { agentPid: rec.pid, waitedMs });
      return { agent: 'exited', agentPid: rec.pid, waitedMs };
    }
    if (waitedMs >= timeoutMs) {
      log.warn('Running agent did not acknowledge the quiesce request in time; restoring anyway', {
        agentPid: rec.pid,
        waitedMs,
      });
      return { agent: 'timeout', agentPid: rec.pid, waitedMs };
    }
    await sleep(pollMs);
  }
}
