// The ingest contract's numbers and lists, read from the one file both languages share
// (ml/src/medloop_ml/ingest_contract.json; the rules are written out in docs/ingest.md).
// Pure data, no Node imports: the browser's uploader uses it too.
import contract from "../../ml/src/medloop_ml/ingest_contract.json" with { type: "json" };

/** File extensions (lower case, no dot) that name an image or mask file. */
export const IMAGE_EXTENSIONS: readonly string[] = contract.image_extensions;
/** Formats whose masks are read with the lossy rule (foreground = any channel ≥ MASK_THRESHOLD). */
export const LOSSY_FORMATS: readonly string[] = contract.lossy_formats;
/** Smallest accepted width and height, in pixels. */
export const MIN_SIDE: number = contract.min_side;
/** Largest accepted width × height, in pixels. */
export const MAX_PIXELS: number = contract.max_pixels;
/** Half scale on 8 bits: the grey and lossy masks' foreground threshold. */
export const MASK_THRESHOLD: number = contract.mask_threshold;
