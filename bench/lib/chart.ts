// A part's charts as one PNG: BenchChart[] → Vega-Lite spec (pure) → Vega → SVG (headless) →
// PNG with resvg, the demo's pipeline (demo/results/chart.ts). Text needs a system font
// (Debian: fonts-dejavu-core).
import type { TopLevelSpec } from 'vega-lite';
import { renderSvg, svgToPng } from '../../demo/results/chart.js';
import type { BenchChart, BenchResult } from './results.js';

type Datum = { x: string | number; series: string; value: number };

/** Pure: the data points of a chart (nulls dropped; non-positive values dropped on a log axis). */
export function chartData(c: BenchChart): Datum[] {
  const out: Datum[] = [];
  for (const s of c.series)
    c.x.forEach((x, i) => {
      const v = s.values[i];
      if (v == null || !Number.isFinite(v) || (c.logY && v <= 0)) return;
      out.push({ x, series: s.name, value: v });
    });
  return out;
}

/** Pure: the Vega-Lite view of one chart (grouped bars, or lines with points). */
export function chartView(c: BenchChart, width = 620, height = 260): Record<string, unknown> {
  const numericX = c.kind === 'line' && c.x.every((x) => typeof x === 'number');
  const y = {
    field: 'value',
    type: 'quantitative',
    title: c.unit,
    ...(c.logY ? { scale: { type: 'log' } } : {}),
  };
  const color = {
    field: 'series',
    type: 'nominal',
    title: null,
    sort: c.series.map((s) => s.name),
    scale: { scheme: 'tableau10' },
  };
  const x = numericX
    ? { field: 'x', type: 'quantitative', title: c.xTitle ?? null }
    : {
        field: 'x',
        type: 'nominal',
        sort: c.x.map(String),
        title: c.xTitle ?? null,
        axis: { labelAngle: c.x.length > 4 ? -30 : 0, labelLimit: 320 },
      };
  // Bars on a log axis need an explicit positive baseline (the default, zero, has no logarithm and
  // the bars would not be drawn): the power of ten at or below the smallest value.
  const data = chartData(c);
  const min = Math.min(...data.map((d) => d.value));
  const logBase = c.logY && c.kind === 'bar' && data.length > 0 ? 10 ** Math.floor(Math.log10(min)) : null;
  return {
    title: c.title,
    width,
    height,
    data: { values: data.map((d) => ({ ...d, x: numericX ? d.x : String(d.x) })) },
    mark:
      c.kind === 'bar'
        ? { type: 'bar', tooltip: true }
        : { type: 'line', point: true, tooltip: true, interpolate: 'linear' },
    encoding:
      c.kind === 'bar'
        ? {
            x,
            xOffset: { field: 'series', sort: c.series.map((s) => s.name) },
            y,
            ...(logBase != null ? { y2: { datum: logBase } } : {}),
            color,
          }
        : { x, y, color },
  };
}

/** Pure: one Vega-Lite spec for all the charts of a part, stacked. */
export function partChartSpec(r: BenchResult): TopLevelSpec {
  const views = r.charts.map((c) => chartView(c));
  const m = r.machine;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: r.title,
      subtitle: `${r.mode} run ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC · ${m.cpus} × ${m.cpuModel} · kernel ${m.kernel} · node ${m.node} · load ${m.loadAverage1m}`,
    },
    background: 'white',
    padding: 16,
    config: {
      font: 'DejaVu Sans',
      axis: { labelFontSize: 11, titleFontSize: 12 },
      title: { fontSize: 15 },
      legend: { labelFontSize: 11, labelLimit: 260 },
    },
    vconcat: views,
    // Each chart has its own series: its own colours and legend.
    resolve: { scale: { color: 'independent' }, legend: { color: 'independent' } },
  } as unknown as TopLevelSpec;
}

/** The part's PNG, or null when it has no charts. */
export async function renderPartPng(r: BenchResult): Promise<{ svg: string; png: Buffer } | null> {
  if (r.charts.length === 0) return null;
  const svg = await renderSvg(partChartSpec(r));
  return { svg, png: svgToPng(svg, 1200) };
}
