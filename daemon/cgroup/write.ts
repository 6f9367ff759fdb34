// Executes a write plan through the fs adapter, reading every value back. Stops at the first
// failure: every prefix of a plan is a kernel-valid state, so stopping never leaves a half state
// that breaks the invariants; the next round re-reads and re-plans.
import path from 'node:path';
import type { Logger } from '../../common/log.js';
import { type CgroupFs, classifyError, type WriteErrorReason } from './fs.js';
import type { CgroupVersion } from './layout.js';
import type { Plan, PlannedWrite } from './plan.js';
import { parseCpuMax } from './read.js';

export interface WriteFailure {
  write: PlannedWrite;
  reason: WriteErrorReason | 'ReadbackMismatch';
  code: string;
  message: string;
}

export interface WriteResult {
  applied: PlannedWrite[];
  failure: WriteFailure | null;
}

export type WriteObserver = (w: PlannedWrite, outcome: 'ok' | WriteFailure['reason']) => void;

function readBack(fs: CgroupFs, version: CgroupVersion, w: PlannedWrite): boolean {
  const text = fs.read(path.join(w.dir, w.file)).trim();
  if (version === 2 && w.field === 'max') {
    const got = parseCpuMax(text);
    return got.quotaUs === w.after.quotaUs && got.periodUs === w.after.periodUs;
  }
  const n = Number(text);
  if (w.field === 'burst') return n === w.after.burstUs;
  if (w.field === 'period') return n === w.after.periodUs;
  return (n < 0 ? -1 : n) === w.after.quotaUs;
}

export function executePlan(
  fs: CgroupFs,
  version: CgroupVersion,
  plan: Plan,
  log: Logger,
  observe?: WriteObserver,
): WriteResult {
  const applied: PlannedWrite[] = [];
  for (const w of plan.writes) {
    const file = path.join(w.dir, w.file);
    try {
      fs.write(file, w.value);
    } catch (err) {
      const { reason, code } = classifyError(err);
      const message = (err as Error).message;
      const lvl = reason === 'CgroupNotFound' ? 'info' : 'error';
      log.log(lvl, 'Failed to write cgroup value', {
        path: file,
        value: w.value,
        reason,
        code,
        error: message,
      });
      observe?.(w, reason);
      return { applied, failure: { write: w, reason, code, message } };
    }
    let ok = false;
    try {
      ok = readBack(fs, version, w);
    } catch (err) {
      const { reason, code } = classifyError(err);
      observe?.(w, reason);
      return { applied, failure: { write: w, reason, code, message: (err as Error).message } };
    }
    if (!ok) {
      log.warn('Cgroup value differs after write', { path: file, value: w.value });
      observe?.(w, 'ReadbackMismatch');
      return {
        applied,
        failure: {
          write: w,
          reason: 'ReadbackMismatch',
          code: 'EIO',
          message: `read-back of ${file} differs`,
        },
      };
    }
    applied.push(w);
    observe?.(w, 'ok');
    log.debug('Wrote cgroup value', { path: file, value: w.value });
  }
  return { applied, failure: null };
}
