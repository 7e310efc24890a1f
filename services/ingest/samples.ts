// The ingest contract's pixel rules (docs/ingest.md), TypeScript side: limits, 8-bit scaling, alpha
// compositing, and the mask rule. The Python side (ml/src/medloop_ml/ingest.py) implements the
// same rules; all rounding is integer arithmetic, so both give the same bytes, which the
// conformance test (test/conformance/ingest.test.ts) checks.
import { AppError, type ErrorCode } from "../errors.js";
import { LOSSY_FORMATS, MASK_THRESHOLD, MAX_PIXELS, MIN_SIDE, type IngestFormat } from "./contract.js";

/** Why a file was refused; the same kinds as the Python side's IngestError. */
export type IngestKind = "missing" | "unreadable" | "unsupported" | "pages" | "too_small" | "too_large" | "size_mismatch";

const CODE_OF: Record<IngestKind, ErrorCode> = {
  missing: "bad_request",
  unreadable: "unsupported_media_type",
  unsupported: "unsupported_media_type",
  pages: "unprocessable",
  too_small: "unprocessable",
  too_large: "payload_too_large",
  size_mismatch: "unprocessable",
};

/** A file the contract refuses: the message names the file and the reason; HTTP 413/415/422. */
export class IngestError extends AppError {
  constructor(
    readonly kind: IngestKind,
    message: string,
  ) {
    super(CODE_OF[kind], message, { kind });
    this.name = "IngestError";
  }
}

export type { IngestFormat };

/** Decoded, upright native samples of one file (row-major, channels interleaved). */
export interface Samples {
  width: number;
  height: number;
  /** 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA. */
  channels: number;
  /** The format's largest sample value: 1, 255, 65535 or a PNM maxval. */
  maxval: number;
  data: Uint8Array | Uint16Array;
  format: IngestFormat;
}

/**
 * Refuses a size outside the contract, naming the limit (the same on every entry point).
 * `maxPixels` may lower the contract's maximum (a deployment's own limit), never raise it.
 */
export function checkLimits(width: number, height: number, name: string, maxPixels = MAX_PIXELS): void {
  const limit = Math.min(maxPixels, MAX_PIXELS);
  if (width < MIN_SIDE || height < MIN_SIDE) {
    throw new IngestError("too_small", `${name}: ${width}x${height} is too small; the minimum side is ${MIN_SIDE} pixels`);
  }
  if (width * height > limit) {
    throw new IngestError("too_large", `${name}: ${width}x${height} = ${width * height} pixels is too large; the limit is ${limit} pixels`);
  }
}

/** A mask must have exactly the upright image's size; it is never resized, padded or cropped. */
export function checkSameSize(mask: { width: number; height: number }, image: { width: number; height: number }, name: string): void {
  if (mask.width !== image.width || mask.height !== image.height) {
    throw new IngestError("size_mismatch", `${name}: mask is ${mask.width}x${mask.height} but the image is ${image.width}x${image.height}`);
  }
}

/** round(v · 255 / maxval), halves up, in integers (16 bits: round(v / 257)). */
export function to8Bit(data: Uint8Array | Uint16Array, maxval: number): Uint8Array {
  if (maxval === 255 && data instanceof Uint8Array) return Uint8Array.from(data);
  const out = new Uint8Array(data.length);
  for (let k = 0; k < data.length; k++) out[k] = Math.floor((2 * 255 * data[k]! + maxval) / (2 * maxval));
  return out;
}

/** 8-bit samples with an alpha channel (2 or 4 channels) → colour × alpha / 255, rounded; else unchanged. */
export function compositeOnBlack(eight: Uint8Array, channels: number): { data: Uint8Array; channels: number } {
  if (channels !== 2 && channels !== 4) return { data: eight, channels };
  const colour = channels - 1;
  const n = eight.length / channels;
  const out = new Uint8Array(n * colour);
  for (let k = 0; k < n; k++) {
    const a = eight[k * channels + colour]!;
    for (let c = 0; c < colour; c++) out[k * colour + c] = Math.floor((2 * eight[k * channels + c]! * a + 255) / 510);
  }
  return { data: out, channels: colour };
}

/** An image under the contract: 8-bit RGB, H×W×3 interleaved, upright, alpha composited on black. */
export interface RgbImage {
  width: number;
  height: number;
  rgb: Uint8Array;
  format: IngestFormat;
}

export function imageFromSamples(s: Samples): RgbImage {
  const flat = compositeOnBlack(to8Bit(s.data, s.maxval), s.channels);
  if (flat.channels === 3) return { width: s.width, height: s.height, rgb: flat.data, format: s.format };
  const rgb = new Uint8Array(s.width * s.height * 3);
  for (let k = 0; k < flat.data.length; k++) rgb[3 * k] = rgb[3 * k + 1] = rgb[3 * k + 2] = flat.data[k]!;
  return { width: s.width, height: s.height, rgb, format: s.format };
}

export interface BinaryMask {
  width: number;
  height: number;
  /** One byte per pixel, 0 or 1. */
  bits: Uint8Array;
  foreground: number;
  /** The file was lossy (JPEG, WebP): its in-between values were thresholded at half scale. */
  lossy: boolean;
}

/**
 * The mask rule (docs/ingest.md, "Masks"):
 * - samples that are all 0 or 1 (a 0/1 mask at any bit depth) scale 1 → 255 first;
 * - a lossless colour mask (some pixel whose R, G, B differ): foreground = any non-black pixel;
 * - a grey mask, or any mask of a lossy format: foreground = the brightest channel ≥ 128 on 8 bits.
 */
export function maskFromSamples(s: Samples): BinaryMask {
  const hasAlpha = s.channels === 2 || s.channels === 4;
  const colourChannels = hasAlpha ? s.channels - 1 : s.channels;
  const eight = to8Bit(s.data, s.maxval);
  let binaryValued = s.maxval > 1;
  for (let k = 0; binaryValued && k < s.data.length; k++) {
    if (k % s.channels < colourChannels && s.data[k]! > 1) binaryValued = false;
  }
  if (binaryValued) {
    for (let k = 0; k < s.data.length; k++) if (k % s.channels < colourChannels) eight[k] = s.data[k]! * 255;
  }
  const flat = compositeOnBlack(eight, s.channels);
  const n = s.width * s.height;
  const c = flat.channels;
  let isColour = false;
  if (c === 3) {
    for (let k = 0; k < n && !isColour; k++) {
      const r = flat.data[3 * k]!;
      isColour = r !== flat.data[3 * k + 1] || r !== flat.data[3 * k + 2];
    }
  }
  const lossy = LOSSY_FORMATS.includes(s.format);
  const anyNonBlack = isColour && !lossy;
  const bits = new Uint8Array(n);
  let foreground = 0;
  for (let k = 0; k < n; k++) {
    let brightest = 0;
    for (let j = 0; j < c; j++) brightest = Math.max(brightest, flat.data[k * c + j]!);
    if (anyNonBlack ? brightest > 0 : brightest >= MASK_THRESHOLD) {
      bits[k] = 1;
      foreground++;
    }
  }
  return { width: s.width, height: s.height, bits, foreground, lossy };
}
