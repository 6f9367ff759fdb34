// Node CPU usage from /proc/stat (--proc-root): cumulative busy and total jiffies, and the CPU count.
import fs from 'node:fs';
import path from 'node:path';

export interface ProcStatSample {
  busy: number;
  total: number;
  cpus: number;
}

export function parseProcStat(text: string): ProcStatSample | null {
  let busy = 0;
  let total = 0;
  let cpus = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('cpu ')) {
      const v = line.trim().split(/\s+/).slice(1).map(Number);
      if (v.length < 4 || v.some((x) => !Number.isFinite(x))) return null;
      // user nice system idle iowait irq softirq steal (guest is already inside user/nice)
      const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = v;
      busy = user + nice + system + irq + softirq + steal;
      total = busy + idle + iowait;
      found = true;
    } else if (/^cpu\d+\s/.test(line)) cpus++;
  }
  return found && cpus > 0 ? { busy, total, cpus } : null;
}

export function readProcStat(procRoot: string): ProcStatSample | null {
  try {
    return parseProcStat(fs.readFileSync(path.join(procRoot, 'stat'), 'utf8'));
  } catch {
    return null;
  }
}

/** Average busy cores between two samples (independent of USER_HZ). */
export function usageCores(a: ProcStatSample, b: ProcStatSample): number | null {
  const dt = b.total - a.total;
  if (dt <= 0) return null;
  return (Math.max(0, b.busy - a.busy) / dt) * b.cpus;
}
