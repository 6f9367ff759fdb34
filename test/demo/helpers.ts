// Shared teardown for tests that run the whole demo: stop it the way a user would (SIGINT), and if
// that fails, make sure none of its component processes outlives the test.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function stopDemo(demo: ChildProcess, workDir: string, timeoutMs = 40000): Promise<void> {
  const running = () => demo.exitCode === null && demo.signalCode === null;
  if (running()) {
    demo.kill('SIGINT');
    const end = Date.now() + timeoutMs;
    while (running() && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    if (running()) demo.kill('SIGKILL');
  }
  let pids: number[] = [];
  try {
    const stack = JSON.parse(fs.readFileSync(path.join(workDir, 'stack.json'), 'utf8'));
    pids = [...Object.values(stack.pids as Record<string, number>), ...(stack.containerPids as number[])];
  } catch {
    return; // the stack never came up
  }
  for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
}
