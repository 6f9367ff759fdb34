// The HTTP auth hook, EMQX-style: POST {username, password, clientid, ipaddr} as JSON; the answer
// `{"result": "allow"|"deny"|"ignore"}` decides. Errors and timeouts count as `ignore` so one dead
// hook cannot lock out clients that another authenticator knows.
import type { AclRule } from '../acl.js';
import { parseAclRules } from '../acl.js';

export interface HookAnswer {
  result: 'allow' | 'deny' | 'ignore';
  reason?: string;
  acl?: AclRule[];
}

export async function askHttpHook(
  url: string,
  req: { username?: string; password?: Buffer; clientid: string; ipaddr?: string | null },
  timeoutMs = 5000,
): Promise<HookAnswer> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        username: req.username ?? null,
        password: req.password?.toString('utf8') ?? null,
        clientid: req.clientid,
        ipaddr: req.ipaddr ?? null,
      }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (res.status === 204) return { result: 'allow' };
    if (res.status === 401 || res.status === 403) return { result: 'deny', reason: `HTTP ${res.status}` };
    if (!res.ok) return { result: 'ignore', reason: `HTTP ${res.status}` };
    const body = (await res.json()) as { result?: unknown; acl?: unknown };
    if (body.result !== 'allow' && body.result !== 'deny' && body.result !== 'ignore') {
      return { result: 'ignore', reason: 'hook answer has no valid "result"' };
    }
    const out: HookAnswer = { result: body.result };
    if (body.acl !== undefined) out.acl = parseAclRules(body.acl, 'HTTP hook acl');
    return out;
  } catch (err) {
    return { result: 'ignore', reason: (err as Error).message };
  }
}
