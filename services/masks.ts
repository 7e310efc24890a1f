// Binary masks: decode and check a mask PNG, store it normalised (one channel, 0/255), count
// foreground pixels and the pixels changed against another mask.
import sharp from "sharp";
import { AppError, badRequest } from "./errors.js";

export interface DecodedMask {
  width: number;
  height: number;
  /** One byte per pixel, 0 or 1. */
  bits: Uint8Array;
  foreground: number;
}

export async function readImageMeta(data: Buffer): Promise<{ format: string; width: number; height: number }> {
  try {
    const meta = await sharp(data).metadata();
    if (!meta.width || !meta.height || !meta.format) throw new Error("no size");
    return { format: meta.format, width: meta.width, height: meta.height };
  } catch {
    throw new AppError("unsupported_media_type", "the file is not a readable PNG, JPEG or TIFF image");
  }
}

/**
 * Decodes a mask that must be a PNG of the given size whose pixels are all background or
 * foreground: 0/255 (or 0/1) in every channel, ignoring alpha.
 */
export async function decodeMask(data: Buffer, expected?: { width: number; height: number }, what = "mask"): Promise<DecodedMask> {
  const meta = await readImageMeta(data).catch(() => {
    throw new AppError("unsupported_media_type", `${what} is not a readable PNG image`);
  });
  if (meta.format !== "png") throw new AppError("unsupported_media_type", `${what} must be a PNG, got ${meta.format.toUpperCase()}`);
  if (expected && (meta.width !== expected.width || meta.height !== expected.height)) {
    throw badRequest(
      `${what} is ${meta.width}×${meta.height} but the image is ${expected.width}×${expected.height}`,
    );
  }
  const { data: raw, info } = await sharp(data).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const channels = info.channels;
  const n = info.width * info.height;
  const bits = new Uint8Array(n);
  let high = 0;
  let seen1 = false;
  let seen255 = false;
  for (let i = 0; i < n; i++) {
    const v = raw[i * channels]!;
    for (let c = 1; c < channels; c++) {
      if (raw[i * channels + c] !== v) throw badRequest(`${what} is not binary: pixel ${i} has differing channels`);
    }
    if (v === 0) continue;
    if (v === 255) seen255 = true;
    else if (v === 1) seen1 = true;
    else throw badRequest(`${what} is not binary: found value ${v} (expected 0 and 255)`);
    bits[i] = 1;
    high++;
  }
  if (seen1 && seen255) throw badRequest(`${what} is not binary: mixes values 1 and 255`);
  return { width: info.width, height: info.height, bits, foreground: high };
}

/** PNG of a mask: one 8-bit channel, 0 background, 255 foreground. */
export async function encodeMask(mask: DecodedMask): Promise<Buffer> {
  const raw = Buffer.alloc(mask.bits.length);
  for (let i = 0; i < mask.bits.length; i++) raw[i] = mask.bits[i] ? 255 : 0;
  return sharp(raw, { raw: { width: mask.width, height: mask.height, channels: 1 } }).png().toBuffer();
}

/** Pixels that differ; against no parent, every foreground pixel counts as changed. */
export function pixelsChanged(mask: DecodedMask, parent: DecodedMask | null): number {
  if (!parent) return mask.foreground;
  let changed = 0;
  for (let i = 0; i < mask.bits.length; i++) if (mask.bits[i] !== parent.bits[i]) changed++;
  return changed;
}
