// Rasterisation of the editor's tools on a binary mask (one byte per pixel, 0 or 1).
//
// Pixel (x, y) covers the square [x, x+1) × [y, y+1) and is sampled at its centre
// (x+0.5, y+0.5). Every tool is a pure function of its geometry (points in image
// coordinates, floats), so the browser editor and the tests produce the same pixels
// for the same strokes. Each function returns the rectangle it may have changed
// (for repainting and the undo history) or null when it touched nothing.

export interface Mask {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** Half-open rectangle [x0, x1) × [y0, y1) in image pixels. */
export interface Rect {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export interface Point {
  x: number;
  y: number;
}

export function createMask(width: number, height: number, data?: Uint8Array): Mask {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new Error(`mask size must be positive integers, got ${width}×${height}`);
  }
  if (data && data.length !== width * height) {
    throw new Error(`mask data has ${data.length} bytes, expected ${width * height}`);
  }
  return { width, height, data: data ?? new Uint8Array(width * height) };
}

export function cloneMask(mask: Mask): Mask {
  return { width: mask.width, height: mask.height, data: mask.data.slice() };
}

/** Clips a rectangle to the mask; null when nothing is left. */
export function clipRect(r: Rect, width: number, height: number): Rect | null {
  const x0 = Math.max(0, r.x0);
  const y0 = Math.max(0, r.y0);
  const x1 = Math.min(width, r.x1);
  const y1 = Math.min(height, r.y1);
  return x0 < x1 && y0 < y1 ? { x0, y0, x1, y1 } : null;
}

export function unionRect(a: Rect | null, b: Rect | null): Rect | null {
  if (!a) return b;
  if (!b) return a;
  return { x0: Math.min(a.x0, b.x0), y0: Math.min(a.y0, b.y0), x1: Math.max(a.x1, b.x1), y1: Math.max(a.y1, b.y1) };
}

/**
 * Sets every pixel whose centre lies within `radius` of the segment a–b (a capsule).
 * With a === b this is a disc: stamping discs continuously along a stroke is exactly
 * the union of these capsules, so the result does not depend on how densely the
 * pointer was sampled.
 */
export function capsule(mask: Mask, a: Point, b: Point, radius: number, value: number): Rect | null {
  const r = Math.max(radius, 0.5); // a stroke is never thinner than one pixel
  const box = clipRect(
    {
      x0: Math.floor(Math.min(a.x, b.x) - r),
      y0: Math.floor(Math.min(a.y, b.y) - r),
      x1: Math.ceil(Math.max(a.x, b.x) + r) + 1,
      y1: Math.ceil(Math.max(a.y, b.y) + r) + 1,
    },
    mask.width,
    mask.height,
  );
  if (!box) return null;
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const len2 = dx * dx + dy * dy;
  const r2 = r * r;
  const { data, width } = mask;
  for (let y = box.y0; y < box.y1; y++) {
    const py = y + 0.5 - a.y;
    const row = y * width;
    for (let x = box.x0; x < box.x1; x++) {
      const px = x + 0.5 - a.x;
      // Distance from the pixel centre to the closest point of the segment.
      let t = len2 > 0 ? (px * dx + py * dy) / len2 : 0;
      t = t < 0 ? 0 : t > 1 ? 1 : t;
      const ex = px - t * dx;
      const ey = py - t * dy;
      if (ex * ex + ey * ey <= r2) data[row + x] = value;
    }
  }
  // The box covers every pixel the capsule may have set: enough for repainting;
  // the undo history finds the exact change itself.
  return box;
}

/** A brush or eraser stroke of diameter `size` through `points` (one point: a dot). */
export function stroke(mask: Mask, points: readonly Point[], size: number, value: number): Rect | null {
  if (points.length === 0) return null;
  const radius = size / 2;
  const first = points[0]!;
  if (points.length === 1) return capsule(mask, first, first, radius, value);
  let dirty: Rect | null = null;
  for (let i = 1; i < points.length; i++) {
    dirty = unionRect(dirty, capsule(mask, points[i - 1]!, points[i]!, radius, value));
  }
  return dirty;
}

/** An open polyline of line width `width` (thin vessels): the same geometry as a stroke. */
export function polyline(mask: Mask, points: readonly Point[], width: number, value: number): Rect | null {
  return stroke(mask, points, width, value);
}

/**
 * Fills a polygon by scanlines with the even-odd rule: a pixel is set when its centre
 * lies inside. Edges follow the half-open convention (an edge includes its lower end
 * and excludes its upper end), so shared vertices are counted once.
 */
export function fillPolygon(mask: Mask, vertices: readonly Point[], value: number): Rect | null {
  if (vertices.length < 3) return null;
  let minY = Infinity;
  let maxY = -Infinity;
  for (const v of vertices) {
    minY = Math.min(minY, v.y);
    maxY = Math.max(maxY, v.y);
  }
  const yStart = Math.max(0, Math.ceil(minY - 0.5));
  const yEnd = Math.min(mask.height - 1, Math.floor(maxY - 0.5));
  const { data, width } = mask;
  const xs: number[] = [];
  let dirty: Rect | null = null;
  for (let y = yStart; y <= yEnd; y++) {
    const sy = y + 0.5;
    xs.length = 0;
    for (let i = 0; i < vertices.length; i++) {
      const p = vertices[i]!;
      const q = vertices[(i + 1) % vertices.length]!;
      if ((p.y <= sy && q.y > sy) || (q.y <= sy && p.y > sy)) {
        xs.push(p.x + ((sy - p.y) * (q.x - p.x)) / (q.y - p.y));
      }
    }
    xs.sort((u, v) => u - v);
    for (let k = 0; k + 1 < xs.length; k += 2) {
      // Pixels whose centre x+0.5 lies in [xa, xb).
      const xa = Math.max(0, Math.ceil(xs[k]! - 0.5));
      const xb = Math.min(width, Math.ceil(xs[k + 1]! - 0.5));
      if (xa >= xb) continue;
      data.fill(value, y * width + xa, y * width + xb);
      dirty = unionRect(dirty, { x0: xa, y0: y, x1: xb, y1: y + 1 });
    }
  }
  return dirty;
}

/**
 * 4-connected flood fill from (x, y): the connected region of pixels equal to the
 * seed's value takes `value`. Scanline spans keep the explicit stack small.
 */
export function floodFill(mask: Mask, x: number, y: number, value: number): Rect | null {
  const sx = Math.floor(x);
  const sy = Math.floor(y);
  const { data, width, height } = mask;
  if (sx < 0 || sy < 0 || sx >= width || sy >= height) return null;
  const target = data[sy * width + sx]!;
  if (target === value) return null;
  let x0 = sx;
  let x1 = sx + 1;
  let y0 = sy;
  let y1 = sy + 1;
  const stack: number[] = [sx, sy];
  while (stack.length > 0) {
    const py = stack.pop()!;
    const px = stack.pop()!;
    const row = py * width;
    if (data[row + px] !== target) continue;
    let left = px;
    while (left > 0 && data[row + left - 1] === target) left--;
    let right = px;
    while (right + 1 < width && data[row + right + 1] === target) right++;
    data.fill(value, row + left, row + right + 1);
    x0 = Math.min(x0, left);
    x1 = Math.max(x1, right + 1);
    y0 = Math.min(y0, py);
    y1 = Math.max(y1, py + 1);
    for (const ny of [py - 1, py + 1]) {
      if (ny < 0 || ny >= height) continue;
      const nrow = ny * width;
      // Push one seed per run of target pixels in the neighbouring row.
      let inRun = false;
      for (let nx = left; nx <= right; nx++) {
        const hit = data[nrow + nx] === target;
        if (hit && !inRun) stack.push(nx, ny);
        inRun = hit;
      }
    }
  }
  return { x0, y0, x1, y1 };
}

/** Number of pixels that differ between two masks of the same size. */
export function countDifferent(a: Mask, b: Mask): number {
  if (a.width !== b.width || a.height !== b.height) throw new Error("masks differ in size");
  let n = 0;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) n++;
  return n;
}

export function countSet(mask: Mask): number {
  let n = 0;
  for (let i = 0; i < mask.data.length; i++) if (mask.data[i]) n++;
  return n;
}
