// Live evaluation's scores (services/liveEvaluation.ts) on masks made in code, where F1 and clDice
// are known by hand.
import { describe, expect, it } from "vitest";
import { createMask, stroke } from "../../services/correction/raster.js";
import { agreement, CLDICE_MAX_PIXELS } from "../../services/liveEvaluation.js";

const W = 120;
const H = 80;
const line = (x0: number, x1: number, y: number) => {
  const m = createMask(W, H);
  stroke(m, [{ x: x0, y }, { x: x1, y }], 3, 1);
  return m.data;
};

describe("live evaluation scores", () => {
  it("scores identical masks 1 and disjoint ones 0; two empty masks agree", () => {
    const a = line(10, 110, 40.5);
    expect(agreement(a, a, W, H)).toEqual({ f1: 1, cldice: 1 });
    expect(agreement(a, line(10, 110, 10.5), W, H)).toEqual({ f1: 0, cldice: 0 });
    const empty = new Uint8Array(W * H);
    expect(agreement(empty, empty, W, H)).toEqual({ f1: 1, cldice: 1 });
    expect(agreement(empty, a, W, H)).toEqual({ f1: 0, cldice: 0 });
  });

  it("gives clDice as the harmonic mean of topology precision and sensitivity", () => {
    // The prediction finds the left half of a vessel: its skeleton lies inside the reference
    // (precision 1), and covers about half of the reference's skeleton (sensitivity ≈ 0.5).
    const reference = line(10, 110, 40.5);
    const predicted = line(10, 60, 40.5);
    const { f1, cldice } = agreement(predicted, reference, W, H);
    let p = 0;
    let r = 0;
    for (let i = 0; i < W * H; i++) {
      p += predicted[i]!;
      r += reference[i]!;
    }
    expect(f1).toBeCloseTo((2 * p) / (p + r), 10);
    expect(cldice).toBeGreaterThan(0.6);
    expect(cldice).toBeLessThan(0.72); // 2·1·0.5/1.5 = 0.667 up to the line ends
  });

  it("scores F1 alone above CLDICE_MAX_PIXELS, so a huge mask never holds the API", () => {
    const side = Math.ceil(Math.sqrt(CLDICE_MAX_PIXELS + 1));
    const ones = new Uint8Array(side * side).fill(1);
    expect(agreement(ones, ones, side, side)).toEqual({ f1: 1, cldice: null });
  });

  it("refuses masks of the wrong size", () => {
    expect(() => agreement(new Uint8Array(5), new Uint8Array(W * H), W, H)).toThrow(/pixels/);
  });
});
