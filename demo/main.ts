// `cpuburst demo`: the one-command local demo; `cpuburst demo kubelet` runs the mini-kubelet alone.
import { FlagError, formatHelp, parseFlags } from '../common/flags.js';
import { parseCpuMilli } from '../devcluster/kubelet/resources.js';
import { isValidNodeName } from '../protocol/topics.js';
import { DEMO_FLAGS } from './flags.js';
import { runDemo } from './run.js';

export async function main(argv: string[]): Promise<number | undefined> {
  if (argv[0] === 'kubelet') {
    const { main: kubeletMain } = await import('../devcluster/kubelet/main.js');
    return kubeletMain(argv.slice(1));
  }
  const { values: v, help, rest } = parseFlags(DEMO_FLAGS, argv);
  if (help) {
    process.stdout.write(
      formatHelp(
        'cpuburst demo [flags] | cpuburst demo kubelet --help',
        'One-command local demo on real cgroups: devcluster, broker, operator and agent as processes, a mini-kubelet,\na bursty latency-sensitive service measured without and with a CpuBurstStrategy.',
        DEMO_FLAGS,
      ),
    );
    return 0;
  }
  if (rest.length > 0) throw new FlagError(`unexpected argument ${rest[0]}`);
  const rate = Number(v.rate);
  const workMs = Number(v.workMs);
  if (!(rate > 0)) throw new FlagError(`--rate must be a positive number, got ${v.rate}`);
  if (!(workMs > 0)) throw new FlagError(`--work-ms must be a positive number, got ${v.workMs}`);
  if (Number(v.duration) < 1) throw new FlagError('--duration must be at least 1 second');
  if (Number(v.warmup) < 0) throw new FlagError('--warmup must not be negative');
  try {
    if (parseCpuMilli(String(v.cpuLimit)) < 10) throw new Error('below 10m');
  } catch (err) {
    throw new FlagError(
      `--cpu-limit ${JSON.stringify(v.cpuLimit)} is not a usable CPU quantity (${(err as Error).message})`,
    );
  }
  if (Number(v.cpuBurstPercent) < 0 || Number(v.cpuBurstPercent) > 10000)
    throw new FlagError('--cpu-burst-percent must be between 0 and 10000');
  if (Number(v.cfsQuotaBurstPercent) < 100)
    throw new FlagError('--cfs-quota-burst-percent must be at least 100');
  if (!isValidNodeName(String(v.nodeName)))
    throw new FlagError(`--node-name ${JSON.stringify(v.nodeName)} is not a valid node name`);
  return runDemo({
    duration: Number(v.duration),
    warmup: Number(v.warmup),
    json: Boolean(v.json),
    keepRunning: Boolean(v.keepRunning),
    simulate: Boolean(v.simulate),
    neighbour: Boolean(v.neighbour),
    rate,
    workMs,
    cpuLimit: String(v.cpuLimit),
    outDir: String(v.outDir),
    workDir: String(v.workDir ?? ''),
    cgroupRoot: String(v.cgroupRoot),
    parentBase: String(v.parentBase),
    kubectl: String(v.kubectl ?? ''),
    nodeName: String(v.nodeName),
    settleTimeout: Math.max(0, Number(v.settleTimeout)),
    cpuBurstPercent: Number(v.cpuBurstPercent),
    cfsQuotaBurstPercent: Number(v.cfsQuotaBurstPercent),
  });
}
