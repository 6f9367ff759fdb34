// The one result shape every benchmark part writes to bench/results/<part>.json. bench/report.ts
// turns all of them into bench/results/summary.md and one PNG per part; nothing else reads them.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESULTS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../results');

/** `full` is the measured run (npm run bench); `smoke` is the bounded ~30 s run CI does. */
export type BenchMode = 'full' | 'smoke';

/** One compared figure: cpuburst next to its reference, measured in the same run. */
export interface BenchRow {
  /** What was measured, e.g. "QoS 1 fan-in, 50 publishers". */
  case: string;
  /** Metric name with unit, e.g. "msgs/s", "p99 latency ms", "RSS MiB". */
  metric: string;
  /** cpuburst's figure (null when it could not be measured; say why in `note`). */
  value: number | null;
  /** The reference's figure in the same run (Mosquitto, no-burst, Koordinator-style tick …), if any. */
  reference?: number | null;
  /** Name of the reference, e.g. "mosquitto 2.0.11", "no burst", "koordinator-style 1 s tick". */
  referenceName?: string;
  /** value / reference when both exist (computed by `row()`). */
  ratio?: number | null;
  /** The goal in words, e.g. "≥ 0.5× mosquitto", "≤ 100 ms". */
  goal?: string;
  /** Whether the goal is met (omit when the row has no goal). */
  met?: boolean;
  note?: string;
}

/** A chart the report renders to PNG (grouped bars or lines; one PNG per part, charts stacked). */
export interface BenchChart {
  title: string;
  /** y axis title with unit. */
  unit: string;
  kind: 'bar' | 'line';
  /** x categories (bar) or x values (line). */
  x: (string | number)[];
  xTitle?: string;
  series: { name: string; values: (number | null)[] }[];
  /** log-scale y axis. */
  logY?: boolean;
}

export interface BenchResult {
  /** "p1-burst", "p2-propagation", "p3-broker", "p4-agent". */
  part: string;
  title: string;
  mode: BenchMode;
  startedAt: string;
  durationSeconds: number;
  machine: MachineInfo;
  /** How the part was run: tools, sizes, durations, versions (free-form, shown in the report). */
  setup: Record<string, unknown>;
  rows: BenchRow[];
  charts: BenchChart[];
  /** Goals missed, profiles taken, anything a reader must know. */
  notes: string[];
}

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  loadAverage1m: number;
  hardNofile: number | null;
}

export function machineInfo(): MachineInfo {
  let hardNofile: number | null = null;
  try {
    hardNofile = Number(execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim()) || null;
  } catch {
    hardNofile = null;
  }
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: os.release(),
    node: process.version,
    loadAverage1m: Math.round(os.loadavg()[0]! * 100) / 100,
    hardNofile,
  };
}

/** A row with its ratio computed; `met` is taken from the caller (goals differ in direction). */
export function row(r: Omit<BenchRow, 'ratio'>): BenchRow {
  const ratio =
    r.value != null && r.reference != null && r.reference !== 0
      ? Math.round((r.value / r.reference) * 1000) / 1000
      : r.reference === undefined
        ? undefined
        : null;
  return ratio === undefined ? { ...r } : { ...r, ratio };
}

/** `--smoke` on the command line or BENCH_MODE=smoke selects the bounded CI run. */
export function benchMode(argv: string[] = process.argv.slice(2)): BenchMode {
  return argv.includes('--smoke') || process.env.BENCH_MODE === 'smoke' ? 'smoke' : 'full';
}

/**
 * Writes bench/results/<part>.json (smoke runs write <part>.smoke.json so they never overwrite a
 * measured run) and prints the same JSON to stdout. Returns the file path.
 */
export function writeResult(result: BenchResult, dir = process.env.BENCH_RESULTS_DIR ?? RESULTS_DIR): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${result.part}${result.mode === 'smoke' ? '.smoke' : ''}.json`);
  const text = `${JSON.stringify(result, null, 2)}\n`;
  fs.writeFileSync(file, text);
  process.stdout.write(text);
  return file;
}
