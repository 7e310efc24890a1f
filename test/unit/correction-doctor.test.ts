// The simulated doctor (services/simulate/correctionDoctor.ts), the skeleton geometry it reads
// errors with (services/correction/skeleton.ts) and the action-level effort model
// (services/correction/effort.ts), on masks made in code.
import { describe, expect, it } from "vitest";
import type { ProbabilityMap } from "../../services/correction/assist.js";
import { EFFORT_CONSTANTS, actionSeconds, effortMinutes, pointingSeconds, steeringSeconds, type Action } from "../../services/correction/effort.js";
import { createMask, stroke, type Mask } from "../../services/correction/raster.js";
import { components, distanceToBackground, longestPath, pathLength, thin } from "../../services/correction/skeleton.js";
import { MIN_SEGMENT_PX, prepareTruth, simulateCorrection } from "../../services/simulate/correctionDoctor.js";

const W = 240;
const H = 200;

function bar(x0: number, x1: number, y: number, width: number): Mask {
  const m = createMask(W, H);
  stroke(m, [{ x: x0, y }, { x: x1, y }], width, 1);
  return m;
}

/** Zhang–Suen the slow, obvious way (every pixel, every pass), to compare thin() against. */
function referenceThin(w: number, h: number, data: Uint8Array): Uint8Array {
  const s = data.slice();
  const at = (x: number, y: number) => (x < 0 || y < 0 || x >= w || y >= h ? 0 : s[y * w + x]!);
  for (let changed = true; changed; ) {
    changed = false;
    for (const pass of [0, 1]) {
      const drop: number[] = [];
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          if (!s[y * w + x]) continue;
          const p = [at(x, y - 1), at(x + 1, y - 1), at(x + 1, y), at(x + 1, y + 1), at(x, y + 1), at(x - 1, y + 1), at(x - 1, y), at(x - 1, y - 1)];
          const b = p.reduce((u, v) => u + v, 0);
          let a = 0;
          for (let k = 0; k < 8; k++) if (p[k] === 0 && p[(k + 1) % 8] === 1) a++;
          const [p2, , p4, , p6, , p8] = p as [number, number, number, number, number, number, number, number];
          const ok = pass === 0 ? p2 * p4 * p6 === 0 && p4 * p6 * p8 === 0 : p2 * p4 * p8 === 0 && p2 * p6 * p8 === 0;
          if (b >= 2 && b <= 6 && a === 1 && ok) drop.push(y * w + x);
        }
      }
      for (const i of drop) s[i] = 0;
      if (drop.length) changed = true;
    }
  }
  return s;
}

describe("skeleton geometry", () => {
  it("thins exactly as the classic whole-image Zhang–Suen does, blobs and random shapes alike", () => {
    let seed = 5;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (let trial = 0; trial < 6; trial++) {
      const m = createMask(90, 70);
      for (let k = 0; k < 8; k++) {
        stroke(m, [{ x: random() * 90, y: random() * 70 }, { x: random() * 90, y: random() * 70 }], 1 + random() * 14, 1);
      }
      expect(Array.from(thin(m))).toEqual(Array.from(referenceThin(90, 70, m.data)));
    }
    const full = createMask(60, 40);
    full.data.fill(1);
    expect(Array.from(thin(full))).toEqual(Array.from(referenceThin(60, 40, full.data)));
  });

  it("thins a 5-pixel bar to a one-pixel line along its middle", () => {
    const m = bar(20, 200, 100.5, 5);
    const sk = thin(m);
    const rows = new Set<number>();
    let n = 0;
    sk.forEach((v, i) => {
      if (v) {
        rows.add(Math.floor(i / W));
        n++;
      }
    });
    expect([...rows]).toEqual([100]);
    expect(n).toBeGreaterThan(170);
  });

  it("measures the distance to the background (half the width, plus a half)", () => {
    const d = distanceToBackground(bar(20, 200, 100.5, 5));
    expect(d[100 * W + 100]).toBe(3);
    expect(d[98 * W + 100]).toBe(1);
    expect(d[50 * W + 100]).toBe(0);
  });

  it("finds 8-connected components and the longest path through one", () => {
    const m = createMask(W, H);
    stroke(m, [{ x: 10.5, y: 10.5 }, { x: 60.5, y: 10.5 }, { x: 60.5, y: 80.5 }], 1, 1); // an L
    stroke(m, [{ x: 150.5, y: 150.5 }, { x: 160.5, y: 160.5 }], 1, 1); // a diagonal
    const comps = components(W, H, (i) => m.data[i] === 1);
    expect(comps.map((c) => c.length).sort((a, b) => a - b)).toEqual([11, 121]);
    const big = comps.find((c) => c.length === 121)!;
    const path = longestPath(big, W);
    // The breadth-first path cuts the corner pixel with one diagonal step.
    expect(path.length).toBe(120);
    expect(pathLength(path, W)).toBeCloseTo(118 + Math.SQRT2, 5);
    const diagonal = longestPath(comps.find((c) => c.length === 11)!, W);
    expect(pathLength(diagonal, W)).toBeCloseTo(10 * Math.SQRT2, 5);
  });
});

describe("the action-level effort model", () => {
  it("prices pointing by Fitts' law and dragging by the steering law", () => {
    expect(pointingSeconds(0, 10)).toBe(0);
    expect(pointingSeconds(400, 4)).toBeGreaterThan(pointingSeconds(400, 40));
    expect(pointingSeconds(400, 4)).toBeCloseTo(-0.107 + 0.223 * Math.log2(101), 6);
    const c = { ...EFFORT_CONSTANTS, steeringK: 0.1 };
    expect(steeringSeconds(300, 3, c)).toBeCloseTo(10, 6);
    expect(steeringSeconds(300, 1, c)).toBeCloseTo(15, 6); // never narrower than minWidthPx (2)
  });

  it("adds a mental preparation and the clicks to every action", () => {
    const click: Action = { tool: "remove", clicks: 1, travel_px: 0, path_px: 0, width_px: 5 };
    expect(actionSeconds(click)).toBeCloseTo(1.35 + 0.2, 6);
    expect(effortMinutes([click, click])).toBeCloseTo((2 * 1.55) / 60, 6);
  });

  it("is calibrated: the steering constant is positive", () => {
    expect(EFFORT_CONSTANTS.steeringK).toBeGreaterThan(0);
  });
});

describe("the simulated doctor", () => {
  // Truth: two vessels (widths 5 and 3). Prediction: the thin vessel's right half missed (its
  // probability faint), a spurious blob away from both, and the thick vessel found.
  const truthMask = createMask(W, H);
  stroke(truthMask, [{ x: 20, y: 50.5 }, { x: 220, y: 50.5 }], 5, 1);
  stroke(truthMask, [{ x: 20, y: 140.5 }, { x: 120, y: 150.5 }, { x: 220, y: 140.5 }], 3, 1);
  const predicted = createMask(W, H);
  stroke(predicted, [{ x: 20, y: 50.5 }, { x: 220, y: 50.5 }], 5, 1);
  stroke(predicted, [{ x: 20, y: 140.5 }, { x: 120, y: 150.5 }], 3, 1);
  stroke(predicted, [{ x: 100, y: 95 }], 12, 1); // spurious blob
  const prob: ProbabilityMap = { width: W, height: H, data: new Float32Array(W * H).fill(0.01) };
  for (let i = 0; i < W * H; i++) {
    if (predicted.data[i]) prob.data[i] = 0.9;
    else if (truthMask.data[i]) prob.data[i] = 0.35; // the missed half: faint
  }
  const truth = prepareTruth(truthMask);

  it("corrects with the assisted tools: a trace or grow for the missed vessel, one click for the blob", () => {
    const run = simulateCorrection("assisted", predicted, truth, prob);
    const tools = run.actions.map((a) => a.tool);
    expect(tools).toContain("remove");
    expect(tools.some((t) => t === "grow" || t === "trace")).toBe(true);
    expect(tools).not.toContain("brush");
    expect(run.f1).toBeGreaterThan(0.95);
    expect(run.f1).toBeGreaterThan(run.f1Start);
    expect(predicted.data.filter((v) => v).length).toBeGreaterThan(0); // the input is untouched
  });

  it("corrects with the manual tools only when told to, at a higher modelled cost", () => {
    const c = { ...EFFORT_CONSTANTS, steeringK: 0.1 };
    const manual = simulateCorrection("manual", predicted, truth, prob);
    const assisted = simulateCorrection("assisted", predicted, truth, prob);
    expect(new Set(manual.actions.map((a) => a.tool))).toEqual(new Set(["brush", "eraser"]));
    expect(manual.f1).toBeGreaterThan(0.9);
    expect(effortMinutes(manual.actions, c)).toBeGreaterThan(effortMinutes(assisted.actions, c));
  });

  it("draws from scratch with one brush stroke per vessel segment", () => {
    const run = simulateCorrection("scratch", predicted, truth, prob);
    expect(run.f1Start).toBe(0);
    expect(run.actions.every((a) => a.tool === "brush")).toBe(true);
    expect(run.actions.length).toBeLessThanOrEqual(4);
    expect(run.f1).toBeGreaterThan(0.9);
  });

  it("leaves what the stopping rule leaves: no missed run of MIN_SEGMENT_PX or more", () => {
    const run = simulateCorrection("assisted", predicted, truth, prob);
    const missed = components(W, H, (i) => truth.mustCover[i] === 1 && run.mask.data[i] === 0);
    for (const c of missed) expect(c.length).toBeLessThan(MIN_SEGMENT_PX);
    expect(run.curve[0]!.clicks).toBe(0);
    expect(run.curve[run.curve.length - 1]!.f1).toBeCloseTo(run.f1, 10);
  });
});
