// Label and field selectors as the API server parses them from ?labelSelector= and ?fieldSelector=.
import { errors } from './errors.js';

export type Requirement =
  | { key: string; op: '=' | '!='; values: [string] }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | '!'; values: [] };

export type Matcher = (obj: Record<string, any>) => boolean;

const matchAll: Matcher = () => true;

/** Splits on commas that are not inside parentheses: `a in (x,y),b` → [`a in (x,y)`, `b`]. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((p) => p.trim()).filter(Boolean);
}

export function parseLabelSelector(raw: string | null | undefined): Requirement[] {
  if (!raw) return [];
  return splitTop(raw).map((part) => {
    let m = /^([A-Za-z0-9._/-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(part);
    if (m)
      return {
        key: m[1]!,
        op: m[2] as 'in' | 'notin',
        values: m[3]!
          .split(',')
          .map((v) => v.trim())
          .filter(Boolean),
      };
    m = /^([A-Za-z0-9._/-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)$/.exec(part);
    if (m) return { key: m[1]!, op: m[2] === '!=' ? '!=' : '=', values: [m[3]!] };
    m = /^!\s*([A-Za-z0-9._/-]+)$/.exec(part);
    if (m) return { key: m[1]!, op: '!', values: [] };
    m = /^([A-Za-z0-9._/-]+)$/.exec(part);
    if (m) return { key: m[1]!, op: 'exists', values: [] };
    throw errors.badRequest(`unable to parse requirement: ${JSON.stringify(part)}`);
  }) as Requirement[];
}

function matchRequirements(reqs: Requirement[], labels: Record<string, string>): boolean {
  for (const r of reqs) {
    const has = Object.hasOwn(labels, r.key);
    const v = labels[r.key];
    switch (r.op) {
      case '=':
        if (!has || v !== r.values[0]) return false;
        break;
      case '!=':
        if (has && v === r.values[0]) return false;
        break;
      case 'in':
        if (!has || !r.values.includes(v!)) return false;
        break;
      case 'notin':
        if (has && r.values.includes(v!)) return false;
        break;
      case 'exists':
        if (!has) return false;
        break;
      case '!':
        if (has) return false;
        break;
    }
  }
  return true;
}

export function labelMatcher(raw: string | null | undefined): Matcher {
  const reqs = parseLabelSelector(raw);
  if (reqs.length === 0) return matchAll;
  return (obj) => matchRequirements(reqs, obj.metadata?.labels ?? {});
}

/** Reads a dotted field path (`spec.nodeName`, `involvedObject.uid`) as a selector string value. */
function fieldValue(obj: Record<string, any>, path: string): string {
  let cur: any = obj;
  for (const p of path.split('.')) {
    if (cur == null) return '';
    cur = cur[p];
  }
  if (cur == null) return '';
  return typeof cur === 'object' ? JSON.stringify(cur) : String(cur);
}

/**
 * Field selectors: `=`, `==`, `!=` joined by commas. The real server allows a per-type list of fields
 * (metadata.name, metadata.namespace, spec.nodeName, status.phase, involvedObject.*); this emulator
 * accepts any dotted path, which is a superset.
 */
export function fieldMatcher(raw: string | null | undefined): Matcher {
  if (!raw) return matchAll;
  const reqs = splitTop(raw).map((part) => {
    const m = /^([A-Za-z0-9._-]+)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (!m) throw errors.badRequest(`invalid selector: '${raw}'; can't understand '${part}'`);
    return { path: m[1]!, neg: m[2] === '!=', value: m[3]! };
  });
  return (obj) => reqs.every((r) => (fieldValue(obj, r.path) === r.value) !== r.neg);
}

export function combine(...ms: Matcher[]): Matcher {
  const real = ms.filter((m) => m !== matchAll);
  if (real.length === 0) return matchAll;
  if (real.length === 1) return real[0]!;
  return (obj) => real.every((m) => m(obj));
}

export function isMatchAll(m: Matcher): boolean {
  return m === matchAll;
}
