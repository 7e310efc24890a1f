// The time model of the simulated doctors (`medloop simulate`). Simulated doctors
// submit the truth masks instantly; the time they *would* have spent is computed
// here and reported as simulated time, never mixed up with measured time.
//
// Calibration (the published CHASE_DB1 figures that the loop is judged against):
// - Drawing from scratch: 36 minutes for an image with the average amount of vessel
//   pixels, proportional to the vessel pixels of the image (more vessels, more strokes).
// - Correcting a prediction: a fixed 1 minute to inspect the image, plus time
//   proportional to the pixels the doctor changes (the prediction's false positives
//   erased and false negatives drawn). A good prediction (F1 ≈ 0.80, so pixels changed
//   ≈ 0.4 × the vessel pixels of an average image) costs ≈ 4 minutes.
// - Nobody corrects longer than redrawing: correction time is capped at the scratch time.

export interface TimeModel {
  /** Minutes to draw an average image from scratch. */
  scratchMinutesAverage: number;
  /** Fixed minutes of any correction (looking at the whole image). */
  correctionFixedMinutes: number;
  /** Minutes a correction of a good prediction takes. */
  correctionGoodMinutes: number;
  /** Pixels changed by a good prediction, as a fraction of the average vessel pixels. */
  goodChangedFraction: number;
}

export const DEFAULT_TIME_MODEL: TimeModel = {
  scratchMinutesAverage: 36,
  correctionFixedMinutes: 1,
  correctionGoodMinutes: 4,
  goodChangedFraction: 0.4,
};

export interface Calibration {
  /** Mean vessel (foreground) pixels per image of the data set being simulated. */
  meanVesselPixels: number;
  model?: TimeModel;
}

function check(calibration: Calibration): TimeModel {
  if (!(calibration.meanVesselPixels > 0)) throw new Error("time model: meanVesselPixels must be positive");
  return calibration.model ?? DEFAULT_TIME_MODEL;
}

/** Simulated minutes to draw an image's mask from scratch. */
export function scratchMinutes(vesselPixels: number, calibration: Calibration): number {
  const model = check(calibration);
  return (model.scratchMinutesAverage * vesselPixels) / calibration.meanVesselPixels;
}

/** Simulated minutes to correct a prediction into the truth, changing `pixelsChanged` pixels. */
export function correctionMinutes(pixelsChanged: number, vesselPixels: number, calibration: Calibration): number {
  const model = check(calibration);
  const perPixel =
    (model.correctionGoodMinutes - model.correctionFixedMinutes) / (model.goodChangedFraction * calibration.meanVesselPixels);
  const minutes = model.correctionFixedMinutes + perPixel * pixelsChanged;
  return Math.min(minutes, Math.max(model.correctionFixedMinutes, scratchMinutes(vesselPixels, calibration)));
}

/** Counts foreground pixels of a single-channel mask (value > 127). */
export function foregroundPixels(mask: Uint8Array): number {
  let n = 0;
  for (const v of mask) if (v > 127) n++;
  return n;
}

/** Pixels whose foreground/background label differs between two masks of the same size. */
export function changedPixels(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error(`masks differ in size (${a.length} vs ${b.length} pixels)`);
  let n = 0;
  for (let i = 0; i < a.length; i++) if ((a[i]! > 127) !== (b[i]! > 127)) n++;
  return n;
}
