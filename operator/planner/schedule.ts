// Schedule windows of a strategy: cron expressions (parsed by node-cron) evaluated in a time zone.
// Pure: `now` is an argument, so tests pin time without fake timers.
import { parse as parseCron, validateDetailed } from 'node-cron';
import type { ScheduleWindow, StrategySchedule } from '../types.js';

interface Fields {
  minute: Set<number>;
  hour: Set<number>;
  dayOfMonth: Set<number>;
  month: Set<number>;
  dayOfWeek: Set<number>;
}

const MAX_WINDOW_MINUTES = 168 * 60;
const fieldCache = new Map<string, Fields | string>();
const fmtCache = new Map<string, Intl.DateTimeFormat>();

/** Parses a 5-field cron expression; returns an error string when it is invalid. */
export function compileCron(expr: string): Fields | string {
  const hit = fieldCache.get(expr);
  if (hit) return hit;
  let out: Fields | string;
  if (expr.trim().split(/\s+/).length !== 5)
    out = `"${expr}" must have 5 fields (minute hour day month weekday)`;
  else {
    const v = validateDetailed(expr);
    if (!v.valid) out = `"${expr}": ${v.errors.map((e) => e.message).join('; ')}`;
    else {
      const p = parseCron(expr);
      const nums = (xs: (number | string)[]) => new Set(xs.map(Number));
      // Cron allows 7 as Sunday.
      const dow = nums(p.dayOfWeek);
      if (dow.has(7)) dow.add(0);
      out = {
        minute: nums(p.minute),
        hour: nums(p.hour),
        dayOfMonth: nums(p.dayOfMonth),
        month: nums(p.month),
        dayOfWeek: dow,
      };
    }
  }
  fieldCache.set(expr, out);
  return out;
}

/** "2h", "90m", "1h30m" → minutes; null when malformed or out of range. */
export function parseDuration(d: string): number | null {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?$/.exec(d.trim());
  if (!m || (!m[1] && !m[2])) return null;
  const minutes = Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0);
  return minutes > 0 && minutes <= MAX_WINDOW_MINUTES ? minutes : null;
}

export function validTimeZone(tz: string): boolean {
  try {
    formatter(tz);
    return true;
  } catch {
    return false;
  }
}

function formatter(tz: string): Intl.DateTimeFormat {
  let f = fmtCache.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      weekday: 'short',
    });
    fmtCache.set(tz, f);
  }
  return f;
}

const WEEKDAYS: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

function localFields(t: number, tz: string) {
  const parts: Record<string, string> = {};
  for (const p of formatter(tz).formatToParts(new Date(t))) parts[p.type] = p.value;
  return {
    minute: Number(parts.minute),
    hour: Number(parts.hour) % 24,
    day: Number(parts.day),
    month: Number(parts.month),
    weekday: WEEKDAYS[parts.weekday!] ?? 0,
  };
}

/**
 * The latest minute ≤ now (epoch ms, minute-aligned) at which `f` fires, looking back at most
 * `lookbackMin` minutes; null when none. Skips whole local hours whose hour/day does not match.
 */
function lastFire(f: Fields, tz: string, now: number, lookbackMin: number): number | null {
  let t = Math.floor(now / 60_000) * 60_000;
  const stop = t - lookbackMin * 60_000;
  while (t >= stop) {
    const l = localFields(t, tz);
    const dayOk = f.dayOfMonth.has(l.day) && f.month.has(l.month) && f.dayOfWeek.has(l.weekday);
    if (!dayOk || !f.hour.has(l.hour)) {
      t -= (l.minute + 1) * 60_000; // jump to the last minute of the previous local hour
      continue;
    }
    if (f.minute.has(l.minute)) return t;
    t -= 60_000;
  }
  return null;
}

export interface ScheduleState {
  active: boolean;
  /** Human-readable reason for status. */
  message: string;
  /** Set when the schedule itself is invalid (the strategy is then treated as inactive). */
  error?: string;
}

function windowOpen(w: ScheduleWindow, tz: string, now: number): boolean | string {
  const start = compileCron(w.start);
  if (typeof start === 'string') return start;
  if (w.duration !== undefined) {
    const minutes = parseDuration(w.duration);
    if (minutes === null) return `duration "${w.duration}" must look like 90m, 2h or 1h30m (at most 168h)`;
    const s = lastFire(start, tz, now, minutes - 1);
    return s !== null;
  }
  if (w.end !== undefined) {
    const end = compileCron(w.end);
    if (typeof end === 'string') return end;
    const s = lastFire(start, tz, now, MAX_WINDOW_MINUTES);
    if (s === null) return false;
    const e = lastFire(end, tz, now, MAX_WINDOW_MINUTES);
    // Open when the window started after it last closed (a start and end in the same minute: closed).
    return e === null || s > e;
  }
  return 'a window needs either duration or end';
}

/** Whether the strategy applies at `now`. Without a schedule it always does. */
export function scheduleState(schedule: StrategySchedule | undefined, now: Date): ScheduleState {
  if (!schedule) return { active: true, message: 'no schedule' };
  const tz = schedule.timeZone || 'UTC';
  if (!validTimeZone(tz)) {
    const error = `unknown time zone "${tz}"`;
    return { active: false, message: error, error };
  }
  const windows = schedule.windows ?? [];
  if (windows.length === 0) return { active: false, message: 'schedule has no windows', error: 'no windows' };
  for (const [i, w] of windows.entries()) {
    const open = windowOpen(w, tz, now.getTime());
    if (typeof open === 'string') {
      const error = `schedule window ${i}: ${open}`;
      return { active: false, message: error, error };
    }
    if (open) return { active: true, message: `inside schedule window ${i} (${tz})` };
  }
  return { active: false, message: `outside every schedule window (${tz})` };
}
