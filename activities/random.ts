// A small seeded PRNG shared by the activities that must repeat their random choices
// (image selection, augmentation): same seed, same numbers, on every machine. The browser's
// augmentation preview (web/src/pages/augmentPreview.ts) draws with it too; keep it free of
// Node APIs.

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

/** A uniform float in [lo, hi). */
export function uniform(random: () => number, lo: number, hi: number): number {
  return lo + (hi - lo) * random();
}
