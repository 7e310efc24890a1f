import { describe, expect, it } from "vitest";
import {
  countSet,
  createMask,
  fillPolygon,
  floodFill,
  polyline,
  stroke,
  type Mask,
  type Point,
} from "../../services/correction/raster.js";

// Reference rasterisations written the slow, obvious way, to compare the tools against.
function distToSegment(px: number, py: number, a: Point, b: Point): number {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const len2 = dx * dx + dy * dy;
  const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, ((px - a.x) * dx + (py - a.y) * dy) / len2));
  return Math.hypot(px - a.x - t * dx, py - a.y - t * dy);
}

function referenceStroke(w: number, h: number, pts: Point[], size: number): Uint8Array {
  const out = new Uint8Array(w * h);
  const r = Math.max(size / 2, 0.5);
  const segs = pts.length === 1 ? [[pts[0]!, pts[0]!]] : pts.slice(1).map((p, i) => [pts[i]!, p]);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (const [a, b] of segs)
        if (distToSegment(x + 0.5, y + 0.5, a!, b!) <= r + 1e-9) out[y * w + x] = 1;
  return out;
}

function referenceInside(poly: Point[], px: number, py: number): boolean {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const a = poly[i]!;
    const b = poly[j]!;
    if (a.y > py !== b.y > py && px < ((b.x - a.x) * (py - a.y)) / (b.y - a.y) + a.x) inside = !inside;
  }
  return inside;
}

function referenceFlood(mask: Mask, sx: number, sy: number, value: number): Uint8Array {
  const out = mask.data.slice();
  const target = out[sy * mask.width + sx];
  const queue: Array<[number, number]> = [[sx, sy]];
  while (queue.length) {
    const [x, y] = queue.pop()!;
    if (x < 0 || y < 0 || x >= mask.width || y >= mask.height) continue;
    if (out[y * mask.width + x] !== target) continue;
    out[y * mask.width + x] = value;
    queue.push([x + 1, y], [x - 1, y], [x, y + 1], [x, y - 1]);
  }
  return out;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("brush stroke", () => {
  it("a size-1 dot at a pixel centre sets exactly that pixel", () => {
    const m = createMask(10, 10);
    stroke(m, [{ x: 5.5, y: 3.5 }], 1, 1);
    expect(countSet(m)).toBe(1);
    expect(m.data[3 * 10 + 5]).toBe(1);
  });

  it("a size-5 dot is the 21-pixel disc", () => {
    const m = createMask(21, 21);
    stroke(m, [{ x: 10.5, y: 10.5 }], 5, 1);
    expect(countSet(m)).toBe(21);
    expect(m.data[10 * 21 + 8]).toBe(1); // two left of the centre
    expect(m.data[8 * 21 + 8]).toBe(0); // the corner of the 5×5 square is outside
  });

  it("a horizontal stroke of size 3 covers three rows of 13 pixels", () => {
    const m = createMask(20, 12);
    stroke(m, [{ x: 2.5, y: 5.5 }, { x: 12.5, y: 5.5 }], 3, 1);
    expect(countSet(m)).toBe(39);
    for (const y of [4, 5, 6]) {
      expect(m.data[y * 20 + 1]).toBe(1);
      expect(m.data[y * 20 + 13]).toBe(1);
      expect(m.data[y * 20 + 14]).toBe(0);
    }
  });

  it("does not depend on how densely a straight stroke was sampled", () => {
    const a = createMask(40, 40);
    const b = createMask(40, 40);
    stroke(a, [{ x: 3.2, y: 4.1 }, { x: 33.7, y: 29.9 }], 6, 1);
    const dense: Point[] = [];
    for (let i = 0; i <= 17; i++) dense.push({ x: 3.2 + (30.5 * i) / 17, y: 4.1 + (25.8 * i) / 17 });
    stroke(b, dense, 6, 1);
    // Floating-point noise on the densely sampled line may flip a pixel exactly on the rim.
    let diff = 0;
    for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) diff++;
    expect(diff).toBeLessThanOrEqual(2);
    expect(countSet(a)).toBeGreaterThan(150);
  });

  it("matches the reference rasterisation on random strokes, clipped at the border", () => {
    const rand = rng(42);
    for (let trial = 0; trial < 25; trial++) {
      const w = 30 + Math.floor(rand() * 20);
      const h = 25 + Math.floor(rand() * 20);
      const pts: Point[] = [];
      const n = 1 + Math.floor(rand() * 5);
      for (let i = 0; i < n; i++) pts.push({ x: rand() * (w + 10) - 5, y: rand() * (h + 10) - 5 });
      const size = 1 + rand() * 9;
      const m = createMask(w, h);
      stroke(m, pts, size, 1);
      expect(Array.from(m.data)).toEqual(Array.from(referenceStroke(w, h, pts, size)));
    }
  });

  it("the eraser clears what the brush drew and reports the area it touched", () => {
    const m = createMask(30, 30);
    stroke(m, [{ x: 5, y: 15 }, { x: 25, y: 15 }], 6, 1);
    const before = countSet(m);
    const dirty = stroke(m, [{ x: 15, y: 15 }], 6, 0);
    expect(countSet(m)).toBeLessThan(before);
    expect(dirty).not.toBeNull();
    for (let y = 0; y < 30; y++)
      for (let x = 0; x < 30; x++)
        if (Math.hypot(x + 0.5 - 15, y + 0.5 - 15) <= 3) expect(m.data[y * 30 + x]).toBe(0);
    // Everything erased lies inside the reported rectangle.
    const d = dirty!;
    expect(d.x0).toBeLessThanOrEqual(12);
    expect(d.x1).toBeGreaterThanOrEqual(18);
  });

  it("a stroke entirely outside the image touches nothing", () => {
    const m = createMask(10, 10);
    expect(stroke(m, [{ x: -20, y: -20 }, { x: -15, y: -30 }], 4, 1)).toBeNull();
    expect(countSet(m)).toBe(0);
  });
});

describe("polyline", () => {
  it("draws a one-pixel-wide open line through its vertices", () => {
    const m = createMask(20, 20);
    polyline(m, [{ x: 2.5, y: 2.5 }, { x: 2.5, y: 12.5 }, { x: 12.5, y: 12.5 }], 1, 1);
    // An L: 11 pixels down, 10 more to the right, the closing side is not drawn.
    expect(countSet(m)).toBe(21);
    expect(m.data[7 * 20 + 7]).toBe(0);
  });
});

describe("polygon fill", () => {
  it("fills an axis-aligned rectangle exactly", () => {
    const m = createMask(10, 10);
    fillPolygon(m, [{ x: 2, y: 2 }, { x: 6, y: 2 }, { x: 6, y: 5 }, { x: 2, y: 5 }], 1);
    expect(countSet(m)).toBe(12);
    expect(m.data[2 * 10 + 2]).toBe(1);
    expect(m.data[4 * 10 + 5]).toBe(1);
    expect(m.data[5 * 10 + 5]).toBe(0);
    expect(m.data[4 * 10 + 6]).toBe(0);
  });

  it("matches an even-odd point-in-polygon test on random polygons", () => {
    const rand = rng(7);
    for (let trial = 0; trial < 25; trial++) {
      const w = 40;
      const h = 35;
      const poly: Point[] = [];
      const n = 3 + Math.floor(rand() * 6);
      for (let i = 0; i < n; i++) poly.push({ x: rand() * 50 - 5, y: rand() * 45 - 5 });
      const m = createMask(w, h);
      fillPolygon(m, poly, 1);
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++)
          expect(m.data[y * w + x], `pixel ${x},${y} of trial ${trial}`).toBe(referenceInside(poly, x + 0.5, y + 0.5) ? 1 : 0);
    }
  });

  it("two polygons sharing an edge neither overlap nor leave a gap", () => {
    const a = createMask(30, 30);
    const b = createMask(30, 30);
    const left = [{ x: 3.3, y: 2.1 }, { x: 14.7, y: 4.9 }, { x: 12.2, y: 26.6 }, { x: 4.1, y: 25.2 }];
    const right = [{ x: 14.7, y: 4.9 }, { x: 27.2, y: 3.3 }, { x: 26.1, y: 27.7 }, { x: 12.2, y: 26.6 }];
    fillPolygon(a, left, 1);
    fillPolygon(b, right, 1);
    const whole = createMask(30, 30);
    fillPolygon(whole, [left[0]!, left[1]!, right[1]!, right[2]!, right[3]!, left[3]!], 1);
    for (let i = 0; i < 900; i++) {
      expect(a.data[i]! + b.data[i]!).toBeLessThanOrEqual(1);
      expect(a.data[i]! | b.data[i]!).toBe(whole.data[i]);
    }
  });

  it("ignores fewer than three vertices", () => {
    const m = createMask(5, 5);
    expect(fillPolygon(m, [{ x: 1, y: 1 }, { x: 4, y: 4 }], 1)).toBeNull();
  });
});

describe("flood fill", () => {
  it("fills the inside of a closed ring and nothing outside it", () => {
    const m = createMask(20, 20);
    stroke(m, [{ x: 5, y: 5 }, { x: 15, y: 5 }, { x: 15, y: 15 }, { x: 5, y: 15 }, { x: 5, y: 5 }], 2, 1);
    const ring = countSet(m);
    const dirty = floodFill(m, 10, 10, 1);
    expect(dirty).not.toBeNull();
    expect(m.data[10 * 20 + 10]).toBe(1);
    expect(m.data[0]).toBe(0);
    expect(countSet(m)).toBeGreaterThan(ring + 50);
    expect(m.data[19 * 20 + 19]).toBe(0);
  });

  it("is 4-connected: a diagonal gap does not leak", () => {
    const m = createMask(4, 4);
    // Diagonal wall from (0,3) to (3,0): 8-connected fill would cross it, 4-connected not.
    for (let i = 0; i < 4; i++) m.data[(3 - i) * 4 + i] = 1;
    floodFill(m, 0, 0, 1);
    expect(m.data[3 * 4 + 3]).toBe(0);
    expect(m.data[1 * 4 + 1]).toBe(1);
  });

  it("matches a breadth-first reference on random masks, filling and clearing", () => {
    const rand = rng(99);
    for (let trial = 0; trial < 30; trial++) {
      const m = createMask(25, 20);
      for (let i = 0; i < m.data.length; i++) m.data[i] = rand() < 0.45 ? 1 : 0;
      const sx = Math.floor(rand() * 25);
      const sy = Math.floor(rand() * 20);
      const value = m.data[sy * 25 + sx] ? 0 : 1;
      const expected = referenceFlood(m, sx, sy, value);
      floodFill(m, sx + 0.3, sy + 0.7, value);
      expect(Array.from(m.data)).toEqual(Array.from(expected));
    }
  });

  it("does nothing on a pixel that already has the value or outside the image", () => {
    const m = createMask(5, 5);
    expect(floodFill(m, 2, 2, 0)).toBeNull();
    expect(floodFill(m, -1, 2, 1)).toBeNull();
    expect(countSet(m)).toBe(0);
  });
});
