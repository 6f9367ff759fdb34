// Runs the real `cpuburst` entry point from source (tsx), as tests and the demo spawn components.
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** argv that starts `cpuburst <args>` from the TypeScript sources. */
export function cliArgv(args: string[]): [string, string[]] {
  return [process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'cli.ts'), ...args]];
}

export function spawnCli(args: string[], opts: SpawnOptions = {}): ChildProcess {
  const [cmd, argv] = cliArgv(args);
  return spawn(cmd, argv, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

/** Runs a CLI command to completion and returns its exit code and output. */
export function runCli(
  args: string[],
  opts: SpawnOptions = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, opts);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => {
      stdout += d;
    });
    child.stderr?.on('data', (d) => {
      stderr += d;
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
