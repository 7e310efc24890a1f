// The assisted correction tools: trace, grow, remove and the re-threshold brush. Each is a pure
// function of (mask, probability map, clicks) returning an Edit, the pixels it would change, so
// the editor can preview an edit before the click commits it and the simulated doctor
// (services/simulate/correctionDoctor.ts) uses exactly what the doctor's browser runs.
//
// Nothing here reads outside a region around the clicks, so a tool answers in a few
// milliseconds on a 999×960 image (benchmarks/correction_effort.ts times each tool).
//
// Sources: minimum-cost path tracing between clicks is the live-wire / intelligent-scissors idea
// (Mortensen & Barrett, "Intelligent scissors for image composition", SIGGRAPH 1995), here with
// the network's vessel probability as the local cost; the vessel width is the full width at half
// maximum of the probability profile across the path (the usual FWHM rule for vessel calibre);
// grow is hysteresis region growing (Canny 1986's double threshold applied to a region).

import type { ToolName } from "./effort.js";
import { clipRect, stroke, unionRect, type Mask, type Point, type Rect } from "./raster.js";
import { components } from "./skeleton.js";

/** A probability map of the prediction a task started from: one float in [0, 1] per pixel. */
export interface ProbabilityMap {
  readonly width: number;
  readonly height: number;
  readonly data: Float32Array;
}

/**
 * A probability map from the wire format of GET /api/tasks/:id/probability: unsigned 16-bit
 * little-endian samples, row-major, p = value / 65535. The one decoder of that format (the
 * browser editor and the simulated doctors' API client).
 */
export function probabilityFromUint16LE(bytes: ArrayBuffer | ArrayBufferView, width: number, height: number): ProbabilityMap {
  const view = ArrayBuffer.isView(bytes) ? new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength) : new DataView(bytes);
  if (view.byteLength !== width * height * 2) throw new Error(`the probability map has ${view.byteLength} bytes, expected ${width * height * 2} for ${width}×${height}`);
  const data = new Float32Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = view.getUint16(i * 2, true) / 65535;
  return { width, height, data };
}

/** A probability map from decoded image samples (the first channel over the format's maximum). */
export function probabilityFromSamples(s: { width: number; height: number; channels: number; maxval: number; data: ArrayLike<number> }): ProbabilityMap {
  const data = new Float32Array(s.width * s.height);
  for (let i = 0; i < data.length; i++) data[i] = s.data[i * s.channels]! / s.maxval;
  return { width: s.width, height: s.height, data };
}

/** The pixels one tool use would change: `indices` (row-major) take `values` (0 or 1). */
export interface Edit {
  tool: ToolName;
  indices: Uint32Array;
  values: Uint8Array;
  /** Bounding box of the changed pixels, null when nothing changes. */
  rect: Rect | null;
  /** The path the tool drew (trace: the minimum-cost path through the clicks), image pixels. */
  path: Point[];
  /** Width in pixels the trace drew with (the estimated vessel width); 0 for the other tools. */
  width: number;
}

export interface TraceOptions {
  /** Cost of a step onto a pixel of probability p is 1 / (p + epsilon)². */
  epsilon?: number;
  /** Pixels around the clicks' bounding box the path may use (at least; grows with distance). */
  margin?: number;
  /** Width used where the probability map shows no vessel along the path (pixels). */
  defaultWidth?: number;
  /** Widths are clamped to [1, maxWidth] pixels. */
  maxWidth?: number;
}

export interface GrowOptions {
  /** The lower threshold: the region grown is connected and above it. */
  low?: number;
  /** Only pixels within this distance of the click (pixels) are added. */
  radius?: number;
}

export interface RemoveOptions {
  /** Only pixels within this distance of the click are removed (large components are cut). */
  radius?: number;
}

export const TRACE_DEFAULTS = { epsilon: 0.05, margin: 16, defaultWidth: 3, maxWidth: 15 } as const;
export const GROW_DEFAULTS = { low: 0.1, radius: 60 } as const;
export const REMOVE_DEFAULTS = { radius: 80 } as const;
/** A click counts on the nearest suitable pixel within this many pixels of it. */
export const SNAP_RADIUS = 3;

function checkSizes(mask: Mask, prob: ProbabilityMap): void {
  if (mask.width !== prob.width || mask.height !== prob.height) {
    throw new Error(`probability map is ${prob.width}×${prob.height}, mask ${mask.width}×${mask.height}`);
  }
}

/** Applies an edit to the mask in place; returns the rectangle to repaint (null: nothing). */
export function applyEdit(mask: Mask, edit: Edit): Rect | null {
  for (let k = 0; k < edit.indices.length; k++) mask.data[edit.indices[k]!] = edit.values[k]!;
  return edit.rect;
}

/** Builds an edit from wanted values over a region: only pixels that differ from the mask. */
function diffEdit(mask: Mask, region: Rect, wanted: Uint8Array, tool: ToolName, path: Point[], width: number): Edit {
  const rw = region.x1 - region.x0;
  const indices: number[] = [];
  const values: number[] = [];
  let rect: Rect | null = null;
  for (let y = region.y0; y < region.y1; y++) {
    for (let x = region.x0; x < region.x1; x++) {
      const w = wanted[(y - region.y0) * rw + (x - region.x0)]!;
      if (w === 255) continue; // 255: leave as it is
      const i = y * mask.width + x;
      if (mask.data[i] === w) continue;
      indices.push(i);
      values.push(w);
      rect = unionRect(rect, { x0: x, y0: y, x1: x + 1, y1: y + 1 });
    }
  }
  return { tool, indices: Uint32Array.from(indices), values: Uint8Array.from(values), rect, path, width };
}

function emptyEdit(tool: ToolName): Edit {
  return { tool, indices: new Uint32Array(0), values: new Uint8Array(0), rect: null, path: [], width: 0 };
}

// -- minimum-cost path (Dijkstra on the 8-connected pixel grid of a region) ------------------

/** A binary min-heap of node indices keyed by a Float64Array of distances. */
class Heap {
  private items: number[] = [];
  constructor(private readonly key: Float64Array) {}
  get size(): number {
    return this.items.length;
  }
  push(node: number): void {
    const a = this.items;
    a.push(node);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.key[a[parent]!]! <= this.key[node]!) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = node;
  }
  pop(): number {
    const a = this.items;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      const k = this.key[last]!;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && this.key[a[r]!]! < this.key[a[l]!]! ? r : l;
        if (this.key[a[c]!]! >= k) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

const STEPS: ReadonlyArray<readonly [number, number, number]> = [
  [1, 0, 1], [-1, 0, 1], [0, 1, 1], [0, -1, 1],
  [1, 1, Math.SQRT2], [1, -1, Math.SQRT2], [-1, 1, Math.SQRT2], [-1, -1, Math.SQRT2],
];

/**
 * The minimum-cost 8-connected path of pixel centres from a to b, staying inside `region`. A
 * step's cost is its length times 1 / (p + epsilon)² of the pixel stepped onto, so the path runs
 * along high probability (a vessel the network saw faintly) rather than straight, and the square
 * keeps it on the ridge of the profile rather than cutting the inside of bends.
 */
export function minimumCostPath(prob: ProbabilityMap, a: Point, b: Point, region: Rect, epsilon: number): Point[] {
  const rw = region.x1 - region.x0;
  const rh = region.y1 - region.y0;
  const node = (p: Point) => {
    const x = Math.min(region.x1 - 1, Math.max(region.x0, Math.floor(p.x)));
    const y = Math.min(region.y1 - 1, Math.max(region.y0, Math.floor(p.y)));
    return (y - region.y0) * rw + (x - region.x0);
  };
  const start = node(a);
  const goal = node(b);
  const dist = new Float64Array(rw * rh).fill(Infinity);
  const from = new Int32Array(rw * rh).fill(-1);
  const done = new Uint8Array(rw * rh);
  const heap = new Heap(dist);
  dist[start] = 0;
  heap.push(start);
  while (heap.size > 0) {
    const u = heap.pop();
    if (done[u]) continue;
    done[u] = 1;
    if (u === goal) break;
    const ux = u % rw;
    const uy = (u - ux) / rw;
    for (const [dx, dy, len] of STEPS) {
      const vx = ux + dx;
      const vy = uy + dy;
      if (vx < 0 || vy < 0 || vx >= rw || vy >= rh) continue;
      const v = vy * rw + vx;
      if (done[v]) continue;
      const p = prob.data[(vy + region.y0) * prob.width + vx + region.x0]!;
      const q = 1 / (p + epsilon);
      const d = dist[u]! + len * q * q;
      if (d < dist[v]!) {
        dist[v] = d;
        from[v] = u;
        heap.push(v);
      }
    }
  }
  const path: Point[] = [];
  for (let v = goal; v !== -1; v = v === start ? -1 : from[v]!) {
    const x = v % rw;
    path.push({ x: x + region.x0 + 0.5, y: (v - x) / rw + region.y0 + 0.5 });
    if (v !== start && from[v] === -1) break; // unreachable (cannot happen on a connected grid)
  }
  return path.reverse();
}

/** Probability at a real-valued point (nearest pixel); 0 outside the map. */
function probAt(prob: ProbabilityMap, x: number, y: number): number {
  const ix = Math.floor(x);
  const iy = Math.floor(y);
  if (ix < 0 || iy < 0 || ix >= prob.width || iy >= prob.height) return 0;
  return prob.data[iy * prob.width + ix]!;
}

/**
 * Full width at half maximum of the probability profile across the path at point i: from the
 * point, step along the normal both ways (half a pixel at a time) until the probability falls
 * below half its value at the centre. NaN where the centre shows no vessel (p < 0.05).
 */
export function widthAcross(prob: ProbabilityMap, path: readonly Point[], i: number, maxWidth: number): number {
  const p = path[i]!;
  const a = path[Math.max(0, i - 3)]!;
  const b = path[Math.min(path.length - 1, i + 3)]!;
  let tx = b.x - a.x;
  let ty = b.y - a.y;
  const norm = Math.hypot(tx, ty);
  if (norm === 0) return NaN;
  tx /= norm;
  ty /= norm;
  const [nx, ny] = [-ty, tx];
  const centre = probAt(prob, p.x, p.y);
  if (centre < 0.05) return NaN;
  const half = centre / 2;
  let width = 0;
  for (const sign of [1, -1]) {
    let t = 0.5;
    while (t <= maxWidth && probAt(prob, p.x + sign * t * nx, p.y + sign * t * ny) >= half) t += 0.5;
    width += t - 0.25; // the crossing lies between the last step above and the first below
  }
  return width;
}

function median(values: number[]): number {
  const s = values.filter((v) => Number.isFinite(v)).sort((u, v) => u - v);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function boundsOf(points: readonly Point[], pad: number, width: number, height: number): Rect | null {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (const p of points) {
    x0 = Math.min(x0, p.x);
    y0 = Math.min(y0, p.y);
    x1 = Math.max(x1, p.x);
    y1 = Math.max(y1, p.y);
  }
  return clipRect(
    { x0: Math.floor(x0 - pad), y0: Math.floor(y0 - pad), x1: Math.ceil(x1 + pad) + 1, y1: Math.ceil(y1 + pad) + 1 },
    width,
    height,
  );
}

/**
 * trace: the minimum-cost path through two or more clicks (live wire), drawn with the vessel's
 * estimated width (the median FWHM across the path; `defaultWidth` where the map shows none).
 * Adds pixels only.
 */
export function trace(mask: Mask, prob: ProbabilityMap, clicks: readonly Point[], options: TraceOptions = {}): Edit {
  checkSizes(mask, prob);
  const o = { ...TRACE_DEFAULTS, ...options };
  if (clicks.length < 2) return emptyEdit("trace");
  const path: Point[] = [];
  for (let k = 1; k < clicks.length; k++) {
    const a = clicks[k - 1]!;
    const b = clicks[k]!;
    const pad = Math.max(o.margin, 0.25 * Math.hypot(b.x - a.x, b.y - a.y));
    const region = boundsOf([a, b], pad, mask.width, mask.height);
    if (!region) continue;
    const leg = minimumCostPath(prob, a, b, region, o.epsilon);
    path.push(...(path.length ? leg.slice(1) : leg));
  }
  if (path.length === 0) return emptyEdit("trace");
  const estimated = median(path.map((_, i) => widthAcross(prob, path, i, o.maxWidth)));
  const width = Math.min(o.maxWidth, Math.max(1, Number.isFinite(estimated) ? estimated : o.defaultWidth));
  return drawnEdit(mask, path, width, "trace", (covered) => (covered ? 1 : 255));
}

/**
 * A brush (value 1) or eraser (value 0) stroke of diameter `size` along `points` as an edit: the
 * manual tools' geometry (raster.ts `stroke`), for the simulated doctor and for previews.
 */
export function strokeEdit(mask: Mask, points: readonly Point[], size: number, value: 0 | 1): Edit {
  return drawnEdit(mask, [...points], size, value ? "brush" : "eraser", () => value);
}

/** Rasterises a stroke along `path` into a scratch region and turns it into an edit. */
function drawnEdit(
  mask: Mask,
  path: Point[],
  width: number,
  tool: ToolName,
  value: (covered: boolean, index: number) => number,
): Edit {
  const region = boundsOf(path, width / 2 + 1, mask.width, mask.height);
  if (!region) return emptyEdit(tool);
  const rw = region.x1 - region.x0;
  const rh = region.y1 - region.y0;
  const scratch: Mask = { width: rw, height: rh, data: new Uint8Array(rw * rh) };
  stroke(scratch, path.map((p) => ({ x: p.x - region.x0, y: p.y - region.y0 })), width, 1);
  const wanted = new Uint8Array(rw * rh);
  for (let y = 0; y < rh; y++) {
    for (let x = 0; x < rw; x++) {
      const k = y * rw + x;
      wanted[k] = scratch.data[k] ? value(true, (y + region.y0) * mask.width + x + region.x0) : 255;
    }
  }
  return diffEdit(mask, region, wanted, tool, path, width);
}

/** The pixel within SNAP_RADIUS of the click that maximises `score` (null when none scores > 0). */
function snap(width: number, height: number, click: Point, score: (i: number) => number): number | null {
  const cx = Math.floor(click.x);
  const cy = Math.floor(click.y);
  let best: number | null = null;
  let bestScore = 0;
  let bestDist = Infinity;
  for (let dy = -SNAP_RADIUS; dy <= SNAP_RADIUS; dy++) {
    for (let dx = -SNAP_RADIUS; dx <= SNAP_RADIUS; dx++) {
      const x = cx + dx;
      const y = cy + dy;
      if (x < 0 || y < 0 || x >= width || y >= height || dx * dx + dy * dy > SNAP_RADIUS * SNAP_RADIUS) continue;
      const s = score(y * width + x);
      const d = dx * dx + dy * dy;
      if (s > bestScore || (s === bestScore && s > 0 && d < bestDist)) {
        best = y * width + x;
        bestScore = s;
        bestDist = d;
      }
    }
  }
  return best;
}

/**
 * The 8-connected region from `seed` of pixels accepted by `inside`, limited to a disc of
 * `radius` around `centre` (skeleton.ts `components` from one seed); the region's pixel indices.
 */
function regionFrom(width: number, height: number, seed: number, centre: Point, radius: number, inside: (i: number) => boolean): number[] {
  const r2 = radius * radius;
  const inDisc = (i: number) => {
    const x = i % width;
    const ex = x + 0.5 - centre.x;
    const ey = (i - x) / width + 0.5 - centre.y;
    return ex * ex + ey * ey <= r2;
  };
  return components(width, height, (i) => inDisc(i) && inside(i), [seed])[0] ?? [];
}

function regionEdit(mask: Mask, tool: ToolName, pixels: number[], value: number, path: Point[]): Edit {
  const changed = pixels.filter((i) => mask.data[i] !== value).sort((a, b) => a - b);
  if (changed.length === 0) return { ...emptyEdit(tool), path };
  let rect: Rect | null = null;
  for (const i of changed) {
    const x = i % mask.width;
    const y = (i - x) / mask.width;
    rect = unionRect(rect, { x0: x, y0: y, x1: x + 1, y1: y + 1 });
  }
  return { tool, indices: Uint32Array.from(changed), values: new Uint8Array(changed.length).fill(value), rect, path, width: 0 };
}

/**
 * grow: one click on a faint vessel adds the 8-connected region of the probability map at or
 * above `low` that is reachable from the click, within `radius` pixels of it. The click snaps to
 * the most probable pixel within SNAP_RADIUS; below `low` there, nothing is added.
 */
export function grow(mask: Mask, prob: ProbabilityMap, click: Point, options: GrowOptions = {}): Edit {
  checkSizes(mask, prob);
  const o = { ...GROW_DEFAULTS, ...options };
  const seed = snap(mask.width, mask.height, click, (i) => prob.data[i]!);
  if (seed === null || prob.data[seed]! < o.low) return { ...emptyEdit("grow"), path: [click] };
  const pixels = regionFrom(mask.width, mask.height, seed, click, o.radius, (i) => prob.data[i]! >= o.low);
  return regionEdit(mask, "grow", pixels, 1, [click]);
}

/**
 * remove: one click erases the 8-connected component of the mask under it, within `radius`
 * pixels of the click (a large component is cut there rather than erased whole). The click snaps
 * to the nearest mask pixel within SNAP_RADIUS.
 */
export function remove(mask: Mask, click: Point, options: RemoveOptions = {}): Edit {
  const o = { ...REMOVE_DEFAULTS, ...options };
  const seed = snap(mask.width, mask.height, click, (i) => mask.data[i]!);
  if (seed === null) return { ...emptyEdit("remove"), path: [click] };
  const pixels = regionFrom(mask.width, mask.height, seed, click, o.radius, (i) => mask.data[i] === 1);
  return regionEdit(mask, "remove", pixels, 0, [click]);
}

/**
 * Re-threshold brush: under a stroke of diameter `size` through `points`, each pixel becomes
 * (probability ≥ threshold): a lower threshold brings back faint vessels, a higher one trims.
 */
export function rethreshold(mask: Mask, prob: ProbabilityMap, points: readonly Point[], size: number, threshold: number): Edit {
  checkSizes(mask, prob);
  if (points.length === 0) return emptyEdit("rethreshold");
  return drawnEdit(mask, [...points], size, "rethreshold", (_covered, i) => (prob.data[i]! >= threshold ? 1 : 0));
}
