// Small SVG charts: line chart (training curves, F1 per round) and a strip plot with
// box (minutes per image, from scratch vs correction). No chart library: a few
// dozen points each.

import { svg } from "../ui/dom.js";

export interface Series {
  name: string;
  colour: string;
  points: Array<{ x: number; y: number }>;
}

const PAD = { l: 44, r: 12, t: 12, b: 28 };

function extent(values: number[], fallback: [number, number]): [number, number] {
  if (!values.length) return fallback;
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) {
    lo -= 0.5;
    hi += 0.5;
  }
  return [lo, hi];
}

function ticks(lo: number, hi: number, n = 5): number[] {
  const step = (hi - lo) / (n - 1);
  return Array.from({ length: n }, (_, i) => lo + i * step);
}

const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));

export function lineChart(series: Series[], opts: { width?: number; height?: number; xLabel?: string; yRange?: [number, number] } = {}): SVGElement {
  const W = opts.width ?? 520;
  const H = opts.height ?? 220;
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = series.flatMap((s) => s.points.map((p) => p.y));
  const [x0, x1] = extent(xs, [0, 1]);
  const [y0, y1] = opts.yRange ?? extent(ys, [0, 1]);
  const sx = (x: number) => PAD.l + ((x - x0) / (x1 - x0)) * (W - PAD.l - PAD.r);
  const sy = (y: number) => H - PAD.b - ((y - y0) / (y1 - y0)) * (H - PAD.t - PAD.b);
  const root = svg("svg", { class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}` });
  for (const t of ticks(y0, y1)) {
    root.appendChild(svg("line", { x1: PAD.l, x2: W - PAD.r, y1: sy(t), y2: sy(t), stroke: "#eee" }));
    root.appendChild(svg("text", { x: PAD.l - 4, y: sy(t) + 4, "text-anchor": "end" }, fmt(t)));
  }
  for (const t of ticks(x0, x1, Math.min(6, Math.max(2, new Set(xs).size)))) {
    root.appendChild(svg("text", { x: sx(t), y: H - 10, "text-anchor": "middle" }, fmt(t)));
  }
  if (opts.xLabel) root.appendChild(svg("text", { x: W - PAD.r, y: H - 1, "text-anchor": "end" }, opts.xLabel));
  for (const s of series) {
    if (!s.points.length) continue;
    const d = s.points.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join("");
    root.appendChild(svg("path", { d, fill: "none", stroke: s.colour, "stroke-width": 2, "data-series": s.name }));
    for (const p of s.points) root.appendChild(svg("circle", { cx: sx(p.x), cy: sy(p.y), r: 2.5, fill: s.colour }));
  }
  return root;
}

export interface Group {
  name: string;
  colour: string;
  values: number[];
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** One column per group: every value as a dot, with the quartile box and the median. */
export function stripPlot(groups: Group[], opts: { width?: number; height?: number; unit?: string } = {}): SVGElement {
  const W = opts.width ?? 420;
  const H = opts.height ?? 260;
  const all = groups.flatMap((g) => g.values);
  const [, hi] = extent([0, ...all], [0, 1]);
  const sy = (y: number) => H - PAD.b - (y / hi) * (H - PAD.t - PAD.b);
  const colW = (W - PAD.l - PAD.r) / Math.max(1, groups.length);
  const root = svg("svg", { class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`, "data-chart": "distribution" });
  for (const t of ticks(0, hi)) {
    root.appendChild(svg("line", { x1: PAD.l, x2: W - PAD.r, y1: sy(t), y2: sy(t), stroke: "#eee" }));
    root.appendChild(svg("text", { x: PAD.l - 4, y: sy(t) + 4, "text-anchor": "end" }, fmt(t)));
  }
  if (opts.unit) root.appendChild(svg("text", { x: W - PAD.r, y: PAD.t, "text-anchor": "end" }, opts.unit));
  groups.forEach((g, i) => {
    const cx = PAD.l + colW * (i + 0.5);
    const sorted = [...g.values].sort((a, b) => a - b);
    if (sorted.length) {
      const q1 = quantile(sorted, 0.25);
      const q3 = quantile(sorted, 0.75);
      const med = quantile(sorted, 0.5);
      root.appendChild(svg("rect", { x: cx - colW * 0.25, y: sy(q3), width: colW * 0.5, height: Math.max(1, sy(q1) - sy(q3)), fill: g.colour, "fill-opacity": 0.15, stroke: g.colour }));
      root.appendChild(svg("line", { x1: cx - colW * 0.25, x2: cx + colW * 0.25, y1: sy(med), y2: sy(med), stroke: g.colour, "stroke-width": 2 }));
    }
    // Deterministic jitter so that equal values do not hide each other.
    sorted.forEach((v, j) => {
      const jitter = ((j * 37) % 11) / 11 - 0.5;
      root.appendChild(svg("circle", { cx: cx + jitter * colW * 0.35, cy: sy(v), r: 3, fill: g.colour, "fill-opacity": 0.8, "data-value": v.toFixed(3) }));
    });
    root.appendChild(svg("text", { x: cx, y: H - 10, "text-anchor": "middle" }, `${g.name} (n=${g.values.length})`));
  });
  return root;
}
