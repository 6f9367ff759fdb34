// The demo chart: Vega-Lite spec → Vega → SVG (headless, no canvas) → PNG with resvg. No browser.
import fs from 'node:fs';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import type { DemoResults } from './types.js';

/** Pure: the Vega-Lite spec for latency percentiles and throttling per phase. */
export function chartSpec(r: DemoResults): vegaLite.TopLevelSpec {
  const latency = r.phases.flatMap((p) =>
    (['p50', 'p90', 'p99'] as const).map((q) => ({ phase: p.name, percentile: q, ms: p.latencyMs[q] })),
  );
  const throttling = r.phases.map((p) => ({
    phase: p.name,
    throttled: Math.round(p.throttling.throttledRatio * 1000) / 10,
  }));
  const order = r.phases.map((p) => p.name);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: 'cpuburst demo: CPU burst vs. tail latency',
      subtitle: `${r.workload.ratePerSecond} req/s × ${r.workload.workMs} ms CPU, limit ${r.workload.cpuLimit}, ${r.machine.cpus} CPUs, ${r.machine.mode} cgroups`,
    },
    background: 'white',
    padding: 16,
    config: { font: 'sans-serif', axis: { labelFontSize: 12, titleFontSize: 13 }, title: { fontSize: 16 } },
    hconcat: [
      {
        title: 'Request latency (ms)',
        width: 360,
        height: 260,
        data: { values: latency },
        mark: { type: 'bar', tooltip: true },
        encoding: {
          x: { field: 'phase', type: 'nominal', sort: order, title: null, axis: { labelAngle: 0 } },
          xOffset: { field: 'percentile', sort: ['p50', 'p90', 'p99'] },
          y: { field: 'ms', type: 'quantitative', title: 'latency (ms)' },
          color: { field: 'percentile', type: 'nominal', scale: { scheme: 'tableau10' }, title: 'percentile' },
        },
      },
      {
        title: 'Throttled CFS periods (%)',
        width: 300,
        height: 260,
        data: { values: throttling },
        layer: [
          {
            mark: { type: 'bar', color: '#e45756' },
            encoding: {
              x: { field: 'phase', type: 'nominal', sort: order, title: null, axis: { labelAngle: 0 } },
              y: { field: 'throttled', type: 'quantitative', title: 'throttled periods (%)' },
            },
          },
          {
            mark: { type: 'text', dy: -8, fontSize: 12 },
            encoding: {
              x: { field: 'phase', type: 'nominal', sort: order },
              y: { field: 'throttled', type: 'quantitative' },
              text: { field: 'throttled', type: 'quantitative', format: '.1f' },
            },
          },
        ],
      },
    ],
  };
}

export async function renderSvg(spec: vegaLite.TopLevelSpec): Promise<string> {
  const compiled = vegaLite.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** resvg draws text only with a system font; Debian: fonts-dejavu-core. */
export function haveSystemFonts(dirs = ['/usr/share/fonts', '/usr/local/share/fonts']): boolean {
  return dirs.some((d) => {
    try {
      return fs.readdirSync(d, { recursive: true }).some((f) => /\.(ttf|otf|ttc)$/i.test(String(f)));
    } catch {
      return false;
    }
  });
}

export function svgToPng(svg: string, width = 1400): Buffer {
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'width', value: width },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  });
  return resvg.render().asPng();
}

export async function renderChartPng(r: DemoResults): Promise<{ svg: string; png: Buffer }> {
  const svg = await renderSvg(chartSpec(r));
  return { svg, png: svgToPng(svg) };
}
