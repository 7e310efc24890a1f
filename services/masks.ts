// Binary masks: decode a mask file under the ingest contract's mask rule (docs/ingest.md; any
// contract format, 0/1, 0/255 or 1-bit, lossy files thresholded at half scale), store it
// normalised (one channel, 0/255 PNG), count foreground pixels and the pixels changed against
// another mask.
import { maskPng, readMask } from "./ingest/decode.js";
import type { BinaryMask } from "./ingest/samples.js";

export type DecodedMask = BinaryMask;

/**
 * Decodes a mask file; with `expected`, its upright size must equal it exactly (IngestError
 * "size_mismatch", HTTP 422, naming both sizes). `what` names the file in error messages.
 */
export async function decodeMask(data: Uint8Array, expected?: { width: number; height: number }, what = "mask"): Promise<DecodedMask> {
  return readMask(data, what, expected);
}

/** PNG of a mask: one 8-bit channel, 0 background, 255 foreground. */
export function encodeMask(mask: Pick<DecodedMask, "width" | "height" | "bits">): Promise<Buffer> {
  return maskPng(mask);
}

/** Pixels that differ; against no parent, every foreground pixel counts as changed. */
export function pixelsChanged(mask: DecodedMask, parent: DecodedMask | null): number {
  if (!parent) return mask.foreground;
  let changed = 0;
  for (let i = 0; i < mask.bits.length; i++) if (mask.bits[i] !== parent.bits[i]) changed++;
  return changed;
}
