#!/usr/bin/env node
// `cpuburst <command>`: parses nothing itself; each component owns its flags and --help.
import { FlagError } from './common/flags.js';

type Main = (argv: string[]) => Promise<number | undefined>;

const commands: Record<string, { summary: string; load: () => Promise<{ main: Main }> }> = {
  agent: {
    summary: "node agent: applies burst decisions to this node's cgroups",
    load: () => import('./daemon/main.js'),
  },
  operator: {
    summary: 'controller: CpuBurstStrategy + ConfigMap + pods → per-node decisions over MQTT',
    load: () => import('./operator/main.js'),
  },
  broker: {
    summary: 'MQTT broker for the control plane and IoT devices (aedes)',
    load: () => import('./broker/main.js'),
  },
  devcluster: {
    summary: 'Kubernetes API emulator for local runs and tests',
    load: () => import('./devcluster/main.js'),
  },
  demo: { summary: 'one-command local demo on real cgroups', load: () => import('./demo/main.js') },
};

function usage(): string {
  const rows = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`);
  return `Usage: cpuburst <command> [flags]\n\nCommands:\n${rows.join('\n')}\n\nRun 'cpuburst <command> --help' for the command's flags.\n`;
}

async function run(): Promise<number> {
  const [cmd, ...rest] = process.argv.slice(2);
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(usage());
    return cmd ? 0 : 2;
  }
  const entry = commands[cmd];
  if (!entry) {
    process.stderr.write(`cpuburst: unknown command "${cmd}"\n\n${usage()}`);
    return 2;
  }
  try {
    const { main } = await entry.load();
    return (await main(rest)) ?? 0;
  } catch (err) {
    if (err instanceof FlagError) {
      process.stderr.write(`cpuburst ${cmd}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

run().then(
  (code) => {
    // The command has finished its own shutdown; a client still retrying in the background (an MQTT
    // reconnect to a broker that is gone) must not keep the process alive past it.
    process.exitCode = code;
    setTimeout(() => process.exit(code), 1000).unref();
  },
  (err: unknown) => {
    process.stderr.write(`cpuburst: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
