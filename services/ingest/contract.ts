// The ingest contract's numbers and lists, read from the one file both languages share
// (ml/src/medloop_ml/ingest_contract.json; the rules are written out in docs/ingest.md).
// Pure data, no Node imports: the browser's uploader uses it too.
import contract from "../../ml/src/medloop_ml/ingest_contract.json" with { type: "json" };

export type IngestFormat = "png" | "jpeg" | "tiff" | "gif" | "bmp" | "pnm" | "webp";

/** File extensions (lower case, no dot) that name an image or mask file, and their formats. */
export const EXTENSION_FORMATS: Readonly<Record<string, IngestFormat>> = contract.extensions as Record<string, IngestFormat>;
export const IMAGE_EXTENSIONS: readonly string[] = Object.keys(EXTENSION_FORMATS);
/** The formats by name, for messages: "PNG, JPEG, TIFF, GIF, BMP, PPM/PGM or WebP". */
export const FORMATS_TEXT: string = contract.formats_text;
/** The media type each format is served with. */
export const MEDIA_TYPES: Readonly<Record<IngestFormat, string>> = contract.media_types as Record<IngestFormat, string>;
/** Content types a raw upload may declare. */
export const UPLOAD_MEDIA_TYPES: readonly string[] = contract.upload_media_types;
/** Formats whose masks are read with the lossy rule (foreground = any channel ≥ MASK_THRESHOLD). */
export const LOSSY_FORMATS: readonly string[] = contract.lossy_formats;
/** Smallest accepted width and height, in pixels. */
export const MIN_SIDE: number = contract.min_side;
/** Largest accepted width × height, in pixels. */
export const MAX_PIXELS: number = contract.max_pixels;
/** Half scale on 8 bits: the grey and lossy masks' foreground threshold. */
export const MASK_THRESHOLD: number = contract.mask_threshold;
/** 32-bit BMP bitfield masks (R, G, B, A) the contract reads, as hexadecimal strings. */
export const BMP_BITFIELD_MASKS_32: readonly (readonly string[])[] = contract.bmp_bitfield_masks_32;

const MAGIC: readonly Uint8Array[] = Object.values(contract.magic_numbers)
  .flat()
  .map((hex) => Uint8Array.from(hex.match(/../g)!.map((b) => parseInt(b, 16))));

/** Whether a file starts with the magic number of a contract format (damaged, not foreign). */
export function looksLikeSupportedFormat(bytes: Uint8Array): boolean {
  return MAGIC.some((magic) => magic.every((b, i) => bytes[i] === b));
}
