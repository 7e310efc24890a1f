// Pairs the files of one drop into images and their reference masks, by name: a mask is a file
// named like an image of the same drop plus a suffix (Image_01L.jpg + Image_01L_1stHO.png).
// Kept free of the DOM so it is unit-tested under Node.

export interface UploadPair<F> {
  image: F;
  mask: F | null;
  /** The image's name without its extension: the name the server stores. */
  name: string;
}

export interface PairedUploads<F> {
  pairs: UploadPair<F>[];
  /** Files named like a mask whose image is not in the drop. */
  orphanMasks: F[];
}

export function stemOf(fileName: string): string {
  return fileName.replace(/\.[^.]+$/, "");
}

export function pairUploads<F extends { name: string }>(files: F[], maskSuffix: string): PairedUploads<F> {
  const suffix = maskSuffix.trim();
  const isMaskName = (stem: string) => suffix !== "" && stem.endsWith(suffix) && stem.length > suffix.length;
  const images = files.filter((f) => !isMaskName(stemOf(f.name)));
  const byStem = new Map(images.map((f) => [stemOf(f.name), f]));
  const masks = new Map<string, F>();
  const orphanMasks: F[] = [];
  for (const file of files) {
    const stem = stemOf(file.name);
    if (!isMaskName(stem)) continue;
    const imageStem = stem.slice(0, -suffix.length);
    if (byStem.has(imageStem) && !masks.has(imageStem)) masks.set(imageStem, file);
    else orphanMasks.push(file);
  }
  const pairs = images.map((image) => {
    const name = stemOf(image.name);
    return { image, mask: masks.get(name) ?? null, name };
  });
  return { pairs, orphanMasks };
}
