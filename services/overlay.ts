// Overlays of one mask against another on the image: true positives, false positives and
// false negatives in three colours, so a lab lead sees at a glance where a prediction (or a
// correction) differs from the reference.
import sharp from "sharp";
import type { DecodedMask } from "./masks.js";
import { badRequest } from "./errors.js";

/** Colours (RGB): agreement green, only in `mask` red, only in `reference` blue. */
export const OVERLAY_COLOURS = { tp: [0, 200, 0], fp: [230, 30, 30], fn: [40, 110, 255] } as const;

export interface OverlayCounts {
  tp: number;
  fp: number;
  fn: number;
}

/** Blends the colours over the image (alpha 0.6 on mask pixels); returns the PNG and the counts. */
export async function renderOverlay(
  imagePng: Buffer,
  mask: DecodedMask,
  reference: DecodedMask,
): Promise<{ png: Buffer; counts: OverlayCounts }> {
  if (mask.width !== reference.width || mask.height !== reference.height) {
    throw badRequest(`masks differ in size: ${mask.width}×${mask.height} and ${reference.width}×${reference.height}`);
  }
  const { data, info } = await sharp(imagePng).removeAlpha().toColourspace("srgb").raw().toBuffer({ resolveWithObject: true });
  if (info.width !== mask.width || info.height !== mask.height) {
    throw badRequest(`the image is ${info.width}×${info.height} but the masks are ${mask.width}×${mask.height}`);
  }
  const out = Buffer.from(data);
  const counts: OverlayCounts = { tp: 0, fp: 0, fn: 0 };
  const alpha = 0.6;
  for (let i = 0; i < mask.bits.length; i++) {
    const m = mask.bits[i] === 1;
    const r = reference.bits[i] === 1;
    if (!m && !r) continue;
    const kind = m && r ? "tp" : m ? "fp" : "fn";
    counts[kind]++;
    const colour = OVERLAY_COLOURS[kind];
    for (let c = 0; c < 3; c++) {
      const o = i * info.channels + c;
      out[o] = Math.round(out[o]! * (1 - alpha) + colour[c]! * alpha);
    }
  }
  const png = await sharp(out, { raw: { width: info.width, height: info.height, channels: info.channels } }).png().toBuffer();
  return { png, counts };
}
