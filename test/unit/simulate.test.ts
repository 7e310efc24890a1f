// The simulated doctors' time model, the campaign report and its chart.
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { chartPng } from "../../services/simulate/chart.js";
import { buildReport } from "../../services/simulate/report.js";
import { learningFigures } from "../../services/simulate/learning.js";
import { changedPixels, correctionMinutes, foregroundPixels, scratchMinutes } from "../../services/simulate/timeModel.js";

const calibration = { meanVesselPixels: 10_000 };

describe("time model", () => {
  it("takes 36 minutes from scratch for an average image, proportional to the vessel pixels", () => {
    expect(scratchMinutes(10_000, calibration)).toBeCloseTo(36);
    expect(scratchMinutes(15_000, calibration)).toBeCloseTo(54);
  });

  it("takes about 4 minutes to correct a good prediction and 1 minute for a perfect one", () => {
    expect(correctionMinutes(4_000, 10_000, calibration)).toBeCloseTo(4);
    expect(correctionMinutes(0, 10_000, calibration)).toBeCloseTo(1);
  });

  it("never takes longer to correct than to redraw", () => {
    expect(correctionMinutes(1_000_000, 10_000, calibration)).toBeCloseTo(36);
  });

  it("rejects a calibration without vessel pixels", () => {
    expect(() => scratchMinutes(1, { meanVesselPixels: 0 })).toThrow(/meanVesselPixels/);
  });

  it("counts foreground and changed pixels", () => {
    const a = Uint8Array.from([0, 255, 255, 0]);
    const b = Uint8Array.from([255, 255, 0, 0]);
    expect(foregroundPixels(a)).toBe(2);
    expect(changedPixels(a, b)).toBe(2);
    expect(() => changedPixels(a, Uint8Array.from([0]))).toThrow(/differ in size/);
  });
});

describe("campaign report", () => {
  const answers = [
    { round: 0, kind: "annotate" as const, imageName: "s1", pixelsChanged: 100, minutesScratch: 36, minutesSpent: 36 },
    { round: 1, kind: "correct" as const, imageName: "p1", pixelsChanged: 10, minutesScratch: 30, minutesSpent: 5 },
    { round: 1, kind: "correct" as const, imageName: "p2", pixelsChanged: 10, minutesScratch: 40, minutesSpent: 3 },
  ];
  const report = buildReport("c1", "uncertainty", 2, "test", [{ round: 0, f1: 0.6, auc: 0.9 }, { round: 1, f1: 0.7, auc: 0.95 }], answers);

  it("sums per round what the corrected images would have cost against what they cost", () => {
    expect(report.simulated).toBe(true);
    expect(report.rounds).toEqual([
      expect.objectContaining({ round: 0, f1: 0.6, images_annotated: 1, images_corrected: 0, simulated_minutes_scratch: 0 }),
      expect.objectContaining({ round: 1, f1: 0.7, auc: 0.95, images_corrected: 2, simulated_minutes_scratch: 70, simulated_minutes_correction: 8, savings_minutes: 62 }),
    ]);
    expect(report.totals).toMatchObject({ images_corrected: 2, savings_minutes: 62, seed_minutes_scratch: 36 });
  });

  it("renders the chart as a PNG", async () => {
    const meta = await sharp(await chartPng(report.rounds, "test campaign")).metadata();
    expect(meta.format).toBe("png");
    expect([meta.width, meta.height]).toEqual([900, 480]);
  });
});

describe("learning figures", () => {
  const answers = [
    { atS: 10, kind: "annotate" as const, minutes: 30 },
    { atS: 20, kind: "annotate" as const, minutes: 40 },
    { atS: 100, kind: "correct" as const, minutes: 5 },
    { atS: 200, kind: "correct" as const, minutes: 7 },
  ];
  const models = [
    { version: 1, atS: 150, testF1: 0.79, labelledImages: 3 },
    { version: 0, atS: 60, testF1: 0.7, labelledImages: 2 },
    { version: 2, atS: 250, testF1: 0.81, labelledImages: 4 },
  ];

  it("counts the doctor-minutes submitted before the first model at test F1 0.80 was published", () => {
    const f = learningFigures(answers, models, [], 300);
    expect(f.doctor_minutes_to_f1_080).toBe(82); // 30 + 40 + 5 + 7: all four answers came before v2
    expect(f.wall_seconds_to_f1_080).toBe(250);
    expect(f.labelled_images_at_f1_080).toBe(4);
    expect(f.best_test_f1).toBe(0.81);
    expect(f.curve.map((c) => [c.version, c.doctor_minutes])).toEqual([
      [0, 70],
      [1, 75],
      [2, 82],
    ]);
  });

  it("finds the first version whose corrected predictions reached live F1 0.70, and says null when none did", () => {
    const live = [
      { version: 0, corrections: 1, f1: 0.65 },
      { version: 1, corrections: 1, f1: 0.72 },
    ];
    expect(learningFigures(answers, models, live, 300).first_useful_after_images).toBe(3);
    expect(learningFigures(answers, models.slice(0, 2), [{ version: 0, corrections: 1, f1: 0.5 }], 300)).toMatchObject({
      first_useful_after_images: null,
      doctor_minutes_to_f1_080: null,
      wall_seconds_to_f1_080: null,
    });
  });
});
