// Windows BMP files, which sharp cannot read. Written here because the npm decoders tried gave
// channels in varying orders (bmp-ts) or could not read palettes and 32-bit BI_RGB files
// (fast-bmp). The variants read are exactly those the contract lists (docs/ingest.md), with
// Pillow's semantics, which the Python side uses: 1/4/8-bit palettes, 24-bit BGR, 32-bit BI_RGB
// (the fourth byte ignored, as Pillow does) and 32-bit BI_BITFIELDS with byte-aligned masks.
// Everything else (RLE, 16-bit, other masks) is refused on both sides.
// Format: Microsoft, "Bitmap Storage" (learn.microsoft.com/windows/win32/gdi/bitmap-storage).
import { BMP_BITFIELD_MASKS_32 } from "./contract.js";
import { checkLimits, IngestError, type Samples } from "./samples.js";

export function isBmp(bytes: Uint8Array): boolean {
  return bytes[0] === 0x42 && bytes[1] === 0x4d; // "BM"
}

const BI_RGB = 0;
const BI_BITFIELDS = 3;

type ByteOrder = [number, number, number, number | null];

/** Byte position of a byte-aligned mask (0xff << 8k → k) in the little-endian pixel; 0 → none. */
const bytePosition = (hex: string): number | null => (hex === "0" ? null : (hex.length - 1) >> 1);

/** The contract's 32-bit bitfield masks (R, G, B, A), as byte positions in the pixel. */
const MASKS_32: Record<string, ByteOrder> = Object.fromEntries(
  BMP_BITFIELD_MASKS_32.map((masks) => [masks.join(","), masks.map(bytePosition) as ByteOrder]),
);

interface Header {
  width: number;
  height: number;
  topDown: boolean;
  bits: number;
  compression: number;
  colors: number;
  headerSize: number;
  masks: number[];
}

function readHeader(view: DataView, name: string): Header {
  const headerSize = view.getUint32(14, true);
  // 40-byte headers with bitfields keep their three masks after the header.
  const needed = 14 + headerSize + (headerSize === 40 ? 12 : 0);
  if (view.byteLength < Math.min(needed, 70)) throw new IngestError("unreadable", `${name}: the BMP header is cut short`);
  if (headerSize === 12) {
    return { width: view.getUint16(18, true), height: view.getUint16(20, true), topDown: false, bits: view.getUint16(24, true), compression: BI_RGB, colors: 0, headerSize, masks: [] };
  }
  if (![40, 52, 56, 64, 108, 124].includes(headerSize)) throw new IngestError("unsupported", `${name}: BMP header type ${headerSize} is not supported`);
  const rawHeight = view.getInt32(22, true);
  const compression = view.getUint32(30, true);
  const masks: number[] = [];
  if (compression === BI_BITFIELDS) {
    // 40-byte headers keep the three masks after the header; larger headers hold four inside.
    const at = 54;
    const count = headerSize >= 56 ? 4 : 3;
    for (let k = 0; k < count; k++) masks.push(view.getUint32(at + 4 * k, true));
    if (count === 3) masks.push(0);
  }
  return {
    width: view.getInt32(18, true),
    height: Math.abs(rawHeight),
    topDown: rawHeight < 0,
    bits: view.getUint16(28, true),
    compression,
    colors: view.getUint32(46, true),
    headerSize,
    masks,
  };
}

export function decodeBmp(bytes: Uint8Array, name: string, maxPixels?: number): Samples {
  if (bytes.length < 30) throw new IngestError("unreadable", `${name}: the BMP header is cut short`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = readHeader(view, name);
  checkLimits(h.width, h.height, name, maxPixels);
  const variant = `${h.bits}-bit BMP with compression ${h.compression}`;
  let byteOrder: ByteOrder | null = null;
  if (h.compression === BI_BITFIELDS && h.bits === 32) {
    byteOrder = MASKS_32[h.masks.map((m) => m.toString(16)).join(",")] ?? null;
    if (!byteOrder) throw new IngestError("unsupported", `${name}: ${variant} and masks ${h.masks.map((m) => m.toString(16)).join("/")} is not supported`);
  } else if (h.compression === BI_BITFIELDS && h.bits === 24 && h.masks.slice(0, 3).join(",") === [0xff0000, 0xff00, 0xff].join(",")) {
    // the standard BGR layout spelt out as bitfields: read as BI_RGB
  } else if (h.compression !== BI_RGB || ![1, 4, 8, 24, 32].includes(h.bits)) {
    throw new IngestError("unsupported", `${name}: ${variant} is not supported (1, 4, 8, 24 or 32 bits, uncompressed)`);
  } else if (h.bits === 32) {
    byteOrder = [2, 1, 0, null]; // BI_RGB: B, G, R, unused
  }
  const pixelOffset = view.getUint32(10, true);
  const stride = Math.floor((h.width * h.bits + 31) / 32) * 4;
  if (pixelOffset + stride * h.height > bytes.length) throw new IngestError("unreadable", `${name}: truncated BMP pixel data`);
  const alpha = byteOrder !== null && byteOrder[3] !== null;
  const channels = alpha ? 4 : 3;
  const data = new Uint8Array(h.width * h.height * channels);
  const palette = h.bits <= 8 ? readPalette(bytes, h) : null;
  for (let y = 0; y < h.height; y++) {
    const row = pixelOffset + (h.topDown ? y : h.height - 1 - y) * stride;
    for (let x = 0; x < h.width; x++) {
      const out = (y * h.width + x) * channels;
      if (palette) {
        const bitPos = x * h.bits;
        const byte = bytes[row + (bitPos >> 3)]!;
        const index = (byte >> (8 - h.bits - (bitPos & 7))) & ((1 << h.bits) - 1);
        data.set(palette.subarray(3 * index, 3 * index + 3), out);
      } else if (h.bits === 24) {
        const at = row + 3 * x;
        data[out] = bytes[at + 2]!;
        data[out + 1] = bytes[at + 1]!;
        data[out + 2] = bytes[at]!;
      } else {
        const at = row + 4 * x;
        const [r, g, b, a] = byteOrder!;
        data[out] = bytes[at + r]!;
        data[out + 1] = bytes[at + g]!;
        data[out + 2] = bytes[at + b]!;
        if (a !== null) data[out + 3] = bytes[at + a]!;
      }
    }
  }
  return { width: h.width, height: h.height, channels, maxval: 255, data, format: "bmp" };
}

/** The colour table as RGB triples, 256 entries (indices past the table's end read as black). */
function readPalette(bytes: Uint8Array, h: Header): Uint8Array {
  const entry = h.headerSize === 12 ? 3 : 4; // BGR or BGRX
  const count = Math.min(h.colors || 1 << h.bits, 256);
  const start = 14 + h.headerSize;
  const rgb = new Uint8Array(256 * 3);
  for (let k = 0; k < count && start + entry * k + 2 < bytes.length; k++) {
    rgb[3 * k] = bytes[start + entry * k + 2]!;
    rgb[3 * k + 1] = bytes[start + entry * k + 1]!;
    rgb[3 * k + 2] = bytes[start + entry * k]!;
  }
  return rgb;
}
