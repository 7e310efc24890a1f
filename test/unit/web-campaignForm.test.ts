import { describe, expect, it } from "vitest";
import { augmentSummary, multiplier } from "../../web/src/pages/campaignForm.js";

describe("the campaign form's example count", () => {
  it("counts the published recipe for the demo project's 6 seeds: 6 × 4 × 11 = 264", () => {
    const m = multiplier([
      { op: "flip", modes: ["none", "h", "v", "hv"] },
      { op: "random_crop", size: [448, 448], count: 11 },
    ]);
    expect(m).toBe(44);
    expect(augmentSummary(m, 6)).toBe("Each seed image becomes 44 training examples: 6 seeds → 264 examples.");
  });

  it("names no seed count while the project's images are not loaded, instead of a wrong 0", () => {
    expect(augmentSummary(44, null)).toBe("Each seed image becomes 44 training examples.");
    expect(augmentSummary(44, 0)).toBe("Each seed image becomes 44 training examples: 0 seeds → 0 examples.");
    expect(augmentSummary(2, 1)).toBe("Each seed image becomes 2 training examples: 1 seed → 2 examples.");
  });
});
