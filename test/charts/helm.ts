// Runs the real helm binary (.tools/helm, fetched by `make tools`) against charts/cpuburst and parses
// what it renders. Each call gets private HELM_* homes so tests never touch the user's helm config.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../support/cli.js';

export const HELM = path.join(REPO_ROOT, '.tools', 'helm');
export const KUBECTL = path.join(REPO_ROOT, '.tools', 'kubectl');
export const CHART = path.join(REPO_ROOT, 'charts', 'cpuburst');
export const RELEASE = 'rel';
export const NAMESPACE = 'cpuburst-system';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [key: string]: any;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function requireTool(bin: string): void {
  if (!existsSync(bin))
    throw new Error(`${bin} is missing: run \`make tools\` first (it fetches helm and kubectl)`);
}

export function run(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  cwd = REPO_ROOT,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let helmHome: string | undefined;
function helmEnv(): NodeJS.ProcessEnv {
  if (!helmHome) {
    helmHome = mkdtempSync(path.join(os.tmpdir(), 'cpuburst-helm-'));
    process.once('exit', () => rmSync(helmHome!, { recursive: true, force: true }));
  }
  return {
    HELM_CACHE_HOME: path.join(helmHome, 'cache'),
    HELM_CONFIG_HOME: path.join(helmHome, 'config'),
    HELM_DATA_HOME: path.join(helmHome, 'data'),
    KUBECONFIG: path.join(helmHome, 'no-kubeconfig'),
  };
}

export function helm(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  requireTool(HELM);
  return run(HELM, args, { ...helmEnv(), ...env });
}

/** Value-file and --set arguments for a render. */
export interface RenderOptions {
  release?: string;
  namespace?: string;
  valuesFiles?: string[];
  set?: string[];
  includeCrds?: boolean;
}

function valueArgs(opts: RenderOptions): string[] {
  return [
    ...(opts.valuesFiles ?? []).flatMap((f) => ['-f', f]),
    ...(opts.set ?? []).flatMap((s) => ['--set', s]),
  ];
}

/** `helm template` output as text; throws with helm's stderr on failure. */
export async function templateText(opts: RenderOptions = {}): Promise<string> {
  const r = await helm([
    'template',
    opts.release ?? RELEASE,
    CHART,
    '--namespace',
    opts.namespace ?? NAMESPACE,
    ...(opts.includeCrds ? ['--include-crds'] : []),
    ...valueArgs(opts),
  ]);
  if (r.code !== 0) throw new Error(`helm template failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

export function parseManifests(text: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) throw new Error(`rendered YAML does not parse: ${doc.errors[0]!.message}`);
    const obj = doc.toJS();
    if (obj != null) out.push(obj as K8sObject);
  }
  return out;
}

export async function render(opts: RenderOptions = {}): Promise<K8sObject[]> {
  return parseManifests(await templateText(opts));
}

export async function lint(opts: RenderOptions = {}): Promise<RunResult> {
  return helm(['lint', '--strict', CHART, '--namespace', NAMESPACE, ...valueArgs(opts)]);
}

export function find(objs: K8sObject[], kind: string, name?: string): K8sObject {
  const hit = objs.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (!hit) {
    const have = objs.map((o) => `${o.kind}/${o.metadata.name}`).join(', ');
    throw new Error(`no ${kind}${name ? `/${name}` : ''} rendered (have: ${have})`);
  }
  return hit;
}

export function findAll(objs: K8sObject[], kind: string): K8sObject[] {
  return objs.filter((o) => o.kind === kind);
}

/** `--set`s for the six ports every install opens, in this order: broker mqtt, ws, http; operator
 *  probes, metrics; agent metrics (processes share one host, so each gets a free port). */
export function portSets(ports: number[]): string[] {
  const [mqtt, ws, http, probes, opMetrics, agentMetrics] = ports;
  return [
    `broker.ports.mqtt=${mqtt}`,
    `broker.ports.ws=${ws}`,
    `broker.ports.http=${http}`,
    `operator.probePort=${probes}`,
    `operator.metricsPort=${opMetrics}`,
    `agent.metricsPort=${agentMetrics}`,
  ];
}

export const name = (suffix: string): string => `${RELEASE}-cpuburst-${suffix}`;

/** The chart's ci/*.yaml values files (chart-testing convention). */
export function ciValuesFiles(): string[] {
  const dir = path.join(CHART, 'ci');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => path.join(dir, f));
}
