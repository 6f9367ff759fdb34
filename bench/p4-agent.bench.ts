// Bench P4 (issue 9): what the node agent costs per tick. The real agent process
// (`node dist/cli.js agent`, file decision source, 1 s loop) over N burst-enabled pods (policy auto,
// a few throttling) on the REAL cgroup v1 tree and on the fake cgroupfs, next to the floor measured in
// the same run (plain node idling, node idling with the agent's modules loaded, the agent with 0 pods).
// Per case: CPU ms per tick (/proc/<pid>/stat utime+stime and a cpuacct ns meter, steady state),
// syscalls per tick (strace -c -f -p, in a separate window: tracing slows the process), the round
// duration from the agent's own histogram, RSS (VmRSS, VmHWM).
//   node --import tsx bench/p4-agent.bench.ts [--smoke]
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { removeTree } from '../test/support/cgroup-tree.js';
import { FakeCgroupFs } from '../test/support/fake-cgroupfs.js';
import { buildFakeTree, buildRealTree, decisionDoc, fakeTicker, NODE, podSpecs } from './lib/p4-pods.js';
import {
  CPUACCT_ROOT,
  CpuacctMeter,
  clockTicksPerSecond,
  cpuTicks,
  groupSyscalls,
  type MemSample,
  memory,
  straceAvailable,
  straceWindow,
} from './lib/p4-procmeter.js';
import { type BenchChart, type BenchRow, benchMode, machineInfo, row, writeResult } from './lib/results.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CPU_ROOT = '/sys/fs/cgroup/cpu';
const INTERVAL_MS = 1000;
const GOAL_CPU_MS = 5;
const GOAL_RSS_MIB = 80;

const mode = benchMode();
const SIZES =
  mode === 'smoke'
    ? { pods: 20, busy: 1, warmTicks: 2, cpuTicks: 4, straceTicks: 2, baseTicks: 3 }
    : { pods: 110, busy: 3, warmTicks: 5, cpuTicks: 30, straceTicks: 10, baseTicks: 10 };

const T0 = performance.now();
/** Progress on stderr (stdout carries only the result JSON). */
const progress = (msg: string) =>
  process.stderr.write(`p4-agent [${((performance.now() - T0) / 1000).toFixed(1)} s] ${msg}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** A time limit in a race: unref'd, so a pending one never keeps the process alive. */
const guard = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
const round2 = (x: number | null) => (x === null ? null : Math.round(x * 100) / 100);

// ---- cleanup of everything this run creates, also on SIGINT/SIGTERM ---------------------------------
const cleanups: Array<() => void | Promise<void>> = [];
async function cleanupAll(): Promise<void> {
  while (cleanups.length) {
    const f = cleanups.pop()!;
    try {
      await f();
    } catch (err) {
      process.stderr.write(`p4-agent: cleanup: ${(err as Error).message}\n`);
    }
  }
}
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    void cleanupAll().finally(() => process.exit(130));
  });

/** Registers a pid for SIGKILL at cleanup; returns the un-register function. */
function trackPid(pid: number): () => void {
  const f = () => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  };
  cleanups.push(f);
  return () => {
    const i = cleanups.indexOf(f);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

async function stopChild(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGTERM');
  await Promise.race([exited, guard(5000)]);
  if (p.exitCode === null && p.signalCode === null) {
    p.kill('SIGKILL');
    await Promise.race([exited, guard(2000)]);
  }
}

// ---- what to run ----------------------------------------------------------------------------------
function cliCommand(): { argv: string[]; build: 'dist' | 'tsx'; stale: boolean } {
  const dist = path.join(REPO, 'dist', 'cli.js');
  if (!fs.existsSync(dist))
    return { argv: ['--import', 'tsx', path.join(REPO, 'cli.ts')], build: 'tsx', stale: false };
  // A dist older than the daemon sources measures old code: say so in the notes.
  const built = fs.statSync(path.join(REPO, 'dist', 'daemon', 'agent.js')).mtimeMs;
  const newest = Math.max(
    ...fs
      .readdirSync(path.join(REPO, 'daemon'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => fs.statSync(path.join(REPO, 'daemon', f)).mtimeMs),
  );
  return { argv: [dist], build: 'dist', stale: newest > built };
}

function realCgroupSkipReason(cpuParent: string): string | null {
  if (!fs.existsSync(path.join(CPU_ROOT, 'cpu.cfs_quota_us')))
    return `no cgroup v1 cpu controller at ${CPU_ROOT}`;
  if (!fs.existsSync(path.join(CPU_ROOT, 'cpu.cfs_burst_us')))
    return `${CPU_ROOT} has no cpu.cfs_burst_us (kernel < 5.14)`;
  if (!fs.existsSync(path.join(CPUACCT_ROOT, 'cpuacct.usage')))
    return `no cgroup v1 cpuacct hierarchy at ${CPUACCT_ROOT}`;
  try {
    fs.mkdirSync(cpuParent, { recursive: true });
  } catch (err) {
    return `${CPU_ROOT} is not writable: ${(err as Error).message}`;
  }
  return null;
}

// ---- processes under test ---------------------------------------------------------------------------
interface Subject {
  pid: number;
  /** Agent only: its /metrics port. */
  port: number | null;
  startupMs: number;
  stop(): Promise<void>;
}

/** Starts a process and waits for `ready(line)` on its stdout/stderr. */
async function startSubject(
  args: string[],
  ready: (line: string, found: { port: number | null }) => boolean,
  what: string,
): Promise<Subject> {
  const t0 = performance.now();
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO });
  const untrack = trackPid(p.pid!);
  const tail: string[] = [];
  const found = { port: null as number | null };
  const ok = new Promise<boolean>((resolve) => {
    for (const s of [p.stdout!, p.stderr!])
      readline.createInterface({ input: s }).on('line', (line) => {
        tail.push(line);
        if (tail.length > 40) tail.shift();
        if (ready(line, found)) resolve(true);
      });
    p.once('exit', () => resolve(false));
  });
  const started = await Promise.race([ok, guard(60_000).then(() => false)]);
  if (!started) {
    await stopChild(p);
    untrack();
    throw new Error(`${what} did not start:\n${tail.join('\n')}`);
  }
  return {
    pid: p.pid!,
    port: found.port,
    startupMs: performance.now() - t0,
    async stop() {
      await stopChild(p);
      untrack();
    },
  };
}

interface AgentPaths {
  cgroupRoot: string;
  kubepodsDir: string;
  procRoot: string;
  decisionsFile: string;
  stateDir: string;
}

/** Extra node flags for the agent processes only, e.g. `--cpu-prof --cpu-prof-dir=/tmp/p4-prof`. */
const AGENT_NODE_FLAGS = (process.env.P4_AGENT_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);

/**
 * The variant measured on the real tree too: without TurboFan. At one round a second the optimising
 * compiler keeps (re)compiling the round's code on background threads; in the development runs that
 * cost more CPU than it saved, and its code and zones a third of the RSS.
 */
const VARIANT_FLAGS = ['--no-opt'];

function startAgent(cli: string[], a: AgentPaths, nodeFlags: string[] = []): Promise<Subject> {
  const args = [
    ...AGENT_NODE_FLAGS,
    ...nodeFlags,
    ...cli,
    'agent',
    '--node-name',
    NODE,
    '--cgroup-root',
    a.cgroupRoot,
    '--kubepods-dir',
    a.kubepodsDir,
    '--cgroup-driver',
    'cgroupfs',
    '--state-dir',
    a.stateDir,
    '--proc-root',
    a.procRoot,
    '--decisions-file',
    a.decisionsFile,
    '--interval',
    String(INTERVAL_MS),
    '--metrics-port',
    '0',
    '--log-level',
    'info',
  ];
  return startSubject(
    args,
    (line, found) => {
      let m: { message?: string; port?: number };
      try {
        m = JSON.parse(line);
      } catch {
        return false;
      }
      if (m.message === 'Serving metrics and probes' && typeof m.port === 'number') found.port = m.port;
      // Ready once the decision file is applied (after the probes server is up).
      return m.message === 'Applied decision document' && found.port !== null;
    },
    'cpuburst agent',
  );
}

/** An idle node process, optionally with the agent's modules imported (the floor the agent adds to). */
function startIdle(cliBuild: 'dist' | 'tsx', withModules: boolean): Promise<Subject> {
  const mod =
    cliBuild === 'dist' ? path.join(REPO, 'dist', 'daemon', 'main.js') : path.join(REPO, 'daemon', 'main.ts');
  const code = withModules
    ? `await import(${JSON.stringify(`file://${mod}`)}); console.log('ready'); setInterval(() => {}, ${INTERVAL_MS});`
    : `console.log('ready'); setInterval(() => {}, ${INTERVAL_MS});`;
  const args = [
    ...(withModules && cliBuild === 'tsx' ? ['--import', 'tsx'] : []),
    '--input-type=module',
    '-e',
    code,
  ];
  return startSubject(args, (line) => line === 'ready', withModules ? 'node + agent modules' : 'node');
}

// ---- measuring --------------------------------------------------------------------------------------
interface AgentMetricsSample {
  rounds: number;
  roundSeconds: number;
  writesOk: number;
}

async function scrape(port: number): Promise<AgentMetricsSample> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? Number.NaN);
  return {
    rounds: num(/^cpuburst_agent_round_duration_seconds_count(?:\{\})? (\S+)$/m),
    roundSeconds: num(/^cpuburst_agent_round_duration_seconds_sum(?:\{\})? (\S+)$/m),
    writesOk: num(/^cpuburst_agent_cgroup_writes_total\{result="ok"\} (\S+)$/m) || 0,
  };
}

interface CaseResult {
  name: string;
  pods: number;
  startupMs: number;
  ticks: number;
  cpuMsPerTick: number;
  acctMsPerTick: number | null;
  /** Agent only: rounds counted by its histogram in the window, their mean wall duration. */
  rounds: number | null;
  roundMeanMs: number | null;
  writesPerTick: number | null;
  /** VmRSS: the largest of one sample per tick in the window; its median; VmHWM (start-up included). */
  mem: MemSample & { vmRssMedianMiB: number };
  /** Syscalls per tick by group (opens, reads, writes, …, total); null with straceError when not traced. */
  syscalls: Record<string, number> | null;
  syscallTop: Array<[string, number]>;
  straceError?: string;
}

async function measure(
  name: string,
  pods: number,
  s: Subject,
  meter: CpuacctMeter | null,
  ticks: number,
  straceTicks: number,
  tmp: string,
): Promise<CaseResult> {
  progress(`${name}: measuring ${ticks} ticks`);
  const m0 = s.port ? await scrape(s.port) : null;
  await sleep(50);
  const c0 = cpuTicks(s.pid);
  const a0 = meter?.usageNs() ?? null;
  const t0 = performance.now();
  // VmRSS moves with the young generation (a scavenge every few ticks): sample it every tick.
  const rss: number[] = [];
  for (let i = 0; i < ticks; i++) {
    await sleep(INTERVAL_MS);
    rss.push(memory(s.pid).vmRssMiB);
  }
  const c1 = cpuTicks(s.pid);
  const a1 = meter?.usageNs() ?? null;
  const wallTicks = (performance.now() - t0) / INTERVAL_MS;
  const mem = memory(s.pid);
  const m1 = s.port ? await scrape(s.port) : null;
  const r: CaseResult = {
    name,
    pods,
    startupMs: Math.round(s.startupMs),
    ticks: round2(wallTicks)!,
    cpuMsPerTick: round2(((c1 - c0) * 1000) / clockTicksPerSecond() / wallTicks)!,
    acctMsPerTick: a0 !== null && a1 !== null ? round2((a1 - a0) / 1e6 / wallTicks) : null,
    rounds: m0 && m1 ? m1.rounds - m0.rounds : null,
    roundMeanMs:
      m0 && m1 && m1.rounds > m0.rounds
        ? round2(((m1.roundSeconds - m0.roundSeconds) * 1000) / (m1.rounds - m0.rounds))
        : null,
    writesPerTick: m0 && m1 ? round2((m1.writesOk - m0.writesOk) / wallTicks) : null,
    mem: {
      vmRssMiB: round2(Math.max(...rss, mem.vmRssMiB))!,
      vmRssMedianMiB: round2([...rss].sort((a, b) => a - b)[Math.floor(rss.length / 2)] ?? mem.vmRssMiB)!,
      vmHwmMiB: round2(mem.vmHwmMiB)!,
    },
    syscalls: null,
    syscallTop: [],
  };
  progress(`${name}: ${r.cpuMsPerTick} ms CPU per tick, RSS ${r.mem.vmRssMiB} MiB; tracing syscalls`);
  const noStrace = straceAvailable();
  if (noStrace) r.straceError = noStrace;
  else
    try {
      const st = await straceWindow(
        s.pid,
        straceTicks * INTERVAL_MS,
        path.join(tmp, `strace-${s.pid}.txt`),
        trackPid,
      );
      const perTick = st.seconds / (INTERVAL_MS / 1000);
      r.syscalls = Object.fromEntries(
        Object.entries(groupSyscalls(st)).map(([k, v]) => [k, round2(v / perTick)!]),
      );
      r.syscallTop = Object.entries(st.calls)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 12)
        .map(([k, v]) => [k, round2(v / perTick)!]);
    } catch (err) {
      r.straceError = (err as Error).message;
    }
  return r;
}

// ---- the run --------------------------------------------------------------------------------------
async function main(): Promise<void> {
  const started = new Date();
  const t0 = performance.now();
  const loadStart = os.loadavg()[0]!;
  const cli = cliCommand();
  const notes: string[] = [];
  if (cli.stale)
    notes.push('dist/ is older than daemon/ sources: run `npx tsc -p tsconfig.build.json` first.');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-bench-p4-'));
  cleanups.push(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const cpuParent = path.join(CPU_ROOT, `cpuburst-bench-p4-${process.pid}`);
  const acctParent = path.join(CPUACCT_ROOT, `cpuburst-bench-p4-${process.pid}`);
  cleanups.push(() => removeTree(cpuParent, CPU_ROOT));
  cleanups.push(() => removeTree(acctParent, CPUACCT_ROOT));
  const meterFor = (name: string) => CpuacctMeter.create(acctParent, `meter-${name}`);
  const specs = podSpecs(SIZES.pods, SIZES.busy);
  const results: CaseResult[] = [];

  // 1. The floor: plain node, and node with the agent's modules loaded, both idling on a 1 s timer.
  for (const [name, withModules] of [
    ['plain node idle', false],
    ['node + agent modules idle', true],
  ] as const) {
    const s = await startIdle(cli.build, withModules);
    const meter = meterFor(withModules ? 'modules' : 'node');
    if (meter && !meter.add(s.pid)) notes.push(`could not move ${name} into its cpuacct meter`);
    await sleep(INTERVAL_MS);
    results.push(await measure(name, 0, s, meter, SIZES.baseTicks, 1, tmp));
    await s.stop();
  }

  // 2. The agent on the fake cgroupfs: 0 pods (its own floor), then N pods.
  const fakeCase = async (pods: number): Promise<CaseResult> => {
    const fake = FakeCgroupFs.create({
      version: 1,
      cpus: os.cpus().length,
      baseDir: fs.existsSync('/dev/shm') ? '/dev/shm' : undefined,
    });
    cleanups.push(() => fake.cleanup());
    const caseSpecs = specs.slice(0, pods);
    const busyDirs = buildFakeTree(fake, caseSpecs);
    const tick = fakeTicker(fake, busyDirs, os.cpus().length);
    tick();
    const timer = setInterval(tick, INTERVAL_MS);
    const decisionsFile = path.join(tmp, `decisions-fake-${pods}.json`);
    fs.writeFileSync(decisionsFile, JSON.stringify(decisionDoc(caseSpecs)));
    try {
      const s = await startAgent(cli.argv, {
        cgroupRoot: fake.root,
        kubepodsDir: fake.kubepodsDir,
        procRoot: fake.procRoot,
        decisionsFile,
        stateDir: fs.mkdtempSync(path.join(tmp, 'state-')),
      });
      try {
        const meter = meterFor(`fake-${pods}`);
        meter?.add(s.pid);
        await sleep(SIZES.warmTicks * INTERVAL_MS);
        return await measure(
          `agent, ${pods} pods, fake cgroupfs`,
          pods,
          s,
          meter,
          SIZES.cpuTicks,
          SIZES.straceTicks,
          tmp,
        );
      } finally {
        await s.stop();
      }
    } finally {
      clearInterval(timer);
    }
  };
  results.push(await fakeCase(0));
  results.push(await fakeCase(SIZES.pods));

  // 3. The agent on the real cgroup v1 tree (cpu + cpuacct), a few pods running busy processes; then
  //    the same agent restarted with VARIANT_FLAGS on the same tree and state dir.
  const realName = `agent, ${SIZES.pods} pods, real cgroup v1`;
  const variantName = `${realName}, node ${VARIANT_FLAGS.join(' ')}`;
  const skip = realCgroupSkipReason(cpuParent);
  let real: CaseResult | null = null;
  let variant: CaseResult | null = null;
  if (skip) notes.push(`${realName}: not measured: ${skip}`);
  else {
    const tree = buildRealTree(cpuParent, acctParent, specs);
    cleanups.push(() => tree.stop());
    const decisionsFile = path.join(tmp, 'decisions-real.json');
    fs.writeFileSync(decisionsFile, JSON.stringify(decisionDoc(specs)));
    const stateDir = fs.mkdtempSync(path.join(tmp, 'state-'));
    const realCase = async (name: string, meterName: string, flags: string[]) => {
      const s = await startAgent(
        cli.argv,
        {
          cgroupRoot: path.dirname(CPU_ROOT),
          kubepodsDir: tree.kubepodsDir,
          procRoot: '/proc',
          decisionsFile,
          stateDir,
        },
        flags,
      );
      try {
        const meter = meterFor(meterName);
        meter?.add(s.pid);
        await sleep(SIZES.warmTicks * INTERVAL_MS);
        return await measure(name, SIZES.pods, s, meter, SIZES.cpuTicks, SIZES.straceTicks, tmp);
      } finally {
        await s.stop();
      }
    };
    try {
      real = await realCase(realName, 'real', []);
      results.push(real);
      variant = await realCase(variantName, 'variant', VARIANT_FLAGS);
      results.push(variant);
    } finally {
      tree.stop();
    }
  }

  // ---- rows, charts, notes -------------------------------------------------------------------------
  const byName = (n: string) => results.find((r) => r.name === n) ?? null;
  const node = byName('plain node idle')!;
  const modules = byName('node + agent modules idle')!;
  const zero = byName('agent, 0 pods, fake cgroupfs')!;
  const fakeN = byName(`agent, ${SIZES.pods} pods, fake cgroupfs`)!;
  const rows: BenchRow[] = [];
  const agentRows = (r: CaseResult | null, name: string, why?: string) => {
    const v = <T>(f: (c: CaseResult) => T): T | null => (r ? f(r) : null);
    const note = r ? undefined : why;
    const cpu = v((c) => c.cpuMsPerTick);
    rows.push(
      row({
        case: name,
        metric: 'CPU ms per tick (utime+stime)',
        value: cpu,
        reference: zero.cpuMsPerTick,
        referenceName: 'same agent, 0 pods',
        goal: `≤ ${GOAL_CPU_MS} ms`,
        met: cpu !== null && cpu <= GOAL_CPU_MS,
        ...(note ? { note } : {}),
      }),
    );
    rows.push(
      row({
        case: name,
        metric: 'CPU ms per tick (cpuacct ns meter)',
        value: v((c) => c.acctMsPerTick),
        reference: zero.acctMsPerTick,
        referenceName: 'same agent, 0 pods',
        ...(r && r.acctMsPerTick === null ? { note: 'no writable cpuacct hierarchy' } : note ? { note } : {}),
      }),
    );
    const rss = v((c) => c.mem.vmRssMiB);
    rows.push(
      row({
        case: name,
        metric: 'RSS MiB (VmRSS, window max)',
        value: rss,
        reference: node.mem.vmRssMiB,
        referenceName: 'plain node idle',
        goal: `≤ ${GOAL_RSS_MIB} MiB`,
        met: rss !== null && rss <= GOAL_RSS_MIB,
        ...(note ? { note } : {}),
      }),
    );
    rows.push(
      row({
        case: name,
        metric: 'RSS MiB (VmRSS, window median)',
        value: v((c) => c.mem.vmRssMedianMiB),
        reference: node.mem.vmRssMedianMiB,
        referenceName: 'plain node idle',
        ...(note ? { note } : {}),
      }),
    );
    rows.push(
      row({
        case: name,
        metric: 'peak RSS MiB (VmHWM)',
        value: v((c) => c.mem.vmHwmMiB),
        reference: node.mem.vmHwmMiB,
        referenceName: 'plain node idle',
        ...(note ? { note } : {}),
      }),
    );
    rows.push(
      row({
        case: name,
        metric: 'round duration ms (agent histogram mean)',
        value: v((c) => c.roundMeanMs),
        reference: zero.roundMeanMs,
        referenceName: 'same agent, 0 pods',
        ...(note ? { note } : {}),
      }),
    );
    rows.push(
      row({
        case: name,
        metric: 'cgroup writes per tick',
        value: v((c) => c.writesPerTick),
        ...(note ? { note } : {}),
      }),
    );
    for (const [g, label] of [
      ['total', 'syscalls per tick'],
      ['opens', 'file opens per tick (open/openat)'],
      ['reads', 'read syscalls per tick'],
      ['writes', 'write syscalls per tick'],
    ] as const) {
      const sc = r?.syscalls ?? null;
      rows.push(
        row({
          case: name,
          metric: label,
          value: sc ? (sc[g] ?? 0) : null,
          reference: zero.syscalls ? (zero.syscalls[g] ?? 0) : null,
          referenceName: 'same agent, 0 pods',
          ...(note ? { note } : r && !sc ? { note: `not traced: ${r.straceError}` } : {}),
        }),
      );
    }
  };
  agentRows(fakeN, fakeN.name);
  agentRows(real, realName, `not measured: ${skip}`);
  // The variant next to the default agent on the same tree.
  const vNote = variant ? {} : { note: `not measured: ${skip}` };
  const vCpu = variant?.cpuMsPerTick ?? null;
  const vRss = variant?.mem.vmRssMiB ?? null;
  rows.push(
    row({
      case: variantName,
      metric: 'CPU ms per tick (utime+stime)',
      value: vCpu,
      reference: real?.cpuMsPerTick ?? null,
      referenceName: 'same agent, default node flags',
      goal: `≤ ${GOAL_CPU_MS} ms`,
      met: vCpu !== null && vCpu <= GOAL_CPU_MS,
      ...vNote,
    }),
    row({
      case: variantName,
      metric: 'RSS MiB (VmRSS, window max)',
      value: vRss,
      reference: real?.mem.vmRssMiB ?? null,
      referenceName: 'same agent, default node flags',
      goal: `≤ ${GOAL_RSS_MIB} MiB`,
      met: vRss !== null && vRss <= GOAL_RSS_MIB,
      ...vNote,
    }),
    row({
      case: variantName,
      metric: 'peak RSS MiB (VmHWM)',
      value: variant?.mem.vmHwmMiB ?? null,
      reference: real?.mem.vmHwmMiB ?? null,
      referenceName: 'same agent, default node flags',
      ...vNote,
    }),
  );
  for (const [r, ref] of [
    [zero, node],
    [modules, node],
  ] as const) {
    rows.push(
      row({
        case: r.name,
        metric: 'CPU ms per tick (utime+stime)',
        value: r.cpuMsPerTick,
        reference: ref.cpuMsPerTick,
        referenceName: 'plain node idle',
      }),
    );
    rows.push(
      row({
        case: r.name,
        metric: 'RSS MiB (VmRSS, window max)',
        value: r.mem.vmRssMiB,
        reference: ref.mem.vmRssMiB,
        referenceName: 'plain node idle',
      }),
    );
  }

  const x = results.map((r) => r.name);
  const charts: BenchChart[] = [
    {
      title: `Agent CPU per 1 s tick (${SIZES.pods} pods, policy auto)`,
      unit: 'CPU ms per tick',
      kind: 'bar',
      x,
      series: [
        { name: 'utime+stime', values: results.map((r) => r.cpuMsPerTick) },
        { name: 'cpuacct meter', values: results.map((r) => r.acctMsPerTick) },
      ],
    },
    {
      title: 'Agent memory',
      unit: 'MiB',
      kind: 'bar',
      x,
      series: [
        { name: 'VmRSS median', values: results.map((r) => r.mem.vmRssMedianMiB) },
        { name: 'VmRSS max', values: results.map((r) => r.mem.vmRssMiB) },
        { name: 'VmHWM (peak)', values: results.map((r) => r.mem.vmHwmMiB) },
      ],
    },
    {
      title: 'Syscalls per tick (strace -c -f)',
      unit: 'calls per tick',
      kind: 'bar',
      x,
      series: ['opens', 'reads', 'writes', 'stats', 'closes', 'dirs', 'fsyncs', 'other'].map((g) => ({
        name: g,
        values: results.map((r) => (r.syscalls ? (r.syscalls[g] ?? 0) : null)),
      })),
    },
  ];

  for (const r of rows)
    if (r.met === false && r.value !== null)
      notes.push(`Goal missed: ${r.case}: ${r.metric} = ${r.value} (goal ${r.goal}).`);
  notes.push(
    `Load average (1 min) ${round2(loadStart)} at start, ${round2(os.loadavg()[0]!)} at the end: CPU per tick is the agent's own time, but a loaded machine still inflates it (cache, frequency).`,
  );
  for (const r of results) if (r.straceError) notes.push(`${r.name}: syscalls not traced: ${r.straceError}`);

  let straceVersion: string | null = null;
  try {
    straceVersion = execFileSync('strace', ['-V'], { encoding: 'utf8' }).split('\n')[0]!;
  } catch {
    straceVersion = null;
  }
  writeResult({
    part: 'p4-agent',
    title: 'Agent cost per tick',
    mode,
    startedAt: started.toISOString(),
    durationSeconds: Math.round((performance.now() - t0) / 100) / 10,
    machine: machineInfo(),
    setup: {
      agent: cli.build === 'dist' ? 'node dist/cli.js agent' : 'node --import tsx cli.ts agent (no dist/)',
      agentNodeFlags: AGENT_NODE_FLAGS.join(' ') || null,
      variantNodeFlags: VARIANT_FLAGS.join(' '),
      decisionSource: 'file (--decisions-file, polled every round)',
      intervalMs: INTERVAL_MS,
      pods: SIZES.pods,
      containersPerPod: '2 managed (app 500m, sidecar 200m) + 1 unmanaged sandbox',
      policy: 'auto (cpuBurstPercent 100, cfsQuotaBurstPercent 300)',
      busyPods: `${SIZES.busy} (app limit 100m; real: a CPU-bound sh loop in it; fake: cpu.stat advanced as throttled)`,
      warmupTicks: SIZES.warmTicks,
      cpuWindowTicks: SIZES.cpuTicks,
      straceWindowTicks: SIZES.straceTicks,
      baselineWindowTicks: SIZES.baseTicks,
      clockTicksPerSecond: clockTicksPerSecond(),
      strace: straceVersion,
      fakeTree: 'test/support/fake-cgroupfs.ts, v1 cgroupfs layout, in /dev/shm',
      realTree: skip ? `not available: ${skip}` : `${cpuParent}/kubepods (+ ${acctParent})`,
      cases: results,
    },
    rows,
    charts,
    notes,
  });
}

main()
  .catch((err) => {
    process.stderr.write(`p4-agent: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    progress('cleaning up');
    await cleanupAll();
    progress('done');
  });
