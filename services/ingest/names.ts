// File names under the ingest contract (docs/ingest.md, "Names"): Unicode NFC everywhere, the
// extension matched case-insensitively, pairing of images and masks by stem (+ mask suffix),
// and a stem that appears twice refused by name. Pure functions, no Node imports: the API, the
// import command and the browser's uploader all call these.
import { IMAGE_EXTENSIONS } from "./contract.js";

export interface SplitName {
  /** The name without its last extension, in Unicode NFC. */
  stem: string;
  /** The last extension in lower case, without the dot ("" when there is none). */
  ext: string;
}

/** Unicode NFC: macOS writes decomposed (NFD) names, Windows and Linux mostly composed ones. */
export function nfc(name: string): string {
  return name.normalize("NFC");
}

/** The base name of a path written with `/` or `\` (browsers and multipart send either). */
export function baseName(fileName: string): string {
  return fileName.slice(Math.max(fileName.lastIndexOf("/"), fileName.lastIndexOf("\\")) + 1);
}

export function splitName(fileName: string): SplitName {
  const base = nfc(baseName(fileName));
  const dot = base.lastIndexOf(".");
  if (dot <= 0) return { stem: base, ext: "" };
  return { stem: base.slice(0, dot), ext: base.slice(dot + 1).toLowerCase() };
}

/**
 * Whether a file takes part in an import: a known image extension, and not hidden (a leading
 * dot: `.DS_Store`, macOS's `._name.png` resource forks, editors' temporary files).
 */
export function isImageFileName(fileName: string): boolean {
  const base = baseName(fileName);
  return !base.startsWith(".") && IMAGE_EXTENSIONS.includes(splitName(base).ext);
}

export interface NamedFile {
  name: string;
}

export interface StemClash<F> {
  /** The shared key: a stem, or the image several masks belong to. */
  stem: string;
  files: F[];
}

/**
 * Groups files by a key (a stem, the image a mask belongs to): keys with one file map to it, keys
 * with more are clashes; both in key order.
 */
export function groupBy<F>(files: readonly F[], keyOf: (file: F) => string): { unique: Map<string, F>; clashes: StemClash<F>[] } {
  const groups = new Map<string, F[]>();
  for (const file of files) {
    const key = keyOf(file);
    groups.set(key, [...(groups.get(key) ?? []), file]);
  }
  const unique = new Map<string, F>();
  const clashes: StemClash<F>[] = [];
  for (const [key, group] of [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (group.length > 1) clashes.push({ stem: key, files: group });
    else unique.set(key, group[0]!);
  }
  return { unique, clashes };
}

/** Groups files by stem; stems with more than one file are clashes (sorted by stem). */
export function indexByStem<F extends NamedFile>(files: readonly F[]): { byStem: Map<string, F>; clashes: StemClash<F>[] } {
  const { unique, clashes } = groupBy(files, (f) => splitName(f.name).stem);
  return { byStem: unique, clashes };
}

/** One line naming every clash, e.g. `stem "eye_03" has 2 files: eye_03.png, eye_03.tif`. */
export function describeClashes<F extends NamedFile>(clashes: readonly StemClash<F>[], what = "image"): string {
  return clashes
    .map((c) => `${what} stem "${c.stem}" has ${c.files.length} files: ${c.files.map((f) => baseName(f.name)).join(", ")}`)
    .join("; ");
}

export interface StemPair<F> {
  /** The image's stem: the name the server stores. */
  name: string;
  image: F;
  mask: F | null;
}

export interface Pairing<F> {
  /** Sorted by stem. */
  pairs: StemPair<F>[];
  /** Masks whose image is not among the images. */
  orphanMasks: F[];
  /** Stems given more than once, among the images or among the masks. */
  clashes: StemClash<F>[];
}

/**
 * Pairs images with masks: the mask of image `<stem>.<ext>` is the file whose stem is
 * `<stem><maskSuffix>` (any extension). Both sides' names are NFC-normalised first, so a
 * decomposed `é` pairs with a composed one.
 */
export function pairByStem<F extends NamedFile>(images: readonly F[], masks: readonly F[], maskSuffix = ""): Pairing<F> {
  const suffix = nfc(maskSuffix);
  const imageIndex = indexByStem(images);
  const maskIndex = indexByStem(masks);
  const used = new Set<string>();
  const pairs = [...imageIndex.byStem].map(([name, image]) => {
    const mask = maskIndex.byStem.get(name + suffix) ?? null;
    if (mask) used.add(name + suffix);
    return { name, image, mask };
  });
  const orphanMasks = [...maskIndex.byStem].filter(([stem]) => !used.has(stem)).map(([, f]) => f);
  return { pairs, orphanMasks, clashes: [...imageIndex.clashes, ...maskIndex.clashes] };
}
