// The assisted correction tools (services/correction/assist.ts) on probability maps made in code:
// a curved vessel of known width and course, faint vessels, separate components.
import { describe, expect, it } from "vitest";
import {
  applyEdit,
  grow,
  minimumCostPath,
  probabilityFromSamples,
  probabilityFromUint16LE,
  rethreshold,
  remove,
  trace,
  type ProbabilityMap,
} from "../../services/correction/assist.js";
import { createMask, type Mask, type Point } from "../../services/correction/raster.js";

const W = 200;
const H = 160;

/** The centre line of the test vessel: y = 80 + 30 sin(x / 25), for x in [20, 180]. */
const curveY = (x: number) => 80 + 30 * Math.sin(x / 25);

/** A vessel of FWHM `width` along the curve with peak probability `peak`, background 0.01. */
function vesselMap(width: number, peak: number): ProbabilityMap {
  const data = new Float32Array(W * H).fill(0.01);
  const sigma = width / 2.355; // FWHM = 2.355 sigma
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let d = Infinity;
      for (let t = 20; t <= 180; t += 0.25) d = Math.min(d, Math.hypot(x + 0.5 - t, y + 0.5 - curveY(t)));
      data[y * W + x] = Math.max(0.01, peak * Math.exp(-(d * d) / (2 * sigma * sigma)));
    }
  }
  return { width: W, height: H, data };
}

function distanceToCurve(p: Point): number {
  let d = Infinity;
  for (let t = 15; t <= 185; t += 0.25) d = Math.min(d, Math.hypot(p.x - t, p.y - curveY(t)));
  return d;
}

function blank(): Mask {
  return createMask(W, H);
}

const vessel = vesselMap(6, 0.4);

describe("trace (minimum-cost path between clicks)", () => {
  it("follows a curved faint vessel between clicks at its bends and draws it at its width", () => {
    const mask = blank();
    // The path may leave the clicks' bounding box by a quarter of their distance: a bend that
    // goes further out takes a click of its own, as in the editor.
    const edit = trace(mask, vessel, [40, 118, 170].map((x) => ({ x, y: curveY(x) })));
    expect(mask.data.every((v) => v === 0)).toBe(true); // a preview: the mask is untouched
    for (const p of edit.path) expect(distanceToCurve(p)).toBeLessThan(1.5);
    expect(edit.width).toBeGreaterThan(4.5);
    expect(edit.width).toBeLessThan(7.5);
    applyEdit(mask, edit);
    let onVessel = 0;
    for (const i of edit.indices) if (vessel.data[i]! >= 0.2) onVessel++;
    expect(onVessel / edit.indices.length).toBeGreaterThan(0.85);
    expect(edit.values.every((v) => v === 1)).toBe(true);
    expect(edit.rect).not.toBeNull();
  });

  it("prefers a longer path along the vessel to the straight line across background", () => {
    const a = { x: 40, y: curveY(40) };
    const b = { x: 120, y: curveY(120) };
    const path = minimumCostPath(vessel, a, b, { x0: 0, y0: 0, x1: W, y1: H }, 0.05);
    const straight = Math.hypot(b.x - a.x, b.y - a.y);
    let length = 0;
    for (let k = 1; k < path.length; k++) length += Math.hypot(path[k]!.x - path[k - 1]!.x, path[k]!.y - path[k - 1]!.y);
    expect(length).toBeGreaterThan(straight * 1.05);
    expect(Math.max(...path.map(distanceToCurve))).toBeLessThan(1.5);
  });

  it("goes through every click in order and adds nothing for fewer than two clicks", () => {
    const clicks = [{ x: 30, y: curveY(30) }, { x: 100, y: curveY(100) }, { x: 170, y: curveY(170) }];
    const edit = trace(blank(), vessel, clicks);
    for (const c of clicks) expect(Math.min(...edit.path.map((p) => Math.hypot(p.x - c.x, p.y - c.y)))).toBeLessThan(1);
    expect(trace(blank(), vessel, [clicks[0]!]).indices.length).toBe(0);
  });

  it("only adds pixels: a mask already covering the vessel does not change", () => {
    const mask = blank();
    applyEdit(mask, trace(mask, vessel, [{ x: 30, y: curveY(30) }, { x: 170, y: curveY(170) }]));
    const again = trace(mask, vessel, [{ x: 30, y: curveY(30) }, { x: 170, y: curveY(170) }]);
    expect(again.indices.length).toBe(0);
  });
});

describe("grow (hysteresis region from a click)", () => {
  it("adds the connected faint vessel under the click and nothing beyond the radius", () => {
    const edit = grow(blank(), vessel, { x: 100, y: curveY(100) + 1 }, { low: 0.2, radius: 40 });
    expect(edit.indices.length).toBeGreaterThan(100);
    for (const i of edit.indices) {
      const x = i % W;
      const y = (i - x) / W;
      expect(vessel.data[i]).toBeGreaterThanOrEqual(0.2);
      expect(Math.hypot(x + 0.5 - 100, y + 0.5 - curveY(100) - 1)).toBeLessThanOrEqual(40);
    }
  });

  it("adds nothing where the probability is below the lower threshold", () => {
    expect(grow(blank(), vessel, { x: 100, y: 5 }).indices.length).toBe(0);
  });

  it("snaps a click a few pixels off the vessel onto it", () => {
    expect(grow(blank(), vessel, { x: 100, y: curveY(100) + 4 }, { low: 0.2 }).indices.length).toBeGreaterThan(0);
  });
});

describe("remove (the component under a click)", () => {
  function twoBlobs(): Mask {
    const mask = blank();
    for (let y = 20; y < 40; y++) for (let x = 20; x < 40; x++) mask.data[y * W + x] = 1;
    for (let y = 100; y < 110; y++) for (let x = 10; x < 190; x++) mask.data[y * W + x] = 1;
    return mask;
  }

  it("erases only the clicked component", () => {
    const mask = twoBlobs();
    const edit = remove(mask, { x: 30, y: 30 });
    expect(edit.indices.length).toBe(400);
    expect(edit.values.every((v) => v === 0)).toBe(true);
    applyEdit(mask, edit);
    expect(mask.data[105 * W + 100]).toBe(1);
    expect(mask.data[30 * W + 30]).toBe(0);
  });

  it("cuts a large component at the radius and snaps to a mask pixel near the click", () => {
    const mask = twoBlobs();
    const edit = remove(mask, { x: 100, y: 97.5 }, { radius: 30 }); // 2.5 px above the band
    expect(edit.indices.length).toBeGreaterThan(0);
    for (const i of edit.indices) {
      const x = i % W;
      expect(Math.abs(x + 0.5 - 100)).toBeLessThanOrEqual(30);
    }
    expect(remove(mask, { x: 100, y: 60 }).indices.length).toBe(0);
  });
});

describe("re-threshold brush", () => {
  it("sets each pixel under the brush to probability >= threshold and leaves the rest", () => {
    const mask = blank();
    mask.data.fill(1, 0, W * 10); // rows 0-9 set: outside the brush, must stay
    const points = [{ x: 60, y: curveY(60) }, { x: 80, y: curveY(80) }];
    const edit = rethreshold(mask, vessel, points, 20, 0.1);
    applyEdit(mask, edit);
    for (let i = 0; i < W * 10; i++) expect(mask.data[i]).toBe(1);
    for (const [k, i] of edit.indices.entries()) expect(edit.values[k]).toBe(vessel.data[i]! >= 0.1 ? 1 : 0);
    expect(edit.indices.length).toBeGreaterThan(50);
  });
});

describe("probability map decoders", () => {
  it("reads the route's uint16 little-endian samples as p = value / 65535 and refuses a wrong length", () => {
    const bytes = new Uint8Array([0, 0, 0xff, 0xff, 0x00, 0x80, 0x01, 0x00]); // 0, 65535, 32768, 1
    const map = probabilityFromUint16LE(bytes, 2, 2);
    expect(Array.from(map.data)).toEqual([0, 1, 32768 / 65535, 1 / 65535].map(Math.fround));
    expect(() => probabilityFromUint16LE(bytes, 3, 2)).toThrow(/8 bytes, expected 12/);
    const fromSamples = probabilityFromSamples({ width: 2, height: 1, channels: 3, maxval: 255, data: [255, 1, 1, 51, 2, 2] });
    expect(Array.from(fromSamples.data)).toEqual([1, 0.2].map(Math.fround));
  });
});
