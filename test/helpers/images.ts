// Small real images and masks made with sharp, for tests that need exact pixel counts.
import sharp from "sharp";

/** An RGB gradient PNG of the given size. */
export async function makeImagePng(width: number, height: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      raw[i] = (x * 255) / width;
      raw[i + 1] = (y * 255) / height;
      raw[i + 2] = 128;
    }
  return sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** A one-channel mask PNG: foreground (255) where `on(x, y)`, else 0; `value` overrides 255. */
export async function makeMaskPng(
  width: number,
  height: number,
  on: (x: number, y: number) => boolean,
  value = 255,
): Promise<Buffer> {
  const raw = Buffer.alloc(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) raw[y * width + x] = on(x, y) ? value : 0;
  return sharp(raw, { raw: { width, height, channels: 1 } }).png().toBuffer();
}
