// PGM/PPM files (Netpbm P2, P3, P5, P6), which sharp cannot read. Written here because the format is
// a short text header and raw samples, and the npm readers found are unmaintained; the Python side
// (ml/src/medloop_ml/ingest.py, `_pnm`) parses it the same way. Specification: netpbm.sourceforge.net
// (pgm.html, ppm.html): magic, width, height, maxval separated by whitespace, `#` comments in the
// header, one whitespace byte, then samples (1 byte each when maxval < 256, else 2 bytes big-endian).
import { checkLimits, IngestError, type Samples } from "./samples.js";

const SUPPORTED = ["P2", "P3", "P5", "P6"];

export function isPnm(bytes: Uint8Array): boolean {
  return bytes[0] === 0x50 /* P */ && bytes[1]! >= 0x31 && bytes[1]! <= 0x36;
}

const isSpace = (b: number | undefined) => b === 0x20 || (b !== undefined && b >= 0x09 && b <= 0x0d);
const isDigit = (b: number | undefined) => b !== undefined && b >= 0x30 && b <= 0x39;

export function decodePnm(bytes: Uint8Array, name: string, maxPixels?: number): Samples {
  const magic = String.fromCharCode(bytes[0]!, bytes[1]!);
  if (!SUPPORTED.includes(magic)) throw new IngestError("unsupported", `${name}: PNM type ${magic} is not supported (P2, P3, P5, P6)`);
  const fields: number[] = [];
  let pos = 2;
  while (fields.length < 3) {
    while (isSpace(bytes[pos])) pos++;
    if (bytes[pos] === 0x23 /* # */) {
      while (pos < bytes.length && bytes[pos] !== 0x0a) pos++;
      pos++;
      continue;
    }
    const start = pos;
    while (isDigit(bytes[pos])) pos++;
    if (start === pos) throw new IngestError("unreadable", `${name}: malformed PNM header`);
    fields.push(Number(new TextDecoder().decode(bytes.subarray(start, pos))));
  }
  const [width, height, maxval] = fields as [number, number, number];
  if (maxval < 1 || maxval > 65535) throw new IngestError("unreadable", `${name}: PNM maxval ${maxval} is outside 1..65535`);
  checkLimits(width, height, name, maxPixels);
  const channels = magic === "P3" || magic === "P6" ? 3 : 1;
  const count = width * height * channels;
  const data = maxval <= 255 ? new Uint8Array(count) : new Uint16Array(count);
  if (magic === "P5" || magic === "P6") {
    const body = bytes.subarray(pos + 1); // exactly one whitespace byte ends the header
    const wide = maxval > 255;
    if (body.length < count * (wide ? 2 : 1)) throw new IngestError("unreadable", `${name}: truncated PNM data`);
    for (let k = 0; k < count; k++) {
      data[k] = wide ? (body[2 * k]! << 8) | body[2 * k + 1]! : body[k]!;
      if (data[k]! > maxval) throw new IngestError("unreadable", `${name}: a PNM sample exceeds maxval ${maxval}`);
    }
  } else {
    const tokens = new TextDecoder("latin1").decode(bytes.subarray(pos)).trim().split(/\s+/);
    if (tokens.length < count || tokens[0] === "") throw new IngestError("unreadable", `${name}: truncated PNM data`);
    for (let k = 0; k < count; k++) {
      if (!/^\d+$/.test(tokens[k]!)) throw new IngestError("unreadable", `${name}: PNM sample "${tokens[k]}" is not a number`);
      const value = Number(tokens[k]);
      // Checked before it is stored: a typed array would wrap 300 to 44.
      if (value > maxval) throw new IngestError("unreadable", `${name}: a PNM sample exceeds maxval ${maxval}`);
      data[k] = value;
    }
  }
  return { width, height, channels, maxval, data, format: "pnm" };
}
