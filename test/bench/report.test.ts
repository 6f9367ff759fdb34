// The report (pure markdown, chart specs, result checks), the runner's argument handling, and one
// real render: a sample result → summary.md + PNG in a temp dir.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { chartData, chartView, partChartSpec } from '../../bench/lib/chart.js';
import { fmtNumber, goalsTable, resultProblem, rowsTable, summaryMarkdown } from '../../bench/lib/report.js';
import { type BenchResult, row } from '../../bench/lib/results.js';
import { parseReportArgs, writeReport } from '../../bench/report.js';
import { parseRunArgs, runSuite, selectParts } from '../../bench/run.js';

const REPO = path.resolve(import.meta.dirname, '../..');

function sample(part = 'p3-broker', startedAt = '2026-11-25T12:00:00.000Z'): BenchResult {
  return {
    part,
    title: 'P3 — broker',
    mode: 'full',
    startedAt,
    durationSeconds: 61.4,
    machine: {
      cpus: 2,
      cpuModel: 'Test CPU',
      memoryGiB: 8,
      kernel: '6.18.0',
      node: 'v20.0.0',
      loadAverage1m: 0.5,
      hardNofile: 1048576,
    },
    setup: { tool: 'mqtt.js load generator', sizes: { publishers: 50 } },
    rows: [
      row({
        case: 'QoS 1 fan-in',
        metric: 'msgs/s',
        value: 42000,
        reference: 60000,
        referenceName: 'mosquitto 2.0.11',
        goal: '≥ 0.5× mosquitto',
        met: true,
      }),
      row({ case: 'idle | conns', metric: 'RSS MiB', value: 812.345, goal: '≤ 4096', met: true }),
      row({ case: 'persistence', metric: 'msgs/s', value: null, reference: 1, note: 'redis missing' }),
      row({
        case: 'p99',
        metric: 'ms',
        value: 12.5,
        reference: 5,
        referenceName: 'mosquitto',
        goal: '≤ 2×',
        met: false,
      }),
    ],
    charts: [
      {
        title: 'Throughput',
        unit: 'msgs/s',
        kind: 'bar',
        x: ['QoS 0', 'QoS 1'],
        series: [
          { name: 'cpuburst', values: [50000, 42000] },
          { name: 'mosquitto', values: [90000, null] },
        ],
      },
      {
        title: 'RSS by connections',
        unit: 'MiB',
        kind: 'line',
        x: [1000, 10000, 100000],
        xTitle: 'connections',
        series: [{ name: 'cpuburst', values: [60, 0, 800] }],
        logY: true,
      },
    ],
    notes: ['persistence not measured'],
  };
}

describe('report markdown (pure)', () => {
  it('formats numbers for a table', () => {
    assert.equal(fmtNumber(null), '—');
    assert.equal(fmtNumber(undefined), '—');
    assert.equal(fmtNumber(42000), '42000');
    assert.equal(fmtNumber(812.345), '812');
    assert.equal(fmtNumber(12.54), '12.5');
    assert.equal(fmtNumber(1.2345), '1.23');
    assert.equal(fmtNumber(0.012345), '0.0123');
  });

  it('renders one row per figure with reference, ratio, goal and met; pipes escaped', () => {
    const r = sample();
    const t = rowsTable(r.rows).split('\n');
    assert.equal(t.length, 2 + r.rows.length);
    assert.match(t[0]!, /^\| case \| metric \| cpuburst \| reference \| ratio \| goal \| met \|$/);
    assert.equal(
      t[2],
      '| QoS 1 fan-in | msgs/s | 42000 | 60000 (mosquitto 2.0.11) | 0.7× | ≥ 0.5× mosquitto | ✅ yes |',
    );
    assert.match(t[3]!, /^\| idle \\\| conns \| RSS MiB \| 812 \| {2}\| {2}\| ≤ 4096 \| ✅ yes \|$/);
    assert.match(t[4]!, /— \(redis missing\) \| 1 \| — \|/);
    assert.match(t[5]!, /\| 2.5× \| ≤ 2× \| ❌ no \|$/);
  });

  it('lists every goal row across parts', () => {
    const g = goalsTable([sample('p3-broker'), { ...sample('p1-burst'), rows: [] }]);
    assert.equal(g.split('\n').length, 2 + 3);
    assert.ok(g.includes('| p3-broker | p99 | ms | 12.5 | 5 (mosquitto) | ≤ 2× | ❌ no |'));
    assert.equal(goalsTable([]), '_No goal rows._');
  });

  it('summary: parts in suite order, failures first, machine, setup, notes, chart link', () => {
    const md = summaryMarkdown([sample('p3-broker'), sample('p1-burst')], {
      mode: 'full',
      failures: [{ part: 'p2-propagation', reason: 'exited with code 1' }],
      pngs: { 'p3-broker': 'p3-broker.png' },
      generatedAt: 'T',
    });
    assert.ok(md.startsWith('# cpuburst benchmark summary (full)\n'));
    assert.ok(md.includes('- p2-propagation: exited with code 1'));
    assert.ok(md.indexOf('## p1-burst') < md.indexOf('## p3-broker'), 'suite order');
    assert.ok(md.includes('2 × Test CPU, 8 GiB, kernel 6.18.0, node v20.0.0'));
    assert.ok(md.includes('- **tool**: mqtt.js load generator'));
    assert.ok(md.includes('- **sizes**: `{"publishers":50}`'));
    assert.ok(md.includes('- persistence not measured'));
    assert.ok(md.includes('![p3-broker](p3-broker.png)'));
    assert.ok(md.includes('Goals met: 2 of 3.'));
  });

  it('accepts the contract and names what is wrong otherwise', () => {
    assert.equal(resultProblem(sample()), null);
    assert.equal(resultProblem(null), 'not an object');
    assert.equal(resultProblem({ ...sample(), mode: 'fast' }), 'mode is not full|smoke');
    assert.equal(resultProblem({ ...sample(), rows: [{ case: 'a' }] }), 'row 0 lacks case/metric/value');
    assert.equal(resultProblem({ ...sample(), charts: [{ x: [] }] }), 'chart 0 lacks x/series');
  });
});

describe('chart specs (pure)', () => {
  it('drops nulls, and non-positive values on a log axis', () => {
    const [bar, line] = sample().charts;
    assert.deepEqual(
      chartData(bar!).map((d) => `${d.series}:${d.x}=${d.value}`),
      ['cpuburst:QoS 0=50000', 'cpuburst:QoS 1=42000', 'mosquitto:QoS 0=90000'],
    );
    assert.deepEqual(
      chartData(line!).map((d) => d.value),
      [60, 800],
    );
  });

  it('grouped bars for categories, lines on a numeric x, a log y when asked', () => {
    const [bar, line] = sample().charts;
    const b = chartView(bar!) as { mark: { type: string }; encoding: Record<string, { type?: string }> };
    assert.equal(b.mark.type, 'bar');
    assert.ok(b.encoding.xOffset, 'bars are grouped by series');
    assert.equal(b.encoding.x!.type, 'nominal');
    const l = chartView(line!) as {
      mark: { type: string };
      encoding: Record<string, { type?: string; scale?: unknown }>;
    };
    assert.equal(l.mark.type, 'line');
    assert.equal(l.encoding.x!.type, 'quantitative');
    assert.deepEqual(l.encoding.y!.scale, { type: 'log' });
    assert.equal(l.encoding.y2, undefined, 'lines need no baseline');
    // Bars on a log axis get a positive baseline (zero has no logarithm): the power of ten below the minimum.
    const logBars = chartView({ ...bar!, logY: true }) as { encoding: Record<string, unknown> };
    assert.deepEqual(logBars.encoding.y2, { datum: 10000 });
    assert.equal(b.encoding.y2, undefined, 'linear bars start at zero');
    const spec = partChartSpec(sample()) as unknown as { vconcat: unknown[]; title: { text: string } };
    assert.equal(spec.vconcat.length, 2);
    assert.equal(spec.title.text, 'P3 — broker');
  });
});

describe('runner and report arguments (pure)', () => {
  it('selects parts by name or prefix, in suite order', () => {
    assert.deepEqual(selectParts([]), ['p1-burst', 'p2-propagation', 'p3-broker', 'p4-agent']);
    assert.deepEqual(selectParts(['p3']), ['p3-broker']);
    assert.deepEqual(selectParts(['p4', 'p1-burst']), ['p1-burst', 'p4-agent']);
    assert.throws(() => selectParts(['p9']), /unknown part\(s\) p9/);
    assert.throws(() => selectParts(['p']), /unknown part/);
  });

  it('parses --smoke, --only, and refuses the unknown', () => {
    assert.deepEqual(parseRunArgs(['--smoke', '--only', 'p3']), {
      mode: 'smoke',
      only: ['p3'],
      noReport: false,
    });
    assert.deepEqual(parseRunArgs(['--only=p1,p2']).only, ['p1', 'p2']);
    assert.throws(() => parseRunArgs(['--fast']), /unknown argument --fast/);
    assert.throws(() => parseRunArgs(['--only']), /needs a part/);
    const r = parseReportArgs([
      '--smoke',
      '--dir',
      '/x',
      '--failed',
      'p2-propagation=exit 1',
      '--since',
      '2026-01-01',
    ]);
    assert.equal(r.mode, 'smoke');
    assert.equal(r.dir, '/x');
    assert.deepEqual(r.failures, [{ part: 'p2-propagation', reason: 'exit 1' }]);
    assert.equal(r.since?.toISOString(), '2026-01-01T00:00:00.000Z');
    assert.throws(() => parseReportArgs(['--since', 'yesterday']), /ISO/);
  });

  it('bench/run.ts exits 2 on an unknown part', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--only', 'p9'], {
      cwd: REPO,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /unknown part\(s\) p9/);
  });
});

describe('writeReport (real render)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-report-test-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes summary.md and a PNG per part with charts; smoke files and stale results kept apart', async () => {
    fs.writeFileSync(path.join(dir, 'p3-broker.json'), JSON.stringify(sample('p3-broker')));
    fs.writeFileSync(path.join(dir, 'p4-agent.json'), JSON.stringify({ ...sample('p4-agent'), charts: [] }));
    fs.writeFileSync(
      path.join(dir, 'p1-burst.json'),
      JSON.stringify(sample('p1-burst', '2026-11-24T00:00:00.000Z')),
    );
    fs.writeFileSync(path.join(dir, 'p2-propagation.json'), '{"part": 1}');
    fs.writeFileSync(path.join(dir, 'p3-broker.smoke.json'), JSON.stringify({ ...sample(), mode: 'smoke' }));
    const out = await writeReport({ dir, mode: 'full', since: new Date('2026-11-25T00:00:00Z') });
    assert.deepEqual(out.parts.sort(), ['p3-broker', 'p4-agent']);
    assert.deepEqual(out.pngFiles, [path.join(dir, 'p3-broker.png')], 'no PNG for a part without charts');
    const png = fs.readFileSync(path.join(dir, 'p3-broker.png'));
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
    assert.ok(png.length > 5000, `a drawn chart, not an empty image (${png.length} bytes)`);
    const md = fs.readFileSync(out.summaryFile, 'utf8');
    assert.equal(path.basename(out.summaryFile), 'summary.md');
    assert.ok(md.includes('## p3-broker'));
    assert.ok(md.includes('## p4-agent'));
    assert.ok(!md.includes('## p1-burst'), 'a stale result is not reported as this run');
    assert.match(md, /- p1-burst: no result from this run \(stale file from 2026-11-24/);
    assert.match(md, /- p2-propagation.json: not a bench result/);

    const smoke = await writeReport({ dir, mode: 'smoke' });
    assert.deepEqual(smoke.parts, ['p3-broker']);
    assert.equal(path.basename(smoke.summaryFile), 'summary.smoke.md');
    assert.ok(fs.existsSync(path.join(dir, 'p3-broker.smoke.png')));
  });
});

describe('runSuite (real processes)', () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-run-test-'));
  after(() => fs.rmSync(base, { recursive: true, force: true }));

  it('runs the parts in order; a crash, a missing file and a part without a result fail; exit 1', async () => {
    const benchDir = path.join(base, 'bench');
    const resultsDir = path.join(base, 'results');
    fs.mkdirSync(benchDir);
    const order = path.join(base, 'order.txt');
    // A part that writes a smoke result through the real contract module.
    const contract = path.join(REPO, 'bench/lib/results.ts');
    fs.writeFileSync(
      path.join(benchDir, 'p1-burst.bench.ts'),
      `import fs from 'node:fs';
import { benchMode, machineInfo, row, writeResult } from ${JSON.stringify(contract)};
fs.appendFileSync(${JSON.stringify(order)}, 'p1 ' + benchMode() + '\\n');
writeResult({ part: 'p1-burst', title: 'P1', mode: benchMode(), startedAt: new Date().toISOString(),
  durationSeconds: 0.1, machine: machineInfo(), setup: {}, notes: [],
  rows: [row({ case: 'c', metric: 'p99 latency ms', value: 5, reference: 10, goal: '≤ 0.5×', met: true })],
  charts: [{ title: 't', unit: 'ms', kind: 'bar', x: ['a'], series: [{ name: 's', values: [1] }] }] });
`,
    );
    fs.writeFileSync(
      path.join(benchDir, 'p2-propagation.bench.ts'),
      `import fs from 'node:fs';\nfs.appendFileSync(${JSON.stringify(order)}, 'p2\\n');\nprocess.exit(3);\n`,
    );
    fs.writeFileSync(path.join(benchDir, 'p4-agent.bench.ts'), `console.log('{}');\n`);
    const code = await runSuite({ mode: 'smoke', only: [], noReport: false, benchDir, resultsDir });
    assert.equal(code, 1);
    assert.equal(fs.readFileSync(order, 'utf8'), 'p1 smoke\np2\n', 'in order, --smoke passed through');
    const md = fs.readFileSync(path.join(resultsDir, 'summary.smoke.md'), 'utf8');
    assert.match(md, /- p2-propagation: exited with code 3/);
    assert.match(md, /- p3-broker: bench\/p3-broker.bench.ts does not exist/);
    assert.match(md, /- p4-agent: exited 0 but wrote no readable p4-agent.smoke.json/);
    assert.match(md, /## p1-burst — P1/);
    assert.ok(fs.existsSync(path.join(resultsDir, 'p1-burst.smoke.png')));

    const one = await runSuite({ mode: 'smoke', only: ['p1'], noReport: true, benchDir, resultsDir });
    assert.equal(one, 0, 'one part that works');
  });
});
