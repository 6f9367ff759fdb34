// Watch-heavy load: 1,000 watchers × 10,000 writes; every watcher sees every event, in order.
// The API server runs as a real `cpuburst devcluster` process so it has its own core.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import { spawnCli } from '../support/cli.js';
import { waitFor } from './helpers.js';
import { runWatchLoad } from './watch-load.js';

let child: ChildProcess | undefined;
const dir = mkdtempSync(path.join(tmpdir(), 'devcluster-load-'));
after(() => {
  child?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

// About 20 s on an idle 2-core machine. Delivery gets a generous deadline because a machine loaded by
// other test files can halve our CPU; the duration bound only catches pathological regressions.
it('1,000 watchers see all 10,000 writes in order', { timeout: 170_000 }, async () => {
  const portsFile = path.join(dir, 'ports.json');
  child = spawnCli(['devcluster', '--port', '0', '--ports-file', portsFile, '--log-level', 'warn']);
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const { url } = await waitFor(
    () => {
      try {
        return JSON.parse(readFileSync(portsFile, 'utf8')) as { url: string };
      } catch {
        return undefined;
      }
    },
    'devcluster to listen',
    30_000,
  );
  const r = await runWatchLoad({ url, watchers: 1000, writes: 10_000, timeoutMs: 120_000 });
  process.stdout.write(`# load: ${JSON.stringify({ ...r, problems: r.problems.length })}\n`);
  assert.deepEqual(r.problems, [], stderr);
  assert.equal(r.eventsDelivered, 10_000_000);
  assert.ok(r.durationMs < 120_000, `took ${r.durationMs} ms`);
});
