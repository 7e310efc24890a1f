// Image bytes in, planar RGB in [0, 1] out (the engine's input under the ingest contract, / 255),
// and the mask encodings the segment endpoint returns (PNG, run-length).
import sharp from "sharp";
import { MAX_PIXELS } from "../services/ingest/contract.js";
import { readImage } from "../services/ingest/decode.js";
import { IngestError } from "../services/ingest/samples.js";
import type { Planar } from "./slidingWindow.js";

/** An input the client got wrong; `status` is the HTTP status to answer with. */
export class InputError extends Error {
  constructor(
    message: string,
    readonly status = 400,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * Decodes an image file to 3×H×W float32 in [0, 1] (the engine's input: RGB / 255) under the
 * ingest contract (docs/ingest.md) — the same pixels the engine and the importer read: EXIF
 * orientation applied, 16 bits as round(v / 257), alpha composited on black, the contract's
 * minimum side and maximum pixel count. `maxPixels` may lower the limit (never raise it).
 *
 * @throws InputError 400 empty body; 413 over the pixel limit; 415 not a supported image;
 *   422 a multi-page file or a side under the minimum
 */
export async function decodeImage(bytes: Buffer, maxPixels: number = MAX_PIXELS): Promise<Planar> {
  if (bytes.length === 0) throw new InputError("empty body: send the image file as the request body");
  let image;
  try {
    // The pixel limit is checked from the header, before anything is decoded.
    image = await readImage(bytes, "the image", { maxPixels });
  } catch (err) {
    if (err instanceof IngestError) throw new InputError(err.message, err.status, { cause: err });
    throw err;
  }
  return interleavedToPlanar(image.rgb, image.width, image.height, 3);
}

/** H×W×C uint8 (any channel count 1–4) to 3×H×W float32 / 255. */
export function interleavedToPlanar(bytes: Uint8Array, width: number, height: number, channels: number): Planar {
  const n = width * height;
  const data = new Float32Array(3 * n);
  for (let k = 0; k < n; k++) {
    for (let c = 0; c < 3; c++) {
      const src = channels >= 3 ? c : 0;
      data[c * n + k] = bytes[k * channels + src]! / 255;
    }
  }
  return { data, channels: 3, height, width };
}

/** Foreground where probability >= threshold, as 0/255 bytes (H×W). */
export function threshold(prob: Planar, level: number): Uint8Array {
  const n = prob.height * prob.width;
  const mask = new Uint8Array(n);
  for (let k = 0; k < n; k++) mask[k] = prob.data[k]! >= level ? 255 : 0;
  return mask;
}

export async function maskPng(mask: Uint8Array, width: number, height: number): Promise<Buffer> {
  return sharp(Buffer.from(mask.buffer, mask.byteOffset, mask.byteLength), { raw: { width, height, channels: 1 } })
    .toColourspace("b-w") // a one-channel PNG, not RGB
    .png()
    .toBuffer();
}

/** Row-major run lengths, alternating background/foreground, starting with background (may be 0). */
export function runLengths(mask: Uint8Array): number[] {
  const counts: number[] = [];
  let current = 0;
  let run = 0;
  for (const v of mask) {
    const bit = v ? 1 : 0;
    if (bit !== current) {
      counts.push(run);
      current = bit;
      run = 0;
    }
    run++;
  }
  counts.push(run);
  return counts;
}

export function decodeRunLengths(counts: readonly number[], length: number): Uint8Array {
  const mask = new Uint8Array(length);
  let at = 0;
  counts.forEach((run, i) => {
    if (i % 2 === 1) mask.fill(255, at, at + run);
    at += run;
  });
  return mask;
}
