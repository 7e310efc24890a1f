// Binary masks once read (under the ingest contract's mask rule: services/ingest/decode.ts
// readMask, docs/ingest.md): the pixels changed against another mask.
import type { BinaryMask } from "./ingest/samples.js";

export type DecodedMask = BinaryMask;

/** Pixels that differ; against no parent, every foreground pixel counts as changed. */
export function pixelsChanged(mask: DecodedMask, parent: DecodedMask | null): number {
  if (!parent) return mask.foreground;
  let changed = 0;
  for (let i = 0; i < mask.bits.length; i++) if (mask.bits[i] !== parent.bits[i]) changed++;
  return changed;
}
