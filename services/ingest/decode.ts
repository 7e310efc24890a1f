// The ingest contract's decoding, TypeScript side (docs/ingest.md): one function per kind of file —
// `readImage` for images, `readMask` for masks and FOV masks — called by the import command, the
// upload API and model serving. sharp (libvips) decodes PNG, JPEG, TIFF, GIF and WebP; PGM/PPM
// and BMP, which sharp cannot read, have small readers of their own (pnm.ts, bmp.ts).
import sharp, { type Metadata } from "sharp";
import { decodeBmp, isBmp } from "./bmp.js";
import { FORMATS_TEXT, looksLikeSupportedFormat } from "./contract.js";
import { decodePnm, isPnm } from "./pnm.js";
import {
  checkLimits,
  checkSameSize,
  imageFromSamples,
  IngestError,
  maskFromSamples,
  type BinaryMask,
  type IngestFormat,
  type RgbImage,
  type Samples,
} from "./samples.js";

const SHARP_FORMATS: Record<string, IngestFormat> = { png: "png", jpeg: "jpeg", tiff: "tiff", gif: "gif", webp: "webp" };

export interface DecodeOptions {
  /** A lower pixel limit than the contract's (a deployment's own), checked from the header too. */
  maxPixels?: number;
}

/** Decodes a file's bytes to upright native samples; IngestError naming `name` when refused. */
export async function decodeSamples(bytes: Uint8Array, name: string, opts: DecodeOptions = {}): Promise<Samples> {
  if (bytes.length === 0) throw new IngestError("unreadable", `${name}: the file is empty`);
  if (isPnm(bytes) || isBmp(bytes)) {
    try {
      return isPnm(bytes) ? decodePnm(bytes, name, opts.maxPixels) : decodeBmp(bytes, name, opts.maxPixels);
    } catch (err) {
      // Our own readers: anything but a refusal is a damaged file, never a server error.
      if (err instanceof IngestError) throw err;
      throw new IngestError("unreadable", `${name}: the image file is damaged (${oneLine(err)})`);
    }
  }
  const meta = await metadataOf(bytes, name);
  const format = SHARP_FORMATS[meta.format ?? ""];
  if (!format) throw new IngestError("unsupported", `${name}: ${String(meta.format).toUpperCase()} files are not supported (${FORMATS_TEXT})`);
  checkLimits(meta.width ?? 0, meta.height ?? 0, name, opts.maxPixels);
  if (format === "tiff" && tiffExtraSamples(bytes).includes(1)) {
    // Premultiplied colour: sharp and Pillow un-premultiply it with different rounding.
    throw new IngestError("unsupported", `${name}: TIFF with premultiplied (associated) alpha is not supported; save it with unassociated alpha or none`);
  }
  const pages = format === "png" ? apngFrames(bytes) : (meta.pages ?? 1);
  if (pages > 1) throw new IngestError("pages", `${name}: the file holds ${pages} pages (or frames); send one image per file`);
  if (meta.space === "cmyk") throw new IngestError("unsupported", `${name}: CMYK colour is not supported (grey or RGB, 8 or 16 bits)`);
  if (meta.depth !== "uchar" && meta.depth !== "ushort") {
    throw new IngestError("unsupported", `${name}: ${meta.depth} samples are not supported (grey or RGB, 8 or 16 bits)`);
  }
  const wide = meta.depth === "ushort";
  try {
    // Embedded ICC profiles are ignored on both sides (Pillow ignores them); autoOrient applies the
    // EXIF Orientation. sharp's default pipeline is 8-bit sRGB, so 16-bit files ask for rgb16 to
    // keep their native samples (the contract scales them itself, as round(v / 257)).
    let pipeline = sharp(bytes, { ignoreIcc: true, failOn: "truncated", limitInputPixels: false }).autoOrient();
    if (wide) pipeline = pipeline.toColourspace("rgb16");
    const { data, info } = await pipeline.raw({ depth: wide ? "ushort" : "uchar" }).toBuffer({ resolveWithObject: true });
    const samples = wide ? new Uint16Array(data.buffer, data.byteOffset, data.length / 2) : new Uint8Array(data.buffer, data.byteOffset, data.length);
    return { width: info.width, height: info.height, channels: info.channels, maxval: wide ? 65535 : 255, data: samples, format };
  } catch (err) {
    throw new IngestError("unreadable", `${name}: the image could not be decoded (${oneLine(err)})`);
  }
}

/** An error's message on one line (libvips reports one line per decoder warning). */
function oneLine(err: unknown): string {
  return String((err as Error).message ?? err).split(/\s+/).join(" ").trim();
}

async function metadataOf(bytes: Uint8Array, name: string): Promise<Metadata> {
  try {
    const meta = await sharp(bytes).metadata();
    if (!meta.width || !meta.height || !meta.format) throw new Error("no size or format");
    return meta;
  } catch (err) {
    if (looksLikeSupportedFormat(bytes)) throw new IngestError("unreadable", `${name}: the image file is damaged (${oneLine(err)})`);
    throw new IngestError("unsupported", `${name}: not an image file of a supported format (${FORMATS_TEXT})`);
  }
}

/** Frames of an animated PNG (its acTL chunk, before the image data); 1 for a still PNG. */
export function apngFrames(bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 8; at + 8 <= bytes.length; ) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (type === "acTL" && at + 12 <= bytes.length) return view.getUint32(at + 8);
    if (type === "IDAT" || type === "IEND") break;
    at += 12 + length;
  }
  return 1;
}

/**
 * The ExtraSamples values (TIFF 6.0 tag 338: 0 unspecified, 1 associated alpha, 2 unassociated
 * alpha) of a TIFF's first image; sharp's metadata does not report them.
 */
export function tiffExtraSamples(bytes: Uint8Array): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 8) return [];
  const little = bytes[0] === 0x49;
  const ifd = view.getUint32(4, little);
  if (ifd + 2 > bytes.length) return [];
  const entries = view.getUint16(ifd, little);
  for (let k = 0; k < entries; k++) {
    const at = ifd + 2 + 12 * k;
    if (at + 12 > bytes.length) return [];
    if (view.getUint16(at, little) !== 338) continue;
    const count = view.getUint32(at + 4, little);
    // SHORT values: up to two fit in the entry, more are at the offset it holds.
    const start = count <= 2 ? at + 8 : view.getUint32(at + 8, little);
    if (start + 2 * count > bytes.length) return [];
    return Array.from({ length: count }, (_, i) => view.getUint16(start + 2 * i, little));
  }
  return [];
}

/** An image file under the contract: upright 8-bit RGB (grey expanded, alpha composited on black). */
export async function readImage(bytes: Uint8Array, name: string, opts: DecodeOptions = {}): Promise<RgbImage> {
  return imageFromSamples(await decodeSamples(bytes, name, opts));
}

/**
 * A mask (or FOV mask) file under the contract's mask rule; with `image`, its size must equal
 * the upright image's exactly (IngestError "size_mismatch" naming both sizes otherwise).
 */
export async function readMask(bytes: Uint8Array, name: string, image?: { width: number; height: number }): Promise<BinaryMask> {
  const samples = await decodeSamples(bytes, name);
  if (image) checkSameSize(samples, image, name);
  return maskFromSamples(samples);
}

/** PNG of an 8-bit RGB image (what the store keeps as the normalised image). */
export function rgbPng(image: { width: number; height: number; rgb: Uint8Array }): Promise<Buffer> {
  return sharp(image.rgb, { raw: { width: image.width, height: image.height, channels: 3 } }).png().toBuffer();
}

/** PNG of a mask: one 8-bit channel, 0 background, 255 foreground. */
export function maskPng(mask: { width: number; height: number; bits: Uint8Array }): Promise<Buffer> {
  const raw = Buffer.alloc(mask.bits.length);
  for (let i = 0; i < mask.bits.length; i++) raw[i] = mask.bits[i] ? 255 : 0;
  return sharp(raw, { raw: { width: mask.width, height: mask.height, channels: 1 } })
    .toColourspace("b-w") // one channel, not sharp's default sRGB
    .png()
    .toBuffer();
}
