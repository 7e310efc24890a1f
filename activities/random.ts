// A small seeded PRNG shared by the activities that must repeat their random choices
// (image selection, augmentation): same seed, same numbers, on every machine. The browser's
// augmentation preview (web/src/pages/augmentPreview.ts) and the campaign workflow (mixing
// honeypots into a round's corrections, where it must replay identically) draw with it too; keep
// it free of Node APIs.

/** mulberry32: a well-mixed 32-bit generator returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A new array with the items of `items` in a Fisher–Yates order drawn from mulberry32(`seed`). */
export function seededShuffle<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  const random = mulberry32(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** A uniform float in [lo, hi). */
export function uniform(random: () => number, lo: number, hi: number): number {
  return lo + (hi - lo) * random();
}
