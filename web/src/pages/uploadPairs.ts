// Plans an upload from the uploader's two drop zones, by file name under the ingest contract
// (docs/ingest.md, "Names"; services/ingest/names.ts, shared with the import command and the API):
// - the images zone: images, and masks named like an image of the same drop plus the suffix
//   (Image_01L.jpg + Image_01L_1stHO.png);
// - the reference masks zone: masks from a separate folder, named like their image (the same
//   file names as the images) or like the image plus the suffix. Each is paired with the image
//   of that name already in the project (then sent on its own), or waits for the image's drop.
// A stem given twice (eye_03.png + eye_03.tif) is refused by name and nothing of that drop is
// sent. Kept free of the DOM so it is unit-tested under Node.

import { EXTENSION_FORMATS, FORMATS_TEXT, IMAGE_EXTENSIONS, MEDIA_TYPES } from "../../../services/ingest/contract.js";
import { describeClashes, groupBy, isImageFileName, nfc, pairByStem, splitName, type NamedFile, type StemClash } from "../../../services/ingest/names.js";

export interface UploadPair<F> {
  image: F;
  mask: F | null;
  /** The image's name without its extension (NFC): the name the server stores. */
  name: string;
}

export interface PairedUploads<F> {
  /** Sorted by name. */
  pairs: UploadPair<F>[];
  /** Files named like a mask whose image is not in the drop. */
  orphanMasks: F[];
  /** Stems given more than once: when any, nothing of the drop may be sent. */
  clashes: StemClash<F>[];
  /** Files that are no image under the contract (another extension, hidden files such as .DS_Store). */
  skipped: F[];
  /** The waiting masks (from the reference masks zone) that found their image in this drop. */
  usedWaiting: F[];
}

/** The `accept` list of the file inputs: the contract's extensions. */
export const ACCEPT = IMAGE_EXTENSIONS.map((e) => `.${e}`).join(",");

/** The formats by name, for the uploader's text. */
export { FORMATS_TEXT };

/** The media type of a file by its extension (browsers give none for PPM/PGM). */
export function mediaTypeOf(fileName: string): string {
  const format = EXTENSION_FORMATS[splitName(fileName).ext];
  return format ? MEDIA_TYPES[format] : "application/octet-stream";
}

export function stemOf(fileName: string): string {
  return splitName(fileName).stem;
}

function cleanSuffix(maskSuffix: string): string {
  return nfc(maskSuffix.trim());
}

/** A stem that ends with the suffix and is longer than it names a mask. */
function isMaskStem(stem: string, suffix: string): boolean {
  return suffix !== "" && stem.endsWith(suffix) && stem.length > suffix.length;
}

/** The name of the image a mask from the reference masks zone belongs to. */
export function maskTarget(fileName: string, maskSuffix: string): string {
  const suffix = cleanSuffix(maskSuffix);
  const { stem } = splitName(fileName);
  return isMaskStem(stem, suffix) ? stem.slice(0, -suffix.length) : stem;
}

/** Masks grouped by the image they belong to; two for one image are a clash. */
function indexByTarget<F extends NamedFile>(masks: readonly F[], maskSuffix: string): { byTarget: Map<string, F>; clashes: StemClash<F>[] } {
  const { unique, clashes } = groupBy(masks, (m) => maskTarget(m.name, maskSuffix));
  return { byTarget: unique, clashes };
}

/**
 * Pairs the files of one drop on the images zone; `waiting` are masks from the reference masks
 * zone whose image was not in the project when they were dropped.
 */
export function pairUploads<F extends NamedFile>(files: readonly F[], maskSuffix: string, waiting: readonly F[] = []): PairedUploads<F> {
  const suffix = cleanSuffix(maskSuffix);
  const skipped = files.filter((f) => !isImageFileName(f.name));
  const usable = files.filter((f) => isImageFileName(f.name));
  const images = usable.filter((f) => !isMaskStem(stemOf(f.name), suffix));
  const masks = usable.filter((f) => isMaskStem(stemOf(f.name), suffix));
  const paired = pairByStem(images, masks, suffix);
  const waitingIndex = indexByTarget(waiting, suffix);
  const usedWaiting: F[] = [];
  const clashes = [...paired.clashes];
  const pairs = paired.pairs.map((p) => {
    const other = waitingIndex.byTarget.get(p.name);
    if (!other) return p;
    // A mask in this drop and a waiting one for the same image: which one is meant is not ours to guess.
    if (p.mask) {
      clashes.push({ stem: p.name, files: [p.mask, other] });
      return p;
    }
    usedWaiting.push(other);
    return { ...p, mask: other };
  });
  return { pairs, orphanMasks: paired.orphanMasks, clashes, skipped, usedWaiting };
}

export interface MaskPlan<F, I> {
  /** Masks whose image is already in the project: sent on their own (PUT /images/:id/mask). */
  toExisting: Array<{ mask: F; image: I }>;
  /** Masks whose image is not in the project (yet): they wait for the image's drop. */
  waiting: F[];
  /** Two masks for one image: when any, nothing of the drop may be sent. */
  clashes: StemClash<F>[];
  skipped: F[];
}

/** Plans a drop on the reference masks zone against the project's images (names compared in NFC). */
export function planMasks<F extends NamedFile, I extends { name: string }>(masks: readonly F[], maskSuffix: string, projectImages: readonly I[]): MaskPlan<F, I> {
  const skipped = masks.filter((f) => !isImageFileName(f.name));
  const { byTarget, clashes } = indexByTarget(
    masks.filter((f) => isImageFileName(f.name)),
    maskSuffix,
  );
  const imagesByName = new Map(projectImages.map((i) => [nfc(i.name), i]));
  const toExisting: Array<{ mask: F; image: I }> = [];
  const waiting: F[] = [];
  for (const [target, mask] of byTarget) {
    const image = imagesByName.get(target);
    if (image) toExisting.push({ mask, image });
    else waiting.push(mask);
  }
  return { toExisting, waiting, clashes, skipped };
}

/** One line refusing a drop with clashes, naming each stem and its files. */
export function clashMessage<F extends NamedFile>(clashes: readonly StemClash<F>[], what: "image" | "mask"): string {
  return `Nothing sent: ${describeClashes(clashes, what)}. Each ${what} must appear once; remove the extra files and drop again.`;
}
