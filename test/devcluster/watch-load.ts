// Watch fan-out load harness shared by the load test and bench/components/devcluster-watch.bench.ts:
// N raw NDJSON watchers + M writes over HTTP; checks every watcher saw every event, in order.
import http from 'node:http';

export interface LoadOptions {
  url: string;
  watchers: number;
  writes: number;
  /** parallel writers (each keeps one request in flight). */
  concurrency?: number;
  /** distinct ConfigMaps written to (created first, then patched). */
  objects?: number;
  namespace?: string;
  timeoutMs?: number;
}

export interface LoadResult {
  watchers: number;
  writes: number;
  durationMs: number;
  writesPerSec: number;
  eventsDelivered: number;
  eventsPerSec: number;
  fanoutP50Ms: number;
  fanoutP99Ms: number;
  fanoutMaxMs: number;
  /** human-readable problems: missing, duplicated or out-of-order events. Empty = all good. */
  problems: string[];
}

const RV = Buffer.from('"resourceVersion":"');

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function runWatchLoad(o: LoadOptions): Promise<LoadResult> {
  const ns = o.namespace ?? 'default';
  const objects = o.objects ?? 100;
  const concurrency = o.concurrency ?? 64;
  const base = `${o.url}/api/v1/namespaces/${ns}/configmaps`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const watchAgent = new http.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });

  const call = (method: string, url: string, body: unknown, ct = 'application/json') =>
    new Promise<any>((resolve, reject) => {
      const data = JSON.stringify(body);
      const req = http.request(
        url,
        { method, agent, headers: { 'Content-Type': ct, 'Content-Length': Buffer.byteLength(data) } },
        (res) => {
          let s = '';
          res.setEncoding('utf8');
          res.on('data', (c) => {
            s += c;
          });
          res.on('end', () =>
            res.statusCode && res.statusCode < 300
              ? resolve(JSON.parse(s))
              : reject(new Error(`${method} ${url}: ${res.statusCode} ${s}`)),
          );
        },
      );
      req.on('error', reject);
      req.end(data);
    });

  const list = await new Promise<any>((resolve, reject) => {
    http
      .get(base, { agent }, (res) => {
        let s = '';
        res.on('data', (c) => {
          s += c;
        });
        res.on('end', () => resolve(JSON.parse(s)));
      })
      .on('error', reject);
  });
  const startRv = Number(list.metadata.resourceVersion);
  const sentAt = new Float64Array(o.writes + 1); // index = rv - startRv
  const latencies = new Float64Array(o.watchers * o.writes);
  let latN = 0;
  const problems: string[] = [];
  const seen = new Int32Array(o.watchers);
  const reqs: http.ClientRequest[] = [];
  let allDone!: () => void;
  const done = new Promise<void>((r) => {
    allDone = r;
  });
  let finished = 0;

  await Promise.all(
    Array.from(
      { length: o.watchers },
      (_, w) =>
        new Promise<void>((resolve, reject) => {
          let pending: Buffer | undefined;
          const req = http.get(
            `${base}?watch=true&resourceVersion=${startRv}`,
            { agent: watchAgent },
            (res) => {
              if (res.statusCode !== 200) reject(new Error(`watch ${w}: HTTP ${res.statusCode}`));
              resolve();
              res.on('data', (chunk: Buffer) => {
                const now = performance.now();
                let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
                let start = 0;
                for (;;) {
                  const nl = buf.indexOf(10, start);
                  if (nl < 0) break;
                  const at = buf.indexOf(RV, start);
                  if (at < 0 || at > nl) problems.push(`watcher ${w}: event without resourceVersion`);
                  else {
                    let rv = 0;
                    for (let i = at + RV.length; buf[i] !== 34; i++) rv = rv * 10 + buf[i]! - 48;
                    const expected = startRv + seen[w]! + 1;
                    if (rv !== expected && problems.length < 20)
                      problems.push(`watcher ${w}: got rv ${rv}, expected ${expected}`);
                    seen[w]!++;
                    const t0 = sentAt[rv - startRv];
                    if (t0) latencies[latN++] = now - t0;
                    if (seen[w] === o.writes) {
                      finished++;
                      if (finished === o.watchers) allDone();
                    }
                  }
                  start = nl + 1;
                }
                pending = start < buf.length ? buf.subarray(start) : undefined;
                buf = Buffer.alloc(0);
              });
            },
          );
          req.on('error', (e) => {
            if (seen[w]! < o.writes) problems.push(`watcher ${w}: ${e.message}`);
            resolve();
          });
          reqs.push(req);
        }),
    ),
  );

  const t0 = performance.now();
  let next = 0;
  const writer = async (limit: number) => {
    for (;;) {
      const i = next++;
      if (i >= limit) return;
      const name = `load-${i % objects}`;
      const stamp = performance.now();
      const obj =
        i < objects
          ? await call('POST', base, {
              apiVersion: 'v1',
              kind: 'ConfigMap',
              metadata: { name },
              data: { i: String(i) },
            })
          : await call(
              'PATCH',
              `${base}/${name}`,
              { data: { i: String(i) } },
              'application/merge-patch+json',
            );
      // Record when this write was sent, keyed by the resourceVersion it produced.
      sentAt[Number(obj.metadata.resourceVersion) - startRv] = stamp;
    }
  };
  // Creates first (a patch must not race its object's create), then patches.
  await Promise.all(Array.from({ length: concurrency }, () => writer(Math.min(objects, o.writes))));
  next = Math.min(objects, o.writes);
  await Promise.all(Array.from({ length: concurrency }, () => writer(o.writes)));
  const writeMs = performance.now() - t0;
  const timeout = new Promise<void>((r) => setTimeout(r, o.timeoutMs ?? 50_000).unref());
  await Promise.race([done, timeout]);
  const durationMs = performance.now() - t0;
  for (let w = 0; w < o.watchers; w++)
    if (seen[w] !== o.writes && problems.length < 40)
      problems.push(`watcher ${w}: saw ${seen[w]} of ${o.writes} events`);
  for (const r of reqs) r.destroy();
  agent.destroy();
  watchAgent.destroy();
  const lat = latencies.subarray(0, latN).sort();
  const delivered = seen.reduce((a, b) => a + b, 0);
  return {
    watchers: o.watchers,
    writes: o.writes,
    durationMs: Math.round(durationMs),
    writesPerSec: Math.round(o.writes / (writeMs / 1000)),
    eventsDelivered: delivered,
    eventsPerSec: Math.round(delivered / (durationMs / 1000)),
    fanoutP50Ms: Number(percentile(lat, 50).toFixed(1)),
    fanoutP99Ms: Number(percentile(lat, 99).toFixed(1)),
    fanoutMaxMs: Number((lat[lat.length - 1] ?? 0).toFixed(1)),
    problems,
  };
}
