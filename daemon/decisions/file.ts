// --decisions-file: a DecisionDocument JSON on disk, re-read when it changes (polled every round:
// no inotify dependency, works on hostPath/ConfigMap mounts whose files are swapped by symlink).
// Malformed → a clear log line, the last good document stays in force, nothing is written.
import fs from 'node:fs';
import type { Logger } from '../../common/log.js';
import { type DecisionDocument, decode } from '../../protocol/index.js';
import type { AgentMetrics } from '../metrics.js';

export class DecisionFile {
  private lastKey = '';

  constructor(
    readonly file: string,
    private readonly node: string,
    private readonly log: Logger,
    private readonly metrics: AgentMetrics,
  ) {}

  /** A new valid document when the file changed since the last call, else null. */
  poll(): DecisionDocument | null {
    let st: fs.Stats;
    try {
      st = fs.statSync(this.file);
    } catch (err) {
      const key = 'missing';
      if (this.lastKey !== key)
        this.log.warn('Decision file not readable, keeping the last good document', {
          file: this.file,
          error: (err as Error).message,
        });
      this.lastKey = key;
      return null;
    }
    const key = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (key === this.lastKey) return null;
    this.lastKey = key;
    this.metrics.decisionsReceived.inc({ source: 'file' });
    let body: Buffer;
    try {
      body = fs.readFileSync(this.file);
    } catch (err) {
      this.reject('Unreadable', (err as Error).message);
      return null;
    }
    const d = decode.decisions(body);
    if (!d.ok) {
      this.reject('Invalid', d.error);
      return null;
    }
    if (d.value.node !== this.node) {
      this.reject('WrongNode', `document is for node ${d.value.node}, this is ${this.node}`);
      return null;
    }
    return d.value;
  }

  private reject(reason: string, error: string): void {
    this.metrics.decisionsRejected.inc({ source: 'file', reason });
    this.log.error('Decision file rejected, keeping the last good document', {
      file: this.file,
      reason,
      error,
    });
  }
}
